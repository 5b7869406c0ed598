"""Verification: the next live call of a rep with an open gap is judged on the gap's line.

`verify_call(coach, call_id)` looks at every open gap of the call's rep on the call's scorecard
and reads the call's effective verdict on the gap's line:

* `na` (the line did not apply) -> nothing happens.
* `pass` once the rep is *ready* -> `verify_passes + 1`; at `attribution.close_passes` (playbook.yaml)
  the gap closes with event `gap.closed` and its reason.
* `fail` once the rep is ready -> the gap reopens: event `gap.reopened`, its difficulty goes up
  by one (capped at 5), and it is remediated again: a harder scenario (`generate_scenario(...,
  difficulty=d)`), a new assignment, and the rep blocked again by the gates.
* before the rep is ready, a pass or a miss only feeds attribution (event `gap.verified` with
  `counted: false`): one lucky call is not proof the behaviour was learned.

When is a rep *ready* (decision): passes only count after the rep was **certified** on the gap,
i.e. a `certifications` row for the gap with status `passed`, newer than the gap's last reopening.
When a manager lifted the gap's gates by hand (say after the attempts ran out), that decision
stands in for the certification. When no certification in the playbook covers the gap's line
(nothing can certify it), a passed practice on the gap's assignment counts instead. This keeps
"close" meaning "learned in practice (or vouched for), then shown on a live call".

Each verification is one transaction with one event whose cause is the given event (the
orchestrator passes the `call.scored` event) or, by default, the call's `call.scored` event. A call
already verified against a gap is skipped, so running twice changes nothing.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from store.db import Store, StoreError, dumps, now_iso

log = logging.getLogger("coachloop")

MAX_DIFFICULTY = 5


def _loads(text, default):
    if isinstance(text, (dict, list)):
        return text
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _call(store: Store, call_id: int) -> dict:
    row = store.one("select * from calls where id = ?", (int(call_id),))
    if row is None:
        raise StoreError(f"unknown call {call_id}: list calls with `coachloop score --json` output or the MCP calls resource")
    return row


def _call_event(store: Store, call_id: int) -> int | None:
    row = store.one(
        "select id from events where type = 'call.scored' and subject = ? order by id desc limit 1", (f"call:{call_id}",)
    )
    return row["id"] if row else None


def certifications_covering(coach, scorecard_id: str, line_id: str) -> list[str]:
    """Ids of the playbook's certifications that cover a line."""
    out = []
    for art in coach.playbook.all("certifications"):
        cert = art.model
        if cert.scorecard == scorecard_id and line_id in cert.lines:
            out.append(cert.id)
    return out


def readiness(coach, gap: dict) -> dict:
    """Whether live passes count for this gap yet, and why (see the module docstring)."""
    store: Store = coach.store
    details = _loads(gap.get("details"), {})
    cert_floor = int(details.get("cert_floor") or 0)
    cert = store.one(
        "select id, certification_id, created_at from certifications where gap_id = ? and status = 'passed' and id > ? "
        "order by id desc limit 1",
        (gap["id"], cert_floor),
    )
    if cert:
        return {"ready": True, "by": "certification", "certification": cert["certification_id"], "certification_row": cert["id"]}
    gate_floor = int(details.get("gate_floor") or 0)
    lifted = store.one(
        "select id, lifted_by, lift_reason from gates where gap_id = ? and id > ? and status = 'lifted' "
        "and lifted_by is not null and lifted_by != 'certification' order by id desc limit 1",
        (gap["id"], gate_floor),
    )
    if lifted and not store.one(
        "select id from gates where gap_id = ? and id > ? and status in ('blocked', 'shadow') limit 1", (gap["id"], gate_floor)
    ):
        # a manager lifted the block by hand (e.g. after the attempts ran out): their call stands in
        return {"ready": True, "by": f"a manager's lift ({lifted['lifted_by']})", "gate": lifted["id"]}
    covering = certifications_covering(coach, gap["scorecard_id"], gap["line_id"])
    if covering:
        return {"ready": False, "by": None, "needs": f"certification {', '.join(covering)}"}
    assignment_floor = int(details.get("assignment_floor") or 0)
    done = store.one(
        "select id from assignments where gap_id = ? and status = 'passed' and id > ? order by id desc limit 1",
        (gap["id"], assignment_floor),
    )
    if done:
        return {"ready": True, "by": "practice", "assignment": done["id"]}
    return {"ready": False, "by": None, "needs": "a passed practice on the gap's assignment"}


def _step(store: Store, name: str, fn, problems: list[dict]):
    """Run one remediation step under a savepoint: a step that fails is undone alone and noted,
    so one broken step (say a scenario that cannot be built) does not cost the others."""
    try:
        with store.db.atomic():
            return fn()
    except Exception as exc:  # noqa: BLE001 - reported in problems and in the log
        log.warning("remediation: %s failed: %s", name, exc)
        problems.append({"step": name, "error": f"{type(exc).__name__}: {exc}"})
        return None


def remediate_gap(coach, gap_id: int, *, difficulty: int | None = None, cause: int | None = None) -> dict:
    """Feedback + scenario from the gap's calls + learning path + gates, for a new or reopened gap.

    One transaction (the caller's when there is one); `cause` is recorded on the events the steps
    append. Each step runs under its own savepoint: a step that fails is undone alone and listed in
    `problems` (the rest still happens: a learning path and a gate are worth having even when no
    scenario could be built from the calls). When the rep would be left with nothing to practise
    (neither a scenario nor an assignment), it raises, so the orchestrator retries.
    Returns {gap_id, feedback, scenario, assignment, gates, problems}."""
    from tools.feedback import gap_feedback
    from tools.gates import apply_gates_for_gap
    from tools.paths import assign_path
    from tools.scenario import generate_scenario

    store: Store = coach.store
    gap = store.one("select * from gaps where id = ?", (int(gap_id),))
    if gap is None:
        raise StoreError(f"unknown gap {gap_id}")
    kwargs: dict[str, Any] = {}
    if difficulty is not None:
        kwargs["difficulty"] = difficulty
    problems: list[dict] = []
    with store.transaction():
        feedback = _step(store, "feedback", lambda: gap_feedback(coach, gap_id), problems)
        scenario = _step(store, "scenario", lambda: generate_scenario(coach, gap_id, **kwargs), problems)
        assignment = _step(store, "assignment", lambda: assign_path(coach, gap["rep_id"], gap_id=gap_id, cause=cause), problems)
        if scenario is None and assignment is None:
            raise StoreError(
                f"gap {gap_id} ({gap['line_id']}): nothing to practise: "
                + "; ".join(f"{p['step']}: {p['error']}" for p in problems)
            )
        gates = _step(store, "gates", lambda: apply_gates_for_gap(coach, gap_id, cause=cause), problems) or []
    return {"gap_id": gap_id, "feedback": feedback, "scenario": scenario, "assignment": assignment, "gates": gates,
            "problems": problems}


def verify_call(coach, call_id: int, *, cause: int | None = None, remediate: bool = True) -> list[dict]:
    """Judge a live call against the rep's open gaps on the call's scorecard. See module docstring.

    Returns one outcome per gap looked at: `{gap_id, line, verdict, outcome, counted, ...}` where
    outcome is one of `closed`, `passed` (counted, not yet enough), `reopened`, `early-pass`,
    `miss` (before readiness), `na`, `already-verified`.
    """
    store: Store = coach.store
    call = _call(store, call_id)
    if not call.get("live", 1):
        return []
    gaps = store.query(
        "select * from gaps where rep_id = ? and scorecard_id = ? and status = 'open' order by id",
        (call["rep_id"], call["scorecard_id"]),
    )
    if not gaps:
        return []
    ev_cause = cause if cause is not None else _call_event(store, call["id"])
    pol = coach.playbook.policy.attribution
    outcomes: list[dict] = []
    for gap in gaps:
        details = _loads(gap.get("details"), {})
        line = gap["line_id"]
        base = {"gap_id": gap["id"], "rep": gap["rep_id"], "line": line, "call_id": call["id"]}
        seen = details.get("verified_calls") or []
        opened_from = set(_loads(gap.get("call_ids"), [])) | set(details.get("window_call_ids") or [])
        if call["id"] in seen or call["id"] in opened_from:
            outcomes.append(dict(base, verdict=None, outcome="already-verified", counted=False))
            continue
        v = store.one("select verdict from verdicts where call_id = ? and line_id = ?", (call["id"], line))
        verdict = v["verdict"] if v else "na"
        if verdict not in ("pass", "fail"):
            outcomes.append(dict(base, verdict=verdict, outcome="na", counted=False))
            continue
        ready = readiness(coach, gap)
        with store.transaction() as db:
            details["verified_calls"] = seen + [call["id"]]
            if verdict == "pass" and ready["ready"]:
                passes = int(gap.get("verify_passes") or 0) + 1
                if passes >= pol.close_passes:
                    reason = (
                        f"{line} passed on live call {call['id']} after {ready['by']}"
                        + (f" ({passes} of {pol.close_passes} passes needed)" if pol.close_passes > 1 else "")
                    )
                    details["closed_by_call"] = call["id"]
                    db["gaps"].update(
                        gap["id"],
                        {
                            "status": "closed",
                            "verify_passes": passes,
                            "closed_at": now_iso(),
                            "close_reason": reason,
                            "details": dumps(details),
                        },
                    )
                    eid = store.event(
                        "gap.closed",
                        rep_id=gap["rep_id"],
                        subject=f"gap:{gap['id']}",
                        cause=ev_cause,
                        data={"gap_id": gap["id"], "line": line, "call_id": call["id"], "reason": reason, "verify_passes": passes},
                    )
                    outcomes.append(dict(base, verdict=verdict, outcome="closed", counted=True, reason=reason, event_id=eid,
                                         verify_passes=passes))
                else:
                    db["gaps"].update(gap["id"], {"verify_passes": passes, "details": dumps(details)})
                    eid = store.event(
                        "gap.verified",
                        rep_id=gap["rep_id"],
                        subject=f"gap:{gap['id']}",
                        cause=ev_cause,
                        data={"gap_id": gap["id"], "line": line, "call_id": call["id"], "verdict": verdict, "counted": True,
                              "verify_passes": passes, "close_passes": pol.close_passes},
                    )
                    outcomes.append(dict(base, verdict=verdict, outcome="passed", counted=True, event_id=eid, verify_passes=passes))
            elif verdict == "fail" and ready["ready"]:
                difficulty = min(int(details.get("difficulty") or 1) + 1, MAX_DIFFICULTY)
                details["difficulty"] = difficulty
                details["reopened"] = int(details.get("reopened") or 0) + 1
                details["cert_floor"] = (store.one("select coalesce(max(id), 0) m from certifications")["m"])
                details["assignment_floor"] = (store.one("select coalesce(max(id), 0) m from assignments")["m"])
                details["gate_floor"] = (store.one("select coalesce(max(id), 0) m from gates")["m"])
                call_ids = _loads(gap.get("call_ids"), [])
                if call["id"] not in call_ids:
                    call_ids.append(call["id"])
                reason = f"{line} missed on live call {call['id']} after {ready['by']}"
                db["gaps"].update(
                    gap["id"],
                    {"verify_passes": 0, "details": dumps(details), "call_ids": dumps(call_ids), "misses": len(call_ids)},
                )
                eid = store.event(
                    "gap.reopened",
                    rep_id=gap["rep_id"],
                    subject=f"gap:{gap['id']}",
                    cause=ev_cause,
                    data={"gap_id": gap["id"], "line": line, "call_id": call["id"], "reason": reason, "difficulty": difficulty,
                          "reopened": details["reopened"]},
                )
                out = dict(base, verdict=verdict, outcome="reopened", counted=True, reason=reason, difficulty=difficulty,
                           event_id=eid)
                if remediate:
                    out["remediation"] = remediate_gap(coach, gap["id"], difficulty=difficulty, cause=eid)
                outcomes.append(out)
            else:
                db["gaps"].update(gap["id"], {"details": dumps(details)})
                eid = store.event(
                    "gap.verified",
                    rep_id=gap["rep_id"],
                    subject=f"gap:{gap['id']}",
                    cause=ev_cause,
                    data={"gap_id": gap["id"], "line": line, "call_id": call["id"], "verdict": verdict, "counted": False,
                          "waiting_for": ready.get("needs")},
                )
                outcomes.append(dict(base, verdict=verdict, outcome="early-pass" if verdict == "pass" else "miss",
                                     counted=False, waiting_for=ready.get("needs"), event_id=eid))
    return outcomes
