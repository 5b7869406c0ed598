"""Tools that feed the loop its reference data: reps and deals."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from store.deals import record_deal as _record_deal
from store.reps import set_quota
from store.reps import upsert_rep as _upsert_rep
from tools.context import Coach
from tools.importer import parse_period

from .common import annotations, guard


class RepOut(BaseModel):
    id: str = Field(description="The rep id (a slug); use it as rep in other tools.")
    name: str
    team: str | None = None
    manager: str | None = None
    segment: str | None = None
    hire_date: str | None = None
    quota: float | None = None
    email: str | None = None
    aliases: list[str] = Field(default_factory=list, description="Other spellings matched in transcripts.")
    period_quota: dict | None = Field(None, description="With period: {rep_id, period, quota, attained} as stored.")
    created: bool = Field(description="True when this call added the rep.")
    uri: str = Field(description="Resource with the rep's profile.")


class DealStage(BaseModel):
    stage: str
    at: str | None = None


class DealOut(BaseModel):
    id: str
    name: str | None = None
    rep: str | None = Field(None, description="Rep id owning the deal.")
    segment: str | None = None
    amount: float | None = None
    stage: str | None = None
    outcome: str = Field(description="open, won or lost.")
    created_at: str | None = None
    closed_at: str | None = None
    stages: list[DealStage] = Field(default_factory=list, description="Stage history, oldest first.")
    created: bool


def register(mcp, coach: Coach) -> None:
    @mcp.tool(
        name="upsert_rep",
        annotations=annotations("Add or update a rep", read_only=False, idempotent=True),
        description=(
            "Add a sales rep to the roster or update their fields (fields not given keep their values). "
            "Use before scoring a rep's first call so the transcript's speaker resolves to them, or to record team, "
            "segment, hire date (for ramp time) and quota. With `period`, `quota` and `attained` are that period's "
            "quota and attainment (for ramp time and the quota attainment spread). Returns the rep with their id."
        ),
    )
    @guard("upsert_rep")
    def upsert_rep(
        name: Annotated[str, Field(description="Full name as it appears in transcripts, e.g. 'Priya Raman'.")],
        id: Annotated[str | None, Field(description="Stable id (slug); default: a slug of the name. Give it to rename a rep.")] = None,
        team: Annotated[str | None, Field(description="Team name.")] = None,
        manager: Annotated[str | None, Field(description="Manager's name.")] = None,
        segment: Annotated[str | None, Field(description="Segment, e.g. 'mid-market'.")] = None,
        hire_date: Annotated[str | None, Field(description="YYYY-MM-DD; used for ramp time.")] = None,
        quota: Annotated[float | None, Field(ge=0, description="Quota for the current period.")] = None,
        email: Annotated[str | None, Field(description="Email address.")] = None,
        aliases: Annotated[list[str] | None, Field(description="Other spellings of the name seen in transcripts.")] = None,
        period: Annotated[str | None, Field(description="Quota period the quota/attained values are for: 2026-03, 2026-Q2, Mar 2026.")] = None,
        attained: Annotated[float | None, Field(ge=0, description="Amount attained in `period` (needs period).")] = None,
    ) -> RepOut:
        if attained is not None and not period:
            raise ValueError("attained needs a period: pass period='2026-03' (a month, quarter or year)")
        qperiod = parse_period(period) if period else None
        with coach.store.transaction():
            before = coach.store.one("select count(*) as n from reps")["n"]
            r = _upsert_rep(coach.store, name, id=id, team=team, manager=manager, segment=segment, hire_date=hire_date,
                            quota=None if qperiod else quota, email=email, aliases=aliases)
            after = coach.store.one("select count(*) as n from reps")["n"]
            q = set_quota(coach.store, r["id"], qperiod, quota=quota, attained=attained) if qperiod else None
        fields = {k: r.get(k) for k in ("id", "name", "team", "manager", "segment", "hire_date", "quota", "email")}
        return RepOut(**fields, aliases=list(r.get("aliases") or []), period_quota=q, created=after > before, uri=f"coachloop://reps/{r['id']}")

    @mcp.tool(
        name="record_deal",
        annotations=annotations("Record a deal", read_only=False, idempotent=True),
        description=(
            "Create or update a deal (CRM opportunity): owner rep, amount, segment, stage and outcome. Each new stage "
            "is appended to the deal's history; outcome won/lost closes it. Use so that calls can be linked to deals and "
            "metrics can report win rate by stage and cycle time. Returns the deal with its stage history."
        ),
    )
    @guard("record_deal")
    def record_deal(
        id: Annotated[str, Field(description="The deal's id (e.g. the CRM opportunity id).")],
        rep: Annotated[str | None, Field(description="Owner: rep id, name or alias already on the roster.")] = None,
        name: Annotated[str | None, Field(description="Deal name.")] = None,
        amount: Annotated[float | None, Field(ge=0, description="Deal amount.")] = None,
        stage: Annotated[str | None, Field(description="Current stage, e.g. 'discovery', 'demo', 'negotiation'.")] = None,
        outcome: Annotated[Literal["open", "won", "lost"] | None, Field(description="open, won or lost.")] = None,
        segment: Annotated[str | None, Field(description="Segment, e.g. 'mid-market'.")] = None,
        at: Annotated[str | None, Field(description="When this stage/outcome happened (ISO 8601); default now.")] = None,
    ) -> DealOut:
        existed = coach.store.one("select id from deals where id = ?", (id.strip(),)) is not None
        d = _record_deal(coach.store, id, name=name, rep=rep, amount=amount, stage=stage, outcome=outcome, at=at, segment=segment)
        return DealOut(
            id=d["id"], name=d.get("name"), rep=d.get("rep_id"), segment=d.get("segment"), amount=d.get("amount"), stage=d.get("stage"),
            outcome=d.get("outcome") or "open", created_at=d.get("created_at"), closed_at=d.get("closed_at"),
            stages=[DealStage(stage=s["stage"], at=s.get("at")) for s in d.get("stages", [])], created=not existed,
        )
