"""Live-playbook benchmark: save -> served latency, and re-scoring stored calls after a line changes.

    python bench/reload.py                  # 20 saves, 10,000 stored calls
    python bench/reload.py --saves 50 --calls 2000
    python bench/reload.py --full           # also time a full re-score (every line) for comparison

1. Reload: a starter playbook in a temporary folder, a real SQLite file, and the live service
   (`tools.live.LiveService`: the watchfiles watcher + the worker running the orchestrator), as
   `coachloop serve` runs it. Each round saves `scorecards/discovery.yaml` with one rubric line's
   title changed and measures the time from just before the write to the moment `coach.playbook`
   serves the new version (content hash). Prints the median (and p90, max) of `--saves` rounds.
   Target: under one second.
2. Re-score: `--calls` stored discovery calls of ~150 turns (bench/throughput.py's generator: a pool
   of real scored calls, copied with new content hashes so generation stays fast), then the
   `budget_confirmed` line changes on disk; measures the background job (`tools.rubric_change`)
   from the change being picked up to every stored call being at the new version.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _edit_title(path: Path, line_id: str, title: str) -> bytes:
    import yaml

    text = path.read_text()
    data = yaml.safe_load(text)
    old = next(ln["title"] for ln in data["lines"] if ln["id"] == line_id)
    marker = f"  - id: {line_id}\n    title: {old}\n"
    if marker not in text:
        raise SystemExit(f"cannot find the title of {line_id} in {path}")
    new = text.replace(marker, f"  - id: {line_id}\n    title: {title}\n", 1)
    return new.encode()


def bench_reload(saves: int) -> dict:
    from playbook.loader import content_version
    from playbook.starter import write_starter
    from server.orchestrator import Orchestrator
    from tools.context import Coach
    from tools.live import LiveService

    base = Path(tempfile.mkdtemp(prefix="coachloop-reload-"))
    try:
        pb = base / "playbook"
        write_starter(pb)
        coach = Coach(pb, base / "coachloop.db")
        card = pb / "scorecards" / "discovery.yaml"
        times = []
        with LiveService(coach, run_events=Orchestrator(coach).run_pending, poll_seconds=60):
            time.sleep(0.2)  # let the watcher settle (not measured)
            for i in range(saves):
                data = _edit_title(card, "agenda_set", f"Agenda set (round {i})")
                want = content_version(data)
                t0 = time.perf_counter()
                card.write_bytes(data)
                while coach.playbook.version_of("scorecards", "discovery") != want:
                    if time.perf_counter() - t0 > 10:
                        raise SystemExit(f"round {i}: the new version was not served within 10 s")
                    time.sleep(0.001)
                times.append(time.perf_counter() - t0)
                time.sleep(0.05)  # the worker reacts (not measured)
        coach.close()
        times.sort()
        return {"saves": saves, "median_ms": round(statistics.median(times) * 1000, 1),
                "p90_ms": round(times[int(0.9 * (len(times) - 1))] * 1000, 1), "max_ms": round(times[-1] * 1000, 1),
                "min_ms": round(times[0] * 1000, 1)}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _seed(coach, n: int, pool: int, seed: int) -> float:
    """n stored calls: `pool` generated and scored for real, the rest copies with new hashes."""
    from bench.throughput import make_call, render
    from tools.calls import score_call

    t0 = time.perf_counter()
    pool = min(pool, n)
    for i in range(pool):
        rep, turns, _facts = make_call(i, seed)
        name, content = render(i, rep, turns)
        score_call(coach, content, rep=rep, source_name=name)
    db = coach.store.db
    cols = [c.name for c in coach.store.db["calls"].columns if c.name not in ("id", "updated_at")]
    copy_cols = ", ".join(c if c != "source_hash" else "source_hash || ?" for c in cols)
    made = pool
    k = 0
    with coach.store.transaction():
        while made < n:
            k += 1
            take = min(pool, n - made)
            db.execute(f"insert into calls ({', '.join(cols)}) select {copy_cols} from calls where id <= ? order by id",
                       (f"-copy{k}", take))
            db.execute(
                "insert into verdicts (call_id, line_id, verdict, engine_verdict, turn, quote, reason, engine, engine_version,"
                " scorecard_version) select n.id, v.line_id, v.verdict, v.engine_verdict, v.turn, v.quote, v.reason, v.engine,"
                " v.engine_version, v.scorecard_version from verdicts v join calls o on o.id = v.call_id"
                " join calls n on n.source_hash = o.source_hash || ? where o.id <= ?",
                (f"-copy{k}", take),
            )
            made += take
    return time.perf_counter() - t0


def bench_rescore(n: int, pool: int, seed: int, full: bool, workers: int | None = None) -> dict:
    from playbook.starter import write_starter
    from server.orchestrator import Orchestrator
    from tools.context import Coach
    from tools.live import enable_live
    from tools.rubric_change import job_status, run_pending_jobs

    base = Path(tempfile.mkdtemp(prefix="coachloop-rescore-"))
    try:
        pb = base / "playbook"
        write_starter(pb)
        coach = Coach(pb, base / "coachloop.db")
        enable_live(coach)
        seed_s = _seed(coach, n, pool, seed)
        top = coach.store.one("select max(id) m from events")["m"]
        coach.store.db["meta"].upsert({"key": "orchestrator.cursor", "value": str(top)}, pk="key")
        card = pb / "scorecards" / "discovery.yaml"
        text = card.read_text()
        marker = "      - budget\n      - budgets\n"
        if marker not in text:
            raise SystemExit("cannot find budget_confirmed's phrases in the starter scorecard")
        card.write_text(text.replace(marker, "      - budgets\n      - how much can you invest\n", 1))  # 'budget' dropped
        t0 = time.perf_counter()
        c0 = time.process_time()
        coach.reload()
        orch = Orchestrator(coach)
        orch.run_pending()
        [job] = job_status(coach)
        run_pending_jobs(coach, workers=workers)
        orch.run_pending()
        secs = time.perf_counter() - t0
        cpu = time.process_time() - c0  # this process only (worker processes not included)
        [job] = job_status(coach, job["id"])
        version = coach.playbook.version_of("scorecards", "discovery")
        behind = coach.store.one("select count(*) n from calls where scorecard_version != ?", (version,))["n"]
        out = {"calls": n, "workers": workers or 1, "seed_seconds": round(seed_s, 1), "seconds": round(secs, 2), "cpu_seconds": round(cpu, 2),
               "calls_per_s": round(n / secs, 1), "load_avg": round(os.getloadavg()[0], 1),
               "job": job["status"], "changed_calls": job["changed_calls"], "behind": behind, "flips": job["flips"]}
        if full:
            from tools.calls import rescore

            t1 = time.perf_counter()
            r = rescore(coach, "discovery", force=True)
            out["full_rescore_seconds"] = round(time.perf_counter() - t1, 2)
            out["full_rescore_changed_calls"] = r["changed_calls"]
        coach.close()
        return out
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--saves", type=int, default=20, help="save -> served rounds (default 20)")
    ap.add_argument("--calls", type=int, default=10_000, help="stored calls to re-score (default 10000)")
    ap.add_argument("--pool", type=int, default=200, help="distinct calls scored for real; the rest are copies (default 200)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--full", action="store_true", help="also time a full re-score of every line, for comparison")
    ap.add_argument("--workers", type=int, default=None, help="processes that score during the re-score (default 1, as the server runs)")
    ap.add_argument("--skip-reload", action="store_true", help="only the re-score part")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    r1 = None if args.skip_reload else bench_reload(args.saves)
    if r1 is None:
        pass
    elif args.json:
        print(json.dumps({"reload": r1}))
    else:
        print(f"save -> served: median {r1['median_ms']} ms over {r1['saves']} saves (p90 {r1['p90_ms']} ms, "
              f"min {r1['min_ms']} ms, max {r1['max_ms']} ms; target < 1000 ms: {'met' if r1['median_ms'] < 1000 else 'NOT met'})")
    sys.stdout.flush()
    r2 = bench_rescore(args.calls, args.pool, args.seed, args.full, args.workers)
    if args.json:
        print(json.dumps({"rescore": r2}))
    else:
        print(f"re-score after a line change: {r2['calls']:,} stored calls in {r2['seconds']} s ({r2['calls_per_s']} calls/s, {r2['workers']} process(es)), "
              f"job {r2['job']}, {r2['changed_calls']} calls flipped, {r2['behind']} left behind; CPU {r2['cpu_seconds']} s "
              f"in this process, load average {r2['load_avg']} (generating them took {r2['seed_seconds']} s, not counted)")
        if "full_rescore_seconds" in r2:
            print(f"full re-score of every line, for comparison: {r2['full_rescore_seconds']} s")
    return 0 if r2["behind"] == 0 and r2["job"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
