"""The playbook's schema: one pydantic model per plain-text artifact.

Files on disk:
  playbook.yaml                      -> Policy
  scorecards/<id>.yaml               -> Scorecard (rubric lines)
  scorecards/tests/<name>.json|yaml  -> RubricTest (labelled example transcripts)
  scorecards/examples/<id>.yaml      -> LearnedExamples (labelled sentences from disputed verdicts)
  scenarios/<id>.md  (front matter)  -> Scenario   (body = persona prose)
  paths/<id>.yaml                    -> LearningPath
  certifications/<id>.yaml           -> Certification

Every model forbids unknown fields so that a typo in a file is reported, not silently ignored.
Ids are stable slugs: lowercase letters, digits, `_` and `-`.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import re

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_\-]*$", max_length=80)]
# An example utterance; every example is weighed against every sentence scored, so a line holds at
# most MAX_EXAMPLES of each kind (a playbook edit cannot make scoring crawl).
Utterance = Annotated[str, StringConstraints(max_length=1000)]
MAX_EXAMPLES = 300
Verdict = Literal["pass", "fail", "na"]
Speaker = Literal["rep", "buyer", "any"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --------------------------------------------------------------------------- policy


class AttributionPolicy(Strict):
    window: int = Field(5, ge=1, le=100, description="How many of the rep's latest applicable calls are looked at per line.")
    gap_misses: int = Field(3, ge=1, description="Misses within the window that open a gap.")
    min_applicable: int = Field(3, ge=1, description="Fewer applicable calls than this is not a gap yet.")
    close_passes: int = Field(1, ge=1, description="Passes on live calls after certification that close a gap.")
    breakdown: list[Literal["call_type", "segment", "stage", "outcome"]] = Field(
        default_factory=lambda: ["call_type", "segment", "stage", "outcome"]
    )


class LLMSettings(Strict):
    """`llm:` in playbook.yaml. Every field can be overridden by a COACHLOOP_LLM_* environment
    variable (see tools/llm.py); setting COACHLOOP_LLM_BASE_URL enables the LLM."""

    enabled: bool = False
    base_url: str | None = None
    model: str = "gpt-4o-mini"
    api_key_env: str = "COACHLOOP_LLM_API_KEY"
    temperature: float = Field(0.0, ge=0, le=2)
    concurrency: int = Field(4, ge=1, le=64)
    timeout: float = Field(60.0, gt=0, description="Seconds per request.")
    retries: int = Field(2, ge=0, le=10, description="Retries on 429/5xx/timeouts/malformed answers.")
    backoff: float = Field(0.5, ge=0, le=60, description="First retry delay in seconds; doubles each retry (capped at 8 s).")
    roleplay: bool = Field(True, description="Let the model play the AI buyer when the LLM is enabled.")


class Webhook(Strict):
    url: str
    events: list[str] = Field(default_factory=lambda: ["gate.blocked", "gate.lifted", "gate.shadow", "certification.passed", "certification.failed"])
    secret_env: str = "COACHLOOP_WEBHOOK_SECRET"


class Policy(Strict):
    """`playbook.yaml`: the team's policy for the loop."""

    team: str = "Sales team"
    version: int = 1
    attribution: AttributionPolicy = Field(default_factory=AttributionPolicy)
    gated_activities: list[Slug] = Field(default_factory=lambda: ["dial", "demo", "renewal_call"])
    default_scorecards: dict[str, Slug] = Field(
        default_factory=dict, description="call type -> scorecard id used when none is given"
    )
    session_expiry_hours: float = Field(72.0, gt=0, description="An idle practice session expires after this.")
    llm: LLMSettings = Field(default_factory=LLMSettings)
    webhooks: list[Webhook] = Field(default_factory=list)


# --------------------------------------------------------------------------- scorecards


class Trigger(Strict):
    """Makes a conditional line applicable: the line is `na` unless the trigger fires."""

    speaker: Speaker = "buyer"
    examples: list[Utterance] = Field(
        default_factory=list, max_length=MAX_EXAMPLES,
        description="Things the trigger speaker says that fire it, matched by closeness like a line's examples.",
    )
    phrases: list[str] = Field(default_factory=list, description="Words or phrases that fire the trigger.")
    patterns: list[str] = Field(default_factory=list, description="Regular expressions that fire the trigger.")
    description: str = ""
    not_patterns: list[str] = Field(
        default_factory=list, description="Regular expressions that stop a turn from firing the trigger."
    )
    unless_after: list[str] = Field(
        default_factory=list,
        description="Regular expressions: the trigger does not fire when the other side's turn just before matches "
        "one (for example the rep had just offered to send information).",
    )
    scope: Literal["reply", "after", "call"] = Field(
        "reply",
        description="Where the line is judged once the trigger fires: reply = the line speaker's next turn after "
        "each firing; after = any of their turns after the first firing; call = anywhere.",
    )

    @field_validator("not_patterns", "unless_after")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        return _check_regexes(v)


def _check_regexes(values: list[str]) -> list[str]:
    for pat in values:
        try:
            re.compile(pat)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pat!r}: {exc}") from None
    return values


class RubricLine(Strict):
    """One behaviour the rep is judged on, described in plain text the offline engine reads."""

    id: Slug
    title: str
    description: str = Field("", description="What pass and fail mean, in words a manager would use.")
    methodology: list[str] = Field(default_factory=list, description="MEDDICC, BANT, SPIN, ...")
    speaker: Speaker = "rep"
    where: Literal["opening", "early", "any", "late", "closing"] = Field(
        "any",
        description="opening / closing: the scorecard's first opening_turns / last closing_turns turns; early / "
        "late: the first / second half of the call (understand the issue before the fix, confirm it after); any.",
    )
    kind: Literal["question", "statement", "agreement"] = Field(
        "question", description="question: the rep must ask; statement: the rep must say; agreement: both sides settle on it."
    )
    examples: list[Utterance] = Field(default_factory=list, max_length=MAX_EXAMPLES,
                                      description="Things a rep says that pass this line.")
    counter_examples: list[Utterance] = Field(
        default_factory=list, max_length=MAX_EXAMPLES,
        description="Things that sound close but do not pass this line (a near miss): a sentence that resembles "
        "one of these more than any example cannot carry a pass.",
    )
    similarity: float | None = Field(
        None, gt=0, le=1,
        description="How close a sentence must come to one of the examples to count as it (0..1; default: the "
        "scorecard's `similarity`). Lower generalises further, higher sticks closer to the examples' wording.",
    )
    phrases: list[str] = Field(default_factory=list, description="Key phrases; any one counts toward a pass.")
    patterns: list[str] = Field(default_factory=list, description="Regular expressions (case-insensitive).")
    not_phrases: list[str] = Field(default_factory=list, description="Phrases that disqualify the sentence they are in.")
    not_patterns: list[str] = Field(default_factory=list, description="Regular expressions that disqualify the sentence they are in.")
    before_first_question: bool = Field(
        False, description="Counts only before the rep's first real question (small talk excepted), e.g. an agenda."
    )
    until_examples: list[Utterance] = Field(
        default_factory=list, max_length=MAX_EXAMPLES,
        description="Counts only in the line speaker's turns before the first one that comes close to one of "
        "these (a demo recap must come before the tour: 'This is the dashboard', 'Here you can see...').",
    )
    min_answer_words: int = Field(
        0, ge=0, description="The other side's next turn must have at least this many words (they answered)."
    )
    open_question: bool = Field(
        False, description="kind question: only an open question counts (what, how, why, walk me through, tell "
        "me about...), not one answered yes or no (\"is payroll a headache?\")."
    )
    agree_patterns: list[str] = Field(
        default_factory=list, description="kind agreement: regular expressions for the other side accepting."
    )
    refuse_patterns: list[str] = Field(
        default_factory=list, description="kind agreement: regular expressions for the other side holding off."
    )
    evidence: Literal["proposal", "confirmation"] = Field(
        "proposal",
        description="kind agreement: which of the line speaker's turns is the evidence, the one that proposes what "
        "the other side accepts, or the one that confirms it after they accept.",
    )
    trigger: Trigger | None = None
    weight: float = Field(1.0, ge=0)
    coaching: str = Field("", description="What a good version sounds like, for feedback.")
    fail_reason: str = Field("", description="Short phrase used when the line fails.")

    @field_validator("agree_patterns", "refuse_patterns")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        return _check_regexes(v)


class Scorecard(Strict):
    id: Slug
    title: str
    call_types: list[Slug] = Field(default_factory=list, description="Call types this scorecard scores.")
    description: str = ""
    opening_turns: int = Field(8, ge=1, description="Turns that count as the opening.")
    closing_turns: int = Field(8, ge=1, description="Turns that count as the closing.")
    similarity: float = Field(
        0.4, gt=0, le=1,
        description="Default for the lines' `similarity`: how close a sentence must come to a line's example.",
    )
    small_talk: list[str] = Field(
        default_factory=list,
        description="Regular expressions for courtesy or logistics questions ('can you hear me', 'can you see my "
        "screen') that are not discovery: they never count as the rep's first real question or as a discovery question.",
    )
    lines: list[RubricLine] = Field(min_length=1)

    @field_validator("small_talk")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        return _check_regexes(v)

    def line(self, line_id: str) -> RubricLine | None:
        return next((ln for ln in self.lines if ln.id == line_id), None)


class LabelledVerdict(Strict):
    verdict: Verdict
    turn: int | None = None
    note: str = ""


class RubricTest(Strict):
    """A labelled example transcript for a scorecard (scorecards/tests/*.json|yaml)."""

    model_config = ConfigDict(extra="ignore")
    id: str
    scorecard: Slug = "discovery"
    rep: str
    turns: list[dict]
    labels: dict[str, LabelledVerdict]


class LearnedExample(Strict):
    """One labelled sentence learned from a disputed verdict (`coachloop override`)."""

    line: Slug = Field(description="The rubric line it is an example for.")
    verdict: Literal["pass", "fail"] = Field(
        description="pass: the sentence counts as the line (joins its examples); fail: a near miss that must not "
        "(joins its counter_examples)."
    )
    text: str = Field(min_length=1, max_length=1000, description="What was said.")
    call: int | str | None = Field(None, description="The stored call it came from.")
    by: str | None = Field(None, description="Who disputed the verdict.")
    at: datetime | date | str | None = Field(None, description="When.")
    reason: str = Field("", description="Why the engine's verdict was wrong.")

    @field_validator("text")
    @classmethod
    def _words(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("an example needs the words that were said")
        return v


class LearnedExamples(Strict):
    """scorecards/examples/<scorecard-id>.yaml: sentences learned from disputed verdicts; merged into the
    scorecard's lines when the playbook loads (pass -> examples, fail -> counter_examples)."""

    scorecard: Slug = Field(description="The scorecard these examples belong to (the file is named after it).")
    examples: list[LearnedExample] | None = Field(
        default_factory=list, max_length=2 * MAX_EXAMPLES,
        description="At most 600 per scorecard: prune old ones (git keeps them) or fold them into the scorecard.",
    )


# --------------------------------------------------------------------------- rollouts


class Rollout(Strict):
    """Whom a path or scenario targets, and by when (issue: live playbook)."""

    reps: Literal["all"] | list[str] | None = None
    teams: list[str] = Field(default_factory=list)
    segments: list[str] = Field(default_factory=list)
    open_gap_on: list[Slug] = Field(default_factory=list)
    hired_after: date | None = None
    due: date | None = None


# --------------------------------------------------------------------------- scenarios


class Persona(Strict):
    name: str
    role: str
    company: str = ""
    industry: str = ""
    segment: str = ""


class HiddenFact(Strict):
    """Something the AI buyer reveals only when the rep asks a question that earns it."""

    id: Slug
    line: Slug | None = Field(None, description="Rubric line whose question earns this fact.")
    reveal_when: list[str] = Field(default_factory=list, description="Extra phrases in the rep's question that earn it.")
    say: str


class Objection(Strict):
    say: str
    when: list[str] = Field(default_factory=list, description="Phrases in the rep's turn that provoke it; empty = raised unprompted once.")


class Scenario(Strict):
    """scenarios/<id>.md: YAML front matter + persona prose body."""

    id: Slug
    title: str
    scorecard: Slug = "discovery"
    targets: list[Slug] = Field(min_length=1, description="Rubric lines this practice targets.")
    difficulty: int = Field(1, ge=1, le=5)
    persona: Persona
    opening: str = Field(description="The buyer's first words.")
    facts: list[HiddenFact] = Field(default_factory=list)
    objections: list[Objection] = Field(default_factory=list)
    deflection: str | None = Field(None, description="What the buyer says to try to end with 'just send me pricing'.")
    deflect_after: int = Field(3, ge=1, description="Rep turns before the buyer deflects.")
    filler: list[str] = Field(default_factory=list, description="Neutral replies in the persona's voice.")
    passing: str = Field("", description="What passing looks like.")
    pass_mark: float = Field(1.0, ge=0, le=1, description="Share of target lines that must pass.")
    source_calls: list[str] = Field(default_factory=list)
    generated_by: str | None = Field(None, description="Set when coachloop wrote this file; people's files are never rewritten.")
    rollout: Rollout | None = None
    body: str = Field("", description="Persona prose (the Markdown body).")


# --------------------------------------------------------------------------- paths and certifications


class PathStep(Strict):
    scenario: Slug
    required: bool = True
    note: str = ""


class LearningPath(Strict):
    id: Slug
    title: str
    lines: list[Slug] = Field(min_length=1, description="Rubric lines this path remediates.")
    scorecard: Slug = "discovery"
    steps: list[PathStep] = Field(min_length=1)
    notes: str = ""
    rollout: Rollout | None = None


class Certification(Strict):
    id: Slug
    title: str
    scorecard: Slug = "discovery"
    lines: list[Slug] = Field(min_length=1)
    scenarios: list[Slug] = Field(min_length=1)
    pass_mark: float = Field(1.0, ge=0, le=1, description="Share of covered lines a session must pass.")
    attempts: int = Field(3, ge=1, description="Attempts before the rep needs a manager.")
    gates: list[Slug] = Field(min_length=1, description="Activities blocked until certified.")
    min_kappa: float = Field(0.6, ge=-1, le=1, description="Agreement a line's rubric tests must reach for the gate to block.")


KIND_MODELS: dict[str, type[BaseModel]] = {
    "scorecards": Scorecard,
    "scenarios": Scenario,
    "paths": LearningPath,
    "certifications": Certification,
}
KINDS = tuple(KIND_MODELS)
