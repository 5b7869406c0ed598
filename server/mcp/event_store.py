"""An in-memory, bounded event store for streamable HTTP resumability.

With it the server sends a priming event and a `retry` hint on each SSE stream, and a client whose
connection drops reconnects with `Last-Event-ID` and gets the messages it missed on that stream
(instead of losing a tool result mid-call). Memory is bounded: the oldest events are forgotten
first (`max_events` in all); a client asking to resume from a forgotten event gets nothing replayed.
"""
from __future__ import annotations

import itertools
import threading
from collections import OrderedDict

from mcp.server.streamable_http import EventCallback, EventMessage, EventStore


class MemoryEventStore(EventStore):
    def __init__(self, max_events: int = 10_000):
        self.max_events = max_events
        self._events: OrderedDict[str, tuple[str, object]] = OrderedDict()  # event id -> (stream id, message)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    async def store_event(self, stream_id, message):
        with self._lock:
            event_id = f"{next(self._counter)}"
            self._events[event_id] = (stream_id, message)
            while len(self._events) > self.max_events:
                self._events.popitem(last=False)
            return event_id

    async def replay_events_after(self, last_event_id, send_callback: EventCallback):
        with self._lock:
            found = self._events.get(last_event_id)
            if found is None:
                return None
            stream_id = found[0]
            after = False
            todo = []
            for eid, (sid, msg) in self._events.items():
                if eid == last_event_id:
                    after = True
                    continue
                if after and sid == stream_id and msg is not None:
                    todo.append(EventMessage(msg, eid))
        for ev in todo:
            await send_callback(ev)
        return stream_id

    @property
    def size(self) -> int:  # not __len__: the SDK tests the store for truth ("if self._event_store")
        return len(self._events)
