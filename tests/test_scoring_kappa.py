"""Cohen's kappa against hand-computed values."""
from __future__ import annotations

import pytest

from tools.scoring.agreement import cohen_kappa


def test_kappa_textbook_two_by_two():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15.
    # p_o = 35/50 = 0.7; rater A yes 25/50, rater B yes 30/50;
    # p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)


def test_kappa_three_categories():
    # p_o = 5/6; A: pass 3, fail 2, na 1; B: pass 2, fail 3, na 1
    # p_e = (3*2 + 2*3 + 1*1) / 36 = 13/36; kappa = (30/36 - 13/36) / (23/36) = 17/23
    a = ["pass", "pass", "fail", "fail", "pass", "na"]
    b = ["pass", "fail", "fail", "fail", "pass", "na"]
    assert cohen_kappa(zip(a, b)) == pytest.approx(17 / 23, abs=1e-4)


def test_kappa_edges():
    assert cohen_kappa([]) is None
    assert cohen_kappa([("pass", "pass")] * 4) == 1.0  # all one category, full agreement
    assert cohen_kappa([("pass", "fail"), ("fail", "pass")]) == pytest.approx(-1.0)
    assert cohen_kappa([("pass", "fail")] * 3) == 0.0  # no agreement, chance agreement 0
