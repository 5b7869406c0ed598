"""The MCP server: the whole loop as tools, resources and prompts, over stdio and HTTP.

- `app.build_server(coach)`: the `MCPServer` (tools, resources, prompts, subscriptions).
- `http_app.build_http_app(...)` / `http_app.serve_http(...)`: streamable HTTP with bearer-token auth and
  the `GET /gates/{rep}/{activity}` endpoint.
- `auth.TokenSet`: hashed bearer tokens.
"""
from .app import build_server

__all__ = ["build_server"]
