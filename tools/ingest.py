"""Ingest: score every transcript in files, folders and globs, or dropped into an inbox folder.

    expand_paths(["calls/", "exports/*.vtt", "one.json"]) -> (files, problems)
    ingest_paths(coach, paths, rep=..., call_type=..., progress=cb) -> summary
    watch_inbox(coach, inbox, stop_event=ev)                        -> summary when stopped

A bad file never stops a batch: its error (file, line, message) is reported and the rest go on.
Each file is recorded in `ingested_files` by the hash of its bytes with its status (`scored`,
`duplicate` or `failed` + the error), which is how the inbox scores every file exactly once
across restarts.
"""
from __future__ import annotations

import glob
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from playbook.loader import PlaybookError
from store.db import StoreError, now_iso
from store.deals import parse_when
from store.reps import roster
from tools.calls import pick_engine, prepare_call, rep_names, score_call, store_prepared
from tools.scoring import tune_gc_for_scoring_worker
from tools.transcripts import MAX_BYTES, TranscriptError, decode_bytes, read_transcript

log = logging.getLogger("coachloop")

TRANSCRIPT_SUFFIXES = {".txt", ".text", ".vtt", ".srt", ".json", ".md"}
META_KEYS = ("rep", "call_type", "scorecard_id", "segment", "deal_id", "stage", "occurred_at", "fmt", "live", "engine")
# the errors a bad file can raise; anything else is a bug and is reported with its type
FILE_ERRORS = (TranscriptError, StoreError, PlaybookError, ValueError, OSError, UnicodeDecodeError)


@dataclass
class IngestSummary:
    files: int = 0
    scored: int = 0
    duplicates: int = 0
    skipped: int = 0  # already ingested (inbox: the same bytes seen before)
    failed: list[dict] = field(default_factory=list)  # [{file, line, message}]
    calls: list[int] = field(default_factory=list)  # call ids, in file order (duplicates included)

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict:
        return {"files": self.files, "scored": self.scored, "duplicates": self.duplicates, "skipped": self.skipped,
                "failed": self.failed, "calls": self.calls}


def _check_meta(coach, meta: dict) -> None:
    """Metadata that is wrong for every file is one error up front, not one per file."""
    bad = [k for k in meta if k not in META_KEYS]
    if bad:
        raise TypeError(f"unknown call metadata: {', '.join(bad)} (known: {', '.join(META_KEYS)})")
    if meta.get("occurred_at"):
        parse_when(meta["occurred_at"], "occurred_at")
    if meta.get("scorecard_id"):
        coach.playbook.scorecard(meta["scorecard_id"])
    elif meta.get("call_type"):
        coach.playbook.scorecard_for(meta["call_type"])


def _is_glob(s: str) -> bool:
    return any(ch in s for ch in "*?[")


def _candidates(folder: Path) -> list[Path]:
    out = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for n in sorted(names):
            p = Path(root) / n
            if not n.startswith(".") and p.suffix.lower() in TRANSCRIPT_SUFFIXES:
                out.append(p)
    return out


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[dict]]:
    """Files named, the transcript files inside folders (recursively: .txt .vtt .srt .json .md),
    and glob matches (`**` recurses). Returns (files in order, without repeats; problems for names
    that match nothing)."""
    files: list[Path] = []
    seen: set[str] = set()
    problems: list[dict] = []

    def add(p: Path) -> None:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            files.append(p)

    for raw in paths:
        s = str(raw)
        p = Path(s).expanduser()
        if p.is_dir():
            found = _candidates(p)
            if not found:
                problems.append({"file": s, "line": None, "message": f"folder holds no transcript files ({', '.join(sorted(TRANSCRIPT_SUFFIXES))})"})
            for f in found:
                add(f)
        elif p.is_file():
            add(p)
        elif _is_glob(s):
            matches = sorted(glob.glob(os.path.expanduser(s), recursive=True))
            hits = []
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    hits.extend(_candidates(mp))
                elif mp.is_file():
                    hits.append(mp)
            if not hits:
                problems.append({"file": s, "line": None, "message": "no file matches this pattern"})
            for f in hits:
                add(f)
        else:
            problems.append({"file": s, "line": None, "message": "no such file or folder"})
    return files, problems


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def error_entry(path: str, exc: BaseException) -> dict:
    if isinstance(exc, TranscriptError):
        return {"file": path, "line": exc.line, "message": exc.detail}
    msg = str(exc) if isinstance(exc, FILE_ERRORS) else f"{type(exc).__name__}: {exc}"
    return {"file": path, "line": None, "message": msg}


def _record(coach, path: str, digest: str, status: str, call_id: int | None, error: str | None) -> None:
    with coach.store.transaction() as db:
        db.execute(
            "insert into ingested_files (path, content_hash, call_id, status, error, at) values (?, ?, ?, ?, ?, ?)"
            " on conflict(content_hash) do update set path = excluded.path, call_id = excluded.call_id,"
            " status = excluded.status, error = excluded.error, at = excluded.at",
            [path, digest, call_id, status, error, now_iso()],
        )


def ingest_file(coach, path: str | Path, *, data: bytes | None = None, **meta: Any) -> dict:
    """Read, score and store one transcript file; record it in `ingested_files`.
    Returns the `score_call` result. Raises the file's error (after recording it)."""
    spath = str(path)
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise TranscriptError(spath, f"cannot read: {exc.strerror or exc}") from None
    digest = file_hash(data)
    try:
        fmt = meta.pop("fmt", None)
        transcript = _read_bytes(data, spath, fmt)
        result = score_call(coach, transcript, source_name=spath, **meta)
    except FILE_ERRORS as exc:
        entry = error_entry(spath, exc)
        _record(coach, spath, digest, "failed", None, (f"line {entry['line']}: " if entry["line"] else "") + entry["message"])
        raise
    _record(coach, spath, digest, "duplicate" if result["duplicate"] else "scored", result["call"], None)
    return result


def _read_bytes(data: bytes, source: str, fmt: str | None):
    """What read_path does, on bytes already in hand (the inbox hashes exactly what it parses)."""
    if len(data) > MAX_BYTES:
        raise TranscriptError(source, f"file is {len(data) / 1048576:.1f} MB, over the {MAX_BYTES // 1048576} MB "
                                      "limit for one transcript; split it into one file per call")
    return read_transcript(decode_bytes(data, source), source=source, fmt=fmt)


def ingest_paths(
    coach,
    paths: Iterable[str | Path],
    *,
    progress: Callable[[int, int, str], None] | None = None,
    on_result: Callable[[dict], None] | None = None,
    on_error: Callable[[dict], None] | None = None,
    chunk: int = 200,
    workers: int | None = None,
    **meta: Any,
) -> IngestSummary:
    """Score every transcript in `paths` (files, folders, globs) with the same call metadata
    (`rep`, `call_type`, `scorecard_id`, `segment`, `deal_id`, `stage`, `occurred_at`, `fmt`,
    `live`, `engine`).

    Reading, parsing and scoring run in `workers` processes (default: one per CPU for batches of
    50 files or more with the offline engine, else in this process); storing runs here, one
    transaction per `chunk` calls with each call in its own savepoint, so a call that fails leaves
    nothing behind and the rest of the chunk commits. `progress(done, total, file)` after each
    file; `on_result(result)` / `on_error({file, line, message})` as they happen, in file order."""
    _check_meta(coach, meta)
    files, problems = expand_paths(paths)
    summary = IngestSummary(files=len(files))
    for prob in problems:
        summary.failed.append(prob)
        if on_error:
            on_error(prob)
    total = len(files)
    engine_name, client = pick_engine(coach, meta.get("engine"))
    n = _worker_count(workers, total, engine_name)

    # Callbacks run after their chunk's transaction commits, in file order: a result is only
    # reported once it is stored, and a reader that goes away (a broken pipe) cannot undo a chunk.
    told: list[tuple[Callable[[dict], None] | None, dict]] = []

    def tell() -> None:
        for fn, payload in told:
            if fn:
                fn(payload)
        told.clear()

    def ok(result: dict) -> None:
        summary.calls.append(result["call"])
        if result["duplicate"]:
            summary.duplicates += 1
        else:
            summary.scored += 1
        told.append((on_result, result))

    def failed(entry: dict) -> None:
        summary.failed.append(entry)
        told.append((on_error, entry))

    def fail(path: str, exc: BaseException) -> None:
        failed(error_entry(path, exc))

    store = coach.store
    if n <= 1:
        for start in range(0, total, max(1, chunk)):
            with store.transaction():
                for i, f in enumerate(files[start:start + chunk], start=start + 1):
                    try:
                        ok(ingest_file(coach, f, **meta))
                    except FILE_ERRORS as exc:
                        fail(str(f), exc)
                    if progress:
                        progress(i, total, str(f))
            tell()
        return summary

    prep_meta = {k: meta.get(k) for k in ("rep", "call_type", "scorecard_id", "occurred_at", "fmt")}
    prep_meta["rep_names"] = rep_names(store, meta.get("rep"))
    prep_meta["engine"] = engine_name
    store_meta = {k: meta[k] for k in ("rep", "segment", "deal_id", "stage", "live") if k in meta}
    ctx = _mp_context()
    with ctx.Pool(n, initializer=_worker_init, initargs=(coach.playbook, roster(store), prep_meta)) as pool:
        # bigger chunks mean fewer messages for this process to handle while it writes; small
        # batches keep small chunks so both workers get a share
        chunksize = max(1, min(32, total // (n * 8)))
        results = pool.imap(_worker_prepare, [str(f) for f in files], chunksize=chunksize)
        done = 0
        while done < total:
            with store.transaction():
                for _ in range(min(chunk, total - done)):
                    status, path, digest, payload = next(results)
                    done += 1
                    try:
                        if status == "ok":
                            result = store_prepared(coach, payload, **store_meta)
                            _record(coach, path, digest, "duplicate" if result["duplicate"] else "scored", result["call"], None)
                            ok(result)
                        elif status == "retry":  # the rep may be on the roster by now: do it here
                            ok(ingest_file(coach, path, **meta))
                        else:
                            if digest:
                                _record(coach, path, digest, "failed", None, _entry_text(payload))
                            failed(payload)
                    except FILE_ERRORS as exc:
                        if status == "ok":
                            _record(coach, path, digest, "failed", None, str(exc))
                        fail(path, exc)
                    if progress:
                        progress(done, total, path)
            tell()
    return summary


def _entry_text(entry: dict) -> str:
    return (f"line {entry['line']}: " if entry.get("line") else "") + entry["message"]


def _worker_count(workers: int | None, total: int, engine: str) -> int:
    if workers is not None:
        return max(1, min(int(workers), max(1, total)))
    if engine != "offline" or total < 50:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def _mp_context():
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


_WORKER: dict[str, Any] = {}


def _worker_init(playbook, roster_names: list[str], prep_meta: dict) -> None:
    logging.getLogger("coachloop").setLevel(logging.ERROR)
    tune_gc_for_scoring_worker()
    _WORKER.update(playbook=playbook, roster=roster_names, meta=prep_meta)


def _worker_prepare(path: str) -> tuple[str, str, str, Any]:
    """In a worker: read, parse and score one file. ("ok", path, digest, PreparedCall),
    ("retry", ...) when the rep could not be told from a roster snapshot, or ("error", ..., entry)."""
    meta = dict(_WORKER["meta"])
    digest = ""
    try:
        data = Path(path).read_bytes()
        digest = file_hash(data)
        transcript = _read_bytes(data, path, meta.pop("fmt", None))
        prep = prepare_call(_WORKER["playbook"], transcript, _WORKER["roster"], rep=meta["rep"], rep_names=meta["rep_names"],
                            call_type=meta["call_type"], scorecard_id=meta["scorecard_id"],
                            occurred_at=meta["occurred_at"], engine=meta["engine"], source_name=path)
        return "ok", path, digest, prep
    except TranscriptError as exc:
        if not meta.get("rep") and "which speaker is the rep" in str(exc):
            return "retry", path, digest, None
        return "error", path, digest, error_entry(path, exc)
    except Exception as exc:  # one bad file never stops the batch
        return "error", path, digest, error_entry(path, exc)


# --------------------------------------------------------------------------- the inbox


def _sig(p: Path) -> tuple[int, int] | None:
    try:
        st = p.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def watch_inbox(
    coach,
    inbox: str | Path,
    *,
    stop_event: threading.Event | None = None,
    settle: float = 1.0,
    on_result: Callable[[dict], None] | None = None,
    on_error: Callable[[dict], None] | None = None,
    on_batch: Callable[[], None] | None = None,
    on_skip: Callable[[str], None] | None = None,
    rescan: float = 5.0,
    force_polling: bool | None = None,
    **meta: Any,
) -> IngestSummary:
    """Score every transcript dropped into `inbox` (created if missing), exactly once, until
    `stop_event` is set (or Ctrl-C). Files already in the inbox are scored at start unless their
    bytes were ingested before (by any run: `ingested_files`). A file is read once its size and
    time have not changed for `settle` seconds, so a half-written file waits until it is
    complete. A file that fails is recorded with its error and retried only when its content
    changes (or on the next start). The folder is also re-listed every `rescan` seconds, in case
    the file system dropped an event. `on_batch()` runs after each group of files (the CLI lets the
    loop react there); `on_skip(path)` for a file whose bytes were ingested before."""
    import watchfiles

    _check_meta(coach, meta)
    pick_engine(coach, meta.get("engine"))
    root = Path(inbox).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    summary = IngestSummary()
    pending: dict[Path, tuple[tuple[int, int] | None, float]] = {}  # path -> (signature, time it was last seen changing)
    failed_now: set[str] = set()  # content hashes that failed in this run
    handled: dict[Path, tuple[int, int] | None] = {}  # path -> signature when last read
    failed_at: dict[Path, tuple[int, int] | None] = {}  # failed files -> signature: re-checked every tick

    def want(p: Path) -> bool:
        return p.suffix.lower() in TRANSCRIPT_SUFFIXES and not p.name.startswith(".") and not p.name.endswith(".tmp")

    def note(p: Path) -> None:
        if want(p):
            pending[p] = (_sig(p), time.monotonic())

    def done_before(digest: str) -> bool:
        row = coach.store.one("select status from ingested_files where content_hash = ?", [digest])
        return row is not None and row["status"] in ("scored", "duplicate")

    def process_ready() -> None:
        # a failed file (often one still being written) is looked at again as soon as it changes,
        # even if the watcher's event for that change was lost (polling file systems)
        for p, sig in list(failed_at.items()):
            cur = _sig(p)
            if cur != sig:
                failed_at.pop(p, None)
                if cur is not None and p not in pending:
                    pending[p] = (cur, time.monotonic())
        now = time.monotonic()
        worked = False
        for p, (sig, seen) in list(pending.items()):
            if stop_event is not None and stop_event.is_set():
                break  # stop promptly; the files left are picked up on the next start
            cur = _sig(p)
            if cur is None:  # removed before it was read
                pending.pop(p, None)
                continue
            if cur != sig:  # still being written
                pending[p] = (cur, now)
                continue
            if now - seen < settle:
                continue
            pending.pop(p, None)
            handled[p] = cur
            try:
                data = p.read_bytes()
            except OSError as exc:
                log.warning("inbox: cannot read %s: %s", p, exc)
                continue
            if _sig(p) != cur:  # changed while reading: wait for it to settle again
                pending[p] = (_sig(p), time.monotonic())
                handled.pop(p, None)
                continue
            digest = file_hash(data)
            if done_before(digest) or digest in failed_now:
                summary.skipped += 1
                if on_skip:
                    on_skip(str(p))
                continue
            summary.files += 1
            worked = True
            try:
                result = ingest_file(coach, p, data=data, **dict(meta))
            except FILE_ERRORS as exc:
                entry = error_entry(str(p), exc)
                failed_now.add(digest)
                failed_at[p] = cur
                summary.failed.append(entry)
                log.warning("inbox: %s%s: %s", p, f":{entry['line']}" if entry["line"] else "", entry["message"])
                if on_error:
                    on_error(entry)
                continue
            summary.calls.append(result["call"])
            if result["duplicate"]:
                summary.duplicates += 1
            else:
                summary.scored += 1
            if on_result:
                on_result(result)
        if worked and on_batch:
            try:
                on_batch()
            except Exception:  # the loop reacting must not stop the inbox
                log.exception("inbox: after-batch hook failed")

    def scan() -> None:
        # files already there (or missed by the watcher): ready as soon as they are stable
        for f in _candidates(root):
            if f not in pending and handled.get(f) != _sig(f):
                pending[f] = (_sig(f), time.monotonic() - settle)

    tick = max(50, int(min(settle, 1.0) * 1000 / 2))
    last_scan = None
    try:
        # the first scan runs once the watcher is running, so nothing dropped in between is missed
        for changes in watchfiles.watch(root, stop_event=stop_event, rust_timeout=tick, yield_on_timeout=True,
                                        debounce=tick, step=min(50, tick), force_polling=force_polling,
                                        raise_interrupt=False):
            for change, raw in changes:
                if change != watchfiles.Change.deleted:
                    note(Path(raw))
            if last_scan is None or time.monotonic() - last_scan > rescan:
                scan()
                last_scan = time.monotonic()
            process_ready()
            if stop_event is not None and stop_event.is_set():
                break
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        pass
    return summary
