#!/usr/bin/env python3
"""Accuracy of the offline scoring engine on a folder of labelled calls.

Usage:
    python bench/accuracy.py [FOLDER] [--scorecard PATH_OR_ID] [--playbook DIR] [--json] [--misses] [--check-targets]

FOLDER holds labelled calls in the dev-set JSON format (`rep`, `turns`, `labels`, optionally
`scorecard`); the default is `../shared/eval/dev` beside the repository. Calls that name their
scorecard (`../shared/eval/dev-other`, tests/fixtures/holdout-other) are measured against it,
one report per scorecard; `--scorecard` picks one (a path to a scorecard YAML file, or an id:
starter, or with --playbook) and then only the calls labelled for it, or all calls when they name
none (default: the starter `discovery`).

Prints overall accuracy, per-line accuracy and kappa, evidence-turn accuracy on true passes, a
confusion matrix per line (rows: label, columns: engine; pass/fail/na), and the issue's targets
(90% of verdicts, every line 80%, evidence turn 85% of true passes); `--check-targets` exits 1
when a scorecard misses one.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playbook.loader import load_playbook, parse_artifact_text  # noqa: E402
from playbook.starter import STARTER_DIR  # noqa: E402
from tools.scoring import OFFLINE_ENGINE_VERSION  # noqa: E402
from tools.scoring.evaluate import evaluate, load_labelled, meets_targets  # noqa: E402

DEFAULT_FOLDER = REPO.parent / "shared" / "eval" / "dev"


def load_scorecard(ref: str | None, playbook: str | None):
    if ref and Path(ref).is_file():
        path = Path(ref)
        model, probs = parse_artifact_text("scorecards", path.name, path.read_text())
        if model is None:
            raise SystemExit("\n".join(str(p) for p in probs))
        return model
    if playbook:
        return load_playbook(playbook).scorecard(ref or "discovery")
    path = STARTER_DIR / "scorecards" / f"{ref or 'discovery'}.yaml"
    if not path.is_file():
        raise SystemExit(f"scorecard not found: {ref} (give a YAML path, or an id with --playbook DIR)")
    model, probs = parse_artifact_text("scorecards", path.name, path.read_text())
    if model is None:
        raise SystemExit("\n".join(str(p) for p in probs))
    return model


def report_text(rep: dict, folder: str, misses: bool) -> None:
    acc = rep["accuracy"]
    ev = rep["evidence_accuracy"]
    print(f"scorecard {rep['scorecard']} · engine {rep['engine_version']} · {rep['calls']} calls, {rep['verdicts']} verdicts "
          f"from {folder} in {rep['seconds']}s")
    print(f"overall accuracy   {acc:.1%}" if acc is not None else "overall accuracy   n/a")
    print(f"evidence turn      {ev:.1%} of {rep['evidence_n']} true passes" if ev is not None else "evidence turn      n/a")
    missed = meets_targets(rep)
    print("targets            " + ("met (90% of verdicts, every line 80%, evidence 85%)" if not missed else "MISSED: " + "; ".join(missed)))
    print()
    print(f"{'line':30} {'n':>3} {'acc':>7} {'kappa':>6} {'evid':>6}   confusion (label -> engine: pass/fail/na)")
    for lid, ln in rep["lines"].items():
        conf = "  ".join(f"{e}:{'/'.join(str(ln['confusion'][e][g]) for g in ('pass', 'fail', 'na'))}" for e in ("pass", "fail", "na"))
        kap = "  n/a" if ln["kappa"] is None else f"{ln['kappa']:6.2f}"
        evid = "   -" if ln["evidence"] is None else f"{ln['evidence']:6.0%}"
        print(f"{lid:30} {ln['n']:>3} {ln['accuracy']:>7.1%} {kap} {evid}   {conf}")
    if misses:
        print()
        for m in rep["misses"]:
            print(f"MISS {m['file']} {m['line']}: expected {m['expected']} (turn {m['expected_turn']}), got {m['got']} "
                  f"(turn {m['got_turn']}): {m['reason']}")
        for m in rep["evidence_misses"]:
            if m["got"] == "pass":
                print(f"TURN {m['file']} {m['line']}: expected turn {m['expected_turn']}, got {m['got_turn']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", nargs="?", default=str(DEFAULT_FOLDER), help="folder of labelled calls (default ../shared/eval/dev)")
    ap.add_argument("--scorecard", default=None, help="scorecard YAML path, or id (starter, or with --playbook)")
    ap.add_argument("--playbook", default=None, help="playbook folder to read the scorecard ids from")
    ap.add_argument("--json", action="store_true", help="print the full report(s) as JSON")
    ap.add_argument("--misses", action="store_true", help="list every wrong verdict and evidence turn")
    ap.add_argument("--check-targets", action="store_true", help="exit 1 when a scorecard misses a target")
    args = ap.parse_args(argv)
    try:
        cases = load_labelled(args.folder)
    except (FileNotFoundError, ValueError) as exc:
        print(f"accuracy: {exc}", file=sys.stderr)
        return 1
    groups: dict[str, list] = {}
    if args.scorecard:
        card = load_scorecard(args.scorecard, args.playbook)
        picked = [c for c in cases if c.scorecard in (None, card.id)]
        groups[card.id] = picked
        cards = {card.id: card}
    else:
        for c in cases:
            groups.setdefault(c.scorecard or "discovery", []).append(c)
        cards = {sid: load_scorecard(sid, args.playbook) for sid in groups}
    reports = []
    for sid, group in groups.items():
        if not group:
            print(f"accuracy: no calls in {args.folder} are labelled for scorecard {sid}", file=sys.stderr)
            return 1
        t0 = time.perf_counter()
        rep = evaluate(group, cards[sid])
        rep["seconds"] = round(time.perf_counter() - t0, 3)
        rep["engine_version"] = OFFLINE_ENGINE_VERSION
        reports.append(rep)
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
    else:
        for i, rep in enumerate(reports):
            if i:
                print()
            report_text(rep, args.folder, args.misses)
    if args.check_targets and any(meets_targets(r) for r in reports):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
