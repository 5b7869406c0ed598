"""Scoring: judge one call, line by line, against a scorecard, with evidence for every verdict.

Public API
----------
- `LineVerdict(id, verdict, turn, quote, reason)`: one rubric line's verdict. `turn` is the 0-based
  index (into the merged turns) of the evidence turn, `quote` its words (trimmed to ~300 chars).
- `CallScore(scorecard, scorecard_version, engine, engine_version, lines, score)`.
- `score_turns(turns, scorecard, *, version="", engine="offline", llm=None) -> CallScore`.

Two engines produce the same `CallScore`:
- `offline` (default, `tools.scoring.offline`): deterministic, no network; reads the plain-text
  fields of each rubric line (phrases, patterns, examples, speaker, where, kind, trigger...).
- `llm` (`tools.scoring.llm_engine.score_with_llm`): the same scorecard judged by a model.

`score` is the weighted share of passes among applicable lines (pass + fail; `na` excluded),
0..1, and 0.0 when no line applies.
"""
from __future__ import annotations

import gc
from typing import Any, Literal

from pydantic import BaseModel, Field

from playbook.models import Scorecard

def tune_gc_for_scoring_worker() -> None:
    """For a worker process that only scores calls in bulk: turn the cycle collector off.
    Scoring makes many small objects per call and keeps bounded caches of analysed text; the
    collector's passes over them took about a twentieth of a worker's time (and half of it before
    the analysis lost its reference cycles), while finding nothing to free: scoring makes no
    reference cycles (tests/test_scoring_prefilter.py checks), so reference counting frees every
    call's objects. Only worker processes call this; they end with their batch."""
    gc.freeze()
    gc.disable()


OFFLINE_ENGINE = "offline"
OFFLINE_ENGINE_VERSION = "offline-20"  # bump whenever the offline engine's behaviour changes


class LineVerdict(BaseModel):
    id: str
    verdict: Literal["pass", "fail", "na"]
    turn: int | None = None
    quote: str | None = None
    reason: str = ""


class CallScore(BaseModel):
    scorecard: str
    scorecard_version: str = ""
    engine: str = OFFLINE_ENGINE
    engine_version: str = OFFLINE_ENGINE_VERSION
    lines: list[LineVerdict] = Field(default_factory=list)
    score: float = 0.0

    def verdict(self, line_id: str) -> LineVerdict | None:
        return next((v for v in self.lines if v.id == line_id), None)


def weighted_score(lines: list[LineVerdict], scorecard: Scorecard) -> float:
    """Weighted passes / weighted applicable lines (0..1); 0.0 when nothing applies."""
    weights = {ln.id: ln.weight for ln in scorecard.lines}
    num = den = 0.0
    for v in lines:
        if v.verdict == "na":
            continue
        w = weights.get(v.id, 1.0)
        den += w
        if v.verdict == "pass":
            num += w
    return round(num / den, 4) if den > 0 else 0.0


def score_turns(
    turns: list[Any],
    scorecard: Scorecard,
    *,
    version: str = "",
    engine: str = OFFLINE_ENGINE,
    llm: Any = None,
) -> CallScore:
    """Score one call's turns (each with `.role` "rep" or "buyer") against `scorecard`.

    `version` is the scorecard's content version, recorded with the result. `engine` "offline"
    (default) is deterministic: the same turns and scorecard always give the same verdicts.
    `engine="llm"` delegates to `tools.scoring.llm_engine.score_with_llm` with `llm` as client.
    """
    if engine == "llm":
        from tools.scoring.llm_engine import score_with_llm  # lazy: needs the openai client

        return score_with_llm(turns, scorecard, version=version, client=llm)
    if engine != OFFLINE_ENGINE:
        raise ValueError(f"unknown scoring engine '{engine}' (use 'offline' or 'llm')")
    from tools.scoring.offline import score_offline

    return score_offline(turns, scorecard, version=version)


__all__ = [
    "CallScore",
    "LineVerdict",
    "OFFLINE_ENGINE",
    "OFFLINE_ENGINE_VERSION",
    "score_turns",
    "weighted_score",
]
