"""The loop's tools: score, rescore, score_batch, override_verdict, attribute, generate_scenario,
assign_path, roleplay_start/reply/end, certify, gate_check, lift_gate, metrics.

Each wraps one capability of tools/ (plain Python, knows nothing of MCP) and shapes its answer
for a model: the structured result carries the whole answer (verdicts with quotes, the gap
sentence, the next action), not just ids; lists are paginated and capped.
"""
from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, ConfigDict, Field

from store import loop as store_loop
from store.reps import get_rep
from tools.live import artifact_problems
from tools.context import Coach

from .common import annotations, clip, for_mcp, guard, page

log = logging.getLogger("coachloop.mcp")

Detail = Literal["concise", "detailed"]
TranscriptFormat = Literal["text", "otter", "vtt", "srt", "gong", "fireflies", "turns"]
DETAIL_FIELD = Field(description="concise (default): short quotes and reasons; detailed: full text and every field.")


def rep_id_of(coach: Coach, rep: str) -> str:
    return get_rep(coach.store, rep)["id"]


def shrink(obj: Any, max_list: int = 25, depth: int = 0) -> Any:
    """Cap every list in a JSON-like value (keeps results well under 10k tokens)."""
    if depth > 8:
        return obj
    if isinstance(obj, dict):
        return {k: shrink(v, max_list, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        out = [shrink(v, max_list, depth + 1) for v in obj[:max_list]]
        if len(obj) > max_list:
            out.append(f"... {len(obj) - max_list} more not shown")
        return out
    return obj


# =========================================================================== loop actions


class LoopAction(BaseModel):
    kind: str = Field(description="e.g. gap.opened, gap.remediated, verify.closed, certification.passed, feedback.")
    text: str = Field(description="What the loop did, in one sentence.")
    rep: str | None = None
    gap_id: int | None = None
    scenario_id: str | None = None
    path_id: str | None = None
    assignment_id: int | None = None
    gates: list[dict] | None = None


def _actions(raw: list[dict]) -> list[LoopAction]:
    out = []
    for a in raw[:30]:
        d = a.get("data") or {}
        out.append(
            LoopAction(
                kind=str(a.get("kind")),
                text=clip(for_mcp(a.get("text")), 600),
                rep=a.get("rep"),
                gap_id=d.get("gap_id") if isinstance(d.get("gap_id"), int) else None,
                scenario_id=d.get("scenario_id") if isinstance(d.get("scenario_id"), str) else None,
                path_id=d.get("path_id") if isinstance(d.get("path_id"), str) else None,
                assignment_id=d.get("assignment_id") if isinstance(d.get("assignment_id"), int) else None,
                gates=[{k: g.get(k) for k in ("activity", "status", "certification_id")} for g in d.get("gates") or []] or None
                if isinstance(d.get("gates"), list)
                else None,
            )
        )
    return out


def _event_text(ev: dict) -> tuple[str, str] | None:
    """(kind, sentence) for a loop event read back from the log; None for bookkeeping events."""
    t, d = ev["type"], ev.get("data") or {}
    gap = d.get("gap_id")
    if t == "gap.opened":
        return "gap.opened", f"opened gap {gap}: {d.get('statement')}"
    if t == "gap.remediated":
        parts = [f"scenario {d.get('scenario_id')} ({d.get('scenario_path')})"]
        if d.get("path_id"):
            parts.append(f"path {d['path_id']} assigned")
        for status in ("blocked", "shadow"):
            acts = sorted({str(g.get("activity")) for g in d.get("gates") or [] if g.get("status") == status})
            if acts:
                parts.append(("blocked from " if status == "blocked" else "shadow gate on ") + ", ".join(acts))
        return "gap.remediated", f"gap {gap} ({d.get('line')}): " + "; ".join(parts)
    if t in ("gap.closed", "gap.reopened"):
        return "verify." + t.split(".")[1], f"{t.split('.')[1]} gap {gap} ({d.get('line')}): {d.get('reason') or ''}".rstrip(": ")
    if t in ("certification.passed", "certification.failed", "certification.needs_manager"):
        return t, f"{t}: {d.get('certification_id')} (attempt {d.get('attempt')}, score {d.get('score')})"
    if t in ("gate.blocked", "gate.shadow", "gate.lifted"):
        return t, f"{t.split('.')[1]} gate {d.get('gate_id')} on {d.get('activity')}" + (f" (certification {d['certification_id']})" if d.get("certification_id") else "")
    return None


def actions_from_log(coach: Coach, trigger: int, limit: int = 60) -> list[dict]:
    """What the loop did in reaction to event `trigger`, read back from the event log (the events it
    caused, transitively). Used when another runner (the serve worker, a CLI `coachloop run`) handled
    the event before this tool's own orchestrator run got to it."""
    seen, frontier, out = {trigger}, [trigger], []
    while frontier and len(out) < limit:
        marks = ",".join("?" * len(frontier))
        rows = coach.store.query(f"select * from events where cause_id in ({marks}) order by id limit 200", frontier)
        frontier = []
        for r in rows:
            if r["id"] in seen:
                continue
            seen.add(r["id"])
            frontier.append(r["id"])
            r["data"] = json.loads(r["data"] or "{}")
            kt = _event_text(r)
            if kt:
                out.append({"event_id": r["id"], "trigger": r["type"], "kind": kt[0], "rep": r.get("rep_id"), "text": kt[1], "data": r["data"]})
    return out


def trigger_event(coach: Coach, type_: str, subject: str) -> int | None:
    return store_loop.last_event_id(coach.store, type_, subject)


def run_loop(coach: Coach, trigger: int | list[int] | None = None) -> tuple[list[LoopAction], str | None]:
    """Let the orchestrator react to the events just appended, and report what the loop did about
    `trigger` (even when another runner handled it first). Never fails the calling tool."""
    err = None
    raw: list[dict] = []
    try:
        from server.orchestrator import Orchestrator

        raw = Orchestrator(coach).run_pending()
    except Exception as exc:
        log.warning("orchestrator: %s", exc)
        err = f"the loop could not react yet: {exc}"
    triggers = [trigger] if isinstance(trigger, int) else list(trigger or [])
    mine = {a.get("event_id") for a in raw}
    for t in triggers:
        if t not in mine:
            try:
                raw = actions_from_log(coach, t) + raw
            except Exception as exc:  # reading the log back must never fail the tool
                log.warning("reading the loop's actions back: %s", exc)
    return _actions(raw), err


async def log_actions(ctx: Context, loop: list[LoopAction], err: str | None) -> None:
    """Tell the client's log what the loop did (info), and any loop failure (warning)."""
    from .logs import client_log

    for a in loop:
        await client_log(ctx, "info", f"loop: {a.text}")
    if err:
        await client_log(ctx, "warning", err)


# =========================================================================== score


class LineVerdictOut(BaseModel):
    id: str = Field(description="Rubric line id.")
    title: str = ""
    verdict: str = Field(description="pass, fail or na (not applicable).")
    turn: int | None = Field(None, description="Transcript turn (0-based) of the evidence.")
    quote: str = Field("", description="The evidence: what was said (a pass), or the nearest miss.")
    reason: str = ""
    overridden_by: str | None = None


class ScoreResult(BaseModel):
    call_id: int
    rep: str = Field(description="Rep id.")
    rep_name: str | None = None
    call_type: str
    scorecard: str
    scorecard_version: str | None = None
    engine: str | None = None
    score: float | None = Field(None, description="Weighted share of applicable lines passed, 0..1.")
    duplicate: bool = Field(description="True when this transcript was already stored; nothing new was written.")
    occurred_at: str | None = None
    deal: str | None = None
    stage: str | None = None
    segment: str | None = None
    summary: str = Field(description="One line: score, passes, and the lines failed.")
    failed: list[str] = Field(description="Ids of failed lines.")
    lines: list[LineVerdictOut] = Field(description="Every rubric line's verdict with the evidence quote.")
    loop: list[LoopAction] = Field(default_factory=list, description="What the loop did next (gaps opened, practice assigned, gates set, gaps verified).")
    loop_error: str | None = None
    playbook_problems: list[dict] = Field(
        default_factory=list,
        description="Problems in the scorecard's file on disk right now (file, line, field, message, serving): "
        "when it is broken, the last good version scored this call. Fix the file, or see validate_playbook.",
    )
    next_action: str
    uri: str = Field(description="Resource with the stored call.")


def _titles(coach: Coach, scorecard: str) -> dict[str, str]:
    art = coach.playbook.get("scorecards", scorecard)
    return {ln.id: ln.title for ln in art.model.lines} if art else {}


def _lines(coach: Coach, scorecard: str, lines: list[dict], detail: str) -> list[LineVerdictOut]:
    titles = _titles(coach, scorecard)
    n = 10_000 if detail == "detailed" else 220
    r = 10_000 if detail == "detailed" else 160
    return [
        LineVerdictOut(
            id=ln["id"], title=titles.get(ln["id"], ""), verdict=ln["verdict"], turn=ln.get("turn"),
            quote=clip(ln.get("quote"), n), reason=clip(ln.get("reason"), r), overridden_by=ln.get("overridden_by"),
        )
        for ln in lines
    ]


def _score_result(coach: Coach, res: dict, detail: str, loop: list[LoopAction], loop_error: str | None) -> ScoreResult:
    lines = _lines(coach, res["scorecard"], res.get("lines") or [], detail)
    failed = [ln.id for ln in lines if ln.verdict == "fail"]
    passed = sum(1 for ln in lines if ln.verdict == "pass")
    applicable = sum(1 for ln in lines if ln.verdict in ("pass", "fail"))
    score = res.get("score")
    summary = (
        f"call {res['call']} ({res['call_type']}, {res['rep']}) scored {score:.2f} on {res['scorecard']}: "
        if isinstance(score, (int, float))
        else f"call {res['call']} ({res['call_type']}, {res['rep']}) on {res['scorecard']}: "
    ) + f"passed {passed} of {applicable} applicable lines; failed: {', '.join(failed) or 'none'}"
    if res.get("duplicate"):
        summary += " (already stored: this is the earlier result)"
    opened = [a for a in loop if a.kind == "gap.opened"]
    remediated = [a for a in loop if a.kind == "gap.remediated"]
    if remediated:
        nxt = f"Practice was assigned ({'; '.join(a.text for a in remediated[:3])}). Check gates with gate_check, or start the practice with roleplay_start."
    elif opened:
        nxt = f"A gap opened: {opened[0].text}. Assign practice with assign_path (gap_id={opened[0].gap_id})."
    elif failed:
        nxt = f"No pattern yet. Review with the review_call prompt, or see the rep's trend with attribute(rep='{res['rep']}')."
    else:
        nxt = "Nothing to coach on this call."
    problems = artifact_problems(coach, "scorecards", res["scorecard"])
    if problems:
        p = problems[0]
        nxt = (f"Scored with the last good version of scorecard '{res['scorecard']}': {p['file']}"
               f"{':' + str(p['line']) if p.get('line') else ''} is broken ({p.get('field') or 'file'}: {p['message']}). "
               f"Fix it with playbook_write. " + nxt)
    return ScoreResult(
        call_id=res["call"], rep=res["rep"], rep_name=res.get("rep_name"), call_type=res["call_type"], scorecard=res["scorecard"],
        scorecard_version=res.get("scorecard_version"), engine=res.get("engine"), score=score, duplicate=bool(res.get("duplicate")),
        occurred_at=res.get("occurred_at"), deal=res.get("deal"), stage=res.get("stage"), segment=res.get("segment"),
        summary=summary, failed=failed, lines=lines, loop=loop, loop_error=loop_error, playbook_problems=problems,
        next_action=nxt, uri=f"coachloop://calls/{res['call']}",
    )


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misnamed field (deal_id for deal) is an error, not dropped

    transcript: str = Field(description="Transcript text in any supported format.")
    rep: str | None = None
    call_type: str | None = None
    scorecard: str | None = None
    segment: str | None = None
    deal: str | None = None
    stage: str | None = None
    time: str | None = None
    source_name: str | None = None
    format: TranscriptFormat | None = Field(None, description="Skip format detection.")


class BatchOutcome(BaseModel):
    index: int
    ok: bool
    call_id: int | None = None
    rep: str | None = None
    score: float | None = None
    failed: list[str] = Field(default_factory=list)
    duplicate: bool = False
    error: str | None = None


class BatchResult(BaseModel):
    scored: int
    duplicates: int
    errors: int
    results: list[BatchOutcome]
    loop: list[LoopAction] = Field(default_factory=list)
    loop_error: str | None = None
    summary: str
    next_action: str


class RescoreFlip(BaseModel):
    call: int
    rep: str | None = None
    line: str
    before: str | None = None
    after: str | None = None
    overridden: bool = False


class RescoreResult(BaseModel):
    scorecard: str
    version: str
    engine: str | None = None
    calls: int
    rescored: int
    skipped: int
    changed_calls: int
    by_line: dict[str, dict[str, int]] = Field(description="Per line, how many verdicts flipped which way, e.g. {'pass->fail': 3}.")
    flips: list[RescoreFlip] = Field(description="The flipped verdicts (capped; see flips_total).")
    flips_total: int
    loop: list[LoopAction] = Field(default_factory=list)
    summary: str


class LearnedExampleOut(BaseModel):
    written: bool = Field(description="True when the disputed sentence is (now or already) a learned example in the playbook.")
    file: str | None = Field(None, description="The examples file, relative to the playbook (scorecards/examples/<scorecard>.yaml).")
    added: bool = Field(False, description="False when the same example was in the file already.")
    verdict: Literal["pass", "fail"] | None = Field(None, description="pass: counts as the line; fail: a near miss that must not.")
    text: str | None = Field(None, description="The sentence learned.")
    note: str = Field("", description="What happened, or why no example was written and how to give one.")


class OverrideResult(BaseModel):
    call_id: int
    line: str
    verdict: str
    before: str | None = None
    engine_verdict: str | None = None
    by: str
    reason: str
    score: float | None = None
    example: LearnedExampleOut | None = Field(None, description="The labelled example the dispute taught the engine, if any.")
    summary: str


def _register_calls(mcp, coach: Coach) -> None:
    from tools import calls as calls_mod

    @mcp.tool(
        name="score",
        annotations=annotations("Score a call", read_only=False, idempotent=True),
        description=(
            "Score one sales call transcript against the playbook's scorecard, store it (once: the same transcript is "
            "never stored twice) and let the coaching loop react. Accepts plain 'Name: text' lines, WebVTT/SRT, Otter, "
            "Gong, Fireflies or turns JSON. Use for every real call; the loop verifies open gaps, opens new ones and "
            "assigns practice on its own. Returns every rubric line's verdict with the evidence quote, the score, and "
            "what the loop did next (gaps opened, practice assigned, gates set)."
        ),
    )
    @guard("score")
    async def score(
        ctx: Context,
        transcript: Annotated[str, Field(description="The transcript text, in any supported format.")],
        rep: Annotated[str | None, Field(description="The rep: their name as spoken in the call, or a rep id. Default: the rep speaker found on the roster.")] = None,
        call_type: Annotated[str | None, Field(description="discovery, demo, outbound, renewal, support ... (picks the scorecard). Default: from the file, else discovery.")] = None,
        scorecard: Annotated[str | None, Field(description="Scorecard id, to override the call type's scorecard.")] = None,
        segment: Annotated[str | None, Field(description="Segment, e.g. 'mid-market'.")] = None,
        deal: Annotated[str | None, Field(description="Deal id this call belongs to.")] = None,
        stage: Annotated[str | None, Field(description="The deal's stage at this call.")] = None,
        time: Annotated[str | None, Field(description="When the call happened (ISO 8601). Default: from the file, else now.")] = None,
        source_name: Annotated[str | None, Field(description="A name for the transcript (file name), shown in errors and reports.")] = None,
        format: Annotated[TranscriptFormat | None, Field(description="The transcript's format when detection should be skipped; default: detected.")] = None,
        detail: Annotated[Detail, DETAIL_FIELD] = "concise",
    ) -> ScoreResult:
        def work():
            res = calls_mod.score_call(
                coach, transcript, rep=rep, call_type=call_type, scorecard_id=scorecard, segment=segment, deal_id=deal, stage=stage,
                occurred_at=time, source_name=source_name, fmt=format,
            )
            trig = None if res.get("duplicate") else trigger_event(coach, "call.scored", f"call:{res['call']}")
            return res, run_loop(coach, trig)

        res, (loop, err) = await anyio.to_thread.run_sync(work)
        await log_actions(ctx, loop, err)
        return _score_result(coach, res, detail, loop, err)

    @mcp.tool(
        name="score_batch",
        annotations=annotations("Score many calls", read_only=False, idempotent=True),
        description=(
            "Score several call transcripts in one go (up to 50), with progress notifications, then let the loop react "
            "once. Use to backfill a rep's or team's recent calls. A bad transcript does not stop the batch: its error is "
            "reported in its result. Returns per transcript the call id, score and failed lines, and what the loop did."
        ),
    )
    @guard("score_batch")
    async def score_batch(
        items: Annotated[list[BatchItem], Field(min_length=1, max_length=50, description="The transcripts with their metadata.")],
        ctx: Context,
    ) -> BatchResult:
        total = len(items)
        out: list[BatchOutcome] = []
        for i, it in enumerate(items):
            try:
                res = await anyio.to_thread.run_sync(
                    lambda it=it: calls_mod.score_call(
                        coach, it.transcript, rep=it.rep, call_type=it.call_type, scorecard_id=it.scorecard, segment=it.segment,
                        deal_id=it.deal, stage=it.stage, occurred_at=it.time, source_name=it.source_name or f"item {i}", fmt=it.format,
                    )
                )
                out.append(BatchOutcome(index=i, ok=True, call_id=res["call"], rep=res["rep"], score=res.get("score"),
                                        failed=[ln["id"] for ln in res.get("lines") or [] if ln["verdict"] == "fail"], duplicate=bool(res.get("duplicate"))))
            except Exception as exc:
                from .common import _known_error_types, error_text, for_mcp

                if not isinstance(exc, _known_error_types()):
                    log.exception("score_batch item %d", i)
                out.append(BatchOutcome(index=i, ok=False, error=for_mcp(error_text(exc))))
            await ctx.report_progress(i + 1, total, f"scored {i + 1} of {total}")
        loop, err = await anyio.to_thread.run_sync(run_loop, coach)
        await log_actions(ctx, loop, err)
        ok = [o for o in out if o.ok]
        dups = sum(o.duplicate for o in ok)
        errors = total - len(ok)
        summary = f"scored {len(ok) - dups} new call(s), {dups} duplicate(s), {errors} error(s); the loop took {len(loop)} action(s)"
        nxt = "Fix the failed transcripts (see error) and send them again." if errors else "See the gaps with attribute, or the rep profiles (coachloop://reps/<id>)."
        return BatchResult(scored=len(ok) - dups, duplicates=dups, errors=errors, results=out, loop=loop, loop_error=err, summary=summary, next_action=nxt)

    @mcp.tool(
        name="rescore",
        annotations=annotations("Re-score stored calls", read_only=False, idempotent=True),
        description=(
            "Re-score every stored call of a scorecard with its current version (after the scorecard file changed), with "
            "progress notifications. Human overrides are kept. Use after editing a rubric line to see what flipped. "
            "Returns counts, the flips per line (e.g. budget_confirmed pass->fail: 3) and the flipped calls."
        ),
    )
    @guard("rescore")
    async def rescore(
        scorecard: Annotated[str, Field(description="Scorecard id, e.g. 'discovery'.")],
        ctx: Context,
        since: Annotated[str | None, Field(description="Only calls on or after this date/time (ISO 8601).")] = None,
        force: Annotated[bool, Field(description="Re-score calls already scored with the current version too.")] = False,
        limit: Annotated[int, Field(ge=1, le=100, description="Flipped verdicts to list (the counts always cover all).")] = 30,
    ) -> RescoreResult:
        import asyncio

        loop_ = asyncio.get_running_loop()

        def progress(done: int, total: int) -> None:
            fut = asyncio.run_coroutine_threadsafe(ctx.report_progress(done, total, f"re-scored {done} of {total} calls"), loop_)
            try:
                fut.result(timeout=5)
            except Exception:
                pass

        res = await anyio.to_thread.run_sync(lambda: calls_mod.rescore(coach, scorecard, since, progress, force=force, chunk=25))
        if res["calls"] == 0:
            await ctx.report_progress(0, 0, "no stored calls for this scorecard")
        loop, err = await anyio.to_thread.run_sync(run_loop, coach)
        await log_actions(ctx, loop, err)
        flips = [RescoreFlip(call=f["call"], rep=f.get("rep"), line=f["line"], before=f.get("before"), after=f.get("after"), overridden=bool(f.get("overridden"))) for f in res["flips"]]
        top = ", ".join(f"{line} {k}: {n}" for line, d in sorted(res["by_line"].items()) for k, n in d.items())
        summary = f"{res['scorecard']}@{res['version']}: {res['rescored']} of {res['calls']} call(s) re-scored ({res['skipped']} already current); {res['changed_calls']} changed" + (f"; {top}" if top else "")
        return RescoreResult(
            scorecard=res["scorecard"], version=res["version"], engine=res.get("engine"), calls=res["calls"], rescored=res["rescored"], skipped=res["skipped"],
            changed_calls=res["changed_calls"], by_line=res["by_line"], flips=flips[:limit], flips_total=len(flips), loop=loop, summary=clip(summary, 1500),
        )

    @mcp.tool(
        name="override_verdict",
        annotations=annotations("Override a verdict", read_only=False, idempotent=True),
        description=(
            "Replace the engine's verdict on one rubric line of a stored call with a human one (pass, fail or na) and a "
            "reason. The human verdict counts from then on, also after a rescore; the engine's is kept beside it. Use "
            "when a verdict is wrong against the quote. The dispute also teaches the engine: a wrongly passed quote "
            "becomes a near miss (fail example), and for a wrongly failed line the evidence turn (give `turn`) becomes a "
            "pass example, in the playbook file scorecards/examples/<scorecard>.yaml, used from the next call. Returns "
            "the new verdict, the previous one, the call's new score and the example written (file, text) or why none was."
        ),
    )
    @guard("override_verdict")
    async def override_verdict(
        call_id: Annotated[int, Field(description="The call's id.")],
        line: Annotated[str, Field(description="Rubric line id.")],
        verdict: Annotated[Literal["pass", "fail", "na"], Field(description="The correct verdict.")],
        reason: Annotated[str, Field(min_length=1, description="Why the engine's verdict is wrong.")],
        by: Annotated[str | None, Field(description="Who decided (name or email).")] = None,
        turn: Annotated[int | None, Field(description="Turn (0-based) that holds the evidence, if any; for a pass, the "
                                                      "turn whose words become the learned pass example.")] = None,
    ) -> OverrideResult:
        r = await anyio.to_thread.run_sync(lambda: calls_mod.override(coach, call_id, line, verdict, reason, by, turn=turn))
        ex = r.get("example") or {}
        learned = f"; {ex['note']}" if ex.get("note") else ""
        return OverrideResult(
            call_id=r["call"], line=r["line"], verdict=r["verdict"], before=r.get("before"), engine_verdict=r.get("engine_verdict"), by=r["by"],
            reason=r["reason"], score=r.get("score"), example=LearnedExampleOut(**ex) if ex else None,
            summary=clip(f"call {r['call']} line {r['line']}: {r.get('before')} -> {r['verdict']} by {r['by']}; score now {r.get('score')}{learned}", 1500),
        )


# =========================================================================== attribute


class GapOut(BaseModel):
    gap_id: int | None = None
    rep: str | None = None
    line: str
    scorecard: str
    statement: str = Field(description="The gap in one sentence, with numbers and calls.")
    misses: int | None = None
    window: int | None = None
    rep_rate: float | None = None
    team_rate: float | None = None
    severity: float | None = None
    call_ids: list[int] = Field(default_factory=list, description="Calls where the line was missed.")
    new: bool = Field(False, description="True when this call opened the gap.")
    opened_at: str | None = None


class TeamGapOut(BaseModel):
    line: str
    scorecard: str
    team_rate: float | None = None
    reps_with_gap: list[str] = Field(default_factory=list)
    statement: str


class AttributeResult(BaseModel):
    scope: str = Field(description="The rep id, or 'team'.")
    gaps: list[GapOut] = Field(description="Open gaps, most severe first (one page).")
    total: int
    next_cursor: str | None = None
    team_gaps: list[TeamGapOut] = Field(default_factory=list, description="Team mode: lines the whole team misses.")
    loop: list[LoopAction] = Field(default_factory=list, description="What the loop did for newly opened gaps.")
    summary: str
    next_action: str


def _gap_out(g: dict) -> GapOut:
    return GapOut(
        gap_id=g.get("gap_id") or g.get("id"), rep=g.get("rep") or g.get("rep_id"), line=g.get("line") or g.get("line_id"),
        scorecard=g.get("scorecard") or g.get("scorecard_id"), statement=clip(g.get("statement"), 600), misses=g.get("misses"),
        window=g.get("window"), rep_rate=g.get("rep_rate"), team_rate=g.get("team_rate"), severity=g.get("severity"),
        call_ids=[int(c) for c in (g.get("call_ids") or [])][:20], new=bool(g.get("new")), opened_at=g.get("opened_at"),
    )


def _register_attribute(mcp, coach: Coach) -> None:
    from tools import attribute as attr_mod

    @mcp.tool(
        name="attribute",
        annotations=annotations("Find behaviour gaps", read_only=False, idempotent=True),
        description=(
            "Turn scores into behaviour gaps: for one rep (or the whole team) find the rubric lines missed repeatedly "
            "across recent calls, stated with numbers and calls, e.g. \"skipped budget_confirmed on 3 of the last 5 "
            "mid-market discovery calls (team: 80%)\". New gaps are recorded (never twice) and the loop assigns practice. "
            "Use to see what to coach. Returns the open gaps (paginated) with statements and call ids, and team-wide gaps."
        ),
    )
    @guard("attribute")
    def attribute(
        rep: Annotated[str | None, Field(description="Rep id or name; omit for the whole team.")] = None,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page.")] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="Gaps per page.")] = 20,
    ) -> AttributeResult:
        rid = rep_id_of(coach, rep) if rep else None
        fresh = attr_mod.attribute(coach, rid)
        new_ids = {g.get("gap_id") for g in fresh if g.get("new")}
        opened = [g["event_id"] for g in fresh if g.get("new") and isinstance(g.get("event_id"), int)]
        loop, _ = run_loop(coach, opened) if new_ids else ([], None)
        gaps = attr_mod.open_gaps(coach, rid)
        outs = []
        for g in gaps:
            o = _gap_out(g)
            o.new = o.gap_id in new_ids
            outs.append(o)
        chunk, nxt, total = page(outs, cursor, limit)
        team = []
        if rid is None:
            team = [TeamGapOut(line=t["line"], scorecard=t["scorecard"], team_rate=t.get("team_rate"), reps_with_gap=t.get("reps_with_gap", [])[:30], statement=clip(t["statement"], 400)) for t in attr_mod.team_gaps(coach)[:20]]
        scope = rid or "team"
        summary = f"{scope}: {total} open gap(s)" + (f", {len(new_ids)} new" if new_ids else "") + (f"; most severe: {chunk[0].statement}" if chunk else "")
        if chunk:
            nxt_action = f"For each gap, assign practice with assign_path(rep, gap_id) (or generate_scenario(gap_id) first if no path covers the line). Start with gap {chunk[0].gap_id}."
        else:
            nxt_action = "No open gaps. Score more calls with score; a gap needs several applicable calls."
        return AttributeResult(scope=scope, gaps=chunk, total=total, next_cursor=nxt, team_gaps=team, loop=loop, summary=clip(summary, 800), next_action=nxt_action)


# =========================================================================== generate_scenario


class ScenarioResult(BaseModel):
    scenario_id: str
    path: str = Field(description="File inside the playbook.")
    version: str | None = None
    created: bool = Field(description="False when the same file already existed.")
    gap_id: int | None = None
    rep: str | None = None
    scorecard: str | None = None
    line: str | None = None
    call_ids: list[int] = Field(default_factory=list, description="The calls the scenario was built from.")
    difficulty: int | None = None
    buyer: str | None = Field(None, description="The AI buyer's persona.")
    opening: str | None = Field(None, description="The buyer's first words.")
    uri: str
    next_action: str


def _register_scenario(mcp, coach: Coach) -> None:
    from tools import scenario as scen_mod

    @mcp.tool(
        name="generate_scenario",
        annotations=annotations("Write a practice scenario", read_only=False, idempotent=True),
        description=(
            "Write a roleplay scenario (a playbook file, scenarios/<id>.md) for a gap, built from the very calls where the "
            "rep missed the line: the buyer's persona, hidden facts the rep must earn with the right question, objections. "
            "Give a gap_id, or a rep and line. Use when no existing scenario fits a gap. Returns the scenario id and path, "
            "the buyer and opening line, and the next step."
        ),
    )
    @guard("generate_scenario")
    def generate_scenario(
        gap_id: Annotated[int | None, Field(description="The gap to practise (from attribute).")] = None,
        rep: Annotated[str | None, Field(description="Rep id or name, with line, instead of gap_id.")] = None,
        line: Annotated[str | None, Field(description="Rubric line id, with rep.")] = None,
        call_ids: Annotated[list[int] | None, Field(description="Calls to build from (default: the gap's missed calls).")] = None,
        difficulty: Annotated[int | None, Field(ge=1, le=5, description="1 (easy) to 5 (hard).")] = None,
    ) -> ScenarioResult:
        if gap_id is None and not (rep and line):
            raise ToolError("give gap_id (from attribute), or both rep and line")
        rid = rep_id_of(coach, rep) if rep else None
        r = scen_mod.generate_scenario(coach, gap_id, rep_id=rid, line_id=line, call_ids=call_ids, difficulty=difficulty)
        art = coach.playbook.get("scenarios", r["scenario_id"])
        m = art.model if art else None
        return ScenarioResult(
            scenario_id=r["scenario_id"], path=r["path"], version=r.get("version"), created=bool(r.get("created")), gap_id=r.get("gap_id"),
            rep=r.get("rep_id"), scorecard=r.get("scorecard_id"), line=r.get("line_id"), call_ids=list(r.get("call_ids") or [])[:20],
            difficulty=r.get("difficulty"), buyer=f"{m.persona.name}, {m.persona.role}" + (f" at {m.persona.company}" if m.persona.company else "") if m else None,
            opening=clip(m.opening, 300) if m else None, uri=f"playbook://scenarios/{r['scenario_id']}",
            next_action=f"Assign practice with assign_path (rep '{r.get('rep_id')}'" + (f", gap_id={r.get('gap_id')}" if r.get("gap_id") else "") + f"), or practise now with roleplay_start(rep, scenario='{r['scenario_id']}').",
        )


# =========================================================================== metrics


class MetricOut(BaseModel):
    name: str
    title: str | None = None
    unit: str | None = None
    value: Any = None
    method: str | None = Field(None, description="How it was computed.")
    data: dict = Field(default_factory=dict, description="The rest of the metric's figures (breakdowns, series, details; lists capped).")


class MetricsResult(BaseModel):
    scope: dict
    generated_at: str | None = None
    metrics: list[MetricOut]
    summary: str


def _register_metrics(mcp, coach: Coach) -> None:
    from tools import metrics as met_mod

    known = [m["name"] for m in met_mod.describe()]

    @mcp.tool(
        name="metrics",
        annotations=annotations("Team and rep metrics", read_only=True),
        description=(
            "Report the numbers the loop should move, for the team, a team name or one rep, over a period: "
            f"{', '.join(known)}. Each metric says how it was computed. Use to check progress or who has practised. "
            "weekly=true adds a weekly series; detail='detailed' adds the rows behind each number (capped)."
        ),
    )
    @guard("metrics")
    def metrics(
        names: Annotated[list[str] | None, Field(description="Metric names to compute (default: all; the tool description lists them).")] = None,
        rep: Annotated[str | None, Field(description="One rep (id or name).")] = None,
        team: Annotated[str | None, Field(description="One team.")] = None,
        since: Annotated[str | None, Field(description="From this date (YYYY-MM-DD), inclusive.")] = None,
        until: Annotated[str | None, Field(description="Until this date (YYYY-MM-DD), inclusive.")] = None,
        weekly: Annotated[bool, Field(description="Add a weekly series.")] = False,
        detail: Annotated[Detail, DETAIL_FIELD] = "concise",
    ) -> MetricsResult:
        rid = rep_id_of(coach, rep) if rep else None
        res = met_mod.compute_metrics(coach, names or None, rep=rid, team=team, since=since, until=until, weekly=weekly, details=detail == "detailed")
        cap = 25 if detail == "detailed" else 10
        out = []
        for n, m in res["metrics"].items():
            rest = {k: v for k, v in m.items() if k not in ("name", "title", "unit", "value", "method")}
            out.append(MetricOut(name=n, title=m.get("title"), unit=m.get("unit"), value=shrink(m.get("value"), cap), method=m.get("method"), data=shrink(rest, cap)))
        parts = [f"{m.name}={m.value if not isinstance(m.value, (dict, list)) else '…'}{'' if m.unit in (None, '') else ' ' + m.unit}" for m in out]
        return MetricsResult(scope=res["scope"], generated_at=res.get("generated_at"), metrics=out, summary=clip(f"{res['scope'].get('label')}: " + "; ".join(parts), 1500))


# =========================================================================== gates (also used by the HTTP /gates endpoint)


class GateOut(BaseModel):
    gate_id: int | None = None
    activity: str | None = None
    status: str | None = None
    certification: str | None = None
    gap_id: int | None = None
    reason: str | None = None
    action: str | None = None


class GateCheckResult(BaseModel):
    rep: str
    activity: str
    allowed: bool = Field(description="True when the rep may do the activity now.")
    status: str = Field(description="allowed, blocked, shadow (allowed, but a shadow gate would block once the rubric is trusted) or not_gated (the activity is not gated).")
    reason: str = Field(description="Why, in one sentence.")
    action: str | None = Field(None, description="What the rep must do to be cleared.")
    gates: list[GateOut] = Field(default_factory=list)


def gate_result(raw: Any, rep: str, activity: str) -> GateCheckResult:
    d = raw if isinstance(raw, dict) else {"allowed": bool(raw)}
    gates = []
    for g in list(d.get("gates") or []) + list(d.get("shadow") or []):
        gates.append(GateOut(gate_id=g.get("gate_id") or g.get("id"), activity=g.get("activity") or d.get("activity") or activity, status=g.get("status"),
                             certification=g.get("certification_id") or g.get("certification"), gap_id=g.get("gap_id"),
                             reason=clip(for_mcp(g.get("reason")), 300), action=clip(for_mcp(g.get("action")), 300)))
    allowed = bool(d.get("allowed", d.get("ok", True)))
    status = d.get("status") or ("allowed" if allowed and not gates else ("blocked" if not allowed else "shadow"))
    reason = d.get("reason") or d.get("message") or ("no active gate" if allowed else "blocked")
    return GateCheckResult(rep=d.get("rep") or d.get("rep_id") or rep, activity=d.get("activity") or activity, allowed=allowed, status=status,
                           reason=clip(for_mcp(reason), 500), action=clip(for_mcp(d.get("action")), 500) or None, gates=gates[:20])


# =========================================================================== register


def register(mcp, coach: Coach) -> None:
    for fn in (_register_calls, _register_attribute, _register_scenario, _register_metrics):
        fn(mcp, coach)
    from . import practice_tools

    practice_tools.register(mcp, coach)
