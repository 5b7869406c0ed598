"""`coachloop test` exit codes and output, and bench/accuracy.py on a folder of labelled calls."""
from __future__ import annotations

import json
import subprocess
import sys

import yaml

from conftest import DEV_SET, REPO
from server.cli import main


def run_cli(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_fresh_starter_rubric_tests_pass(playbook_dir, capsys):
    rc, out, err = run_cli(capsys, "test", str(playbook_dir))
    assert rc == 0, out + err
    assert "scorecard discovery" in out and "agenda_set" in out and "all rubric tests agree" in out


def test_json_report_and_scorecard_filter(playbook_dir, capsys):
    rc, out, _ = run_cli(capsys, "test", str(playbook_dir), "--scorecard", "discovery", "--json")
    assert rc == 0
    rep = json.loads(out)
    assert rep["ok"] is True and list(rep["scorecards"]) == ["discovery"]
    assert rep["lines"]["budget_confirmed"]["kappa"] == 1.0
    assert rep["lines"]["budget_confirmed"]["n"] >= 6


def test_disagreeing_example_exits_1_and_names_it(playbook_dir, capsys):
    path = playbook_dir / "scorecards" / "tests" / "discovery-legal-quote.yaml"
    data = yaml.safe_load(path.read_text())
    data["labels"]["budget_confirmed"] = {"verdict": "pass", "turn": 4, "note": "deliberately wrong"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    rc, out, _ = run_cli(capsys, "test", str(playbook_dir))
    assert rc == 1
    assert "FAIL scorecards/tests/discovery-legal-quote.yaml budget_confirmed: expected pass (turn 4), got fail" in out
    rc, out, _ = run_cli(capsys, "test", str(playbook_dir), "--json")
    rep = json.loads(out)
    assert rc == 1 and rep["ok"] is False
    assert [(f["file"], f["line"], f["expected"], f["got"]) for f in rep["failures"]] == [
        ("scorecards/tests/discovery-legal-quote.yaml", "budget_confirmed", "pass", "fail")]
    assert rep["scorecards"]["discovery"]["lines"]["budget_confirmed"]["kappa"] < 1.0


def test_editing_a_line_is_seen_at_once(playbook_dir, capsys):
    """A coding agent that breaks a line sees the examples it broke (cache keyed by version)."""
    card = playbook_dir / "scorecards" / "discovery.yaml"
    text = card.read_text()
    assert "      - hard deadline\n" in text
    card.write_text(text.replace("  - id: timeline_established\n", "  - id: timeline_established\n    weight: 1\n")
                    .replace("    not_patterns:\n      - \"\\\\bwhen did\\\\b\"", "    not_patterns:\n      - \"\\\\bwhen\\\\b\"\n      - \"\\\\bwhen did\\\\b\""))
    rc, out, _ = run_cli(capsys, "test", str(playbook_dir), "--scorecard", "discovery")
    assert rc == 1 and "timeline_established: expected pass" in out


def test_unknown_scorecard_and_unrunnable_test(playbook_dir, capsys):
    rc, _, err = run_cli(capsys, "test", str(playbook_dir), "--scorecard", "nope")
    assert rc == 1 and "unknown scorecard 'nope'" in err and "discovery" in err
    bad = playbook_dir / "scorecards" / "tests" / "broken.yaml"
    bad.write_text(yaml.safe_dump({"scorecard": "discovery", "rep": "Nobody Here",
                                   "turns": [{"speaker": "A", "text": "hi"}, {"speaker": "B", "text": "hello"}],
                                   "labels": {"agenda_set": {"verdict": "fail"}}}))
    rc, out, _ = run_cli(capsys, "test", str(playbook_dir), "--scorecard", "discovery")
    assert rc == 1 and "broken.yaml" in out and "Nobody Here" in out


def test_no_tests_is_not_a_failure(tmp_path, capsys):
    pb = tmp_path / "pb"
    (pb / "scorecards").mkdir(parents=True)
    (pb / "playbook.yaml").write_text("team: t\n")
    (pb / "scorecards" / "mini.yaml").write_text(
        "id: mini\ntitle: Mini\nlines:\n  - id: hello\n    title: Hello\n    kind: statement\n    phrases: [hello]\n")
    rc, out, _ = run_cli(capsys, "test", str(pb))
    assert rc == 0 and "no rubric tests found" in out


def test_bench_accuracy_on_a_labelled_folder(tmp_path):
    folder = tmp_path / "labelled"
    folder.mkdir()
    (folder / "c1.json").write_text(json.dumps({
        "rep": "Ann", "turns": [
            {"speaker": "Ann", "text": "Hi Bo. Is there budget set aside for this?"},
            {"speaker": "Bo", "text": "About ten thousand dollars for the year."}],
        "labels": {"budget_confirmed": {"verdict": "pass", "turn": 0}, "timeline_established": {"verdict": "fail", "turn": None}},
    }))
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "accuracy.py"), str(folder), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["verdicts"] == 2 and rep["accuracy"] == 1.0 and rep["evidence_accuracy"] == 1.0
    assert rep["lines"]["budget_confirmed"]["confusion"]["pass"]["pass"] == 1
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "accuracy.py"), str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert "overall accuracy" in proc.stdout and "budget_confirmed" in proc.stdout
    if DEV_SET.is_dir():
        proc = subprocess.run([sys.executable, str(REPO / "bench" / "accuracy.py"), "--json"],
                              capture_output=True, text=True, timeout=120)
        assert json.loads(proc.stdout)["calls"] >= 16
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "accuracy.py"), str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "not found" in proc.stderr
