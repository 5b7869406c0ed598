"""`coachloop test [DIR] [--scorecard ID] [--json]`: run the playbook's rubric tests.

Every labelled example in `scorecards/tests/` is scored with the offline engine and compared with
its labels. Prints agreement per line (share right and Cohen's kappa) and every example that
disagrees; when a scorecard has learned examples (scorecards/examples/<id>.yaml, from disputed
verdicts), also the agreement of the scorecard as written, per line "before -> after"; exits 1 when any example disagrees (verdict or labelled evidence turn) or a test cannot
be run, 0 otherwise.
"""
from __future__ import annotations

import argparse

from playbook.loader import load_playbook
from tools.scoring.rubric_tests import run_rubric_tests

from .common import CLIError, add_json, command, emit_json, playbook_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "test",
        help="run the scorecards' rubric tests and print agreement per line",
        description="Score every labelled example in scorecards/tests/ and compare with its labels: share right and "
        "Cohen's kappa per rubric line, and the examples that disagree. Exits 1 when any example disagrees.",
    )
    p.add_argument("dir", metavar="DIR", nargs="?", default=None, help="playbook folder (default: --playbook, $COACHLOOP_PLAYBOOK or ./playbook)")
    p.add_argument("--playbook", metavar="DIR", default=None, help=argparse.SUPPRESS)
    p.add_argument("--scorecard", metavar="ID", default=None, help="only this scorecard's tests")
    add_json(p)
    p.set_defaults(func=cmd_test)


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "  n/a"
    return f"{x:6.1%}" if pct else f"{x:5.2f}"


@command
def cmd_test(args: argparse.Namespace) -> int:
    root = args.dir or playbook_dir(args)
    pb = load_playbook(root)
    if args.scorecard and pb.get("scorecards", args.scorecard) is None:
        known = ", ".join(sorted(pb.artifacts.get("scorecards", {}))) or "none"
        raise CLIError(f"unknown scorecard '{args.scorecard}' in {pb.root} (known: {known})")
    report = run_rubric_tests(pb, args.scorecard)
    if args.json:
        emit_json({"dir": str(pb.root), **report})
        return 0 if report["ok"] else 1
    if not report["scorecards"]:
        print(f"{pb.root}: no rubric tests found (add labelled examples to scorecards/tests/)")
    for sid, rep in report["scorecards"].items():
        print(f"scorecard {sid} @{rep['version']}: {rep['tests']} test(s), {rep['verdicts']} verdicts, "
              f"accuracy {_fmt(rep['accuracy'], True).strip()}, kappa {_fmt(rep['kappa']).strip()}")
        learned = rep.get("learned")
        if learned:
            print(f"  learned examples: {learned['file']} ({learned['pass']} pass, {learned['fail']} near miss"
                  f"{'es' if learned['fail'] != 1 else ''}); as written @{learned['version']}: accuracy "
                  f"{_fmt(learned['accuracy'], True).strip()}, kappa {_fmt(learned['kappa']).strip()}, "
                  f"{learned['disagreements']} disagreement(s)")
        print(f"  {'line':30} {'n':>3} {'right':>7} {'kappa':>6}  evidence" + ("  right, kappa as written -> learned" if learned else ""))
        for lid, ln in rep["lines"].items():
            if not ln["n"]:
                print(f"  {lid:30} {0:>3}     n/a    n/a  (no labelled example)")
                continue
            ev = f"{ln['turn_right']}/{ln['turn_n']}" if ln["turn_n"] else "-"
            change = ""
            if learned and lid in learned["lines"]:
                b = learned["lines"][lid]
                change = (f"  {_fmt(b['accuracy'], True).strip()} -> {_fmt(ln['accuracy'], True).strip()}, "
                          f"{_fmt(b['kappa']).strip()} -> {_fmt(ln['kappa']).strip()}")
            print(f"  {lid:30} {ln['n']:>3} {_fmt(ln['accuracy'], True):>7} {_fmt(ln['kappa']):>6}  {ev:8}{change}".rstrip())
        for f in rep["failures"]:
            if f["kind"] == "verdict":
                print(f"  FAIL {f['file']} {f['line']}: expected {f['expected']}"
                      f"{'' if f['expected_turn'] is None else ' (turn %d)' % f['expected_turn']}, got {f['got']}"
                      f"{'' if f['got_turn'] is None else ' (turn %d)' % f['got_turn']}: {f['reason']}")
            else:
                print(f"  FAIL {f['file']} {f['line']}: evidence turn expected {f['expected_turn']}, got {f['got_turn']}")
        for prob in rep["problems"]:
            print(f"  ERROR {prob}")
    for prob in report["problems"]:
        if not any(prob in r["problems"] for r in report["scorecards"].values()):
            print(f"ERROR {prob}")
    n_fail = len(report["failures"])
    print(("all rubric tests agree" if report["ok"] else f"{n_fail} disagreement(s), {len(report['problems'])} problem(s)"))
    return 0 if report["ok"] else 1
