"""`coachloop init`, `coachloop validate`, `coachloop diff` and `coachloop show-version`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playbook.loader import load_playbook
from playbook.starter import write_starter

from .common import add_db, add_json, add_playbook, command, emit_json, open_coach, playbook_dir


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

    # live playbook (issue 6): versions that were ever live, and what changed between two
    p = sub.add_parser(
        "diff",
        help="what changed between two versions of a scorecard",
        description=(
            "Show what changed in a scorecard between two versions that were live: a unified diff of the file "
            "and a line-level summary (rubric lines added, removed, and which fields of a line changed). "
            "Default: the previous version against the one served now. Versions are content hashes "
            "(a unique prefix of 4+ characters is enough); list them with `coachloop show-version scorecard ID --list`."
        ),
    )
    p.add_argument("scorecard", metavar="SCORECARD", help="scorecard id, e.g. discovery")
    p.add_argument("v1", metavar="V1", nargs="?", default=None, help="older version (default: the one before V2)")
    p.add_argument("v2", metavar="V2", nargs="?", default=None, help="newer version (default: the version served now)")
    add_playbook(p)
    add_db(p)
    add_json(p)
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser(
        "show-version",
        help="print the exact text of an artifact version (what a verdict or assignment was made under)",
        description=(
            "Print the exact text of a playbook artifact at a version: the version a verdict (calls.scorecard_version), "
            "an assignment (artifact_versions) or a certification (certification_version) names. Without VERSION, the "
            "version served now. --list shows every stored version, oldest first."
        ),
    )
    p.add_argument("kind", metavar="KIND", help="scorecard | scenario | path | certification | policy")
    p.add_argument("id", metavar="ID", help="artifact id (for policy: playbook)")
    p.add_argument("version", metavar="VERSION", nargs="?", default=None, help="content hash or a unique prefix (4+ characters)")
    p.add_argument("--list", action="store_true", help="list the stored versions instead of printing one")
    add_playbook(p)
    add_db(p)
    add_json(p)
    p.set_defaults(func=cmd_show_version)


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


@command
def cmd_diff(args: argparse.Namespace) -> int:
    from tools.live import scorecard_diff

    with open_coach(args) as coach:
        d = scorecard_diff(coach, args.scorecard, args.v1, args.v2)
    if args.json:
        emit_json(d)
        return 0
    f, t = d["from"], d["to"]
    print(f"scorecard {d['scorecard']}: {f['version']} ({f['first_seen']}) -> {t['version']} ({t['first_seen']}{', live' if t['live'] else ''})")
    for line in d["summary"]:
        print(f"  {line}")
    for c in d["lines"]["changed"]:
        for field in c["fields"]:
            before, after = c["before"].get(field), c["after"].get(field)
            print(f"    {c['id']}.{field}: {_short(before)} -> {_short(after)}")
    if d["unified"]:
        print()
        print(d["unified"], end="" if d["unified"].endswith("\n") else "\n")
    return 0


def _short(value, limit: int = 70) -> str:
    import json as _json

    text = _json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@command
def cmd_show_version(args: argparse.Namespace) -> int:
    from tools.live import artifact_text, artifact_versions

    with open_coach(args) as coach:
        if args.list:
            rows = artifact_versions(coach, args.kind, args.id)
            if args.json:
                emit_json({"kind": args.kind, "id": args.id, "versions": rows})
            elif not rows:
                print(f"no stored versions of {args.kind} {args.id}")
                return 1
            else:
                for r in rows:
                    print(f"{r['version']}  {r['first_seen']}  {r['path']}  {r['bytes']} bytes{'  (live)' if r['live'] else ''}")
            return 0
        a = artifact_text(coach, args.kind, args.id, args.version)
    if args.json:
        emit_json(a)
    else:
        sys.stderr.write(f"# {a['kind']}/{a['id']}@{a['version']} ({a['path']}, first seen {a['first_seen']}{', live' if a['live'] else ''})\n")
        sys.stdout.write(a["text"] if a["text"].endswith("\n") else a["text"] + "\n")
    return 0
