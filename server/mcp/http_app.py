"""Streamable HTTP transport: the MCP endpoint at /mcp (both protocol eras), bearer-token auth,
a plain `GET /gates/{rep}/{activity}` JSON endpoint for a dialer or queue, and `GET /healthz`."""
from __future__ import annotations

import logging
import socket
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from tools.context import Coach

from .app import build_server
from .auth import BearerAuthMiddleware, TokenSet
from .netaddr import ServeError, is_loopback, parse_hostport  # noqa: F401 (re-exported)

log = logging.getLogger("coachloop.mcp")


def _gate_json(coach: Coach, rep: str, activity: str) -> tuple[int, dict]:
    from tools.gates import gate_check

    from .loop_tools import gate_result

    try:
        res = gate_result(gate_check(coach, rep, activity), rep, activity)
    except Exception as exc:
        from .common import _known_error_types, error_text

        if isinstance(exc, _known_error_types()):
            return 404, {"error": "not_found", "message": error_text(exc)}
        log.exception("gate check failed")
        return 500, {"error": "internal", "message": f"{type(exc).__name__}: {exc}"}
    return 200, res.model_dump(mode="json")


def build_http_app(coach: Coach, *, host: str = "127.0.0.1", tokens: TokenSet | None = None, mcp: Any = None):
    """The ASGI app. `tokens=None` means no auth (only allowed on loopback by the CLI)."""
    mcp = mcp or build_server(coach)

    @mcp.custom_route("/gates/{rep}/{activity}", methods=["GET"])
    async def gates(request: Request) -> JSONResponse:
        import anyio

        rep = request.path_params["rep"]
        activity = request.path_params["activity"]
        status, body = await anyio.to_thread.run_sync(_gate_json, coach, rep, activity)
        return JSONResponse(body, status_code=status)

    @mcp.custom_route("/healthz", methods=["GET"])
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "server": "coachloop"})

    from .event_store import MemoryEventStore

    # resumable SSE streams: a client that loses its connection mid-call reconnects with
    # Last-Event-ID and gets what it missed (retry hint: 1 s)
    app = mcp.streamable_http_app(host=host, event_store=MemoryEventStore(), retry_interval=1000)
    if tokens is not None:
        app = BearerAuthMiddleware(app, tokens)
    return app


def serve_http(coach: Coach, host: str, port: int, *, tokens: TokenSet | None, no_auth: bool = False) -> None:
    """Run uvicorn until interrupted. Refuses --no-auth off loopback and auth without tokens."""
    if no_auth:
        if not is_loopback(host):
            raise ServeError(
                f"--no-auth is only allowed on a loopback address (127.0.0.1, ::1, localhost), not {host!r}: "
                "configure tokens (COACHLOOP_TOKENS or --tokens-file) to serve on other interfaces"
            )
        tokens = None
    elif tokens is None or len(tokens) == 0:
        raise ServeError(
            "no access tokens configured for the HTTP server: set COACHLOOP_TOKENS (comma separated), "
            "COACHLOOP_TOKENS_FILE or --tokens-file; or pass --no-auth on a loopback address for local tools"
        )
    import uvicorn

    app = build_http_app(coach, host=host, tokens=tokens)
    if port == 0:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    import sys

    auth = "none (loopback only)" if tokens is None else f"bearer, {len(tokens)} token(s)"
    print(f"coachloop: serving MCP at http://{shown}:{port}/mcp (auth: {auth}); gates at http://{shown}:{port}/gates/REP/ACTIVITY", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run()
