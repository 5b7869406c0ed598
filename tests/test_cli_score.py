"""The CLI of the calls pipeline: score, ingest, rescore, override, calls/call, rep, deal."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import DEV_SET, REPO
from server.cli import main

pytestmark = pytest.mark.skipif(not DEV_SET.is_dir(), reason="needs ../shared/eval/dev")


@pytest.fixture
def cli(playbook_dir, tmp_path, capsys):
    db = tmp_path / "cli.db"

    def run(*args: str) -> tuple[int, str, str]:
        rc = main([args[0], *args[1:], "--playbook", str(playbook_dir), "--db", str(db)]) if not args[0] == "rep" and not args[0] == "deal" \
            else main([*args, "--playbook", str(playbook_dir), "--db", str(db)])
        out = capsys.readouterr()
        return rc, out.out, out.err

    run.db = db
    return run


def test_score_json_shape_one_line_per_call(cli):
    rc, out, err = cli("score", str(DEV_SET / "d01.json"), str(DEV_SET / "d02.json"), "--scorecard", "discovery", "--json")
    assert rc == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert len(lines) == 2
    for obj in lines:
        assert {"call", "scorecard", "rep", "lines", "score"} <= set(obj)
        assert isinstance(obj["call"], int) and obj["scorecard"] == "discovery" and isinstance(obj["score"], float)
        assert len(obj["lines"]) == 10
        for ln in obj["lines"]:
            assert {"id", "verdict", "turn", "quote"} <= set(ln)
            assert ln["verdict"] in ("pass", "fail", "na")
            assert ln["turn"] is None or isinstance(ln["turn"], int)
            assert ln["quote"] is None or isinstance(ln["quote"], str)
    assert [o["rep"] for o in lines] == ["priya-raman", "jordan-pike"]
    # the same files again: stored once, same ids, flagged
    rc, out, _ = cli("score", str(DEV_SET / "d01.json"), "--json")
    again = json.loads(out)
    assert rc == 0 and again["call"] == lines[0]["call"] and again["duplicate"] is True


def test_score_human_table_and_bad_file_exit_code(cli, tmp_path):
    bad = tmp_path / "bad.vtt"
    bad.write_text("WEBVTT\n\n1\n00:00:01.000 --> nonsense\nPriya: hi\n")
    rc, out, err = cli("score", str(DEV_SET / "d03.json"), str(bad), str(tmp_path / "missing.txt"))
    assert rc == 1
    assert "call 1  Helena Brandt  discovery@" in out
    assert "agenda_set" in out and "verdict" in out and "quote" in out
    assert "1 scored, 0 already stored, 2 failed" in out
    assert f"{bad}:4:" in err and "missing.txt: no such file or folder" in err
    assert "Traceback" not in err


def test_score_glob_folder_and_meta(cli, tmp_path):
    folder = tmp_path / "calls"
    folder.mkdir()
    for n in ("d04.json", "d05.json"):
        shutil.copy(DEV_SET / n, folder / n)
    rc, out, err = cli("score", str(folder / "*.json"), "--segment", "smb", "--deal", "OPP-1", "--stage", "discovery",
                       "--at", "2026-02-03T10:00:00Z", "--call-type", "discovery", "--json")
    assert rc == 0, err
    assert len(out.splitlines()) == 2
    rc, out, _ = cli("calls", "--json")
    rows = [json.loads(x) for x in out.splitlines()]
    assert {r["segment"] for r in rows} == {"smb"} and {r["deal_id"] for r in rows} == {"OPP-1"}
    assert {r["occurred_at"] for r in rows} == {"2026-02-03T10:00:00+00:00"}
    rc, out, _ = cli("call", str(rows[0]["id"]), "--json")
    assert rc == 0 and json.loads(out)["call"] == rows[0]["id"]
    rc, out, err = cli("call", "999")
    assert rc == 1 and "unknown call 999" in err


def test_score_unknown_rep_and_unknown_scorecard(cli, tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("Alex Doe: What challenges do you have with reporting?\nSam Lee: It takes two days.\n")
    rc, out, err = cli("score", str(plain))
    assert rc == 1 and "cannot tell which speaker is the rep" in err and "--rep" in err
    rc, out, err = cli("score", str(plain), "--scorecard", "nope", "--rep", "Alex Doe")
    assert rc == 1 and "unknown scorecard 'nope'" in err
    rc, out, err = cli("score", str(plain), "--rep", "Alex Doe", "--json")
    assert rc == 0 and json.loads(out)["rep"] == "alex-doe"


def test_rep_and_deal_commands(cli):
    rc, out, err = cli("rep", "add", "Priya Raman", "--team", "EMEA", "--segment", "mid-market", "--hire-date", "2025-01-06",
                       "--quota", "500000", "--alias", "Priya R.", "--json")
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["id"] == "priya-raman" and rep["aliases"] == ["Priya R."] and rep["quota"] == 500000
    rc, out, _ = cli("rep", "add", "Priya Raman", "--manager", "Dana")
    assert rc == 0 and "rep priya-raman" in out
    rc, out, _ = cli("rep", "list", "--json")
    reps = json.loads(out)
    assert len(reps) == 1 and reps[0]["team"] == "EMEA" and reps[0]["manager"] == "Dana"
    rc, out, _ = cli("rep", "list")
    assert "priya-raman" in out and "team=EMEA" in out
    rc, out, err = cli("rep", "add", "Bad Date", "--hire-date", "06/01/2025")
    assert rc == 1 and "hire_date" in err
    rc, out, err = cli("rep", "show", "ghost")
    assert rc == 1 and "unknown rep 'ghost'" in err
    rc, out, err = cli("deal", "record", "OPP-1", "--rep", "Priya R.", "--stage", "discovery", "--amount", "25000", "--at", "2026-03-01", "--json")
    assert rc == 0, err
    assert json.loads(out)["rep_id"] == "priya-raman"
    rc, out, _ = cli("deal", "record", "OPP-1", "--stage", "proposal", "--outcome", "won", "--at", "2026-04-01")
    assert rc == 0 and "won" in out and "proposal" in out
    rc, out, _ = cli("deal", "show", "OPP-1", "--json")
    deal = json.loads(out)
    assert [s["stage"] for s in deal["stages"]] == ["discovery", "proposal"] and deal["closed_at"].startswith("2026-04-01")


def test_override_rescore_and_export_via_cli(cli, playbook_dir, tmp_path):
    rc, out, _ = cli("score", str(DEV_SET / "d01.json"), str(DEV_SET / "d07.json"), "--json")
    calls = [json.loads(x) for x in out.splitlines()]
    first = calls[0]
    line = next(ln for ln in first["lines"] if ln["verdict"] == "fail")
    rc, out, err = cli("override", str(first["call"]), line["id"], "--verdict", "pass", "--reason", "asked in other words",
                       "--by", "lead", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["before"] == "fail" and res["verdict"] == "pass" and res["by"] == "lead"
    rc, out, err = cli("override", str(first["call"]), line["id"], "--verdict", "pass")
    assert rc == 1 and "--reason" in err
    rc, out, err = cli("override", str(first["call"]), "nope", "--verdict", "pass", "--reason", "x")
    assert rc == 1 and "no verdict for line 'nope'" in err

    dest = tmp_path / "exported"
    rc, out, err = cli("override", "--export-tests", str(dest), "--json")
    assert rc == 0, err
    files = json.loads(out)["files"]
    assert [Path(f).name for f in files] == [f"call-{first['call']}.json"]
    assert json.loads(Path(files[0]).read_text())["labels"][line["id"]]["verdict"] == "pass"

    # edit the scorecard: nothing can pass timeline_established any more
    path = playbook_dir / "scorecards" / "discovery.yaml"
    data = yaml.safe_load(path.read_text())
    for ln in data["lines"]:
        if ln["id"] == "timeline_established":
            ln["not_patterns"] = ["."]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    passes = [c["call"] for c in calls if any(ln["id"] == "timeline_established" and ln["verdict"] == "pass" for ln in c["lines"])]
    assert passes
    rc, out, err = cli("rescore", "--scorecard", "discovery", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["changed_calls"] == len(passes)
    assert {(f["call"], f["line"], f["before"], f["after"]) for f in res["flips"]} == {(c, "timeline_established", "pass", "fail") for c in passes}
    rc, out, _ = cli("rescore", "--scorecard", "discovery")
    assert rc == 0 and "rescored 0 of 2" in out


def test_ingest_json_summary_and_exit_code(cli, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for n in ("d08.json", "d09.json"):
        shutil.copy(DEV_SET / n, folder / n)
    (folder / "junk.srt").write_text("1\nnot a timing line\nhello\n")
    rc, out, err = cli("ingest", str(folder), "--json")
    assert rc == 1
    summary = json.loads(out)
    assert summary["scored"] == 2 and summary["files"] == 3 and len(summary["failed"]) == 1
    assert summary["failed"][0]["file"].endswith("junk.srt")
    assert "junk.srt" in err  # reported on stderr too; no progress bar when not a terminal
    assert "[#" not in err
    rc, out, err = cli("ingest")
    assert rc == 1 and "--watch" in err


def test_help_for_every_command(capsys):
    for cmd in (["score"], ["ingest"], ["rescore"], ["override"], ["calls"], ["call"], ["rep", "add"], ["rep", "list"],
                ["deal", "record"]):
        with pytest.raises(SystemExit) as exc:
            main([*cmd, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert "--playbook" in out and "--db" in out and "--json" in out, cmd


def test_score_via_subprocess_with_env(playbook_dir, tmp_path):
    env = {**os.environ, "COACHLOOP_PLAYBOOK": str(playbook_dir), "COACHLOOP_DB": str(tmp_path / "env.db"),
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", "import sys; from server.cli import main; sys.exit(main())",
                           "score", str(DEV_SET / "d10.json"), "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    assert obj["rep"] == "grace-liu" and (tmp_path / "env.db").exists()


def test_meta_errors_are_reported_once_up_front(cli):
    files = [str(DEV_SET / "d11.json"), str(DEV_SET / "d12.json")]
    rc, out, err = cli("score", *files, "--at", "last tuesday")
    assert rc == 1 and err.count("not an ISO 8601") == 1 and out == ""
    rc, out, err = cli("ingest", *files, "--scorecard", "nope")
    assert rc == 1 and err.count("unknown scorecard 'nope'") == 1
    rc, out, err = cli("score", *files, "--engine", "llm")
    assert rc == 1 and err.count("no LLM is configured") == 1


def test_score_reads_one_transcript_from_stdin(cli, monkeypatch, tmp_path):
    """`coachloop score -` scores a transcript piped in (named <stdin>), alone or among files;
    an empty or oversized stdin is a clear error and nothing is stored for it."""
    import io

    def pipe(data: bytes) -> None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))

    vtt = ("WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nPriya Raman: What budget have you set aside for this project?\n\n"
           "00:00:05.000 --> 00:00:08.000\nMarcus: About fifty thousand this year.\n")
    pipe(vtt.encode())
    rc, out, err = cli("score", "-", "--rep", "Priya Raman", "--json")
    assert rc == 0, err
    [obj] = [json.loads(x) for x in out.splitlines()]
    assert obj["source"] == "<stdin>" and obj["rep_name"] == "Priya Raman"
    assert {ln["id"]: ln["verdict"] for ln in obj["lines"]}["budget_confirmed"] == "pass"
    # with files: the piped call and the file are both scored; the same stdin again is a duplicate
    pipe(vtt.encode())
    rc, out, err = cli("score", "-", str(DEV_SET / "d01.json"))
    assert rc == 0, err
    assert "(already stored)" in out and "1 scored, 1 already stored, 0 failed" in out
    pipe(b"")
    rc, out, err = cli("score", "-", "--rep", "Priya Raman")
    assert rc == 1 and "<stdin>" in err and "empty" in err
    from tools.transcripts import MAX_BYTES

    pipe(b"x" * (MAX_BYTES + 1))
    rc, out, err = cli("score", "-", "--rep", "Priya Raman")
    assert rc == 1 and "<stdin>" in err and "MB limit" in err
    rc, out, err = cli("calls", "--json")
    assert rc == 0 and len(out.splitlines()) == 2
