"""Calls: from a transcript to stored, line-by-line verdicts (primitive 1 of the loop: measure).

    score_call(coach, source, rep=..., call_type=...)   parse, identify the rep, score, store once
    get_call(coach, call_id)                             a stored call with its verdicts
    rescore(coach, scorecard_id, since=None)             re-score stored calls after a scorecard edit
    override(coach, call_id, line_id, verdict, reason)   a human disputes one verdict
    export_disputed(coach, dest_dir)                     overridden calls as labelled rubric tests

Every write is one `store.transaction()` holding the rows and the loop event that records it
(`call.scored`, `call.rescored`, `verdict.overridden`), so nothing is half-stored: when parsing,
identifying the rep or scoring fails, nothing at all is written.
"""
from __future__ import annotations

import getpass
import json
import logging
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from playbook.models import Scorecard
from store import calls as call_store
from store.db import StoreError, dumps, now_iso
from store.deals import find_deal, parse_when, record_deal
from store.reps import list_reps, resolve_rep, roster, upsert_rep
from tools.transcripts import Transcript, TranscriptError, identify_rep, read_transcript
from tools.transcripts.identify import same_person

log = logging.getLogger("coachloop")

DEFAULT_CALL_TYPE = "discovery"
ENGINES = ("offline", "llm")

# coach -> (policy version, LLM client or None): one client per policy, not one per call
_llm_cache: "weakref.WeakKeyDictionary[Any, tuple[str, Any]]" = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------- engine choice


def pick_engine(coach, engine: str | None = None) -> tuple[str, Any]:
    """("llm", client) when an LLM is configured in playbook.yaml and `engine` is not "offline";
    ("offline", None) otherwise. engine="llm" without a configured LLM is an error."""
    if engine not in (None, *ENGINES):
        raise ValueError(f"engine '{engine}' is not one of {', '.join(ENGINES)}")
    if engine == "offline":
        return "offline", None
    pb = coach.playbook
    cached = _llm_cache.get(coach)
    if cached is not None and cached[0] == pb.policy_version:
        client = cached[1]
    else:
        from tools.llm import LLMClient, LLMError  # late: the offline path never pays for openai's import

        try:
            client = LLMClient.from_policy(pb.policy)
        except LLMError as exc:
            raise ValueError(f"{pb.root / 'playbook.yaml'}: llm: {exc}") from None
        _llm_cache[coach] = (pb.policy_version, client)
    if client is None:
        if engine == "llm":
            raise ValueError("engine 'llm' asked for, but no LLM is configured: set llm.enabled: true and "
                             "llm.base_url in playbook.yaml (and the key in llm.api_key_env)")
        return "offline", None
    return "llm", client


def _score_turns(turns, scorecard: Scorecard, version: str, engine: str, client: Any):
    from tools.scoring import score_turns

    return score_turns(turns, scorecard, version=version, engine=engine, llm=client)


def _offline_version() -> str:
    from tools.scoring import OFFLINE_ENGINE_VERSION

    return OFFLINE_ENGINE_VERSION


# --------------------------------------------------------------------------- helpers


def weighted_score(scorecard: Scorecard | None, verdicts: dict[str, str]) -> float:
    """Passes over applicable lines (pass + fail), weighted by each line's weight; 0..1.
    A call where no line applies scores 0.0."""
    num = den = 0.0
    for lid, verdict in verdicts.items():
        line = scorecard.line(lid) if scorecard is not None else None
        w = line.weight if line is not None else 1.0
        if verdict == "pass":
            num += w
            den += w
        elif verdict == "fail":
            den += w
    return round(num / den, 4) if den else 0.0


def _resolve_or_create_rep(store, speaker: str, rep: str | None, declared: bool) -> dict:
    """The store's rep for the identified speaker. A rep named with `rep` (or declared by the file
    itself, or marked internal by Gong) that the store does not know yet is created."""
    found = resolve_rep(store, speaker) or (resolve_rep(store, rep) if rep else None)
    if found is None:
        # speaker "Priya" or "Priya R." on a call, roster "Priya Raman": identify_rep matched it by
        # first name; the rep is the one roster rep with that first name
        cands = [r for r in list_reps(store) if same_person(speaker, r["name"])]
        if len(cands) == 1:
            found = cands[0]
    if found is not None:
        names = {found["name"].casefold(), *(a.casefold() for a in found["aliases"])}
        if speaker.casefold() not in names:  # remember how this rep appears in transcripts
            found = upsert_rep(store, found["name"], id=found["id"], aliases=[speaker])
        return found
    if not declared:
        raise StoreError(
            f"speaker '{speaker}' is not a rep in the store; add it with `coachloop rep add \"{speaker}\"` "
            "or pass --rep NAME")
    name = rep if rep and len(rep.split()) >= len(speaker.split()) else speaker
    return upsert_rep(store, name, aliases=[speaker] if speaker != name else None)


def _lines_out(rows: list[dict]) -> list[dict]:
    out = []
    for v in rows:
        line = {
            "id": v["line_id"],
            "verdict": v["verdict"],
            "turn": v["turn"],
            "quote": v["quote"],
            "reason": v["reason"],
        }
        if v.get("overridden_at"):
            line.update(engine_verdict=v["engine_verdict"], overridden_by=v["overridden_by"],
                        override_reason=v["override_reason"])
        out.append(line)
    return out


def _result(call: dict, rep: dict | None, duplicate: bool) -> dict:
    return {
        "call": call["id"],
        "rep": call["rep_id"],
        "rep_name": rep["name"] if rep else None,
        "rep_speaker": call["rep_speaker"],
        "call_type": call["call_type"],
        "scorecard": call["scorecard_id"],
        "scorecard_version": call["scorecard_version"],
        "engine": call["engine"],
        "engine_version": call["engine_version"],
        "segment": call["segment"],
        "deal": call["deal_id"],
        "stage": call["stage"],
        "occurred_at": call["occurred_at"],
        "source": call["source_name"],
        "live": bool(call["live"]),
        "score": call["score"],
        "duplicate": duplicate,
        "lines": _lines_out(call["verdicts"]),
    }


# --------------------------------------------------------------------------- score_call


def score_call(
    coach,
    source: str | Transcript,
    *,
    rep: str | None = None,
    call_type: str | None = None,
    scorecard_id: str | None = None,
    segment: str | None = None,
    deal_id: str | None = None,
    stage: str | None = None,
    occurred_at: str | None = None,
    source_name: str | None = None,
    fmt: str | None = None,
    live: bool = True,
    engine: str | None = None,
) -> dict:
    """Score one call and store it once. `source` is transcript text (any supported format, or
    `fmt`) or a parsed `Transcript`.

    - The rep: `rep` (a name as spoken in the call, or a store rep's id/name) when given, created
      in the store if unknown; else the file's own `rep` field; else the speaker on the roster;
      else an error saying to pass `rep` or add the rep.
    - The scorecard: `scorecard_id`, else the one for `call_type` (default: the file's
      `call_type`, else "discovery").
    - Segment: `segment`, else the deal's, else the file's, else the rep's.
    - The same transcript (by content hash) is stored once: a second call returns the stored call
      with `duplicate: True` and writes nothing.

    Returns {call, rep, rep_name, rep_speaker, call_type, scorecard, scorecard_version, engine,
    engine_version, segment, deal, stage, occurred_at, source, live, score, duplicate,
    lines: [{id, verdict, turn, quote, reason}]}.
    """
    store = coach.store
    transcript = _as_transcript(source, source_name, fmt)
    existing = call_store.find_by_hash(store, transcript.content_hash())
    if existing is not None:
        call = call_store.get_call(store, existing, with_turns=False)
        return _result(call, resolve_rep(store, call["rep_id"]), True)
    engine_name, client = pick_engine(coach, engine)
    prepared = prepare_call(coach.playbook, transcript, roster(store), rep=rep, rep_names=rep_names(store, rep),
                            call_type=call_type,
                            scorecard_id=scorecard_id, occurred_at=occurred_at, engine=engine_name, llm=client,
                            source_name=source_name)
    return store_prepared(coach, prepared, rep=rep, segment=segment, deal_id=deal_id, stage=stage, live=live)


def _as_transcript(source: str | Transcript, source_name: str | None, fmt: str | None) -> Transcript:
    if isinstance(source, Transcript):
        transcript = source
    elif isinstance(source, str):
        transcript = read_transcript(source, source=source_name or "<text>", fmt=fmt)
    else:
        raise TypeError(f"source must be transcript text or a Transcript, not {type(source).__name__}")
    if not transcript.turns:
        raise TranscriptError(source_name or transcript.source, "no turns to score")
    return transcript


@dataclass
class PreparedCall:
    """A parsed and scored call, not stored yet (picklable: ingest workers hand it to the writer)."""

    source_name: str
    source_hash: str
    format: str
    speaker: str
    declared: bool  # the rep was named (argument, the file's `rep`, Gong Internal): create if unknown
    call_type: str
    scorecard_id: str
    scorecard_version: str
    engine: str
    engine_version: str
    score: float
    verdicts: list[dict]
    turns: str  # the turns as stored: JSON text, serialised in the worker (cheaper to pickle, off the writer)
    occurred_at: str
    segment_hint: str | None = None


def prepare_call(
    playbook,
    transcript: Transcript,
    roster_names: list[str],
    *,
    rep: str | None = None,
    rep_names: list[str] | None = None,
    call_type: str | None = None,
    scorecard_id: str | None = None,
    occurred_at: str | None = None,
    engine: str = "offline",
    llm: Any = None,
    source_name: str | None = None,
) -> PreparedCall:
    """The CPU part of scoring a call, touching no store: identify the rep among the speakers
    (`rep`, else the file's own, else `roster_names`), pick the scorecard, score the turns."""
    meta = transcript.meta if isinstance(transcript.meta, dict) else {}
    call_type = call_type or _meta_str(meta, "call_type") or DEFAULT_CALL_TYPE
    card = playbook.scorecard(scorecard_id) if scorecard_id else playbook.scorecard_for(call_type)
    version = playbook.version_of("scorecards", card.id) or ""
    speaker = _identify(transcript, rep, rep_names, roster_names)
    declared = bool(rep) or _declared_rep(transcript, speaker)
    transcript.assign_rep(speaker)
    scored = _score_turns(transcript.turns, card, version, engine, llm)
    return PreparedCall(
        source_name=source_name or transcript.source,
        source_hash=transcript.content_hash(),
        format=transcript.format,
        speaker=speaker,
        declared=declared,
        call_type=call_type,
        scorecard_id=card.id,
        scorecard_version=version,
        engine=scored.engine,
        engine_version=scored.engine_version,
        score=float(scored.score),
        verdicts=[{"line_id": ln.id, "verdict": ln.verdict, "turn": ln.turn, "quote": ln.quote, "reason": ln.reason}
                  for ln in scored.lines],
        turns=turns_json(transcript.turns),
        occurred_at=parse_when(occurred_at, "occurred_at") or _meta_time(meta) or now_iso(),
        segment_hint=_meta_str(meta, "segment"),
    )


def rep_names(store, rep: str | None) -> list[str]:
    """What `rep` may be called in a transcript: itself, and when it names a rep in the store (by
    id, name or alias) that rep's name and aliases, so `--rep priya-raman` finds "Priya Raman"."""
    if not rep:
        return []
    names = [rep]
    found = resolve_rep(store, rep)
    if found is not None:
        for n in [found["name"], *found["aliases"]]:
            if n not in names:
                names.append(n)
    return names


def _identify(transcript: Transcript, rep: str | None, names: list[str] | None, roster_names: list[str]) -> str:
    if not rep:
        return identify_rep(transcript, None, roster_names)
    first_error = None
    for name in names or [rep]:
        try:
            return identify_rep(transcript, name, roster_names)
        except TranscriptError as exc:
            first_error = first_error or exc
    raise first_error


def store_prepared(
    coach,
    prep: PreparedCall,
    *,
    rep: str | None = None,
    segment: str | None = None,
    deal_id: str | None = None,
    stage: str | None = None,
    live: bool = True,
) -> dict:
    """Store a prepared call once, with its rep (created when named and unknown), its deal
    (created when unknown) and the `call.scored` event, in one transaction (a savepoint inside
    a caller's larger transaction). Returns the `score_call` result."""
    store = coach.store
    with store.transaction() as db, db.atomic():
        existing = call_store.find_by_hash(store, prep.source_hash)
        if existing is not None:
            call = call_store.get_call(store, existing, with_turns=False)
            return _result(call, resolve_rep(store, call["rep_id"]), True)
        rep_row = _resolve_or_create_rep(store, prep.speaker, rep, prep.declared)
        deal_row = None
        if deal_id:
            deal_row = find_deal(store, deal_id)
            if deal_row is None or stage:
                deal_row = record_deal(store, deal_id, rep=rep_row["id"] if deal_row is None else None,
                                       stage=stage, at=prep.occurred_at, segment=segment)
        seg = segment or (deal_row or {}).get("segment") or prep.segment_hint or rep_row.get("segment")
        row = {
            "source_hash": prep.source_hash,
            "source_name": prep.source_name,
            "format": prep.format,
            "rep_id": rep_row["id"],
            "rep_speaker": prep.speaker,
            "call_type": prep.call_type,
            "scorecard_id": prep.scorecard_id,
            "scorecard_version": prep.scorecard_version,
            "segment": seg,
            "deal_id": deal_id,
            "stage": stage or ((deal_row or {}).get("stage") if deal_id else None),
            "occurred_at": prep.occurred_at,
            "turns": prep.turns,
            "engine": prep.engine,
            "engine_version": prep.engine_version,
            "score": prep.score,
            "live": 1 if live else 0,
        }
        call_id, duplicate = call_store.insert_call(store, row, prep.verdicts)
        if not duplicate:
            store.event(
                "call.scored",
                rep_id=rep_row["id"],
                subject=f"call:{call_id}",
                data={
                    "call_type": prep.call_type,
                    "scorecard": prep.scorecard_id,
                    "scorecard_version": prep.scorecard_version,
                    "score": prep.score,
                    "live": bool(live),
                    "engine": prep.engine,
                    "segment": seg,
                    "deal": deal_id,
                    "stage": row["stage"],
                    "verdicts": {v["line_id"]: v["verdict"] for v in prep.verdicts},
                },
            )
        result = _result_from_row(call_id, row, prep.verdicts, rep_row, duplicate)
    return result


def _result_from_row(call_id: int, row: dict, verdicts: list[dict], rep_row: dict, duplicate: bool) -> dict:
    call = {**row, "id": call_id, "verdicts": [{**v, "overridden_at": None} for v in verdicts]}
    return _result(call, rep_row, duplicate)


def _declared_rep(transcript: Transcript, speaker: str) -> bool:
    """True when the file itself says who the rep is (a `rep` field, or Gong's Internal party)."""
    meta = transcript.meta if isinstance(transcript.meta, dict) else {}
    d = meta.get("rep")
    if isinstance(d, str) and d.strip():
        return True
    return any(t.speaker == speaker and t.affiliation == "internal" for t in transcript.turns)


def _meta_str(meta: dict, key: str) -> str | None:
    v = meta.get(key)
    return v.strip() if isinstance(v, str) and v.strip() else None


def _meta_time(meta: dict) -> str | None:
    for key in ("occurred_at", "started", "date", "start_time", "dateString"):
        v = meta.get(key)
        if isinstance(v, str) and v.strip():
            try:
                return parse_when(v)
            except StoreError:
                continue
    return None


def turns_json(turns) -> str:
    """`dumps([_turn_json(t) for t in turns])`, the same text, written directly: storing every
    call's turns is on the path of every scored call."""
    enc, val = _json_str, _json_value
    out = []
    for t in turns:
        role, speaker, text = t.role, t.speaker, t.text
        body = (f'"role": {enc(role) if type(role) is str else val(role)}, '
                f'"speaker": {enc(speaker) if type(speaker) is str else val(speaker)}')
        if t.start is not None:
            body += f', "start": {val(t.start)}'
        body += f', "text": {enc(text) if type(text) is str else val(text)}'
        if t.end is not None:
            body = f'"end": {val(t.end)}, ' + body
        if t.affiliation:
            body = f'"affiliation": {val(t.affiliation)}, ' + body
        out.append("{" + body + "}")
    return "[" + ", ".join(out) + "]"


def _json_value(v) -> str:
    if type(v) is str:
        return _json_str(v)
    if v is None:
        return "null"
    if type(v) is float and v == v and v not in (float("inf"), float("-inf")) or type(v) is int:
        return repr(v)
    return dumps(v)


_json_str = json.encoder.encode_basestring  # what dumps(..., ensure_ascii=False) writes for a string


def _turn_json(t) -> dict:
    d = {"speaker": t.speaker, "text": t.text, "role": t.role}
    if t.start is not None:
        d["start"] = t.start
    if t.end is not None:
        d["end"] = t.end
    if t.affiliation:
        d["affiliation"] = t.affiliation
    return d


def get_call(coach, call_id: int | str, *, turns: bool = False) -> dict:
    """A stored call in the shape `score_call` returns (plus `turns` when asked)."""
    call = call_store.get_call(coach.store, call_id, with_turns=turns)
    out = _result(call, resolve_rep(coach.store, call["rep_id"]), False)
    out.pop("duplicate")
    out["created_at"] = call["created_at"]
    out["scored_at"] = call["scored_at"]
    if turns:
        out["turns"] = call["turns"]
    return out


def list_calls(coach, *, rep: str | None = None, scorecard_id: str | None = None, since: str | None = None,
               limit: int | None = None) -> list[dict]:
    """Stored calls, oldest first, without turns or verdicts."""
    rep_id = None
    if rep:
        from store.reps import get_rep

        rep_id = get_rep(coach.store, rep)["id"]
    return call_store.list_calls(coach.store, rep_id=rep_id, scorecard_id=scorecard_id,
                                 since=parse_when(since, "since"), limit=limit)


# --------------------------------------------------------------------------- rescore


def rescore(
    coach,
    scorecard_id: str,
    since: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    force: bool = False,
    chunk: int = 200,
) -> dict:
    """Re-score the stored calls of a scorecard with its current version and report what flipped.

    Calls already scored with the current scorecard version and engine are skipped unless
    `force`. Overridden lines keep the human verdict (the engine's new verdict is stored beside
    it). Each changed call gets a `call.rescored` event; a `jobs` row tracks progress, so an
    interrupted rescore resumes where it stopped when run again.

    Returns {scorecard, version, engine, calls, rescored, skipped, changed_calls,
    flips: [{call, rep, line, before, after, overridden}], by_line: {line: {"pass->fail": n, ...}}}.
    """
    store = coach.store
    pb = coach.playbook
    card = pb.scorecard(scorecard_id)
    version = pb.version_of("scorecards", card.id) or ""
    since_iso = parse_when(since, "since")
    engine_name, client = pick_engine(coach, None)
    params = {"scorecard": card.id, "version": version, "since": since_iso, "engine": engine_name}
    job = store.one(
        "select * from jobs where kind = 'rescore' and status = 'running' and params = ? order by id desc",
        [dumps(params)],
    )
    if job is None:
        with store.transaction() as db:
            cur = db.execute(
                "insert into jobs (kind, status, params, cursor, created_at, updated_at) values (?, ?, ?, ?, ?, ?)",
                ["rescore", "running", dumps(params), dumps({"after_id": 0}), now_iso(), now_iso()],
            )
            job_id, after_id = cur.lastrowid, 0
        resumed = False
    else:
        job_id, after_id, resumed = job["id"], json.loads(job["cursor"] or "{}").get("after_id", 0), True

    todo = call_store.list_calls(store, scorecard_id=card.id, since=since_iso, after_id=after_id)
    total = len(todo)
    flips: list[dict] = []
    by_line: dict[str, dict[str, int]] = {}
    rescored = skipped = changed_calls = 0
    engine_version = client.engine_version if client is not None else _offline_version()
    for start in range(0, total, chunk):
        batch = todo[start:start + chunk]
        with store.transaction() as db:
            for meta in batch:
                if not force and meta["scorecard_version"] == version and meta["engine"] == engine_name and (
                        meta["engine_version"] == engine_version):
                    skipped += 1
                    continue
                call = call_store.get_call(store, meta["id"], with_turns=True)
                tr = Transcript.from_turn_dicts(call["turns"], format=call["format"] or "turns", source=call["source_name"] or "")
                tr.assign_rep(call["rep_speaker"])
                scored = _score_turns(tr.turns, card, version, engine_name, client)
                new = [{"line_id": ln.id, "verdict": ln.verdict, "turn": ln.turn, "quote": ln.quote, "reason": ln.reason}
                       for ln in scored.lines]
                changes = call_store.update_scoring(store, call["id"], new, scorecard_version=version,
                                                    engine=scored.engine, engine_version=scored.engine_version)
                rows = call_store.verdicts_for(store, call["id"])
                overridden = any(r["overridden_at"] for r in rows)
                score = weighted_score(card, {r["line_id"]: r["verdict"] for r in rows}) if overridden else float(scored.score)
                call_store.set_score(store, call["id"], score)
                rescored += 1
                real = [c for c in changes if c["engine_before"] != c["engine_after"] or c["before"] != c["after"]]
                if real:
                    changed_calls += 1
                    for c in real:
                        flips.append({"call": call["id"], "rep": call["rep_id"], "line": c["line"],
                                      "before": c["before"], "after": c["after"],
                                      "engine_before": c["engine_before"], "engine_after": c["engine_after"],
                                      "overridden": c["overridden"]})
                        key = f"{c['engine_before']}->{c['engine_after']}"
                        by_line.setdefault(c["line"], {})
                        by_line[c["line"]][key] = by_line[c["line"]].get(key, 0) + 1
                    store.event(
                        "call.rescored",
                        rep_id=call["rep_id"],
                        subject=f"call:{call['id']}",
                        data={"scorecard": card.id, "version": version, "before_version": call["scorecard_version"],
                              "score": score, "before_score": call["score"], "live": bool(call["live"]),
                              "flips": [{"line": c["line"], "before": c["before"], "after": c["after"]} for c in real]},
                    )
            db.execute("update jobs set cursor = ?, updated_at = ? where id = ?",
                       [dumps({"after_id": batch[-1]["id"]}), now_iso(), job_id])
        if progress:
            progress(min(start + chunk, total), total)
    summary = {
        "scorecard": card.id,
        "version": version,
        "engine": engine_name,
        "since": since_iso,
        "calls": total,
        "rescored": rescored,
        "skipped": skipped,
        "changed_calls": changed_calls,
        "flips": flips,
        "by_line": by_line,
        "job": job_id,
        "resumed": resumed,
    }
    with store.transaction() as db:
        db.execute("update jobs set status = 'done', updated_at = ? where id = ?", [now_iso(), job_id])
        if rescored:
            store.event("scorecard.rescored", subject=f"scorecard:{card.id}",
                        data={k: v for k, v in summary.items() if k != "flips"})
    return summary


# --------------------------------------------------------------------------- override and export


def override(
    coach,
    call_id: int | str,
    line_id: str,
    verdict: str,
    reason: str,
    by: str | None = None,
    *,
    turn: int | None = None,
) -> dict:
    """A human verdict on one line of a stored call. The engine's verdict is kept beside it
    (`engine_verdict`); the human one counts from now on, including after a rescore. Appends
    `verdict.overridden`. The disputed sentence becomes a learned example beside the scorecard
    (`learn_from_override`). Returns {call, line, verdict, before, engine_verdict, by, reason, at,
    score, event, example: {written, file, added, verdict, text, note}}."""
    store = coach.store
    verdict = str(verdict or "").strip().lower()
    if verdict not in call_store.VERDICTS:
        raise ValueError(f"verdict '{verdict}' is not one of pass, fail, na")
    reason = " ".join(str(reason or "").split())
    if not reason:
        raise ValueError("an override needs a reason (--reason TEXT): say why the engine's verdict is wrong")
    by = (by or "").strip() or _whoami()
    call = call_store.get_call(store, call_id, with_turns=turn is not None)
    if turn is not None:
        n = len(call["turns"])
        if not 0 <= int(turn) < n:
            raise ValueError(f"turn {turn} is out of range: call {call['id']} has turns 0..{n - 1}")
    at = now_iso()
    with store.transaction():
        prev = call_store.set_override(store, call["id"], line_id, verdict, reason=reason, by=by, turn=turn, at=at)
        rows = call_store.verdicts_for(store, call["id"])
        card = coach.playbook.get("scorecards", call["scorecard_id"])
        score = weighted_score(card.model if card else None, {r["line_id"]: r["verdict"] for r in rows})
        call_store.set_score(store, call["id"], score)
        event_id = store.event(
            "verdict.overridden",
            rep_id=call["rep_id"],
            subject=f"call:{call['id']}",
            data={"line": line_id, "before": prev["verdict"], "after": verdict, "engine_verdict": prev["engine_verdict"],
                  "by": by, "reason": reason, "scorecard": call["scorecard_id"], "score": score,
                  "before_score": call["score"], "live": bool(call["live"])},
        )
    example = learn_from_override(coach, call, line_id, verdict, prev, turn=turn, by=by, reason=reason, at=at)
    return {"call": call["id"], "line": line_id, "verdict": verdict, "before": prev["verdict"],
            "engine_verdict": prev["engine_verdict"], "by": by, "reason": reason, "at": at, "score": score,
            "event": event_id, "example": example}


EXAMPLE_MAX_CHARS = 300


def _example_from_turn(text: str, kind: str) -> str:
    """The words of an evidence turn worth learning: its questions for a question line (when it has
    any), else the whole turn; at most ~300 characters, cut at a sentence or word boundary."""
    import re

    text = " ".join(str(text or "").split())
    if kind == "question":
        asked = [s for s in re.split(r"(?<=[.?!])\s+", text) if s.endswith("?")]
        if asked:
            text = " ".join(asked)
    if len(text) <= EXAMPLE_MAX_CHARS:
        return text
    cut = text[:EXAMPLE_MAX_CHARS]
    ends = [m.end() for m in re.finditer(r"[.?!](?=\s|$)", cut)]
    if ends and ends[-1] >= EXAMPLE_MAX_CHARS // 3:
        return cut[: ends[-1]]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


def learn_from_override(coach, call: dict, line_id: str, verdict: str, prev: dict, *, turn: int | None, by: str,
                        reason: str, at: str) -> dict:
    """Turn a disputed verdict into a labelled example beside the scorecard
    (`scorecards/examples/<scorecard>.yaml`, see playbook/examples.py), so the engine does not make the
    same mistake on the next call. An override to fail of an engine pass teaches its evidence quote as
    a near miss (`fail`); an override to pass of an engine fail teaches the evidence turn given with
    `turn` (`pass`). Returns {written, file, added, verdict, text, note}: `written` False with the
    reason in `note` when there is nothing to learn (the override itself is recorded either way)."""
    from playbook.examples import add_example
    from playbook.loader import PlaybookError, examples_path

    sid = call["scorecard_id"]
    out: dict[str, Any] = {"written": False, "file": None, "added": False, "verdict": None, "text": None, "note": ""}
    engine = prev.get("engine_verdict") or prev.get("verdict")
    art = coach.playbook.get("scorecards", sid) if sid else None
    line = art.model.line(line_id) if art is not None else None
    text = None
    if verdict == "na":
        out["note"] = "an na verdict teaches no example"
    elif line is None:
        out["note"] = f"no example written: scorecard '{sid}' (line {line_id}) is not in the playbook now"
    elif verdict == engine:
        out["note"] = f"no example written: the engine already said {engine}"
    elif verdict == "fail":
        if engine != "pass" or not (prev.get("quote") or "").strip():
            out["note"] = f"no example written: the engine said {engine} with no quote, so there is no sentence to learn from"
        else:
            text = prev["quote"]
    elif engine != "fail":
        out["note"] = (f"no example written: the engine said {engine} (the line's trigger did not fire); a pass "
                       "example cannot teach that")
    elif turn is None:
        out["note"] = ("no example written: give the turn that passes the line (--turn N, 0-based; `coachloop call "
                       f"{call['id']} --turns` numbers them) to teach the engine what passing sounds like")
    else:
        text = _example_from_turn(call["turns"][int(turn)].get("text", ""), line.kind)
        if not text:
            out["note"] = f"no example written: turn {turn} has no words"
    if not text:
        return out
    out.update(verdict=verdict, text=" ".join(text.split()), file=examples_path(sid))
    try:
        w = add_example(coach.playbook_dir, sid, line=line_id, verdict=verdict, text=text, call=call["id"], by=by, at=at,
                        reason=reason)
    except (PlaybookError, OSError) as exc:
        log.warning("override of call %s %s recorded, but no example was written: %s", call["id"], line_id, exc)
        out["note"] = f"the override is recorded, but no example was written: {exc}"
        return out
    out.update(written=True, file=w.path, added=w.added)
    if w.added:
        out["note"] = (f"{'near miss' if verdict == 'fail' else 'passing example'} for {line_id} added to {w.path}; "
                       "the engine uses it from the next call (stored calls are re-scored on the new scorecard version)")
        coach.reload()
    else:
        out["note"] = f"{w.path} already holds this {verdict} example for {line_id}"
    return out


def _whoami() -> str:
    try:
        return os.environ.get("COACHLOOP_USER") or getpass.getuser()
    except Exception:  # no user name on this system
        return "unknown"


def export_disputed(coach, dest_dir: str | Path, scorecard_id: str | None = None) -> list[Path]:
    """Write every call with an overridden verdict as a labelled rubric test file
    (`call-<id>.json` in the RubricTest format) so it can join `scorecards/tests/`.

    Labels hold the human-judged lines only (the overridden ones): a verdict nobody reviewed is
    not a label. Re-exporting overwrites the same files."""
    store = coach.store
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for cid in call_store.overridden_call_ids(store, scorecard_id):
        call = call_store.get_call(store, cid, with_turns=True)
        labels = {}
        for v in call["verdicts"]:
            if not v["overridden_at"]:
                continue
            label: dict[str, Any] = {"verdict": v["verdict"], "turn": None,
                                     "note": f"{v['override_reason']} (overridden by {v['overridden_by']}; "
                                             f"engine said {v['engine_verdict']})"}
            if v["verdict"] == "pass":  # the evidence turn (the engine's, or the one the reviewer gave)
                label["turn"] = v["turn"]
            labels[v["line_id"]] = label
        test = {
            "id": f"call-{cid}",
            "scorecard": call["scorecard_id"],
            "rep": call["rep_speaker"],
            "source": call["source_name"],
            "turns": [{"speaker": t["speaker"], "text": t["text"]} for t in call["turns"]],
            "labels": labels,
        }
        path = dest / f"call-{cid}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(test, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written
