"""Helpers for the remediation / roleplay / certification / gates tests: put reps, calls, verdicts
and gaps straight into a real store (so these tests do not depend on the scorer or attribution),
and make sure the tmp playbook has a discovery scorecard."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from store.db import dumps, now_iso

DISCOVERY_LINES = [
    "agenda_set", "pain_identified", "impact_quantified", "budget_confirmed", "decision_process",
    "decision_maker_identified", "timeline_established", "competition_explored",
    "pricing_deflection_handled", "next_step_booked",
]

# Used only while the starter playbook has no discovery scorecard yet (written by the scoring area).
_FALLBACK_DISCOVERY = {
    "id": "discovery",
    "title": "Discovery call",
    "call_types": ["discovery"],
    "lines": [
        {"id": "agenda_set", "title": "Set the agenda", "where": "opening", "kind": "statement",
         "phrases": ["agenda", "plan for", "what we'll cover", "by the end of the call"],
         "examples": ["Here's what I'd suggest we cover in the next thirty minutes."]},
        {"id": "pain_identified", "title": "Identified the pain",
         "phrases": ["what problems", "what's not working", "challenges", "what made you", "what prompted"],
         "examples": ["What's not working today?"]},
        {"id": "impact_quantified", "title": "Quantified the impact",
         "phrases": ["how many hours", "how much does", "what does that cost", "put a number"],
         "examples": ["How many hours a week does that take?"]},
        {"id": "budget_confirmed", "title": "Confirmed budget",
         "phrases": ["budget", "set aside", "spend range", "funding"],
         "examples": ["What budget have you set aside for this?"],
         "coaching": "Ask about budget directly once the pain is clear."},
        {"id": "decision_process", "title": "Decision process",
         "phrases": ["procurement", "security review", "approval process", "how would a purchase"],
         "examples": ["How does a purchase like this get approved?"]},
        {"id": "decision_maker_identified", "title": "Decision maker",
         "phrases": ["who else", "who signs", "final say", "decision maker"],
         "examples": ["Who else is involved in the decision?"]},
        {"id": "timeline_established", "title": "Timeline",
         "phrases": ["when do you need", "deadline", "by when", "target date"],
         "examples": ["When do you need this in place?"]},
        {"id": "competition_explored", "title": "Competition",
         "phrases": ["alternatives", "other vendors", "looking at", "using today"],
         "examples": ["What else are you looking at?"]},
        {"id": "pricing_deflection_handled", "title": "Handled the pricing deflection",
         "phrases": ["before i send", "what matters most", "can i ask"],
         "trigger": {"speaker": "buyer", "phrases": ["send me pricing", "pricing", "send me some info"]},
         "examples": ["Happy to. So I send the right option, what matters most to you?"]},
        {"id": "next_step_booked", "title": "Booked the next step", "where": "closing", "kind": "agreement",
         "phrases": ["tuesday at", "thursday at", "calendar invite", "does thursday"],
         "examples": ["How's Thursday at two for the technical session?"]},
    ],
}


def ensure_discovery(playbook_dir: Path) -> None:
    path = Path(playbook_dir) / "scorecards" / "discovery.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(_FALLBACK_DISCOVERY, sort_keys=False))


def add_rep(store, rep_id: str, name: str, segment: str = "mid-market") -> str:
    with store.transaction() as db:
        db["reps"].insert({"id": rep_id, "name": name, "segment": segment, "aliases": "[]", "active": 1,
                           "created_at": now_iso(), "updated_at": now_iso()}, replace=True)
    return rep_id


def add_call(store, rep_id: str, rep_name: str, turns: list[tuple[str, str]], verdicts: dict[str, str] | None = None,
             *, segment: str = "mid-market", occurred_at: str | None = None, scorecard_id: str = "discovery",
             quotes: dict[str, int] | None = None) -> int:
    """A scored live call: turns as (speaker, text); role from the speaker."""
    tj = [{"speaker": s, "text": t, "role": "rep" if s == rep_name else "buyer"} for s, t in turns]
    h = str(abs(hash(json.dumps(tj))))
    with store.transaction() as db:
        db["calls"].insert({
            "source_hash": h, "source_name": f"call-{h[:6]}.txt", "format": "text", "rep_id": rep_id,
            "rep_speaker": rep_name, "call_type": "discovery", "scorecard_id": scorecard_id,
            "scorecard_version": "test", "segment": segment, "occurred_at": occurred_at or now_iso(),
            "turns": dumps(tj), "engine": "offline", "engine_version": "test", "score": 0.5, "live": 1,
            "created_at": now_iso(), "scored_at": now_iso(),
        })
        cid = db.execute("select last_insert_rowid()").fetchone()[0]
        for line, v in (verdicts or {}).items():
            db["verdicts"].insert({"call_id": cid, "line_id": line, "verdict": v, "engine_verdict": v,
                                   "turn": (quotes or {}).get(line), "reason": f"{line} {v}", "engine": "offline"})
    return cid


def add_gap(store, rep_id: str, line_id: str, call_ids: list[int], statement: str | None = None, scorecard_id: str = "discovery") -> int:
    with store.transaction() as db:
        db["gaps"].insert({
            "rep_id": rep_id, "scorecard_id": scorecard_id, "line_id": line_id, "status": "open",
            "statement": statement or f"Skipped {line_id} on {len(call_ids)} of the last 5 calls",
            "misses": len(call_ids), "window": 5, "call_ids": dumps(call_ids), "details": "{}",
            "opened_at": now_iso(),
        })
        return db.execute("select last_insert_rowid()").fetchone()[0]


# Two weak calls of one rep (budget never asked; buyer volunteered money, pushed back, deflected).
PRIYA = "Priya Raman"
CALL_A = [
    (PRIYA, "Hi Marcus, thanks for making the time. Can you hear me okay?"),
    ("Marcus Oduya", "Yep, loud and clear. Sorry I'm a couple of minutes late, back-to-back today."),
    (PRIYA, "No worries. So what's going on with activity data that made you want to take this call?"),
    ("Marcus Oduya", "Honestly, our pipeline reviews are a mess. I'm the director of sales operations, and half of our reps never log their calls."),
    (PRIYA, "Let me show you our capture product, it logs every call and email automatically into Salesforce."),
    ("Marcus Oduya", "Our CRO signs anything we buy, and I've got about sixty thousand left in the ops tooling line for this year, so money's not really the blocker."),
    (PRIYA, "Great, most teams your size fit this into their existing budget easily. The dashboard also flags untouched accounts."),
    ("Marcus Oduya", "But I'm worried the reps will hate another tool. We tried Outreach last year and it was way more platform than we needed."),
    (PRIYA, "Totally understand. Reps love how little clicking there is."),
    ("Marcus Oduya", "Okay. Can you just send me pricing and a one-pager?"),
    (PRIYA, "Sure, I'll send the pricing sheet over today."),
]
CALL_B = [
    (PRIYA, "Hey Dana, thanks for jumping on."),
    ("Dana Whitfield", "Sure. I only have fifteen minutes, we have a board meeting coming up."),
    (PRIYA, "Our platform captures activity from the dialer and email and writes it to the CRM, and managers get a dashboard."),
    ("Dana Whitfield", "We have money set aside for this quarter, around forty thousand, but I'm not sure this is a priority."),
    (PRIYA, "Makes sense. The pilot usually takes two weeks."),
    ("Dana Whitfield", "Okay."),
    (PRIYA, "I'll follow up next week."),
]


# Two labelled rubric tests on budget_confirmed (for the gates' trust check).
ASKED = [
    {"speaker": "Ana Rep", "text": "Thanks for the time today."},
    {"speaker": "Bo Buyer", "text": "Sure, happy to chat about our reporting mess."},
    {"speaker": "Ana Rep", "text": "What budget have you set aside for fixing this?"},
    {"speaker": "Bo Buyer", "text": "About fifty thousand for the year, from the operations budget."},
]
NOT_ASKED = [
    {"speaker": "Ana Rep", "text": "Thanks for the time today."},
    {"speaker": "Bo Buyer", "text": "Sure, happy to chat about our reporting mess."},
    {"speaker": "Ana Rep", "text": "Let me show you our dashboards, they refresh every hour."},
    {"speaker": "Bo Buyer", "text": "Looks nice."},
]


def write_budget_rubric_tests(pb: Path, agree: bool) -> None:
    """Two labelled tests on budget_confirmed; when `agree` is False the labels are the opposite
    of what happened, so the engine disagrees with them (kappa -1)."""
    folder = pb / "scorecards" / "tests"
    folder.mkdir(parents=True, exist_ok=True)
    for f in folder.iterdir():
        f.unlink()
    for name, turns, verdict in (("asked", ASKED, "pass"), ("not-asked", NOT_ASKED, "fail")):
        if not agree:
            verdict = "fail" if verdict == "pass" else "pass"
        (folder / f"budget-{name}.yaml").write_text(
            yaml.safe_dump({"scorecard": "discovery", "rep": "Ana Rep", "turns": turns,
                            "labels": {"budget_confirmed": {"verdict": verdict, "turn": 2 if verdict == "pass" else None}}})
        )
