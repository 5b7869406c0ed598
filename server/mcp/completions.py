"""`completion/complete`: suggestions for prompt arguments and resource template variables
(rep ids, call ids, rubric line ids, playbook artifact ids), filtered by the typed prefix."""
from __future__ import annotations

from typing import Any

import anyio
from mcp_types import Completion, PromptReference, ResourceTemplateReference

from playbook.models import KINDS
from tools.context import Coach

MAX_VALUES = 100


def _reps(coach: Coach) -> list[str]:
    return [r["id"] for r in coach.store.query("select id from reps where active = 1 order by id limit 1000")]


def _calls(coach: Coach) -> list[str]:
    return [str(r["id"]) for r in coach.store.query("select id from calls order by id desc limit 200")]


def _lines(coach: Coach) -> list[str]:
    seen: list[str] = []
    for art in coach.playbook.all("scorecards"):
        for ln in art.model.lines:
            if ln.id not in seen:
                seen.append(ln.id)
    return seen


def candidates(coach: Coach, ref: Any, name: str) -> list[str]:
    if isinstance(ref, PromptReference):
        return {
            ("coach_rep", "rep"): _reps,
            ("review_call", "call_id"): _calls,
            ("rollout_playbook_change", "line"): _lines,
        }.get((ref.name, name), lambda c: [])(coach)
    if isinstance(ref, ResourceTemplateReference):
        uri = ref.uri
        for kind in KINDS:
            if uri == f"playbook://{kind}/{{id}}" and name == "id":
                return [a.id for a in coach.playbook.all(kind)]
        if uri == "coachloop://reps/{rep}" and name == "rep":
            return _reps(coach)
        if uri == "coachloop://calls/{call_id}" and name == "call_id":
            return _calls(coach)
    return []


def register(mcp, coach: Coach) -> None:
    @mcp.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> Completion:
        values = await anyio.to_thread.run_sync(candidates, coach, ref, argument.name)
        prefix = (argument.value or "").lower()
        hits = [v for v in values if v.lower().startswith(prefix)] or [v for v in values if prefix in v.lower()]
        return Completion(values=hits[:MAX_VALUES], total=len(hits), has_more=len(hits) > MAX_VALUES)
