"""The live playbook: versions recorded, changes turned into loop events, the watcher wired to a Coach.

- `sync_playbook(coach)` records every artifact version the Coach serves (`store.versions`,
  content-addressed) and compares it with the live pointer kept in the store: each artifact whose
  version changed gets one `playbook.changed` event {kind, id, version, previous, path, landed_at}
  (`playbook.removed` when its file went away). Broken files get `playbook.invalid` {file,
  problems, serving} once per file content, and `playbook.recovered` once they load again. The
  first sync of a fresh database is a baseline: it records versions silently, except for paths and
  scenarios that carry a `rollout:` block (they have work to do).
- `enable_live(coach)` registers that sync as a Coach listener (after every `reload()`) and runs
  it once. The orchestrator runs the same sync before it reads the event log, so a file changed
  while no server ran is picked up by the next `coachloop run`.
- `handle_playbook_changed(coach, event)` is what the orchestrator does with `playbook.changed`:
  a path/scenario with a rollout block is rolled out (`tools.rollout`), a scorecard's changed lines
  queue a background re-score and its removed lines close their gaps (`tools.rubric_change`).
- `LiveService(coach, run_events=...)` runs the `PlaybookWatcher` on `coach.reload` plus a worker
  thread that, after each change (and every `poll_seconds`), runs the orchestrator's pending events
  (the callable the server passes in; tools never import the server) and the pending re-scoring
  jobs. `start()` / `stop(timeout)`.
- `artifact_text(coach, kind, id, version)` and `scorecard_diff(...)`: the exact text any verdict,
  assignment or certification was made under, and what changed between two scorecard versions.
- `artifact_problems(coach_or_playbook, kind, id)`: the current problems of one artifact's file,
  for a tool answer that touches it.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import logging
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from playbook.loader import POLICY_FILE, Playbook, content_version
from playbook.models import KINDS
from playbook.watch import PlaybookWatcher
from store import versions as vstore
from store.db import StoreError, iso_ms

log = logging.getLogger("coachloop")

POLICY_ID = "playbook"


# --------------------------------------------------------------------------- sync


def _landed_at(root: Path, rel: str, now: datetime) -> str:
    """When the file landed: its modification time (never later than now)."""
    try:
        mt = datetime.fromtimestamp((root / rel).stat().st_mtime, timezone.utc)
        return iso_ms(min(mt, now))
    except OSError:
        return iso_ms(now)


def _file_hash(root: Path, rel: str) -> str:
    try:
        return hashlib.sha256((root / rel).read_bytes()).hexdigest()[:16]
    except OSError:
        return "missing"


def _versions(pb: Playbook) -> dict[str, str]:
    """{"kind/id": version} of everything served (and the policy), without touching the disk."""
    out = {f"{kind}/{aid}": art.version for kind in KINDS for aid, art in pb.artifacts.get(kind, {}).items()}
    if pb.policy_version not in ("default", ""):
        out[f"policy/{POLICY_ID}"] = pb.policy_version
    return out


def _snapshot(pb: Playbook) -> dict[str, tuple[str, str, str, str, str]]:
    """{"kind/id": (kind, id, version, path, text)} for every artifact served (and the policy)."""
    out: dict[str, tuple[str, str, str, str, str]] = {}
    for kind in KINDS:
        for aid, art in sorted(pb.artifacts.get(kind, {}).items()):
            out[f"{kind}/{aid}"] = (kind, aid, art.version, art.path, art.text)
    ppath = pb.root / POLICY_FILE
    if pb.policy_version not in ("default", "") and ppath.exists():
        try:
            raw = ppath.read_bytes()
            if content_version(raw) == pb.policy_version:  # not a broken edit served from before
                out[f"policy/{POLICY_ID}"] = ("policy", POLICY_ID, pb.policy_version, POLICY_FILE, raw.decode("utf-8"))
        except (OSError, UnicodeDecodeError):
            pass
    return out


def _in_sync(coach, pb: Playbook, pointer: dict) -> bool:
    """Has this playbook (this very object) been recorded as served, problems included?"""
    return getattr(coach, "_live_synced", None) is pb and pointer == _versions(pb) and \
        set(vstore.invalid_files(coach.store)) == {p.file for p in pb.problems}


def sync_playbook(coach, *, force: bool = False) -> dict:
    """Record the served versions and append the change events (see the module docstring).

    Cheap when nothing changed (two small reads, no file access). Safe inside an outer
    transaction: if that rolls back, the next sync finds the pointer unchanged and does it again.
    Returns {changed: [event ids], removed, invalid, recovered, new_versions}."""
    pb = coach.playbook
    store = coach.store
    out: dict[str, list] = {"changed": [], "removed": [], "invalid": [], "recovered": [], "new_versions": []}
    if not force and _in_sync(coach, pb, vstore.live_pointer(store)):
        return out  # the common case, after every scored call: plain reads, no write lock
    with store.transaction():
        pointer = vstore.live_pointer(store)
        if not force and _in_sync(coach, pb, pointer):  # another writer recorded it meanwhile
            return out
        now = datetime.now(timezone.utc)
        snap = _snapshot(pb)
        baseline = not vstore.has_live_pointer(store)
        out["new_versions"] = vstore.record_many(store, [v for _k, v in sorted(snap.items())], first_seen=iso_ms(now))
        new_pointer = dict(pointer)
        for key, (kind, aid, version, path, _text) in sorted(snap.items()):
            prev = pointer.get(key)
            if prev == version:
                continue
            new_pointer[key] = version
            if baseline and not (kind in ("paths", "scenarios") and getattr(pb.get(kind, aid).model, "rollout", None) is not None):
                continue
            stale = f"{kind}/{aid}" in pb.stale
            eid = store.event(
                "playbook.changed",
                subject=f"{kind}/{aid}",
                data={"kind": kind, "id": aid, "version": version, "previous": prev, "path": path,
                      "landed_at": _landed_at(pb.root, path, now), "added": prev is None, "stale": stale},
            )
            out["changed"].append(eid)
            log.info("playbook: %s/%s is now version %s%s", kind, aid, version, f" (was {prev})" if prev else " (new)")
        for key in sorted(set(pointer) - set(_versions(pb))):  # gone (a broken policy file is still served)
            kind, aid = key.split("/", 1)
            new_pointer.pop(key, None)
            eid = store.event("playbook.removed", subject=key, data={"kind": kind, "id": aid, "previous": pointer[key]})
            out["removed"].append(eid)
            log.info("playbook: %s removed (last version %s)", key, pointer[key])
        if new_pointer != pointer or baseline:
            vstore.set_live_pointer(store, new_pointer)
        _report_problems(coach, pb, out)
    coach._live_synced = pb
    return out


def _report_problems(coach, pb: Playbook, out: dict) -> None:
    store = coach.store
    before = vstore.invalid_files(store)
    by_file: dict[str, list] = {}
    for p in pb.problems:
        by_file.setdefault(p.file, []).append(p)
    now_bad: dict[str, str] = {}
    for file, probs in sorted(by_file.items()):
        h = _file_hash(pb.root, file)
        now_bad[file] = h
        if before.get(file) == h:
            continue  # reported already for this content
        serving = [a.ref for kind in KINDS for a in pb.artifacts.get(kind, {}).values() if a.path == file]
        first = probs[0]
        eid = store.event(
            "playbook.invalid",
            subject=f"file:{file}",
            data={"file": file, "field": first.field, "line": first.line, "message": first.message,
                  "problems": [p.as_dict() for p in probs], "serving": serving, "content": h},
        )
        out["invalid"].append(eid)
        msg = "; ".join(str(p) for p in probs[:5])
        keep = f" (still serving the last good version: {', '.join(serving)})" if serving else ""
        log.warning("playbook: invalid edit in %s: %s%s", file, msg, keep)
    for file in sorted(set(before) - set(now_bad)):
        serving = [a.ref for kind in KINDS for a in pb.artifacts.get(kind, {}).values() if a.path == file]
        exists = (pb.root / file).exists()
        eid = store.event("playbook.recovered", subject=f"file:{file}",
                          data={"file": file, "serving": serving, "removed": not exists})
        out["recovered"].append(eid)
        log.warning("playbook: %s %s", file, "is valid again" + (f": serving {', '.join(serving)}" if serving else "") if exists else "was removed")
    if now_bad != before:
        vstore.set_invalid_files(store, now_bad)


def enable_live(coach) -> None:
    """Record versions and emit change events after every reload of this Coach (idempotent)."""
    if getattr(coach, "_live_enabled", False):
        return
    coach._live_enabled = True

    def _listener(old: Playbook, new: Playbook) -> None:
        sync_playbook(coach)
        for fn in list(getattr(coach, "_live_wake", [])):
            fn()

    coach.listeners.append(_listener)
    sync_playbook(coach)


# --------------------------------------------------------------------------- orchestrator hooks


def handle_playbook_changed(coach, ev: dict) -> list[dict]:
    """The orchestrator's step for `playbook.changed`: rollouts and rubric changes."""
    from . import rollout, rubric_change

    kind = (ev.get("data") or {}).get("kind")
    if kind in rollout.ROLLOUT_KINDS:
        return rollout.on_changed(coach, ev)
    if kind == "scorecards":
        return rubric_change.plan_change(coach, ev)
    return []


def handle_playbook_removed(coach, ev: dict) -> list[dict]:
    """The orchestrator's step for `playbook.removed`: a removed scorecard's open gaps close."""
    from . import rubric_change

    if (ev.get("data") or {}).get("kind") == "scorecards":
        return rubric_change.plan_removal(coach, ev)
    return []


def observe(coach, ev: dict) -> list[dict]:
    """Run after the orchestrator handled any event (same transaction): rollout progress."""
    from . import rollout

    return rollout.observe(coach, ev)


# --------------------------------------------------------------------------- the live service


class LiveService:
    """Watcher + worker: a saved change is served within a second, and the loop reacts to it
    (rollouts, re-scoring) with no human step. See the module docstring."""

    def __init__(self, coach, *, run_events: Callable[[], Any] | None = None, debounce_ms: int = 80,
                 poll_seconds: float = 2.0, job_chunk: int = 100, watch: bool = True):
        self.coach = coach
        self.run_events = run_events
        self.poll_seconds = poll_seconds
        self.job_chunk = job_chunk
        self.watcher = PlaybookWatcher(coach.reload, coach.playbook_dir, debounce_ms=debounce_ms) if watch else None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cycles = 0
        self.last_error: BaseException | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> "LiveService":
        enable_live(self.coach)
        wakers = getattr(self.coach, "_live_wake", None)
        if wakers is None:
            wakers = self.coach._live_wake = []
        wakers.append(self.wake)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="coachloop-live-worker", daemon=True)
        self._thread.start()
        if self.watcher is not None:
            self.watcher.start()
        self.wake()  # catch up on anything pending from before the start
        return self

    def stop(self, timeout: float = 3.0) -> bool:
        """Stop the watcher and the worker (a running re-score stops after its current chunk)."""
        self._stop.set()
        self._wake.set()
        ok = True
        if self.watcher is not None:
            ok = self.watcher.stop(timeout / 2) and ok
        if self._thread is not None:
            self._thread.join(timeout / 2)
            ok = ok and not self._thread.is_alive()
        try:
            self.coach._live_wake.remove(self.wake)
        except (AttributeError, ValueError):
            pass
        return ok

    def __enter__(self) -> "LiveService":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def run_once(self) -> None:
        """One worker cycle: sync, pending events, pending re-scoring jobs (then events they made)."""
        from .rubric_change import run_pending_jobs

        sync_playbook(self.coach)
        if self.run_events is not None:
            self.run_events()
        jobs = run_pending_jobs(self.coach, chunk=self.job_chunk, stop=self._stop.is_set)
        if jobs and self.run_events is not None and not self._stop.is_set():
            self.run_events()
        self.cycles += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_once()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - the server keeps running; logged, retried next cycle
                self.last_error = exc
                log.error("live playbook worker: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))


def start_live(coach, *, run_events: Callable[[], Any] | None = None, **kw: Any) -> LiveService:
    """Start the watcher and the worker for a Coach; returns the service (call `.stop()`)."""
    return LiveService(coach, run_events=run_events, **kw).start()


# --------------------------------------------------------------------------- versions and diffs


def artifact_text(coach, kind: str, artifact_id: str, version: str | None = None) -> dict:
    """The exact text of an artifact version: {kind, id, version, path, text, live, first_seen}.
    Without `version`, the version served now. Unknown versions raise StoreError listing the known."""
    kind = vstore.norm_kind(kind)
    pb = coach.playbook
    if kind == "policy":
        artifact_id = POLICY_ID
        cur = _snapshot(pb).get(f"policy/{POLICY_ID}")
        current = (cur[2], cur[3], cur[4]) if cur else None
    else:
        art = pb.get(kind, artifact_id)
        current = (art.version, art.path, art.text) if art else None
    if current is not None and (version is None or (len(version) >= 4 and current[0].startswith(version))):
        row = coach.store.one("select first_seen from artifact_versions where kind = ? and artifact_id = ? and version = ?",
                              (kind, artifact_id, current[0]))
        return {"kind": kind, "id": artifact_id, "version": current[0], "path": current[1], "text": current[2], "live": True,
                "first_seen": row["first_seen"] if row else None}
    if version is None:
        raise StoreError(f"{kind}/{artifact_id} is not in the playbook now; pass a version (list them with "
                         f"`coachloop show-version {kind} {artifact_id} --list`)")
    row = vstore.get_version_row(coach.store, kind, artifact_id, version)
    return {"kind": kind, "id": artifact_id, "version": row["version"], "path": row["path"], "text": row["text"], "live": False,
            "first_seen": row["first_seen"]}


def artifact_versions(coach, kind: str, artifact_id: str) -> list[dict]:
    """Every stored version of an artifact, oldest first ({version, path, first_seen, bytes, live})."""
    sync_playbook(coach)
    return vstore.list_versions(coach.store, kind, artifact_id)


def scorecard_diff(coach, scorecard_id: str, v1: str | None = None, v2: str | None = None, *, context: int = 3) -> dict:
    """What changed in a scorecard between two versions (default: the previous one vs the one served now).

    Returns {scorecard, from: {version, path, first_seen}, to: {...}, unified (str), lines: {added,
    removed, changed: [{id, fields, before, after}], unchanged}, scorecard_fields, summary: [str]}."""
    from .rubric_change import line_changes, parse_scorecard

    sync_playbook(coach)
    store = coach.store
    versions = vstore.list_versions(store, "scorecards", scorecard_id)
    if not versions:
        known = ", ".join(sorted(coach.playbook.artifacts.get("scorecards", {}))) or "none"
        raise StoreError(f"unknown scorecard '{scorecard_id}' (scorecards: {known})")
    b = artifact_text(coach, "scorecards", scorecard_id, v2)
    if v1 is None:
        # the version that was live before this one (a revert makes an older text current again) ...
        ev = store.one("select data from events where type = 'playbook.changed' and subject = ? and"
                       " json_extract(data, '$.version') = ? order by id desc limit 1", (f"scorecards/{scorecard_id}", b["version"]))
        prev = (json.loads(ev["data"]) or {}).get("previous") if ev else None
        order = [v["version"] for v in versions]
        if prev in order:
            order = [prev, b["version"]]
        # ... else the one stored before it
        idx = order.index(b["version"]) if b["version"] in order else len(order)
        if idx == 0:
            raise StoreError(f"scorecard '{scorecard_id}' has only one stored version ({b['version']}) before or at "
                             f"{b['version']}: nothing to compare; edit the file and let the server (or `coachloop run`) record it")
        a = artifact_text(coach, "scorecards", scorecard_id, order[idx - 1])
    else:
        a = artifact_text(coach, "scorecards", scorecard_id, v1)
    unified = "".join(difflib.unified_diff(
        a["text"].splitlines(keepends=True), b["text"].splitlines(keepends=True),
        fromfile=f"{a['path']}@{a['version']}", tofile=f"{b['path']}@{b['version']}", n=context))
    old, new = parse_scorecard(a["text"], a["path"]), parse_scorecard(b["text"], b["path"])
    ch = line_changes(old, new) if old is not None and new is not None else {
        "added": [], "removed": [], "changed": [], "unchanged": [], "scorecard_fields": [], "rescore_all": False}
    summary = [f"+ line {lid} added" for lid in ch["added"]]
    summary += [f"- line {lid} removed" for lid in ch["removed"]]
    summary += [f"~ line {c['id']} changed: {', '.join(c['fields'])}" for c in ch["changed"]]
    if ch["scorecard_fields"]:
        summary.append("~ scorecard fields changed: " + ", ".join(ch["scorecard_fields"]))
    if not summary:
        summary.append("no rubric change (formatting or comments only)" if unified else "identical versions")
    meta = lambda x: {"version": x["version"], "path": x["path"], "first_seen": x["first_seen"], "live": x["live"]}  # noqa: E731
    return {"scorecard": scorecard_id, "from": meta(a), "to": meta(b), "unified": unified,
            "lines": {k: ch[k] for k in ("added", "removed", "changed", "unchanged")},
            "scorecard_fields": ch["scorecard_fields"], "rescore_all": ch["rescore_all"], "summary": summary}


# --------------------------------------------------------------------------- problems per artifact


def artifact_problems(source, kind: str, artifact_id: str | None = None, *, file: str | None = None) -> list[dict]:
    """Current problems of one artifact's file (or of `file`), each {file, line, field, message,
    serving}: `serving` names the last good version when the broken file is not what is served."""
    pb: Playbook = source.playbook if hasattr(source, "playbook") else source
    kind = vstore.norm_kind(kind)
    files = set()
    serving = None
    if file:
        files.add(file)
    if artifact_id is not None and kind != "policy":
        art = pb.get(kind, artifact_id)
        if art is not None:
            files.add(art.path)
            if f"{kind}/{artifact_id}" in pb.stale:
                serving = art.ref
        else:
            files |= {f"{kind}/{artifact_id}{ext}" for ext in (".yaml", ".yml", ".md")}
    if kind == "policy":
        files.add(POLICY_FILE)
    return [{**p.as_dict(), "serving": serving} for p in pb.problems if p.file in files]
