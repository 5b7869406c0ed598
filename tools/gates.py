"""Certification gates: block a rep from named activities until a practice certifies them.

* `apply_gates_for_gap(coach, gap_id)`: when a gap opens on a line that a certification covers,
  the rep is blocked from every activity that certification gates (`gates` rows, event
  `gate.blocked`), but only when the line's scoring is trusted: its rubric tests
  (`run_rubric_tests`) reach the certification's `min_kappa`. Otherwise the gate is recorded in
  shadow mode (`gate.shadow`): reported, never blocking. A line with no labelled tests, or whose
  kappa cannot be computed, is not trusted. Trust is cached per scorecard version and tests.
* `gate_check(coach, rep, activity)`: allowed or blocked, with the reason and what the rep must do.
  One indexed query; no playbook reload and no rubric-test run, so a dialer can ask before every
  call.
* `block(...)`: block by hand; `lift(coach, rep, activity, by=, reason=)`: lift by hand, logged
  (`gate.lifted` with who and why).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from typing import Any

from playbook.models import Certification
from store import loop as q
from store.db import StoreError, now_iso

log = logging.getLogger("coachloop")

_TRUST_CACHE: dict[tuple, dict[str, dict]] = {}
_TRUST_LOCK = threading.Lock()


# --------------------------------------------------------------------------- trust


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def per_line_agreement(report: Any) -> dict[str, dict]:
    """{line_id: {kappa, accuracy, n}} from a rubric-test report (dict or object, lines as a
    mapping or a list)."""
    lines = _get(report, "lines")
    if lines is None:
        lines = _get(report, "per_line")
    out: dict[str, dict] = {}
    if isinstance(lines, dict):
        items = list(lines.items())
    elif isinstance(lines, (list, tuple)):
        items = [(_get(x, "id") or _get(x, "line") or _get(x, "line_id"), x) for x in lines]
    else:
        items = []
    for lid, x in items:
        if not lid:
            continue
        n = _get(x, "n")
        if n is not None and not n:
            continue  # the report lists the line but no test labels it
        out[str(lid)] = {
            "kappa": _num(_get(x, "kappa")),
            "accuracy": _num(_get(x, "accuracy")),
            "n": _get(x, "n") or _get(x, "count") or _get(x, "total"),
        }
    return out


def _run_tests(coach, scorecard_id: str) -> Any:
    """The scorecard's rubric-test report (`run_rubric_tests`)."""
    from tools.scoring.rubric_tests import run_rubric_tests

    return run_rubric_tests(coach.playbook, scorecard_id)


def _trust_key(coach, scorecard_id: str) -> tuple:
    pb = coach.playbook
    h = hashlib.sha256()
    for rel, test in sorted(pb.tests.get(scorecard_id, []), key=lambda x: x[0]):
        h.update(rel.encode())
        h.update(json.dumps(test.model_dump(mode="json"), sort_keys=True, default=str).encode())
    return (str(pb.root), scorecard_id, pb.version_of("scorecards", scorecard_id), h.hexdigest())


def scorecard_trust(coach, scorecard_id: str) -> dict[str, dict]:
    """Per-line rubric-test agreement for a scorecard, cached per scorecard version and tests."""
    key = _trust_key(coach, scorecard_id)
    with _TRUST_LOCK:
        if key in _TRUST_CACHE:
            return _TRUST_CACHE[key]
    if not coach.playbook.tests.get(scorecard_id):
        result: dict[str, dict] = {}
    else:
        try:
            result = per_line_agreement(_run_tests(coach, scorecard_id))
        except Exception as exc:
            log.warning("gates: rubric tests of scorecard %s failed (%s); its gates run in shadow mode", scorecard_id, exc)
            result = {}
    with _TRUST_LOCK:
        _TRUST_CACHE[key] = result
    return result


def line_trust(coach, cert: Certification, line_id: str) -> dict:
    """{trusted, kappa, accuracy, min_kappa, reason} for one line under one certification."""
    agg = scorecard_trust(coach, cert.scorecard).get(line_id)
    if agg is None:
        return {"trusted": False, "kappa": None, "accuracy": None, "min_kappa": cert.min_kappa,
                "reason": f"no rubric tests label '{line_id}' in scorecards/tests/ of scorecard '{cert.scorecard}'"}
    k = agg.get("kappa")
    if k is None:
        return {"trusted": False, "kappa": None, "accuracy": agg.get("accuracy"), "min_kappa": cert.min_kappa,
                "reason": f"kappa for '{line_id}' cannot be computed from its rubric tests (add tests with both pass and fail labels)"}
    ok = k >= cert.min_kappa
    return {
        "trusted": ok,
        "kappa": round(k, 3),
        "accuracy": agg.get("accuracy"),
        "min_kappa": cert.min_kappa,
        "reason": f"rubric tests kappa {k:.2f} {'>=' if ok else '<'} min_kappa {cert.min_kappa:g} of certification '{cert.id}'",
    }


def clear_trust_cache() -> None:
    with _TRUST_LOCK:
        _TRUST_CACHE.clear()


# --------------------------------------------------------------------------- blocking


def _action_for(coach, rep_id: str, gap_id: int | None, cert: Certification) -> tuple[str, str | None]:
    """What the rep must do: practise the assigned scenario (or the certification's first)."""
    scenario = None
    if gap_id is not None:
        asg = q.active_assignment_for_gap(coach.store, gap_id)
        if asg and asg.get("scenario_ids"):
            scenario = asg["scenario_ids"][0]
    if scenario is None:
        scenario = next((s for s in cert.scenarios if coach.playbook.get("scenarios", s)), cert.scenarios[0])
    text = (
        f"pass practice scenario '{scenario}' for certification '{cert.id}': "
        f"coachloop practice start --rep {rep_id} --scenario {scenario}, then practice end and certify the session"
    )
    return text, scenario


def _gate_dict(row: dict) -> dict:
    out = dict(row)
    out["gate_id"] = row["id"]
    return out


def apply_gates_for_gap(coach, gap_id: int, *, cause: int | None = None) -> list[dict]:
    """Block (or shadow-gate) the gap's rep from every activity of every certification covering the
    gap's line: one gate row per (gap, certification, activity). Idempotent: a gate already open
    for that gap is returned as is. Two gaps under one certification keep two gates, so passing a
    practice on one line does not lift the other's."""
    store = coach.store
    gap = q.require_gap(store, gap_id)
    if gap.get("status") not in (None, "open"):
        return []
    pb = coach.playbook
    certs = [a.model for a in pb.all("certifications") if a.model.scorecard == gap["scorecard_id"] and gap["line_id"] in a.model.lines]
    out: list[dict] = []
    for cert in certs:
        trust = line_trust(coach, cert, gap["line_id"])
        status = "blocked" if trust["trusted"] else "shadow"
        action, scenario = _action_for(coach, gap["rep_id"], gap["id"], cert)
        said = (gap.get("statement") or "").split(";")[0].strip().rstrip(".")
        reason = (
            f"open gap {gap['id']} on '{gap['line_id']}'" + (f" ({said})" if said else "")
            + f": certification '{cert.id}' required ({trust['reason']})"
        )
        if status == "shadow":
            reason += "; shadow mode: recorded, not blocking"
        for activity in cert.gates:
            with store.transaction():  # the look for an open gate and the insert are one unit
                existing = [g for g in q.active_gates(store, gap["rep_id"], activity, cert.id) if g.get("gap_id") == gap["id"]]
                if existing:
                    out.append(_gate_dict(existing[0]) | {"existing": True})
                    continue
                gid = q.insert_gate(
                    store,
                    {
                        "rep_id": gap["rep_id"],
                        "activity": activity,
                        "certification_id": cert.id,
                        "gap_id": gap["id"],
                        "status": status,
                        "reason": reason,
                        "action": action,
                        "created_at": now_iso(),
                    },
                )
                store.event(
                    f"gate.{status}",
                    rep_id=gap["rep_id"],
                    subject=f"gate:{gid}",
                    cause=cause if cause is not None else gap.get("cause_event_id"),
                    data={
                        "gate_id": gid,
                        "activity": activity,
                        "certification_id": cert.id,
                        "certification_version": pb.version_of("certifications", cert.id),
                        "gap_id": gap["id"],
                        "line_id": gap["line_id"],
                        "kappa": trust["kappa"],
                        "min_kappa": cert.min_kappa,
                        "scenario_id": scenario,
                        "reason": reason,
                    },
                )
            out.append(_gate_dict(store.one("select * from gates where id = ?", (gid,))) | {"existing": False})
    return out


def block(
    coach,
    rep: str,
    activity: str,
    *,
    by: str,
    reason: str,
    certification_id: str | None = None,
    gap_id: int | None = None,
    action: str | None = None,
) -> dict:
    """Block a rep from an activity by hand (a manager's decision), logged as `gate.blocked`."""
    if not (by or "").strip() or not (reason or "").strip():
        raise ValueError("a manual block needs who (--by NAME) and why (--reason TEXT)")
    rep_row = q.require_rep(coach.store, rep)
    _check_activity(coach, activity)
    if certification_id:
        cert = coach.playbook.certification(certification_id)
        action = action or _action_for(coach, rep_row["id"], gap_id, cert)[0]
    with coach.store.transaction():
        gid = q.insert_gate(
            coach.store,
            {
                "rep_id": rep_row["id"],
                "activity": activity,
                "certification_id": certification_id,
                "gap_id": gap_id,
                "status": "blocked",
                "reason": f"blocked by {by}: {reason}",
                "action": action or f"ask {by} to lift the block",
                "created_at": now_iso(),
            },
        )
        coach.store.event(
            "gate.blocked",
            rep_id=rep_row["id"],
            subject=f"gate:{gid}",
            data={"gate_id": gid, "activity": activity, "by": by, "reason": reason, "manual": True, "certification_id": certification_id},
        )
    return _gate_dict(coach.store.one("select * from gates where id = ?", (gid,)))


def _check_activity(coach, activity: str) -> None:
    acts = coach.playbook.policy.gated_activities
    if activity not in acts:
        raise ValueError(f"activity '{activity}' is not gated: gated_activities in playbook.yaml are {', '.join(acts)}")


# --------------------------------------------------------------------------- checking


_CHECK_SQL = (
    "select r.id as rep, g.id, g.activity, g.certification_id, g.gap_id, g.status, g.reason, g.action, g.created_at "
    "from reps r left join gates g on g.rep_id = r.id and g.activity = ? and g.status in ('blocked', 'shadow') "
    "where r.id = ? order by g.id"
)


def gate_check(coach, rep: str, activity: str) -> dict:
    """May `rep` do `activity` now? {allowed, status, rep_id, activity, reason, action, gates, shadow}.

    status: `allowed`, `blocked`, `shadow` (allowed, but a shadow gate would have blocked) or
    `not_gated` (the activity is not in gated_activities)."""
    rows = coach.store.query(_CHECK_SQL, (activity, rep))
    if not rows:  # a name or alias instead of an id: the slower path
        row = q.require_rep(coach.store, rep)  # raises the clear error for an unknown rep
        rows = coach.store.query(_CHECK_SQL, (activity, row["id"]))
    rep_id = rows[0]["rep"]
    rows = [r for r in rows if r["id"] is not None]
    blocked = [{k: r[k] for k in ("id", "certification_id", "gap_id", "status", "reason", "action", "created_at")} for r in rows if r["status"] == "blocked"]
    shadow = [{k: r[k] for k in ("id", "certification_id", "gap_id", "status", "reason", "action", "created_at")} for r in rows if r["status"] == "shadow"]
    if blocked:
        g = blocked[0]
        return {
            "allowed": False,
            "status": "blocked",
            "rep_id": rep_id,
            "activity": activity,
            "reason": g["reason"],
            "action": g["action"],
            "gates": blocked,
            "shadow": shadow,
        }
    gated = activity in coach.playbook.policy.gated_activities
    if shadow:
        status, reason = "shadow", "allowed: shadow gate only (" + shadow[0]["reason"] + ")"
    elif gated:
        status, reason = "allowed", f"no open gate on {activity}"
    else:
        status, reason = "not_gated", f"'{activity}' is not one of the gated activities ({', '.join(coach.playbook.policy.gated_activities)})"
    return {
        "allowed": True,
        "status": status,
        "rep_id": rep_id,
        "activity": activity,
        "reason": reason,
        "action": shadow[0]["action"] if shadow else None,
        "gates": [],
        "shadow": shadow,
    }


# --------------------------------------------------------------------------- lifting


def lift_gates(
    coach,
    rows: list[dict],
    *,
    by: str,
    reason: str,
    manual: bool,
    cause: int | None = None,
    extra: dict | None = None,
) -> list[dict]:
    """Lift the given gate rows (one event `gate.lifted` each). Used by `lift` and by certify.
    A row lifted meanwhile by another caller is passed over (no second `gate.lifted`)."""
    out = []
    t = now_iso()
    with coach.store.transaction() as db:
        for g in rows:
            if not db.execute(
                "update gates set status = 'lifted', lifted_at = ?, lifted_by = ?, lift_reason = ? "
                "where id = ? and status in ('blocked', 'shadow')",
                (t, by, reason, g["id"]),
            ).rowcount:
                continue
            coach.store.event(
                "gate.lifted",
                rep_id=g["rep_id"],
                subject=f"gate:{g['id']}",
                cause=cause,
                data={
                    "gate_id": g["id"],
                    "activity": g["activity"],
                    "certification_id": g.get("certification_id"),
                    "gap_id": g.get("gap_id"),
                    "previous_status": g["status"],
                    "by": by,
                    "reason": reason,
                    "manual": manual,
                    **(extra or {}),
                },
            )
            out.append(_gate_dict(coach.store.one("select * from gates where id = ?", (g["id"],))))
    return out


def lift(coach, rep: str, activity: str | None = None, *, by: str, reason: str, gate_id: int | None = None) -> list[dict]:
    """Lift a rep's open gates by hand (all of them, those on one activity, or one gate id).

    `by` (who) and `reason` (why) are required and logged in event `gate.lifted`."""
    if not (by or "").strip():
        raise ValueError("lifting a gate by hand needs who is lifting it (--by NAME)")
    if not (reason or "").strip():
        raise ValueError("lifting a gate by hand needs a reason (--reason TEXT); it is logged")
    rep_row = q.require_rep(coach.store, rep)
    rows = q.active_gates(coach.store, rep_row["id"], activity)
    if gate_id is not None:
        rows = [r for r in rows if r["id"] == int(gate_id)]
    if not rows:
        what = f"gate {gate_id}" if gate_id is not None else (f"'{activity}'" if activity else "any activity")
        raise StoreError(f"rep '{rep_row['id']}' has no open gate on {what}; see `coachloop gate list --rep {rep_row['id']}`")
    return lift_gates(coach, rows, by=by.strip(), reason=reason.strip(), manual=True)


def list_gates(coach, rep_id: str | None = None, status: str | None = None) -> list[dict]:
    """Gates, oldest first; `status` one of blocked, shadow, lifted (or None for all)."""
    rid = q.require_rep(coach.store, rep_id)["id"] if rep_id else None
    if status and status not in ("blocked", "shadow", "lifted", "active"):
        raise ValueError(f"status must be blocked, shadow, lifted or active, got '{status}'")
    if status == "active":
        rows = [r for r in q.list_gates(coach.store, rid) if r["status"] in q.ACTIVE_GATE]
    else:
        rows = q.list_gates(coach.store, rid, status)
    return [_gate_dict(r) for r in rows]
