"""`coachloop demo`: one whole coaching loop on the bundled sample calls, offline, in seconds.

In a fresh temporary folder (or `--keep DIR`): write the starter playbook and a new database, add
two reps, score their past discovery calls (plain text, Zoom and Teams WebVTT, turns JSON), and let
the orchestrator run the loop with no human step: the gap is stated, a roleplay scenario is written
from the calls where it showed, a learning path is assigned and the rep is blocked; a scripted
practice fails, a second one passes and certifies, the gate lifts; a better live call closes the
gap. Then the event log. Every step is what the real modules do on real files and a real SQLite
database; nothing is canned but the sample calls and the rep's practice lines.

Exit status 0 when the loop closed as described, 1 (with the step that did not happen) otherwise.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

from .common import CLIError, add_json, command, emit_json

DEMO_LINE = "budget_confirmed"  # the behaviour the sample calls were written to miss
DEMO_REP = "Priya Raman"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run a whole coaching loop on bundled sample calls (offline, a few seconds)",
        description=(
            "Score bundled sample calls, state the gap, write a roleplay scenario from those calls, block the rep, "
            "fail then pass a scripted practice, lift the gate, close the gap with a better call, and print the "
            "event log. Runs offline in a fresh temporary folder."
        ),
    )
    p.add_argument("--keep", metavar="DIR", help="run in DIR (new or empty) and keep the playbook and database there")
    add_json(p)
    p.set_defaults(func=cmd_demo)


class DemoError(Exception):
    """A step of the demo did not happen as the loop promises."""


class Printer:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, text: str = "") -> None:
        if self.enabled:
            print(text, flush=True)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _pct(v: Any) -> str:
    return "-" if v is None else f"{round(float(v) * 100)}%"


def run_demo(workdir: Path, *, say: Callable[[str], None] = lambda s: None) -> dict:
    """Run the demo in `workdir`; returns {steps: [...], events: [...], ok, ...}. Raises DemoError
    naming the step that did not happen."""
    from playbook.starter import write_starter
    from server.demo_data import DEMO_DATA
    from server.orchestrator import Orchestrator
    from store.deals import record_deal
    from store.reps import upsert_rep
    from tools.attribute import get_gap
    from tools.calls import score_call
    from tools.context import Coach
    from tools.gates import gate_check
    from tools.roleplay import end_session, reply, start_session
    from tools.transcripts import read_path

    from .loop_cmds import format_event

    t0 = time.monotonic()
    manifest = json.loads((DEMO_DATA / "calls.json").read_text(encoding="utf-8"))
    script = json.loads((DEMO_DATA / "practice.json").read_text(encoding="utf-8"))
    steps: list[dict] = []

    def step(name: str, title: str, **data: Any) -> dict:
        s = {"step": name, "title": title, **data}
        steps.append(s)
        return s

    # ------------------------------------------------------------------ 1. set up
    pb_dir, db_path = workdir / "playbook", workdir / "coachloop.db"
    write_starter(pb_dir)
    coach = Coach(pb_dir, db_path)
    try:
        pb = coach.playbook
        counts = {k: len(v) for k, v in pb.artifacts.items()}
        say(f"1. Set up: starter playbook in {pb_dir} ({', '.join(f'{n} {k}' for k, n in counts.items())}), new database {db_path.name}")
        reps = []
        for r in manifest["reps"]:
            row = upsert_rep(coach.store, r["name"], team=r.get("team"), segment=r.get("segment"), hire_date=r.get("hire_date"))
            reps.append(row["id"])
        names = ", ".join(f"{r['name']} ({rid})" for r, rid in zip(manifest["reps"], reps))
        say(f"   reps: {names}")
        step("setup", "starter playbook and a new database", playbook=str(pb_dir), db=str(db_path), reps=reps, artifacts=counts)
        rep_id = reps[0]
        orch = Orchestrator(coach)

        def score(entry: dict) -> dict:
            path = DEMO_DATA / entry["file"]
            tr = read_path(path)
            res = score_call(
                coach, tr, rep=entry["rep"], call_type="discovery", segment=entry.get("segment") or "mid-market",
                deal_id=entry.get("deal"), stage=entry.get("stage"), occurred_at=entry.get("at"), source_name=entry["file"],
            )
            if entry.get("outcome") and entry["outcome"] != "open":
                record_deal(coach.store, entry["deal"], outcome=entry["outcome"])
            missed = [ln["id"] for ln in res["lines"] if ln["verdict"] == "fail"]
            info = {"call": res["call"], "rep": res["rep"], "file": entry["file"], "format": tr.format, "score": res["score"],
                    "missed": missed, "deal": entry.get("deal"), "outcome": entry.get("outcome")}
            out = entry.get("outcome") or "open"
            say(f"   call {res['call']:<3} {res['rep']:<13} {entry['file']:<38} {tr.format:<5} score {_pct(res['score']):>4}  "
                f"deal {out:<5} missed: {', '.join(missed) or '-'}")
            return info

        # ------------------------------------------------------------------ 2. score past calls
        say("")
        say(f"2. Score {len(manifest['calls'])} past discovery calls (offline scorer, discovery scorecard)")
        history = sorted(manifest["calls"], key=lambda c: c["at"])
        scored = [score(c) for c in history]
        step("score", "past calls scored", calls=scored)

        # ------------------------------------------------------------------ 3. attribution
        say("")
        say("3. The loop runs on its own: attribution, then remediation for each new gap")
        actions = orch.run_pending()
        for a in actions:
            if a["kind"] in ("gap.opened", "gap.remediated"):
                say(f"   - {a['rep']}: {a['text']}")
        opened = [a["data"] for a in actions if a["kind"] == "gap.opened"]
        mine = [g for g in opened if g.get("line") == DEMO_LINE] or [g for g in opened if g]
        if not mine:
            raise DemoError(f"step 3: no gap opened (actions: {[a['text'] for a in actions]})")
        gap = get_gap(coach, mine[0]["gap_id"])
        if gap["rep_id"] != rep_id:
            raise DemoError(f"step 3: the gap opened on rep {gap['rep_id']}, expected {rep_id}")
        say("")
        say(f"   GAP {gap['id']} ({gap['rep_id']} / {gap['line_id']}):")
        say(f"   \"{gap['statement']}\"")
        step("gap", "gap stated", gap_id=gap["id"], rep=gap["rep_id"], line=gap["line_id"], statement=gap["statement"],
             misses=gap["misses"], window=gap["window"], team_rate=gap["team_rate"], lost_deals=gap["lost_deals"],
             call_ids=gap["call_ids"], other_gaps=[g["statement"] for g in opened if g["gap_id"] != gap["id"]])

        # ------------------------------------------------------------------ 4. remediation
        rem = next((a["data"] for a in actions if a["kind"] == "gap.remediated" and a["data"].get("gap_id") == gap["id"]), None)
        if rem is None or not rem.get("scenario_path"):
            raise DemoError(f"step 4: gap {gap['id']} was not remediated (no scenario written)")
        fb = next((a["text"] for a in actions if a["kind"] == "feedback" and a["data"].get("gap_id") == gap["id"]), None)
        scen_file = pb_dir / rem["scenario_path"]
        if not scen_file.is_file():
            raise DemoError(f"step 4: scenario file {scen_file} was not written")
        scen_text = scen_file.read_text(encoding="utf-8")
        say("")
        say("4. Remediation, generated from the calls where it went wrong")
        if fb:
            wrapped = [textwrap.fill(par, width=110, initial_indent="   ", subsequent_indent="   ")
                       for par in fb.strip().splitlines() if par.strip()]
            say("   feedback for the rep:")
            say("\n".join(wrapped))
        say(f"   scenario written: {rem['scenario_path']} ({len(scen_text.splitlines())} lines); it begins:")
        for ln in scen_text.splitlines()[:14]:
            say("   | " + ln)
        say(f"   learning path assigned: {rem.get('path_id') or '-'} (assignment {rem.get('assignment_id')})")
        step("remediation", "feedback, scenario and learning path", scenario_id=rem.get("scenario_id"),
             scenario_path=rem["scenario_path"], assignment_id=rem.get("assignment_id"), path_id=rem.get("path_id"),
             feedback=fb, scenario_head=scen_text.splitlines()[:30])

        # ------------------------------------------------------------------ 5. the gate
        def gap_gates() -> list[dict]:
            return coach.store.query(
                "select id, activity, status, certification_id from gates where gap_id = ? order by id", (gap["id"],)
            )

        activities = list(coach.playbook.policy.gated_activities)
        checks = {act: gate_check(coach, rep_id, act) for act in activities}
        blocked = [a for a, c in checks.items() if c["status"] == "blocked"]
        say("")
        say("5. The rep is gated until certified (a dialer asks gate_check before each activity)")
        for act, c in checks.items():
            say(f"   gate_check({rep_id}, {act}) -> {c['status'].upper()}" + (f": {c['reason']}" if c["status"] != "allowed" else ""))
        if blocked:
            say(f"   to do: {checks[blocked[0]]['action']}")
        shadow = [a for a, c in checks.items() if c["status"] == "shadow"]
        own = gap_gates()
        if not own:
            raise DemoError(f"step 5: no gate was set for gap {gap['id']} ({gap['line_id']}): no certification covers the line")
        watch = own[0]["activity"]
        say(f"   gap {gap['id']}'s gates: " + ", ".join(f"{g['activity']} ({g['status']}, certification {g['certification_id']})" for g in own))
        if any(g["status"] == "shadow" for g in own):
            say("   (shadow: the line's rubric tests do not reach the certification's min_kappa yet, so the gate records but does not block)")
        step("gate", "rep blocked", checks={a: {"status": c["status"], "reason": c["reason"], "action": c.get("action")} for a, c in checks.items()},
             blocked=blocked, shadow=shadow, gap_gates=own)

        # ------------------------------------------------------------------ 6/7. practice
        from store import loop as q

        def practise(kind: str, n: int) -> dict:
            asg = q.active_assignment_for_gap(coach.store, gap["id"])
            if asg is None or not asg.get("scenario_ids"):
                raise DemoError(f"step {n}: no active assignment with a scenario for gap {gap['id']}")
            scenario_id = asg["scenario_ids"][0]
            say("")
            label = "skips the budget question" if kind == "fail" else "asks the right question"
            say(f"{n}. Practice against the AI buyer, scenario {scenario_id} (scripted rep that {label})")
            s = start_session(coach, rep_id, scenario_id, asg["id"])
            say(f"   buyer: {s['buyer']}")
            for line in script[kind]:
                r = reply(coach, s["session_id"], line)
                say(f"   rep:   {line}")
                say(f"   buyer: {r['buyer']}")
            ended = end_session(coach, s["session_id"])
            verdicts = ", ".join(f"{v['id']}={v['verdict']}" for v in ended["verdicts"])
            acts = orch.run_pending()
            cert = next((a for a in acts if a["kind"].startswith("certification.")), None)
            say(f"   practice scored: {verdicts} -> {'passed' if ended['passed'] else 'failed'}")
            for a in acts:
                say(f"   - {a['text']}")
            check = gate_check(coach, rep_id, watch)
            own = gap_gates()
            say(f"   gate_check({rep_id}, {watch}) -> {check['status'].upper()}; gap {gap['id']}'s gates: "
                + ", ".join(f"{g['activity']} {g['status']}" for g in own))
            return {"session_id": s["session_id"], "scenario_id": scenario_id, "passed": ended["passed"], "verdicts": ended["verdicts"],
                    "certification": cert["kind"].split(".", 1)[1] if cert else None, "gate": check["status"],
                    "gap_gates": own, "actions": [a["text"] for a in acts]}

        p1 = practise("fail", 6)
        if p1["passed"] or p1["certification"] != "failed" or all(g["status"] == "lifted" for g in p1["gap_gates"]):
            raise DemoError(f"step 6: the weak practice should fail certification and keep the gate: {p1}")
        step("practice_failed", "scripted practice failed, still blocked", **p1)
        p2 = practise("pass", 7)
        if not p2["passed"] or p2["certification"] != "passed":
            raise DemoError(f"step 7: the good practice should pass certification: {p2}")
        if any(g["status"] != "lifted" for g in p2["gap_gates"]):
            raise DemoError(f"step 7: certified but gap {gap['id']}'s gates are not all lifted: {p2['gap_gates']}")
        step("practice_passed", "scripted practice passed, certified, gate lifted", **p2)

        # ------------------------------------------------------------------ 8. verification
        say("")
        say("8. A better live call is scored; the loop verifies the gap on the same line")
        after = score(manifest["after"])
        acts = orch.run_pending()
        for a in acts:
            say(f"   - {a['text']}")
        g = get_gap(coach, gap["id"])
        if g["status"] != "closed":
            raise DemoError(f"step 8: gap {gap['id']} is still {g['status']} after call {after['call']} ({[a['text'] for a in acts]})")
        say(f"   gap {g['id']} closed: {g['close_reason']}")
        step("verified", "better call closed the gap", call=after, gap_status=g["status"], close_reason=g["close_reason"])

        # ------------------------------------------------------------------ 9. the event log
        events = coach.store.events(limit=10000)
        say("")
        say(f"9. The event log ({len(events)} events, each with its cause)")
        for ev in events:
            line = format_event(ev)
            say("   " + (line if len(line) <= 170 else line[:167] + "..."))
        elapsed = time.monotonic() - t0
        say("")
        say(f"The loop closed with no human step in {elapsed:.1f}s: scored -> gap -> scenario + path + gate -> practice failed -> "
            f"practice passed -> gate lifted -> better call -> gap closed.")
        return {"ok": True, "workdir": str(workdir), "playbook": str(pb_dir), "db": str(db_path), "seconds": round(elapsed, 2),
                "steps": steps, "events": events}
    finally:
        coach.close()


@command
def cmd_demo(args: argparse.Namespace) -> int:
    say = Printer(not args.json)
    if args.keep:
        workdir = Path(args.keep).expanduser().resolve()
        if workdir.exists() and any(workdir.iterdir()):
            raise CLIError(f"--keep {workdir}: the folder is not empty; give a new or empty folder")
        workdir.mkdir(parents=True, exist_ok=True)
        cleanup = False
    else:
        workdir = Path(tempfile.mkdtemp(prefix="coachloop-demo-"))
        cleanup = True
    say(f"coachloop demo: a whole coaching loop on bundled sample calls, offline, in {workdir}")
    say("")
    try:
        result = run_demo(workdir, say=say)
    except DemoError as exc:
        if args.json:
            emit_json({"ok": False, "error": str(exc), "workdir": str(workdir)})
        print(f"coachloop: demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if cleanup:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        if cleanup:
            result["workdir"] = None
        emit_json(result)
    elif args.keep:
        say(f"Kept in {workdir}: try `coachloop events --db {workdir / 'coachloop.db'} --playbook {workdir / 'playbook'}`")
    return 0
