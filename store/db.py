"""The SQLite store: one file, WAL, a schema version and forward-only migrations.

Everything the loop remembers lives here. Domain modules beside this one (`calls`, `reps`, ...)
hold the queries for their tables; this module owns the connection, the schema, transactions and
the append-only event log.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils

from .schema import MIGRATIONS

DEFAULT_DB_ENV = "COACHLOOP_DB"


class StoreError(Exception):
    """A store operation that cannot be done (unknown rep, unknown call, ...)."""


def now_iso() -> str:
    """Now as an ISO 8601 UTC string with milliseconds: the one format every timestamp column uses
    (order-preserving as text, and fine-grained enough that a call scored right after a practice
    sorts after it)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def parse_utc(value: Any) -> datetime | None:
    """A stored time (ISO 8601, 'Z' or offset, or a bare date) -> an aware UTC-or-offset datetime;
    naive values are UTC; None when empty or not a time."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value).strip().replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        try:
            dt = datetime.fromisoformat(text[:10])
        except ValueError:
            return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def iso_ms(dt: datetime) -> str:
    """ISO 8601 UTC with milliseconds: '2026-11-26T01:23:45.678+00:00'."""
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def iso_ms_z(dt: datetime | None = None) -> str:
    """`dt` (default now) as the `updated_at` triggers write it (schema.TS_SQL): UTC, milliseconds,
    'Z' (`2026-01-31T12:00:00.123Z`): the export cursor's spelling."""
    dt = (dt or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


class Store:
    """A coachloop database. Thread-safe for one process: writes are serialised by a lock."""

    def __init__(self, path: str | Path = ":memory:"):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.row_factory = sqlite3.Row
        self.db = sqlite_utils.Database(conn)
        self.lock = threading.RLock()
        self._depth = 0
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.migrate()

    # ------------------------------------------------------------------ schema
    @property
    def schema_version(self) -> int:
        if "meta" not in self.db.table_names():
            return 0
        row = self.db.execute("select value from meta where key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def migrate(self) -> None:
        with self.lock:
            current = self.schema_version
            for version, step in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                with self.transaction():
                    step(self.db)
                    self.db["meta"].upsert({"key": "schema_version", "value": str(version)}, pk="key")

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One atomic unit of work. Nested calls join the outer transaction."""
        with self.lock:
            if self._depth == 0:
                self.db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self.db
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self.db.execute("ROLLBACK")
                raise
            else:
                self._depth -= 1
                if self._depth == 0:
                    self.db.execute("COMMIT")

    def query(self, sql: str, params: Any = ()) -> list[dict]:
        with self.lock:
            return [dict(r) for r in self.db.execute(sql, params).fetchall()]

    def one(self, sql: str, params: Any = ()) -> dict | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    # ------------------------------------------------------------------ events
    def event(
        self,
        type: str,
        *,
        rep_id: str | None = None,
        subject: str | None = None,
        cause: int | None = None,
        data: dict | None = None,
        at: str | None = None,
    ) -> int:
        """Append one loop transition to the event log; returns its id. Call inside a transaction."""
        with self.transaction() as db:  # plain SQL: the loop appends one per call scored (sqlite-utils' insert costs ~1 ms)
            cur = db.conn.execute(
                "insert into events (at, type, rep_id, subject, cause_id, data) values (?, ?, ?, ?, ?, ?)",
                [at or now_iso(), type, rep_id, subject, cause, dumps(data or {})],
            )
            return cur.lastrowid

    def events(self, *, rep_id: str | None = None, since_id: int = 0, limit: int = 1000) -> list[dict]:
        sql = "select * from events where id > ?"
        params: list[Any] = [since_id]
        if rep_id:
            sql += " and rep_id = ?"
            params.append(rep_id)
        sql += " order by id limit ?"
        params.append(limit)
        rows = self.query(sql, params)
        for r in rows:
            r["data"] = json.loads(r["data"] or "{}")
        return rows

    def close(self) -> None:
        with self.lock:
            self.db.conn.close()


def default_db_path() -> str:
    return os.environ.get(DEFAULT_DB_ENV) or str(Path.cwd() / "coachloop.db")
