"""The loop's working context: the store and the live playbook, passed to every capability."""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

from playbook.loader import Playbook, artifact_from_record, load_playbook, parse_artifact_text
from store.db import Store, StoreError

log = logging.getLogger("coachloop")

PLAYBOOK_ENV = "COACHLOOP_PLAYBOOK"


class Coach:
    """Holds the store and the last good playbook snapshot. `reload()` re-reads the folder,
    keeping the last good version of any artifact whose file is broken."""

    def __init__(self, playbook_dir: str | Path, store: Store | str | Path = ":memory:"):
        self.playbook_dir = Path(playbook_dir).resolve()
        self.store = store if isinstance(store, Store) else open_store(store)
        self._lock = threading.RLock()
        self._playbook: Playbook = load_playbook(self.playbook_dir)
        if self._playbook.problems:
            self._playbook = _serve_last_good(self._playbook, self.store)
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

    def __enter__(self) -> "Coach":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve_last_good(pb: Playbook, store: Store) -> Playbook:
    """A fresh process (a CLI command, a restarted server) has no earlier snapshot in memory, so a file
    that is broken on disk would simply vanish (and everything referring to it with it). The store
    keeps the text of every version that was live (`artifact_versions` + the live pointer): seed the
    load with those for the broken files, so the last good version keeps serving, marked stale."""
    try:
        from store import versions as vstore

        pointer = vstore.live_pointer(store)
    except Exception:  # an old or foreign database: nothing to fall back on
        return pb
    broken = {p.file for p in pb.problems}
    seed = Playbook(root=pb.root, policy=pb.policy, policy_version=pb.policy_version,
                    artifacts={k: dict(v) for k, v in pb.artifacts.items()})
    found = False
    for key, version in sorted(pointer.items()):
        kind, _, aid = key.partition("/")
        if kind != "policy" and aid in pb.artifacts.get(kind, {}):
            continue
        row = store.one(
            "select path, text from artifact_versions where kind = ? and artifact_id = ? and version = ?",
            (kind, aid, version),
        )
        if not row or row["path"] not in broken:
            continue  # a file deleted on purpose stays deleted
        if kind == "policy":
            model, _probs = parse_artifact_text(kind, row["path"], row["text"])
            if model is None:
                continue
            seed.policy, seed.policy_version = model, version
        else:
            art = artifact_from_record(kind, aid, row["path"], version, row["text"])
            if art is None:
                continue
            seed.artifacts.setdefault(kind, {})[aid] = art
        found = True
    if not found:
        return pb
    new = load_playbook(pb.root, previous=seed)
    for key in sorted(new.stale):
        log.warning("playbook: %s is broken on disk; serving its last good version", key)
    return new


def open_store(path: str | Path) -> Store:
    """Open (or create) the database at `path`; a path that cannot hold a database (a folder, a file
    that is not SQLite, a place that cannot be written) is a `StoreError` naming it, not a crash."""
    try:
        return Store(path)
    except (sqlite3.Error, OSError) as exc:
        where = str(path)
        if Path(where).is_dir():
            why = "that is a folder, not a database file"
        elif isinstance(exc, (FileExistsError, NotADirectoryError)):
            why = f"part of that path is a file, not a folder ({exc.filename})"
        elif isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
            why = "the file exists but is not a coachloop (SQLite) database"
        else:
            why = str(exc)
        raise StoreError(
            f"cannot open the database {where}: {why}; pass --db (or set COACHLOOP_DB to) a writable .db file path"
        ) from None


def default_playbook_dir() -> str:
    return os.environ.get(PLAYBOOK_ENV) or str(Path.cwd() / "playbook")
