"""The watcher and the live service on real files: a saved edit is served at once, broken edits are
reported once and the last good version keeps serving, fixing the file recovers without a restart."""
from __future__ import annotations

import threading
import time

import pytest

from livekit import edit_line, events, seed_demo, wait_until
from playbook.watch import PlaybookWatcher, is_ignored
from server.orchestrator import Orchestrator
from tools.live import LiveService, artifact_problems, artifact_text, enable_live, sync_playbook


def test_is_ignored_temp_and_swap_files(tmp_path):
    root = tmp_path
    for name in [".discovery.yaml.tmp", "discovery.yaml.swp", ".discovery.yaml.swx", "discovery.yaml~", "#discovery.yaml#",
                 "4913", "sedDulOmX", "x.tmp", ".git/index", "scorecards/.hidden.yaml", "__pycache__/a.pyc"]:
        assert is_ignored(root, root / name), name
    for name in ["scorecards/discovery.yaml", "scenarios/new.md", "playbook.yaml", "paths/p.yml"]:
        assert not is_ignored(root, root / name), name


def test_watcher_reloads_on_save_and_ignores_temp_files(tmp_path):
    root = tmp_path / "pb"
    (root / "scorecards").mkdir(parents=True)
    calls: list[float] = []  # monotonic times of the reloads
    got = threading.Event()

    def reload():
        calls.append(time.monotonic())
        got.set()

    w = PlaybookWatcher(reload, root, debounce_ms=50).start()
    try:
        assert w.running
        (root / "scorecards" / ".x.yaml.tmp").write_text("temp")  # an editor's temp file alone: nothing
        (root / "scorecards" / "x.yaml.swp").write_text("swap")
        (root / "scorecards" / "x.yaml").write_text("id: x\n")
        assert got.wait(5), "no reload within 5 s"
        wait_until(lambda: w.last_changes, what="the batch")
        assert w.last_changes == ["scorecards/x.yaml"]  # temp and swap files never listed
    finally:
        assert w.stop(2.0)  # True only when the thread ended within the bound
    assert not w.running


def test_watcher_keeps_going_after_a_failing_reload(tmp_path):
    n = []

    def reload():
        n.append(1)
        if len(n) == 1:
            raise RuntimeError("boom")

    with PlaybookWatcher(reload, tmp_path, debounce_ms=30) as w:
        (tmp_path / "a.yaml").write_text("1")
        wait_until(lambda: len(n) >= 1, what="first reload")
        (tmp_path / "a.yaml").write_text("2")
        wait_until(lambda: len(n) >= 2, what="second reload")
        assert w.running


def test_watcher_refuses_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        PlaybookWatcher(lambda: None, tmp_path / "missing").start()


def test_edit_on_disk_is_served_and_the_next_score_uses_it(coach, playbook_dir):
    seed_demo(coach, limit=2)
    before = coach.playbook.version_of("scorecards", "discovery")
    with LiveService(coach, run_events=Orchestrator(coach).run_pending, poll_seconds=60) as svc:
        edit_line(playbook_dir, "discovery", "agenda_set", title="Agenda set before any question")
        new = wait_until(lambda: (v := coach.playbook.version_of("scorecards", "discovery")) != before and v, what="new version")
        assert coach.playbook.scorecard("discovery").line("agenda_set").title == "Agenda set before any question"
        # the new version was recorded with its exact text, and announced as a loop event
        txt = artifact_text(coach, "scorecards", "discovery", new)
        assert "Agenda set before any question" in txt["text"] and txt["live"]
        old = artifact_text(coach, "scorecards", "discovery", before)
        assert "Agenda set before any question" not in old["text"] and not old["live"]
        ev = wait_until(lambda: [e for e in events(coach, "playbook.changed") if e["subject"] == "scorecards/discovery"],
                        what="playbook.changed")
        assert ev[-1]["data"]["version"] == new and ev[-1]["data"]["previous"] == before
        # the next score uses it: call and verdicts carry the new version
        from livekit import DEMO
        from tools.calls import score_call

        r = score_call(coach, (DEMO / "03-priya-brightwater-pest.txt").read_text(), rep="Priya Raman")
        row = coach.store.one("select scorecard_version from calls where id = ?", (r["call"],))
        assert r["scorecard_version"] == new
        assert row["scorecard_version"] == new
        vs = {v["scorecard_version"] for v in coach.store.query("select scorecard_version from verdicts where call_id = ?", (r["call"],))}
        assert vs == {new}
        # the stored calls scored under the old version are re-scored in the background
        wait_until(lambda: coach.store.one("select count(*) n from calls where scorecard_version != ?", (new,))["n"] == 0,
                   what="background re-score")
        assert svc.watcher.reloads >= 1


def test_broken_edit_reported_old_version_served_then_recovered(coach, playbook_dir):
    enable_live(coach)
    path = playbook_dir / "scorecards" / "discovery.yaml"
    good = path.read_text()
    v_good = coach.playbook.version_of("scorecards", "discovery")
    with LiveService(coach, poll_seconds=60):
        path.write_text(good.replace("title: Discovery call", "title: [unclosed", 1))
        ev = wait_until(lambda: events(coach, "playbook.invalid"), what="playbook.invalid")
        d = ev[-1]["data"]
        assert d["file"] == "scorecards/discovery.yaml" and "invalid YAML" in d["message"] and d["line"]
        assert d["serving"] == [f"scorecards/discovery@{v_good}"]
        # the last good version keeps serving, and a tool touching it can show the problem
        assert coach.playbook.version_of("scorecards", "discovery") == v_good
        assert "scorecards/discovery" in coach.playbook.stale
        probs = artifact_problems(coach, "scorecard", "discovery")
        assert probs and probs[0]["file"] == "scorecards/discovery.yaml" and probs[0]["serving"] == f"scorecards/discovery@{v_good}"
        assert artifact_problems(coach, "scorecard", "demo") == []
        # a schema error in the same file (new content): reported again, with the field
        path.write_text(good.replace("  - id: agenda_set\n", "  - id: agenda_set\n    colour: blue\n", 1))
        ev = wait_until(lambda: len(events(coach, "playbook.invalid")) >= 2 and events(coach, "playbook.invalid"), what="2nd invalid")
        assert ev[-1]["data"]["field"] == "lines[0].colour" and "unknown field" in ev[-1]["data"]["message"]
        # the same broken content saved again is not reported twice
        n = len(events(coach, "playbook.invalid"))
        coach.reload()
        assert len(events(coach, "playbook.invalid")) == n
        # fix it: recovered without a restart, the fixed text is served
        path.write_text(good.replace("title: Discovery call", "title: Discovery call (v2)", 1))
        rec = wait_until(lambda: events(coach, "playbook.recovered"), what="playbook.recovered")
        assert rec[-1]["data"]["file"] == "scorecards/discovery.yaml"
        wait_until(lambda: coach.playbook.scorecard("discovery").title == "Discovery call (v2)", what="fixed version served")
        assert "scorecards/discovery" not in coach.playbook.stale
        assert artifact_problems(coach, "scorecard", "discovery") == []


def test_changes_while_no_server_ran_are_picked_up_by_the_orchestrator(playbook_dir, tmp_path):
    from tools.context import Coach

    db = tmp_path / "c.db"
    c1 = Coach(playbook_dir, db)
    Orchestrator(c1).run_pending()  # baseline: versions recorded, no change events
    assert events(c1, "playbook.changed") == []
    v1 = c1.playbook.version_of("scorecards", "discovery")
    c1.close()
    edit_line(playbook_dir, "discovery", "pain_identified", title="Pain named")
    c2 = Coach(playbook_dir, db)
    try:
        Orchestrator(c2).run_pending()
        ev = [e for e in events(c2, "playbook.changed") if e["subject"] == "scorecards/discovery"]
        assert len(ev) == 1 and ev[0]["data"]["previous"] == v1
        assert sync_playbook(c2, force=True)["changed"] == []  # idempotent
    finally:
        c2.close()


def test_broken_policy_file_is_reported_not_removed(coach, playbook_dir):
    enable_live(coach)
    pol = playbook_dir / "playbook.yaml"
    good = pol.read_text()
    pol.write_text(good + "\nnot_a_field: 1\n")
    coach.reload()
    assert events(coach, "playbook.removed") == []
    inv = events(coach, "playbook.invalid")
    assert inv and inv[-1]["data"]["file"] == "playbook.yaml" and inv[-1]["data"]["field"] == "not_a_field"
    assert artifact_problems(coach, "policy", None)[0]["file"] == "playbook.yaml"
    pol.write_text(good)
    coach.reload()
    assert events(coach, "playbook.recovered")[-1]["data"]["file"] == "playbook.yaml"


def test_a_rolled_back_sync_is_done_again(coach, playbook_dir):
    enable_live(coach)
    edit_line(playbook_dir, "discovery", "agenda_set", title="Agenda first")
    with pytest.raises(RuntimeError):
        with coach.store.transaction():
            coach.reload()  # the listener syncs inside this transaction ...
            assert events(coach, "playbook.changed")
            raise RuntimeError("... which then rolls back")
    assert events(coach, "playbook.changed") == []
    Orchestrator(coach).run_pending()  # the next look finds the change again
    assert [e["subject"] for e in events(coach, "playbook.changed")] == ["scorecards/discovery"]


def test_serve_starts_the_live_playbook_and_stops_cleanly(coach, playbook_dir):
    from server.cli.serve_cmds import _start_watcher

    before = coach.playbook.version_of("scorecards", "discovery")
    stop = _start_watcher(coach)
    assert callable(stop)
    try:
        edit_line(playbook_dir, "discovery", "timeline_established", title="Timeline agreed")
        wait_until(lambda: coach.playbook.version_of("scorecards", "discovery") != before, what="served")
        wait_until(lambda: events(coach, "playbook.changed"), what="change event")
    finally:
        assert stop() is True  # bounded: the watcher and the worker end within their timeouts
    names = {t.name for t in threading.enumerate()}
    assert "coachloop-playbook-watch" not in names and "coachloop-live-worker" not in names
