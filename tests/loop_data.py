"""Helpers for the loop tests: reps, deals, calls and verdict rows written straight into a store."""
from __future__ import annotations

import random

from store.db import now_iso

LINES = [
    "agenda_set",
    "pain_identified",
    "impact_quantified",
    "budget_confirmed",
    "decision_process",
    "decision_maker_identified",
    "timeline_established",
    "competition_explored",
    "pricing_deflection_handled",
    "next_step_booked",
]


def add_rep(store, rep_id, segment=None):
    store.db["reps"].insert({"id": rep_id, "name": rep_id.replace("-", " ").title(), "segment": segment, "created_at": now_iso()}, replace=True)


def add_deal(store, deal_id, rep_id, outcome="open", stage="discovery", segment=None):
    store.db["deals"].insert(
        {"id": deal_id, "name": deal_id, "rep_id": rep_id, "outcome": outcome, "stage": stage, "segment": segment},
        replace=True,
    )


def add_call(store, rep_id, verdicts: dict[str, str], *, call_id=None, call_type="discovery", segment=None, deal_id=None,
             stage=None, live=1, at=None, event=True):
    row = {
        "source_hash": f"h-{rep_id}-{random.random()}",
        "rep_id": rep_id,
        "call_type": call_type,
        "scorecard_id": "discovery",
        "segment": segment,
        "deal_id": deal_id,
        "stage": stage,
        "occurred_at": at,
        "live": live,
        "turns": "[]",
        "created_at": now_iso(),
    }
    if call_id is not None:
        row["id"] = call_id
    store.db["calls"].insert(row)
    cid = call_id if call_id is not None else store.db.execute("select last_insert_rowid()").fetchone()[0]
    for line, v in verdicts.items():
        store.db["verdicts"].insert({"call_id": cid, "line_id": line, "verdict": v, "engine_verdict": v,
                                     "quote": f"quote {cid} {line}" if v == "fail" else None})
    if event:
        store.event("call.scored", rep_id=rep_id, subject=f"call:{cid}", data={"call_id": cid})
    return cid


def all_pass(**overrides):
    v = {ln: "pass" for ln in LINES}
    v["pricing_deflection_handled"] = "na"
    v.update(overrides)
    return v
