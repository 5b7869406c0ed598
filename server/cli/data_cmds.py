"""`coachloop import reps|deals`, `export`, `metrics` and `report`: data in, numbers out."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import CLIError, add_db, add_json, add_playbook, command, emit_json, iso_date, open_coach


def _common(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
    add_playbook(p)
    add_db(p)
    if json_flag:
        add_json(p)


def _scope(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--rep", metavar="REP", help="one rep (id, name or alias)")
    g.add_argument("--team", metavar="TEAM", help="one team")
    p.add_argument("--from", dest="since", metavar="YYYY-MM-DD", type=iso_date, help="from this date, inclusive")
    p.add_argument("--to", dest="until", metavar="YYYY-MM-DD", type=iso_date, help="until this date, inclusive")


def register(sub: argparse._SubParsersAction) -> None:
    existing = set(getattr(sub, "choices", {}) or {})
    if "import" not in existing:
        p = sub.add_parser(
            "import",
            help="import reps or deals from a Salesforce / HubSpot CSV export",
            description="Import reps (with quota per period and attainment) or deals (stage history, outcome, amount, "
            "linked calls) from a CSV report export. All or nothing: any bad row imports nothing and every bad row is listed.",
        )
        p.add_argument("what", choices=["reps", "deals"], help="what the file holds")
        p.add_argument("file", metavar="FILE.csv")
        p.add_argument("--map", action="append", default=[], metavar="COLUMN=field",
                       help="map a CSV column to a field (repeatable), e.g. --map 'Owner Name=owner'; field 'ignore' skips it")
        p.add_argument("--mapping", metavar="FILE", help="YAML/JSON mapping file: {columns: {COLUMN: field}, date_format: '%%d/%%m/%%Y'}")
        p.add_argument("--period", metavar="PERIOD", help="reps: the quota period of every row (2026-03, 2026-Q1) when the file has none")
        _common(p)
        p.set_defaults(func=cmd_import)
    if "export" not in existing:
        p = sub.add_parser(
            "export",
            help="export every table and the metric series for a warehouse",
            description="Write every table (rows changed since --since) and the weekly metric series as csv, jsonl or "
            "parquet, with manifest.json holding the new cursor. Schema: docs/DATA.md.",
        )
        p.add_argument("--format", default="csv", choices=["csv", "jsonl", "parquet"], help="file format (parquet needs the 'parquet' extra)")
        p.add_argument("--to", required=True, metavar="DIR", help="output folder")
        p.add_argument("--since", metavar="CURSOR", help="only rows updated at or after this cursor (the 'cursor' of the last manifest.json)")
        p.add_argument("--no-metrics", action="store_true", help="skip metric_series")
        _common(p)
        p.set_defaults(func=cmd_export)
    if "metrics" not in existing:
        p = sub.add_parser(
            "metrics",
            help="the numbers the loop should move, for a rep, a team or everyone",
            description="Compute metrics for everyone, a team or one rep over a period. Each says how it was computed; "
            "--details lists the calls, sessions, gaps or deals behind it.",
        )
        p.add_argument("names", nargs="*", metavar="NAME", help="metrics to compute (default: all; --list shows them)")
        _scope(p)
        p.add_argument("--weekly", action="store_true", help="add a weekly series (weeks start on Monday)")
        p.add_argument("--details", action="store_true", help="list the rows behind each number")
        p.add_argument("--list", action="store_true", help="list the metrics and how each is computed")
        _common(p)
        p.set_defaults(func=cmd_metrics)
    if "report" not in existing:
        p = sub.add_parser(
            "report",
            help="write one self-contained HTML report with charts",
            description="Write an HTML page (no network needed to open it): each rep's line pass rates over time with "
            "gap and certification markers, the adherence heatmap (rep by line), before/after for closed gaps, and the "
            "funnel from calls scored to certifications.",
        )
        p.add_argument("--out", required=True, metavar="FILE.html")
        _scope(p)
        _common(p, json_flag=False)
        p.set_defaults(func=cmd_report)


# --------------------------------------------------------------------------- import


@command
def cmd_import(args: argparse.Namespace) -> int:
    from tools.importer import ImportFailed, import_deals, import_reps, load_mapping

    if args.mapping and args.map:
        mapping: object = _merge_mappings(args.mapping, args.map, load_mapping)
    else:
        mapping = args.mapping or (args.map or None)
    coach = open_coach(args)
    try:
        if args.what == "reps":
            res = import_reps(coach, args.file, mapping, period=args.period)
        else:
            if args.period:
                raise CLIError("--period applies to `import reps` only")
            res = import_deals(coach, args.file, mapping)
    except ImportFailed as exc:
        if args.json:
            emit_json({"ok": False, "file": exc.path, "errors": [e.as_dict() for e in exc.errors]})
        print(f"coachloop: {exc}", file=sys.stderr)
        return 1
    finally:
        coach.close()
    if args.json:
        emit_json({"ok": True, **res})
        return 0
    if res["kind"] == "reps":
        print(f"imported {res['rows']} rows from {res['file']}: {res['created']} reps created, {res['updated']} updated, "
              f"{res['quota_periods']} quota periods")
    else:
        print(f"imported {res['rows']} rows from {res['file']}: {res['deals']} deals ({res['created']} new, {res['updated']} updated), "
              f"{res['stages_added']} stage changes, {res['calls_linked']} calls linked")
    if res.get("ignored_columns"):
        print(f"ignored columns: {', '.join(res['ignored_columns'])} (map them with --map 'COLUMN=field')")
    return 0


def _merge_mappings(path: str, pairs: list[str], load_mapping) -> dict:
    cols, formats = load_mapping(path)
    more, _ = load_mapping(pairs)
    cols.update(more)
    return {"columns": cols, "date_format": formats} if formats else cols


# --------------------------------------------------------------------------- export


@command
def cmd_export(args: argparse.Namespace) -> int:
    from tools.export import export

    with open_coach(args) as coach:
        man = export(coach, args.to, args.format, args.since, metrics=not args.no_metrics)
    if args.json:
        emit_json(man)
        return 0
    total = sum(t["rows"] for t in man["tables"].values())
    print(f"exported {total} rows in {len(man['tables'])} files ({man['format']}) to {args.to}")
    for name, t in man["tables"].items():
        if t["rows"]:
            print(f"  {t['file']}: {t['rows']}")
    print(f"next cursor: {man['cursor']}  (coachloop export --format {man['format']} --to DIR --since {man['cursor']})")
    return 0


# --------------------------------------------------------------------------- metrics


def _fmt(v, unit: str | None = None) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if unit and "share" in unit:
            return f"{v * 100:.1f}%"
        return f"{v:.2f}"
    return str(v)


@command
def cmd_metrics(args: argparse.Namespace) -> int:
    from tools.metrics import compute_metrics, describe

    if args.list:
        items = describe()
        if args.json:
            emit_json(items)
        else:
            for m in items:
                print(f"{m['name']:<22} {m['title']} ({m['unit']})\n{'':<22} {m['method']}")
        return 0
    with open_coach(args) as coach:
        res = compute_metrics(coach, args.names or None, rep=args.rep, team=args.team, since=args.since, until=args.until,
                              weekly=args.weekly, details=args.details)
    if args.json:
        emit_json(res)
        return 0
    sc = res["scope"]
    period = f" from {sc['since'] or 'the start'} to {sc['until'] or 'now'}" if (sc["since"] or sc["until"]) else ", all time"
    print(f"metrics for {sc['label']}{period}")
    for name, m in res["metrics"].items():
        print(f"\n{m['title']} [{name}]: {_fmt(m['value'], m['unit'])} {'' if 'share' in (m['unit'] or '') else m['unit']}".rstrip())
        extras = {k: v for k, v in m.items() if k not in ("name", "title", "unit", "method", "value", "series", "details")}
        scalars = [f"{k}={_fmt(v)}" for k, v in extras.items() if not isinstance(v, (list, dict))]
        if scalars:
            print("  " + ", ".join(scalars))
        for k, v in extras.items():
            if isinstance(v, list) and v and isinstance(v[0], dict):
                for row in v[:30]:
                    print("  - " + ", ".join(f"{a}={_fmt(b)}" for a, b in row.items() if not isinstance(b, (dict, list)) and b is not None))
                if len(v) > 30:
                    print(f"  ... {len(v) - 30} more (use --json)")
            elif isinstance(v, list) and v:
                print(f"  {k}: {', '.join(map(str, v[:30]))}")
        print(f"  how: {m['method']}")
        if "series" in m:
            for pt in m["series"]:
                print(f"  week {pt['week']}: {_fmt(pt.get('value'), m['unit'])}")
        if "details" in m:
            print("  details: " + json.dumps(m["details"], default=str)[:2000])
    return 0


# --------------------------------------------------------------------------- report


@command
def cmd_report(args: argparse.Namespace) -> int:
    from tools.report import write_report

    with open_coach(args) as coach:
        info = write_report(coach, args.out, rep=args.rep, team=args.team, since=args.since, until=args.until)
    print(f"wrote {Path(args.out)} ({info['bytes']:,} bytes): {info['reps']} reps, {info['lines']} lines, "
          f"{info['closed_gaps']} closed gaps, {info['weeks']} weeks")
    return 0
