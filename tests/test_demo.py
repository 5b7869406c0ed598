"""`coachloop demo`: runs offline on the bundled calls, exits 0, and says what happened at each step."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from server.cli import main as cli
from server.demo_data import DEMO_DATA


def test_demo_data_ships_several_formats_and_reads():
    from tools.transcripts import read_path

    manifest = json.loads((DEMO_DATA / "calls.json").read_text())
    files = [c["file"] for c in manifest["calls"]] + [manifest["after"]["file"]]
    formats = {read_path(DEMO_DATA / f).format for f in files}
    assert {"text", "vtt"} <= formats and len(formats) >= 3
    for f in files:
        assert (DEMO_DATA / f).is_file()


def test_demo_runs_and_tells_each_step(tmp_path, capsys):
    keep = tmp_path / "kept"
    rc = cli(["demo", "--keep", str(keep)])
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    steps = [
        r"1\. Set up: starter playbook",
        r"2\. Score 8 past discovery calls",
        r"opened gap \d+: Skipped budget_confirmed on 3 of the last 5 mid-market discovery calls",
        r"GAP \d+ \(priya-raman / budget_confirmed\)",
        r"team rate 100%; 2 of those 3 deals were lost",
        r"scenario written: scenarios/[\w\-]+\.md",
        r"gate_check\(priya-raman, \w+\) -> BLOCKED",
        r"practice scored: budget_confirmed=fail -> failed",
        r"failed: still blocked; next practice assigned",
        r"practice scored: budget_confirmed=pass -> passed",
        r"passed: certified .*gates lifted",
        r"gap \d+'s gates: .*lifted",
        r"closed gap \d+ \(budget_confirmed\): budget_confirmed passed on live call \d+ after certification",
        r"9\. The event log \(\d+ events",
        r"gap\.closed",
        r"The loop closed with no human step",
    ]
    pos = 0
    for pat in steps:
        m = re.compile(pat).search(out, pos)
        assert m, f"demo output lacks (in order) {pat!r}:\n{out}"
        pos = m.start()
    # --keep leaves a real playbook and database to explore
    assert (keep / "coachloop.db").is_file()
    scen = list((keep / "playbook" / "scenarios").glob("budget-confirmed-priya-raman-*.md"))
    assert scen and "generated_by" in scen[0].read_text()
    rc = cli(["events", "--db", str(keep / "coachloop.db"), "--playbook", str(keep / "playbook"), "--type", "gap.closed"])
    assert rc == 0 and "gap.closed" in capsys.readouterr().out


def test_demo_json_through_the_console_script(tmp_path):
    exe = Path(sys.executable).parent / "coachloop"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "server.cli"]
    env = dict(os.environ, COACHLOOP_DB=str(tmp_path / "not-used.db"))
    p = subprocess.run(cmd + ["demo", "--json"], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["ok"] is True
    names = [s["step"] for s in result["steps"]]
    assert names == ["setup", "score", "gap", "remediation", "gate", "practice_failed", "practice_passed", "verified"]
    gap = result["steps"][2]
    assert gap["line"] == "budget_confirmed" and gap["misses"] == 3 and gap["window"] == 5
    assert result["steps"][-1]["gap_status"] == "closed"
    assert any(e["type"] == "gap.closed" for e in result["events"])
    # the temporary folder is gone and nothing was written where it ran
    assert not (tmp_path / "not-used.db").exists() and list(tmp_path.iterdir()) == []


def test_demo_keep_refuses_a_folder_in_use(tmp_path, capsys):
    (tmp_path / "something.txt").write_text("mine")
    rc = cli(["demo", "--keep", str(tmp_path)])
    assert rc == 1 and "not empty" in capsys.readouterr().err
    assert (tmp_path / "something.txt").read_text() == "mine"
