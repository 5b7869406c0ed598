"""Remediation tools: assign_path, roleplay_start / roleplay_reply / roleplay_end, certify,
gate_check, lift_gate. Each wraps tools/paths, tools/roleplay, tools/certify, tools/gates."""
from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from tools import certify as cert_mod
from tools import gates as gates_mod
from tools import paths as paths_mod
from tools import roleplay as rp
from tools.context import Coach

from .common import annotations, clip, for_mcp, guard
from .loop_tools import DETAIL_FIELD, Detail, GateCheckResult, GateOut, LoopAction, gate_result, rep_id_of, run_loop, trigger_event


class AssignmentResult(BaseModel):
    assignment_id: int
    rep: str
    gap_id: int | None = None
    path_id: str | None = None
    scenarios: list[str] = Field(description="Scenarios to practise, in order.")
    certifications: list[str] = Field(default_factory=list, description="Certifications the practice leads to (they lift the gates).")
    status: str
    due: str | None = None
    duplicate: bool = Field(description="True when the gap already had an open assignment (returned, not duplicated).")
    summary: str
    next_action: str


class SessionStart(BaseModel):
    session_id: str = Field(description="Pass to roleplay_reply and roleplay_end.")
    rep: str
    scenario_id: str
    title: str | None = None
    buyer_name: str | None = None
    buyer_role: str | None = None
    targets: list[str] = Field(description="Rubric lines this practice is judged on.")
    buyer: str = Field(description="The buyer's opening words: reply to them with roleplay_reply.")
    engine: str
    assignment_id: int | None = None
    next_action: str


class SessionReply(BaseModel):
    session_id: str
    buyer: str = Field(description="The buyer's answer.")
    turn: int
    revealed: list[str] = Field(default_factory=list, description="Hidden facts the rep's question just earned.")
    objection: str | None = None
    deflected: bool = False
    rep_turns: int | None = None
    next_action: str


class PracticeVerdict(BaseModel):
    id: str
    verdict: str
    turn: int | None = None
    quote: str = ""
    reason: str = ""


class SessionEnd(BaseModel):
    session_id: str
    rep: str
    scenario_id: str
    passed: bool
    score: float | None = None
    verdicts: list[PracticeVerdict]
    failed_lines: list[str]
    loop: list[LoopAction] = Field(default_factory=list, description="What the loop did: certification judged, gates lifted, next practice assigned.")
    loop_error: str | None = None
    summary: str
    next_action: str


class CertifyResult(BaseModel):
    session_id: str
    rep: str
    status: str = Field(description="passed, failed, needs_manager (attempts used up) or uncertified (no certification covers this practice).")
    certification_id: str | None = None
    score: float | None = None
    pass_mark: float | None = None
    attempt: int | None = None
    attempts_allowed: int | None = None
    lines: list[dict] = Field(default_factory=list)
    lifted: list[GateOut] = Field(default_factory=list, description="Gates this certification lifted.")
    next_scenario: str | None = None
    next_assignment: int | None = None
    reason: str | None = None
    summary: str
    next_action: str


class LiftResult(BaseModel):
    rep: str
    lifted: list[GateOut]
    summary: str


def register(mcp, coach: Coach) -> None:
    @mcp.tool(
        name="assign_path",
        annotations=annotations("Assign practice", read_only=False, idempotent=True),
        description=(
            "Assign a learning path (its practice scenarios, leading to a certification) to a rep: for a gap (the path "
            "covering the gap's line, plus any scenario generated from the gap's calls), or a named path or scenarios. "
            "A gap never gets two open assignments. Use after attribute or score opened a gap. Returns the assignment: "
            "scenarios in order, the certification that lifts the gates, due date and next step."
        ),
    )
    @guard("assign_path")
    def assign_path(
        rep: Annotated[str, Field(description="Rep id or name.")],
        gap_id: Annotated[int | None, Field(description="The gap to remediate (from attribute or score).")] = None,
        path_id: Annotated[str | None, Field(description="A learning path id (playbook_list kind='paths').")] = None,
        scenarios: Annotated[list[str] | None, Field(description="Scenario ids, instead of a path.")] = None,
        due: Annotated[str | None, Field(description="Due date (YYYY-MM-DD).")] = None,
    ) -> AssignmentResult:
        if gap_id is None and not path_id and not scenarios:
            raise ToolError("give gap_id (from attribute), path_id or scenarios")
        rid = rep_id_of(coach, rep)
        a = paths_mod.assign_path(coach, rid, gap_id=gap_id, path_id=path_id, scenario_ids=scenarios,
                                  source="gap" if gap_id is not None else "manual", due=due)
        scen = list(a.get("scenario_ids") or [])
        first = scen[0] if scen else None
        summary = (f"assignment {a['assignment_id']} for {rid}" + (f" (gap {a.get('gap_id')})" if a.get("gap_id") else "")
                   + f": practise {', '.join(scen)}" + (f"; certifies {', '.join(a.get('certifications') or [])}" if a.get("certifications") else "")
                   + (" (already assigned)" if a.get("duplicate") else ""))
        return AssignmentResult(
            assignment_id=a["assignment_id"], rep=rid, gap_id=a.get("gap_id"), path_id=a.get("path_id"), scenarios=scen,
            certifications=list(a.get("certifications") or []), status=a.get("status") or "assigned", due=a.get("due"),
            duplicate=bool(a.get("duplicate")), summary=summary,
            next_action=f"Start the practice with roleplay_start(rep='{rid}', scenario='{first}')." if first else "No scenario to practise.",
        )

    @mcp.tool(
        name="roleplay_start",
        annotations=annotations("Start a practice roleplay", read_only=False),
        description=(
            "Start a practice conversation between a rep and an AI buyer played from a playbook scenario. The buyer "
            "reveals hidden facts only to the questions that earn them, raises objections, and may try to cut the call "
            "short. Links to the rep's open assignment for that scenario. Returns a session id and the buyer's opening "
            "words; continue with roleplay_reply (the rep's words) and finish with roleplay_end."
        ),
    )
    @guard("roleplay_start")
    def roleplay_start(
        rep: Annotated[str, Field(description="Rep id or name.")],
        scenario: Annotated[str, Field(description="Scenario id (from assign_path, generate_scenario or playbook_list).")],
        assignment_id: Annotated[int | None, Field(description="The assignment this practice belongs to (default: the rep's open one for this scenario).")] = None,
    ) -> SessionStart:
        r = rp.start_session(coach, rep, scenario, assignment_id)
        info = r.get("scenario") or {}
        persona = info.get("persona") if isinstance(info.get("persona"), dict) else {}
        return SessionStart(
            session_id=r["session_id"], rep=r["rep_id"], scenario_id=scenario, title=info.get("title"),
            buyer_name=persona.get("name") or info.get("buyer"), buyer_role=persona.get("role"), targets=list(r.get("targets") or []),
            buyer=r["buyer"], engine=r.get("engine") or "offline", assignment_id=r.get("assignment_id"),
            next_action=f"Answer as the rep with roleplay_reply(session_id='{r['session_id']}', text=...). Aim at: {', '.join(r.get('targets') or [])}.",
        )

    @mcp.tool(
        name="roleplay_reply",
        annotations=annotations("Say something to the AI buyer", read_only=False),
        description=(
            "Send the rep's next words in a practice session and get the AI buyer's answer, with which hidden facts the "
            "question earned, any objection raised, and whether the buyer tried to deflect. Use once per rep turn; end "
            "the session with roleplay_end when the rep has covered the target lines."
        ),
    )
    @guard("roleplay_reply")
    def roleplay_reply(
        session_id: Annotated[str, Field(description="From roleplay_start.")],
        text: Annotated[str, Field(min_length=1, max_length=4000, description="What the rep says.")],
    ) -> SessionReply:
        r = rp.reply(coach, session_id, text)
        return SessionReply(
            session_id=r["session_id"], buyer=r["buyer"], turn=r["turn"], revealed=list(r.get("revealed") or []),
            objection=r.get("objection") if isinstance(r.get("objection"), str) or r.get("objection") is None else str(r.get("objection")),
            deflected=bool(r.get("deflected")), rep_turns=r.get("rep_turns"),
            next_action="Reply again with roleplay_reply, or finish with roleplay_end to be scored.",
        )

    @mcp.tool(
        name="roleplay_end",
        annotations=annotations("End and score a practice", read_only=False, idempotent=True),
        description=(
            "End a practice session: score it on the scenario's target lines, then let the loop react (certify the rep "
            "when a certification covers the practice, lift the gates on a pass, assign the next practice on a fail). "
            "Ending twice returns the stored result. Returns pass/fail, each target line's verdict with the quote, and "
            "what the loop did."
        ),
    )
    @guard("roleplay_end")
    def roleplay_end(
        session_id: Annotated[str, Field(description="From roleplay_start.")],
        detail: Annotated[Detail, DETAIL_FIELD] = "concise",
    ) -> SessionEnd:
        r = rp.end_session(coach, session_id)
        loop, err = run_loop(coach, trigger_event(coach, "practice.ended", f"session:{r['session_id']}"))
        n = 10_000 if detail == "detailed" else 200
        verdicts = [PracticeVerdict(id=v["id"], verdict=v["verdict"], turn=v.get("turn"), quote=clip(v.get("quote"), n), reason=clip(v.get("reason"), n)) for v in r.get("verdicts") or []]
        failed = list(r.get("failed_lines") or [])
        cert = next((a for a in loop if a.kind.startswith("certification.")), None)
        if r.get("passed"):
            nxt = cert.text if cert else "Passed. The gap closes when the next live call passes the line: score it with score."
        else:
            nxt = (cert.text + ". " if cert else "") + f"Practise again (roleplay_start) focusing on {', '.join(failed)}."
        return SessionEnd(
            session_id=r["session_id"], rep=r["rep_id"], scenario_id=r["scenario_id"], passed=bool(r.get("passed")), score=r.get("score"),
            verdicts=verdicts, failed_lines=failed, loop=loop, loop_error=err,
            summary=f"practice {r['session_id']} ({r['scenario_id']}): {'passed' if r.get('passed') else 'failed'}" + (f"; missed {', '.join(failed)}" if failed else ""),
            next_action=nxt,
        )

    @mcp.tool(
        name="certify",
        annotations=annotations("Certify a practice", read_only=False, idempotent=True),
        description=(
            "Judge an ended practice session against the certification covering it: on a pass the rep is certified and "
            "the gates that certification holds are lifted; on a fail the next practice is assigned (after the allowed "
            "attempts, a manager must review). Judging the same session again returns the stored result. Returns the "
            "status, the lines judged, gates lifted and the next step."
        ),
    )
    @guard("certify")
    def certify(
        session_id: Annotated[str, Field(description="An ended practice session (roleplay_end).")],
    ) -> CertifyResult:
        r = cert_mod.certify(coach, session_id)
        status = r.get("status") or "uncertified"
        lifted = [GateOut(gate_id=g.get("gate_id") or g.get("id"), activity=g.get("activity"), status=g.get("status"), certification=g.get("certification_id"), gap_id=g.get("gap_id"))
                  for g in (r.get("lifted") or []) if isinstance(g, dict)]
        nxt = {
            "passed": "Certified. The gap now waits for the next live call on the line: score it with score.",
            "failed": f"Not yet: practise {r.get('next_scenario') or 'again'} (roleplay_start).",
            "needs_manager": "Attempts used up: a manager reviews the practice and lifts the gate with lift_gate.",
        }.get(status, r.get("reason") or "No certification covers this practice.")
        summary = f"{r.get('rep_id')}: {status}" + (f" {r.get('certification_id')}" if r.get("certification_id") else "") + (f" (score {r['score']:.2f})" if isinstance(r.get("score"), (int, float)) else "") + (f"; lifted {len(lifted)} gate(s)" if lifted else "")
        return CertifyResult(
            session_id=r.get("session_id") or session_id, rep=r.get("rep_id") or "", status=status, certification_id=r.get("certification_id"),
            score=r.get("score"), pass_mark=r.get("pass_mark"), attempt=r.get("attempt"), attempts_allowed=r.get("attempts_allowed"),
            lines=list(r.get("lines") or [])[:30], lifted=lifted, next_scenario=r.get("next_scenario"), next_assignment=r.get("next_assignment"),
            reason=for_mcp(r.get("reason")) or None, summary=summary, next_action=for_mcp(nxt),
        )

    @mcp.tool(
        name="gate_check",
        annotations=annotations("May the rep do this activity?", read_only=True),
        description=(
            "Ask whether a rep may do a gated activity now (e.g. dial, demo, renewal_call): allowed or blocked, why, and "
            "what the rep must do to be cleared (which practice or certification). Use before each call in a dialer or "
            "queue, or to explain a block. The same answer is served at GET /gates/{rep}/{activity} over HTTP."
        ),
    )
    @guard("gate_check")
    def gate_check(
        rep: Annotated[str, Field(description="Rep id or name.")],
        activity: Annotated[str, Field(description="The activity, e.g. 'dial', 'demo', 'renewal_call' (gated_activities in playbook.yaml).")],
    ) -> GateCheckResult:
        return gate_result(gates_mod.gate_check(coach, rep, activity), rep, activity)

    @mcp.tool(
        name="lift_gate",
        annotations=annotations("Lift a gate by hand", read_only=False, destructive=True, idempotent=False),
        description=(
            "Lift a rep's open gates by hand (a manager's decision): all of them, those on one activity, or one gate id. "
            "Who and why are required and logged. Use only when a manager has reviewed the practice (e.g. after the "
            "allowed attempts); normally certification lifts gates. Returns the gates lifted."
        ),
    )
    @guard("lift_gate")
    def lift_gate(
        rep: Annotated[str, Field(description="Rep id or name.")],
        by: Annotated[str, Field(min_length=1, description="Who is lifting it (name or email).")],
        reason: Annotated[str, Field(min_length=1, description="Why; it is logged.")],
        activity: Annotated[str | None, Field(description="Only gates on this activity.")] = None,
        gate_id: Annotated[int | None, Field(description="Only this gate.")] = None,
    ) -> LiftResult:
        rows = gates_mod.lift(coach, rep, activity, by=by, reason=reason, gate_id=gate_id)
        lifted = [GateOut(gate_id=g.get("gate_id") or g.get("id"), activity=g.get("activity"), status=g.get("status"), certification=g.get("certification_id"),
                          gap_id=g.get("gap_id"), reason=clip(g.get("lift_reason") or g.get("reason"), 200)) for g in rows]
        rid = rows[0]["rep_id"] if rows else rep
        return LiftResult(rep=rid, lifted=lifted, summary=f"lifted {len(lifted)} gate(s) of {rid}: " + ", ".join(f"{g.activity} (gate {g.gate_id})" for g in lifted))
