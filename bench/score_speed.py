#!/usr/bin/env python3
"""Speed of the offline scorer, and a verdict-equality check for speed work on it.

    python bench/score_speed.py                         # ms per call: dev set + 300 generated calls
    python bench/score_speed.py --calls 1000 --cold     # also with every scorer cache cleared
                                                        # (discovery is pattern-led; demo, outbound,
                                                        # renewal, support are example-led: both timed)
    python bench/score_speed.py --profile               # cProfile of the generated calls (top 35)
    python bench/score_speed.py --save-baseline /tmp/verdicts.json
    python bench/score_speed.py --check /tmp/verdicts.json

Timing: `score_turns` (the offline engine) per call, on the labelled dev set
(`../shared/eval/dev`, 16 hand-labelled discovery calls) and on N calls from bench/throughput.py's
generator (`make_call`: ~150 turns, 40% speech-recognition style). Prints ms per call (wall and
CPU). Generated calls reuse wording, so the engine's per-text caches are warm after the first few
calls, as in `bench/throughput.py`; `--cold` also times them with every scorer cache (turns,
sentences, matches) cleared before every call (the worst case: every turn's text new).

Equality: `--save-baseline FILE` scores a fixed corpus and writes every verdict (case, scorecard,
line id, verdict, turn, quote, reason) and each call's score, together with the text of every
scorecard it used; `--check FILE` scores the same corpus against those stored scorecards (so a
later scorecard edit does not matter) and fails (exit 1) on any difference, printing the first
ones. The corpus: the dev set against every starter scorecard, the starter rubric tests against
their scorecards, `--baseline-calls` generated calls (default 1,000) against discovery and a
fifth of them against each other starter scorecard.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

DEV = REPO.parent / "shared" / "eval" / "dev"


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def load_cards(texts: dict[str, str] | None = None) -> tuple[dict, dict[str, str]]:
    """Starter scorecards (id -> Scorecard) and their YAML texts; from `texts` when given."""
    from playbook.loader import parse_artifact_text
    from playbook.starter import STARTER_DIR

    if texts is None:
        texts = {p.stem: p.read_text() for p in sorted((STARTER_DIR / "scorecards").glob("*.yaml"))}
    cards = {}
    for sid, text in texts.items():
        model, probs = parse_artifact_text("scorecards", f"{sid}.yaml", text)
        if model is None:
            raise SystemExit(f"scorecard {sid}: " + "; ".join(str(p) for p in probs))
        cards[sid] = model
    return cards, texts


def dev_cases() -> list[tuple[str, list]]:
    from tools.scoring.evaluate import load_labelled

    if not DEV.is_dir():
        print(f"score_speed: no dev set at {DEV}; skipping it", file=sys.stderr)
        return []
    return [(f"dev/{c.name}", c.turns) for c in load_labelled(DEV)]


def rubric_test_cases() -> list[tuple[str, str, list]]:
    """(name, scorecard id, turns) of the starter playbook's rubric tests."""
    import yaml

    from playbook.starter import STARTER_DIR
    from tools.scoring.evaluate import turns_from_dicts

    out = []
    for p in sorted((STARTER_DIR / "scorecards" / "tests").glob("*.y*ml")):
        data = yaml.safe_load(p.read_text())
        sid = data.get("scorecard") or p.stem.split("-")[0]
        out.append((f"tests/{p.name}", sid, turns_from_dicts(data["turns"], data.get("rep", ""), str(p))))
    return out


def generated(n: int, start: int = 0) -> list[tuple[str, list]]:
    from throughput import make_call

    from tools.transcripts.model import Turn

    out = []
    for i in range(start, start + n):
        rep, turns, facts = make_call(i)
        out.append((f"gen/{i}{'-asr' if facts['asr'] else ''}",
                    [Turn(speaker=t["speaker"], text=t["text"], role="rep" if t["speaker"] == rep else "buyer") for t in turns]))
    return out


def corpus(cards: dict, n_gen: int) -> list[tuple[str, str, list]]:
    """(case name, scorecard id, turns) for the equality check."""
    items: list[tuple[str, str, list]] = []
    dev = dev_cases()
    for sid in sorted(cards):
        items.extend((name, sid, turns) for name, turns in dev)
    items.extend(c for c in rubric_test_cases() if c[1] in cards)
    gen = generated(n_gen)
    items.extend((name, "discovery", turns) for name, turns in gen)
    others = [s for s in sorted(cards) if s != "discovery"]
    for k, sid in enumerate(others):
        items.extend((name, sid, turns) for name, turns in gen[k::max(1, len(others) + 1)][: max(1, n_gen // 5)])
    return items


def verdict_rows(items, cards) -> list[list]:
    from tools.scoring import score_turns

    rows = []
    for name, sid, turns in items:
        res = score_turns(turns, cards[sid])
        rows.append([name, sid, "_score", res.score, None, None, None])
        for v in res.lines:
            rows.append([name, sid, v.id, v.verdict, v.turn, v.quote, v.reason])
    return rows


def save_baseline(path: Path, n_gen: int) -> int:
    from tools.scoring import OFFLINE_ENGINE_VERSION

    cards, texts = load_cards()
    items = corpus(cards, n_gen)
    t0 = time.perf_counter()
    rows = verdict_rows(items, cards)
    secs = time.perf_counter() - t0
    path.write_text(json.dumps({"engine_version": OFFLINE_ENGINE_VERSION, "baseline_calls": n_gen, "scorecards": texts,
                                "calls": len(items), "rows": rows}, ensure_ascii=False))
    print(f"baseline: {len(items)} scored calls, {len(rows)} rows -> {path} ({secs:.1f} s)")
    return 0


def check(path: Path) -> int:
    from tools.scoring import OFFLINE_ENGINE_VERSION

    base = json.loads(path.read_text())
    cards, _ = load_cards(base["scorecards"])
    items = corpus(cards, base["baseline_calls"])
    t0 = time.perf_counter()
    c0 = _cpu()
    rows = verdict_rows(items, cards)
    secs, cpu = time.perf_counter() - t0, _cpu() - c0
    want = base["rows"]
    diffs = []
    if len(rows) != len(want):
        diffs.append(f"row count {len(rows)} != baseline {len(want)}")
    for got, exp in zip(rows, want):
        if got != exp:
            diffs.append(f"{got[0]} [{got[1]}] {got[2]}:\n   baseline {exp[3:]}\n   now      {got[3:]}")
    if base["engine_version"] != OFFLINE_ENGINE_VERSION:
        print(f"note: baseline engine {base['engine_version']}, now {OFFLINE_ENGINE_VERSION}", file=sys.stderr)
    print(f"check: {len(items)} calls, {len(rows)} rows in {secs:.1f} s ({cpu:.1f} s CPU, "
          f"{1000 * cpu / max(1, len(items)):.1f} ms/call): {'IDENTICAL' if not diffs else f'{len(diffs)} DIFFERENCES'}")
    for d in diffs[:15]:
        print("  " + d)
    return 1 if diffs else 0


def time_calls(label: str, cases, card, clear=None) -> None:
    from tools.scoring import score_turns

    if not cases:
        return
    t0, c0 = time.perf_counter(), _cpu()
    for _, turns in cases:
        if clear:
            clear()
        score_turns(turns, card)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    n = len(cases)
    print(f"{label:34} {n:6} calls  {1000 * wall / n:7.2f} ms/call wall  {1000 * cpu / n:7.2f} ms/call CPU")


def _clear_analysis():
    """Every cache the offline engine keeps between calls (analysed turns, sentences, matches)."""
    from tools.scoring import offline

    offline.clear_caches()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=300, help="generated calls to time (default 300)")
    ap.add_argument("--cold", action="store_true", help="also time with every scorer cache (turns, sentences, matches) cleared before each call")
    ap.add_argument("--profile", action="store_true", help="cProfile the generated calls and print the top functions")
    ap.add_argument("--save-baseline", metavar="FILE", help="write every verdict of the check corpus to FILE")
    ap.add_argument("--check", metavar="FILE", help="score the corpus again and fail on any difference from FILE")
    ap.add_argument("--baseline-calls", type=int, default=1000, help="generated calls in the check corpus (default 1000)")
    args = ap.parse_args(argv)

    if args.save_baseline:
        return save_baseline(Path(args.save_baseline), args.baseline_calls)
    if args.check:
        return check(Path(args.check))

    cards, _ = load_cards()
    card = cards["discovery"]
    dev = dev_cases()
    gen = generated(args.calls, start=100_000)  # not the check corpus' calls
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        time_calls("generated (profiled)", gen, card)
        prof.disable()
        pstats.Stats(prof, stream=sys.stdout).sort_stats("cumulative").print_stats(35)
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(25)
        return 0
    time_calls("dev set (first pass)", dev, card)
    time_calls("dev set (again: caches warm)", dev, card)
    time_calls("generated (~150 turns)", gen, card)
    if args.cold:
        time_calls("dev set (cold analysis)", dev, card, _clear_analysis)
        time_calls("generated (cold analysis)", gen[: max(1, args.calls // 3)], card, _clear_analysis)
    # the two ways a line matches: discovery's lines are pattern-led (regular expressions, examples
    # only when nearly said word for word); the other starter scorecards are example-led (each
    # sentence weighed against the line's examples, see tools/scoring/similar.py)
    some = gen[: max(1, args.calls // 3)]
    for sid in ("demo", "outbound", "renewal", "support"):
        time_calls(f"generated vs {sid} (example-led, warm)", some, cards[sid])
        if args.cold:
            time_calls(f"generated vs {sid} (example-led, cold)", some, cards[sid], _clear_analysis)
    return 0


if __name__ == "__main__":
    sys.exit(main())
