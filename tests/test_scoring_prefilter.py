"""The offline engine's prefilter (tools/scoring/prefilter.py) is a shortcut only: a sentence it
skips can never match, so verdicts are exactly those of running every regex."""
from __future__ import annotations

import random
import re

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


def _texts() -> list[str]:
    texts = []
    if DEV_SET.is_dir():
        for case in load_labelled(DEV_SET):
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
    from tools.scoring import text

    text._analyse_text.cache_clear()  # fresh sentences: no memo from the run above
    try:
        slow = {(c.name, sid): score_turns(c.turns, card).model_dump() for c in cases for sid, card in cards.items()}
    finally:
        offline._compile_line.cache_clear()
        offline._BY_ID.clear()
        text._analyse_text.cache_clear()
    assert fast == slow
