"""`coachloop score`, `ingest`, `rescore`, `override`, `calls` and `call`: measuring every call."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import Any

from tools.calls import export_disputed, get_call, list_calls, override, rescore
from tools.ingest import FILE_ERRORS, IngestSummary, error_entry, ingest_file, ingest_paths, watch_inbox
from tools.transcripts import MAX_BYTES, TranscriptError

from .common import CLIError, add_db, add_json, add_playbook, command, emit_json, err, open_coach

log = logging.getLogger("coachloop")

VERDICT_MARK = {"pass": "pass", "fail": "FAIL", "na": "n/a"}


# --------------------------------------------------------------------------- options


def _add_meta(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("call details (apply to every file)")
    g.add_argument("--scorecard", metavar="ID", dest="scorecard_id", help="scorecard to score with (default: the one for --call-type)")
    g.add_argument("--rep", metavar="NAME", help="the rep's name as spoken in the call (default: the speaker on the roster); an unknown rep is added")
    g.add_argument("--call-type", metavar="TYPE", dest="call_type", help="discovery, demo, outbound, renewal, support ... (default: the file's own, else discovery)")
    g.add_argument("--segment", metavar="S", help="customer segment (default: the deal's, the file's, else the rep's)")
    g.add_argument("--deal", metavar="ID", dest="deal_id", help="deal this call belongs to (created when unknown)")
    g.add_argument("--stage", metavar="S", help="deal stage at the time of the call")
    g.add_argument("--at", metavar="ISO", dest="occurred_at", help="when the call happened (ISO 8601; default: from the file, else now)")
    g.add_argument("--format", metavar="F", dest="fmt", help="transcript format (text, otter, vtt, srt, gong, fireflies, turns; default: detected)")
    g.add_argument("--engine", choices=["offline", "llm"], default=None, help="scoring engine (default: llm when configured in playbook.yaml, else offline)")
    g.add_argument("--practice", action="store_true", help="these are practice transcripts, not live calls")


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    meta = {k: getattr(args, k) for k in ("rep", "call_type", "scorecard_id", "segment", "deal_id", "stage", "occurred_at", "fmt", "engine")}
    meta = {k: v for k, v in meta.items() if v is not None}
    if args.practice:
        meta["live"] = False
    return meta


def _common(p: argparse.ArgumentParser) -> None:
    add_playbook(p)
    add_db(p)
    add_json(p)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score call transcripts and store the verdicts",
        description="Score each call transcript (files, folders, globs) line by line against its scorecard, store it "
        "once (the same call twice is stored once) and print the verdicts with their evidence. A bad file is "
        "reported and the others go on; the exit code is 1 when any file failed.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="transcript files, folders or glob patterns; - reads one transcript from standard input")
    _add_meta(p)
    _common(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "ingest",
        help="score many transcripts (folders, globs) or watch an inbox folder",
        description="Score every transcript in the paths given, with a progress bar on a terminal. With --watch INBOX, "
        "keep scoring every transcript dropped into INBOX, each exactly once (also across restarts), until Ctrl-C.",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="transcript files, folders or glob patterns")
    p.add_argument("--watch", metavar="INBOX", help="watch this folder and score every transcript dropped into it")
    p.add_argument("--settle", type=float, default=1.0, metavar="SECONDS", help="inbox: wait until a file has not changed for this long (default 1)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes that parse and score (default: one per CPU for 50 files or more, offline engine)")
    _add_meta(p)
    _common(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "rescore",
        help="re-score stored calls after a scorecard changed and report flipped verdicts",
        description="Re-score the stored calls of a scorecard with its current version and report, line by line, "
        "which verdicts flipped. Human overrides stay in force. An interrupted rescore resumes when run again.",
    )
    p.add_argument("--scorecard", metavar="ID", required=True, dest="scorecard_id", help="scorecard whose calls to re-score")
    p.add_argument("--since", metavar="DATE", help="only calls that happened at or after this date (ISO 8601)")
    p.add_argument("--force", action="store_true", help="also re-score calls already scored with the current version")
    _common(p)
    p.set_defaults(func=cmd_rescore)

    p = sub.add_parser(
        "override",
        help="dispute one verdict of a stored call, or export disputed calls as rubric tests",
        description="Record a human verdict on one rubric line of a stored call: who, what and why. The engine's "
        "verdict is kept beside it; the human one counts from now on. The disputed sentence becomes a labelled "
        "example in scorecards/examples/<scorecard>.yaml (a wrongly passed quote a near miss; for a pass, the --turn "
        "given), which the engine uses from the next call. With --export-tests DIR, write every "
        "call with an overridden verdict as a labelled rubric test (for scorecards/tests/).",
    )
    p.add_argument("call", nargs="?", metavar="CALL", help="call id (as printed by `coachloop score`)")
    p.add_argument("line", nargs="?", metavar="LINE", help="rubric line id, e.g. budget_confirmed")
    p.add_argument("--verdict", choices=["pass", "fail", "na"], help="the right verdict")
    p.add_argument("--reason", metavar="TEXT", help="why the engine's verdict is wrong")
    p.add_argument("--by", metavar="NAME", help="who decided (default: $COACHLOOP_USER or the login name)")
    p.add_argument("--turn", type=int, metavar="N", help="0-based evidence turn for a pass (its words become a learned pass example)")
    p.add_argument("--export-tests", metavar="DIR", help="write disputed calls as labelled rubric tests into DIR")
    p.add_argument("--scorecard", metavar="ID", dest="scorecard_id", help="with --export-tests: only this scorecard's calls")
    _common(p)
    p.set_defaults(func=cmd_override)

    p = sub.add_parser("calls", help="list stored calls", description="List stored calls, oldest first.")
    p.add_argument("--rep", metavar="NAME", help="only this rep's calls (id, name or alias)")
    p.add_argument("--scorecard", metavar="ID", dest="scorecard_id", help="only calls scored with this scorecard")
    p.add_argument("--since", metavar="DATE", help="only calls at or after this date (ISO 8601)")
    p.add_argument("--limit", type=int, metavar="N", help="at most N calls (the latest N)")
    _common(p)
    p.set_defaults(func=cmd_calls)

    p = sub.add_parser("call", help="show one stored call with its verdicts", description="Show one stored call: its verdicts, evidence and overrides.")
    p.add_argument("call", metavar="CALL", help="call id")
    p.add_argument("--turns", action="store_true", help="also print the transcript's turns")
    _common(p)
    p.set_defaults(func=cmd_call)


# --------------------------------------------------------------------------- output helpers


def _clip(text: str | None, n: int) -> str:
    if not text:
        return ""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def print_call(result: dict, out=None) -> None:
    out = out or sys.stdout
    dup = "  (already stored)" if result.get("duplicate") else ""
    who = result.get("rep_name") or result.get("rep")
    print(f"call {result['call']}  {who}  {result['scorecard']}@{(result.get('scorecard_version') or '')[:8]}"
          f"  score {result['score']:.2f}  [{result.get('engine')}]  {result.get('source') or ''}{dup}", file=out)
    width = max([len(ln["id"]) for ln in result["lines"]] + [4])
    print(f"  {'line':<{width}}  verdict  turn  quote / reason", file=out)
    for ln in result["lines"]:
        turn = "" if ln["turn"] is None else str(ln["turn"])
        text = f"\"{_clip(ln['quote'], 70)}\"" if ln.get("quote") and ln["verdict"] == "pass" else _clip(ln.get("reason"), 72)
        mark = VERDICT_MARK.get(ln["verdict"], ln["verdict"])
        if ln.get("overridden_by"):
            mark += "*"
            text = f"{text}  [overridden by {ln['overridden_by']}: engine said {ln.get('engine_verdict')}]"
        print(f"  {ln['id']:<{width}}  {mark:<7}  {turn:>4}  {text}", file=out)


def json_line(result: dict) -> dict:
    """The documented per-call JSON shape (plus a few extra fields)."""
    return {
        "call": result["call"],
        "scorecard": result["scorecard"],
        "rep": result["rep"],
        "lines": [{"id": ln["id"], "verdict": ln["verdict"], "turn": ln["turn"], "quote": ln["quote"],
                   "reason": ln.get("reason")} for ln in result["lines"]],
        "score": float(result["score"] if result["score"] is not None else 0.0),
        "rep_name": result.get("rep_name"),
        "scorecard_version": result.get("scorecard_version"),
        "engine": result.get("engine"),
        "source": result.get("source"),
        "duplicate": bool(result.get("duplicate")),
    }


class Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool, label: str = "calls"):
        self.enabled = enabled and sys.stderr.isatty()
        self.label = label
        self.t0 = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int, name: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self.last < 0.1:
            return
        self.last = now
        width = 30
        filled = int(width * done / total) if total else width
        rate = done / (now - self.t0) if now > self.t0 else 0.0
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {self.label}  {rate:6.1f}/s  {_clip(name, 40):<40}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _report_error(entry: dict) -> None:
    where = entry["file"] + (f":{entry['line']}" if entry.get("line") else "")
    err(f"{where}: {entry['message']}")


def react(coach, show: bool = False) -> int:
    """Let the loop react to what was just stored: the orchestrator consumes `call.scored` (and
    the other events) and runs the transitions (attribute, remediate, verify); with `show`, what
    it did is printed. Returns 0, or 1 after printing why the loop could not react (the calls
    themselves are stored)."""
    try:
        from server.orchestrator import Orchestrator
    except ModuleNotFoundError as exc:  # only while the orchestrator is not installed
        if exc.name == "server.orchestrator":
            log.warning("orchestrator not available: the loop will react on its next run")
            return 0
        raise
    try:
        orch = Orchestrator(coach)
        if show and sys.stderr.isatty():
            pending = orch.pending()
            if pending > 50:
                print(f"the loop is reacting to {pending} new event(s)...", file=sys.stderr, flush=True)
        actions = orch.run_pending()
    except Exception as exc:  # the calls are stored; say what went wrong and how to retry
        log.debug("orchestrator failed", exc_info=True)
        err(f"the calls are stored, but the loop could not react: {exc}; it retries on the next `coachloop` run or in the server")
        return 1
    for a in actions or []:
        log.info("loop: %s", a)
        if show and a.get("text"):
            print(f"loop: {a['text']}")
    return 0


# --------------------------------------------------------------------------- commands


@command
def cmd_score(args: argparse.Namespace) -> int:
    meta = _meta(args)
    with open_coach(args) as coach:
        def on_result(result: dict) -> None:
            if args.json:
                emit_json(json_line(result))
            else:
                print_call(result)
                print()

        files = [f for f in args.files if f != "-"]
        summary = ingest_paths(coach, files, on_result=on_result, on_error=_report_error, **meta) if files else IngestSummary()
        if len(files) < len(args.files):  # "-": one transcript read from standard input
            summary.files += 1
            try:
                result = ingest_file(coach, STDIN_NAME, data=_read_stdin(), **meta)
            except BrokenPipeError:
                raise
            except FILE_ERRORS as exc:
                summary.failed.append(error_entry(STDIN_NAME, exc))
                _report_error(summary.failed[-1])
            else:
                summary.calls.append(result["call"])
                summary.duplicates += result["duplicate"]
                summary.scored += not result["duplicate"]
                on_result(result)
        rc = react(coach, show=not args.json) if summary.scored else 0
        if not args.json and (summary.files > 1 or summary.failed):
            print(f"{summary.scored} scored, {summary.duplicates} already stored, {len(summary.failed)} failed")
        return 1 if summary.failed else rc


STDIN_NAME = "<stdin>"


def _read_stdin() -> bytes:
    """One transcript from standard input, read no further than one byte past the size limit
    (the reader refuses it with the limit named)."""
    if sys.stdin is None or sys.stdin.isatty():
        raise TranscriptError(STDIN_NAME, "'-' reads a transcript from standard input; pipe one in "
                                          "(coachloop score - < call.vtt) or give a file name")
    return sys.stdin.buffer.read(MAX_BYTES + 1)


@command
def cmd_ingest(args: argparse.Namespace) -> int:
    meta = _meta(args)
    if not args.paths and not args.watch:
        raise CLIError("give transcript files, folders or globs to ingest, or --watch INBOX")
    coach = open_coach(args)
    rc = 0
    try:
        if args.paths:
            bar = Progress(not args.json)
            summary = ingest_paths(coach, args.paths, progress=bar, on_error=None if bar.enabled else _report_error,
                                   workers=args.workers, **meta)
            if bar.enabled:
                for entry in summary.failed:
                    _report_error(entry)
            rc = react(coach, show=not args.json) if summary.scored else 0
            if args.json:
                emit_json(summary.as_dict())
            else:
                print(f"{summary.files} file(s): {summary.scored} scored, {summary.duplicates} already stored, "
                      f"{len(summary.failed)} failed")
            if summary.failed:
                rc = 1
        if args.watch:
            stop = threading.Event()

            def on_result(result: dict) -> None:
                if args.json:
                    emit_json(json_line(result))
                else:
                    dup = " (already stored)" if result["duplicate"] else ""
                    print(f"call {result['call']}  {result.get('rep_name')}  {result['scorecard']}  score {result['score']:.2f}  "
                          f"{result.get('source')}{dup}", flush=True)

            if threading.current_thread() is threading.main_thread():
                # a service manager stops with SIGTERM: finish the file in hand, then stop cleanly
                signal.signal(signal.SIGTERM, lambda *_: stop.set())
            if not args.json:
                print(f"watching {args.watch} for transcripts (Ctrl-C to stop)", file=sys.stderr)
            from server.cli.serve_cmds import _start_watcher

            stop_live = _start_watcher(coach)  # the live playbook too: edits served at once, rollouts, re-scoring
            try:
                summary = watch_inbox(coach, args.watch, stop_event=stop, settle=args.settle, on_result=on_result,
                                      on_error=_report_error, on_batch=lambda: react(coach, show=not args.json), **meta)
            except KeyboardInterrupt:
                stop.set()
                return rc
            finally:
                if stop_live is not None:
                    stop_live()
            if not args.json:
                print(f"stopped: {summary.scored} scored, {summary.duplicates} already stored, {summary.skipped} seen before, "
                      f"{len(summary.failed)} failed", file=sys.stderr)
        return rc
    finally:
        coach.close()


@command
def cmd_rescore(args: argparse.Namespace) -> int:
    with open_coach(args) as coach:
        bar = Progress(not args.json)
        result = rescore(coach, args.scorecard_id, since=args.since, progress=lambda d, t: bar(d, t), force=args.force)
        rc = react(coach, show=not args.json) if result["changed_calls"] else 0
        if args.json:
            emit_json(result)
            return rc
        print(f"rescored {result['rescored']} of {result['calls']} call(s) of {result['scorecard']}@{result['version'][:8]} "
              f"({result['skipped']} already current; {result['changed_calls']} changed)"
              + (" [resumed]" if result["resumed"] else ""))
        for f in result["flips"]:
            note = "  (overridden: human verdict kept)" if f["overridden"] else ""
            print(f"  call {f['call']:<6} {f['rep']:<20} {f['line']:<28} {f['engine_before']} -> {f['engine_after']}{note}")
        if result["by_line"]:
            print("flips by line:")
            for line, counts in sorted(result["by_line"].items()):
                print(f"  {line:<28} " + ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())))
        return rc


@command
def cmd_override(args: argparse.Namespace) -> int:
    with open_coach(args) as coach:
        if args.export_tests:
            if args.call or args.verdict:
                raise CLIError("--export-tests writes files only; record an override in a separate command")
            paths = export_disputed(coach, args.export_tests, scorecard_id=args.scorecard_id)
            if args.json:
                emit_json({"files": [str(p) for p in paths]})
            else:
                print(f"wrote {len(paths)} rubric test(s) to {args.export_tests}")
                for p in paths:
                    print(f"  {p}")
                if paths:
                    print("copy them into your playbook's scorecards/tests/ and run `coachloop test`")
            return 0
        missing = [n for n, v in (("CALL", args.call), ("LINE", args.line), ("--verdict", args.verdict), ("--reason", args.reason)) if not v]
        if missing:
            raise CLIError(f"override needs {', '.join(missing)}: coachloop override CALL LINE --verdict pass|fail|na --reason TEXT")
        result = override(coach, args.call, args.line, args.verdict, args.reason, args.by, turn=args.turn)
        rc = react(coach, show=not args.json)
        if args.json:
            emit_json(result)
        else:
            print(f"call {result['call']} {result['line']}: {result['before']} -> {result['verdict']} "
                  f"(engine: {result['engine_verdict']}) by {result['by']}: {result['reason']}; score now {result['score']:.2f}")
            ex = result.get("example") or {}
            if ex.get("written"):
                print(f"learned: {ex['verdict']} example {ex['text']!r} -> {ex['file']}" + ("" if ex.get("added") else " (already there)"))
            if ex.get("note"):
                print(ex["note"] if not ex.get("written") else f"  {ex['note']}")
        return rc


@command
def cmd_calls(args: argparse.Namespace) -> int:
    with open_coach(args) as coach:
        rows = list_calls(coach, rep=args.rep, scorecard_id=args.scorecard_id, since=args.since)
        if args.limit:
            rows = rows[-args.limit:]
        if args.json:
            for r in rows:
                emit_json(r)
            return 0
        if not rows:
            print("no calls stored (score some with `coachloop score FILE`)")
        for r in rows:
            print(f"call {r['id']:<6} {r['occurred_at'] or '':<26} {r['rep_id']:<20} {r['call_type']:<10} "
                  f"{r['scorecard_id'] or '':<12} score {r['score'] or 0:.2f}  {r['source_name'] or ''}")
        return 0


@command
def cmd_call(args: argparse.Namespace) -> int:
    with open_coach(args) as coach:
        result = get_call(coach, args.call, turns=args.turns)
        if args.json:
            emit_json(result)
            return 0
        print_call(result)
        if args.turns:
            print()
            for i, t in enumerate(result["turns"]):
                print(f"  [{i}] {t['speaker']} ({t.get('role')}): {t['text']}")
        return 0
