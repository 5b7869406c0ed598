"""Helpers for the MCP server tests: run a client against a server in memory, in both eras."""
from __future__ import annotations

import json
import warnings
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp import Client

ERAS = ("legacy", "auto")  # 2025-11-25 initialize handshake / 2026-07-28 stateless envelope


class Inbox:
    """Collects server notifications and lets a test wait (bounded) for one."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._event = anyio.Event()

    async def __call__(self, message: Any) -> None:
        self.items.append(message)
        self._event.set()
        self._event = anyio.Event()

    def methods(self) -> list[str]:
        out = []
        for m in self.items:
            method = getattr(m, "method", None)
            if method:
                out.append(method)
        return out

    def uris_updated(self) -> list[str]:
        return [str(m.params.uri) for m in self.items if getattr(m, "method", None) == "notifications/resources/updated"]

    async def wait_for(self, pred, timeout: float = 5.0) -> None:
        with anyio.fail_after(timeout):
            while not pred():
                await self._event.wait()


@asynccontextmanager
async def client(server: Any, mode: str = "legacy", inbox: Inbox | None = None, **kw: Any):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        async with Client(server, mode=mode, message_handler=inbox, **kw) as c:
            yield c


def structured(result: Any) -> dict:
    assert not result.is_error, result.content[0].text if result.content else result
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: Any) -> str:
    assert result.is_error, f"expected a tool error, got {result.structured_content}"
    return result.content[0].text


def read_json(result: Any) -> Any:
    return json.loads(result.contents[0].text)
