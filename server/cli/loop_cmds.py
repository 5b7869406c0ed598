"""The loop's sub-commands.

Attribution and the orchestrator: `coachloop attribute`, `coachloop run`, `coachloop events`.
Remediation (scenario, assign, practice, certify, gate, lift) registers its own below: each area
adds a `_register_<area>(sub)` function and one line in `register`.
"""
from __future__ import annotations

import argparse
import json

from .common import CLIError, add_db, add_json, add_playbook, command, emit_json, open_coach


def register(sub: argparse._SubParsersAction) -> None:
    _register_attribution(sub)


# =========================================================================== attribution & orchestrator


def _rep_id(coach, name: str | None) -> str | None:
    if not name:
        return None
    from store.reps import get_rep

    return get_rep(coach.store, name)["id"]


def _register_attribution(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "attribute",
        help="find behaviour gaps per rep and rubric line, with statements",
        description=(
            "Find the rubric lines each rep keeps missing over the window set in playbook.yaml "
            "(attribution: window, gap_misses, min_applicable), record new gaps (never the same gap twice) "
            "and print each with its statement, most severe first."
        ),
    )
    p.add_argument("--rep", metavar="NAME", help="one rep (id, name or alias); default: the whole team")
    p.add_argument("--scorecard", metavar="ID", help="only this scorecard's lines")
    p.add_argument("--dry-run", action="store_true", help="show gaps without recording them")
    p.add_argument("--team", action="store_true", help="also list lines the whole team misses")
    add_playbook(p)
    add_db(p)
    add_json(p)
    p.set_defaults(func=cmd_attribute)

    p = sub.add_parser(
        "run",
        help="run the loop on every pending event (attribution, remediation, certification, verification)",
        description=(
            "Process the event log from where the orchestrator last stopped: scored calls are verified and "
            "attributed, new gaps get feedback, a scenario, a learning path and gates, finished practices are "
            "certified. Prints what the loop did."
        ),
    )
    p.add_argument("--limit", type=int, default=None, metavar="N", help="handle at most N events")
    add_playbook(p)
    add_db(p)
    add_json(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("events", help="print the loop's event log", description="Print the append-only event log, oldest first, with each event's cause.")
    p.add_argument("--rep", metavar="NAME", help="only this rep's events")
    p.add_argument("--since", type=int, default=0, metavar="ID", help="events after this id")
    p.add_argument("--type", metavar="TYPE", help="only events of this type (prefix match, e.g. gap.)")
    p.add_argument("--limit", type=int, default=1000, metavar="N")
    add_playbook(p)
    add_db(p)
    add_json(p)
    p.set_defaults(func=cmd_events)


def _pct(v) -> str:
    return "n/a" if v is None else f"{round(v * 100)}%"


@command
def cmd_attribute(args: argparse.Namespace) -> int:
    from tools.attribute import attribute, team_gaps

    coach = open_coach(args)
    try:
        rep_id = _rep_id(coach, args.rep)
        gaps = attribute(coach, rep_id, persist=not args.dry_run, scorecard_id=args.scorecard)
        team = team_gaps(coach, scorecard_id=args.scorecard) if args.team else []
        if args.json:
            out = {"gaps": gaps}
            if args.team:
                out["team"] = team
            emit_json(out)
            return 0
        if not gaps:
            who = f"rep {rep_id}" if rep_id else "the team"
            pol = coach.playbook.policy.attribution
            print(f"no gaps for {who} (a gap is {pol.gap_misses} misses in the last {pol.window} applicable calls, "
                  f"with at least {pol.min_applicable} applicable)")
        for g in gaps:
            tag = "new" if g.get("new") else ("open" if "gap_id" in g else "found")
            gid = f"gap {g['gap_id']} " if "gap_id" in g else ""
            print(f"[{tag}] {gid}{g['rep']} / {g['line']} (severity {g['severity']:.2f})")
            print(f"    {g['statement']}")
        for t in team:
            print(f"[team] {t['statement']}")
        return 0
    finally:
        coach.close()


@command
def cmd_run(args: argparse.Namespace) -> int:
    from server.orchestrator import Orchestrator, OrchestratorError

    coach = open_coach(args)
    try:
        orch = Orchestrator(coach)
        before = orch.cursor
        try:
            actions = orch.run_pending(limit=args.limit)
        except OrchestratorError as exc:
            raise CLIError(str(exc)) from exc
        if args.json:
            emit_json({"cursor_before": before, "cursor": orch.cursor, "actions": actions})
            return 0
        if not actions:
            print(f"nothing to do (event log handled up to event {orch.cursor})")
        for a in actions:
            who = f"{a['rep']}: " if a.get("rep") else ""
            print(f"- {who}{a['text']}")
        return 0
    finally:
        coach.close()


def format_event(ev: dict) -> str:
    data = ev.get("data") or {}
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            data = {}
    bits = []
    for key in ("statement", "reason", "status", "activity", "scenario_id", "score", "line"):
        if key in data and data[key] not in (None, ""):
            val = data[key]
            bits.append(f"{key}={val:.2f}" if isinstance(val, float) else f"{key}={val}")
            if key == "statement":
                break
    cause = f" <- #{ev['cause_id']}" if ev.get("cause_id") else ""
    rep = f" {ev['rep_id']}" if ev.get("rep_id") else ""
    subj = f" {ev['subject']}" if ev.get("subject") else ""
    return f"#{ev['id']:<4} {ev['at']}  {ev['type']:<22}{rep}{subj}{cause}" + (f"  {' '.join(bits)}" if bits else "")


@command
def cmd_events(args: argparse.Namespace) -> int:
    coach = open_coach(args)
    try:
        rep_id = _rep_id(coach, args.rep)
        events = coach.store.events(rep_id=rep_id, since_id=args.since, limit=args.limit)
        if args.type:
            events = [e for e in events if e["type"].startswith(args.type)]
        if args.json:
            emit_json({"events": events})
            return 0
        if not events:
            print("no events")
        for ev in events:
            print(format_event(ev))
        return 0
    finally:
        coach.close()
