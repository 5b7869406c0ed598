"""Calls and their per-line verdicts. Queries for the `calls` and `verdicts` tables.

A call is stored once: `source_hash` (the transcript's normalised content hash) is unique, and
`insert_call` returns the existing id for a call seen before. A verdict row keeps the engine's
verdict (`engine_verdict`) beside the effective one (`verdict`), which is the human's once a
verdict is overridden; re-scoring updates the engine's verdict and leaves an override in force.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from .db import Store, StoreError, dumps, iso_ms_z, now_iso

CALL_COLUMNS = (
    "source_hash", "source_name", "format", "rep_id", "rep_speaker", "call_type", "scorecard_id",
    "scorecard_version", "segment", "deal_id", "stage", "occurred_at", "turns", "engine",
    "engine_version", "score", "live", "created_at", "scored_at",
)
VERDICT_COLUMNS = (
    "call_id", "line_id", "verdict", "engine_verdict", "turn", "quote", "reason", "engine",
    "engine_version", "scorecard_version", "overridden_by", "override_reason", "overridden_at",
)
VERDICTS = ("pass", "fail", "na")

# inserts also write `updated_at` (see store.db.iso_ms_z)
_CALL_INSERT_COLUMNS = (*CALL_COLUMNS, "updated_at")
_VERDICT_INSERT_COLUMNS = (*VERDICT_COLUMNS, "updated_at")
_INSERT_CALL = f"insert into calls ({', '.join(_CALL_INSERT_COLUMNS)}) values ({', '.join('?' for _ in _CALL_INSERT_COLUMNS)})"
_INSERT_VERDICT = f"insert into verdicts ({', '.join(_VERDICT_INSERT_COLUMNS)}) values ({', '.join('?' for _ in _VERDICT_INSERT_COLUMNS)})"


def find_by_hash(store: Store, source_hash: str) -> int | None:
    row = store.one("select id from calls where source_hash = ?", [source_hash])
    return row["id"] if row else None


def insert_call(store: Store, call: dict, verdicts: Iterable[dict]) -> tuple[int, bool]:
    """Store a call and its verdicts atomically. Returns (call id, duplicate): when a call with the
    same `source_hash` exists, nothing is written and its id comes back with duplicate=True.

    `call` holds the CALL_COLUMNS (`turns` a list, serialised here); each verdict holds line_id,
    verdict, turn, quote, reason (engine fields default to the call's)."""
    if not call.get("source_hash"):
        raise StoreError("call has no source_hash")
    with store.transaction() as db:
        existing = find_by_hash(store, call["source_hash"])
        if existing is not None:
            return existing, True
        now = now_iso()
        row = dict(call)
        row.setdefault("created_at", now)
        row.setdefault("scored_at", now)
        row.setdefault("live", 1)
        # written here in the format the touch triggers use, so they need not UPDATE each new row
        row.setdefault("updated_at", iso_ms_z())
        if not isinstance(row.get("turns"), (str, type(None))):
            row["turns"] = dumps(row["turns"])
        cur = db.execute(_INSERT_CALL, [row.get(c) for c in _CALL_INSERT_COLUMNS])
        call_id = cur.lastrowid
        db.conn.executemany(_INSERT_VERDICT, [_verdict_values(call_id, v, row) for v in verdicts])
    return call_id, False


def _verdict_values(call_id: int, v: dict, call: dict) -> list[Any]:
    verdict = v["verdict"]
    if verdict not in VERDICTS:
        raise StoreError(f"line '{v.get('line_id')}': verdict '{verdict}' is not one of pass, fail, na")
    return [
        call_id,
        v["line_id"],
        verdict,
        v.get("engine_verdict", verdict),
        v.get("turn"),
        v.get("quote"),
        v.get("reason"),
        v.get("engine", call.get("engine")),
        v.get("engine_version", call.get("engine_version")),
        v.get("scorecard_version", call.get("scorecard_version")),
        None,
        None,
        None,
        call.get("updated_at"),
    ]




def _call_row(row: dict, with_turns: bool) -> dict:
    out = dict(row)
    if with_turns:
        out["turns"] = json.loads(out["turns"] or "[]")
    else:
        out.pop("turns", None)
    return out


def verdicts_for(store: Store, call_id: int) -> list[dict]:
    """The call's verdict rows in the order they were first stored (the scorecard's order)."""
    return store.query("select * from verdicts where call_id = ? order by rowid", [call_id])


def find_call(store: Store, call_id: int, *, with_turns: bool = True) -> dict | None:
    row = store.one("select * from calls where id = ?", [call_id])
    if row is None:
        return None
    out = _call_row(row, with_turns)
    out["verdicts"] = verdicts_for(store, call_id)
    return out


def get_call(store: Store, call_id: int | str, *, with_turns: bool = True) -> dict:
    """The call with its `verdicts` (and `turns` unless with_turns=False); StoreError when unknown."""
    cid = _call_id(call_id)
    out = find_call(store, cid, with_turns=with_turns)
    if out is None:
        last = store.one("select max(id) as m from calls")
        hint = f"call ids run from 1 to {last['m']}" if last and last["m"] else "no calls are stored yet"
        raise StoreError(f"unknown call {cid} ({hint}); list calls with `coachloop calls` or score one with `coachloop score`")
    return out


def _call_id(call_id: int | str) -> int:
    text = str(call_id).strip()
    if text.startswith("call:"):
        text = text[5:]
    try:
        return int(text)
    except ValueError:
        raise StoreError(f"call id '{call_id}' is not a number (calls are numbered: 1, 2, ...)") from None


def list_calls(
    store: Store,
    *,
    rep_id: str | None = None,
    scorecard_id: str | None = None,
    call_type: str | None = None,
    since: str | None = None,
    live: bool | None = None,
    after_id: int = 0,
    limit: int | None = None,
    with_turns: bool = False,
) -> list[dict]:
    """Calls (oldest id first) filtered by rep, scorecard, call type, time (`since`: occurred_at or,
    when unknown, created_at at or after it) and live/practice. Verdicts are not included."""
    cols = "*" if with_turns else ", ".join(["id", *[c for c in CALL_COLUMNS if c != "turns"]])
    sql, params = f"select {cols} from calls where id > ?", [after_id]
    if rep_id:
        sql += " and rep_id = ?"
        params.append(rep_id)
    if scorecard_id:
        sql += " and scorecard_id = ?"
        params.append(scorecard_id)
    if call_type:
        sql += " and call_type = ?"
        params.append(call_type)
    if since:
        sql += " and coalesce(occurred_at, created_at) >= ?"
        params.append(since)
    if live is not None:
        sql += " and live = ?"
        params.append(1 if live else 0)
    sql += " order by id"
    if limit:
        sql += " limit ?"
        params.append(int(limit))
    return [_call_row(r, with_turns) for r in store.query(sql, params)]


def update_scoring(
    store: Store,
    call_id: int,
    verdicts: list[dict],
    *,
    scorecard_version: str,
    engine: str,
    engine_version: str,
) -> list[dict]:
    """Replace the engine's verdicts of a stored call after re-scoring. An overridden line keeps
    its human verdict (only `engine_verdict` and the evidence change). Lines the scorecard no
    longer has are dropped unless overridden. Returns the change per line:
    [{line, before, after, engine_before, engine_after, overridden}] (before/after = effective)."""
    changes = []
    with store.transaction() as db:
        old = {v["line_id"]: v for v in verdicts_for(store, call_id)}
        seen = set()
        for v in verdicts:
            lid = v["line_id"]
            seen.add(lid)
            prev = old.get(lid)
            if prev is None:
                db.conn.execute(_INSERT_VERDICT, _verdict_values(call_id, {**v, "engine": engine, "engine_version": engine_version, "scorecard_version": scorecard_version}, {}))
                changes.append({"line": lid, "before": None, "after": v["verdict"], "engine_before": None, "engine_after": v["verdict"], "overridden": False})
                continue
            overridden = prev["overridden_by"] is not None or prev["overridden_at"] is not None
            effective = prev["verdict"] if overridden else v["verdict"]
            db.execute(
                "update verdicts set verdict = ?, engine_verdict = ?, turn = ?, quote = ?, reason = ?, engine = ?,"
                " engine_version = ?, scorecard_version = ? where call_id = ? and line_id = ?",
                [effective, v["verdict"], v.get("turn"), v.get("quote"), v.get("reason"), engine, engine_version,
                 scorecard_version, call_id, lid],
            )
            if prev["engine_verdict"] != v["verdict"] or prev["verdict"] != effective:
                changes.append({"line": lid, "before": prev["verdict"], "after": effective,
                                "engine_before": prev["engine_verdict"], "engine_after": v["verdict"], "overridden": overridden})
        for lid, prev in old.items():
            if lid not in seen and prev["overridden_at"] is None:
                db.execute("delete from verdicts where call_id = ? and line_id = ?", [call_id, lid])
                changes.append({"line": lid, "before": prev["verdict"], "after": None,
                                "engine_before": prev["engine_verdict"], "engine_after": None, "overridden": False})
        db.execute(
            "update calls set scorecard_version = ?, engine = ?, engine_version = ?, scored_at = ? where id = ?",
            [scorecard_version, engine, engine_version, now_iso(), call_id],
        )
    return changes


def set_score(store: Store, call_id: int, score: float | None) -> None:
    with store.transaction() as db:
        db.execute("update calls set score = ? where id = ?", [score, call_id])


def set_override(
    store: Store,
    call_id: int,
    line_id: str,
    verdict: str,
    *,
    reason: str,
    by: str,
    turn: int | None = None,
    at: str | None = None,
) -> dict:
    """Record a human verdict on one line; returns the row as it was before."""
    if verdict not in VERDICTS:
        raise StoreError(f"verdict '{verdict}' is not one of pass, fail, na")
    with store.transaction() as db:
        prev = store.one("select * from verdicts where call_id = ? and line_id = ?", [call_id, line_id])
        if prev is None:
            lines = [v["line_id"] for v in verdicts_for(store, call_id)]
            raise StoreError(f"call {call_id} has no verdict for line '{line_id}' (lines: {', '.join(lines) or 'none'})")
        sets = "verdict = ?, overridden_by = ?, override_reason = ?, overridden_at = ?"
        params: list[Any] = [verdict, by, reason, at or now_iso()]
        if turn is not None:
            sets += ", turn = ?"
            params.append(turn)
        db.execute(f"update verdicts set {sets} where call_id = ? and line_id = ?", [*params, call_id, line_id])
    return prev


def overridden_call_ids(store: Store, scorecard_id: str | None = None) -> list[int]:
    sql = ("select distinct v.call_id from verdicts v join calls c on c.id = v.call_id"
           " where v.overridden_at is not null")
    params: list[Any] = []
    if scorecard_id:
        sql += " and c.scorecard_id = ?"
        params.append(scorecard_id)
    return [r["call_id"] for r in store.query(sql + " order by v.call_id", params)]


def count_calls(store: Store) -> int:
    return store.one("select count(*) as n from calls")["n"]
