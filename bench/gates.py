#!/usr/bin/env python3
"""Latency of `gate_check` (what a dialer asks before every call) and of the offline AI buyer.

Usage:
    python bench/gates.py [--reps N] [--gates-per-rep K] [--checks M] [--json]

Builds a fresh starter playbook and a database with N reps, K gate rows each (a mix of blocked,
shadow and lifted, over the gated activities), then times M `gate_check` calls on random reps and
activities (one indexed query each), and a scripted 6-turn practice session with the offline buyer.
Prints p50 / p95 / max in milliseconds. Target: gate_check p95 under 2 ms on a laptop.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playbook.starter import write_starter  # noqa: E402
from store.db import now_iso  # noqa: E402
from tools.context import Coach  # noqa: E402
from tools.gates import gate_check  # noqa: E402
from tools.roleplay import end_session, reply, start_session  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--gates-per-rep", type=int, default=6)
    ap.add_argument("--checks", type=int, default=5000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="coachloop-bench-"))
    write_starter(tmp / "playbook")
    coach = Coach(tmp / "playbook", tmp / "bench.db")
    acts = coach.playbook.policy.gated_activities
    rnd = random.Random(7)
    t = now_iso()
    with coach.store.transaction() as db:
        db["reps"].insert_all(
            [{"id": f"rep-{i}", "name": f"Rep {i}", "aliases": "[]", "active": 1, "created_at": t, "updated_at": t} for i in range(args.reps)]
        )
        db["gates"].insert_all(
            [
                {"rep_id": f"rep-{i}", "activity": rnd.choice(acts), "certification_id": "qualification",
                 "status": rnd.choice(["blocked", "shadow", "lifted", "lifted"]), "reason": "bench", "action": "bench",
                 "created_at": t}
                for i in range(args.reps)
                for _ in range(args.gates_per_rep)
            ]
        )
    times = []
    blocked = 0
    for _ in range(args.checks):
        rep = f"rep-{rnd.randrange(args.reps)}"
        act = rnd.choice(acts)
        t0 = time.perf_counter()
        r = gate_check(coach, rep, act)
        times.append((time.perf_counter() - t0) * 1000)
        blocked += not r["allowed"]
    script = ["Thanks for the time.", "What's going on that made you take the call?", "What budget have you set aside?",
              "Who else signs off?", "When do you need it live?", "Does Thursday at 2 work for a follow-up?"]
    coach.store.db["reps"].insert({"id": "bench-rep", "name": "Bench Rep", "aliases": "[]", "active": 1}, replace=True)
    turn_ms = []
    s = start_session(coach, "bench-rep", "qualification-challenge")
    for text in script:
        t0 = time.perf_counter()
        reply(coach, s["session_id"], text)
        turn_ms.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    end_session(coach, s["session_id"])
    end_ms = (time.perf_counter() - t0) * 1000
    out = {
        "reps": args.reps,
        "gate_rows": args.reps * args.gates_per_rep,
        "checks": args.checks,
        "blocked_share": round(blocked / args.checks, 3),
        "gate_check_ms": {"p50": round(statistics.median(times), 3), "p95": round(pct(times, 0.95), 3), "max": round(max(times), 3)},
        "buyer_turn_ms": {"first": round(turn_ms[0], 1), "p50": round(statistics.median(turn_ms), 1), "max": round(max(turn_ms), 1)},
        "end_session_ms": round(end_ms, 1),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:16} {v}")
    coach.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
