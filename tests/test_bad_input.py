"""Bad input through the real CLI (`server.cli.main`): one clear stderr line naming the file/field,
exit 1, no traceback, and nothing lost (no half-stored call, the last good playbook keeps serving)."""
from __future__ import annotations

from pathlib import Path

import pytest

from server.cli import main
from store.db import Store

TRANSCRIPT = (
    "Priya Raman: Thanks for the time today. Let me suggest an agenda for the thirty minutes.\n"
    "Marcus Oduya: Sounds good.\n"
    "Priya Raman: What made you take this call, what is going wrong with the activity data?\n"
    "Marcus Oduya: Reps never log their calls, so forecasts are guesswork.\n"
    "Priya Raman: Can we book Tuesday at 11 to walk your admin through a pilot?\n"
    "Marcus Oduya: Tuesday at 11 works, send me the invite.\n"
)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("coachloop: ") and "WARNING" not in ln]
    assert lines, err
    return lines[-1]


def counts(db: Path) -> dict:
    st = Store(db)
    try:
        return {t: st.one(f"select count(*) as n from {t}")["n"] for t in ("calls", "verdicts", "events", "reps")}
    finally:
        st.close()


@pytest.fixture
def env(playbook_dir, tmp_path):
    return ["--playbook", str(playbook_dir), "--db", str(tmp_path / "c.db")]


# ------------------------------------------------------------------ the database path


@pytest.mark.parametrize("kind", ["folder", "not-sqlite", "under-a-file"])
def test_unusable_db_path_is_one_clear_line(kind, playbook_dir, tmp_path, capsys):
    if kind == "folder":
        db = tmp_path / "adir"
        db.mkdir()
    elif kind == "not-sqlite":
        db = tmp_path / "notes.db"
        db.write_text("not a database at all\n")
    else:
        (tmp_path / "afile").write_text("x")
        db = tmp_path / "afile" / "c.db"
    rc = main(["calls", "--playbook", str(playbook_dir), "--db", str(db)])
    assert rc == 1
    line = one_error_line(capsys)
    assert "cannot open the database" in line and str(db) in line and "--db" in line
    if kind == "not-sqlite":
        assert db.read_text() == "not a database at all\n"  # nothing overwritten


def test_missing_playbook_folder(tmp_path, capsys):
    rc = main(["score", "x.txt", "--playbook", str(tmp_path / "nope"), "--db", str(tmp_path / "c.db")])
    assert rc == 1
    assert "playbook folder not found" in one_error_line(capsys)


# ------------------------------------------------------------------ transcripts: nothing half-stored

BAD_FILES = {
    "empty.txt": b"",
    "binary.bin": b"\x00\x01\x02garbage\x00",
    "trunc.json": b'{"turns": [',
    "bad.vtt": b"WEBVTT\n\n1\n00:00:01.000 --> garbage\nAl: hello\n",
    "bad.srt": b"1\nxx --> yy\nAl: hi\n",
    "nospeaker.txt": b"just words with no speaker\n",
    "fireflies.json": b'[{"speaker_name": 3, "text": "hi", "start_time": 0}]',
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_malformed_transcript_names_the_file_and_stores_nothing(name, env, tmp_path, capsys):
    f = tmp_path / name
    f.write_bytes(BAD_FILES[name])
    rc = main(["score", str(f), "--scorecard", "discovery", "--rep", "Priya Raman", *env])
    assert rc == 1
    assert name in one_error_line(capsys)
    c = counts(tmp_path / "c.db")
    assert c["calls"] == c["verdicts"] == 0


def test_folder_with_good_and_bad_files_stores_the_good_one_whole(env, tmp_path, capsys):
    d = tmp_path / "mix"
    d.mkdir()
    (d / "good.txt").write_text(TRANSCRIPT)
    (d / "empty.txt").write_text("")
    (d / "trunc.json").write_text('{"turns": [')
    rc = main(["score", str(d), "--scorecard", "discovery", "--rep", "Priya Raman", "--json", *env])
    assert rc == 1
    cap = capsys.readouterr()
    assert "empty.txt" in cap.err and "trunc.json" in cap.err and "Traceback" not in cap.err
    import json

    out = [json.loads(ln) for ln in cap.out.splitlines() if ln.strip()]  # --json: JSON only on stdout
    assert len(out) == 1 and out[0]["source"].endswith("good.txt")
    c = counts(tmp_path / "c.db")
    assert c["calls"] == 1 and c["verdicts"] == len(out[0]["lines"])


def test_unknown_scorecard_and_call_type(env, tmp_path, capsys):
    f = tmp_path / "call.txt"
    f.write_text(TRANSCRIPT)
    assert main(["score", str(f), "--scorecard", "nope", *env]) == 1
    assert "unknown scorecard 'nope'" in one_error_line(capsys)
    assert main(["score", str(f), "--call-type", "nope", *env]) == 1
    assert "call type 'nope'" in one_error_line(capsys)
    assert counts(tmp_path / "c.db")["calls"] == 0


def test_rep_cannot_be_identified(env, tmp_path, capsys):
    f = tmp_path / "who.txt"
    f.write_text("Alice: hello there\nBob: hi, what do you want\n")
    assert main(["score", str(f), "--scorecard", "discovery", *env]) == 1
    line = one_error_line(capsys)
    assert "who.txt" in line and "Alice, Bob" in line and "--rep" in line


# ------------------------------------------------------------------ the last good playbook keeps serving


def test_fresh_process_serves_last_good_scorecard_when_file_breaks(env, playbook_dir, tmp_path, capsys, caplog):
    f = tmp_path / "call.txt"
    f.write_text(TRANSCRIPT)
    assert main(["score", str(f), "--scorecard", "discovery", "--rep", "Priya Raman", "--json", *env]) == 0
    import json

    first = json.loads(capsys.readouterr().out.splitlines()[0])
    (playbook_dir / "scorecards" / "discovery.yaml").write_text("id: discovery\nlines: [\n")
    f2 = tmp_path / "call2.txt"
    f2.write_text(TRANSCRIPT.replace("Tuesday", "Wednesday"))
    rc = main(["score", str(f2), "--scorecard", "discovery", "--rep", "Priya Raman", "--json", *env])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    second = json.loads(cap.out.splitlines()[0])
    assert second["scorecard_version"] == first["scorecard_version"]
    assert "scorecards/discovery" in caplog.text and "last good" in caplog.text
    # validate still reports the broken file on disk
    assert main(["validate", str(playbook_dir)]) == 1
    assert "scorecards/discovery.yaml" in capsys.readouterr().out


def test_validate_lists_every_problem(tmp_path, capsys):
    pb = tmp_path / "pb"
    assert main(["init", str(pb)]) == 0
    capsys.readouterr()
    (pb / "paths" / "path-agenda-set.yaml").write_text("id: [unclosed\n")
    p = pb / "paths" / "path-budget-confirmed.yaml"
    p.write_text(p.read_text().replace("practice-budget-confirmed", "practice-no-such-scenario"))
    c = pb / "certifications" / "demo-readiness.yaml"
    c.write_text(c.read_text().replace("pass_mark: 1.0", "pass_mark: lots"))
    assert main(["validate", str(pb)]) == 1
    out = capsys.readouterr().out
    assert "paths/path-agenda-set.yaml" in out and "invalid YAML" in out
    assert "practice-no-such-scenario" in out
    assert "demo-readiness.yaml" in out and "pass_mark" in out


# ------------------------------------------------------------------ unknown ids


@pytest.mark.parametrize("argv", [
    ["rep", "show", "nobody"],
    ["gate", "check", "nobody", "dial"],
    ["attribute", "--rep", "nobody"],
    ["practice", "start", "--rep", "nobody", "--scenario", "practice-agenda-set"],
    ["practice", "say", "ps-nope", "hello"],
    ["certify", "ps-nope"],
    ["override", "999", "agenda_set", "--verdict", "pass", "--reason", "x"],
])
def test_unknown_ids_are_one_line(argv, env, capsys):
    assert main([*argv, *env]) == 1
    line = one_error_line(capsys)
    assert "unknown" in line and ("nobody" in line or "ps-nope" in line or "999" in line)


# ------------------------------------------------------------------ import / export / report


def test_binary_csv_import_is_refused_and_imports_nothing(env, tmp_path, capsys):
    f = tmp_path / "reps.csv"
    f.write_bytes(b"PK\x03\x04\x00\x00binary spreadsheet")
    assert main(["import", "reps", str(f), *env]) == 1
    line = one_error_line(capsys)
    assert "reps.csv" in line and "binary" in line
    assert counts(tmp_path / "c.db")["reps"] == 0


def test_unreadable_csv_names_the_line(env, tmp_path, capsys):
    f = tmp_path / "reps.csv"
    f.write_text("Name,Team\nAl Smith,East\nBo\rLee,West\n", newline="")
    assert main(["import", "reps", str(f), *env]) == 1
    line = one_error_line(capsys)
    assert "reps.csv" in line and "line" in line and "CSV" in line
    assert counts(tmp_path / "c.db")["reps"] == 0


def test_bad_rows_list_each_and_import_nothing(env, tmp_path, capsys):
    f = tmp_path / "reps.csv"
    f.write_text("Full Name,Team,Hire Date,Quota\nAl Smith,East,not-a-date,100\nBo Lee,West,2024-01-01,abc\n")
    assert main(["import", "reps", str(f), *env]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "line 2" in err and "line 3" in err and "Hire Date" in err and "Quota" in err
    assert counts(tmp_path / "c.db")["reps"] == 0


def test_export_and_report_bad_destinations(env, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    assert main(["export", "--to", str(afile), *env]) == 1
    assert "afile" in one_error_line(capsys)
    assert main(["export", "--to", str(afile / "sub"), *env]) == 1
    assert "not a folder" in one_error_line(capsys)
    assert main(["report", "--out", str(tmp_path), *env]) == 1
    assert "is a folder" in one_error_line(capsys)
    assert main(["report", "--out", str(afile / "r.html"), *env]) == 1
    assert "afile" in one_error_line(capsys)
    assert afile.read_text() == "keep me"
    # a missing folder for --out is created
    assert main(["report", "--out", str(tmp_path / "new" / "dir" / "r.html"), *env]) == 0
    assert (tmp_path / "new" / "dir" / "r.html").stat().st_size > 1000


def test_every_subcommand_has_help(capsys):
    from server.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0, name
    assert "usage" in capsys.readouterr().out


def test_playbook_option_pointing_at_a_file(tmp_path, capsys):
    f = tmp_path / "playbook.yaml"
    f.write_text("x: 1\n")
    assert main(["calls", "--playbook", str(f), "--db", str(tmp_path / "c.db")]) == 1
    assert "is a file, not a folder" in one_error_line(capsys)


def test_practice_end_with_nothing_said_is_a_clear_error(env, capsys):
    import json

    assert main(["rep", "add", "Jordan Pike", *env]) == 0
    capsys.readouterr()
    assert main(["practice", "start", "--rep", "jordan-pike", "--scenario", "practice-agenda-set", "--json", *env]) == 0
    sid = json.loads(capsys.readouterr().out)["session_id"]
    assert main(["practice", "end", sid, *env]) == 1
    line = one_error_line(capsys)
    assert sid in line and "not said anything" in line and "practice say" in line
    # the session is still usable: say something, then end it
    assert main(["practice", "say", sid, "Can I suggest an agenda for our thirty minutes?", *env]) == 0
    assert main(["practice", "end", sid, *env]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_bad_date_option_names_the_option(env, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["metrics", "--from", "garbage", *env])
    assert exc.value.code == 2
    assert "--from" in capsys.readouterr().err


def test_huge_transcript_refused_fast_and_stores_nothing(env, tmp_path, capsys):
    from tools.transcripts import MAX_BYTES

    f = tmp_path / "huge.txt"
    line = b"Priya Raman: what is your budget for this project and who signs off on it?\n"
    with open(f, "wb") as fh:
        fh.write(line * (MAX_BYTES // len(line) + 1))
    assert main(["score", str(f), "--rep", "Priya Raman", *env]) == 1
    msg = one_error_line(capsys)
    assert "huge.txt" in msg and "MB limit" in msg
    assert counts(tmp_path / "c.db")["calls"] == 0
