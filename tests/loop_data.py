"""Helpers for the loop tests: reps, deals, calls and verdict rows written straight into a store."""
from __future__ import annotations

import random
from pathlib import Path

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
    store.db.execute(
        "insert or replace into deals (id, name, rep_id, outcome, stage, segment) values (?, ?, ?, ?, ?, ?)",
        (deal_id, deal_id, rep_id, outcome, stage, segment),
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
    with store.transaction() as db:  # plain SQL: sqlite-utils' per-row introspection is slow
        db.execute(f"insert into calls ({', '.join(row)}) values ({', '.join('?' for _ in row)})", list(row.values()))
        cid = call_id if call_id is not None else db.execute("select last_insert_rowid()").fetchone()[0]
        db.conn.executemany(
            "insert into verdicts (call_id, line_id, verdict, engine_verdict, quote) values (?, ?, ?, ?, ?)",
            [(cid, line, v, v, f"quote {cid} {line}" if v == "fail" else None) for line, v in verdicts.items()],
        )
    if event:
        store.event("call.scored", rep_id=rep_id, subject=f"call:{cid}", data={"call_id": cid})
    return cid


def all_pass(**overrides):
    v = {ln: "pass" for ln in LINES}
    v["pricing_deflection_handled"] = "na"
    v.update(overrides)
    return v


def light_coach(tmp_path):
    """A Coach on a playbook holding only the starter's playbook.yaml (the attribution policy):
    loading the whole starter costs more than these tests themselves."""
    from playbook.starter import write_starter
    from tools.context import Coach

    full = tmp_path / "starter"
    write_starter(full)
    pb = tmp_path / "playbook"
    pb.mkdir()
    (pb / "playbook.yaml").write_text((full / "playbook.yaml").read_text())
    return Coach(pb, tmp_path / "coachloop.db")


def trust_budget_line(playbook_dir: Path) -> None:
    """Labelled rubric tests for budget_confirmed (two passes, two fails, from the sample calls), so the
    certification's trust check can measure agreement and the gate blocks instead of shadowing."""
    import json

    from loopkit import ensure_discovery
    from server.demo_data import DEMO_DATA
    from tools.transcripts import read_path

    ensure_discovery(playbook_dir)
    tests = playbook_dir / "scorecards" / "tests"
    tests.mkdir(parents=True, exist_ok=True)
    for name, verdict in (("01-priya-harbor-plumbing.txt", "pass"), ("03-priya-brightwater-pest.txt", "fail"),
                          ("06-jordan-pinecrest-landscaping.txt", "pass"), ("05-priya-halden-home.txt", "fail")):
        tr = read_path(DEMO_DATA / name)
        rep = next(s for s in tr.speakers if s in ("Priya Raman", "Jordan Ellis"))
        turns = [{"speaker": t.speaker, "text": t.text} for t in tr.turns]
        turn = None
        if verdict == "pass":
            turn = next(i for i, t in enumerate(turns) if t["speaker"] == rep and "budget" in t["text"].lower())
        (tests / f"e2e-{Path(name).stem}.json").write_text(json.dumps({
            "id": f"e2e-{Path(name).stem}", "scorecard": "discovery", "rep": rep, "turns": turns,
            "labels": {"budget_confirmed": {"verdict": verdict, "turn": turn, "note": "e2e sample"}},
        }))
