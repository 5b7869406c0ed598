"""Benchmark: gap attribution and the orchestrator on a large store.

    /work/venv/bin/python bench/loop.py [--reps 100] [--calls-per-rep 200] [--db PATH] [--keep]

Builds a store (default 100 reps x 200 calls = 20,000 calls, 200,000 verdicts) through the
real schema with executemany, with ~1 in 10 reps missing one line on most recent calls. Times:

* `attribute(coach, persist=False)` for the whole team (one window-function scan);
* `attribute(coach, rep, as_of_call=...)` for one rep (what the orchestrator runs per call);
* the orchestrator handling one new `call.scored` event end to end (verify + attribute), with
  remediation stubbed out so only the loop's own cost is measured.

Targets: one rep's attribution and one call's handling under 100 ms; the whole team under 10 s.
Prints a table and a JSON line; exit 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from store.db import Store  # noqa: E402
from tools.context import Coach  # noqa: E402

LINES = ["agenda_set", "pain_identified", "impact_quantified", "budget_confirmed", "decision_process",
         "decision_maker_identified", "timeline_established", "competition_explored", "pricing_deflection_handled",
         "next_step_booked"]
START = datetime(2025, 1, 1, tzinfo=timezone.utc)


def build(store: Store, reps: int, per_rep: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    db = store.db
    with store.transaction():
        db.conn.executemany(
            "insert into reps (id, name, segment, created_at) values (?, ?, ?, ?)",
            [(f"rep-{i}", f"Rep {i}", rnd.choice(["smb", "mid-market", "enterprise"]), "2025-01-01T00:00:00+00:00")
             for i in range(reps)],
        )
    call_id = 0
    for i in range(reps):
        weak = LINES[rnd.randrange(len(LINES))] if i % 10 == 0 else None
        calls, verdicts = [], []
        for n in range(per_rep):
            call_id += 1
            at = (START + timedelta(minutes=n * 97 + i)).isoformat()
            calls.append((call_id, f"h{call_id}", f"rep-{i}", "discovery", "discovery", "mid-market", at, "[]", 1, at))
            recent = n >= per_rep - 5
            for ln in LINES:
                if ln == "pricing_deflection_handled" and rnd.random() < 0.6:
                    v = "na"
                elif ln == weak and recent:
                    v = "fail" if rnd.random() < 0.8 else "pass"
                else:
                    v = "fail" if rnd.random() < 0.1 else "pass"
                verdicts.append((call_id, ln, v, v))
        with store.transaction():
            db.conn.executemany(
                "insert into calls (id, source_hash, rep_id, call_type, scorecard_id, segment, occurred_at, turns, live, created_at) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", calls)
            db.conn.executemany("insert into verdicts (call_id, line_id, verdict, engine_verdict) values (?, ?, ?, ?)", verdicts)


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--calls-per-rep", type=int, default=200)
    ap.add_argument("--db", default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    import server.orchestrator as orch_mod
    from server.orchestrator import Orchestrator
    from tools.attribute import attribute

    work = Path(tempfile.mkdtemp(prefix="coachloop-bench-loop-"))
    try:
        pb = work / "playbook"
        pb.mkdir()
        (pb / "playbook.yaml").write_text("team: Bench\n")
        db_path = Path(args.db) if args.db else work / "bench.db"
        coach = Coach(pb, db_path)
        t0 = time.perf_counter()
        if coach.store.one("select count(*) n from calls")["n"] == 0:
            build(coach.store, args.reps, args.calls_per_rep)
        build_s = time.perf_counter() - t0
        n_calls = coach.store.one("select count(*) n from calls")["n"]
        figures: dict[str, float] = {}
        figures["team_s"], gaps = timed(lambda: attribute(coach, persist=False), repeat=1)
        rep = "rep-0"
        last = coach.store.one("select max(id) m from calls where rep_id = ?", (rep,))["m"]
        figures["one_rep_s"], rep_gaps = timed(lambda: attribute(coach, rep, persist=False, as_of_call=last))

        # one new call handled by the orchestrator (remediation stubbed: only the loop's own cost)
        orch_mod.remediate_gap = lambda coach, gap_id, **kw: {"scenario": {}, "assignment": {}, "gates": [], "feedback": None}
        o = Orchestrator(coach)
        coach.store.db["meta"].upsert({"key": "orchestrator.cursor", "value": "0"}, pk="key")
        with coach.store.transaction():
            coach.store.db.execute(
                "insert into calls (id, source_hash, rep_id, call_type, scorecard_id, occurred_at, turns, live, created_at) "
                "values (?, ?, ?, 'discovery', 'discovery', '2030-01-01T00:00:00+00:00', '[]', 1, '2030-01-01')", (n_calls + 1, f"new-{n_calls + 1}", rep))
            coach.store.db.conn.executemany("insert into verdicts (call_id, line_id, verdict) values (?, ?, 'fail')",
                                            [(n_calls + 1, ln) for ln in LINES])
            coach.store.event("call.scored", rep_id=rep, subject=f"call:{n_calls + 1}")
        t = time.perf_counter()
        actions = o.run_pending()
        figures["one_call_s"] = time.perf_counter() - t
        targets = {"team_s": 10.0, "one_rep_s": 0.1, "one_call_s": 0.1}
        ok = True
        print(f"store: {n_calls} calls, {args.reps} reps, built in {build_s:.1f}s; team gaps found: {len(gaps)}")
        for k, v in figures.items():
            miss = v > targets[k]
            ok &= not miss
            print(f"{k:12} {v * 1000:9.1f} ms   target {targets[k] * 1000:.0f} ms {'MISSED' if miss else 'ok'}")
        print(json.dumps({"calls": n_calls, "reps": args.reps, "gaps": len(gaps), "rep_gaps": len(rep_gaps),
                          "actions": len(actions), **{k: round(v, 4) for k, v in figures.items()}, "ok": ok}))
        coach.close()
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
