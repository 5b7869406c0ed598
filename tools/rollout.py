"""Rollouts: a learning path or scenario file says whom it targets and by when; when a version of it
goes live, every targeted rep is assigned it, and the loop tracks who has started and passed.

    # paths/path-new-pricing.yaml
    rollout:
      reps: all                 # or a list of rep ids / names
      teams: [smb]              # any of these teams
      segments: [mid-market]    # any of these segments
      open_gap_on: [budget_confirmed]   # reps with an open gap on any of these lines (of the file's scorecard)
      hired_after: 2026-01-01   # reps whose hire_date is after this day
      due: 2026-12-15

Criteria combine with AND (each list with OR); `reps: all` or no criterion at all means every
active rep. One rollout per (artifact, version): the `rollouts` row (unique on kind, artifact_id,
version) and its assignments (`assignments.source = 'rollout'`, `rollout_id`) are written in the
transaction that handles the version's `playbook.changed` event, so a crash or a second server
never assigns a version twice. A new version of the same file supersedes the older rollout: the
older rollout's assignments nobody started yet are cancelled.

A targeted rep has *started* when their rollout assignment is started (or a practice session on
one of the rollout's scenarios began after it landed) and *passed* when that assignment passed or
a passed practice session on one of those scenarios ended after the landing. When every targeted
rep has passed, the rollout's `completed_at` is set to the last pass and `cycle_seconds` to the
time from the file landing to then: the playbook-change cycle time `metrics` reports
(`rollout_cycle_time`). Event `rollout.started` when assigned, `rollout.completed` when done.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timezone
from typing import Any

from playbook.models import Rollout
from store import loop as q
from store.db import StoreError, iso_ms, now_iso, parse_utc

log = logging.getLogger("coachloop")

ROLLOUT_KINDS = ("paths", "scenarios")


# --------------------------------------------------------------------------- targeting


def target_reps(coach, rollout: Rollout, scorecard_id: str | None = None) -> tuple[list[str], list[str]]:
    """(rep ids targeted, names in `reps:` that match no rep). Active reps only."""
    store = coach.store
    reps = store.query("select id, name, team, segment, hire_date from reps where coalesce(active, 1) = 1 order by id")
    unknown: list[str] = []
    if isinstance(rollout.reps, list):
        wanted = set()
        for name in rollout.reps:
            row = q.find_rep(store, name)
            if row is None:
                unknown.append(name)
            else:
                wanted.add(row["id"])
        reps = [r for r in reps if r["id"] in wanted]
    if rollout.teams:
        teams = {t.lower() for t in rollout.teams}
        reps = [r for r in reps if (r.get("team") or "").lower() in teams]
    if rollout.segments:
        segs = {s.lower() for s in rollout.segments}
        reps = [r for r in reps if (r.get("segment") or "").lower() in segs]
    if rollout.hired_after:
        after = rollout.hired_after

        def hired(r: dict) -> bool:
            d = parse_utc(r.get("hire_date"))
            return d is not None and d.date() > after

        reps = [r for r in reps if hired(r)]
    if rollout.open_gap_on:
        sql = "select distinct rep_id from gaps where status = 'open' and line_id in ({})".format(",".join("?" * len(rollout.open_gap_on)))
        params: list[Any] = list(rollout.open_gap_on)
        if scorecard_id:
            sql += " and scorecard_id = ?"
            params.append(scorecard_id)
        with_gap = {r["rep_id"] for r in store.query(sql, params)}
        reps = [r for r in reps if r["id"] in with_gap]
    return [r["id"] for r in reps], unknown


def _scenarios_of(model: Any, kind: str) -> list[str]:
    if kind == "scenarios":
        return [model.id]
    return [st.scenario for st in model.steps]


def _due(rollout: Rollout) -> str | None:
    return rollout.due.isoformat() if isinstance(rollout.due, date) else None


# --------------------------------------------------------------------------- starting a rollout


def start_rollout(coach, kind: str, artifact_id: str, version: str, *, landed_at: str | None = None,
                  cause: int | None = None) -> dict | None:
    """Assign a path/scenario version to every rep its `rollout:` block targets (once per version).

    Returns {rollout_id, kind, artifact_id, version, targeted, reps, unknown, duplicate} or None when
    the artifact (at that version) has no rollout block. Call it inside the orchestrator's
    transaction (it opens its own otherwise)."""
    from tools.paths import assign_path

    if kind not in ROLLOUT_KINDS:
        return None
    store = coach.store
    art = coach.playbook.get(kind, artifact_id)
    if art is None or art.version != version:
        return None  # a newer version is live (its own event follows) or the file is gone
    model = art.model
    rollout: Rollout | None = getattr(model, "rollout", None)
    if rollout is None:
        return None
    landed = landed_at or now_iso()
    with store.transaction() as db:
        existing = store.one("select * from rollouts where kind = ? and artifact_id = ? and version = ?", (kind, artifact_id, version))
        if existing is not None:
            return {"rollout_id": existing["id"], "kind": kind, "artifact_id": artifact_id, "version": version,
                    "targeted": existing["targeted"], "reps": [], "unknown": [], "duplicate": True}
        superseded = _supersede(coach, kind, artifact_id, version)
        scorecard_id = getattr(model, "scorecard", None)
        reps, unknown = target_reps(coach, rollout, scorecard_id)
        cur = db.execute(
            "insert into rollouts (kind, artifact_id, version, landed_at, due, targeted) values (?, ?, ?, ?, ?, ?)",
            (kind, artifact_id, version, landed, _due(rollout), len(reps)),
        )
        rid = cur.lastrowid
        ev = store.event(
            "rollout.started",
            subject=f"rollout:{rid}",
            cause=cause,
            data={"rollout_id": rid, "kind": kind, "artifact_id": artifact_id, "version": version, "path": art.path,
                  "landed_at": landed, "due": _due(rollout), "targeted": len(reps), "reps": reps, "unknown_reps": unknown,
                  "superseded": superseded},
        )
        assigned = []
        for rep in reps:
            if kind == "paths":
                a = assign_path(coach, rep, path_id=artifact_id, source="rollout", rollout_id=rid, due=rollout.due, cause=ev)
            else:
                a = assign_path(coach, rep, scenario_ids=[artifact_id], source="rollout", rollout_id=rid, due=rollout.due, cause=ev)
            assigned.append({"rep_id": rep, "assignment_id": a["assignment_id"]})
    if unknown:
        log.warning("rollout of %s: rep(s) %s in %s match no rep; add them with `coachloop rep add`", art.ref, ", ".join(unknown), art.path)
    return {"rollout_id": rid, "kind": kind, "artifact_id": artifact_id, "version": version, "landed_at": landed,
            "due": _due(rollout), "targeted": len(reps), "reps": reps, "assignments": assigned, "unknown": unknown,
            "superseded": superseded, "duplicate": False, "event_id": ev}


def _supersede(coach, kind: str, artifact_id: str, version: str) -> list[int]:
    """Cancel the not-yet-started assignments of older rollouts of the same artifact."""
    store = coach.store
    old = [r["id"] for r in store.query(
        "select id from rollouts where kind = ? and artifact_id = ? and version != ? and completed_at is null", (kind, artifact_id, version))]
    for rid in old:
        for a in store.query("select id from assignments where rollout_id = ? and status = 'assigned'", (rid,)):
            q.update_assignment(store, a["id"], status="cancelled", completed_at=now_iso())
    return old


# --------------------------------------------------------------------------- progress


def _rollout_scenarios(coach, r: dict) -> list[str]:
    art = coach.playbook.get(r["kind"], r["artifact_id"])
    if art is not None and art.version == r["version"]:
        return _scenarios_of(art.model, r["kind"])
    row = coach.store.one("select text, path from artifact_versions where kind = ? and artifact_id = ? and version = ?",
                          (r["kind"], r["artifact_id"], r["version"]))
    if row:
        from playbook.loader import parse_artifact_text

        model, _ = parse_artifact_text(r["kind"], row["path"], row["text"])
        if model is not None:
            return _scenarios_of(model, r["kind"])
    return [r["artifact_id"]] if r["kind"] == "scenarios" else []


def _progress(coach, r: dict) -> dict:
    """Per targeted rep: assignment, started_at, passed_at."""
    store = coach.store
    landed = parse_utc(r["landed_at"])
    scen = _rollout_scenarios(coach, r)
    reps: dict[str, dict] = {}
    for a in store.query("select * from assignments where rollout_id = ? order by id", (r["id"],)):
        e = reps.setdefault(a["rep_id"], {"rep_id": a["rep_id"], "assignment_id": a["id"], "status": a["status"],
                                          "started_at": None, "passed_at": None})
        e["assignment_id"], e["status"] = a["id"], a["status"]
        if a["status"] in ("started", "passed", "failed") and a.get("started_at"):
            e["started_at"] = e["started_at"] or a["started_at"]
        if a["status"] == "passed" and a.get("completed_at"):
            e["passed_at"] = e["passed_at"] or a["completed_at"]
    if reps and scen:
        marks = ",".join("?" * len(scen))
        rep_marks = ",".join("?" * len(reps))
        for s in store.query(
            f"select rep_id, started_at, ended_at, passed, status from practice_sessions where scenario_id in ({marks})"
            f" and rep_id in ({rep_marks}) order by started_at",
            [*scen, *reps],
        ):
            st = parse_utc(s["started_at"])
            if landed is not None and (st is None or st < landed):
                continue
            e = reps[s["rep_id"]]
            if e["started_at"] is None or (parse_utc(e["started_at"]) or st) > st:
                e["started_at"] = s["started_at"]
            if s["passed"] and s["ended_at"]:
                if e["passed_at"] is None or (parse_utc(s["ended_at"]) or st) < (parse_utc(e["passed_at"]) or st):
                    e["passed_at"] = s["ended_at"]
    for e in reps.values():
        if e["passed_at"] and not e["started_at"]:
            e["started_at"] = e["passed_at"]
    return reps


def refresh_rollouts(coach, *, rep_id: str | None = None, cause: int | None = None) -> list[dict]:
    """Mark complete every running rollout whose targeted reps have all passed (optionally only
    rollouts that target `rep_id`). Returns the rollouts completed now."""
    store = coach.store
    sql = "select * from rollouts where completed_at is null and targeted > 0"
    params: list[Any] = []
    if rep_id:
        sql += " and id in (select rollout_id from assignments where rep_id = ? and rollout_id is not null)"
        params.append(rep_id)
    done = []
    for r in store.query(sql + " order by id", params):
        reps = _progress(coach, r)
        if len(reps) < r["targeted"] or any(e["passed_at"] is None for e in reps.values()):
            continue
        last = max(reps.values(), key=lambda e: parse_utc(e["passed_at"]))
        end = parse_utc(last["passed_at"])
        start = parse_utc(r["landed_at"])
        cycle = max(0.0, (end - start).total_seconds()) if end and start else None
        with store.transaction() as db:
            n = db.execute("update rollouts set completed_at = ?, cycle_seconds = ? where id = ? and completed_at is null",
                           (iso_ms(end), cycle, r["id"])).rowcount
            if n:
                # rollout assignments passed through another practice of the same scenario count as passed
                for e in reps.values():
                    if e["status"] in ("assigned", "started"):
                        q.update_assignment(store, e["assignment_id"], status="passed", completed_at=e["passed_at"])
                store.event("rollout.completed", subject=f"rollout:{r['id']}", cause=cause,
                            data={"rollout_id": r["id"], "kind": r["kind"], "artifact_id": r["artifact_id"], "version": r["version"],
                                  "landed_at": r["landed_at"], "completed_at": iso_ms(end), "cycle_seconds": cycle,
                                  "targeted": r["targeted"], "last_rep": last["rep_id"]})
                done.append({**r, "completed_at": iso_ms(end), "cycle_seconds": cycle})
    return done


def rollout_status(coach, rollout_id: int | None = None, *, refresh: bool = True) -> list[dict]:
    """Each rollout (newest first, or just one): {id, kind, artifact_id, version, landed_at, due,
    targeted, started, passed, missing (rep ids not passed yet), not_started, overdue,
    completed_at, cycle_seconds, cycle_hours, reps: [{rep_id, name, assignment_id, status,
    started_at, passed_at}]}."""
    store = coach.store
    if refresh:
        refresh_rollouts(coach)
    if rollout_id is not None:
        rows = store.query("select * from rollouts where id = ?", (int(rollout_id),))
        if not rows:
            known = [str(r["id"]) for r in store.query("select id from rollouts order by id desc limit 20")]
            raise StoreError(f"unknown rollout {rollout_id} (known: {', '.join(known) or 'none yet'}); "
                             "rollouts start when a path or scenario file with a `rollout:` block goes live")
    else:
        rows = store.query("select * from rollouts order by id desc")
    names = {r["id"]: r["name"] for r in store.query("select id, name from reps")}
    today = datetime.now(timezone.utc).date().isoformat()
    out = []
    for r in rows:
        reps = _progress(coach, r)
        per = [{**e, "name": names.get(e["rep_id"])} for e in sorted(reps.values(), key=lambda e: e["rep_id"])]
        missing = [e["rep_id"] for e in per if not e["passed_at"]]
        cyc = r["cycle_seconds"]
        out.append({
            "id": r["id"], "kind": r["kind"], "artifact_id": r["artifact_id"], "version": r["version"],
            "landed_at": r["landed_at"], "due": r["due"], "targeted": r["targeted"],
            "started": sum(1 for e in per if e["started_at"]), "passed": sum(1 for e in per if e["passed_at"]),
            "missing": missing, "not_started": [e["rep_id"] for e in per if not e["started_at"]],
            "overdue": bool(r["due"] and not r["completed_at"] and r["due"] < today),
            "completed_at": r["completed_at"], "cycle_seconds": cyc,
            "cycle_hours": round(cyc / 3600, 4) if cyc is not None else None,
            "reps": per,
        })
    return out


# --------------------------------------------------------------------------- orchestrator hooks

PROGRESS_EVENTS = ("practice.ended", "certification.passed", "certification.failed", "loop.certified", "practice.started")


def observe(coach, ev: dict) -> list[dict]:
    """After the orchestrator handled an event: practice and certification events may complete a
    rollout of that rep. Returns actions [{kind, text, rep, data}]."""
    if ev.get("type") not in PROGRESS_EVENTS or not ev.get("rep_id"):
        return []
    acts = []
    for r in refresh_rollouts(coach, rep_id=ev["rep_id"], cause=ev["id"]):
        hours = (r["cycle_seconds"] or 0) / 3600
        acts.append({"kind": "rollout.completed", "rep": ev["rep_id"],
                     "text": f"rollout {r['id']} ({r['kind'][:-1]} {r['artifact_id']}) complete: all {r['targeted']} targeted reps "
                             f"passed; playbook-change cycle time {hours:.2f} h",
                     "data": {"rollout_id": r["id"], "cycle_seconds": r["cycle_seconds"], "completed_at": r["completed_at"]}})
    return acts


def on_changed(coach, ev: dict) -> list[dict]:
    """`playbook.changed` for a path or scenario: start its rollout when it has one."""
    data = ev.get("data") or {}
    kind, aid, version = data.get("kind"), data.get("id"), data.get("version")
    if kind not in ROLLOUT_KINDS:
        return []
    r = start_rollout(coach, kind, aid, version, landed_at=data.get("landed_at"), cause=ev["id"])
    if r is None or r.get("duplicate"):
        return []
    text = (f"rolled out {kind[:-1]} {aid} (version {version}) to {r['targeted']} rep(s)"
            + (f": {', '.join(r['reps'][:10])}{' ...' if len(r['reps']) > 10 else ''}" if r["reps"] else ": no rep matched its rollout block")
            + (f"; due {r['due']}" if r.get("due") else "")
            + (f"; unknown reps {', '.join(r['unknown'])}" if r["unknown"] else ""))
    return [{"kind": "rollout.started", "rep": None, "text": text,
             "data": {k: r.get(k) for k in ("rollout_id", "kind", "artifact_id", "version", "landed_at", "due", "targeted", "reps", "unknown")}}]
