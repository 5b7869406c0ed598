"""Practice sessions against an AI buyer played from a scenario file.

    start_session(coach, rep, scenario_id)  -> the buyer's opening
    reply(coach, session_id, text)          -> the buyer's answer to the rep's message
    end_session(coach, session_id)          -> the transcript scored on the scenario's target lines
    resume(coach, session_id)               -> the transcript so far
    expire_sessions(coach)                  -> sessions idle longer than policy.session_expiry_hours

Every turn is stored (`practice_sessions.turns`, rep turns role "rep", buyer turns role "buyer")
together with the buyer's state (facts revealed, objections raised, deflection used), so a session
survives a restart and can be resumed until it expires.

The offline buyer is deterministic. On each rep message it, in order:
1. reveals every hidden fact the message earns (at most two at a time): a fact is earned when the
   rep's turn would PASS the fact's rubric `line` with the same scorer that scores calls (the turn
   is scored alone, after the buyer's last words for context), or when the rep asks a question
   containing one of the fact's `reveal_when` phrases;
2. otherwise raises an objection the message provokes (its `when` phrases);
3. otherwise, once the rep has spoken `deflect_after` times, deflects with `scenario.deflection`
   ("just send me pricing"), once;
4. otherwise raises an unprompted objection (each once), or answers with filler in persona.
A fact is never given to a question that does not earn it.

With an LLM configured (`llm.enabled` and `llm.roleplay` in playbook.yaml), the model plays the
buyer from the same scenario file (`tools.roleplay_llm.buyer_reply`).
"""
from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from playbook.models import RubricLine, Scenario, Scorecard
from store import loop as q
from store.db import StoreError, iso_ms  # session times keep milliseconds, like every stored time
from tools.scoring import score_turns
from tools.transcripts.model import Turn

from .feedback import is_question, mentions

log = logging.getLogger("coachloop")

MAX_TURN_CHARS = 4000
MAX_TURNS = 200
DEFAULT_FILLER = ["Okay.", "Sure, go on.", "Hm. What do you mean?"]
GIVE_IN = re.compile(r"\b(i'll|i will|i can|will do|sure|absolutely|happy to)\b.*\b(send|email|shoot)\b", re.I)


class SessionError(StoreError):
    """A practice session that cannot take this action (unknown, ended, expired ...)."""


# --------------------------------------------------------------------------- time


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        dt = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _now(now: datetime | str | None) -> datetime:
    if now is None:
        now = datetime.now(timezone.utc)
        return now.replace(microsecond=now.microsecond // 1000 * 1000)
    if isinstance(now, str):
        parsed = _parse(now)
        if parsed is None:
            raise ValueError(f"now: '{now}' is not an ISO 8601 time")
        return parsed
    return now if now.tzinfo else now.replace(tzinfo=timezone.utc)


# --------------------------------------------------------------------------- line matching


def _phrase_match(line: RubricLine, text: str) -> bool:
    """Fallback matcher, used only when the call scorer fails on a turn (logged)."""
    low = text.lower()
    if any(p.lower() in low for p in line.not_phrases) or any(re.search(p, text, re.I) for p in line.not_patterns):
        return False
    hit = any(p.lower() in low for p in line.phrases) or any(re.search(p, text, re.I) for p in line.patterns)
    if line.kind == "question":
        return hit and is_question(text)
    return hit


def line_passes(scorecard: Scorecard, line_id: str, rep_text: str, context: str | None = None, answer: str | None = None) -> bool:
    """Would this rep turn pass rubric line `line_id`? Judged by the call scorer on a tiny call:
    the buyer's previous words (`context`, so a conditional line such as a pricing deflection can
    fire), the rep's turn, and the buyer's `answer` (the hidden fact the turn would earn: some
    lines need the buyer to answer, e.g. the buyer describing a problem or agreeing to a date).
    The evidence must be the rep's turn itself."""
    line = scorecard.line(line_id)
    if line is None or not rep_text.strip():
        return False
    mini = scorecard.model_copy(update={"lines": [line.model_copy(update={"where": "any"})]})
    turns: list[Turn] = []
    if context:
        turns.append(Turn(speaker="Buyer", text=context, role="buyer"))
    rep_index = len(turns)
    turns.append(Turn(speaker="Rep", text=rep_text, role="rep"))
    if answer:
        turns.append(Turn(speaker="Buyer", text=answer, role="buyer"))
    elif line.kind == "agreement":
        turns.append(Turn(speaker="Buyer", text="Yes, that works for me.", role="buyer"))
    try:
        res = score_turns(turns, mini, version="roleplay-match")
    except Exception:  # a scorer bug must not break the conversation
        log.exception("roleplay: scoring one turn on %s failed; using phrase matching", line_id)
        return _phrase_match(line, rep_text)
    for v in res.lines:
        if v.id == line_id:
            return v.verdict == "pass" and (v.turn is None or v.turn == rep_index or line.kind == "agreement")
    return False


# --------------------------------------------------------------------------- the offline buyer


def new_state() -> dict:
    return {"revealed": [], "objections": [], "deflected": False, "rep_turns": 0, "filler": 0, "gave_in": False}


def offline_reply(scenario: Scenario, scorecard: Scorecard | None, turns: list[dict], state: dict) -> tuple[str, dict, dict]:
    """The deterministic buyer's answer to the last rep turn. Returns (text, new state, info)."""
    state = {**new_state(), **state}
    state["revealed"] = list(state["revealed"])
    state["objections"] = list(state["objections"])
    rep_text = turns[-1]["text"]
    prev_buyer = next((t["text"] for t in reversed(turns[:-1]) if t["role"] == "buyer"), None)
    state["rep_turns"] += 1
    n = state["rep_turns"]
    asked = is_question(rep_text)

    earned = []
    for f in scenario.facts:
        if f.id in state["revealed"]:
            continue
        by_phrase = bool(f.reveal_when) and asked and bool(mentions(rep_text, f.reveal_when))
        by_line = bool(f.line) and scorecard is not None and line_passes(scorecard, f.line, rep_text, prev_buyer, f.say)
        if by_phrase or by_line:
            earned.append((0 if f.line in scenario.targets else 1, f))
    earned.sort(key=lambda x: x[0])
    parts: list[str] = []
    info: dict[str, Any] = {"revealed": [], "objection": None, "deflected": False}
    for _, f in earned[:2]:
        parts.append(f.say)
        state["revealed"].append(f.id)
        info["revealed"].append(f.id)

    if not parts:
        for i, o in enumerate(scenario.objections):
            if i not in state["objections"] and o.when and mentions(rep_text, o.when):
                parts.append(o.say)
                state["objections"].append(i)
                info["objection"] = i
                break
    if not parts and state["deflected"] and not asked and GIVE_IN.search(rep_text):
        state["gave_in"] = True
        parts.append("Great, send it over and I'll take a look when I can. Thanks.")
    if not parts and scenario.deflection and not state["deflected"] and n >= scenario.deflect_after:
        parts.append(scenario.deflection)
        state["deflected"] = True
        info["deflected"] = True
    if not parts:
        for i, o in enumerate(scenario.objections):
            if i not in state["objections"] and not o.when:
                parts.append(o.say)
                state["objections"].append(i)
                info["objection"] = i
                break
    if not parts:
        filler = scenario.filler or DEFAULT_FILLER
        parts.append(filler[state["filler"] % len(filler)])
        state["filler"] += 1
    return " ".join(parts), state, info


# --------------------------------------------------------------------------- sessions


def _llm_client(coach):
    """The LLM that plays the buyer, or None for the offline buyer. `llm.roleplay` in playbook.yaml
    and COACHLOOP_LLM_ROLEPLAY (both resolved by the client) can keep the offline buyer."""
    from tools.llm import LLMClient

    try:
        client = LLMClient.from_policy(coach.playbook.policy)
    except Exception as exc:  # misconfigured LLM: say so, play offline
        log.warning("roleplay: LLM not usable (%s); the offline buyer plays", exc)
        return None
    return client if client is not None and client.roleplay else None


def _scorecard(coach, scenario: Scenario) -> Scorecard | None:
    art = coach.playbook.get("scorecards", scenario.scorecard)
    return art.model if art else None


def _require_session(coach, session_id: str) -> dict:
    row = q.get_session(coach.store, str(session_id))
    if row is None:
        raise SessionError(f"unknown practice session '{session_id}' (start one with `coachloop practice start --rep R --scenario S`)")
    return row


def _expired(coach, row: dict, now: datetime) -> bool:
    last = _parse(row.get("last_activity_at") or row.get("started_at"))
    hours = coach.playbook.policy.session_expiry_hours
    return last is not None and now - last > timedelta(hours=hours)


def _expire(coach, row: dict, now: datetime) -> None:
    with coach.store.transaction():
        q.update_session(coach.store, row["id"], status="expired", ended_at=iso_ms(now))
        coach.store.event(
            "practice.expired",
            rep_id=row["rep_id"],
            subject=f"session:{row['id']}",
            cause=q.last_event_id(coach.store, "practice.started", f"session:{row['id']}"),
            data={"session_id": row["id"], "scenario_id": row["scenario_id"], "last_activity_at": row.get("last_activity_at"),
                  "expiry_hours": coach.playbook.policy.session_expiry_hours},
        )
    row["status"] = "expired"


def _active(coach, session_id: str, now: datetime) -> dict:
    row = _require_session(coach, session_id)
    if row["status"] == "active" and _expired(coach, row, now):
        _expire(coach, row, now)
    if row["status"] == "expired":
        raise SessionError(
            f"practice session {session_id} expired after {coach.playbook.policy.session_expiry_hours:g} idle hours "
            f"(last activity {row.get('last_activity_at')}); start a new one with "
            f"`coachloop practice start --rep {row['rep_id']} --scenario {row['scenario_id']}`"
        )
    if row["status"] != "active":
        raise SessionError(f"practice session {session_id} has already ended ({row['status']}); see its result with `coachloop practice end {session_id}`")
    return row


def _scenario_info(scenario: Scenario) -> dict:
    p = scenario.persona
    return {
        "id": scenario.id,
        "title": scenario.title,
        "difficulty": scenario.difficulty,
        "persona": {"name": p.name, "role": p.role, "company": p.company, "industry": p.industry, "segment": p.segment},
        "passing": scenario.passing,
    }


def start_session(coach, rep: str, scenario_id: str, assignment_id: int | None = None, *, now: datetime | str | None = None) -> dict:
    """Start a practice of `scenario_id` for `rep` (id or name). Returns {session_id, buyer (the
    opening), scenario, targets, engine, assignment_id, turns, status}."""
    rep_row = q.require_rep(coach.store, rep)
    art = coach.playbook.require("scenarios", scenario_id)
    scenario: Scenario = art.model
    store = coach.store
    if assignment_id is not None:
        asg = q.get_assignment(store, int(assignment_id))
        if asg is None:
            raise StoreError(f"unknown assignment {assignment_id}; list them with `coachloop assign --rep {rep_row['id']} --list`")
        if asg["rep_id"] != rep_row["id"]:
            raise StoreError(f"assignment {assignment_id} belongs to rep '{asg['rep_id']}', not '{rep_row['id']}'")
    else:
        for asg in reversed(q.list_assignments(store, rep_row["id"])):
            if asg["status"] in q.ACTIVE_ASSIGNMENT and scenario_id in (asg.get("scenario_ids") or []):
                assignment_id = asg["id"]
                break
    t_now = _now(now)
    for old in q.list_sessions(store, rep_row["id"], "active"):  # expiry needs no scheduler
        if _expired(coach, old, t_now):
            _expire(coach, old, t_now)
    client = _llm_client(coach)
    engine = "llm" if client is not None else "offline"
    t = iso_ms(t_now)
    sid = "ps-" + uuid.uuid4().hex[:12]
    turns = [{"role": "buyer", "speaker": scenario.persona.name, "text": scenario.opening}]
    with store.transaction():
        q.insert_session(
            store,
            {
                "id": sid,
                "rep_id": rep_row["id"],
                "scenario_id": scenario.id,
                "scenario_version": art.version,
                "assignment_id": assignment_id,
                "status": "active",
                "turns": turns,
                "state": new_state(),
                "engine": engine,
                "started_at": t,
                "last_activity_at": t,
            },
        )
        if assignment_id is not None:
            asg = q.get_assignment(store, int(assignment_id))
            if asg and asg["status"] == "assigned":
                q.update_assignment(store, asg["id"], status="started", started_at=t)
        store.event(
            "practice.started",
            rep_id=rep_row["id"],
            subject=f"session:{sid}",
            cause=q.last_event_id(store, "path.assigned", f"assignment:{assignment_id}") if assignment_id is not None else None,
            data={"session_id": sid, "scenario_id": scenario.id, "scenario_version": art.version, "assignment_id": assignment_id, "engine": engine},
        )
    return {
        "session_id": sid,
        "rep_id": rep_row["id"],
        "buyer": scenario.opening,
        "scenario": _scenario_info(scenario),
        "targets": list(scenario.targets),
        "engine": engine,
        "assignment_id": assignment_id,
        "status": "active",
        "turns": turns,
    }


def reply(coach, session_id: str, text: str, *, now: datetime | str | None = None) -> dict:
    """Add the rep's message and return the buyer's answer: {session_id, buyer, turn (index of the
    buyer's turn), revealed (fact ids just revealed), deflected, rep_turns, status}."""
    t_now = _now(now)
    row = _active(coach, session_id, t_now)
    text = " ".join(str(text or "").split())
    if not text:
        raise ValueError("the rep's message is empty: say something to the buyer")
    if len(text) > MAX_TURN_CHARS:
        raise ValueError(f"the rep's message is {len(text)} characters; keep one turn under {MAX_TURN_CHARS}")
    turns = list(row["turns"])
    if len(turns) >= MAX_TURNS:
        raise SessionError(f"practice session {session_id} reached {MAX_TURNS} turns; end it with `coachloop practice end {session_id}`")
    art = coach.playbook.get("scenarios", row["scenario_id"])
    if art is None:
        raise SessionError(f"scenario '{row['scenario_id']}' of session {session_id} is no longer in the playbook {coach.playbook.root}")
    scenario: Scenario = art.model
    rep_row = q.find_rep(coach.store, row["rep_id"]) or {"name": row["rep_id"]}
    turns.append({"role": "rep", "speaker": rep_row["name"], "text": text})
    state = row.get("state") or new_state()
    info: dict = {"revealed": [], "objection": None, "deflected": False}
    answer = None
    if row.get("engine") == "llm":
        client = _llm_client(coach)
        if client is not None:
            from tools.roleplay_llm import buyer_reply

            try:
                answer = buyer_reply(client, scenario, [{"speaker": t["role"], "text": t["text"]} for t in turns], scorecard=_scorecard(coach, scenario))
                state = {**new_state(), **state, "rep_turns": int(state.get("rep_turns", 0)) + 1}
                state["revealed"] = list(state.get("revealed") or [])
                for f in scenario.facts:  # which facts the model gave away, for resume/reporting
                    if f.id not in state["revealed"] and _said(f.say, answer):
                        state["revealed"].append(f.id)
                        info["revealed"].append(f.id)
            except Exception as exc:
                log.warning("roleplay: the LLM buyer failed (%s); the offline buyer answers this turn", exc)
    if answer is None:
        answer, state, info = offline_reply(scenario, _scorecard(coach, scenario), turns, state)
    turns.append({"role": "buyer", "speaker": scenario.persona.name, "text": answer})
    with coach.store.transaction():
        now_row = q.get_session(coach.store, row["id"])
        if now_row["status"] != "active" or len(now_row.get("turns") or []) != len(row["turns"]):
            raise SessionError(
                f"practice session {row['id']} changed while the buyer was answering (another message or an end); "
                f"see it with `coachloop practice show {row['id']}` and send your message again"
            )
        q.update_session(coach.store, row["id"], turns=turns, state=state, last_activity_at=iso_ms(t_now))
    return {
        "session_id": row["id"],
        "buyer": answer,
        "turn": len(turns) - 1,
        "revealed": info["revealed"],
        "objection": info["objection"],
        "deflected": info["deflected"],
        "rep_turns": state.get("rep_turns"),
        "status": "active",
    }


def _said(fact: str, answer: str) -> bool:
    """Did the buyer's answer carry the fact? Most of the fact's content words are in it."""
    words = {w for w in re.findall(r"[a-z0-9']+", fact.lower()) if len(w) > 3}
    if not words:
        return False
    got = set(re.findall(r"[a-z0-9']+", answer.lower()))
    return len(words & got) / len(words) >= 0.6


def _turn_objects(turns: list[dict]) -> list[Turn]:
    return [Turn(speaker=t.get("speaker") or t["role"], text=t["text"], role=t["role"]) for t in turns]


def end_session(coach, session_id: str, *, now: datetime | str | None = None) -> dict:
    """Score the session on the scenario's target lines and close it; event `practice.ended`.

    Returns {session_id, rep_id, scenario_id, verdicts: [{id, verdict, turn, quote, reason}],
    score (share of targets passed), passed, pass_mark, engine, ...}. Ending twice returns the
    stored result."""
    t_now = _now(now)
    row = _require_session(coach, session_id)
    if row["status"] == "ended":
        return _result(row)
    row = _active(coach, session_id, t_now)
    art = coach.playbook.get("scenarios", row["scenario_id"])
    if art is None:
        raise SessionError(f"scenario '{row['scenario_id']}' of session {session_id} is no longer in the playbook {coach.playbook.root}")
    scenario: Scenario = art.model
    card_art = coach.playbook.require("scorecards", scenario.scorecard)
    card: Scorecard = card_art.model
    targets = [t for t in scenario.targets if card.line(t) is not None]
    if not targets:
        raise SessionError(f"scenario '{scenario.id}' targets no line of scorecard '{card.id}'")
    if not any((t.get("role") if isinstance(t, dict) else getattr(t, "role", None)) == "rep" for t in row["turns"] or []):
        raise SessionError(
            f"practice session {session_id}: the rep has not said anything yet, so there is nothing to score; "
            f"talk to the buyer first with `coachloop practice say {session_id} TEXT`"
        )
    subset = card.model_copy(update={"lines": [card.line(t) for t in targets]})
    engine, client = "offline", None
    if row.get("engine") == "llm":
        client = _llm_client(coach)
        if client is not None:
            engine = "llm"
    try:
        res = score_turns(_turn_objects(row["turns"]), subset, version=card_art.version, engine=engine, llm=client)
    except Exception as exc:
        if engine == "offline":
            raise
        log.warning("roleplay: LLM scoring failed (%s); scoring the session offline", exc)
        engine = "offline"
        res = score_turns(_turn_objects(row["turns"]), subset, version=card_art.version)
    verdicts = [
        {"id": v.id, "verdict": v.verdict, "turn": v.turn, "quote": v.quote, "reason": v.reason}
        for v in res.lines
        if v.id in targets
    ]
    passes = sum(1 for v in verdicts if v["verdict"] == "pass")
    score = passes / len(targets)
    passed = score >= scenario.pass_mark - 1e-9
    with coach.store.transaction():
        q.update_session(
            coach.store,
            row["id"],
            status="ended",
            verdicts=verdicts,
            score=score,
            passed=int(passed),
            engine=f"{engine}:{getattr(res, 'engine_version', '')}".rstrip(":"),
            ended_at=iso_ms(t_now),
            last_activity_at=iso_ms(t_now),
        )
        coach.store.event(
            "practice.ended",
            rep_id=row["rep_id"],
            subject=f"session:{row['id']}",
            cause=q.last_event_id(coach.store, "practice.started", f"session:{row['id']}"),
            data={
                "session_id": row["id"],
                "scenario_id": row["scenario_id"],
                "scenario_version": row["scenario_version"],
                "assignment_id": row.get("assignment_id"),
                "score": score,
                "passed": passed,
                "failed_lines": [v["id"] for v in verdicts if v["verdict"] != "pass"],
            },
        )
    return _result(q.get_session(coach.store, row["id"]))


def _result(row: dict) -> dict:
    verdicts = row.get("verdicts") or []
    return {
        "session_id": row["id"],
        "rep_id": row["rep_id"],
        "scenario_id": row["scenario_id"],
        "scenario_version": row["scenario_version"],
        "assignment_id": row.get("assignment_id"),
        "status": row["status"],
        "verdicts": verdicts,
        "score": row.get("score"),
        "passed": bool(row.get("passed")),
        "failed_lines": [v["id"] for v in verdicts if v["verdict"] != "pass"],
        "engine": row.get("engine"),
        "turns": len(row.get("turns") or []),
        "ended_at": row.get("ended_at"),
    }


def resume(coach, session_id: str, *, now: datetime | str | None = None) -> dict:
    """The session so far: {session_id, status, turns, scenario, targets, revealed, rep_turns, last}.

    An idle session past its expiry is marked expired (and says so) instead."""
    t_now = _now(now)
    row = _require_session(coach, session_id)
    if row["status"] == "active" and _expired(coach, row, t_now):
        _expire(coach, row, t_now)
    art = coach.playbook.get("scenarios", row["scenario_id"])
    state = row.get("state") or {}
    turns = row.get("turns") or []
    return {
        "session_id": row["id"],
        "rep_id": row["rep_id"],
        "status": row["status"],
        "scenario": _scenario_info(art.model) if art else {"id": row["scenario_id"]},
        "targets": list(art.model.targets) if art else [],
        "turns": turns,
        "last": turns[-1]["text"] if turns else None,
        "revealed": state.get("revealed", []),
        "rep_turns": state.get("rep_turns", 0),
        "assignment_id": row.get("assignment_id"),
        "last_activity_at": row.get("last_activity_at"),
        "result": _result(row) if row["status"] == "ended" else None,
    }


def expire_sessions(coach, now: datetime | str | None = None) -> list[str]:
    """Mark every active session idle longer than policy.session_expiry_hours as expired."""
    t_now = _now(now)
    out = []
    for row in q.list_sessions(coach.store, status="active"):
        if _expired(coach, row, t_now):
            _expire(coach, row, t_now)
            out.append(row["id"])
    return out


def list_sessions(coach, rep_id: str | None = None, status: str | None = None) -> list[dict]:
    rid = q.require_rep(coach.store, rep_id)["id"] if rep_id else None
    return [
        {k: r.get(k) for k in ("id", "rep_id", "scenario_id", "status", "score", "passed", "assignment_id", "started_at", "last_activity_at", "ended_at")}
        for r in q.list_sessions(coach.store, rid, status)
    ]
