"""Read views of the loop's state for resources and tool results (JSON-ready dicts).

Thin: the rows come from the store's query modules and tools/; this module only shapes them for a
model to read (short, with the sentence that matters first), and keeps every view well under
10k tokens by capping lists.
"""
from __future__ import annotations

from typing import Any

from store import calls as store_calls
from store import loop as store_loop
from store.reps import get_rep, list_reps
from tools.context import Coach

from .common import clip

RECENT_CALLS = 10


def roster(coach: Coach) -> dict:
    st = coach.store

    def per_rep(sql: str) -> dict[str, int]:  # one grouped query per count, not three queries per rep
        return {row["rep_id"]: row["n"] for row in st.query(sql)}

    calls = per_rep("select rep_id, count(*) as n from calls where live = 1 group by rep_id")
    gaps = per_rep("select rep_id, count(*) as n from gaps where status = 'open' group by rep_id")
    gates = per_rep("select rep_id, count(*) as n from gates where status in ('blocked','shadow') group by rep_id")
    out = []
    for r in list_reps(st, active=None)[:500]:
        rid = r["id"]
        out.append({"id": rid, "name": r["name"], "team": r.get("team"), "segment": r.get("segment"), "calls": calls.get(rid, 0),
                    "open_gaps": gaps.get(rid, 0), "active_gates": gates.get(rid, 0), "uri": f"coachloop://reps/{rid}"})
    return {"reps": out, "total": len(out)}


def rep_profile(coach: Coach, rep: str) -> dict:
    """A rep's state: recent scores per line, open gaps, assignments, gates, certifications."""
    st = coach.store
    try:
        r = get_rep(st, rep)
    except Exception as exc:
        raise LookupError(str(exc)) from None
    rid = r["id"]
    calls = st.query(
        "select id, call_type, scorecard_id, score, occurred_at, created_at from calls where rep_id = ? and live = 1 "
        "order by coalesce(occurred_at, created_at) desc, id desc limit ?",
        (rid, RECENT_CALLS),
    )
    per_line: dict[str, dict[str, Any]] = {}
    for c in reversed(calls):
        for v in store_calls.verdicts_for(st, c["id"]):
            key = f"{c['scorecard_id']}/{v['line_id']}"
            e = per_line.setdefault(key, {"line": v["line_id"], "scorecard": c["scorecard_id"], "recent": "", "passes": 0, "applicable": 0})
            mark = {"pass": "P", "fail": "F"}.get(v["verdict"], "-")
            e["recent"] += mark
            if v["verdict"] in ("pass", "fail"):
                e["applicable"] += 1
                e["passes"] += v["verdict"] == "pass"
    for e in per_line.values():
        e["rate"] = round(e["passes"] / e["applicable"], 3) if e["applicable"] else None
    gaps = st.query("select * from gaps where rep_id = ? and status = 'open' order by severity desc, id", (rid,))
    assigns = store_loop.list_assignments(st, rid)
    gates = store_loop.list_gates(st, rid)
    certs = store_loop.list_certifications(st, rid)
    active_gates = [g for g in gates if g["status"] in ("blocked", "shadow")]
    return {
        "rep": {k: r.get(k) for k in ("id", "name", "team", "manager", "segment", "hire_date", "quota", "email", "aliases")},
        "summary": (
            f"{r['name']}: {len(calls)} recent live call(s), {len(gaps)} open gap(s), "
            f"{sum(1 for a in assigns if a['status'] in ('assigned', 'started'))} open assignment(s), "
            f"{len(active_gates)} active gate(s)"
        ),
        "recent_calls": [
            {"id": c["id"], "call_type": c["call_type"], "scorecard": c["scorecard_id"], "score": c["score"], "at": c["occurred_at"] or c["created_at"], "uri": f"coachloop://calls/{c['id']}"}
            for c in calls
        ],
        "lines": sorted(per_line.values(), key=lambda e: (e["rate"] if e["rate"] is not None else 2, e["line"])),
        "lines_legend": "recent: oldest to newest, P pass, F fail, - not applicable",
        "open_gaps": [
            {"gap_id": g["id"], "line": g["line_id"], "scorecard": g["scorecard_id"], "statement": g["statement"], "severity": g["severity"], "opened_at": g["opened_at"]}
            for g in gaps[:20]
        ],
        "assignments": [
            {"id": a["id"], "path": a["path_id"], "scenarios": a.get("scenario_ids"), "status": a["status"], "due": a.get("due"), "gap_id": a.get("gap_id"), "source": a.get("source")}
            for a in assigns[-20:]
        ],
        "gates": [
            {"id": g["id"], "activity": g["activity"], "status": g["status"], "certification": g["certification_id"], "reason": clip(g.get("reason"), 200), "action": clip(g.get("action"), 200)}
            for g in gates[-20:]
        ],
        "certifications": [
            {"certification": c["certification_id"], "status": c["status"], "score": c.get("score"), "attempt": c.get("attempt"), "at": c.get("created_at")}
            for c in certs[-20:]
        ],
    }


def call_detail(coach: Coach, call_id: str | int, *, with_quotes: bool = True) -> dict:
    try:
        c = store_calls.get_call(coach.store, call_id, with_turns=False)
    except Exception as exc:
        raise LookupError(str(exc)) from None
    card = coach.playbook.get("scorecards", c["scorecard_id"])
    titles = {ln.id: ln.title for ln in card.model.lines} if card else {}
    verdicts = []
    for v in c["verdicts"]:
        item = {"line": v["line_id"], "title": titles.get(v["line_id"], v["line_id"]), "verdict": v["verdict"], "turn": v.get("turn"), "reason": clip(v.get("reason"), 240)}
        if with_quotes:
            item["quote"] = clip(v.get("quote"), 240)
        if v.get("overridden_by"):
            item["overridden_by"] = v["overridden_by"]
            item["engine_verdict"] = v.get("engine_verdict")
            item["override_reason"] = v.get("override_reason")
        verdicts.append(item)
    failed = [v["line"] for v in verdicts if v["verdict"] == "fail"]
    return {
        "call_id": c["id"],
        "rep": c["rep_id"],
        "call_type": c["call_type"],
        "scorecard": c["scorecard_id"],
        "scorecard_version": c.get("scorecard_version"),
        "engine": c.get("engine"),
        "score": c.get("score"),
        "occurred_at": c.get("occurred_at"),
        "deal": c.get("deal_id"),
        "stage": c.get("stage"),
        "live": bool(c.get("live", 1)),
        "summary": f"call {c['id']} ({c['call_type']}, {c['rep_id']}): score {c.get('score')}; failed: {', '.join(failed) or 'none'}",
        "verdicts": verdicts,
    }


def team_metrics(coach: Coach) -> dict:
    from tools import metrics  # the metrics engineer's module

    from .loop_tools import shrink

    return shrink(metrics.compute_metrics(coach), 10)
