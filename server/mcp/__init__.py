"""The MCP server: the whole loop as tools, resources and prompts, over stdio and HTTP.

- `app.build_server(coach)`: the `MCPServer` (tools, resources, prompts, subscriptions).
- `http_app.build_http_app(...)` / `http_app.serve_http(...)`: streamable HTTP with bearer-token
  auth and the `GET /gates/{rep}/{activity}` endpoint.
- `auth.TokenSet`: hashed bearer tokens. `netaddr`: --http parsing and the loopback rule.

Imports are lazy so that `coachloop serve --help` and option errors do not load the SDK.
"""
from __future__ import annotations

from typing import Any

__all__ = ["build_server"]


def __getattr__(name: str) -> Any:
    if name == "build_server":
        from .app import build_server

        return build_server
    raise AttributeError(name)
