"""The offline discovery scorer on calls it was not first written against: 14 full calls labelled
independently of the scorer (tests/fixtures/holdout) and ~140 short probe calls of new phrasings and
traps (tests/fixtures/discovery_probes). Fails when generalisation drops below the issue's targets."""
from __future__ import annotations

from pathlib import Path

import pytest

from playbook.loader import load_playbook
from playbook.starter import STARTER_DIR
from tools.scoring.evaluate import evaluate, load_labelled

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def card():
    return load_playbook(STARTER_DIR).scorecard("discovery")


def _misses(report) -> str:
    return "\n".join(f"  {m['file']} {m['line']}: expected {m['expected']}, got {m['got']}" for m in report["misses"])


def test_independent_holdout_meets_the_targets(card):
    report = evaluate(load_labelled(FIXTURES / "holdout"), card)
    assert report["calls"] == 14
    assert report["accuracy"] >= 0.95, f"overall {report['accuracy']:.1%}\n{_misses(report)}"
    for lid, ln in report["lines"].items():
        assert ln["accuracy"] >= 0.85, f"{lid}: {ln['accuracy']:.1%}\n{_misses(report)}"


def test_probe_calls_new_phrasings_and_traps(card):
    report = evaluate(load_labelled(FIXTURES / "discovery_probes"), card)
    assert report["calls"] >= 140
    assert report["accuracy"] >= 0.97, f"overall {report['accuracy']:.1%}\n{_misses(report)}"
    for lid, ln in report["lines"].items():
        assert ln["accuracy"] >= 0.90, f"{lid}: {ln['accuracy']:.1%}\n{_misses(report)}"
    assert report["evidence_accuracy"] >= 0.90, report["evidence_misses"]
