"""Rollouts: a scenario or path file with a `rollout:` block lands -> every targeted rep is assigned
(exactly once per version), progress is tracked, and the playbook-change cycle time is recorded
when the last targeted rep passes; `metrics` and `coachloop rollout status` show it."""
from __future__ import annotations

import json
import sqlite3

import pytest

from livekit import PRACTICE, events, practise, wait_until
from server.cli import main as cli_main
from server.orchestrator import Orchestrator
from store.db import StoreError
from store.reps import upsert_rep
from tools.live import LiveService, enable_live
from tools.rollout import rollout_status, start_rollout, target_reps


def _reps(coach):
    upsert_rep(coach.store, "Priya Raman", team="Mid-market", segment="mid-market", hire_date="2026-03-02")
    upsert_rep(coach.store, "Jordan Ellis", team="Mid-market", segment="mid-market", hire_date="2025-09-15")
    upsert_rep(coach.store, "Sam Lee", team="SMB", segment="smb", hire_date="2026-06-01")


def _drop_scenario(playbook_dir, sid: str, rollout: str, title: str = "Pricing drill") -> None:
    src = (playbook_dir / "scenarios" / "practice-budget-confirmed.md").read_text()
    text = src.replace("id: practice-budget-confirmed", f"id: {sid}", 1).replace(
        "title: Confirm budget with a buyer who hints at it", f"title: {title}", 1)
    head, rest = text.split("\n", 1)
    assert head == "---"
    (playbook_dir / "scenarios" / f"{sid}.md").write_text("---\n" + rollout.strip() + "\n" + rest)


def _run(coach):
    return Orchestrator(coach).run_pending()


def test_new_scenario_rolls_out_to_targeted_reps_once_and_records_cycle_time(coach, playbook_dir, tmp_path):
    _reps(coach)
    enable_live(coach)
    _drop_scenario(playbook_dir, "pricing-drill", "rollout:\n  teams: [Mid-market]\n  due: 2026-12-31")
    coach.reload()
    acts = _run(coach)
    assert any(a["kind"] == "rollout.started" for a in acts)
    [r] = rollout_status(coach)
    assert r["artifact_id"] == "pricing-drill" and r["kind"] == "scenarios" and r["targeted"] == 2 and r["due"] == "2026-12-31"
    asg = coach.store.query("select * from assignments where rollout_id = ? order by rep_id", (r["id"],))
    assert [a["rep_id"] for a in asg] == ["jordan-ellis", "priya-raman"]
    assert all(a["source"] == "rollout" and a["status"] == "assigned" and a["due"] == "2026-12-31" for a in asg)
    assert all(json.loads(a["scenario_ids"]) == ["pricing-drill"] for a in asg)
    # exactly once per version: reloading, re-syncing, re-running changes nothing
    coach.reload()
    _run(coach)
    assert coach.store.one("select count(*) n from rollouts")["n"] == 1
    assert coach.store.one("select count(*) n from assignments where source = 'rollout'")["n"] == 2
    with pytest.raises(sqlite3.IntegrityError):  # and the store refuses a second row for the same version
        coach.store.db.execute("insert into rollouts (kind, artifact_id, version) values (?, ?, ?)",
                               ("scenarios", "pricing-drill", r["version"]))

    # Jordan passes; Priya fails once: not complete, Priya missing
    practise(coach, "jordan-ellis", "pricing-drill", PRACTICE["pass"])
    practise(coach, "priya-raman", "pricing-drill", PRACTICE["fail"])
    _run(coach)
    [r] = rollout_status(coach)
    assert r["started"] == 2 and r["passed"] == 1 and r["missing"] == ["priya-raman"] and r["completed_at"] is None
    # Priya passes on her next practice of the same scenario: complete, cycle time from the landing
    out = practise(coach, "priya-raman", "pricing-drill", PRACTICE["pass"])
    assert out["session"]["passed"]
    acts = _run(coach)
    assert any(a["kind"] == "rollout.completed" for a in acts)
    [r] = rollout_status(coach)
    assert r["passed"] == 2 and r["missing"] == [] and r["completed_at"]
    assert 0 <= r["cycle_seconds"] < 600
    assert len(events(coach, "rollout.completed")) == 1
    # metrics reads the same rows
    from tools.metrics import compute_metrics

    m = compute_metrics(coach, ["rollout_cycle_time"])["metrics"]["rollout_cycle_time"]
    assert m["rollouts"] == 1 and m["complete"] == 1 and m["value"] == pytest.approx(r["cycle_seconds"] / 3600, abs=1e-3)


def test_rollout_criteria_and_unknown_reps(coach, playbook_dir):
    from playbook.models import Rollout

    _reps(coach)
    assert target_reps(coach, Rollout(reps="all"))[0] == ["jordan-ellis", "priya-raman", "sam-lee"]
    assert target_reps(coach, Rollout())[0] == ["jordan-ellis", "priya-raman", "sam-lee"]
    assert target_reps(coach, Rollout(segments=["smb"]))[0] == ["sam-lee"]
    assert target_reps(coach, Rollout(hired_after="2026-01-01"))[0] == ["priya-raman", "sam-lee"]
    assert target_reps(coach, Rollout(teams=["mid-market"], hired_after="2026-01-01"))[0] == ["priya-raman"]
    assert target_reps(coach, Rollout(reps=["Sam Lee", "Nobody Here"])) == (["sam-lee"], ["Nobody Here"])
    coach.store.db["gaps"].insert({"rep_id": "sam-lee", "scorecard_id": "discovery", "line_id": "budget_confirmed", "status": "open"})
    coach.store.db["gaps"].insert({"rep_id": "jordan-ellis", "scorecard_id": "discovery", "line_id": "budget_confirmed", "status": "closed"})
    assert target_reps(coach, Rollout(open_gap_on=["budget_confirmed"]), "discovery")[0] == ["sam-lee"]
    assert target_reps(coach, Rollout(open_gap_on=["budget_confirmed"]), "demo")[0] == []


def test_path_rollout_through_the_watcher_and_a_new_version_supersedes(coach, playbook_dir):
    _reps(coach)
    path = playbook_dir / "paths" / "path-new-hires.yaml"
    body = ("# New hires practise budget first.\nid: path-new-hires\ntitle: New hire budget drill\nscorecard: discovery\n"
            "lines: [budget_confirmed]\nsteps:\n  - scenario: practice-budget-confirmed\n"
            "rollout:\n  hired_after: 2026-01-01\n")
    with LiveService(coach, run_events=Orchestrator(coach).run_pending, poll_seconds=60):
        path.write_text(body)
        rows = wait_until(lambda: coach.store.query("select * from assignments where source = 'rollout' order by rep_id"),
                          what="rollout assignments")
        assert [a["rep_id"] for a in rows] == ["priya-raman", "sam-lee"]
        assert {a["path_id"] for a in rows} == {"path-new-hires"}
        first = rows[0]["rollout_id"]
        # Sam starts; then the file changes: a new rollout; Priya's unstarted assignment is cancelled
        from tools.roleplay import start_session

        start_session(coach, "sam-lee", "practice-budget-confirmed")
        path.write_text(body.replace("title: New hire budget drill", "title: New hire budget drill (v2)"))
        wait_until(lambda: coach.store.one("select count(*) n from rollouts")["n"] == 2, what="second rollout")
    old = {a["rep_id"]: a["status"] for a in coach.store.query("select * from assignments where rollout_id = ?", (first,))}
    assert old == {"priya-raman": "cancelled", "sam-lee": "started"}
    st = rollout_status(coach)
    assert [r["targeted"] for r in st] == [2, 2]


def test_rollout_status_cli_and_errors(coach, playbook_dir, tmp_path, capsys):
    _reps(coach)
    enable_live(coach)
    _drop_scenario(playbook_dir, "pricing-drill", "rollout:\n  reps: [Sam Lee, Ghost Rep]")
    coach.reload()
    _run(coach)
    args = ["--playbook", str(playbook_dir), "--db", coach.store.path]
    assert cli_main(["rollout", "status", *args]) == 0
    out = capsys.readouterr().out
    assert "scenario pricing-drill" in out and "targeted 1, started 0, passed 0" in out and "missing: sam-lee" in out
    assert cli_main(["rollout", "status", "--json", *args]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rollouts"][0]["not_started"] == ["sam-lee"]
    assert cli_main(["rollout", "status", "99", *args]) == 1
    assert "unknown rollout 99" in capsys.readouterr().err
    with pytest.raises(StoreError, match="unknown rollout"):
        rollout_status(coach, 42)
    ev = events(coach, "rollout.started")[-1]
    assert ev["data"]["unknown_reps"] == ["Ghost Rep"]


def test_start_rollout_ignores_files_without_a_block(coach):
    art = coach.playbook.all("scenarios")[0]
    assert start_rollout(coach, "scenarios", art.id, art.version) is None
    assert start_rollout(coach, "scorecards", "discovery", "x") is None
