"""Learning-path assignments: which practice a rep owes, and with which artifact versions.

`assign_path(coach, rep_id, gap_id=...)` picks the learning path for the gap's rubric line (the
most specific path whose `lines` hold it), puts the scenario generated from the gap's calls first
when there is one, and records an `assignments` row with the gap, the path, the scenarios and the
content versions of every artifact involved (path, scenarios, covering certification), plus event
`path.assigned`. An open gap is never assigned twice: while its assignment is `assigned` or
`started`, the existing one is returned (`duplicate: true`).
"""
from __future__ import annotations

from datetime import date
from typing import Any

from playbook.loader import Playbook, PlaybookError
from playbook.models import Certification, LearningPath
from store import loop as q
from store.db import StoreError, now_iso
from store.versions import record_many


def path_for_line(pb: Playbook, scorecard_id: str, line_id: str) -> LearningPath | None:
    """The most specific learning path for a line: fewest lines, then id."""
    cands = [a.model for a in pb.all("paths") if a.model.scorecard == scorecard_id and line_id in a.model.lines]
    cands.sort(key=lambda p: (len(p.lines), p.id))
    return cands[0] if cands else None


def certifications_for_line(pb: Playbook, scorecard_id: str, line_id: str) -> list[Certification]:
    return [a.model for a in pb.all("certifications") if a.model.scorecard == scorecard_id and line_id in a.model.lines]


def certification_for_scenario(pb: Playbook, scenario_id: str, lines: list[str] | None = None) -> Certification | None:
    """The certification that judges a scenario: one listing it, else one covering its targets."""
    scen = pb.get("scenarios", scenario_id)
    listed = [a.model for a in pb.all("certifications") if scenario_id in a.model.scenarios]
    if listed:
        return listed[0]
    if scen is None:
        return None
    targets = set(lines or scen.model.targets)
    best = None
    for a in pb.all("certifications"):
        c = a.model
        if c.scorecard != scen.model.scorecard:
            continue
        n = len(targets & set(c.lines))
        if n and (best is None or n > best[0]):
            best = (n, c)
    return best[1] if best else None


def versions(pb: Playbook, path_id: str | None, scenario_ids: list[str], cert_ids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    if path_id:
        out[f"paths/{path_id}"] = pb.version_of("paths", path_id) or ""
    for s in scenario_ids:
        out[f"scenarios/{s}"] = pb.version_of("scenarios", s) or ""
    for c in cert_ids:
        out[f"certifications/{c}"] = pb.version_of("certifications", c) or ""
    return out


def _record_versions(coach, refs: dict[str, str]) -> None:
    """Keep the exact text of every artifact version an assignment names (artifact_versions)."""
    pb = coach.playbook
    rows = []
    for ref, version in refs.items():
        kind, aid = ref.split("/", 1)
        art = pb.get(kind, aid)
        if art is not None and version:
            rows.append((kind, aid, version, art.path, art.text))
    record_many(coach.store, rows)


def _due(due: Any) -> str | None:
    if due is None or due == "":
        return None
    if isinstance(due, date):
        return due.isoformat()
    try:
        return date.fromisoformat(str(due)[:10]).isoformat()
    except ValueError:
        raise ValueError(f"due: '{due}' is not a date; use YYYY-MM-DD") from None


def _public(row: dict, **extra: Any) -> dict:
    out = dict(row)
    out["assignment_id"] = row["id"]
    out.update(extra)
    return out


def _existing_for_gap(store, gap_id: int) -> dict | None:
    """The gap's active assignment as `assign_path` returns a duplicate, or None."""
    existing = q.active_assignment_for_gap(store, gap_id)
    if existing is None:
        return None
    certs = [k.split("/", 1)[1] for k in existing["artifact_versions"] if k.startswith("certifications/")]
    return _public(existing, duplicate=True, certifications=certs)


def assign_path(
    coach,
    rep_id: str,
    *,
    gap_id: int | None = None,
    path_id: str | None = None,
    scenario_ids: list[str] | None = None,
    source: str = "gap",
    rollout_id: int | None = None,
    due: Any = None,
    cause: int | None = None,
) -> dict:
    """Assign a learning path (and its scenarios) to a rep; returns the assignment row plus
    `assignment_id`, `certifications` and `duplicate` (True when the gap already had one)."""
    store = coach.store
    pb = coach.playbook
    rep = q.require_rep(store, rep_id)
    gap = None
    if gap_id is not None:
        gap = q.require_gap(store, gap_id)
        if gap["rep_id"] != rep["id"]:
            raise StoreError(f"gap {gap['id']} belongs to rep '{gap['rep_id']}', not '{rep['id']}'")
        existing = _existing_for_gap(store, gap["id"])
        if existing is not None:
            return existing
    if gap is None and path_id is None and not scenario_ids:
        raise ValueError("assign_path needs a gap, a path or scenarios (--gap ID or --path P)")

    path = None
    if path_id:
        path = pb.path(path_id)
    elif gap is not None:
        path = path_for_line(pb, gap["scorecard_id"], gap["line_id"])

    scen: list[str] = []
    if scenario_ids:
        for s in scenario_ids:
            pb.require("scenarios", s)
            scen.append(s)
    else:
        if gap is not None:
            from .scenario import scenarios_for_gap

            generated = scenarios_for_gap(coach, gap["id"])
            if generated:
                scen.append(generated[-1])  # the newest (hardest) one first
        if path is not None:
            scen += [st.scenario for st in path.steps if st.scenario not in scen]
    if not scen:
        where = f"gap {gap['id']} (line {gap['line_id']})" if gap else f"path {path_id}"
        raise PlaybookError(
            f"nothing to assign for {where}: no learning path in {pb.root / 'paths'} covers the line and no scenario was "
            "generated for it; add a path or run `coachloop scenario generate --gap ID` first"
        )

    cert_ids: list[str] = []
    if gap is not None:
        cert_ids = [c.id for c in certifications_for_line(pb, gap["scorecard_id"], gap["line_id"])]
    else:
        for s in scen:
            c = certification_for_scenario(pb, s)
            if c and c.id not in cert_ids:
                cert_ids.append(c.id)
    refs = versions(pb, path.id if path else None, scen, cert_ids)
    row = {
        "rep_id": rep["id"],
        "gap_id": gap["id"] if gap else None,
        "path_id": path.id if path else None,
        "path_version": pb.version_of("paths", path.id) if path else None,
        "scenario_ids": scen,
        "artifact_versions": refs,
        "source": source,
        "rollout_id": rollout_id,
        "status": "assigned",
        "due": _due(due),
        "created_at": now_iso(),
    }
    with store.transaction():
        if gap is not None:  # checked again under the write lock: another caller may have assigned it meanwhile
            existing = _existing_for_gap(store, gap["id"])
            if existing is not None:
                return existing
        aid = q.insert_assignment(store, row)
        _record_versions(coach, refs)
        store.event(
            "path.assigned",
            rep_id=rep["id"],
            subject=f"assignment:{aid}",
            cause=cause if cause is not None else (gap or {}).get("cause_event_id"),
            data={
                "assignment_id": aid,
                "gap_id": row["gap_id"],
                "path_id": row["path_id"],
                "scenario_ids": scen,
                "artifact_versions": refs,
                "source": source,
                "due": row["due"],
            },
        )
    return _public(q.get_assignment(store, aid), duplicate=False, certifications=cert_ids)


def next_scenario(coach, assignment: dict, tried: list[str]) -> str | None:
    """The next practice after a failed attempt: the next step of the path not tried yet, else a
    scenario of the covering certification not tried yet (harder first)."""
    pb = coach.playbook
    order: list[str] = list(assignment.get("scenario_ids") or [])
    if assignment.get("path_id") and pb.get("paths", assignment["path_id"]):
        order += [st.scenario for st in pb.path(assignment["path_id"]).steps]
    for ref in assignment.get("artifact_versions") or {}:
        if ref.startswith("certifications/") and pb.get("certifications", ref.split("/", 1)[1]):
            cert = pb.certification(ref.split("/", 1)[1])
            extra = [s for s in cert.scenarios if pb.get("scenarios", s)]
            extra.sort(key=lambda s: -pb.scenario(s).difficulty)
            order += extra
    for s in order:
        if s not in tried and pb.get("scenarios", s):
            return s
    return None


def list_assignments(coach, rep_id: str | None = None, status: str | None = None) -> list[dict]:
    """A rep's assignments (or everyone's), oldest first."""
    rid = q.require_rep(coach.store, rep_id)["id"] if rep_id else None
    return [_public(r) for r in q.list_assignments(coach.store, rid, status)]
