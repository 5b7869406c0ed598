"""Throughput benchmark: parse, score (offline engine) and store N realistic discovery calls.

    python bench/throughput.py                 # 1,000 then 10,000 calls
    python bench/throughput.py --calls 2000    # 1,000 then 2,000
    python bench/throughput.py --sizes 500 --keep /tmp/bench   # keep the files and the database

Generates N discovery calls of about 150 turns each (varied wording, plain and speech-recognition
style, text / WebVTT / JSON files; each rubric behaviour present in some calls and missing in
others, pricing deflections handled or not), writes them to files, then runs the real pipeline
`tools.ingest.ingest_paths` on them against the starter playbook and a real SQLite file.

Each size runs in a fresh process so the peak RSS (resource.getrusage ru_maxrss) of each is its
own. Prints calls/s, peak RSS (the writer and each worker) and CPU per call (all processes, and
the writer's share) per size. Target on a 2-core machine: 10,000 calls in under 60 s, peak under
400 MB. Generation time is not counted.

The generator draws from a bounded stock of phrases, so turns and sentences recur across calls
(as short replies do in real calls) and the engine's per-text caches help; for the worst case,
every text new, see `bench/score_speed.py --cold`.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REPS = ["Priya Raman", "Jordan Pike", "Helena Brandt", "Kevin Marsh", "Brittany Cole", "Owen Gallagher",
        "Ibrahim Haddad", "Chloe Andersen", "Sofia Marchetti", "Grace Liu", "Megan OBrien", "Darnell Hayes",
        "Elena Volkova", "Cody Bennett", "Jonah Feldman", "Simone Laurent"]
BUYERS = ["Marcus Oduya", "Dana Whitfield", "Luis Ortega", "Hannah Kim", "Tom Becker", "Aisha Patel", "Rob Lindqvist",
          "Mei Chen", "Carlos Ruiz", "Fatima Noor", "Peter Novak", "Julia Stone", "Ken Watanabe", "Olga Ivanova"]
COMPANIES = ["Northwind Freight", "Acme Health", "BlueRiver Bank", "Stellar Retail", "Quantum Labs", "Harbor Logistics",
             "Pinecrest Insurance", "Vertex Manufacturing", "Lumen Media", "Cobalt Energy"]
PRODUCTS = ["activity capture", "forecasting", "call analytics", "territory planning", "quote automation"]
SEGMENTS = ["smb", "mid-market", "enterprise"]

SMALL_TALK_REP = ["Hi {b}, thanks for making the time today. Can you hear me okay?", "Morning {b}! How's your week going so far?",
                  "Hey {b}, good to finally connect. Did the rain hit you guys too?", "Hi {b}, thanks for jumping on."]
SMALL_TALK_BUYER = ["Yep, loud and clear. Sorry I'm a couple of minutes late.", "Busy, but good. Back to back today.",
                    "All good here, thanks. It's been a long week already.", "Sure, happy to. I have about thirty minutes."]
AGENDA = ["Since you're busy, here's what I'd suggest for the next thirty minutes: I'd like to understand how {p} works for your team today, "
          "then if it's relevant I'll show a couple of screens, and at the end we decide together whether a next step makes sense. Does that work?",
          "Quick plan for today if that's okay: ten minutes on your current process, ten on what we do, and we leave five minutes "
          "to agree on next steps. Anything you'd add to that?",
          "The goal for this call is to see whether there's a fit. I'll ask some questions about {p}, share how other teams handle it, "
          "and we can decide at the end if a deeper session is worth it."]
PAIN_Q = ["What's going on with {p} that made you want to take this call? What problems is it causing?",
          "What are the biggest challenges your team runs into with {p} right now?",
          "so um what's not working today with {p} like what made you look at this",
          "Walk me through where things break down with {p} today."]
PAIN_A = ["Honestly our pipeline reviews are a mess. Half the activity never makes it into the CRM so forecasts are guesswork.",
          "The reps hate logging things manually, so the data is incomplete and managers can't coach from it.",
          "We keep missing renewals because nobody sees the warning signs until it's too late.",
          "it's mostly that the numbers don't line up between systems and we spend days reconciling them"]
IMPACT_Q = ["Roughly how many hours a week does each rep spend on that manual work?",
            "What does that cost you, in lost deals or in time, if you had to put a number on it?",
            "how many deals a quarter would you say slip because of that",
            "Do you have a sense of the revenue at risk from those missed renewals?"]
IMPACT_A = ["Probably four or five hours a week per rep, and we have forty reps.", "We think we lose two or three deals a quarter, call it 200k.",
            "maybe ten percent of renewals so that's a lot of money", "Finance estimated about half a million last year."]
BUDGET_Q = ["Have you set aside budget for solving this, or would this need new funding?",
            "Is there a budget range you're working within for a project like this?",
            "and um budget wise is there money allocated for this this year",
            "Just to confirm, you mentioned about 60k for tooling. Is that the budget we should plan around?"]
BUDGET_A = ["We have some money left in the tooling line, maybe sixty thousand.", "Nothing formal yet, it would come out of next year's plan.",
            "yeah there's budget it's just not huge", "Our CFO would need to approve anything over fifty."]
PROCESS_Q = ["How does a purchase like this usually get done on your side? Procurement, security review, legal?",
             "Walk me through the steps between a yes from you and a signed contract.",
             "what does the approval process look like for new software there",
             "When you bought your last sales tool, how did that process go?"]
PROCESS_A = ["Security review first, then procurement, usually four to six weeks.", "Legal has to look at the MSA and then it goes to procurement.",
             "it goes through it and then finance signs off", "Last time it took two months because of the security questionnaire."]
DM_Q = ["Who else would be involved in making this decision?", "Who ultimately signs off on a purchase like this?",
        "besides you who else cares about this like who owns the budget", "Is there anyone else we should bring into the next conversation?"]
DM_A = ["My boss, the CRO, signs anything in this range.", "Our VP of Sales Ops and someone from IT would need to be in the loop.",
        "the cfo owns the budget and our revops lead would be involved", "Probably our head of enablement as well."]
TIMELINE_Q = ["When do you need something in place? Is there a date driving this?", "Is end of the quarter a hard deadline for you, and what's driving it?",
              "what's the timeline you're working against here", "By when would you want the team live on a new tool?"]
TIMELINE_A = ["Ideally before our sales kickoff in January.", "End of Q3. The board wants cleaner forecasts by then.",
              "we'd like it before the new fiscal year", "No hard date, but sooner is better."]
COMP_Q = ["What else are you looking at? Other vendors, building something in house, or staying as you are?",
          "Are you evaluating any other tools for this?", "what are you using today for this and are you talking to anyone else",
          "How are you handling this today, is it a spreadsheet or another tool?"]
COMP_A = ["We looked at Outreach briefly and our IT team says they could build something.", "Just spreadsheets for now, and one other vendor.",
          "we use a homegrown thing and we saw a demo from a competitor", "Nothing else formally, we've been doing it by hand."]
PRICING_ASK = ["Can you just send me pricing? I need to see numbers before we go further.", "Honestly, just send me some info and a quote and I'll take a look.",
               "what does this cost roughly", "Before we go on, what's the price per seat?"]
PRICING_GOOD = ["Happy to. It depends on a couple of things, so can I ask how many reps would use it and what you'd need in year one?",
                "It usually lands between 40 and 60 per seat. To get you a real number, which teams would roll it out first?",
                "sure i can do that but so the quote is right how many users are we talking about and what integrations matter"]
PRICING_BAD = ["Sure, I'll send our pricing sheet over after the call.", "It's 49 per seat per month. I'll email you the quote.",
               "yeah no problem ill send something over"]
NEXT_GOOD = ["Let's book the technical session with your admin for Tuesday the 14th at 11 Central. I'll send the invite now.",
             "Can we put thirty minutes on Thursday at 2pm to walk your VP through this? I'll send the calendar invite.",
             "so next step is a demo with your team on monday the 3rd at 10 does that time work"]
NEXT_VAGUE = ["I'll send something over and we'll circle back.", "Let's touch base next week sometime.", "ill follow up by email and we can go from there"]
FILLER_REP = ["That makes sense.", "Got it, thanks for sharing that.", "Interesting. Tell me more.", "Okay, that's helpful context.",
              "Right, we hear that a lot from teams like yours.", "yeah yeah that tracks", "Our platform captures calls and emails automatically.",
              "A lot of our customers in {s} see the same thing.", "We integrate with Salesforce and HubSpot out of the box.",
              "That's a common pattern, honestly.", "mm okay", "Sure, no rush."]
FILLER_BUYER = ["Yeah.", "Right.", "That's fair.", "Sure.", "Mm-hm.", "We tried something like that before and it didn't stick.",
                "Our reps are pretty stretched already.", "I'd have to check with the team on that.", "yeah exactly",
                "Makes sense.", "I think so, yes.", "That's the hard part for us."]
BEHAVIOURS = [("pain", PAIN_Q, PAIN_A), ("impact", IMPACT_Q, IMPACT_A), ("budget", BUDGET_Q, BUDGET_A),
              ("process", PROCESS_Q, PROCESS_A), ("dm", DM_Q, DM_A), ("timeline", TIMELINE_Q, TIMELINE_A),
              ("competition", COMP_Q, COMP_A)]
FILLERS = ["um", "uh", "you know", "like", "i mean"]


def _asr(text: str, rng: random.Random) -> str:
    words = "".join(ch for ch in text.lower() if ch.isalnum() or ch in " '").split()
    out = []
    for w in words:
        if rng.random() < 0.06:
            out.append(rng.choice(FILLERS))
        out.append(w)
    return " ".join(out)


def make_call(i: int, seed: int = 7, turns: int = 150) -> tuple[str, list[dict], dict]:
    """One synthetic discovery call: (rep, turns [{speaker, text}], facts about what it contains)."""
    rng = random.Random(seed * 1_000_003 + i)
    rep, buyer = rng.choice(REPS), rng.choice(BUYERS)
    p, s = rng.choice(PRODUCTS), rng.choice(SEGMENTS)
    asr = rng.random() < 0.4
    fmt_args = {"b": buyer.split()[0], "p": p, "s": s}
    script: list[tuple[str, str]] = []
    facts = {"asr": asr}

    def say(who: str, text: str) -> None:
        script.append((who, text.format(**fmt_args)))

    say("rep", rng.choice(SMALL_TALK_REP))
    say("buyer", rng.choice(SMALL_TALK_BUYER))
    facts["agenda"] = rng.random() < 0.65
    if facts["agenda"]:
        say("rep", rng.choice(AGENDA))
        say("buyer", "That works.")
    present = [b for b in BEHAVIOURS if rng.random() < 0.6]
    rng.shuffle(present)
    facts.update({name: any(b[0] == name for b in present) for name, _, _ in BEHAVIOURS})
    pricing = rng.random() < 0.35
    facts["pricing"] = "na"
    body_budget = turns - len(script) - 4
    slots = max(1, len(present) + (1 if pricing else 0))
    per_gap = max(0, (body_budget - 2 * slots) // (2 * slots))
    for k, item in enumerate(present + ([None] if pricing else [])):
        for _ in range(rng.randint(max(0, per_gap - 2), per_gap)):
            say("rep", " ".join(rng.sample(FILLER_REP, rng.randint(1, 3))))
            say("buyer", " ".join(rng.sample(FILLER_BUYER, rng.randint(1, 3))))
        if item is None:
            say("buyer", rng.choice(PRICING_ASK))
            good = rng.random() < 0.5
            facts["pricing"] = "pass" if good else "fail"
            say("rep", rng.choice(PRICING_GOOD if good else PRICING_BAD))
            say("buyer", rng.choice(FILLER_BUYER))
            continue
        _, qs, ans = item
        say("rep", rng.choice(qs))
        say("buyer", rng.choice(ans))
    while len(script) < turns - 2:
        say("rep", " ".join(rng.sample(FILLER_REP, rng.randint(1, 3))))
        say("buyer", " ".join(rng.sample(FILLER_BUYER, rng.randint(1, 3))))
    facts["next_step"] = rng.random() < 0.6
    say("rep", rng.choice(NEXT_GOOD if facts["next_step"] else NEXT_VAGUE))
    say("buyer", "Sounds good, talk then." if facts["next_step"] else "Okay, thanks.")
    out = [{"speaker": rep if who == "rep" else buyer, "text": _asr(t, rng) if asr else t} for who, t in script]
    return rep, out, facts


def render(i: int, rep: str, turns: list[dict]) -> tuple[str, str]:
    """(file name, content): text for most calls, WebVTT and turns JSON for some."""
    kind = i % 5
    if kind == 3:
        cues = ["WEBVTT", ""]
        t = 0.0
        for n, tr in enumerate(turns, 1):
            dur = 2.0 + len(tr["text"]) / 15
            cues += [str(n), f"{_ts(t)} --> {_ts(t + dur)}", f"{tr['speaker']}: {tr['text']}", ""]
            t += dur + 0.4
        return f"call{i:06d}.vtt", "\n".join(cues)
    if kind == 4:
        return f"call{i:06d}.json", json.dumps({"call_type": "discovery", "turns": turns})
    lines = []
    t = 0
    for tr in turns:
        lines.append(f"[{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}] {tr['speaker']}: {tr['text']}")
        t += 3 + len(tr["text"]) // 15
    return f"call{i:06d}.txt", "\n".join(lines) + "\n"


def _ts(sec: float) -> str:
    ms = int(round(sec * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def generate(folder: Path, n: int, seed: int = 7) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        rep, turns, _ = make_call(i, seed)
        name, text = render(i, rep, turns)
        p = folder / name
        p.write_text(text, encoding="utf-8")
        paths.append(p)
    return paths


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who).ru_maxrss  # KiB on Linux, bytes on macOS
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def cpu_seconds(who: int) -> float:
    """CPU time (user + system) of this process (the writer), or of its reaped children (the
    ingest workers)."""
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


def run_child(folder: Path, workdir: Path, workers: int | None) -> dict:
    """In this (fresh) process: ingest every file of `folder` into a new database."""
    import logging

    logging.getLogger("coachloop").setLevel(logging.ERROR)
    from playbook.starter import write_starter
    from store.reps import upsert_rep
    from tools.context import Coach
    from tools.ingest import ingest_paths

    pb = workdir / "playbook"
    if not pb.exists():
        write_starter(pb)
    db = workdir / "bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    coach = Coach(pb, db)
    for name in REPS:
        upsert_rep(coach.store, name, segment="mid-market", team="bench")
    rss0 = peak_rss_mb()
    cpu0 = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    kwargs = {"workers": workers} if workers is not None else {}
    summary = ingest_paths(coach, [folder], engine="offline", **kwargs)
    elapsed = time.perf_counter() - t0
    writer_cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu0[0]
    cpu = writer_cpu + cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0[1]
    from tools.ingest import _worker_count

    used_workers = _worker_count(workers, summary.files, "offline")
    stored = coach.store.db.execute("select count(*) from calls").fetchone()[0]
    verdicts = coach.store.db.execute("select count(*) from verdicts").fetchone()[0]
    coach.close()
    return {
        "calls": summary.files,
        "scored": summary.scored,
        "failed": len(summary.failed),
        "first_errors": summary.failed[:3],
        "stored": stored,
        "verdicts": verdicts,
        "seconds": round(elapsed, 2),
        "calls_per_s": round(summary.files / elapsed, 1) if elapsed else None,
        "cpu_seconds": round(cpu, 1),
        "cpu_ms_per_call": round(1000 * cpu / max(1, summary.files), 1),
        "writer_cpu_ms_per_call": round(1000 * writer_cpu / max(1, summary.files), 1),
        "workers": used_workers,
        "load_avg": round(os.getloadavg()[0], 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "worker_peak_rss_mb": round(peak_rss_mb(resource.RUSAGE_CHILDREN), 1) if used_workers > 1 else None,
        "rss_before_mb": round(rss0, 1),
        "db_mb": round(db.stat().st_size / 1048576, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=10_000, help="the large size (default 10000); 1,000 always runs first")
    ap.add_argument("--sizes", type=int, nargs="*", help="run exactly these sizes instead")
    ap.add_argument("--workers", type=int, default=None, help="processes that parse and score (default: the pipeline's own choice)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it (default: a temporary folder, removed)")
    ap.add_argument("--json", action="store_true", help="print one JSON object per size")
    ap.add_argument("--child", nargs=2, metavar=("FOLDER", "WORKDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        print(json.dumps(run_child(Path(args.child[0]), Path(args.child[1]), args.workers)))
        return 0

    sizes = args.sizes or sorted({1000, args.calls})
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="coachloop-bench-"))
    rc = 0
    try:
        for n in sizes:
            folder = base / f"calls-{n}"
            if not folder.exists() or len(list(folder.iterdir())) != n:
                shutil.rmtree(folder, ignore_errors=True)
                t0 = time.perf_counter()
                generate(folder, n, args.seed)
                gen_s = time.perf_counter() - t0
                size_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1048576
                print(f"generated {n} calls ({size_mb:.0f} MB of transcripts) in {gen_s:.1f} s", file=sys.stderr)
            cmd = [sys.executable, __file__, "--child", str(folder), str(base)]
            if args.workers is not None:
                cmd += ["--workers", str(args.workers)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            res["size"] = n
            ok = res["failed"] == 0 and res["stored"] == n
            if n >= 10_000:
                rss = res["peak_rss_mb"] + res["workers"] * (res["worker_peak_rss_mb"] or 0)
                res["target_met"] = ok and res["seconds"] < 60 * n / 10_000 and rss < 400
            if args.json:
                print(json.dumps(res))
            else:
                wrk = f" + {res['workers']} workers x {res['worker_peak_rss_mb']:.1f} MB" if res["worker_peak_rss_mb"] else ""
                print(f"{n:>7} calls: {res['seconds']:7.2f} s  {res['calls_per_s']:8.1f} calls/s  peak RSS {res['peak_rss_mb']:6.1f} MB{wrk}"
                      f"  CPU {res['cpu_ms_per_call']} ms/call ({res['writer_cpu_ms_per_call']} in the writer process)  (stored {res['stored']}, {res['verdicts']} verdicts, "
                      f"failed {res['failed']}, db {res['db_mb']} MB, load avg {res['load_avg']})")
                if res["failed"]:
                    print(f"         first errors: {res['first_errors']}")
                if "target_met" in res:
                    print(f"         target ({n:,} calls in < {60 * n / 10_000:.0f} s, peak < 400 MB): "
                          f"{'met' if res['target_met'] else 'NOT met'}")
            if not ok:
                rc = 1
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
