"""Deals: amount, stage history and outcome. Queries for the `deals` and `deal_stages` tables."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .db import Store, StoreError, now_iso
from .reps import get_rep

OUTCOMES = ("open", "won", "lost")


def parse_when(value: Any, field: str = "at") -> str | None:
    """An ISO 8601 date or time -> an ISO 8601 UTC string (dates become midnight UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise StoreError(f"{field}: '{value}' is not an ISO 8601 date or time (e.g. 2026-03-14 or 2026-03-14T15:30:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    dt = dt.astimezone(timezone.utc)
    # whole seconds stay as given ('...T15:00:00+00:00'); finer times keep milliseconds, like now_iso()
    return dt.isoformat(timespec="milliseconds" if dt.microsecond else "seconds")


def record_deal(
    store: Store,
    id: str,
    *,
    name: str | None = None,
    rep: str | None = None,
    amount: float | None = None,
    stage: str | None = None,
    outcome: str | None = None,
    at: str | None = None,
    segment: str | None = None,
) -> dict:
    """Create or update a deal. Fields not given keep their values. A new stage is appended to the
    deal's stage history (at `at`, default now); outcome `won`/`lost` sets `closed_at`, `open`
    clears it. `rep` is a rep id, name or alias already in the store."""
    deal_id = str(id or "").strip()
    if not deal_id:
        raise StoreError("deal id is empty")
    if outcome is not None:
        outcome = str(outcome).strip().lower()
        if outcome not in OUTCOMES:
            raise StoreError(f"deal '{deal_id}': outcome '{outcome}' is not one of {', '.join(OUTCOMES)}")
    if amount is not None and amount != "":
        try:
            amount = float(amount)
        except (TypeError, ValueError):
            raise StoreError(f"deal '{deal_id}': amount '{amount}' is not a number") from None
        if amount < 0:
            raise StoreError(f"deal '{deal_id}': amount {amount} is negative")
    else:
        amount = None
    when = parse_when(at) or now_iso()
    with store.transaction() as db:
        rep_id = get_rep(store, rep)["id"] if rep else None
        existing = store.one("select * from deals where id = ?", [deal_id])
        stage = str(stage).strip() if stage else None
        if existing is None:
            row = {
                "id": deal_id,
                "name": name or deal_id,
                "rep_id": rep_id,
                "segment": segment,
                "amount": amount,
                "stage": stage,
                "outcome": outcome or "open",
                "created_at": when,
                "closed_at": when if outcome in ("won", "lost") else None,
                "updated_at": now_iso(),
            }
            db.execute(f"insert into deals ({', '.join(row)}) values ({', '.join('?' for _ in row)})", list(row.values()))
            if stage:
                db.execute("insert into deal_stages (deal_id, stage, at) values (?, ?, ?)", [deal_id, stage, when])
        else:
            changes: dict[str, Any] = {}
            for key, val in (("name", name), ("rep_id", rep_id), ("segment", segment), ("amount", amount)):
                if val is not None:
                    changes[key] = val
            if stage and stage != existing["stage"]:
                changes["stage"] = stage
                db.execute("insert into deal_stages (deal_id, stage, at) values (?, ?, ?)", [deal_id, stage, when])
            if outcome and outcome != existing["outcome"]:
                changes["outcome"] = outcome
                changes["closed_at"] = when if outcome in ("won", "lost") else None
            if changes:
                changes["updated_at"] = now_iso()
                sets = ", ".join(f"{k} = ?" for k in changes)
                db.execute(f"update deals set {sets} where id = ?", [*changes.values(), deal_id])
    return get_deal(store, deal_id)


def find_deal(store: Store, id: str) -> dict | None:
    row = store.one("select * from deals where id = ?", [id])
    if row is None:
        return None
    row["stages"] = store.query("select stage, at from deal_stages where deal_id = ? order by at, id", [id])
    return row


def get_deal(store: Store, id: str) -> dict:
    """The deal with its stage history (`stages`: [{stage, at}]); StoreError when unknown."""
    deal = find_deal(store, id)
    if deal is None:
        raise StoreError(f"unknown deal '{id}'; record it with `coachloop deal record {id} --rep NAME --stage STAGE`")
    return deal


def list_deals(store: Store, *, rep_id: str | None = None, outcome: str | None = None) -> list[dict]:
    sql, params = "select * from deals where 1=1", []
    if rep_id:
        sql += " and rep_id = ?"
        params.append(rep_id)
    if outcome:
        sql += " and outcome = ?"
        params.append(outcome)
    return store.query(sql + " order by created_at, id", params)
