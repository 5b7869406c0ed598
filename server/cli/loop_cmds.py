"""The loop's sub-commands.

Attribution and the orchestrator: `coachloop attribute`, `coachloop run`, `coachloop events`.
Remediation (scenario, assign, practice, certify, gate, lift) registers its own below: each area
adds a `_register_<area>(sub)` function and one line in `register`.
"""
from __future__ import annotations

import argparse
import json

from .common import CLIError, add_db, add_json, add_playbook, answer, command, emit_json, open_coach


def register(sub: argparse._SubParsersAction) -> None:
    _register_attribution(sub)
    _register_remediation(sub)


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
            "and print each with its statement, most severe first. New gaps are remediated at once "
            "(scenario, learning path, gates), as the loop would."
        ),
    )
    p.add_argument("--rep", metavar="NAME", help="one rep (id, name or alias); default: the whole team")
    p.add_argument("--scorecard", metavar="ID", help="only this scorecard's lines")
    p.add_argument("--dry-run", action="store_true", help="show gaps without recording them")
    p.add_argument("--team", action="store_true", help="also list lines the whole team misses")
    p.add_argument("--history", action="store_true", help="list the recorded gaps instead (open and closed, newest first)")
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
    p.add_argument("--status", action="store_true", help="only say how far the loop is (cursor, pending events, failing ones)")
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

    with open_coach(args) as coach:
        rep_id = _rep_id(coach, args.rep)
        if args.history:
            from tools.attribute import list_gaps

            rows = list_gaps(coach, rep_id)
            if args.scorecard:
                rows = [g for g in rows if g["scorecard_id"] == args.scorecard]
            if args.json:
                emit_json({"gaps": rows})
                return 0
            if not rows:
                print("no gaps recorded yet")
            for g in rows:
                print(f"gap {g['id']} [{g['status']}] {g['rep_id']} / {g['line_id']}  opened {g['opened_at']}"
                      + (f", closed {g['closed_at']}" if g.get("closed_at") else ""))
                print(f"    {g['statement']}")
                if g.get("close_reason"):
                    print(f"    closed: {g['close_reason']}")
            return 0
        gaps = attribute(coach, rep_id, persist=not args.dry_run, scorecard_id=args.scorecard)
        team = team_gaps(coach, scorecard_id=args.scorecard) if args.team else []
        actions: list[dict] = []
        if any(g.get("new") for g in gaps):
            # no human step: a gap recorded here is remediated now (scenario, path, gates)
            from server.orchestrator import Orchestrator, OrchestratorError

            try:
                actions = Orchestrator(coach).run_pending()
            except OrchestratorError as exc:
                raise CLIError(f"the gaps are recorded, but the loop could not remediate them: {exc}") from exc
        if args.json:
            out = {"gaps": gaps, "actions": actions}
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
        for a in actions:
            print(f"- {a['rep'] + ': ' if a.get('rep') else ''}{a['text']}")
        return 0


@command
def cmd_run(args: argparse.Namespace) -> int:
    from server.orchestrator import Orchestrator, OrchestratorError

    with open_coach(args) as coach:
        orch = Orchestrator(coach)
        if args.status:
            st = orch.status()
            if args.json:
                emit_json(st)
            else:
                print(f"handled up to event {st['cursor']} of {st['last_event']}; {st['pending']} pending")
                for eid, n in st["failing"].items():
                    print(f"event {eid} failed {n} time(s); it is retried on the next run")
            return 0
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


def format_event(ev: dict) -> str:
    data = ev.get("data") or {}
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            data = {}
    bits = []
    for key in ("statement", "reason", "status", "activity", "scenario_id", "score", "line", "verdict", "counted"):
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
    with open_coach(args) as coach:
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


# =========================================================================== remediation, practice, certification, gates


def _register_remediation(sub: argparse._SubParsersAction) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        add_playbook(p)
        add_db(p)
        add_json(p)

    p = sub.add_parser("feedback", help="coaching feedback for a gap", description="What was missed on a gap's calls, the rep's own words, and what a good question sounds like.")
    p.add_argument("gap", type=int, metavar="GAP_ID")
    common(p)
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("scenario", help="generate roleplay scenarios from real calls", description="Roleplay scenarios built from the calls where a gap showed.")
    ssub = p.add_subparsers(dest="scenario_cmd", metavar="ACTION", required=True)
    g = ssub.add_parser(
        "generate",
        help="write a scenario from a gap's calls (or a rep's calls that missed a line)",
        description="Write scenarios/<id>.md into the playbook: a buyer built from the calls where the gap showed. Never overwrites a file a person wrote; the same gap and calls give the same file.",
    )
    g.add_argument("--gap", type=int, metavar="ID", help="the gap to build from")
    g.add_argument("--rep", metavar="R", help="rep (with --line) when there is no gap id")
    g.add_argument("--line", metavar="L", help="rubric line id (with --rep)")
    g.add_argument("--calls", metavar="IDS", help="comma-separated call ids (default: the gap's calls or the rep's latest misses)")
    g.add_argument("--difficulty", type=int, metavar="N", help="1 (default) to 5: harder buyers deflect sooner and object more")
    common(g)
    g.set_defaults(func=cmd_scenario_generate)

    p = sub.add_parser(
        "assign",
        help="assign a learning path to a rep (or list the rep's assignments)",
        description="Assign the learning path for a gap's line (with the scenario generated from its calls first), or a named path, recording the artifact versions. An open gap is never assigned twice.",
    )
    p.add_argument("--rep", required=True, metavar="R")
    p.add_argument("--gap", type=int, metavar="ID")
    p.add_argument("--path", metavar="P", help="learning path id")
    p.add_argument("--scenario", action="append", metavar="S", help="scenario id (repeatable) instead of the path's steps")
    p.add_argument("--due", metavar="YYYY-MM-DD")
    p.add_argument("--list", action="store_true", help="list the rep's assignments instead")
    common(p)
    p.set_defaults(func=cmd_assign)

    p = sub.add_parser("practice", help="roleplay practice against the AI buyer", description="Start, talk in, end, resume and expire practice sessions.")
    psub = p.add_subparsers(dest="practice_cmd", metavar="ACTION", required=True)
    s = psub.add_parser("start", help="start a session; prints the buyer's opening")
    s.add_argument("--rep", required=True, metavar="R")
    s.add_argument("--scenario", required=True, metavar="S")
    s.add_argument("--assignment", type=int, metavar="ID", help="the assignment this practice is for (default: the rep's active one holding the scenario)")
    common(s)
    s.set_defaults(func=cmd_practice_start)
    s = psub.add_parser("say", help="say something to the buyer; prints the buyer's reply")
    s.add_argument("session", metavar="SESSION")
    s.add_argument("text", metavar="TEXT", nargs="+")
    common(s)
    s.set_defaults(func=cmd_practice_say)
    s = psub.add_parser("end", help="end a session and score it on the scenario's target lines")
    s.add_argument("session", metavar="SESSION")
    common(s)
    s.set_defaults(func=cmd_practice_end)
    s = psub.add_parser("show", help="print a session's transcript so far (resume)")
    s.add_argument("session", metavar="SESSION")
    common(s)
    s.set_defaults(func=cmd_practice_show)
    s = psub.add_parser("list", help="list practice sessions")
    s.add_argument("--rep", metavar="R")
    s.add_argument("--status", choices=["active", "ended", "expired"])
    common(s)
    s.set_defaults(func=cmd_practice_list)
    s = psub.add_parser("expire", help="expire sessions idle longer than session_expiry_hours")
    common(s)
    s.set_defaults(func=cmd_practice_expire)

    p = sub.add_parser("certify", help="judge an ended practice session against its certification", description="Pass lifts the rep's gates for the certification; fail keeps them and assigns the next practice. Running it twice returns the stored result.")
    p.add_argument("session", metavar="SESSION")
    common(p)
    p.set_defaults(func=cmd_certify)

    p = sub.add_parser("gate", help="check, list, block and lift certification gates", description="Gates block a rep from an activity (dial, demo, renewal_call ...) until certified.")
    gsub = p.add_subparsers(dest="gate_cmd", metavar="ACTION", required=True)
    s = gsub.add_parser("check", help="may REP do ACTIVITY now? exit 0 allowed, 3 blocked")
    s.add_argument("rep", metavar="REP")
    s.add_argument("activity", metavar="ACTIVITY")
    common(s)
    s.set_defaults(func=cmd_gate_check)
    s = gsub.add_parser("lift", help="lift a rep's gate by hand (logged with who and why)")
    s.add_argument("rep", metavar="REP")
    s.add_argument("activity", metavar="ACTIVITY", nargs="?", default=None, help="one activity (default: every open gate of the rep)")
    s.add_argument("--by", required=True, metavar="NAME")
    s.add_argument("--reason", required=True, metavar="TEXT")
    s.add_argument("--gate", type=int, metavar="ID", help="one gate id")
    common(s)
    s.set_defaults(func=cmd_gate_lift)
    s = gsub.add_parser("block", help="block a rep from an activity by hand (logged)")
    s.add_argument("rep", metavar="REP")
    s.add_argument("activity", metavar="ACTIVITY")
    s.add_argument("--by", required=True, metavar="NAME")
    s.add_argument("--reason", required=True, metavar="TEXT")
    s.add_argument("--certification", metavar="ID")
    common(s)
    s.set_defaults(func=cmd_gate_block)
    s = gsub.add_parser("list", help="list gates")
    s.add_argument("--rep", metavar="R")
    s.add_argument("--status", choices=["blocked", "shadow", "lifted", "active"])
    common(s)
    s.set_defaults(func=cmd_gate_list)


@command
def cmd_feedback(args: argparse.Namespace) -> int:
    from tools.feedback import gap_feedback

    with open_coach(args) as coach:
        fb = gap_feedback(coach, args.gap)
        answer(args, fb, fb["text"])
        return 0


@command
def cmd_scenario_generate(args: argparse.Namespace) -> int:
    from tools.scenario import generate_scenario

    if args.gap is None and not (args.rep and args.line):
        raise CLIError("give --gap ID, or --rep R and --line L")
    calls = None
    if args.calls:
        try:
            calls = [int(c) for c in args.calls.split(",") if c.strip()]
        except ValueError:
            raise CLIError(f"--calls: expected comma-separated call ids, got '{args.calls}'") from None
    with open_coach(args) as coach:
        r = generate_scenario(coach, args.gap, rep_id=args.rep, line_id=args.line, call_ids=calls, difficulty=args.difficulty)
        verb = "wrote" if r["created"] else "unchanged"
        answer(args, r, f"{verb} {r['path']} (scenario {r['scenario_id']}, version {r['version']}, from calls {', '.join(map(str, r['call_ids']))})")
        return 0


def _asg_line(a: dict) -> str:
    return (
        f"assignment {a['assignment_id']}: rep {a['rep_id']}, status {a['status']}"
        + (f", gap {a['gap_id']}" if a.get("gap_id") else "")
        + (f", path {a['path_id']}" if a.get("path_id") else "")
        + f", scenarios {', '.join(a.get('scenario_ids') or [])}"
        + (f", due {a['due']}" if a.get("due") else "")
    )


@command
def cmd_assign(args: argparse.Namespace) -> int:
    from tools.paths import assign_path, list_assignments

    with open_coach(args) as coach:
        if args.list:
            rows = list_assignments(coach, args.rep)
            answer(args, rows, "\n".join(_asg_line(a) for a in rows) or f"no assignments for {args.rep}")
            return 0
        if args.gap is None and not args.path and not args.scenario:
            raise CLIError("give --gap ID, --path P or --scenario S (or --list)")
        a = assign_path(coach, args.rep, gap_id=args.gap, path_id=args.path, scenario_ids=args.scenario,
                        source="gap" if args.gap is not None else "manual", due=args.due)
        answer(args, a, ("already assigned: " if a.get("duplicate") else "assigned ") + _asg_line(a))
        return 0


@command
def cmd_practice_start(args: argparse.Namespace) -> int:
    from tools.roleplay import start_session

    with open_coach(args) as coach:
        r = start_session(coach, args.rep, args.scenario, args.assignment)
        p = r["scenario"]["persona"]
        answer(args, r, f"session {r['session_id']} ({r['engine']} buyer; targets: {', '.join(r['targets'])})\n"
                      f"{p['name']} ({p['role']}): {r['buyer']}\n"
                      f"reply with: coachloop practice say {r['session_id']} \"...\"")
        return 0


@command
def cmd_practice_say(args: argparse.Namespace) -> int:
    from tools.roleplay import reply

    with open_coach(args) as coach:
        r = reply(coach, args.session, " ".join(args.text))
        answer(args, r, f"buyer: {r['buyer']}")
        return 0


@command
def cmd_practice_end(args: argparse.Namespace) -> int:
    from tools.roleplay import end_session

    with open_coach(args) as coach:
        r = end_session(coach, args.session)
        lines = [f"session {r['session_id']}: {'PASSED' if r['passed'] else 'FAILED'} (score {r['score']:.2f})"]
        for v in r["verdicts"]:
            lines.append(f"  {v['verdict']:4} {v['id']}" + (f"  \"{v['quote']}\"" if v.get("quote") else "") + (f"  ({v['reason']})" if v.get("reason") and v["verdict"] != "pass" else ""))
        lines.append(f"next: coachloop certify {r['session_id']}")
        answer(args, r, "\n".join(lines))
        return 0


@command
def cmd_practice_show(args: argparse.Namespace) -> int:
    from tools.roleplay import resume

    with open_coach(args) as coach:
        r = resume(coach, args.session)
        lines = [f"session {r['session_id']} ({r['status']}), scenario {r['scenario'].get('id')}, targets {', '.join(r['targets'])}"]
        for t in r["turns"]:
            lines.append(f"  {t['role']:5} {t['text']}")
        answer(args, r, "\n".join(lines))
        return 0


@command
def cmd_practice_list(args: argparse.Namespace) -> int:
    from tools.roleplay import list_sessions

    with open_coach(args) as coach:
        rows = list_sessions(coach, args.rep, args.status)
        answer(args, rows, "\n".join(f"{r['id']}  {r['rep_id']}  {r['scenario_id']}  {r['status']}" + (f"  score {r['score']:.2f}" if r.get("score") is not None else "") for r in rows) or "no sessions")
        return 0


@command
def cmd_practice_expire(args: argparse.Namespace) -> int:
    from tools.roleplay import expire_sessions

    with open_coach(args) as coach:
        ids = expire_sessions(coach)
        answer(args, {"expired": ids}, f"expired {len(ids)} session(s)" + (": " + ", ".join(ids) if ids else ""))
        return 0


@command
def cmd_certify(args: argparse.Namespace) -> int:
    from tools.certify import certify

    with open_coach(args) as coach:
        r = certify(coach, args.session)
        if r["status"] == "uncertified":
            answer(args, r, f"session {args.session}: not certified: {r['reason']}")
            return 0
        text = f"{r['certification_id']}: {r['status'].upper()} (score {r['score']:.2f}, attempt {r['attempt']}/{r.get('attempts_allowed')})"
        if r.get("lifted"):
            text += "\nlifted gates: " + ", ".join(f"{g['activity']}" if isinstance(g, dict) else str(g) for g in r["lifted"])
        nxt = r.get("next_assignment")
        if isinstance(nxt, dict):
            text += f"\nnext practice: {', '.join(nxt.get('scenario_ids') or [])} (assignment {nxt.get('assignment_id')})"
        elif r.get("next_scenario"):
            text += f"\nnext practice: {r['next_scenario']}"
        if r["status"] == "needs_manager":
            text += "\nattempts used up: a manager must review and lift the gate (coachloop gate lift REP --by NAME --reason TEXT)"
        answer(args, r, text)
        return 0


@command
def cmd_gate_check(args: argparse.Namespace) -> int:
    from tools.gates import gate_check

    with open_coach(args) as coach:
        r = gate_check(coach, args.rep, args.activity)
        text = f"{'ALLOWED' if r['allowed'] else 'BLOCKED'}: {r['rep_id']} {r['activity']}: {r['reason']}"
        if r.get("action") and not r["allowed"]:
            text += f"\nto do: {r['action']}"
        answer(args, r, text)
        return 0 if r["allowed"] else 3


@command
def cmd_gate_lift(args: argparse.Namespace) -> int:
    from tools.gates import lift

    with open_coach(args) as coach:
        rows = lift(coach, args.rep, args.activity, by=args.by, reason=args.reason, gate_id=args.gate)
        answer(args, rows, "\n".join(f"lifted gate {g['id']}: {g['rep_id']} {g['activity']} (by {g['lifted_by']}: {g['lift_reason']})" for g in rows))
        return 0


@command
def cmd_gate_block(args: argparse.Namespace) -> int:
    from tools.gates import block

    with open_coach(args) as coach:
        g = block(coach, args.rep, args.activity, by=args.by, reason=args.reason, certification_id=args.certification)
        answer(args, g, f"blocked gate {g['id']}: {g['rep_id']} {g['activity']} ({g['reason']})")
        return 0


@command
def cmd_gate_list(args: argparse.Namespace) -> int:
    from tools.gates import list_gates

    with open_coach(args) as coach:
        rows = list_gates(coach, args.rep, args.status)
        answer(args, rows, "\n".join(
            f"gate {g['id']}: {g['rep_id']} {g['activity']} {g['status']}" + (f" [{g['certification_id']}]" if g.get("certification_id") else "") + f": {g.get('reason') or ''}"
            for g in rows) or "no gates")
        return 0
