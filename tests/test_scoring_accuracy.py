"""The offline engine against the hand-labelled dev set (../shared/eval/dev) and the starter's own
rubric tests. Fails when accuracy drops below the issue's targets."""
from __future__ import annotations

import pytest

from playbook.loader import load_playbook
from playbook.starter import STARTER_DIR
from conftest import DEV_SET
from tools.scoring.evaluate import evaluate, load_labelled
from tools.scoring.rubric_tests import run_rubric_tests

OVERALL_TARGET = 0.90
PER_LINE_TARGET = 0.75
EVIDENCE_TARGET = 0.85


@pytest.fixture(scope="module")
def dev_report():
    if not DEV_SET.is_dir() or not any(DEV_SET.glob("*.json")):
        pytest.skip(f"dev set not found at {DEV_SET} (it sits beside the repository as ../shared/eval/dev)")
    card = load_playbook(STARTER_DIR).scorecard("discovery")
    return evaluate(load_labelled(DEV_SET), card)


def _misses(report, line=None):
    return "\n".join(
        f"  {m['file']} {m['line']}: expected {m['expected']}, got {m['got']} ({m['reason']})"
        for m in report["misses"] if line is None or m["line"] == line
    )


def test_dev_set_overall_accuracy(dev_report):
    assert dev_report["calls"] >= 16
    assert dev_report["accuracy"] >= OVERALL_TARGET, f"overall {dev_report['accuracy']:.1%}\n{_misses(dev_report)}"


def test_dev_set_every_line_accuracy(dev_report):
    assert len(dev_report["lines"]) == 10
    for lid, ln in dev_report["lines"].items():
        assert ln["accuracy"] >= PER_LINE_TARGET, f"{lid}: {ln['accuracy']:.1%}\n{_misses(dev_report, lid)}"


def test_dev_set_evidence_turns(dev_report):
    assert dev_report["evidence_n"] >= 40
    assert dev_report["evidence_accuracy"] >= EVIDENCE_TARGET, dev_report["evidence_misses"]


def test_starter_rubric_tests_all_agree():
    report = run_rubric_tests(load_playbook(STARTER_DIR))
    assert set(report["scorecards"]) == {"discovery", "demo", "outbound", "renewal", "support"}
    assert report["ok"], report["failures"] + report["problems"]
    disc = report["scorecards"]["discovery"]
    assert disc["tests"] >= 6
    # every discovery line has at least one labelled pass and one labelled fail
    pb = load_playbook(STARTER_DIR)
    seen: dict[str, set] = {}
    for _, test in pb.tests["discovery"]:
        for lid, lab in test.labels.items():
            seen.setdefault(lid, set()).add(lab.verdict)
    for lid, verdicts in seen.items():
        assert {"pass", "fail"} <= verdicts, f"{lid} lacks a pass or a fail example: {verdicts}"
    assert len(seen) == 10
    for sid in ("demo", "outbound", "renewal", "support"):
        assert report["scorecards"][sid]["tests"] >= 2


def _as_speech_to_text(text: str, salt: int) -> str:
    """A punctuated turn as raw speech recognition would give it: lowercase, no punctuation, fillers."""
    import re

    words = re.sub(r"[^\w\s'$%-]", " ", text.lower().replace("’", "'")).split()
    fillers = ["um", "uh", "you know", "like"]
    out = []
    for i, w in enumerate(words):
        if (i * 7 + salt) % 17 == 0:
            out.append(fillers[(i + salt) % len(fillers)])
        out.append(w)
    return " ".join(out)


def test_dev_set_punctuated_calls_survive_speech_to_text(dev_report):
    """The same calls with every question mark, capital and comma stripped (and fillers added)
    score (nearly) the same: question detection does not lean on punctuation."""
    card = load_playbook(STARTER_DIR).scorecard("discovery")
    cases = [c for c in load_labelled(DEV_SET) if any("?" in t.text for t in c.turns)]
    assert len(cases) >= 6
    for n, c in enumerate(cases):
        for k, t in enumerate(c.turns):
            t.text = _as_speech_to_text(t.text, n + k)
    rep = evaluate(cases, card)
    # "nearly the same": the punctuated originals score 100%; stripped, 98.75% (evidence 97.8%)
    assert rep["accuracy"] >= 0.97, _misses(rep)
    assert rep["evidence_accuracy"] >= 0.95, rep["evidence_misses"]
