"""Disputes teach the engine: an override becomes a labelled example beside the scorecard
(scorecards/examples/<id>.yaml), merged into the scorecard when the playbook loads, so the same
mistake on the same kind of sentence does not recur on the next call.

The tests use a small scorecard of their own (`mini`, written into the starter playbook) so they
do not move when the starter scorecards are rewritten.
"""
from __future__ import annotations

import json
import os

import anyio
import pytest
import yaml

from mcp_helpers import client, structured
from playbook.examples import HEADER, add_example
from playbook.loader import PlaybookError, content_version, load_playbook, parse_recorded_scorecard, split_recorded
from server.cli import main
from tools.calls import override, score_call
from tools.context import Coach

MINI = """\
# A two-line scorecard for these tests.
id: mini
title: Mini discovery
call_types: [mini]
lines:
  - id: budget_confirmed
    title: Budget confirmed
    speaker: rep
    kind: question
    examples:
      - "Do you have budget set aside for this, or would it need to be requested?"
    phrases: [budget, set aside]
  - id: pain_identified
    title: Pain identified
    speaker: rep
    kind: question
    phrases: [slowing you down, biggest challenge]
"""
EXAMPLES = "scorecards/examples/mini.yaml"
FOOLS = "Does your budget tracking tool export to Excel?"  # mentions budget, asks about tooling
REWORDED = "Can your budget tracking tool export reports to Excel?"
GENUINE = "Do you have budget set aside for this project?"


def transcript(sentence: str) -> str:
    return (
        "Priya Raman: Thanks for joining today.\n"
        "Ana Ruiz: Happy to.\n"
        f"Priya Raman: {sentence}\n"
        "Ana Ruiz: Yes, we do that every quarter with a spreadsheet.\n"
        "Priya Raman: What is the biggest challenge for your team right now?\n"
        "Ana Ruiz: Reporting takes hours every week.\n"
    )


@pytest.fixture
def pb(playbook_dir):
    (playbook_dir / "scorecards" / "mini.yaml").write_text(MINI, encoding="utf-8")
    return playbook_dir


@pytest.fixture
def cli(pb, tmp_path, capsys):
    db = tmp_path / "learn.db"

    def run(*args: str) -> tuple[int, str, str]:
        rc = main([*args, "--playbook", str(pb), "--db", str(db)])
        out = capsys.readouterr()
        return rc, out.out, out.err

    def score(sentence: str, name: str) -> dict:
        f = tmp_path / f"{name}.txt"
        f.write_text(transcript(sentence), encoding="utf-8")
        rc, out, err = run("score", str(f), "--scorecard", "mini", "--rep", "Priya Raman", "--json")
        assert rc == 0, err
        return json.loads(out)

    def bare(*args: str) -> tuple[int, str, str]:  # validate and test take the folder, no database
        rc = main(list(args))
        out = capsys.readouterr()
        return rc, out.out, out.err

    run.score = score
    run.bare = bare
    return run


def verdict(scored: dict, line: str = "budget_confirmed") -> str:
    return next(ln["verdict"] for ln in scored["lines"] if ln["id"] == line)


def entries(pb) -> list[dict]:
    return yaml.safe_load((pb / EXAMPLES).read_text(encoding="utf-8"))["examples"]


# --------------------------------------------------------------------------- the story


def test_a_disputed_false_pass_does_not_recur_on_the_next_call(cli, pb):
    first = cli.score(FOOLS, "first")
    assert verdict(first) == "pass"  # the engine is fooled: "budget" in a question about their tooling
    rc, out, err = cli("override", str(first["call"]), "budget_confirmed", "--verdict", "fail",
                       "--reason", "a question about their tooling, not their budget", "--by", "dana")
    assert rc == 0, err
    assert f"-> {EXAMPLES}" in out and "near miss" in out
    assert entries(pb) == [{"line": "budget_confirmed", "verdict": "fail", "text": FOOLS, "call": first["call"], "by": "dana",
                            "at": entries(pb)[0]["at"], "reason": "a question about their tooling, not their budget"}]
    # the next call says something similar (not the same words): it no longer passes the line
    nxt = cli.score(REWORDED, "next")
    assert verdict(nxt) == "fail", nxt["lines"]
    assert verdict(nxt, "pain_identified") == "pass"
    # a rep who really asks about budget still passes
    assert verdict(cli.score(GENUINE, "genuine")) == "pass"
    # the stored call the dispute came from keeps the human verdict; the playbook is valid
    rc, out, _ = cli("call", str(first["call"]), "--json")
    row = next(ln for ln in json.loads(out)["lines"] if ln["id"] == "budget_confirmed")
    assert row["verdict"] == "fail" and row["engine_verdict"] == "pass" and row["overridden_by"] == "dana"
    assert load_playbook(pb).ok


def test_stored_calls_are_rescored_on_the_new_version(cli, pb):
    """The learned example changes the scorecard version, so the stored calls are re-scored: a
    second call with the same false pass (not disputed) flips to fail."""
    first = cli.score(FOOLS, "first")
    twin = cli.score(FOOLS.replace("Excel", "Excel for you"), "twin")
    assert verdict(twin) == "pass"
    cli("override", str(first["call"]), "budget_confirmed", "--verdict", "fail", "--reason", "tooling, not budget")
    rc, out, err = cli("rescore", "--scorecard", "mini", "--json")
    assert rc == 0, err
    rc, out, _ = cli("call", str(twin["call"]), "--json")
    row = next(ln for ln in json.loads(out)["lines"] if ln["id"] == "budget_confirmed")
    assert row["verdict"] == "fail" and row.get("engine_verdict") in (None, "fail") and not row.get("overridden_by")


# --------------------------------------------------------------------------- what is written


def test_cli_override_records_actor_reason_and_adds_no_duplicate(cli, pb):
    first = cli.score(FOOLS, "first")
    args = ("override", str(first["call"]), "budget_confirmed", "--verdict", "fail", "--reason", "tooling, not budget")
    rc, out, err = cli(*args, "--by", "dana", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["example"] == {"written": True, "file": EXAMPLES, "added": True, "verdict": "fail", "text": FOOLS,
                              "note": res["example"]["note"]}
    text = (pb / EXAMPLES).read_text(encoding="utf-8")
    assert text.startswith(HEADER) and "scorecard: mini\n" in text and "by: dana\n" in text
    # the same dispute again (another reviewer, same sentence): recorded, but not a second entry
    rc, out, err = cli(*args, "--by", "lee")
    assert rc == 0, err
    assert "already" in out
    assert (pb / EXAMPLES).read_text(encoding="utf-8") == text
    assert len(entries(pb)) == 1


def test_override_to_pass_learns_the_given_turn_and_says_how_without_one(cli, pb):
    scored = cli.score("Any plans for this next year?", "weak")
    assert verdict(scored) == "fail"
    rc, out, err = cli("override", str(scored["call"]), "budget_confirmed", "--verdict", "pass", "--reason", "asked about plans",
                       "--json")
    res = json.loads(out)
    assert rc == 0 and res["verdict"] == "pass" and res["example"]["written"] is False
    assert "--turn" in res["example"]["note"]
    assert not (pb / EXAMPLES).exists()
    rc, out, err = cli("override", str(scored["call"]), "budget_confirmed", "--verdict", "pass", "--reason", "asked about plans",
                       "--turn", "2", "--by", "maria")
    assert rc == 0, err
    assert entries(pb)[0] | {"at": None} == {"line": "budget_confirmed", "verdict": "pass", "text": "Any plans for this next year?",
                                              "call": scored["call"], "by": "maria", "at": None, "reason": "asked about plans"}
    card = load_playbook(pb).scorecard("mini")
    assert card.line("budget_confirmed").examples[-1] == "Any plans for this next year?"


def test_na_and_agreeing_overrides_write_nothing(cli, pb):
    scored = cli.score(GENUINE, "genuine")
    rc, out, _ = cli("override", str(scored["call"]), "budget_confirmed", "--verdict", "na", "--reason", "not applicable", "--json")
    assert json.loads(out)["example"]["written"] is False
    rc, out, _ = cli("override", str(scored["call"]), "budget_confirmed", "--verdict", "pass", "--reason", "right", "--json")
    assert "already said pass" in json.loads(out)["example"]["note"]
    assert not (pb / EXAMPLES).exists()


def test_mcp_override_verdict_writes_the_example(pb, tmp_path):
    from server.mcp import build_server

    coach = Coach(pb, tmp_path / "mcp.db")
    try:
        r = score_call(coach, transcript(FOOLS), rep="Priya Raman", scorecard_id="mini", source_name="a.txt")
        before = coach.playbook.version_of("scorecards", "mini")

        async def run():
            async with client(build_server(coach), "legacy") as c:
                return structured(await c.call_tool("override_verdict", {
                    "call_id": r["call"], "line": "budget_confirmed", "verdict": "fail",
                    "reason": "tooling, not budget", "by": "sam@example.com"}))

        res = anyio.run(run)
        assert res["example"]["written"] and res["example"]["file"] == EXAMPLES and res["example"]["text"] == FOOLS
        assert EXAMPLES in res["summary"]
        assert entries(pb)[0]["by"] == "sam@example.com"
        # the server serves the new version at once
        assert coach.playbook.version_of("scorecards", "mini") != before
        assert FOOLS in coach.playbook.scorecard("mini").line("budget_confirmed").counter_examples
    finally:
        coach.close()


# --------------------------------------------------------------------------- the file format


def test_append_keeps_the_file_as_people_left_it(pb):
    path = pb / EXAMPLES
    path.parent.mkdir(parents=True)
    mine = ("# our own note at the top\n"
            "scorecard: mini\n"
            "examples:\n"
            "# a hand-added one\n"
            "- line: pain_identified\n"
            "  verdict: pass   # checked by the team lead\n"
            "  text: What slows the month-end close down?\n")
    path.write_text(mine, encoding="utf-8")
    w = add_example(pb, "mini", line="budget_confirmed", verdict="fail", text=FOOLS, call=3, by="dana",
                    at="2026-12-08T10:00:00Z", reason="a pitch: not a question")
    assert w.added and not w.created and w.path == EXAMPLES
    new = path.read_text(encoding="utf-8")
    assert new.startswith(mine)  # nothing above was touched
    assert [e["line"] for e in entries(pb)] == ["pain_identified", "budget_confirmed"]
    assert entries(pb)[1]["reason"] == "a pitch: not a question"
    assert not add_example(pb, "mini", line="budget_confirmed", verdict="fail", text="  does your BUDGET tracking tool "
                           "export to excel?", by="x").added  # same words, case and spacing aside
    # a flow-style list cannot be appended to: the list is rewritten, the leading comments kept
    path.write_text("# keep me\nscorecard: mini\nexamples: []\n", encoding="utf-8")
    add_example(pb, "mini", line="budget_confirmed", verdict="fail", text=FOOLS)
    assert path.read_text(encoding="utf-8").startswith("# keep me\nscorecard: mini\nexamples:\n  - line: budget_confirmed\n")
    assert not [p for p in path.parent.iterdir() if p.name != "mini.yaml"]  # no temp or lock file left behind


def test_writes_never_leave_the_playbook(pb, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, pb / "scorecards" / "examples")
    with pytest.raises(PlaybookError, match="outside the playbook"):
        add_example(pb, "mini", line="budget_confirmed", verdict="fail", text=FOOLS)
    coach = Coach(pb, tmp_path / "c.db")
    try:
        r = score_call(coach, transcript(FOOLS), rep="Priya Raman", scorecard_id="mini", source_name="a.txt")
        res = override(coach, r["call"], "budget_confirmed", "fail", "tooling", by="dana")
        assert res["verdict"] == "fail" and res["example"]["written"] is False
        assert "outside the playbook" in res["example"]["note"]
    finally:
        coach.close()
    assert list(outside.iterdir()) == []


# --------------------------------------------------------------------------- loading


def write_examples(pb, text: str) -> None:
    (pb / "scorecards" / "examples").mkdir(exist_ok=True)
    (pb / EXAMPLES).write_text(text, encoding="utf-8")


def test_examples_merge_into_lines_and_change_the_version(pb):
    bare = load_playbook(pb)
    art0 = bare.get("scorecards", "mini")
    assert art0.version == content_version((pb / "scorecards" / "mini.yaml").read_bytes())
    add_example(pb, "mini", line="budget_confirmed", verdict="fail", text=FOOLS, by="dana")
    add_example(pb, "mini", line="pain_identified", verdict="pass", text="What slows the month-end close down?")
    loaded = load_playbook(pb)
    assert loaded.ok, loaded.problems
    assert set(loaded.artifacts["scorecards"]) == set(bare.artifacts["scorecards"])  # the folder is not a scorecard
    art = loaded.get("scorecards", "mini")
    assert art.version != art0.version and art.examples_path == EXAMPLES
    card = art.model
    assert card.line("budget_confirmed").counter_examples == [FOOLS]
    assert card.line("pain_identified").examples == ["What slows the month-end close down?"]
    # the recorded text is the scorecard, then a marked copy of the examples file; the version is its hash
    assert art.version == content_version(art.text.encode())
    card_text, rel, ex_text = split_recorded(art.text)
    assert card_text == MINI and rel == EXAMPLES and ex_text == (pb / EXAMPLES).read_text(encoding="utf-8")
    assert "# ---- learned examples: scorecards/examples/mini.yaml" in art.text
    assert parse_recorded_scorecard(art.text) == card
    # what an editor sees is the scorecard file as it is
    assert art.file_text == MINI and art.file_version == art0.version
    # another example: another version; the same file again: the same version
    add_example(pb, "mini", line="budget_confirmed", verdict="fail", text="Is budget season busy for you?")
    assert load_playbook(pb).version_of("scorecards", "mini") not in (art.version, art0.version)
    assert load_playbook(pb).version_of("scorecards", "mini") == load_playbook(pb).version_of("scorecards", "mini")
    assert load_playbook(pb, previous=loaded).scorecard("mini").line("budget_confirmed").counter_examples == [
        FOOLS, "Is budget season busy for you?"]


def test_version_is_recorded_and_show_version_gives_the_examples(cli, pb):
    first = cli.score(FOOLS, "first")
    cli("override", str(first["call"]), "budget_confirmed", "--verdict", "fail", "--reason", "tooling, not budget", "--by", "dana")
    rc, out, err = cli("show-version", "scorecard", "mini")
    assert rc == 0, err
    assert out.startswith(MINI) and "# ---- learned examples: scorecards/examples/mini.yaml" in out and f"#     text: \"{FOOLS}\"" in out
    rc, out, err = cli("diff", "mini", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert [c["id"] for c in d["lines"]["changed"]] == ["budget_confirmed"]
    assert d["lines"]["changed"][0]["fields"] == ["counter_examples"]


def test_a_broken_examples_file_is_reported_and_the_scorecard_serves_without_it(pb, cli):
    bare = load_playbook(pb).version_of("scorecards", "mini")
    write_examples(pb, "scorecard: mini\nexamples:\n  - line: budget_confirmed\n    verdict: fail\n    text: hi\n    colour: red\n")
    loaded = load_playbook(pb)
    assert [(p.file, p.line, p.field) for p in loaded.problems] == [(EXAMPLES, 6, "examples[0].colour")]
    assert loaded.version_of("scorecards", "mini") == bare
    assert loaded.scorecard("mini").line("budget_confirmed").counter_examples == []
    rc, out, err = cli.bare("validate", str(pb))
    assert rc == 1 and f"{EXAMPLES}:6: examples[0].colour: unknown field" in out + err
    # scoring still works on the scorecard as written
    assert verdict(cli.score(FOOLS, "still")) == "pass"
    # invalid YAML, a verdict that is not pass/fail: problems, never a crash
    write_examples(pb, "scorecard: mini\nexamples: [\n")
    assert load_playbook(pb).problems[0].message.startswith("invalid YAML")
    write_examples(pb, "scorecard: mini\nexamples:\n  - {line: budget_confirmed, verdict: na, text: hi}\n")
    assert load_playbook(pb).problems[0].field == "examples[0].verdict"
    # override refuses to write over a broken file, and says so; the override itself is recorded
    scored = cli.score(FOOLS + " Really?", "again")
    rc, out, err = cli("override", str(scored["call"]), "budget_confirmed", "--verdict", "fail", "--reason", "tooling", "--json")
    res = json.loads(out)
    assert rc == 0 and res["verdict"] == "fail" and not res["example"]["written"] and EXAMPLES in res["example"]["note"]


def test_bad_references_are_reported_the_rest_is_used(pb):
    write_examples(pb, "scorecard: mini\nexamples:\n"
                       "  - {line: no_such_line, verdict: fail, text: a}\n"
                       "  - {line: budget_confirmed, verdict: fail, text: Does your budget tool export?}\n"
                       "  - {line: pain_identified, verdict: pass, text: What hurts most?}\n"
                       "  - {line: pain_identified, verdict: fail, text: what hurts  MOST?}\n")
    loaded = load_playbook(pb)
    got = [(p.file, p.line, p.field) for p in loaded.problems]
    assert got == [(EXAMPLES, 3, "examples[0].line"), (EXAMPLES, 5, "examples[2].verdict"), (EXAMPLES, 6, "examples[3].verdict")]
    assert "rubric line 'no_such_line' is not in scorecard 'mini'" in str(loaded.problems[0])
    card = loaded.scorecard("mini")
    assert card.line("budget_confirmed").counter_examples == ["Does your budget tool export?"]
    assert card.line("pain_identified").examples == [] and card.line("pain_identified").counter_examples == []
    # a file for a scorecard that does not exist, or naming another scorecard inside
    write_examples(pb, "scorecard: mini\nexamples: []\n")
    (pb / "scorecards" / "examples" / "nope.yaml").write_text("scorecard: nope\nexamples: []\n")
    probs = load_playbook(pb).problems
    assert [p.file for p in probs] == ["scorecards/examples/nope.yaml"] and "no scorecard 'nope'" in probs[0].message
    (pb / "scorecards" / "examples" / "nope.yaml").unlink()
    write_examples(pb, "scorecard: discovery\nexamples: []\n")
    probs = load_playbook(pb).problems
    assert [(p.file, p.field) for p in probs] == [(EXAMPLES, "scorecard")]


def test_playbook_read_gives_the_scorecard_file_and_its_own_version(pb, tmp_path):
    from server.mcp.playbook_tools import read_artifact, write_artifact

    add_example(pb, "mini", line="budget_confirmed", verdict="fail", text=FOOLS)
    coach = Coach(pb, tmp_path / "r.db")
    try:
        f = read_artifact(coach, "scorecards", "mini", None)
        assert f.text == MINI and f.version == content_version(MINI.encode())
        saved = write_artifact(coach, "scorecards/mini.yaml", MINI.replace("Mini discovery", "Mini"), f.version)
        assert saved.saved
        assert FOOLS in coach.playbook.scorecard("mini").line("budget_confirmed").counter_examples
    finally:
        coach.close()


# --------------------------------------------------------------------------- coachloop test: before -> after


def test_rubric_tests_show_agreement_before_and_after_the_learned_examples(cli, pb):
    tests = pb / "scorecards" / "tests"
    tests.mkdir(exist_ok=True)
    for name, sentence, label in (("mini-tooling", REWORDED, "fail"), ("mini-genuine", GENUINE, "pass")):
        turns = [{"speaker": ln.split(": ", 1)[0], "text": ln.split(": ", 1)[1]} for ln in transcript(sentence).splitlines()]
        (tests / f"{name}.yaml").write_text(yaml.safe_dump({"scorecard": "mini", "rep": "Priya Raman", "turns": turns,
                                                            "labels": {"budget_confirmed": {"verdict": label}}}))
    rc, out, _ = cli.bare("test", str(pb), "--scorecard", "mini")
    assert rc == 1 and "learned examples" not in out  # the engine passes the tooling question
    add_example(pb, "mini", line="budget_confirmed", verdict="fail", text=FOOLS, by="dana")
    rc, out, err = cli.bare("test", str(pb), "--scorecard", "mini")
    assert rc == 0, out + err
    assert f"learned examples: {EXAMPLES} (0 pass, 1 near miss)" in out
    assert "accuracy 50.0%" in out  # as written
    row = next(ln for ln in out.splitlines() if ln.strip().startswith("budget_confirmed"))
    assert "50.0% -> 100.0%" in row
    rc, out, _ = cli.bare("test", str(pb), "--scorecard", "mini", "--json")
    rep = json.loads(out)["scorecards"]["mini"]
    assert rep["lines"]["budget_confirmed"]["accuracy"] == 1.0
    assert rep["learned"]["file"] == EXAMPLES and rep["learned"]["fail"] == 1
    assert rep["learned"]["lines"]["budget_confirmed"]["accuracy"] == 0.5 and rep["learned"]["disagreements"] == 1
