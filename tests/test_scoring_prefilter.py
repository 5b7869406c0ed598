"""The offline engine's prefilter (tools/scoring/prefilter.py) is a shortcut only: a sentence it
skips can never match, so verdicts are exactly those of running every regex."""
from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from playbook.loader import parse_artifact_text
from playbook.starter import STARTER_DIR
from conftest import DEV_SET
from tools.scoring import offline, score_turns
from tools.scoring.evaluate import load_labelled
from tools.scoring.offline import _has_cues, _plain
from tools.scoring.prefilter import pattern_cues
from tools.scoring.text import analyse_call


def _cards():
    out = {}
    for p in sorted((STARTER_DIR / "scorecards").glob("*.yaml")):
        model, probs = parse_artifact_text("scorecards", p.name, p.read_text())
        assert model is not None, probs
        out[p.stem] = model
    return out


def _starter_patterns() -> list[str]:
    pats = []
    for card in _cards().values():
        for ln in card.lines:
            pats += ln.patterns + ln.not_patterns + ln.agree_patterns + ln.refuse_patterns
            if ln.trigger:
                pats += ln.trigger.patterns + ln.trigger.not_patterns + ln.trigger.unless_after
    return pats


def test_cues_of_simple_shapes():
    assert pattern_cues(r"\bbudget\b", re.I) == (("budget",),)
    # an alternation gives one group; every branch must bring a cue
    assert pattern_cues(r"\b(who|whom) (signs|approves)\b", re.I) == (("approves", "signs"), ("who",))
    assert pattern_cues(r"\b(budget|\w+ money)\b", re.I) == ((" money", "budget"),)
    assert pattern_cues(r"\b(budget|\w+)\b", re.I) is None  # a branch with no literal: nothing certain
    # optional parts and lookarounds add nothing; a repeat of at least one does
    assert pattern_cues(r"(?:really )?(?=x)cost(?<!y)", re.I) == (("cost",),)
    assert pattern_cues(r"(?:ab)+c{2}", re.I) == (("ab",), ("c",))
    assert pattern_cues(r"\bBUDGET", re.I) == (("budget",),)  # case-folded (used on lower-case text only)
    assert pattern_cues(r"caf\u00e9", re.I) is None  # non-ASCII literal: not used
    assert pattern_cues(r"[unclosed", re.I) is None


TRICKY = [
    r"\b(what|which) (\w+ ){0,3}(problem|issue)s?\b",
    r"(?:how (much|many))+ (time|money)",
    r"\b(\w+) \1\b",
    r"^(so )?(when|by when)\b",
    r"(?i:Hello) (there|world)",
    r"a{0}budget|spend",
    r"\bcan('t| not)\b",
    r"(?P<x>ab)(?P=x)c",
]


HOLDOUT = Path(__file__).parent / "fixtures" / "holdout"


def _texts() -> list[str]:
    texts = []
    for folder in (DEV_SET, HOLDOUT):  # the holdout ships with the repository; the dev set beside it
        if folder.is_dir():
            for case in load_labelled(folder):
                call = analyse_call(case.turns)
                texts += [s.text for t in call.turns for s in t.sentences]
    rng = random.Random(5)
    vocab = ("what which how much many when who budget spend money problem problems issue time so by can't can not "
             "hello there world ab abab c cc really cost the a is are you your do does signs approves x y").split()
    texts += [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    return texts


@pytest.mark.parametrize("which", ["starter", "tricky"])
def test_a_matching_text_always_holds_the_cues(which):
    pats = _starter_patterns() if which == "starter" else TRICKY
    compiled = [(re.compile(p, re.I), pattern_cues(p, re.I)) for p in pats]
    assert any(c is not None for _, c in compiled)
    texts = _texts()
    checked = 0
    for rx, cues in compiled:
        if cues is None:
            continue
        for text in texts:
            if _plain(text) and rx.search(text):
                checked += 1
                assert _has_cues(cues, text), (rx.pattern, cues, text)
    assert checked > 20  # the check ran on real matches


@pytest.mark.skipif(not DEV_SET.is_dir(), reason="the shared dev set is not beside the repository")
def test_verdicts_with_and_without_prefilter_are_identical(monkeypatch):
    cards = _cards()
    cases = load_labelled(DEV_SET)
    fast = {(c.name, sid): score_turns(c.turns, card).model_dump() for c in cases for sid, card in cards.items()}
    # no cues at all: every pattern runs on every sentence (phrases keep their exact, trivially sound check)
    monkeypatch.setattr(offline, "pattern_cues", lambda pattern, flags=0: None)
    offline._compile_line.cache_clear()
    offline._BY_ID.clear()
    offline.clear_caches()  # fresh sentences and matches: nothing kept from the run above
    try:
        slow = {(c.name, sid): score_turns(c.turns, card).model_dump() for c in cases for sid, card in cards.items()}
    finally:
        offline._compile_line.cache_clear()
        offline._BY_ID.clear()
        offline.clear_caches()
    assert fast == slow


@pytest.mark.parametrize("which", ["starter", "tricky"])
def test_one_regex_per_line_finds_a_cue_wherever_any_pattern_matches(which):
    """offline.Compiled.pos_any: one search per turn stands in for every pattern of a line."""
    from tools.scoring.prefilter import any_cue_regex

    if which == "starter":
        lines = [ln.patterns for card in _cards().values() for ln in card.lines if ln.patterns]
    else:
        lines = [[p for p in TRICKY if pattern_cues(p, re.I)]]
    texts = _texts()
    checked = 0
    for pats in lines:
        rxs = [re.compile(p, re.I) for p in pats]
        any_rx = any_cue_regex([pattern_cues(p, re.I) for p in pats])
        if any_rx is None:
            continue
        for text in texts:
            if _plain(text) and any(rx.search(text) for rx in rxs):
                checked += 1
                assert any_rx.search(text), (pats, text)
                # the same holds for the text inside a longer one (a turn, a whole call)
                assert any_rx.search("so okay\n" + text + " right\nyeah")
    assert checked > 20
    assert any_cue_regex([(("budget",),), None]) is None  # a pattern without cues: nothing can be skipped


def test_the_fast_path_for_plain_words_keeps_what_drop_fillers_keeps():
    from tools.scoring.text import _drop_fillers, _keeps_all

    rng = random.Random(11)
    vocab = ("um uh you know i mean kind sort of like the the a so we what budget is it's guys really "
             "yeah okay and do did let's").split()
    fast = 0
    for _ in range(20000):
        ws = [rng.choice(vocab) for _ in range(rng.randint(1, 10))]
        if _keeps_all(ws):
            fast += 1
            kept, breaks = _drop_fillers(ws, [])
            assert kept == list(range(len(ws))) and not any(breaks), ws
    assert fast > 500


def test_clauses_are_analysed_only_where_a_line_can_match():
    """The second pass (clauses, questions) runs on demand: turns with none of a line's words and
    no question to find never need it, and a completed turn reads the same as ever."""
    from playbook.models import Scorecard
    from tools.scoring import text
    from tools.transcripts.model import Turn

    card = _cards()["discovery"]
    assert isinstance(card, Scorecard)
    filler = ["yeah that makes sense to me", "right, we had the same thing last year with the other team",
              "the weather has been rough lately", "sure thing"]
    turns = [Turn("Rep", "hi there, thanks for joining", role="rep"), Turn("Buyer", "happy to", role="buyer")]
    for k in range(60):
        turns.append(Turn("Rep", f"{filler[k % 4]} number {k}", role="rep"))
        turns.append(Turn("Buyer", f"{filler[(k + 1) % 4]} item {k}", role="buyer"))
    turns.append(Turn("Rep", "What budget have you set aside for this?", role="rep"))
    turns.append(Turn("Buyer", "About fifty thousand for the year.", role="buyer"))
    offline.clear_caches()
    result = score_turns(turns, card)
    assert {ln.id: ln.verdict for ln in result.lines}["budget_confirmed"] == "pass"
    done = [t for t in turns if text._analyse_text(t.text, True).done]
    assert 0 < len(done) < len(turns) // 4, len(done)
    # reading a lazy turn's clauses completes it, with clauses numbered across its sentences
    an = text._analyse_text("Okay. So what drives this? And who else signs off?", True)
    assert not an.done
    idx = [c.index for s in an.sentences for c in s.clauses]
    assert an.done and idx == list(range(len(idx))) and len(idx) >= 3


def test_scoring_makes_no_reference_cycles():
    """Scoring workers run with the cycle collector off (tools.scoring.tune_gc_for_scoring_worker):
    that is only sound while scoring leaves no cyclic garbage behind."""
    import gc

    card = _cards()["discovery"]
    calls = [case.turns for case in load_labelled(HOLDOUT)]
    assert len(calls) >= 10
    score_turns(calls[0], card)  # compiling the lines is once per process: not counted
    offline.clear_caches()
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        for turns in calls:
            score_turns(turns, card)
        offline.clear_caches()  # analyses dropped from the caches must be freed by reference counting
        assert gc.collect() == 0
    finally:
        if was:
            gc.enable()


def test_long_texts_are_not_kept_between_calls():
    """The caches are bounded by count; long texts are analysed afresh so they stay bounded in size."""
    from tools.scoring import text

    offline.clear_caches()
    short = "so what budget have you set aside for this"
    assert text.analysis_of(short, False) is text.analysis_of(short, False)
    long = " ".join(["and we talked about the rollout plan for the new region"] * 40)
    assert len(long) > text.CACHED_TEXT_MAX
    assert text.analysis_of(long, False) is not text.analysis_of(long, False)
    card = _cards()["discovery"]
    from tools.transcripts.model import Turn

    score_turns([Turn("Rep", long + ". What budget have you set aside?", role="rep"), Turn("Buyer", long, role="buyer")], card)
    assert all(len(k) <= text.CACHED_TEXT_MAX for k in text._CORES)
    assert all(len(k[1]) <= text.CACHED_TEXT_MAX for k in offline._SENTENCE_MAY)


def test_a_very_long_phrase_in_a_line_still_scores():
    """The combined cue regexes cut cue strings short (prefilter.MAX_CUE): a paragraph pasted as a
    phrase neither breaks compiling the line nor stops it matching."""
    from playbook.models import RubricLine, Scorecard
    from tools.transcripts.model import Turn

    long_phrase = " ".join(f"word{i}" for i in range(600))  # ~4,900 characters
    card = Scorecard(id="long", title="Long", lines=[
        RubricLine(id="said_it", title="Said it", kind="statement", phrases=[long_phrase, "budget"]),
        RubricLine(id="nested", title="Nested", kind="statement", phrases=["a" * k for k in range(1, 400)])])
    turns = [Turn("Rep", f"Okay so {long_phrase} and that is all.", role="rep"), Turn("Buyer", "Fine.", role="buyer")]
    offline.clear_caches()
    res = {ln.id: ln.verdict for ln in score_turns(turns, card).lines}
    assert res == {"said_it": "pass", "nested": "fail"}
