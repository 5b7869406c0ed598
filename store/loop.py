"""Queries for the remediation half of the loop: gaps (read), assignments, practice sessions,
certifications and gates.

Rows come back as plain dicts with their JSON columns decoded (`call_ids`, `scenario_ids`,
`artifact_versions`, `turns`, `state`, `verdicts`, `details`, `breakdown`). Writes go through
`Store.transaction()`; the callers in tools/ add the loop event in the same transaction.
"""
from __future__ import annotations

import json
from typing import Any

from .db import Store, StoreError, dumps
from .reps import get_rep, resolve_rep

JSON_COLUMNS = ("call_ids", "scenario_ids", "artifact_versions", "turns", "state", "verdicts", "details", "breakdown")
ACTIVE_GATE = ("blocked", "shadow")
ACTIVE_ASSIGNMENT = ("assigned", "started")


def _decode(row: dict | None) -> dict | None:
    if row is None:
        return None
    for col in JSON_COLUMNS:
        if col in row and isinstance(row[col], str):
            try:
                row[col] = json.loads(row[col])
            except ValueError:
                pass
    return row


def _decode_all(rows: list[dict]) -> list[dict]:
    return [_decode(r) for r in rows]  # type: ignore[misc]


def _select(store: Store, table: str, order: str, **equal: Any) -> list[dict]:
    """Rows of `table` whose columns equal the given values (None or '' = no filter), in `order`."""
    given = {k: v for k, v in equal.items() if v}
    where = " and ".join(f"{k} = ?" for k in given)
    sql = f"select * from {table}" + (f" where {where}" if where else "") + f" order by {order}"
    return store.query(sql, list(given.values()))


# --------------------------------------------------------------------------- reps


# `find_rep` (None when unknown) and `require_rep` (StoreError naming the known reps) are the
# rep lookups of store/reps.py: by id, slug, name or alias, case- and space-insensitive.
find_rep = resolve_rep
require_rep = get_rep


# --------------------------------------------------------------------------- events


def last_event_id(store: Store, type_: str, subject: str) -> int | None:
    """The id of the latest event of `type_` about `subject` (e.g. 'session:ps-1'): the cause to
    give the next event of the chain."""
    row = store.one("select id from events where type = ? and subject = ? order by id desc limit 1", (type_, subject))
    return row["id"] if row else None


# --------------------------------------------------------------------------- gaps and calls


def get_gap(store: Store, gap_id: int) -> dict | None:
    return _decode(store.one("select * from gaps where id = ?", (int(gap_id),)))


def require_gap(store: Store, gap_id: int) -> dict:
    try:
        gid = int(gap_id)
    except (TypeError, ValueError):
        raise StoreError(f"gap id must be a number, got {gap_id!r}") from None
    row = get_gap(store, gid)
    if row is None:
        raise StoreError(f"unknown gap {gid}: list gaps with `coachloop attribute --json`")
    return row


def get_calls(store: Store, call_ids: list[int]) -> list[dict]:
    """Calls by id, in the order given; each with `turns` decoded. Unknown ids are skipped."""
    ids = [int(cid) for cid in call_ids]
    if not ids:
        return []
    by_id = {r["id"]: r for r in store.query(f"select * from calls where id in ({', '.join('?' * len(ids))})", ids)}
    out = []
    for cid in ids:
        row = by_id.get(cid)
        if row:
            row = dict(row)  # an id given twice gets its own copy
            try:
                row["turns"] = json.loads(row.get("turns") or "[]")
            except ValueError:
                row["turns"] = []
            out.append(row)
    return out


def call_verdict(store: Store, call_id: int, line_id: str) -> dict | None:
    return store.one("select * from verdicts where call_id = ? and line_id = ?", (int(call_id), line_id))


def failed_calls(store: Store, rep_id: str, line_id: str, limit: int = 5) -> list[int]:
    """The rep's latest live calls where `line_id` failed, newest first."""
    rows = store.query(
        "select c.id from calls c join verdicts v on v.call_id = c.id "
        "where c.rep_id = ? and v.line_id = ? and v.verdict = 'fail' and coalesce(c.live, 1) = 1 "
        "order by coalesce(c.occurred_at, c.created_at) desc, c.id desc limit ?",
        (rep_id, line_id, limit),
    )
    return [r["id"] for r in rows]


# --------------------------------------------------------------------------- assignments


def insert_assignment(store: Store, row: dict) -> int:
    row = dict(row)
    for col in ("scenario_ids", "artifact_versions"):
        if not isinstance(row.get(col), str):
            row[col] = dumps(row.get(col) or ([] if col == "scenario_ids" else {}))
    with store.transaction() as db:
        db["assignments"].insert(row)
        return db.execute("select last_insert_rowid()").fetchone()[0]


def get_assignment(store: Store, assignment_id: int) -> dict | None:
    return _decode(store.one("select * from assignments where id = ?", (int(assignment_id),)))


def active_assignment_for_gap(store: Store, gap_id: int) -> dict | None:
    return _decode(
        store.one(
            "select * from assignments where gap_id = ? and status in ('assigned', 'started') order by id desc limit 1",
            (int(gap_id),),
        )
    )


def list_assignments(store: Store, rep_id: str | None = None, status: str | None = None) -> list[dict]:
    return _decode_all(_select(store, "assignments", "id", rep_id=rep_id, status=status))


def update_assignment(store: Store, assignment_id: int, **fields: Any) -> None:
    for col in ("scenario_ids", "artifact_versions"):
        if col in fields and not isinstance(fields[col], str):
            fields[col] = dumps(fields[col])
    with store.transaction() as db:
        db["assignments"].update(int(assignment_id), fields)


# --------------------------------------------------------------------------- practice sessions


def insert_session(store: Store, row: dict) -> None:
    row = dict(row)
    for col in ("turns", "state", "verdicts"):
        if col in row and not isinstance(row[col], str) and row[col] is not None:
            row[col] = dumps(row[col])
    with store.transaction() as db:
        db["practice_sessions"].insert(row)


def get_session(store: Store, session_id: str) -> dict | None:
    return _decode(store.one("select * from practice_sessions where id = ?", (session_id,)))


def update_session(store: Store, session_id: str, **fields: Any) -> None:
    for col in ("turns", "state", "verdicts"):
        if col in fields and not isinstance(fields[col], str) and fields[col] is not None:
            fields[col] = dumps(fields[col])
    with store.transaction() as db:
        db["practice_sessions"].update(session_id, fields)


def list_sessions(store: Store, rep_id: str | None = None, status: str | None = None) -> list[dict]:
    return _decode_all(_select(store, "practice_sessions", "started_at, id", rep_id=rep_id, status=status))


# --------------------------------------------------------------------------- certifications


def certification_for_session(store: Store, session_id: str) -> dict | None:
    return _decode(store.one("select * from certifications where session_id = ? order by id limit 1", (session_id,)))


def certification_attempts(store: Store, rep_id: str, certification_id: str) -> list[dict]:
    """Attempts at a certification since the rep last passed it (oldest first)."""
    last_pass = store.one(
        "select max(id) as id from certifications where rep_id = ? and certification_id = ? and status = 'passed'",
        (rep_id, certification_id),
    )
    since = (last_pass or {}).get("id") or 0
    return _decode_all(
        store.query(
            "select * from certifications where rep_id = ? and certification_id = ? and id > ? order by id",
            (rep_id, certification_id, since),
        )
    )


def list_certifications(store: Store, rep_id: str | None = None) -> list[dict]:
    return _decode_all(_select(store, "certifications", "id", rep_id=rep_id))


# --------------------------------------------------------------------------- gates


def insert_gate(store: Store, row: dict) -> int:
    with store.transaction() as db:
        db["gates"].insert(row)
        return db.execute("select last_insert_rowid()").fetchone()[0]


def active_gates(store: Store, rep_id: str, activity: str | None = None, certification_id: str | None = None) -> list[dict]:
    """The rep's open (blocked or shadow) gates, oldest first."""
    sql = "select * from gates where rep_id = ? and status in ('blocked', 'shadow')"
    params: list[Any] = [rep_id]
    if activity:
        sql += " and activity = ?"
        params.append(activity)
    if certification_id:
        sql += " and certification_id = ?"
        params.append(certification_id)
    return store.query(sql + " order by id", params)


def list_gates(store: Store, rep_id: str | None = None, status: str | None = None) -> list[dict]:
    return _select(store, "gates", "id", rep_id=rep_id, status=status)


def update_gate(store: Store, gate_id: int, **fields: Any) -> None:
    with store.transaction() as db:
        db["gates"].update(int(gate_id), fields)


def require(row: dict | None, what: str) -> dict:
    if row is None:
        raise StoreError(f"unknown {what}")
    return row
