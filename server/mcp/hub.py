"""Resource change notifications for both protocol eras.

The playbook changes on disk (the watcher, `playbook_write`, or anything calling `coach.reload()`);
`Coach` runs its listeners with the old and new snapshots. `ChangeHub.on_reload` diffs them and
tells clients:

- 2026-07-28 (stateless) clients listen with `subscriptions/listen`: events go on the server's
  subscription bus (`ResourceUpdated(uri)`, `ResourcesListChanged()`), and the SDK filters them
  per stream.
- 2025-era (initialize handshake) clients use `resources/subscribe` / `resources/unsubscribe`:
  the hub serves those two methods, remembers which session subscribed to which URI, and sends
  `notifications/resources/updated` to exactly those sessions, and
  `notifications/resources/list_changed` to every 2025-era session it has seen when files come
  and go.

`coach.reload()` may run on any thread (the watcher's, a tool's worker thread, the event loop
itself); delivery is always scheduled onto the server's event loop.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from playbook.loader import Playbook
from playbook.models import KINDS

log = logging.getLogger("coachloop.mcp")

POLICY_URI = "playbook://policy"
MAX_SESSIONS = 1000  # 2025-era sessions remembered for list_changed


def artifact_uri(kind: str, art_id: str) -> str:
    return f"playbook://{kind}/{art_id}"


def index_uri(kind: str) -> str:
    return f"playbook://{kind}"


@dataclass
class PlaybookDiff:
    updated: list[str] = field(default_factory=list)  # resource URIs whose content changed
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def list_changed(self) -> bool:
        return bool(self.added or self.removed)

    def __bool__(self) -> bool:
        return bool(self.updated or self.added or self.removed)


def diff_playbooks(old: Playbook, new: Playbook) -> PlaybookDiff:
    """Which resource URIs changed between two playbook snapshots."""
    d = PlaybookDiff()
    for kind in KINDS:
        o = old.artifacts.get(kind, {})
        n = new.artifacts.get(kind, {})
        touched = False
        for aid in sorted(set(o) | set(n)):
            uri = artifact_uri(kind, aid)
            if aid not in o:
                d.added.append(uri)
                touched = True
            elif aid not in n:
                d.removed.append(uri)
                d.updated.append(uri)
                touched = True
            elif o[aid].version != n[aid].version or o[aid].path != n[aid].path:
                d.updated.append(uri)
                touched = True
        if touched:
            d.updated.append(index_uri(kind))
    if old.policy_version != new.policy_version:
        d.updated.append(POLICY_URI)
    return d


class ChangeHub:
    """Tracks subscriptions of both eras and delivers playbook change notifications."""

    def __init__(self, server: Any):
        self.server = server  # MCPServer
        self._lock = threading.Lock()
        self._subs: dict[str, dict[int, Any]] = {}  # uri -> {id(connection): session}
        self._legacy: dict[int, Any] = {}  # id(connection) -> session, every 2025-era session seen
        self._loop: asyncio.AbstractEventLoop | None = None
        self.delivered: list[tuple[str, str]] = []  # (kind, uri) log, for diagnostics and tests

    # ------------------------------------------------------------------ wiring
    def install(self) -> None:
        ll = self.server._lowlevel_server
        ll.add_request_handler("resources/subscribe", types.SubscribeRequestParams, self._subscribe)
        ll.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, self._unsubscribe)
        ll.middleware.append(self._track)

    def remember_loop(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            pass

    @staticmethod
    def _conn_key(session: Any) -> int:
        return id(getattr(session, "_connection", session))

    async def _track(self, ctx: Any, call_next: Any) -> Any:
        self.remember_loop()
        session = getattr(ctx, "session", None)
        version = getattr(ctx, "protocol_version", None)
        if session is not None and version not in MODERN_PROTOCOL_VERSIONS:
            key = self._conn_key(session)
            with self._lock:
                if key not in self._legacy:
                    self._legacy[key] = session
                    if len(self._legacy) > MAX_SESSIONS:  # forget the oldest sessions (they are most likely gone)
                        for old in list(self._legacy)[: len(self._legacy) - MAX_SESSIONS]:
                            self._legacy.pop(old, None)
        return await call_next(ctx)

    async def _subscribe(self, ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        self.remember_loop()
        uri = str(params.uri)
        with self._lock:
            subs = self._subs.setdefault(uri, {})
            subs[self._conn_key(ctx.session)] = ctx.session
            if len(subs) > MAX_SESSIONS:  # forget the oldest subscribers of this URI
                for old in list(subs)[: len(subs) - MAX_SESSIONS]:
                    subs.pop(old, None)
        log.debug("subscribed to %s", uri)
        return types.EmptyResult()

    async def _unsubscribe(self, ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        uri = str(params.uri)
        with self._lock:
            subs = self._subs.get(uri)
            if subs:
                subs.pop(self._conn_key(ctx.session), None)
                if not subs:
                    self._subs.pop(uri, None)
        return types.EmptyResult()

    def subscribers(self, uri: str) -> int:
        with self._lock:
            return len(self._subs.get(uri, {}))

    # ------------------------------------------------------------------ delivery
    def on_reload(self, old: Playbook, new: Playbook) -> None:
        """Coach listener: diff the snapshots and schedule the notifications."""
        d = diff_playbooks(old, new)
        if not d:
            return
        log.info("playbook changed: updated=%s added=%s removed=%s", d.updated, d.added, d.removed)
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # no client has connected yet: nobody to tell
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.create_task(self.deliver(d))
        else:
            asyncio.run_coroutine_threadsafe(self.deliver(d), loop)

    async def deliver(self, d: PlaybookDiff) -> None:
        bus = self.server._subscriptions
        for uri in d.updated:
            try:
                await bus.publish(ResourceUpdated(uri=uri))
            except Exception:
                log.exception("publishing resource update failed")
            with self._lock:
                targets = list(self._subs.get(uri, {}).items())
            for key, session in targets:
                try:
                    await session.send_resource_updated(uri)
                    self.delivered.append(("updated", uri))
                except Exception as exc:  # the client went away
                    log.debug("dropping subscriber of %s: %s", uri, exc)
                    self._forget(key)
        if d.list_changed:
            try:
                await bus.publish(ResourcesListChanged())
            except Exception:
                log.exception("publishing list change failed")
            with self._lock:
                targets = list(self._legacy.items())
            for key, session in targets:
                try:
                    await session.send_resource_list_changed()
                    self.delivered.append(("list_changed", ""))
                except Exception as exc:
                    log.debug("dropping session: %s", exc)
                    self._forget(key)

    def _forget(self, key: int) -> None:
        with self._lock:
            self._legacy.pop(key, None)
            for uri in list(self._subs):
                self._subs[uri].pop(key, None)
                if not self._subs[uri]:
                    del self._subs[uri]
