"""The `coachloop` command line. Each sub-command lives in a module of this package that
exposes `register(subparsers)`; the module list below is the whole CLI."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = [
    "server.cli.playbook_cmds",  # init, validate, diff, show-version
    "server.cli.test_cmd",  # test (rubric tests: agreement per line)
    "server.cli.score_cmds",  # score, ingest, rescore, override, calls, call
    "server.cli.rep_cmds",  # rep add/list/show, deal record/show
    "server.cli.loop_cmds",  # attribute, run, events, feedback, scenario, assign, practice, certify, gate
    "server.cli.data_cmds",  # import, export, metrics, report
    "server.cli.serve_cmds",  # serve
    "server.cli.rollout_cmds",  # rollout status, jobs, watch (live playbook)
    "server.cli.demo_cmd",  # demo
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coachloop",
        description="Run a closed sales-coaching loop: score calls, attribute gaps, remediate, gate, verify.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="coachloop: %(levelname)s: %(message)s",
    )
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0

    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
