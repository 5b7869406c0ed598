"""A scorecard changed: re-score the stored calls it affects, close the gaps of removed lines.

When a new version of a scorecard goes live (event `playbook.changed`, handled by the
orchestrator through `tools.live`), `plan_change(coach, event)` compares the rubric lines of the
previous version with the new one (`line_changes`):

- a line **removed**: every open gap on it closes at once with the reason "rubric line X removed
  from scorecard Y in version V" (event `gap.closed`), its active gates are lifted and its active
  assignments cancelled;
- lines **changed** (any field differs) or **added**, or scorecard fields the engine reads
  (`small_talk`, `opening_turns`, `closing_turns`): a background job (a `jobs` row, kind
  `rubric_change`) re-scores the stored calls of that scorecard.

The job (`run_job` / `run_pending_jobs`) walks the calls in id order, in chunks. A chunk is scored
outside any transaction (tool calls keep flowing), then written in one transaction that also
moves the job's cursor, so a crash or restart resumes after the last committed chunk and nothing
is re-scored twice (a call re-scored by someone else meanwhile is skipped). For each call only the lines that differ between
the version it was scored under and the live version are scored again (all lines when that
version's text is unknown or the engine changed); verdicts of unchanged lines stay as they are,
overridden lines keep the human verdict, verdicts of removed lines are dropped. A call whose
verdicts flip gets `call.rescored`. When the walk is done and live verdicts flipped, attribution
follows the new verdicts: the team is attributed again on that scorecard in one pass (new gaps
open with `gap.opened`, statements and team rates refresh), and open gaps on changed lines of the
reps whose calls flipped close with the reason when the re-scored calls no longer show them. The job ends
with `rubric.rescored` (counts and flips per line).

A newer version of the same scorecard supersedes a running job (status `superseded`): the new job
covers every call not yet at the newest version.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

from playbook.loader import parse_recorded_scorecard
from playbook.models import RubricLine, Scorecard
from store import calls as call_store
from store.db import Store, dumps, now_iso
from tools.scoring import tune_gc_for_scoring_worker

log = logging.getLogger("coachloop")

JOB_KIND = "rubric_change"
ENGINE_FIELDS = ("small_talk", "opening_turns", "closing_turns")  # scorecard fields that change every line's verdicts


# --------------------------------------------------------------------------- comparing versions


def _line_dump(line: RubricLine) -> dict:
    return line.model_dump(mode="json")


def line_changes(old: Scorecard | None, new: Scorecard | None) -> dict:
    """What changed between two scorecard models, line by line.

    Returns {added: [ids], removed: [ids], changed: [{id, fields: [names], before: {..}, after: {..}}],
    scorecard_fields: [names of changed scorecard-level fields], rescore_all: bool,
    unchanged: [ids]} (ids in the new scorecard's order; removed in the old one's)."""
    old_lines = {ln.id: ln for ln in (old.lines if old else [])}
    new_lines = {ln.id: ln for ln in (new.lines if new else [])}
    added = [lid for lid in new_lines if lid not in old_lines]
    removed = [lid for lid in old_lines if lid not in new_lines]
    changed, unchanged = [], []
    for lid, ln in new_lines.items():
        if lid not in old_lines:
            continue
        a, b = _line_dump(old_lines[lid]), _line_dump(ln)
        fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if fields:
            changed.append({"id": lid, "fields": fields, "before": {k: a.get(k) for k in fields}, "after": {k: b.get(k) for k in fields}})
        else:
            unchanged.append(lid)
    sc_fields: list[str] = []
    if old is not None and new is not None:
        a = old.model_dump(mode="json", exclude={"lines"})
        b = new.model_dump(mode="json", exclude={"lines"})
        sc_fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return {
        "added": added,
        "removed": removed,
        "changed": changed,
        "unchanged": unchanged,
        "scorecard_fields": sc_fields,
        "rescore_all": any(f in ENGINE_FIELDS for f in sc_fields),
    }


def parse_scorecard(text: str, path: str = "scorecards/(stored).yaml") -> Scorecard | None:
    """The scorecard a stored version served (its learned examples merged in, when it had any)."""
    return parse_recorded_scorecard(text, path)


class _VersionCache:
    """Scorecard models of stored versions, and the lines to re-score from each to the live one."""

    def __init__(self, store: Store, scorecard_id: str, live: Scorecard, live_version: str):
        self.store, self.sid, self.live, self.live_version = store, scorecard_id, live, live_version
        self._todo: dict[str, tuple[list[str], list[str]] | None] = {}

    def todo(self, version: str | None) -> tuple[list[str], list[str]] | None:
        """(lines to score, lines to drop) from `version` to live; None = score every line."""
        if not version:
            return None
        if version not in self._todo:
            row = self.store.one(
                "select text, path from artifact_versions where kind = 'scorecards' and artifact_id = ? and version = ?",
                (self.sid, version),
            )
            old = parse_scorecard(row["text"], row["path"]) if row else None
            if old is None:
                self._todo[version] = None
            else:
                ch = line_changes(old, self.live)
                if ch["rescore_all"]:
                    self._todo[version] = None
                else:
                    self._todo[version] = ([c["id"] for c in ch["changed"]] + ch["added"], ch["removed"])
        return self._todo[version]


# --------------------------------------------------------------------------- the orchestrator's step


def _previous_model(coach, scorecard_id: str, previous: str | None) -> Scorecard | None:
    if not previous:
        return None
    row = coach.store.one(
        "select text, path from artifact_versions where kind = 'scorecards' and artifact_id = ? and version = ?",
        (scorecard_id, previous),
    )
    return parse_scorecard(row["text"], row["path"]) if row else None


def _close_gap(coach, gap: dict, reason: str, *, cause: int | None, data: dict, details: dict | None = None) -> tuple[int, list[dict]]:
    """Close a gap a rubric change made moot (inside the caller's transaction): event `gap.closed`,
    its open gates lifted and its active assignments cancelled. Returns (event id, gates lifted)."""
    from store import loop as q
    from tools.gates import lift_gates

    store = coach.store
    fields = {"status": "closed", "closed_at": now_iso(), "close_reason": reason}
    if details is not None:
        fields["details"] = dumps(details)
    store.db["gaps"].update(gap["id"], fields)
    eid = store.event("gap.closed", rep_id=gap["rep_id"], subject=f"gap:{gap['id']}", cause=cause,
                      data={"gap_id": gap["id"], "line": gap["line_id"], "reason": reason, **data})
    gates = [g for g in q.active_gates(store, gap["rep_id"]) if g.get("gap_id") == gap["id"]]
    if gates:
        lift_gates(coach, gates, by="rubric_change", reason=reason, manual=False, cause=eid)
    for asg in store.query("select id from assignments where gap_id = ? and status in ('assigned', 'started')", (gap["id"],)):
        q.update_assignment(store, asg["id"], status="cancelled", completed_at=now_iso())
    return eid, gates


def close_removed_line_gaps(coach, scorecard_id: str, line_id: str, version: str, *, cause: int | None = None) -> list[dict]:
    """Close every open gap on a rubric line that is no longer in the scorecard; lift its gates and
    cancel its active assignments. Returns [{gap_id, rep_id, line, reason, event_id}]."""
    return _close_gaps_where(
        coach, "scorecard_id = ? and line_id = ?", (scorecard_id, line_id),
        f"rubric line {line_id} removed from scorecard {scorecard_id} in version {version}",
        cause=cause, details={"removed_in_version": version},
        data={"scorecard": scorecard_id, "version": version, "removed": True})


def close_removed_scorecard_gaps(coach, scorecard_id: str, last_version: str | None, *, cause: int | None = None) -> list[dict]:
    """Close every open gap of a scorecard whose file was removed from the playbook (its lines
    are no longer measured, so nothing could close them); lift their gates and cancel their
    active assignments. Returns [{gap_id, rep_id, line, reason, event_id, gates_lifted}]."""
    return _close_gaps_where(
        coach, "scorecard_id = ?", (scorecard_id,),
        f"scorecard {scorecard_id} removed from the playbook" + (f" (last version {last_version})" if last_version else ""),
        cause=cause, details={"scorecard_removed": last_version or True},
        data={"scorecard": scorecard_id, "version": last_version, "removed": True, "scorecard_removed": True})


def _close_gaps_where(coach, where: str, params: tuple, reason: str, *, cause: int | None, details: dict,
                      data: dict) -> list[dict]:
    store = coach.store
    out = []
    with store.transaction():
        gaps = store.query(f"select * from gaps where {where} and status = 'open' order by id", params)
        for gap in gaps:
            try:
                kept = json.loads(gap.get("details") or "{}")
            except ValueError:
                kept = {}
            kept.update(closed_by="rubric_change", **details)
            eid, gates = _close_gap(coach, gap, reason, cause=cause, details=kept, data=data)
            out.append({"gap_id": gap["id"], "rep_id": gap["rep_id"], "line": gap["line_id"], "reason": reason,
                        "event_id": eid, "gates_lifted": [g["id"] for g in gates]})
    return out


def plan_removal(coach, event: dict) -> list[dict]:
    """Handle `playbook.removed` for a scorecard (inside the orchestrator's transaction): close its
    open gaps, and supersede its pending re-scoring. Nothing happens when the file is back by the
    time the event is handled (an editor that saves by delete-and-write). Returns actions."""
    data = event.get("data") or {}
    sid = data.get("id")
    if not sid or coach.playbook.get("scorecards", sid) is not None:
        return []
    acts = [{"kind": "gap.closed", "rep": g["rep_id"], "text": f"closed gap {g['gap_id']}: {g['reason']}", "data": g}
            for g in close_removed_scorecard_gaps(coach, sid, data.get("previous"), cause=event["id"])]
    store = coach.store
    with store.transaction() as db:
        for j in store.query("select id, params from jobs where kind = ? and status in ('pending', 'running')", (JOB_KIND,)):
            if json.loads(j["params"] or "{}").get("scorecard") == sid:
                db.execute("update jobs set status = 'superseded', updated_at = ? where id = ?", (now_iso(), j["id"]))
                acts.append({"kind": "rescore.superseded", "rep": None, "data": {"job_id": j["id"], "scorecard": sid},
                             "text": f"re-scoring job {j['id']} stopped: scorecard {sid} was removed"})
    return acts


def plan_change(coach, event: dict) -> list[dict]:
    """Handle `playbook.changed` for a scorecard (inside the orchestrator's transaction).

    Closes the gaps of removed lines and queues the re-scoring job. Returns actions
    [{kind, text, rep, data}]."""
    data = event.get("data") or {}
    sid, version, previous = data.get("id"), data.get("version"), data.get("previous")
    store = coach.store
    pb = coach.playbook
    art = pb.get("scorecards", sid)
    if art is None or art.version != version:
        # the file changed again since (a newer event follows) or went away: the newer event plans it
        row = store.one("select text, path from artifact_versions where kind = 'scorecards' and artifact_id = ? and version = ?", (sid, version))
        new_model = parse_scorecard(row["text"], row["path"]) if row else None
    else:
        new_model = art.model
    if new_model is None:
        return []
    old_model = _previous_model(coach, sid, previous)
    ch = line_changes(old_model, new_model) if old_model is not None else None
    acts: list[dict] = []
    if ch is not None:
        for lid in ch["removed"]:
            for g in close_removed_line_gaps(coach, sid, lid, version, cause=event["id"]):
                acts.append({"kind": "gap.closed", "rep": g["rep_id"], "text": f"closed gap {g['gap_id']}: {g['reason']}", "data": g})
        needs = bool(ch["changed"] or ch["added"] or ch["removed"] or ch["rescore_all"])
    else:
        needs = bool(previous)  # previous text unknown: re-score whatever is not at the new version
    if not needs:
        return acts
    n = store.one(
        "select count(*) as n from calls where scorecard_id = ? and coalesce(scorecard_version, '') != ?", (sid, version)
    )["n"]
    if n == 0:
        return acts
    job_id = queue_job(coach, sid, version, previous=previous, changes=ch, cause=event["id"])
    what = []
    if ch:
        if ch["changed"]:
            what.append("changed " + ", ".join(c["id"] for c in ch["changed"]))
        if ch["added"]:
            what.append("added " + ", ".join(ch["added"]))
        if ch["removed"]:
            what.append("removed " + ", ".join(ch["removed"]))
        if ch["rescore_all"]:
            what.append("scorecard fields " + ", ".join(f for f in ch["scorecard_fields"] if f in ENGINE_FIELDS))
    acts.append({"kind": "rescore.queued", "rep": None,
                 "text": f"scorecard {sid} version {version} ({'; '.join(what) or 'text changed'}): re-scoring {n} stored calls in the background (job {job_id})",
                 "data": {"job_id": job_id, "scorecard": sid, "version": version, "calls": n, "changes": ch}})
    return acts


def queue_job(coach, scorecard_id: str, version: str, *, previous: str | None = None, changes: dict | None = None,
              cause: int | None = None) -> int:
    """Create (or return the existing) re-scoring job for a scorecard version; older running jobs
    of the same scorecard are superseded."""
    store = coach.store
    with store.transaction() as db:
        for j in store.query("select id, params from jobs where kind = ? and status in ('pending', 'running')", (JOB_KIND,)):
            p = json.loads(j["params"] or "{}")
            if p.get("scorecard") != scorecard_id:
                continue
            if p.get("version") == version:
                return j["id"]
            db.execute("update jobs set status = 'superseded', updated_at = ? where id = ?", (now_iso(), j["id"]))
        total = store.one(
            "select count(*) as n from calls where scorecard_id = ? and coalesce(scorecard_version, '') != ?", (scorecard_id, version)
        )["n"]
        params = {
            "scorecard": scorecard_id,
            "version": version,
            "previous": previous,
            "changed": [c["id"] for c in (changes or {}).get("changed", [])],
            "added": (changes or {}).get("added", []),
            "removed": (changes or {}).get("removed", []),
            "cause": cause,
        }
        cur = db.execute(
            "insert into jobs (kind, status, params, cursor, created_at, updated_at) values (?, 'pending', ?, ?, ?, ?)",
            (JOB_KIND, dumps(params), dumps({"after_id": 0, "done": 0, "total": total, "rescored": 0, "changed_calls": 0,
                                              "flips": {}, "reps": []}), now_iso(), now_iso()),
        )
        job_id = cur.lastrowid
        store.event("rescore.queued", subject=f"job:{job_id}", cause=cause,
                    data={"job_id": job_id, "scorecard": scorecard_id, "version": version, "calls": total, **{k: params[k] for k in ("changed", "added", "removed")}})
    return job_id


# --------------------------------------------------------------------------- the background job


def pending_jobs(coach) -> list[dict]:
    rows = coach.store.query("select * from jobs where kind = ? and status in ('pending', 'running') order by id", (JOB_KIND,))
    for r in rows:
        r["params"] = json.loads(r["params"] or "{}")
        r["cursor"] = json.loads(r["cursor"] or "{}")
    return rows


def job_status(coach, job_id: int | None = None) -> list[dict]:
    """Re-scoring jobs (newest first): {id, status, scorecard, version, done, total, rescored, changed_calls, flips}."""
    sql = "select * from jobs where kind = ?"
    params: list[Any] = [JOB_KIND]
    if job_id is not None:
        sql += " and id = ?"
        params.append(int(job_id))
    out = []
    for r in coach.store.query(sql + " order by id desc", params):
        p, c = json.loads(r["params"] or "{}"), json.loads(r["cursor"] or "{}")
        out.append({"id": r["id"], "status": r["status"], "scorecard": p.get("scorecard"), "version": p.get("version"),
                    "previous": p.get("previous"), "changed": p.get("changed"), "added": p.get("added"), "removed": p.get("removed"),
                    "done": c.get("done", 0), "total": c.get("total", 0), "rescored": c.get("rescored", 0),
                    "changed_calls": c.get("changed_calls", 0), "flips": c.get("flips", {}), "created_at": r["created_at"],
                    "updated_at": r["updated_at"]})
    return out


def _effective_engine(coach):
    from tools.calls import _offline_version, pick_engine

    name, client = pick_engine(coach, None)
    version = client.engine_version if client is not None else _offline_version()
    return name, client, version


def _lines_to_score(call: dict, card: Scorecard, todo: tuple[list[str], list[str]] | None,
                    engine: tuple[str, Any, str]) -> list[RubricLine]:
    if call.get("engine") != engine[0] or call.get("engine_version") != engine[2]:
        todo = None  # scored by another engine (version): every line again
    return list(card.lines) if todo is None else [ln for ln in card.lines if ln.id in set(todo[0])]


def score_lines(turns: Any, fmt: str | None, source: str | None, rep_speaker: str | None, card: Scorecard,
                lines: list[RubricLine], version: str, engine: str = "offline", client: Any = None) -> dict[str, dict]:
    """Verdicts of `lines` on one stored call's turns: {line_id: {line_id, verdict, turn, quote, reason}}."""
    from tools.calls import _score_turns
    from tools.transcripts.model import Transcript

    if not lines:
        return {}
    turns = json.loads(turns or "[]") if isinstance(turns, str) else (turns or [])
    tr = Transcript.from_turn_dicts(turns, format=fmt or "turns", source=source or "")
    if rep_speaker:
        tr.assign_rep(rep_speaker)
    sub = card if len(lines) == len(card.lines) else card.model_copy(update={"lines": lines})
    scored = _score_turns(tr.turns, sub, version, engine, client)
    return {ln.id: {"line_id": ln.id, "verdict": ln.verdict, "turn": ln.turn, "quote": ln.quote, "reason": ln.reason}
            for ln in scored.lines}


def _store_rescore(coach, call: dict, card: Scorecard, version: str, new: dict[str, dict], old: dict[str, dict],
                   engine: tuple[str, Any, str]) -> tuple[list[dict], float]:
    """Write one call's new verdicts (unchanged lines keep theirs; overrides win); returns (changes, score)."""
    from tools.calls import weighted_score

    store = coach.store
    merged, effective = [], {}
    for ln in card.lines:
        o = old.get(ln.id)
        if ln.id in new:
            merged.append(new[ln.id])
            effective[ln.id] = o["verdict"] if o and o["overridden_at"] else new[ln.id]["verdict"]
        elif o is not None:
            merged.append({"line_id": ln.id, "verdict": o["engine_verdict"] or o["verdict"], "turn": o["turn"], "quote": o["quote"],
                           "reason": o["reason"]})
            effective[ln.id] = o["verdict"]
    changes = call_store.update_scoring(store, call["id"], merged, scorecard_version=version, engine=engine[0], engine_version=engine[2])
    score = weighted_score(card, effective)
    store.db.execute("update calls set score = ? where id = ?", (score, call["id"]))
    return changes, score


def run_job(coach, job_id: int, *, chunk: int = 500, max_seconds: float | None = None,
            progress: Callable[[int, int], None] | None = None, stop: Callable[[], bool] | None = None,
            workers: int | None = None) -> dict:
    """Run (or resume) one re-scoring job until done, `max_seconds` elapse, or `stop()` says so.
    `workers` > 1 scores in that many processes (offline engine only; the server keeps 1 so tool
    calls stay responsive). Returns the job's status dict (see `job_status`)."""
    store = coach.store
    t0 = time.perf_counter()
    row = store.one("select * from jobs where id = ? and kind = ?", (int(job_id), JOB_KIND))
    if row is None:
        raise ValueError(f"unknown re-scoring job {job_id}; list them with `coachloop jobs`")
    if row["status"] not in ("pending", "running"):
        return job_status(coach, job_id)[0]
    params = json.loads(row["params"] or "{}")
    sid, version = params["scorecard"], params["version"]
    art = coach.playbook.get("scorecards", sid)
    if art is None or art.version != version:
        # a newer version is live (its own job follows) or the scorecard is gone
        with store.transaction() as db:
            db.execute("update jobs set status = 'superseded', updated_at = ? where id = ?", (now_iso(), job_id))
        log.info("re-scoring job %s superseded: scorecard %s is no longer at version %s", job_id, sid, version)
        return job_status(coach, job_id)[0]
    card: Scorecard = art.model
    cache = _VersionCache(store, sid, card, version)
    engine = _effective_engine(coach)
    if row["status"] == "pending":
        with store.transaction() as db:
            db.execute("update jobs set status = 'running', updated_at = ? where id = ? and status = 'pending'", (now_iso(), job_id))
    pool = None
    if workers and workers > 1 and engine[0] == "offline":
        import multiprocessing

        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        pool = ctx.Pool(workers, initializer=_worker_init, initargs=(card, version))
    try:
        return _walk(coach, job_id, params, card, version, cache, engine, chunk, t0, max_seconds, progress, stop, pool)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()  # reap the worker processes (terminate alone leaves them to the garbage collector)


_W: dict[str, Any] = {}


def _worker_init(card: Scorecard, version: str) -> None:
    _W["card"], _W["version"] = card, version
    tune_gc_for_scoring_worker()


def _worker_score(args: tuple) -> dict[str, dict]:
    turns, fmt, source, rep_speaker, line_ids = args
    card: Scorecard = _W["card"]
    lines = [ln for ln in card.lines if ln.id in set(line_ids)]
    return score_lines(turns, fmt, source, rep_speaker, card, lines, _W["version"])


def _walk(coach, job_id, params, card, version, cache, engine, chunk, t0, max_seconds, progress, stop, pool) -> dict:
    store = coach.store
    sid = params["scorecard"]
    cursor: dict = {}
    while True:
        if stop is not None and stop():
            break
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            break
        # 1. read the next chunk and score it outside any transaction: tool calls keep flowing
        cur_row = store.one("select status, cursor from jobs where id = ?", (job_id,))
        if cur_row["status"] != "running":
            break
        after = int(json.loads(cur_row["cursor"] or "{}").get("after_id", 0))
        batch = store.query(
            "select id, rep_id, live, scorecard_version, engine, engine_version, turns, format, source_name, rep_speaker, score"
            " from calls where scorecard_id = ? and id > ? and coalesce(scorecard_version, '') != ? order by id limit ?",
            (sid, after, version, chunk),
        )
        news: dict[int, dict] = {}
        if batch:
            todo = [(c, _lines_to_score(c, card, cache.todo(c["scorecard_version"]), engine)) for c in batch]
            if pool is not None:
                args = [(c["turns"], c["format"], c["source_name"], c["rep_speaker"], [ln.id for ln in lines]) for c, lines in todo]
                news = dict(zip((c["id"] for c in batch), pool.map(_worker_score, args, chunksize=8)))
            else:
                for c, lines in todo:
                    if stop is not None and stop():
                        return job_status(coach, job_id)[0]  # nothing of this chunk written: redone on resume
                    news[c["id"]] = score_lines(c["turns"], c["format"], c["source_name"], c["rep_speaker"], card, lines,
                                                version, engine[0], engine[1])
        # 2. write the chunk and move the cursor in one transaction (a crash redoes just this chunk)
        with store.transaction() as db:
            cur_row = store.one("select status, cursor from jobs where id = ?", (job_id,))
            if cur_row["status"] != "running":
                break
            cursor = json.loads(cur_row["cursor"] or "{}")
            if int(cursor.get("after_id", 0)) != after:
                continue  # another process moved the job on meanwhile: read again
            if not batch:
                _finish(coach, job_id, params, cursor)
                break
            flips = cursor.setdefault("flips", {})
            reps = set(cursor.get("reps", []))
            olds: dict[int, dict[str, dict]] = {}
            marks = ",".join("?" * len(batch))
            for v in store.query(f"select * from verdicts where call_id in ({marks})", [c["id"] for c in batch]):
                olds.setdefault(v["call_id"], {})[v["line_id"]] = v
            last_id, n_read = batch[-1]["id"], len(batch)
            current = {r["id"]: r["scorecard_version"] for r in store.query(
                f"select id, scorecard_version from calls where id in ({marks})", [c["id"] for c in batch])}
            batch = [c for c in batch if c["id"] in current and current[c["id"]] == c["scorecard_version"]]
            for call in batch:
                before_version = call["scorecard_version"]
                changes, score = _store_rescore(coach, call, card, version, news[call["id"]], olds.get(call["id"], {}), engine)
                cursor["rescored"] = cursor.get("rescored", 0) + 1
                real = [c for c in changes if c["before"] != c["after"] or c["engine_before"] != c["engine_after"]]
                if real:
                    cursor["changed_calls"] = cursor.get("changed_calls", 0) + 1
                    for c in real:
                        key = f"{c['before']}->{c['after']}"
                        flips.setdefault(c["line"], {})
                        flips[c["line"]][key] = flips[c["line"]].get(key, 0) + 1
                    if call["live"]:
                        reps.add(call["rep_id"])
                    store.event(
                        "call.rescored",
                        rep_id=call["rep_id"],
                        subject=f"call:{call['id']}",
                        cause=params.get("cause"),
                        data={"scorecard": sid, "version": version, "before_version": before_version, "score": score,
                              "before_score": call["score"], "live": bool(call["live"]), "job_id": job_id,
                              "flips": [{"line": c["line"], "before": c["before"], "after": c["after"]} for c in real]},
                    )
            cursor["after_id"] = last_id
            cursor["done"] = cursor.get("done", 0) + n_read
            cursor["reps"] = sorted(reps)
            cursor["total"] = max(cursor.get("total", 0), cursor["done"])
            db.execute("update jobs set cursor = ?, updated_at = ? where id = ?", (dumps(cursor), now_iso(), job_id))
        if progress:
            progress(cursor["done"], cursor.get("total", 0))
    return job_status(coach, job_id)[0]


def _finish(coach, job_id: int, params: dict, cursor: dict) -> None:
    """Inside the last chunk's transaction: attribution follows the new verdicts; job done."""
    from tools.attribute import attribute

    store = coach.store
    sid, version = params["scorecard"], params["version"]
    lines_touched = set(params.get("changed", [])) | set(params.get("added", []))
    opened, closed = [], []
    end_ev = store.event(
        "rubric.rescored",
        subject=f"scorecard:{sid}",
        cause=params.get("cause"),
        data={"job_id": job_id, "scorecard": sid, "version": version, "calls": cursor.get("done", 0),
              "rescored": cursor.get("rescored", 0), "changed_calls": cursor.get("changed_calls", 0),
              "flips": cursor.get("flips", {}), "reps": cursor.get("reps", [])},
    )
    reps = [r for r in cursor.get("reps", []) if store.one("select id from reps where id = ?", (r,))]
    if reps:
        # one team-wide pass: the team rates every gap statement quotes changed too
        gaps_now = attribute(coach, None, scorecard_id=sid, cause=end_ev)
        opened = [g["gap_id"] for g in gaps_now if g.get("new")]
        still = {(g["rep"], g["line"]) for g in gaps_now}
        marks = ",".join("?" * len(reps))
        for gap in store.query(f"select * from gaps where scorecard_id = ? and status = 'open' and rep_id in ({marks})", [sid, *reps]):
            rep = gap["rep_id"]
            if gap["line_id"] not in lines_touched or (rep, gap["line_id"]) in still:
                continue
            reason = (f"rubric line {gap['line_id']} changed in scorecard {sid} version {version}: "
                      "the re-scored calls no longer show the gap")
            _close_gap(coach, gap, reason, cause=end_ev, data={"scorecard": sid, "version": version})
            closed.append(gap["id"])
    cursor["opened_gaps"], cursor["closed_gaps"] = opened, closed
    store.db.execute("update jobs set status = 'done', cursor = ?, updated_at = ? where id = ?", (dumps(cursor), now_iso(), job_id))
    log.info("re-scoring job %s done: scorecard %s v%s, %s calls, %s changed, gaps opened %s closed %s", job_id, sid, version,
             cursor.get("done"), cursor.get("changed_calls"), opened, closed)


def run_pending_jobs(coach, *, chunk: int = 500, max_seconds: float | None = None,
                     stop: Callable[[], bool] | None = None, workers: int | None = None) -> list[dict]:
    """Run every pending/running re-scoring job (oldest first); returns their status dicts."""
    out = []
    t0 = time.perf_counter()
    for j in pending_jobs(coach):
        left = None if max_seconds is None else max(0.0, max_seconds - (time.perf_counter() - t0))
        out.append(run_job(coach, j["id"], chunk=chunk, max_seconds=left, stop=stop, workers=workers))
    return out
