"""Log messages to the client (`notifications/message`) and `logging/setLevel`.

2025-era sessions set a level with `logging/setLevel` (default: info); messages below it are not
sent. 2026-07-28 clients opt in per request through `_meta`, which the SDK enforces. The loop
tools log what the loop did (gaps opened, practice assigned, gates set) at info, so a client that
shows server logs sees the loop working while the tool runs.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import mcp_types as types

log = logging.getLogger("coachloop.mcp")

LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
DEFAULT_LEVEL = "info"


class ClientLogLevels:
    def __init__(self) -> None:
        self._levels: dict[int, str] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(session: Any) -> int:
        return id(getattr(session, "_connection", session))

    def install(self, server: Any) -> None:
        server._lowlevel_server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, self._set_level)

    async def _set_level(self, ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        with self._lock:
            self._levels[self.key(ctx.session)] = params.level
            if len(self._levels) > 10_000:  # forget the oldest sessions
                for k in list(self._levels)[:1000]:
                    self._levels.pop(k, None)
        return types.EmptyResult()

    def allows(self, session: Any, level: str) -> bool:
        with self._lock:
            threshold = self._levels.get(self.key(session), DEFAULT_LEVEL)
        return LEVELS.index(level) >= LEVELS.index(threshold)


LEVELS_BY_SERVER: dict[int, ClientLogLevels] = {}


async def client_log(ctx: Any, level: str, message: str) -> None:
    """Send one log line to the client, honouring its level. Never fails the tool."""
    try:
        levels = LEVELS_BY_SERVER.get(id(ctx.mcp_server))
        session = ctx.request_context.session
        if levels is not None and not levels.allows(session, level):
            return
        await ctx.log(level, message, logger_name="coachloop")
    except Exception as exc:  # a client that went away, or no request context
        log.debug("client log not sent: %s", exc)
