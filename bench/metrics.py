"""Benchmark: every metric on a store with 1,000,000 calls (10 rubric lines each = 10M verdicts).

    /work/venv/bin/python bench/metrics.py [--calls 1000000] [--reps 200] [--db PATH] [--keep]

Builds the store in a temporary directory (deleted afterwards unless --keep), inserting rows with
executemany in large transactions through the real schema, so the summary tables are filled by
the same triggers the loop's writes fire. Then times each metric for everyone, one team and one
rep, over all time and over one quarter, plain and weekly. Target: under one second each.
Prints a table and a JSON line with every figure; exit 1 when a metric misses the target.
"""
from __future__ import annotations

import argparse
import json
import os
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
from tools.metrics import METRIC_NAMES, compute_metrics  # noqa: E402

LINES = ["opener", "agenda", "pain", "impact", "budget", "authority", "timeline", "competition", "next_step", "recap"]
TAGS = {"pain": "MEDDICC", "impact": "MEDDICC", "budget": "BANT", "authority": "BANT", "timeline": "BANT", "competition": "MEDDICC"}
TS = "2026-11-26T00:00:00.000Z"  # a well-formed updated_at: the touch triggers leave it as is
START = datetime(2025, 1, 1, tzinfo=timezone.utc)
DAYS = 365


def write_playbook(root: Path) -> Path:
    pb = root / "playbook"
    (pb / "scorecards").mkdir(parents=True)
    (pb / "playbook.yaml").write_text("team: Bench\n")
    lines = "".join(
        f"  - id: {ln}\n    title: {ln.replace('_', ' ').title()}\n    methodology: [{TAGS.get(ln, '')}]\n    phrases: [{ln}]\n"
        for ln in LINES
    )
    (pb / "scorecards" / "discovery.yaml").write_text(f"id: discovery\ntitle: Discovery\ncall_types: [discovery]\nlines:\n{lines}")
    return pb


def iso(dt: datetime) -> str:
    return dt.replace(microsecond=0).isoformat()


def build(store: Store, n_calls: int, n_reps: int, seed: int = 7) -> dict:
    rnd = random.Random(seed)
    t0 = time.perf_counter()
    reps = [f"rep-{i:04d}" for i in range(n_reps)]
    teams = ["east", "west", "central", "emea"]
    db = store.db
    db.execute("pragma cache_size = -1000000")  # 1 GB page cache for the bulk load only
    with store.transaction():
        db.conn.executemany(
            "insert into reps (id, name, team, segment, hire_date, quota, created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?)",
            [(r, f"Rep {i}", teams[i % 4], "mid-market", (START + timedelta(days=rnd.randrange(DAYS))).date().isoformat(), 50000.0, TS, TS)
             for i, r in enumerate(reps)],
        )
    skill = {(r, ln): rnd.uniform(0.3, 0.95) for r in reps for ln in LINES}
    batch = 20000
    cid = 0
    while cid < n_calls:
        calls, verdicts = [], []
        for _ in range(min(batch, n_calls - cid)):
            cid += 1
            rep = reps[rnd.randrange(n_reps)]
            at = iso(START + timedelta(seconds=rnd.randrange(DAYS * 86400)))
            scored = rnd.random() > 0.01
            calls.append((cid, f"h{cid}", rep, "discovery", "discovery", at, 1, at if scored else None, at, TS))
            if scored:
                for ln in LINES:
                    x = rnd.random()
                    v = "na" if x > 0.92 else ("pass" if x < skill[(rep, ln)] * 0.92 else "fail")
                    verdicts.append((cid, ln, v, TS))
        with store.transaction():
            db.conn.executemany(
                "insert into calls (id, source_hash, rep_id, call_type, scorecard_id, occurred_at, live, scored_at, created_at, updated_at)"
                " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                calls,
            )
            db.conn.executemany("insert into verdicts (call_id, line_id, verdict, updated_at) values (?, ?, ?, ?)", verdicts)
    t_calls = time.perf_counter() - t0

    # the loop's rows: gaps, assignments, sessions, certifications, gates; deals; quotas; rollouts
    n_gaps = max(10, n_calls // 500)
    gaps, assigns, sessions, certs, gates = [], [], [], [], []
    for g in range(1, n_gaps + 1):
        rep, ln = reps[rnd.randrange(n_reps)], rnd.choice(LINES)
        opened = START + timedelta(seconds=rnd.randrange((DAYS - 40) * 86400))
        closed = opened + timedelta(days=rnd.randint(5, 30)) if rnd.random() < 0.6 else None
        gaps.append((g, rep, "discovery", ln, "closed" if closed else "open", iso(opened), iso(closed) if closed else None, f"gap {g}", TS))
        assigns.append((g, rep, g, f"{ln}-path", "gap", "passed" if closed else "started", iso(opened), TS))
        s_start = opened + timedelta(days=1)
        for k in range(2):
            passed = 1 if (k == 1 and closed) else 0
            sessions.append((f"s{g}-{k}", rep, f"{ln}-sc", g, "ended", passed, iso(s_start + timedelta(days=k)),
                             iso(s_start + timedelta(days=k, minutes=20)), TS))
        certs.append((g, rep, f"{ln}-cert", g, f"s{g}-1", "passed" if closed else "failed", iso(s_start + timedelta(days=1, hours=1)), TS))
        gates.append((g, rep, "dial", f"{ln}-cert", g, "lifted" if closed else "blocked", iso(opened), iso(s_start + timedelta(days=1, hours=1)) if closed else None, TS))
    n_deals = max(10, n_calls // 20)
    deals, stages = [], []
    names = ["Discovery", "Demo", "Proposal", "Negotiation"]
    for d in range(n_deals):
        rep = reps[rnd.randrange(n_reps)]
        created = START + timedelta(seconds=rnd.randrange((DAYS - 60) * 86400))
        depth = rnd.randint(1, 4)
        outcome = rnd.choice(["won", "lost", "lost", "open"])
        at = created
        for s in names[:depth]:
            stages.append((f"d{d}", s, iso(at), TS))
            at += timedelta(days=rnd.randint(2, 15))
        closed = iso(at) if outcome != "open" else None
        if closed:
            stages.append((f"d{d}", "Closed Won" if outcome == "won" else "Closed Lost", closed, TS))
        deals.append((f"d{d}", f"Deal {d}", rep, 10000.0, names[depth - 1], outcome, iso(created), closed, TS))
    quotas = [(r, f"2025-{m:02d}", 50000.0, rnd.uniform(0.4, 1.4) * 50000, TS) for r in reps for m in range(1, 13)]
    rollouts = [(i, "paths", f"p{i}", "v1", iso(START + timedelta(days=i)), 20, iso(START + timedelta(days=i + 3)) if i % 3 else None, None, TS)
                for i in range(1, 200)]
    with store.transaction():
        c = db.conn
        c.executemany("insert into gaps (id, rep_id, scorecard_id, line_id, status, opened_at, closed_at, statement, updated_at) values (?,?,?,?,?,?,?,?,?)", gaps)
        c.executemany("insert into assignments (id, rep_id, gap_id, path_id, source, status, created_at, updated_at) values (?,?,?,?,?,?,?,?)", assigns)
        c.executemany("insert into practice_sessions (id, rep_id, scenario_id, assignment_id, status, passed, started_at, ended_at, updated_at) values (?,?,?,?,?,?,?,?,?)", sessions)
        c.executemany("insert into certifications (id, rep_id, certification_id, gap_id, session_id, status, created_at, updated_at) values (?,?,?,?,?,?,?,?)", certs)
        c.executemany("insert into gates (id, rep_id, activity, certification_id, gap_id, status, created_at, lifted_at, updated_at) values (?,?,?,?,?,?,?,?,?)", gates)
        c.executemany("insert into deals (id, name, rep_id, amount, stage, outcome, created_at, closed_at, updated_at) values (?,?,?,?,?,?,?,?,?)", deals)
        c.executemany("insert into deal_stages (deal_id, stage, at, updated_at) values (?,?,?,?)", stages)
        c.executemany("insert into quotas (rep_id, period, quota, attained, updated_at) values (?,?,?,?,?)", quotas)
        c.executemany("insert into rollouts (id, kind, artifact_id, version, landed_at, targeted, completed_at, cycle_seconds, updated_at) values (?,?,?,?,?,?,?,?,?)", rollouts)
    db.execute("analyze")
    return {"build_seconds": round(time.perf_counter() - t0, 1), "calls_seconds": round(t_calls, 1), "gaps": n_gaps, "deals": n_deals, "reps": n_reps}


SUMMARY_TRIGGERS = ("calls_daily_ins", "calls_daily_del", "calls_daily_upd", "calls_verdicts_move",
                    "verdicts_daily_ins", "verdicts_daily_del", "verdicts_daily_upd")


def write_cost(store: Store, n: int = 2000) -> dict:
    """Seconds to store `n` more calls (10 verdicts each) into the big store, with the summary
    triggers and without them (both rolled back: DDL is transactional in SQLite)."""
    out = {}
    base = store.one("select max(id) as m from calls")["m"] or 0
    rep = store.one("select id from reps order by id limit 1")["id"]
    calls = [(base + i, f"w{base + i}", rep, "discovery", "discovery", "2025-06-01T10:00:00+00:00", 1, "2025-06-01T10:00:00+00:00",
              "2025-06-01T10:00:00+00:00") for i in range(1, n + 1)]
    verdicts = [(c[0], ln, "pass") for c in calls for ln in LINES]
    conn = store.db.conn
    for label, drop in (("with_summary_triggers", False), ("without_summary_triggers", True)):
        with store.lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if drop:
                    for t in SUMMARY_TRIGGERS:
                        conn.execute(f"drop trigger if exists {t}")
                t0 = time.perf_counter()
                conn.executemany(
                    "insert into calls (id, source_hash, rep_id, call_type, scorecard_id, occurred_at, live, scored_at, created_at)"
                    " values (?, ?, ?, ?, ?, ?, ?, ?, ?)", calls)
                conn.executemany("insert into verdicts (call_id, line_id, verdict) values (?, ?, ?)", verdicts)
                out[label] = round(time.perf_counter() - t0, 3)
            finally:
                conn.execute("ROLLBACK")
    out["calls"] = n
    out["ms_per_call_with"] = round(out["with_summary_triggers"] / n * 1000, 3)
    out["ms_per_call_without"] = round(out["without_summary_triggers"] / n * 1000, 3)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--db", help="build (or reuse, when it exists) this database instead of a temporary one")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--target", type=float, default=1.0, help="seconds each metric must stay under")
    ap.add_argument("--repeat", type=int, default=2, help="runs per measurement; the fastest counts")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="coachloop-bench-"))
    try:
        pb = write_playbook(tmp)
        db_path = Path(args.db) if args.db else tmp / "bench.db"
        fresh = not db_path.exists()
        coach = Coach(pb, db_path)
        info = {"calls": args.calls}
        if fresh:
            print(f"building {args.calls:,} calls x {len(LINES)} lines in {db_path} ...", file=sys.stderr)
            info.update(build(coach.store, args.calls, args.reps))
            print(f"built in {info['build_seconds']} s (calls+verdicts {info['calls_seconds']} s)", file=sys.stderr)
        info["db_mb"] = round(db_path.stat().st_size / 1e6)
        team = coach.store.one("select team from reps order by id limit 1")["team"]
        rep = coach.store.one("select id from reps order by id limit 1")["id"]
        scopes = [
            ("everyone, all time", {}),
            ("everyone, one quarter", {"since": "2025-04-01", "until": "2025-06-30"}),
            (f"team {team}, all time", {"team": team}),
            (f"rep {rep}, all time", {"rep": rep}),
            ("everyone, all time, weekly", {"weekly": True}),
            (f"rep {rep}, weekly", {"rep": rep, "weekly": True}),
        ]
        results, worst, worst_cpu = [], 0.0, 0.0
        print(f"load average before timing: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", file=sys.stderr)
        print("seconds per metric, best of --repeat runs: wall (cpu of this process)")
        print(f"{'metric':<22} " + " ".join(f"{s[0][:24]:>26}" for s in scopes))
        for name in METRIC_NAMES:
            row = []
            for label, kw in scopes:
                best = None
                for _ in range(args.repeat):
                    t, c = time.perf_counter(), time.process_time()
                    compute_metrics(coach, [name], **kw)
                    dt, dc = time.perf_counter() - t, time.process_time() - c
                    if best is None or dt < best[0]:
                        best = (dt, dc)
                dt, dc = best
                worst, worst_cpu = max(worst, dt), max(worst_cpu, dc)
                row.append(f"{dt:.3f} ({dc:.3f})")
                results.append({"metric": name, "scope": label, "seconds": round(dt, 4), "cpu_seconds": round(dc, 4)})
            print(f"{name:<22} " + " ".join(f"{x:>26}" for x in row))
        t = time.perf_counter()
        compute_metrics(coach)
        all_s = time.perf_counter() - t
        print(f"all metrics at once, everyone, all time: {all_s:.3f} s; slowest single metric: {worst:.3f} s wall, "
              f"{worst_cpu:.3f} s cpu", file=sys.stderr)
        # reference: the same per-line counts straight from the 10M verdict rows, without the summaries
        t = time.perf_counter()
        coach.store.query("select line_id, verdict, count(*) from verdicts group by 1, 2")
        raw_all = time.perf_counter() - t
        t = time.perf_counter()
        coach.store.query("select v.line_id, v.verdict, count(*) from verdicts v join calls c on c.id = v.call_id"
                          " where c.live = 1 and c.occurred_at >= '2025-04-01' and c.occurred_at < '2025-07-01' group by 1, 2")
        raw_q = time.perf_counter() - t
        info["raw_reference_seconds"] = {"verdicts_by_line_all_time": round(raw_all, 3), "verdicts_by_line_one_quarter": round(raw_q, 3)}
        print(f"without the summary tables, counting verdicts per line from the raw rows takes {raw_all:.2f} s (all time) "
              f"and {raw_q:.2f} s (one quarter, joined to calls)", file=sys.stderr)
        wc = write_cost(coach.store)
        info["write_cost"] = wc
        print(f"write cost, {wc['calls']} calls x {len(LINES)} verdicts into the big store: {wc['ms_per_call_with']} ms/call with the "
              f"summary triggers, {wc['ms_per_call_without']} ms/call without", file=sys.stderr)
        print(json.dumps({**info, "worst_seconds": round(worst, 4), "worst_cpu_seconds": round(worst_cpu, 4), "all_at_once_seconds": round(all_s, 4), "results": results}))
        coach.close()
        return 0 if worst < args.target else 1
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
