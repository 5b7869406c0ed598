"""tools/calls.py end to end: real transcripts, the real offline engine, a real SQLite file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from playbook.loader import load_playbook
from playbook.models import RubricTest
from store import calls as cs
from store.db import StoreError
from store.deals import get_deal
from store.reps import get_rep, upsert_rep
from conftest import DEV_SET
from tools.calls import export_disputed, get_call, list_calls, override, rescore, score_call
from tools.transcripts import TranscriptError

pytestmark = pytest.mark.skipif(not DEV_SET.is_dir(), reason="needs ../shared/eval/dev")

PLAIN = """Alex Doe: Hi Sam, thanks for the time. Here's the plan for today: I'll ask about your process, then we agree next steps.
Sam Lee: Sounds good.
Alex Doe: What are the biggest challenges with your reporting today?
Sam Lee: Our reports take two days to build every month and the numbers never match.
Alex Doe: Do you have budget set aside for fixing that this year?
Sam Lee: Some, yes, about forty thousand.
Alex Doe: Great. Can we book Tuesday the 14th at 10am with your finance lead?
Sam Lee: Yes, Tuesday at 10 works.
"""


def dev(name: str) -> str:
    return (DEV_SET / name).read_text(encoding="utf-8")


def counts(coach) -> dict[str, int]:
    q = lambda t: coach.store.one(f"select count(*) n from {t}")["n"]  # noqa: E731
    return {t: q(t) for t in ("calls", "verdicts", "reps", "events", "deals")}


def test_score_call_stores_call_verdicts_and_event_once(coach):
    text = dev("d01.json")
    r = score_call(coach, text, source_name="d01.json")
    card = coach.playbook.scorecard("discovery")
    assert r["duplicate"] is False and isinstance(r["call"], int)
    assert r["rep"] == "priya-raman" and r["rep_name"] == "Priya Raman"  # the file names its rep: created
    assert r["scorecard"] == "discovery" and r["scorecard_version"] == coach.playbook.version_of("scorecards", "discovery")
    assert r["engine"] == "offline" and r["segment"] == "mid-market"
    assert [ln["id"] for ln in r["lines"]] == [ln.id for ln in card.lines]
    assert 0.0 <= r["score"] <= 1.0
    for ln in r["lines"]:
        assert ln["verdict"] in ("pass", "fail", "na")
        if ln["verdict"] == "pass":
            assert isinstance(ln["turn"], int) and ln["quote"]
        else:
            assert ln["reason"]

    stored = cs.get_call(coach.store, r["call"])
    assert len(stored["turns"]) == 35 and stored["turns"][0]["role"] == "rep"
    assert {v["line_id"]: v["verdict"] for v in stored["verdicts"]} == {ln["id"]: ln["verdict"] for ln in r["lines"]}
    assert all(v["engine_verdict"] == v["verdict"] and v["scorecard_version"] == r["scorecard_version"] for v in stored["verdicts"])

    events = coach.store.events()
    assert [e["type"] for e in events] == ["call.scored"]
    ev = events[0]
    assert ev["rep_id"] == "priya-raman" and ev["subject"] == f"call:{r['call']}"
    assert ev["data"]["scorecard"] == "discovery" and ev["data"]["live"] is True and ev["data"]["score"] == r["score"]
    assert ev["data"]["call_type"] == "discovery"

    before = counts(coach)
    again = score_call(coach, text, source_name="copy-of-d01.json")
    assert again["duplicate"] is True and again["call"] == r["call"]
    assert [ln["verdict"] for ln in again["lines"]] == [ln["verdict"] for ln in r["lines"]]
    assert counts(coach) == before  # nothing written the second time


def test_scoring_is_deterministic_across_stores(coach, playbook_dir, tmp_path):
    from tools.context import Coach

    a = score_call(coach, dev("d05.json"))
    other = Coach(playbook_dir, tmp_path / "other.db")
    try:
        b = score_call(other, dev("d05.json"))
    finally:
        other.close()
    assert a["lines"] == b["lines"] and a["score"] == b["score"]


def test_rep_given_by_name_is_created_with_meta(coach):
    r = score_call(coach, PLAIN, rep="Alex Doe", call_type="discovery", deal_id="OPP-7", stage="discovery",
                   occurred_at="2026-03-02T15:00:00Z", segment="smb", source_name="alex.txt")
    assert r["rep"] == "alex-doe" and r["rep_speaker"] == "Alex Doe"
    assert r["occurred_at"] == "2026-03-02T15:00:00+00:00" and r["segment"] == "smb"
    assert r["deal"] == "OPP-7" and r["stage"] == "discovery"
    deal = get_deal(coach.store, "OPP-7")
    assert deal["rep_id"] == "alex-doe" and [s["stage"] for s in deal["stages"]] == ["discovery"]
    assert get_rep(coach.store, "Alex Doe")["id"] == "alex-doe"
    verdicts = {ln["id"]: ln for ln in r["lines"]}
    assert verdicts["budget_confirmed"]["verdict"] == "pass" and verdicts["budget_confirmed"]["turn"] == 4


def test_rep_found_on_roster_and_segment_defaults_to_reps(coach):
    upsert_rep(coach.store, "Alex Doe", segment="enterprise", aliases=["Alex"])
    r = score_call(coach, PLAIN)
    assert r["rep"] == "alex-doe" and r["segment"] == "enterprise"
    assert counts(coach)["reps"] == 1


def test_unknown_rep_is_a_clear_error_and_nothing_is_stored(coach):
    with pytest.raises(TranscriptError) as exc:
        score_call(coach, PLAIN, source_name="plain.txt")
    msg = str(exc.value)
    assert "plain.txt" in msg and "Alex Doe" in msg and "--rep" in msg
    assert counts(coach) == {"calls": 0, "verdicts": 0, "reps": 0, "events": 0, "deals": 0}


def test_rep_not_speaking_in_call_is_an_error(coach):
    with pytest.raises(TranscriptError, match="not a speaker"):
        score_call(coach, PLAIN, rep="Zed Nobody")
    assert counts(coach)["reps"] == 0


@pytest.mark.parametrize("bad", ['{"turns": [{"speaker": "A"}]}', "", "\x00\x01binary", '{"turns": "nope"}'])
def test_malformed_transcript_stores_nothing(coach, bad):
    with pytest.raises(TranscriptError) as exc:
        score_call(coach, bad, rep="Alex Doe", source_name="bad.json")
    assert "bad.json" in str(exc.value)
    assert counts(coach) == {"calls": 0, "verdicts": 0, "reps": 0, "events": 0, "deals": 0}


def test_failure_while_storing_rolls_everything_back(coach, monkeypatch):
    def boom(*a, **k):
        raise StoreError("disk full")

    monkeypatch.setattr(cs, "insert_call", boom)
    with pytest.raises(StoreError, match="disk full"):
        score_call(coach, PLAIN, rep="Alex Doe", deal_id="OPP-1")
    assert counts(coach) == {"calls": 0, "verdicts": 0, "reps": 0, "events": 0, "deals": 0}


def test_unknown_scorecard_and_call_type(coach):
    from playbook.loader import PlaybookError

    with pytest.raises(PlaybookError, match="unknown scorecard 'nope'"):
        score_call(coach, PLAIN, rep="Alex Doe", scorecard_id="nope")
    with pytest.raises(PlaybookError, match="no scorecard for call type 'karaoke'"):
        score_call(coach, PLAIN, rep="Alex Doe", call_type="karaoke")
    assert counts(coach)["calls"] == 0


def test_engine_llm_without_configuration_is_an_error(coach):
    with pytest.raises(ValueError, match="no LLM is configured"):
        score_call(coach, PLAIN, rep="Alex Doe", engine="llm")


def test_get_call_and_list_calls(coach):
    r = score_call(coach, dev("d02.json"))
    got = get_call(coach, r["call"], turns=True)
    assert got["call"] == r["call"] and got["lines"] == r["lines"] and len(got["turns"]) == 31
    assert [c["id"] for c in list_calls(coach, rep="Jordan Pike")] == [r["call"]]
    with pytest.raises(StoreError, match="unknown call 999"):
        get_call(coach, 999)


def _edit_line(playbook_dir: Path, line_id: str, **fields) -> None:
    path = playbook_dir / "scorecards" / "discovery.yaml"
    data = yaml.safe_load(path.read_text())
    for ln in data["lines"]:
        if ln["id"] == line_id:
            ln.update(fields)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_rescore_reports_flips_after_a_scorecard_edit(coach, playbook_dir):
    ids = {}
    for f in sorted(DEV_SET.glob("d0*.json")):
        ids[f.name] = score_call(coach, f.read_text(), source_name=f.name)["call"]
    passes = [c for c in ids.values() if cs.get_call(coach.store, c)["verdicts"][3]["verdict"] == "pass"]
    assert cs.get_call(coach.store, ids["d01.json"])["verdicts"][3]["line_id"] == "budget_confirmed"
    assert passes, "some dev calls pass budget_confirmed"
    # a reviewer disputes one of them first: the human verdict must survive the rescore
    disputed = passes[0]
    override(coach, disputed, "budget_confirmed", "pass", "the rep confirmed the figure", by="lead")

    nothing = rescore(coach, "discovery")
    assert nothing["rescored"] == 0 and nothing["skipped"] == len(ids)

    _edit_line(playbook_dir, "budget_confirmed", not_patterns=["."])  # nothing can pass it any more
    coach.reload()
    result = rescore(coach, "discovery")
    assert result["version"] == coach.playbook.version_of("scorecards", "discovery")
    assert result["rescored"] == len(ids) and result["changed_calls"] == len(passes)
    assert {f["line"] for f in result["flips"]} == {"budget_confirmed"}
    assert result["by_line"] == {"budget_confirmed": {"pass->fail": len(passes)}}
    flip = next(f for f in result["flips"] if f["call"] == disputed)
    assert flip["overridden"] and flip["after"] == "pass" and flip["engine_after"] == "fail"
    for cid in passes:
        v = {x["line_id"]: x for x in cs.get_call(coach.store, cid)["verdicts"]}["budget_confirmed"]
        assert v["engine_verdict"] == "fail"
        assert v["verdict"] == ("pass" if cid == disputed else "fail")
    events = [e for e in coach.store.events() if e["type"] == "call.rescored"]
    assert sorted(int(e["subject"].split(":")[1]) for e in events) == sorted(passes)
    assert events[0]["data"]["flips"][0]["line"] == "budget_confirmed"
    again = rescore(coach, "discovery")
    assert again["rescored"] == 0 and again["flips"] == []


def test_rescore_since_and_resume(coach, playbook_dir):
    a = score_call(coach, dev("d03.json"), occurred_at="2026-01-10")
    b = score_call(coach, dev("d04.json"), occurred_at="2026-03-10")
    _edit_line(playbook_dir, "pain_identified", not_patterns=["."])
    coach.reload()
    r = rescore(coach, "discovery", since="2026-02-01")
    assert r["calls"] == 1 and r["rescored"] == 1
    assert cs.get_call(coach.store, a["call"])["scorecard_version"] != cs.get_call(coach.store, b["call"])["scorecard_version"]
    # an interrupted job resumes from its cursor
    version = coach.playbook.version_of("scorecards", "discovery")
    with coach.store.transaction() as db:
        db.execute("insert into jobs (kind, status, params, cursor, created_at, updated_at) values ('rescore', 'running', ?, ?, 'x', 'x')",
                   [json.dumps({"engine": "offline", "scorecard": "discovery", "since": None, "version": version}, sort_keys=True),
                    json.dumps({"after_id": a["call"]})])
    r = rescore(coach, "discovery")
    assert r["resumed"] is True and r["calls"] == 1  # only the call after the cursor
    with pytest.raises(Exception, match="unknown scorecard"):
        rescore(coach, "nope")


def test_override_keeps_engine_verdict_and_counts_the_human_one(coach):
    r = score_call(coach, PLAIN, rep="Alex Doe")
    lines = {ln["id"]: ln for ln in r["lines"]}
    assert lines["competition_explored"]["verdict"] == "fail"
    out = override(coach, r["call"], "competition_explored", "pass", "asked about their current tool", by="maria", turn=2)
    assert out["before"] == "fail" and out["verdict"] == "pass" and out["engine_verdict"] == "fail"
    assert out["score"] > r["score"]
    got = get_call(coach, r["call"])
    line = next(ln for ln in got["lines"] if ln["id"] == "competition_explored")
    assert line["verdict"] == "pass" and line["engine_verdict"] == "fail" and line["overridden_by"] == "maria"
    assert line["turn"] == 2 and got["score"] == out["score"]
    ev = coach.store.events()[-1]
    assert ev["type"] == "verdict.overridden" and ev["subject"] == f"call:{r['call']}"
    assert ev["data"]["by"] == "maria" and ev["data"]["reason"] == "asked about their current tool"
    assert ev["data"]["before"] == "fail" and ev["data"]["after"] == "pass"

    with pytest.raises(ValueError, match="needs a reason"):
        override(coach, r["call"], "agenda_set", "fail", "  ")
    with pytest.raises(ValueError, match="verdict 'maybe'"):
        override(coach, r["call"], "agenda_set", "maybe", "x")
    with pytest.raises(StoreError, match="no verdict for line 'nope'"):
        override(coach, r["call"], "nope", "pass", "x")
    with pytest.raises(ValueError, match="out of range"):
        override(coach, r["call"], "agenda_set", "pass", "x", turn=99)


def test_export_disputed_writes_valid_rubric_tests(coach, playbook_dir, tmp_path):
    r = score_call(coach, dev("d06.json"))
    score_call(coach, dev("d07.json"))  # not disputed: not exported
    line = next(ln for ln in r["lines"] if ln["verdict"] == "pass")
    override(coach, r["call"], line["id"], "fail", "the question was about something else", by="lead")
    paths = export_disputed(coach, tmp_path / "tests-out")
    assert [p.name for p in paths] == [f"call-{r['call']}.json"]
    data = json.loads(paths[0].read_text())
    test = RubricTest.model_validate(data)
    assert test.scorecard == "discovery" and test.rep == "Owen Gallagher"
    assert list(test.labels) == [line["id"]] and test.labels[line["id"]].verdict == "fail"
    assert "something else" in test.labels[line["id"]].note
    assert len(test.turns) == len(json.loads(dev("d06.json"))["turns"])
    # the file is accepted by the playbook loader as a rubric test
    dest = playbook_dir / "scorecards" / "tests" / paths[0].name
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(paths[0].read_text())
    pb = load_playbook(playbook_dir)
    assert not [p for p in pb.problems if paths[0].name in p.file]
    assert any(rel.endswith(paths[0].name) for rel, _ in pb.tests["discovery"])
    assert export_disputed(coach, tmp_path / "none", scorecard_id="demo") == []


def test_rep_given_by_store_id_finds_the_speaker(coach):
    upsert_rep(coach.store, "Alex Doe", id="ad-7")
    r = score_call(coach, PLAIN, rep="ad-7")
    assert r["rep"] == "ad-7" and r["rep_speaker"] == "Alex Doe"
    assert counts(coach)["reps"] == 1


def test_zoom_display_name_matches_the_roster_rep_and_is_remembered(coach):
    upsert_rep(coach.store, "Alex Doe", team="West")
    text = PLAIN.replace("Alex Doe:", "Alex D.:")
    r = score_call(coach, text)
    assert r["rep"] == "alex-doe" and r["rep_speaker"] == "Alex D."
    assert "Alex D." in get_rep(coach.store, "alex-doe")["aliases"]
    assert counts(coach)["reps"] == 1


def test_turns_json_and_content_hash_are_the_plain_json_texts():
    """The hand-written JSON of stored turns and of the dedupe hash equals json.dumps's text (a
    changed hash would store a call twice)."""
    import hashlib
    import json as _json

    from store.db import dumps
    from tools.calls import _turn_json, turns_json
    from tools.transcripts.model import Transcript, Turn

    turns = [Turn('Ré "q" \\ \n\t\x01', "naïve — ✓ \u2028 \"x\"  two  spaces", 0, 3, "rep", "internal"),
             Turn("B", "x", 1.5, float("nan"), None, None), Turn("C", "", 2, float("inf"), "buyer", ""),
             Turn("D", "y", None, None, "buyer", None), Turn("E", "z", 10**20, -0.0, "rep", None)]
    assert turns_json(turns) == dumps([_turn_json(t) for t in turns])
    assert turns_json([]) == dumps([])
    tr = Transcript(turns, "turns")
    norm = [[t.speaker.strip().lower(), " ".join(t.text.split()).lower()] for t in turns]
    assert tr.content_hash() == hashlib.sha256(_json.dumps(norm, ensure_ascii=False).encode()).hexdigest()
    assert Transcript([], "turns").content_hash() == hashlib.sha256(b"[]").hexdigest()


def test_a_named_rep_sharing_a_first_name_is_not_merged_into_another(coach):
    """`--rep "Priya Shah"` with "Priya Raman" on the roster is a new rep, not an alias of
    Priya Raman; "Priya R." still is her."""
    from tools.calls import _resolve_or_create_rep

    upsert_rep(coach.store, "Priya Raman")
    shah = _resolve_or_create_rep(coach.store, "Priya Shah", "Priya Shah", True)
    assert shah["id"] == "priya-shah" and "Priya Shah" not in get_rep(coach.store, "priya-raman")["aliases"]
    assert _resolve_or_create_rep(coach.store, "Priya R.", None, False)["id"] == "priya-raman"
