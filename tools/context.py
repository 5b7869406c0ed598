"""The loop's working context: the store and the live playbook, passed to every capability."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from playbook.loader import Playbook, load_playbook
from store.db import Store

log = logging.getLogger("coachloop")

PLAYBOOK_ENV = "COACHLOOP_PLAYBOOK"


class Coach:
    """Holds the store and the last good playbook snapshot. `reload()` re-reads the folder,
    keeping the last good version of any artifact whose file is broken."""

    def __init__(self, playbook_dir: str | Path, store: Store | str | Path = ":memory:"):
        self.playbook_dir = Path(playbook_dir).resolve()
        self.store = store if isinstance(store, Store) else Store(store)
        self._lock = threading.RLock()
        self._playbook: Playbook = load_playbook(self.playbook_dir)
        self.listeners: list = []  # callables(old, new) run after each reload
        for p in self._playbook.problems:
            log.warning("playbook: %s", p)

    @property
    def playbook(self) -> Playbook:
        return self._playbook

    def reload(self) -> Playbook:
        with self._lock:
            old = self._playbook
            new = load_playbook(self.playbook_dir, previous=old)
            self._playbook = new
        for p in new.problems:
            log.warning("playbook: %s", p)
        for fn in list(self.listeners):
            try:
                fn(old, new)
            except Exception:  # a listener must never take the loop down
                log.exception("playbook listener failed")
        return new

    def close(self) -> None:
        self.store.close()


def default_playbook_dir() -> str:
    return os.environ.get(PLAYBOOK_ENV) or str(Path.cwd() / "playbook")
