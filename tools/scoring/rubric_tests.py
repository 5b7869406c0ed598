"""Rubric tests: labelled example transcripts that ship beside a scorecard (scorecards/tests/).

`run_rubric_tests(playbook, scorecard_id=None) -> dict` scores every test with the offline engine
and compares with its labels:

    {
      "ok": bool,                      # every verdict (and labelled evidence turn) agrees
      "engine_version": "offline-3",
      "scorecards": {
        "<id>": {
          "scorecard": id, "version": content hash, "tests": number of files,
          "verdicts": n, "accuracy": share right, "kappa": Cohen's kappa over all lines,
          "lines": {"<line>": {"n", "right", "accuracy", "kappa", "turn_n", "turn_right"}},
          "failures": [{"file", "test", "line", "kind": "verdict"|"turn", "expected", "got",
                        "expected_turn", "got_turn", "quote", "reason", "note"}],
          "problems": ["file: message"],     # tests that could not be run
          "learned": {                       # only when scorecards/examples/<id>.yaml is merged in
            "file", "pass": n, "fail": n,    # the examples file and how many examples it added
            "version", "accuracy", "kappa", "disagreements",   # the scorecard as written, without them
            "lines": {"<line>": {"n", "right", "accuracy", "kappa"}}
          }
        }
      },
      "failures": [... every scorecard's failures ...],
    }

With `scorecard_id`, that scorecard's report is also merged into the top level (so
`report["lines"][line]["kappa"]` is what the certification gate reads). Results are cached by
scorecard version, tests content and engine version: the same inputs never run twice.

The top-level figures are those of the scorecard as served (learned examples merged in); when a
learned-examples file exists, `learned` holds the same tests run on the scorecard as written, so
`coachloop test` can show what the learned examples changed ("before -> after").
"""
from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from playbook.loader import Playbook, PlaybookError

from . import OFFLINE_ENGINE_VERSION, score_turns
from .agreement import cohen_kappa
from .evaluate import turns_from_dicts

_CACHE: dict[tuple, dict] = {}
_LOCK = threading.Lock()
_CACHE_MAX = 256


def _tests_key(tests: list) -> str:
    h = hashlib.sha256()
    for rel, test in sorted(tests, key=lambda x: x[0]):
        h.update(rel.encode())
        h.update(json.dumps(test.model_dump(mode="json"), sort_keys=True, default=str).encode())
    return h.hexdigest()


def _run_one(pb: Playbook, sid: str) -> dict:
    art = pb.require("scorecards", sid)
    tests = pb.tests.get(sid, [])
    report = _run_card(pb, sid, art.model, art.version, tests)
    if art.base is not None:  # learned examples merged in: the same tests on the scorecard as written
        before = _run_card(pb, sid, art.base.model, art.base.version, tests)
        n_pass = n_fail = 0
        for old, new in zip(art.base.model.lines, art.model.lines):
            n_pass += len(new.examples) - len(old.examples)
            n_fail += len(new.counter_examples) - len(old.counter_examples)
        report["learned"] = {
            "file": art.examples_path, "pass": n_pass, "fail": n_fail, "version": before["version"],
            "accuracy": before["accuracy"], "kappa": before["kappa"], "disagreements": len(before["failures"]),
            "lines": {lid: {k: ln[k] for k in ("n", "right", "accuracy", "kappa")} for lid, ln in before["lines"].items()},
        }
    return report


def _run_card(pb: Playbook, sid: str, card, version: str, tests: list) -> dict:
    key = (str(pb.root), sid, version, _tests_key(tests), OFFLINE_ENGINE_VERSION)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return json.loads(json.dumps(hit))  # a copy: callers may mutate
    lines: dict[str, dict] = {ln.id: {"n": 0, "right": 0, "pairs": [], "turn_n": 0, "turn_right": 0} for ln in card.lines}
    failures: list[dict] = []
    problems: list[str] = []
    for rel, test in sorted(tests, key=lambda x: x[0]):
        try:
            turns = turns_from_dicts(test.turns, test.rep, rel)
            result = score_turns(turns, card, version=version)
        except (ValueError, TypeError) as exc:
            problems.append(f"{rel}: {exc}")
            continue
        got = {v.id: v for v in result.lines}
        for lid, lab in test.labels.items():
            v = got.get(lid)
            if v is None:
                problems.append(f"{rel}: labels.{lid}: not a line of scorecard '{sid}'")
                continue
            st = lines[lid]
            st["n"] += 1
            st["pairs"].append((lab.verdict, v.verdict))
            base = {"file": rel, "test": test.id, "line": lid, "expected": lab.verdict, "got": v.verdict,
                    "expected_turn": lab.turn, "got_turn": v.turn, "quote": v.quote, "reason": v.reason, "note": lab.note}
            if lab.verdict == v.verdict:
                st["right"] += 1
            else:
                failures.append({**base, "kind": "verdict"})
            if lab.verdict == "pass" and lab.turn is not None:
                st["turn_n"] += 1
                if v.verdict == "pass" and v.turn == lab.turn:
                    st["turn_right"] += 1
                elif v.verdict == "pass":
                    failures.append({**base, "kind": "turn"})
    all_pairs = [p for st in lines.values() for p in st["pairs"]]
    out_lines = {}
    for lid, st in lines.items():
        out_lines[lid] = {
            "n": st["n"],
            "right": st["right"],
            "accuracy": round(st["right"] / st["n"], 4) if st["n"] else None,
            "kappa": cohen_kappa(st["pairs"]),
            "turn_n": st["turn_n"],
            "turn_right": st["turn_right"],
        }
    n = len(all_pairs)
    report = {
        "scorecard": sid,
        "version": version,
        "tests": len(tests),
        "verdicts": n,
        "accuracy": round(sum(1 for a, b in all_pairs if a == b) / n, 4) if n else None,
        "kappa": cohen_kappa(all_pairs),
        "lines": out_lines,
        "failures": failures,
        "problems": problems,
    }
    with _LOCK:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[key] = json.loads(json.dumps(report))
    return report


def run_rubric_tests(playbook: Playbook, scorecard_id: str | None = None) -> dict[str, Any]:
    """Run the playbook's rubric tests (all scorecards, or one) and report agreement per line."""
    if scorecard_id is not None:
        playbook.require("scorecards", scorecard_id)  # PlaybookError naming the known ids
        ids = [scorecard_id]
    else:
        ids = sorted(set(playbook.artifacts.get("scorecards", {})) & set(playbook.tests)) or []
    orphans = sorted(set(playbook.tests) - set(playbook.artifacts.get("scorecards", {})))
    reports = {sid: _run_one(playbook, sid) for sid in ids}
    failures = [f for r in reports.values() for f in r["failures"]]
    problems = [p for r in reports.values() for p in r["problems"]]
    if scorecard_id is None:
        for sid in orphans:
            problems.append(f"tests name scorecard '{sid}', which does not exist")
    result: dict[str, Any] = {
        "ok": not failures and not problems,
        "engine_version": OFFLINE_ENGINE_VERSION,
        "scorecards": reports,
        "failures": failures,
        "problems": problems,
    }
    if scorecard_id is not None:
        result.update({k: v for k, v in reports[scorecard_id].items() if k not in ("failures", "problems")})
    return result


def line_kappa(playbook: Playbook, scorecard_id: str, line_id: str) -> float | None:
    """Cohen's kappa of one line's rubric tests (None when the line has no labelled tests)."""
    try:
        rep = run_rubric_tests(playbook, scorecard_id)
    except PlaybookError:
        return None
    ln = rep["lines"].get(line_id)
    return ln["kappa"] if ln and ln["n"] else None
