"""Agreement between two raters (the engine and the labels): Cohen's kappa.

kappa = (p_o - p_e) / (1 - p_e), where p_o is the share of items both raters put in the same
category and p_e the agreement expected by chance from each rater's own category shares.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable


def cohen_kappa(pairs: Iterable[tuple[str, str]]) -> float | None:
    """Cohen's kappa over (rater_a, rater_b) category pairs, rounded to 4 places.

    Returns None for no pairs. When chance agreement is total (both raters always used one and
    the same category) kappa is undefined; we return 1.0 if they agree on everything, else 0.0.
    """
    pairs = list(pairs)
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(1 for a, b in pairs if a == b) / n
    ca = Counter(a for a, _ in pairs)
    cb = Counter(b for _, b in pairs)
    expected = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    if expected >= 1.0 - 1e-12:
        return 1.0 if observed >= 1.0 - 1e-12 else 0.0
    return round((observed - expected) / (1.0 - expected), 4)
