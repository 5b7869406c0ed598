"""Measure a scorecard against labelled calls (the dev-set JSON format, or rubric tests).

A labelled call: `{"rep": "<speaker name>", "turns": [{"speaker", "text"}...],
"labels": {"<line id>": {"verdict": "pass"|"fail"|"na", "turn": int|null, "note": str}}}`.

`evaluate(cases, scorecard)` scores every call with the offline engine (or a given engine) and
returns overall accuracy, per-line accuracy, Cohen's kappa per line, evidence-turn accuracy on
true passes, a confusion matrix per line (expected x got over pass/fail/na) and every miss.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from playbook.models import Scorecard
from tools.transcripts.model import Turn

from . import CallScore, score_turns
from .agreement import cohen_kappa

VERDICTS = ("pass", "fail", "na")


@dataclass
class LabelledCall:
    name: str  # file name (or test id)
    rep: str
    turns: list[Turn]
    labels: dict[str, dict]  # line id -> {"verdict", "turn", "note"}
    scorecard: str | None = None  # the scorecard it was labelled against, when the file says


def turns_from_dicts(raw: list[dict], rep: str, source: str = "<turns>") -> list[Turn]:
    """Turns with roles from `[{"speaker", "text", "role"?}]`; the rep is matched by name."""
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{source}: 'turns' must be a non-empty list of {{speaker, text}}")
    out = []
    rep_key = (rep or "").strip().casefold()
    for i, t in enumerate(raw):
        if not isinstance(t, dict) or "text" not in t:
            raise ValueError(f"{source}: turns[{i}] must be an object with 'speaker' and 'text'")
        speaker = str(t.get("speaker", ""))
        role = t.get("role") or ("rep" if speaker.strip().casefold() == rep_key else "buyer")
        out.append(Turn(speaker=speaker, text=str(t["text"]), start=t.get("start"), end=t.get("end"), role=role))
    if not any(t.role == "rep" for t in out):
        speakers = sorted({t.speaker for t in out})
        raise ValueError(f"{source}: rep '{rep}' is not one of the speakers {speakers}")
    return out


def load_labelled(folder: str | Path) -> list[LabelledCall]:
    """Every *.json / *.yaml labelled call in a folder, sorted by file name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"labelled folder not found: {folder}")
    cases = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".json", ".yaml", ".yml") or path.name.startswith("."):
            continue
        try:
            data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
        except (ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: not valid {path.suffix[1:].upper()}: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict) or "labels" not in data or "turns" not in data:
            raise ValueError(f"{path}: expected an object with 'rep', 'turns' and 'labels'")
        cases.append(LabelledCall(path.name, data.get("rep", ""), turns_from_dicts(data["turns"], data.get("rep", ""), str(path)),
                                  {k: dict(v) for k, v in data["labels"].items()}, data.get("scorecard")))
    return cases


def evaluate(
    cases: list[LabelledCall],
    scorecard: Scorecard,
    *,
    version: str = "",
    scorer: Callable[[list[Turn], Scorecard], CallScore] | None = None,
) -> dict[str, Any]:
    """Score every case and compare with its labels. Lines a case does not label are skipped."""
    scorer = scorer or (lambda turns, card: score_turns(turns, card, version=version))
    line_ids = [ln.id for ln in scorecard.lines]
    per: dict[str, dict] = {lid: {"n": 0, "right": 0, "pairs": [], "confusion": {e: {g: 0 for g in VERDICTS} for e in VERDICTS},
                                  "evidence_n": 0, "evidence_right": 0} for lid in line_ids}
    misses: list[dict] = []
    evidence_misses: list[dict] = []
    calls = []
    for case in cases:
        result = scorer(case.turns, scorecard)
        got = {v.id: v for v in result.lines}
        calls.append({"file": case.name, "score": result.score})
        for lid in line_ids:
            lab = case.labels.get(lid)
            if lab is None or lid not in got:
                continue
            exp = lab.get("verdict")
            if exp not in VERDICTS:
                raise ValueError(f"{case.name}: labels.{lid}.verdict must be pass, fail or na, not {exp!r}")
            v = got[lid]
            p = per[lid]
            p["n"] += 1
            p["pairs"].append((exp, v.verdict))
            p["confusion"][exp][v.verdict] += 1
            if exp == v.verdict:
                p["right"] += 1
            else:
                misses.append({"file": case.name, "line": lid, "expected": exp, "got": v.verdict,
                               "expected_turn": lab.get("turn"), "got_turn": v.turn, "quote": v.quote,
                               "reason": v.reason, "note": lab.get("note", "")})
            if exp == "pass" and lab.get("turn") is not None:
                p["evidence_n"] += 1
                if v.verdict == "pass" and v.turn == lab.get("turn"):
                    p["evidence_right"] += 1
                else:
                    evidence_misses.append({"file": case.name, "line": lid, "expected_turn": lab.get("turn"),
                                            "got": v.verdict, "got_turn": v.turn})
    total_n = sum(p["n"] for p in per.values())
    total_right = sum(p["right"] for p in per.values())
    ev_n = sum(p["evidence_n"] for p in per.values())
    ev_right = sum(p["evidence_right"] for p in per.values())
    lines_out = {}
    for lid, p in per.items():
        if not p["n"]:
            continue
        lines_out[lid] = {
            "n": p["n"],
            "accuracy": round(p["right"] / p["n"], 4),
            "kappa": cohen_kappa(p["pairs"]),
            "evidence": round(p["evidence_right"] / p["evidence_n"], 4) if p["evidence_n"] else None,
            "evidence_n": p["evidence_n"],
            "confusion": p["confusion"],
        }
    lowest = min((ln["accuracy"] for ln in lines_out.values()), default=None)
    return {
        "scorecard": scorecard.id,
        "calls": len(cases),
        "lowest_line": lowest,
        "verdicts": total_n,
        "accuracy": round(total_right / total_n, 4) if total_n else None,
        "evidence_accuracy": round(ev_right / ev_n, 4) if ev_n else None,
        "evidence_n": ev_n,
        "lines": lines_out,
        "misses": misses,
        "evidence_misses": evidence_misses,
        "per_call": calls,
    }


# The targets for a scorecard on labelled calls: share of verdicts right, the lowest line,
# evidence turn right on true passes.
TARGETS = {"accuracy": 0.90, "lowest_line": 0.80, "evidence_accuracy": 0.85}


def meets_targets(report: dict[str, Any], targets: dict[str, float] = TARGETS) -> list[str]:
    """The targets a report misses, as 'name figure < target' strings (empty: all met)."""
    out = []
    for key, target in targets.items():
        got = report.get(key)
        if got is not None and got < target:
            out.append(f"{key} {got:.1%} < {target:.0%}")
    return out
