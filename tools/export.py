"""Export every table and the weekly metric series for a warehouse, incrementally.

    export(coach_or_store, out_dir, fmt="csv"|"jsonl"|"parquet", since=None, playbook=None) -> manifest

Each table goes to `<out_dir>/<table>.<ext>` with the rows whose `updated_at` is at or after the
cursor `since` (all rows without one); `metric_series.<ext>` holds the weekly series of every
metric for everyone (always in full: replace it on load). `manifest.json` records the format, the
cursor used, the new cursor (pass it as --since next time), each file's row count, primary key and
column types. The schema is documented in docs/DATA.md.

Cursor: every table's `updated_at` is kept by triggers as ISO 8601 UTC with milliseconds
(`2026-03-14T15:30:00.123Z`), in one format, so it sorts as text. The export reads every table in
one read transaction (a consistent snapshot) on a read-only connection of its own, so scoring and
the loop keep writing while it runs; the new cursor is the largest `updated_at` it saw.
Loads are inclusive (`>=`), so a row can come twice across exports: load by upsert on the primary
key. SQLite has one writer at a time, so no row can commit later with an older `updated_at`.
"""
from __future__ import annotations

import csv
import json
import re
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from store.db import Store, iso_ms_z

FORMATS = ("csv", "jsonl", "parquet")
SKIP_TABLES = {"meta", "call_daily", "verdict_daily", "verdict_daily_all"}
CURSOR_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$")
SERIES_COLUMNS = [("metric", "TEXT"), ("scope", "TEXT"), ("week", "TEXT"), ("key", "TEXT"), ("value", "REAL"), ("data", "TEXT")]
BATCH = 5000


class ExportError(ValueError):
    """An export that cannot be done (bad format or cursor, pyarrow missing)."""


def _store(x) -> Store:
    return x.store if hasattr(x, "store") else x


def normalise_cursor(since: str | None) -> str | None:
    """A cursor from a manifest (`2026-03-14T15:30:00.123Z`) or any ISO date/time -> the
    `updated_at` format (UTC, milliseconds, Z)."""
    if since is None or str(since).strip() == "":
        return None
    text = str(since).strip()
    if not CURSOR_RE.match(text):
        raise ExportError(f"--since '{since}' is not a cursor: use the 'cursor' from the last export's manifest.json "
                          "or an ISO date/time such as 2026-03-14 or 2026-03-14T15:30:00Z")
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return iso_ms_z(dt)


def table_schema(conn, table: str) -> dict:
    """Columns (name, declared type) and primary key of a table, read on `conn`."""
    info = list(conn.execute(f"pragma table_info([{table}])"))  # cid, name, type, notnull, default, pk
    cols = [{"name": r[1], "type": (r[2] or "TEXT").upper()} for r in info]
    pks = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
    return {"columns": cols, "primary_key": pks or ["rowid"]}


def export_tables(conn) -> list[str]:
    """The tables an export writes, read on `conn`."""
    names = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")]
    return [t for t in names if t not in SKIP_TABLES and not t.startswith("sqlite_") and not t.endswith("_fts")]


class _Writer:
    def __init__(self, path: Path, fmt: str, columns: list[tuple[str, str]]):
        self.path, self.fmt, self.columns = path, fmt, columns
        self.rows = 0
        self._buf: list[tuple] = []
        if fmt == "csv":
            self._fh = path.open("w", encoding="utf-8", newline="")
            self._csv = csv.writer(self._fh)
            self._csv.writerow([c for c, _ in columns])
        elif fmt == "jsonl":
            self._fh = path.open("w", encoding="utf-8")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            self._pa = pa
            types = {"INTEGER": pa.int64(), "REAL": pa.float64(), "FLOAT": pa.float64(), "TEXT": pa.string()}
            self._schema = pa.schema([(c, types.get(t, pa.string())) for c, t in columns])
            self._pq = pq.ParquetWriter(str(path), self._schema)

    def write(self, row: tuple) -> None:
        self.rows += 1
        if self.fmt == "csv":
            self._csv.writerow(["" if v is None else v for v in row])
        elif self.fmt == "jsonl":
            self._fh.write(json.dumps(dict(zip((c for c, _ in self.columns), row)), ensure_ascii=False, default=str) + "\n")
        else:
            self._buf.append(row)
            if len(self._buf) >= BATCH:
                self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        pa = self._pa
        arrays = []
        for i, f in enumerate(self._schema):
            vals = [r[i] for r in self._buf]
            if pa.types.is_string(f.type):
                vals = [None if v is None else str(v) for v in vals]
            elif pa.types.is_floating(f.type):
                vals = [None if v is None or v == "" else float(v) for v in vals]
            elif pa.types.is_integer(f.type):
                vals = [None if v is None or v == "" else int(v) for v in vals]
            arrays.append(pa.array(vals, type=f.type))
        self._pq.write_table(pa.Table.from_arrays(arrays, schema=self._schema))
        self._buf = []

    def close(self) -> None:
        if self.fmt == "parquet":
            self._flush()
            self._pq.close()
        else:
            self._fh.close()


def _check_format(fmt: str) -> str:
    fmt = (fmt or "csv").lower()
    if fmt not in FORMATS:
        raise ExportError(f"--format '{fmt}' is not one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise ExportError("parquet needs pyarrow, which is not installed: pip install 'coachloop[parquet]' "
                              "(or use --format csv or jsonl)") from None
    return fmt


def export(coach_or_store, out_dir: str | Path, fmt: str = "csv", since: str | None = None, *, metrics: bool = True) -> dict:
    """Write the tables changed since the cursor and the weekly metric series; return the manifest."""
    fmt = _check_format(fmt)
    cursor = normalise_cursor(since)
    store = _store(coach_or_store)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file: --to takes the folder to write the export into")
    out.mkdir(parents=True, exist_ok=True)
    ext = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}[fmt]
    started = datetime.now(timezone.utc)
    tables: dict[str, Any] = {}
    new_cursor = cursor
    with _read_snapshot(store) as conn:  # one snapshot for every table
        for table in export_tables(conn):
            schema = table_schema(conn, table)
            cols = [(c["name"], c["type"]) for c in schema["columns"]]
            has_cursor = any(c == "updated_at" for c, _ in cols)
            sql = f"select {', '.join(f'[{c}]' for c, _ in cols)} from [{table}]"
            params: list = []
            if cursor and has_cursor:
                sql += " where updated_at >= ?"
                params.append(cursor)
            order = ", ".join(f"[{k}]" for k in schema["primary_key"]) or "rowid"
            sql += f" order by {order}"
            path = out / f"{table}.{ext}"
            w = _Writer(path, fmt, cols)
            top = None
            ui = next((i for i, (c, _) in enumerate(cols) if c == "updated_at"), None)
            try:
                for row in _iter(conn, sql, params):
                    w.write(tuple(row))
                    if ui is not None and row[ui] and (top is None or row[ui] > top):
                        top = row[ui]
            finally:
                w.close()
            if top and (new_cursor is None or top > new_cursor):
                new_cursor = top
            tables[table] = {"file": path.name, "rows": w.rows, "incremental": has_cursor, **schema}
    if metrics:
        from tools.metrics import compute_metrics, series_rows

        res = compute_metrics(coach_or_store, weekly=True)
        path = out / f"metric_series.{ext}"
        w = _Writer(path, fmt, SERIES_COLUMNS)
        try:
            for r in series_rows(res):
                w.write(tuple(r[c] for c, _ in SERIES_COLUMNS))
        finally:
            w.close()
        tables["metric_series"] = {"file": path.name, "rows": w.rows, "incremental": False,
                                   "columns": [{"name": c, "type": t} for c, t in SERIES_COLUMNS],
                                   "primary_key": ["metric", "scope", "week", "key"]}
    manifest = {
        "format": fmt,
        "schema_version": store.schema_version,
        "since": cursor,
        "cursor": new_cursor,
        "exported_at": iso_ms_z(started),
        "load": "upsert each table on its primary_key; replace metric_series; pass 'cursor' as --since next time",
        "tables": tables,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return manifest


@contextmanager
def _read_snapshot(store: Store):
    """A connection holding one read transaction: every table exported from the same snapshot.
    On a database file it is a connection of its own (read-only; in WAL mode writers go on while
    it reads, so an export never holds up scoring); an in-memory store is read on its own
    connection under its lock."""
    if store.path == ":memory:":
        with store.lock:
            conn = store.db.conn
            own = not conn.in_transaction
            if own:
                conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if own:
                    conn.execute("COMMIT")
        return
    conn = sqlite3.connect(Path(store.path).expanduser().resolve().as_uri() + "?mode=ro", uri=True,
                           isolation_level=None, timeout=30, check_same_thread=False)
    try:
        conn.execute("BEGIN")
        yield conn
        conn.execute("COMMIT")
    finally:
        conn.close()


def _iter(conn, sql: str, params: list) -> Iterator[tuple]:
    cur = conn.execute(sql, params)
    while True:
        rows = cur.fetchmany(BATCH)
        if not rows:
            return
        yield from rows
