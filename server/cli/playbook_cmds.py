"""`coachloop init` and `coachloop validate`."""
from __future__ import annotations

import argparse
from pathlib import Path

from playbook.loader import load_playbook
from playbook.starter import write_starter

from .common import add_json, command, emit_json, playbook_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="write the starter playbook into DIR", description="Write the starter playbook (scorecards, scenarios, learning paths, certifications) into DIR.")
    p.add_argument("dir", metavar="DIR", help="folder to create (must not already hold a playbook)")
    p.add_argument("--force", action="store_true", help="overwrite files that already exist")
    add_json(p)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser(
        "validate",
        help="check a playbook folder and list every problem",
        description="Validate every file of a playbook: schema, YAML, cross-references. Exits 1 when anything is invalid.",
    )
    p.add_argument("dir", metavar="DIR", nargs="?", default=None, help="playbook folder (default: --playbook, $COACHLOOP_PLAYBOOK or ./playbook)")
    p.add_argument("--playbook", metavar="DIR", default=None, help=argparse.SUPPRESS)
    add_json(p)
    p.set_defaults(func=cmd_validate)


@command
def cmd_init(args: argparse.Namespace) -> int:
    written = write_starter(args.dir, force=args.force)
    if args.json:
        emit_json({"dir": str(Path(args.dir).resolve()), "files": [str(p) for p in written]})
    else:
        print(f"wrote the starter playbook to {args.dir} ({len(written)} files)")
        print(f"next: coachloop validate {args.dir}")
    return 0


@command
def cmd_validate(args: argparse.Namespace) -> int:
    root = args.dir or playbook_dir(args)
    pb = load_playbook(root)
    counts = {kind: len(arts) for kind, arts in pb.artifacts.items()}
    if args.json:
        emit_json({"dir": str(pb.root), "ok": pb.ok, "counts": counts, "problems": [p.as_dict() for p in pb.problems]})
    else:
        for p in pb.problems:
            print(p)
        summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
        if pb.ok:
            print(f"{pb.root}: valid ({summary})")
        else:
            print(f"{pb.root}: {len(pb.problems)} problem(s) ({summary})")
    return 0 if pb.ok else 1
