"""Rubric changes on stored calls: a changed line re-scores the calls (background job, resumable,
only the changed lines), verdict flips are visible and attribution follows; a removed line closes
its gaps with the reason."""
from __future__ import annotations

import json

import pytest

from livekit import IMPOSSIBLE, edit_line, events, remove_line, seed_demo
from server.orchestrator import Orchestrator
from tools import rubric_change
from tools.attribute import attribute
from tools.context import Coach
from tools.live import enable_live
from tools.rubric_change import job_status, line_changes, run_pending_jobs


def _verdicts(coach, line=None):
    sql = "select call_id, line_id, verdict, engine_verdict, scorecard_version from verdicts"
    rows = coach.store.query(sql + (" where line_id = ?" if line else "") + " order by call_id, line_id", (line,) if line else ())
    return {(r["call_id"], r["line_id"]): r for r in rows}


def _change(coach, playbook_dir, **fields):
    edit_line(playbook_dir, "discovery", "budget_confirmed", **fields)
    coach.reload()
    return Orchestrator(coach).run_pending()


@pytest.fixture
def seeded(coach):
    enable_live(coach)
    seed_demo(coach)
    _skip_loop(coach)  # the loop's own reactions to these calls are not what is tested here
    return coach


def _skip_loop(coach):
    top = coach.store.one("select max(id) m from events")["m"]
    coach.store.db["meta"].upsert({"key": "orchestrator.cursor", "value": str(top)}, pk="key")


def test_changed_line_rescores_stored_calls_and_flips_are_visible(seeded, playbook_dir):
    coach = seeded
    before = _verdicts(coach)
    passed_budget = sorted(c for (c, ln), v in before.items() if ln == "budget_confirmed" and v["verdict"] == "pass")
    assert passed_budget, "the demo calls have budget passes to flip"
    acts = _change(coach, playbook_dir, **IMPOSSIBLE)
    queued = [a for a in acts if a["kind"] == "rescore.queued"]
    assert queued and queued[0]["data"]["changes"]["changed"][0]["id"] == "budget_confirmed"
    assert set(queued[0]["data"]["changes"]["changed"][0]["fields"]) == {"examples", "patterns", "phrases"}
    [job] = job_status(coach)
    assert job["status"] == "pending" and job["total"] == 8 and job["changed"] == ["budget_confirmed"]

    [done] = run_pending_jobs(coach)
    new_version = coach.playbook.version_of("scorecards", "discovery")
    assert done["status"] == "done" and done["done"] == 8 and done["rescored"] == 8
    after = _verdicts(coach)
    # the changed line flipped on every call where it had passed; every other line is untouched
    for cid in passed_budget:
        assert after[(cid, "budget_confirmed")]["verdict"] == "fail"
    for key, v in before.items():
        if key[1] != "budget_confirmed":
            assert after[key]["engine_verdict"] == v["engine_verdict"], key
    assert {v["scorecard_version"] for v in after.values()} == {new_version}
    assert {r["scorecard_version"] for r in coach.store.query("select scorecard_version from calls")} == {new_version}
    assert done["flips"]["budget_confirmed"]["pass->fail"] == len(passed_budget)
    flipped = events(coach, "call.rescored")
    assert sorted(e["data"]["call_id"] if "call_id" in e["data"] else int(e["subject"].split(":")[1]) for e in flipped) == passed_budget
    assert all(e["data"]["flips"] == [{"line": "budget_confirmed", "before": "pass", "after": "fail"}] for e in flipped)
    # attribution followed: Jordan (who always asked) now has a budget gap opened by the re-score
    gaps = coach.store.query("select * from gaps where line_id = 'budget_confirmed' and status = 'open' order by rep_id")
    assert "jordan-ellis" in [g["rep_id"] for g in gaps]
    ev = events(coach, "rubric.rescored")
    assert ev and ev[-1]["data"]["changed_calls"] == len(passed_budget)
    # scoring only the changed lines gives what a full re-score gives
    from tools.calls import rescore

    full = rescore(coach, "discovery", force=True)
    assert full["changed_calls"] == 0, full["flips"]


def test_changed_line_can_close_a_gap_it_no_longer_shows(seeded, playbook_dir):
    coach = seeded
    attribute(coach, "priya-raman")
    gap = coach.store.one("select * from gaps where rep_id = 'priya-raman' and line_id = 'budget_confirmed' and status = 'open'")
    assert gap, "Priya skips budget on her last calls"
    from tools.paths import assign_path

    asg = assign_path(coach, "priya-raman", gap_id=gap["id"])
    _change(coach, playbook_dir, phrases=["what", "how", "who", "when"], examples=[], patterns=[])
    run_pending_jobs(coach)
    row = coach.store.one("select * from gaps where id = ?", (gap["id"],))
    assert row["status"] == "closed"
    # no practice left for a gap that is gone
    assert coach.store.one("select status from assignments where id = ?", (asg["assignment_id"],))["status"] == "cancelled"
    assert row["close_reason"].startswith("rubric line budget_confirmed changed in scorecard discovery version ")
    assert "no longer show the gap" in row["close_reason"]


def test_override_survives_the_rescore(seeded, playbook_dir):
    from tools.calls import override

    coach = seeded
    cid = next(c for (c, ln), v in _verdicts(coach, "budget_confirmed").items() if v["verdict"] == "pass")
    override(coach, cid, "budget_confirmed", "pass", reason="asked in the follow-up email", by="manager")
    _change(coach, playbook_dir, **IMPOSSIBLE)
    run_pending_jobs(coach)
    v = _verdicts(coach, "budget_confirmed")[(cid, "budget_confirmed")]
    assert v["verdict"] == "pass" and v["engine_verdict"] == "fail"


def test_job_resumes_after_a_crash_and_never_rescores_twice(seeded, playbook_dir, monkeypatch):
    coach = seeded
    _change(coach, playbook_dir, **IMPOSSIBLE)
    [job] = job_status(coach)
    real = rubric_change._store_rescore
    seen: list[int] = []

    def crashing(coach_, call, *a, **kw):
        if call["id"] == 5:
            raise RuntimeError("power cut")
        seen.append(call["id"])
        return real(coach_, call, *a, **kw)

    monkeypatch.setattr(rubric_change, "_store_rescore", crashing)
    with pytest.raises(RuntimeError, match="power cut"):
        rubric_change.run_job(coach, job["id"], chunk=2)
    st = job_status(coach, job["id"])[0]
    assert st["status"] == "running" and st["done"] == 4  # chunks [1,2] [3,4] committed; [5,6] rolled back
    monkeypatch.setattr(rubric_change, "_store_rescore", real)
    # a restart: a new process on the same database resumes from the cursor
    c2 = Coach(playbook_dir, coach.store.path)
    try:
        calls_done: list[int] = []
        monkeypatch.setattr(rubric_change, "_store_rescore",
                            lambda co, call, *a, **kw: (calls_done.append(call["id"]), real(co, call, *a, **kw))[1])
        [st] = run_pending_jobs(c2, chunk=2)
        assert st["status"] == "done" and st["done"] == 8
        assert calls_done == [5, 6, 7, 8]
        assert set(seen) & set(calls_done) == set()
        per_call = [int(e["subject"].split(":")[1]) for e in events(c2, "call.rescored")]
        assert len(per_call) == len(set(per_call))
    finally:
        c2.close()


def test_newer_version_supersedes_a_running_job(seeded, playbook_dir):
    coach = seeded
    _change(coach, playbook_dir, **IMPOSSIBLE)
    first = job_status(coach)[0]
    _change(coach, playbook_dir, title="Budget confirmed (again)")
    jobs = {j["id"]: j for j in job_status(coach)}
    assert jobs[first["id"]]["status"] == "superseded"
    run_pending_jobs(coach)
    v = coach.playbook.version_of("scorecards", "discovery")
    assert coach.store.one("select count(*) n from calls where scorecard_version != ?", (v,))["n"] == 0
    # the calls never reached by the first job were scored from the original version: budget fails everywhere
    assert all(r["verdict"] != "pass" for r in _verdicts(coach, "budget_confirmed").values())


def test_removed_line_closes_its_gaps_with_the_reason(seeded, playbook_dir):
    coach = seeded
    attribute(coach, "priya-raman")
    _skip_loop(coach)  # remediation of the new gap is not what is tested here
    gap = coach.store.one("select * from gaps where rep_id = 'priya-raman' and line_id = 'budget_confirmed' and status = 'open'")
    assert gap
    coach.store.db["gates"].insert({"rep_id": "priya-raman", "activity": "demo", "certification_id": "qualification",
                                    "gap_id": gap["id"], "status": "blocked", "reason": "gap"})
    coach.store.db["assignments"].insert({"rep_id": "priya-raman", "gap_id": gap["id"], "status": "assigned", "source": "gap"})
    remove_line(playbook_dir, "discovery", "budget_confirmed")
    coach.reload()
    acts = Orchestrator(coach).run_pending()
    version = coach.playbook.version_of("scorecards", "discovery")
    row = coach.store.one("select * from gaps where id = ?", (gap["id"],))
    reason = f"rubric line budget_confirmed removed from scorecard discovery in version {version}"
    assert row["status"] == "closed" and row["close_reason"] == reason
    ev = [e for e in events(coach, "gap.closed") if e["data"].get("gap_id") == gap["id"]]
    assert ev and ev[0]["data"]["reason"] == reason
    assert any(a["kind"] == "gap.closed" for a in acts)
    assert coach.store.one("select status from gates where gap_id = ?", (gap["id"],))["status"] == "lifted"
    assert coach.store.one("select status from assignments where gap_id = ?", (gap["id"],))["status"] == "cancelled"
    # the re-score drops the removed line's verdicts and recomputes scores without it
    run_pending_jobs(coach)
    assert _verdicts(coach, "budget_confirmed") == {}


def test_line_changes_summary():
    from playbook.models import RubricLine, Scorecard

    a = Scorecard(id="s", title="S", lines=[RubricLine(id="x", title="X"), RubricLine(id="y", title="Y")])
    b = Scorecard(id="s", title="S2", small_talk=["hi"], lines=[RubricLine(id="x", title="X", weight=2), RubricLine(id="z", title="Z")])
    ch = line_changes(a, b)
    assert ch["added"] == ["z"] and ch["removed"] == ["y"] and ch["changed"][0]["id"] == "x"
    assert ch["changed"][0]["fields"] == ["weight"] and ch["changed"][0]["before"] == {"weight": 1.0}
    assert ch["scorecard_fields"] == ["small_talk", "title"] and ch["rescore_all"]
    assert json.dumps(ch)  # plain data


def test_rescore_in_worker_processes_matches_in_process(seeded, playbook_dir):
    coach = seeded
    _change(coach, playbook_dir, **IMPOSSIBLE)
    [st] = run_pending_jobs(coach, workers=2, chunk=3)
    assert st["status"] == "done" and st["done"] == 8
    after = _verdicts(coach)
    from tools.calls import rescore

    assert rescore(coach, "discovery", force=True)["changed_calls"] == 0  # same verdicts as scoring in-process
    assert all(v["verdict"] != "pass" for (c, ln), v in after.items() if ln == "budget_confirmed")


def test_stop_mid_chunk_writes_nothing_and_resumes(seeded, playbook_dir):
    coach = seeded
    _change(coach, playbook_dir, **IMPOSSIBLE)
    [job] = job_status(coach)
    asked = []

    def stop():
        asked.append(1)
        return len(asked) > 3  # the server shuts down while the first chunk is being scored

    st = rubric_change.run_job(coach, job["id"], chunk=5, stop=stop)
    assert st["status"] == "running" and st["done"] == 0
    assert coach.store.one("select count(*) n from calls where scorecard_version = ?",
                           (coach.playbook.version_of("scorecards", "discovery"),))["n"] == 0
    assert run_pending_jobs(coach, chunk=5)[0]["done"] == 8


def test_cli_jobs_run_and_list(seeded, playbook_dir, capsys):
    from server.cli import main as cli_main

    coach = seeded
    edit_line(playbook_dir, "discovery", "budget_confirmed", **IMPOSSIBLE)
    args = ["--playbook", str(playbook_dir), "--db", coach.store.path]
    assert cli_main(["jobs", "--run", *args]) == 0  # the CLI sees the change, queues the job and runs it
    out = capsys.readouterr().out
    assert "done: scorecard discovery" in out and "changed budget_confirmed" in out and "8/8 calls" in out
    assert "budget_confirmed: pass->fail x" in out
    assert cli_main(["jobs", "--json", *args]) == 0
    import json as _json

    assert _json.loads(capsys.readouterr().out)["jobs"][0]["status"] == "done"


def test_removed_scorecard_closes_its_gaps_unless_it_is_back(seeded, playbook_dir):
    """Deleting a scorecard file closes its open gaps (gates lifted, assignments cancelled,
    re-scoring stopped): nothing measures those lines any more, so nothing else would close them.
    A file that is back by the time the loop looks (delete-and-write saves) changes nothing."""
    coach = seeded
    attribute(coach, "priya-raman")
    _skip_loop(coach)
    gap = coach.store.one("select * from gaps where rep_id = 'priya-raman' and scorecard_id = 'discovery' and status = 'open'")
    assert gap
    coach.store.db["gates"].insert({"rep_id": "priya-raman", "activity": "demo", "certification_id": "qualification",
                                    "gap_id": gap["id"], "status": "blocked", "reason": "gap"})
    coach.store.db["assignments"].insert({"rep_id": "priya-raman", "gap_id": gap["id"], "status": "assigned", "source": "gap"})
    card = playbook_dir / "scorecards" / "discovery.yaml"
    text = card.read_text()
    version = coach.playbook.version_of("scorecards", "discovery")

    # removed and back before the loop handles it: nothing closes
    card.unlink()
    coach.reload()
    from tools.live import sync_playbook

    sync_playbook(coach)
    card.write_text(text)
    coach.reload()
    Orchestrator(coach).run_pending()
    assert coach.store.one("select status from gaps where id = ?", (gap["id"],))["status"] == "open"

    # a re-score is pending for it, then the file goes for good
    edit_line(playbook_dir, "discovery", "budget_confirmed", **IMPOSSIBLE)
    coach.reload()
    Orchestrator(coach).run_pending()
    assert [j["status"] for j in job_status(coach)] == ["pending"]
    version = coach.playbook.version_of("scorecards", "discovery")
    card.unlink()
    coach.reload()
    acts = Orchestrator(coach).run_pending()
    row = coach.store.one("select * from gaps where id = ?", (gap["id"],))
    assert row["status"] == "closed"
    assert row["close_reason"] == f"scorecard discovery removed from the playbook (last version {version})"
    assert coach.store.one("select count(*) n from gaps where scorecard_id = 'discovery' and status = 'open'")["n"] == 0
    assert coach.store.one("select status from gates where gap_id = ?", (gap["id"],))["status"] == "lifted"
    assert coach.store.one("select status from assignments where gap_id = ?", (gap["id"],))["status"] == "cancelled"
    assert [j["status"] for j in job_status(coach)] == ["superseded"]
    assert {a["kind"] for a in acts} >= {"gap.closed", "rescore.superseded"}
    ev = [e for e in events(coach, "gap.closed") if e["data"].get("gap_id") == gap["id"]]
    assert ev and ev[0]["data"]["scorecard_removed"] is True
