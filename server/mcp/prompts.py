"""Prompts: ready-made instructions for an agent running one piece of the loop with the tools."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from tools.context import Coach


def register(mcp, coach: Coach) -> None:
    @mcp.prompt(
        name="coach_rep",
        title="Coach a rep",
        description="Walk one rep's open gaps with the evidence and assign practice for each.",
    )
    def coach_rep(
        rep: Annotated[str, Field(description="Rep id or name, e.g. 'priya-raman'.")],
    ) -> str:
        return f"""You are coaching the sales rep "{rep}" with the coachloop tools.

1. Read the rep's profile (resource coachloop://reps/{rep}) or call `attribute` with rep="{rep}" to get
   their open gaps. Each gap has a statement with numbers and the calls where the line was missed.
2. For each open gap, most severe first:
   a. Quote the evidence: read one or two of the missed calls (resource coachloop://calls/<id>) and cite
      the rubric line's verdict and the quote.
   b. Check `playbook_list` (kind="paths") for a learning path covering the line. If there is one, call
      `assign_path` with the gap id. If there is none, call `generate_scenario` with the gap id (it writes a
      scenario from the very calls where it went wrong), then `assign_path`.
   c. Say which gate (if any) now blocks the rep (`gate_check`) and what they must pass to lift it.
3. Finish with a short plan for the rep: each gap's sentence, the practice assigned, and the due date.
Keep it factual: every claim must come from a tool result."""

    @mcp.prompt(
        name="review_call",
        title="Review a call",
        description="Review one scored call line by line with the evidence, and say what to practise.",
    )
    def review_call(
        call_id: Annotated[str, Field(description="The call's id (from `score` or a rep profile).")],
    ) -> str:
        return f"""Review call {call_id} with the coachloop tools.

1. Read the scored call: resource coachloop://calls/{call_id}. It has every rubric line's verdict, the turn
   and the evidence quote.
2. Write the review: what the rep did well (passed lines, with quotes), what they missed (failed lines, with
   the quote or the absence of one), and the single most valuable behaviour to change.
3. If a verdict looks wrong against the quote, say so and, if asked, correct it with `override_verdict`
   (give the reason).
4. Check whether the misses form a pattern: call `attribute` for the rep. If a gap is open on a missed line,
   point to its practice assignment (or assign one with `assign_path`)."""

    @mcp.prompt(
        name="rollout_playbook_change",
        title="Roll out a playbook change",
        description="Write a new scenario for a rubric line, validate it, assign it, and check who has practised.",
    )
    def rollout_playbook_change(
        line: Annotated[str, Field(description="The rubric line the change is about, e.g. 'budget_confirmed'.")],
        change: Annotated[str, Field(description="What changed in the playbook, in plain words.")] = "",
    ) -> str:
        what = f' The change: "{change}".' if change else ""
        return f"""Roll out a playbook change on the rubric line "{line}".{what}

1. Read the scorecard that holds the line (`playbook_list` kind="scorecards", then `playbook_read`) and an
   existing scenario as a model (`playbook_read` a scenarios/*.md file).
2. Write the new or updated scenario with `playbook_write` (path scenarios/<id>.md: YAML front matter with
   id, title, scorecard, targets: [{line}], persona, opening, facts, then the persona prose). If it is
   refused, fix every listed problem and write again.
3. Add the scenario to a learning path (`playbook_read` / `playbook_write` paths/<id>.yaml), then run
   `validate_playbook` and confirm ok is true.
4. Assign the path to the reps who need it: those with an open gap on "{line}" (`attribute`, team-wide) -
   call `assign_path` for each.
5. Check who has practised: `metrics` (practice and rollout figures) and each rep's profile
   (coachloop://reps/<id>) for assignments passed. Report who has and has not, and the due date."""
