"""The live playbook from the command line: `coachloop rollout status`, `coachloop jobs`, `coachloop watch`.

- `rollout status [ID]`: who each rollout targeted, who has started and passed, who is missing,
  and the playbook-change cycle time once everyone has practised.
- `jobs [--run]`: the background re-scoring jobs a rubric change queued (progress, flips);
  `--run` runs the pending ones now (what the server's worker does on its own).
- `watch`: the watcher and the worker without the MCP server (foreground, Ctrl-C to stop).
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from .common import add_db, add_json, add_playbook, command, emit_json, open_coach

log = logging.getLogger("coachloop")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rollout",
        help="rollouts of playbook changes: who is assigned, started, passed",
        description=(
            "A learning path or scenario file with a `rollout:` block is assigned to every rep it targets when a "
            "version of it goes live. `rollout status` shows each rollout: targeted, started, passed, the reps still "
            "missing, and the playbook-change cycle time (file landed -> every targeted rep passed)."
        ),
    )
    rs = p.add_subparsers(dest="rollout_cmd", metavar="SUBCOMMAND", required=True)
    s = rs.add_parser("status", help="progress of every rollout (or one)")
    s.add_argument("id", metavar="ID", nargs="?", type=int, default=None, help="rollout id (default: all, newest first)")
    add_playbook(s)
    add_db(s)
    add_json(s)
    s.set_defaults(func=cmd_rollout_status)

    p = sub.add_parser(
        "jobs",
        help="background re-scoring jobs queued by rubric changes",
        description=(
            "When a scorecard's rubric lines change, the stored calls it affects are re-scored in the background "
            "(resumable). List those jobs with their progress; --run processes the playbook changes and runs the "
            "pending jobs now (the server does this by itself)."
        ),
    )
    p.add_argument("--run", action="store_true", help="run pending playbook changes and re-scoring jobs now")
    p.add_argument("--workers", type=int, default=None, help="with --run: processes that score (offline engine; default 1)")
    add_playbook(p)
    add_db(p)
    add_json(p)
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser(
        "watch",
        help="watch the playbook folder and run the loop on changes (without the MCP server)",
        description=(
            "Watch the playbook folder: every saved change is loaded within a second (an invalid edit is reported "
            "and the last good version keeps serving), rollouts are assigned and rubric changes re-scored. "
            "Runs until Ctrl-C. `coachloop serve` does the same while serving MCP."
        ),
    )
    add_playbook(p)
    add_db(p)
    p.set_defaults(func=cmd_watch)


def _fmt_rollout(r: dict) -> list[str]:
    head = (f"rollout {r['id']}: {r['kind'][:-1]} {r['artifact_id']} @{r['version']} landed {r['landed_at']}"
            + (f", due {r['due']}" if r["due"] else "") + (" (OVERDUE)" if r["overdue"] else ""))
    out = [head, f"  targeted {r['targeted']}, started {r['started']}, passed {r['passed']}"]
    if r["completed_at"]:
        out.append(f"  complete {r['completed_at']}: cycle time {r['cycle_hours']} h ({r['cycle_seconds']:.0f} s)")
    elif r["targeted"] == 0:
        out.append("  no rep matched the rollout block (check teams/segments/reps against `coachloop rep list`)")
    else:
        out.append(f"  missing: {', '.join(r['missing'])}" + (f" (not started: {', '.join(r['not_started'])})" if r["not_started"] else ""))
    return out


@command
def cmd_rollout_status(args: argparse.Namespace) -> int:
    from tools.rollout import rollout_status

    with open_coach(args) as coach:
        rows = rollout_status(coach, args.id)
    if args.json:
        emit_json({"rollouts": rows})
        return 0
    if not rows:
        print("no rollouts yet: add a `rollout:` block to a learning path or scenario file")
        return 0
    for r in rows:
        print("\n".join(_fmt_rollout(r)))
    return 0


@command
def cmd_jobs(args: argparse.Namespace) -> int:
    from tools.rubric_change import job_status, run_pending_jobs

    with open_coach(args) as coach:
        if args.run:
            from server.orchestrator import Orchestrator
            from tools.live import enable_live

            enable_live(coach)
            orch = Orchestrator(coach)
            orch.run_pending()

            ran = run_pending_jobs(coach, workers=args.workers)
            if ran:
                orch.run_pending()
        rows = job_status(coach)
    if args.json:
        emit_json({"jobs": rows})
        return 0
    if not rows:
        print("no re-scoring jobs")
    for j in rows:
        what = "; ".join(f"{k} {', '.join(j[k])}" for k in ("changed", "added", "removed") if j.get(k))
        print(f"job {j['id']} {j['status']}: scorecard {j['scorecard']} @{j['version']} ({what or 'text changed'}): "
              f"{j['done']}/{j['total']} calls, {j['changed_calls']} changed")
        for line, flips in sorted((j.get("flips") or {}).items()):
            print(f"    {line}: " + ", ".join(f"{k} x{n}" for k, n in sorted(flips.items())))
    return 0


@command
def cmd_watch(args: argparse.Namespace) -> int:
    from server.orchestrator import Orchestrator
    from tools.live import start_live

    root = logging.getLogger()
    root.setLevel(min(root.level, logging.INFO))
    coach = open_coach(args)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    service = start_live(coach, run_events=Orchestrator(coach).run_pending)
    print(f"watching {coach.playbook_dir} (Ctrl-C to stop)", file=sys.stderr)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
        coach.close()
    return 0
