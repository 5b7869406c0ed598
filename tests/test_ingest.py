"""tools/ingest.py: files, folders, globs, bad files in a batch, worker processes, the inbox."""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from conftest import DEV_SET
from tools.context import Coach
from tools.ingest import expand_paths, ingest_paths, watch_inbox

pytestmark = pytest.mark.skipif(not DEV_SET.is_dir(), reason="needs ../shared/eval/dev")


def _copy(dest: Path, names: list[str]) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(DEV_SET / n, dest / n)) for n in names]


def n_calls(coach) -> int:
    return coach.store.one("select count(*) n from calls")["n"]


def test_expand_paths_files_folders_globs(tmp_path):
    _copy(tmp_path / "a", ["d01.json", "d02.json"])
    _copy(tmp_path / "a" / "sub", ["d03.json"])
    (tmp_path / "a" / "notes.pdf").write_bytes(b"%PDF")
    (tmp_path / "a" / ".hidden.txt").write_text("x: y")
    one = _copy(tmp_path / "b", ["d04.json"])[0]
    files, problems = expand_paths([tmp_path / "a", str(tmp_path / "b" / "*.json"), one, tmp_path / "missing.txt",
                                    str(tmp_path / "nothing-*.vtt")])
    assert [f.name for f in files] == ["d01.json", "d02.json", "d03.json", "d04.json"]  # no repeats, no pdf
    assert [p["file"] for p in problems] == [str(tmp_path / "missing.txt"), str(tmp_path / "nothing-*.vtt")]
    assert "no such file" in problems[0]["message"] and "no file matches" in problems[1]["message"]


def test_ingest_folder_with_a_bad_file_goes_on(coach, tmp_path):
    inbox = tmp_path / "calls"
    _copy(inbox, ["d01.json", "d02.json", "d03.json"])
    (inbox / "broken.json").write_text('{"turns": [{"speaker": "A", "text": "hi"},\n  {"speaker": 5, "text": "x"}]}')
    (inbox / "z-empty.txt").write_text("")
    seen_errors = []
    summary = ingest_paths(coach, [inbox], on_error=seen_errors.append)
    assert summary.files == 5 and summary.scored == 3 and not summary.ok
    assert n_calls(coach) == 3
    failed = {Path(f["file"]).name: f for f in summary.failed}
    assert set(failed) == {"broken.json", "z-empty.txt"}
    assert failed["broken.json"]["line"] == 2 and "speaker" in failed["broken.json"]["message"]
    assert "empty" in failed["z-empty.txt"]["message"]
    assert seen_errors == summary.failed
    rows = {Path(r["path"]).name: r for r in coach.store.query("select * from ingested_files")}
    assert rows["broken.json"]["status"] == "failed" and "speaker" in rows["broken.json"]["error"]
    assert rows["d01.json"]["status"] == "scored" and rows["d01.json"]["call_id"]

    again = ingest_paths(coach, [str(inbox / "*.json")])
    assert again.scored == 0 and again.duplicates == 3 and len(again.failed) == 1
    assert n_calls(coach) == 3


def test_ingest_meta_applies_to_every_file(coach, tmp_path):
    files = _copy(tmp_path, ["d05.json", "d06.json"])
    summary = ingest_paths(coach, files, segment="enterprise", stage="qualify", deal_id="OPP-9", live=False)
    assert summary.scored == 2
    rows = coach.store.query("select segment, stage, deal_id, live from calls")
    assert rows == [{"segment": "enterprise", "stage": "qualify", "deal_id": "OPP-9", "live": 0}] * 2
    with pytest.raises(TypeError, match="unknown call metadata: colour"):
        ingest_paths(coach, files, colour="red")


def test_ingest_in_worker_processes_matches_in_process(playbook_dir, tmp_path):
    folder = tmp_path / "calls"
    _copy(folder, sorted(p.name for p in DEV_SET.glob("*.json"))[:6])
    (folder / "bad.txt").write_text("this is not a transcript at all\n")
    results = {}
    for workers in (1, 2):
        coach = Coach(playbook_dir, tmp_path / f"w{workers}.db")
        try:
            s = ingest_paths(coach, [folder], workers=workers)
            results[workers] = (s.scored, [(Path(f["file"]).name, f["message"]) for f in s.failed],
                                coach.store.query("select rep_id, source_name, score, scorecard_version from calls order by id"),
                                coach.store.query("select call_id, line_id, verdict, turn, quote from verdicts order by call_id, line_id"),
                                [e["type"] for e in coach.store.events()])
        finally:
            coach.close()
    assert results[1] == results[2]
    assert results[2][0] == 6 and [n for n, _ in results[2][1]] == ["bad.txt"]


def _wait(pred, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def _run_watch(coach, inbox: Path, **kw):
    stop = threading.Event()
    box: dict = {}

    def run():
        box["summary"] = watch_inbox(coach, inbox, stop_event=stop, settle=0.2, force_polling=True, **kw)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return stop, th, box


def test_watch_inbox_scores_each_file_once_across_restarts(playbook_dir, tmp_path):
    inbox = tmp_path / "inbox"
    _copy(inbox, ["d01.json"])  # already there when the watcher starts
    db = tmp_path / "w.db"
    coach = Coach(playbook_dir, db)
    batches = []
    stop, th, box = _run_watch(coach, inbox, on_batch=lambda: batches.append(n_calls(coach)))
    try:
        assert _wait(lambda: n_calls(coach) == 1)
        _copy(inbox, ["d02.json"])
        (inbox / "bad.txt").write_text("no speakers here, just words\n")
        assert _wait(lambda: n_calls(coach) == 2)
        # a file written in two steps is read once complete
        half = (DEV_SET / "d03.json").read_text()
        with open(inbox / "d03.json", "w") as fh:
            fh.write(half[: len(half) // 2])
            fh.flush()
            time.sleep(0.05)
            fh.write(half[len(half) // 2:])
        assert _wait(lambda: n_calls(coach) == 3)
        assert _wait(lambda: coach.store.one("select count(*) n from ingested_files where status = 'failed'")["n"] >= 1)
    finally:
        stop.set()
        th.join(10)
    assert not th.is_alive()
    summary = box["summary"]
    assert summary.scored == 3 and [Path(f["file"]).name for f in summary.failed] == ["bad.txt"]
    assert batches and batches[-1] == 3
    coach.close()

    # restart: the same files are still in the inbox; only the new one is scored
    coach = Coach(playbook_dir, db)
    skipped: list[str] = []
    stop, th, box = _run_watch(coach, inbox, on_skip=skipped.append)
    try:
        _copy(inbox, ["d04.json"])
        assert _wait(lambda: n_calls(coach) == 4)
        shutil.copy(DEV_SET / "d01.json", inbox / "d01-again.json")  # same bytes, new name: seen before
        assert _wait(lambda: any(s.endswith("d01-again.json") for s in skipped))
    finally:
        stop.set()
        th.join(10)
    summary = box["summary"]
    assert summary.scored == 1
    assert {Path(s).name for s in skipped} >= {"d01.json", "d02.json", "d03.json", "d01-again.json"}
    assert n_calls(coach) == 4
    assert [e["type"] for e in coach.store.events()].count("call.scored") == 4
    coach.close()


def test_watch_inbox_retries_a_file_read_while_half_written(playbook_dir, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    coach = Coach(playbook_dir, tmp_path / "h.db")
    errors: list[dict] = []
    stop, th, box = _run_watch(coach, inbox, on_error=errors.append)
    try:
        full = (DEV_SET / "d14.json").read_text()
        target = inbox / "d14.json"
        target.write_text(full[: len(full) // 3])  # the exporter stalls mid-file
        assert _wait(lambda: len(errors) == 1)
        assert coach.store.one("select status from ingested_files")["status"] == "failed"
        with target.open("a") as fh:  # ... then finishes it (appends: no empty moment to race with)
            fh.write(full[len(full) // 3 :])
        assert _wait(lambda: n_calls(coach) == 1)
    finally:
        stop.set()
        th.join(10)
    assert box["summary"].scored == 1 and len(box["summary"].failed) == 1
    statuses = sorted(r["status"] for r in coach.store.query("select status from ingested_files"))
    assert statuses == ["failed", "scored"]
    coach.close()


def test_results_are_reported_only_once_stored_and_a_broken_pipe_stops_cleanly(coach, tmp_path):
    """`coachloop score ... | head`: the reader goes away after the first result. Everything reported
    is stored, the broken pipe ends the run (it is not a bad file), and the store stays consistent."""
    files = _copy(tmp_path / "in", ["d01.json", "d02.json", "d03.json"])
    seen: list[int] = []

    def on_result(result: dict) -> None:
        stored = coach.store.one("select id from calls where id = ?", [result["call"]])
        assert stored is not None, "reported before it was stored"
        seen.append(result["call"])
        if len(seen) == 2:
            raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        ingest_paths(coach, [str(f) for f in files], on_result=on_result, workers=1)
    assert len(seen) == 2
    assert n_calls(coach) == 3  # the chunk was committed before anything was reported
    assert coach.store.one("select count(*) n from ingested_files where status = 'failed'")["n"] == 0
    orphans = coach.store.one("select count(*) n from calls c where not exists (select 1 from verdicts v where v.call_id = c.id)")
    assert orphans["n"] == 0
