"""Certification: judge a finished practice session against the certification that covers it.

`certify(coach, session_id)`:
* finds the certification: the one the session's assignment recorded, else one listing the
  scenario, else the one covering most of the scenario's target lines;
* judges the lines it covers (certification lines that the scenario targets): the share that
  passed in the session must reach the certification's `pass_mark`;
* counts attempts since the rep last passed that certification; a failure that uses up the
  `attempts` allowed gives status `needs_manager` (event `certification.needs_manager`): no more
  automatic practice, a manager has to step in (`coachloop gate lift ... --by --reason`);
* records a `certifications` row with the certification's version and the gap, appends
  `certification.passed|failed`;
* pass: lifts the rep's open gates of that certification whose gap is on a line the session
  passed (`gate.lifted`, by "certification"; another open gap under the same certification keeps
  its gates) and marks the assignment passed; fail: the gates stay, the assignment is marked failed, and the next
  practice is assigned (the next scenario of the path or certification, else a harder scenario
  generated from the gap's calls), and the gates' action points at it.

Idempotent per session: a second call returns the stored result (`duplicate: true`).
A session no certification covers returns `status: "uncertified"` with the reason (its
assignment is still marked passed or failed, so verification can use it).
"""
from __future__ import annotations

import logging
from typing import Any

from store import loop as q
from store.db import StoreError, dumps, now_iso

from .gates import lift_gates
from .paths import assign_path, certification_for_scenario, next_scenario

log = logging.getLogger("coachloop")


def _stored(row: dict) -> dict:
    d = row.get("details") or {}
    return {
        "id": row["id"],
        "session_id": row["session_id"],
        "rep_id": row["rep_id"],
        "certification_id": row["certification_id"],
        "certification_version": row["certification_version"],
        "gap_id": row.get("gap_id"),
        "status": row["status"],
        "score": row["score"],
        "attempt": row["attempt"],
        **{k: v for k, v in d.items() if k not in ("status", "score", "attempt")},
        "duplicate": True,
    }


def _cert_for(coach, session: dict, assignment: dict | None):
    pb = coach.playbook
    if assignment:
        for ref in assignment.get("artifact_versions") or {}:
            if ref.startswith("certifications/"):
                cid = ref.split("/", 1)[1]
                if pb.get("certifications", cid):
                    return pb.certification(cid)
    return certification_for_scenario(pb, session["scenario_id"])


def _gap_for(coach, session: dict, assignment: dict | None, cert_id: str) -> int | None:
    if assignment and assignment.get("gap_id"):
        return assignment["gap_id"]
    rows = q.active_gates(coach.store, session["rep_id"], certification_id=cert_id)
    return next((g["gap_id"] for g in rows if g.get("gap_id")), None)


def _gate_cleared(store, gate: dict, passed_lines: list[str]) -> bool:
    """A certification pass lifts a gate when the gate's gap is on a line the session passed (a
    gate with no gap, e.g. set by hand with a certification, is lifted by any pass)."""
    if not gate.get("gap_id"):
        return True
    gap = q.get_gap(store, gate["gap_id"])
    return gap is None or gap.get("status") != "open" or gap["line_id"] in passed_lines


def certify(coach, session_id: str, *, cause: int | None = None) -> dict:
    """Judge an ended practice session; see the module docstring. Returns {status (passed |
    failed | needs_manager | uncertified), certification_id, certification_version, score,
    pass_mark, attempt, attempts_allowed, lines: [{id, verdict}], lifted, next_assignment, ...}.

    One transaction from the look for an earlier verdict on the session to the last write: two
    callers certifying the same session (the orchestrator and an MCP call, or two processes) get
    one certification row and one attempt, not two."""
    with coach.store.transaction():
        return _certify(coach, session_id, cause)


def _certify(coach, session_id: str, cause: int | None) -> dict:
    store = coach.store
    prior = q.certification_for_session(store, str(session_id))
    if prior is not None:
        return _stored(prior)
    session = q.get_session(store, str(session_id))
    if session is None:
        raise StoreError(f"unknown practice session '{session_id}'")
    if session["status"] != "ended":
        raise StoreError(
            f"practice session {session_id} is {session['status']}; end it first with `coachloop practice end {session_id}`"
        )
    assignment = q.get_assignment(store, session["assignment_id"]) if session.get("assignment_id") else None
    verdicts = {v["id"]: v["verdict"] for v in (session.get("verdicts") or [])}
    cert = _cert_for(coach, session, assignment)
    def _close_assignment() -> None:  # a practice no certification judges still completes its assignment
        if assignment and assignment["status"] in q.ACTIVE_ASSIGNMENT:
            with store.transaction():
                q.update_assignment(store, assignment["id"], status="passed" if session.get("passed") else "failed",
                                    completed_at=now_iso())

    if cert is None:
        _close_assignment()
        return {
            "status": "uncertified",
            "session_id": session["id"],
            "rep_id": session["rep_id"],
            "practice_passed": bool(session.get("passed")),
            "reason": f"no certification in the playbook covers scenario '{session['scenario_id']}' or its target lines",
        }
    pb = coach.playbook
    scen = pb.get("scenarios", session["scenario_id"])
    targets = list(scen.model.targets) if scen else list(verdicts)
    covered = [ln for ln in cert.lines if ln in targets and ln in verdicts]
    if not covered:
        _close_assignment()
        return {
            "status": "uncertified",
            "session_id": session["id"],
            "rep_id": session["rep_id"],
            "certification_id": cert.id,
            "practice_passed": bool(session.get("passed")),
            "reason": f"scenario '{session['scenario_id']}' targets none of certification '{cert.id}' lines ({', '.join(cert.lines)})",
        }
    passes = [ln for ln in covered if verdicts.get(ln) == "pass"]
    score = len(passes) / len(covered)
    ok = score >= cert.pass_mark - 1e-9
    attempts = q.certification_attempts(store, session["rep_id"], cert.id)
    attempt = len(attempts) + 1
    if ok and attempt <= cert.attempts:
        status = "passed"
    elif attempt >= cert.attempts:
        status = "needs_manager"
    else:
        status = "failed"
    gap_id = _gap_for(coach, session, assignment, cert.id)
    version = pb.version_of("certifications", cert.id)
    details: dict[str, Any] = {
        "scenario_id": session["scenario_id"],
        "scenario_version": session["scenario_version"],
        "lines": [{"id": ln, "verdict": verdicts.get(ln)} for ln in covered],
        "passed_lines": passes,
        "pass_mark": cert.pass_mark,
        "attempts_allowed": cert.attempts,
        "assignment_id": session.get("assignment_id"),
        "session_passed": ok,
    }
    with store.transaction() as db:
        db["certifications"].insert(
            {
                "rep_id": session["rep_id"],
                "certification_id": cert.id,
                "certification_version": version,
                "session_id": session["id"],
                "gap_id": gap_id,
                "status": "passed" if status == "passed" else "failed",
                "score": score,
                "attempt": attempt,
                "details": dumps({**details, "outcome": status}),
                "created_at": now_iso(),
            }
        )
        row_id = db.execute("select last_insert_rowid()").fetchone()[0]
        ev = store.event(
            "certification.passed" if status == "passed" else "certification.failed",
            rep_id=session["rep_id"],
            subject=f"session:{session['id']}",
            cause=cause,
            data={"certification_id": cert.id, "certification_version": version, "session_id": session["id"], "gap_id": gap_id,
                  "score": score, "attempt": attempt, "attempts_allowed": cert.attempts, "status": status},
        )
        lifted: list[dict] = []
        next_asg = None
        if status == "passed":
            rows = [g for g in q.active_gates(store, session["rep_id"], certification_id=cert.id) if _gate_cleared(store, g, passes)]
            lifted = lift_gates(coach, rows, by="certification", reason=f"certified {cert.id} in practice session {session['id']}",
                                manual=False, cause=ev, extra={"session_id": session["id"]})
            if assignment and assignment["status"] in q.ACTIVE_ASSIGNMENT:
                q.update_assignment(store, assignment["id"], status="passed", completed_at=now_iso())
        else:
            if assignment and assignment["status"] in q.ACTIVE_ASSIGNMENT:
                q.update_assignment(store, assignment["id"], status="failed", completed_at=now_iso())
            if status == "needs_manager":
                store.event(
                    "certification.needs_manager",
                    rep_id=session["rep_id"],
                    subject=f"session:{session['id']}",
                    cause=ev,
                    data={"certification_id": cert.id, "attempts": attempt, "attempts_allowed": cert.attempts, "gap_id": gap_id,
                          "action": f"a manager reviews the practice and lifts the gates by hand: coachloop gate lift {session['rep_id']} --by NAME --reason TEXT"},
                )
                for g in q.active_gates(store, session["rep_id"], certification_id=cert.id):
                    q.update_gate(store, g["id"], action=f"{cert.attempts} attempts used: ask your manager to review and lift the gate")
            else:
                next_asg = _assign_next(coach, session, assignment, cert, gap_id, ev)
        nxt_scn = ((next_asg or {}).get("scenario_ids") or [None])[0]
        if status == "passed":
            reason = f"passed {len(passes)} of {len(covered)} covered line(s) (pass mark {cert.pass_mark:g}); {len(lifted)} gate(s) lifted"
        elif status == "needs_manager":
            reason = (f"attempt {attempt} of {cert.attempts} " + ("failed" if not ok else "came after the attempts ran out")
                      + f"; a manager must review and lift the gates (coachloop gate lift {session['rep_id']} --by NAME --reason TEXT)")
        else:
            reason = (f"passed {len(passes)} of {len(covered)} covered line(s), below the pass mark {cert.pass_mark:g}"
                      f" (missed: {', '.join(ln for ln in covered if ln not in passes)}); next practice: {nxt_scn}")
        details.update({"lifted": [g["gate_id"] for g in lifted], "next_assignment": (next_asg or {}).get("assignment_id"),
                        "next_scenario": nxt_scn, "reason": reason})
        store.db["certifications"].update(row_id, {"details": dumps({**details, "outcome": status})})
    return {
        "id": row_id,
        "session_id": session["id"],
        "rep_id": session["rep_id"],
        "certification_id": cert.id,
        "certification_version": version,
        "gap_id": gap_id,
        "status": status,
        "score": score,
        "attempt": attempt,
        **details,
        "lifted": lifted,
        "next_assignment": next_asg,
        "duplicate": False,
    }


def _assign_next(coach, session: dict, assignment: dict | None, cert, gap_id: int | None, cause: int) -> dict | None:
    """After a failed attempt: assign the next practice and point the gates at it."""
    store = coach.store
    tried = [r["scenario_id"] for r in q.list_sessions(store, session["rep_id"]) if r["status"] == "ended"]
    base = assignment or {"scenario_ids": [session["scenario_id"]], "artifact_versions": {f"certifications/{cert.id}": ""}}
    nxt = next_scenario(coach, base, tried)
    if nxt is None and gap_id is not None:
        # every scenario tried: generate a harder one from the gap's calls
        from .scenario import generate_scenario

        scen = coach.playbook.get("scenarios", session["scenario_id"])
        level = min((scen.model.difficulty if scen else 1) + 1, 5)
        try:
            nxt = generate_scenario(coach, gap_id, difficulty=level)["scenario_id"]
        except Exception as exc:  # no calls to build from: retry the same scenario
            log.warning("certify: could not generate a harder scenario for gap %s (%s)", gap_id, exc)
    if nxt is None:
        nxt = session["scenario_id"]
    if gap_id is not None and q.get_gap(store, gap_id) is not None:
        asg = assign_path(coach, session["rep_id"], gap_id=gap_id, path_id=(assignment or {}).get("path_id"),
                          scenario_ids=[nxt], source="retry", cause=cause)
    else:
        asg = assign_path(coach, session["rep_id"], path_id=(assignment or {}).get("path_id"), scenario_ids=[nxt],
                          source="retry", cause=cause)
    action = (
        f"certification '{cert.id}' not passed yet: practise scenario '{nxt}' "
        f"(coachloop practice start --rep {session['rep_id']} --scenario {nxt}), then certify the session"
    )
    for g in q.active_gates(store, session["rep_id"], certification_id=cert.id):
        q.update_gate(store, g["id"], action=action)
    return asg
