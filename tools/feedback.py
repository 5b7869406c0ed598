"""Coaching feedback for a gap: what was missed, the rep's own words, and what good sounds like.

`gap_feedback(coach, gap_id)` reads the gap (rep, scorecard, line, call ids), the calls' turns and
the per-line verdicts, and finds in each call the moment the question should have come:

* the rep's reply right after the buyer raised the topic (the buyer volunteered a budget, a
  signer, a competitor ... and the rep moved on),
* for a conditional line (pricing deflection), the rep's turn the scorer quoted as giving in,
* otherwise the rep's longest pitch (a turn that talks instead of asking).

It then quotes the scorecard line's examples and coaching as "what a good question sounds like".
The topic vocabulary (`line_keywords`) is shared with the scenario generator.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from playbook.models import RubricLine, Scorecard
from store import loop as q
from store.db import StoreError

# Words a buyer uses when a topic comes up, per starter discovery line. A line not listed here
# falls back to the content words of its phrases, title and trigger.
TOPIC_WORDS: dict[str, list[str]] = {
    "agenda_set": ["minutes", "hard stop", "agenda", "time", "busy", "quick"],
    "pain_identified": [
        "problem", "issue", "mess", "pain", "struggl", "chasing", "frustrat", "challenge", "broken",
        "manual", "headache", "hard to", "nobody can", "yells", "complain",
    ],
    "impact_quantified": [
        "hours", "hour", "percent", "%", "per week", "a week", "a month", "per month", "thousand",
        "million", "revenue", "cost us", "costs us", "costing", "ended up", "churn", "lost", "wasted",
        "headcount", "people",
    ],
    "budget_confirmed": [
        "budget", "spend", "spending", "afford", "money", "dollars", "thousand", "a month on",
        "set aside", "funding", "line item", "tooling line", "price range",
    ],
    "decision_process": [
        "procurement", "security", "legal", "review", "approval", "approve", "contract", "process",
        "soc 2", "soc2", "vendor", "purchase", "sign off", "sign-off", "committee",
    ],
    "decision_maker_identified": [
        "signs", "sign off", "signing", "decision", "decide", "boss", "partner", "cfo", "ceo", "cro",
        "vp", "director", "owner", "manager", "board", "approve", "go with what i say",
    ],
    "timeline_established": [
        "by the end", "deadline", "quarter", "q1", "q2", "q3", "q4", "next month", "this year",
        "kickoff", "launch", "renewal", "live by", "september", "october", "january", "weeks",
        "asap", "before",
    ],
    "competition_explored": [
        "using", "we use", "spreadsheet", "looked at", "demo with", "tried", "currently", "in-house",
        "build it", "other vendor", "compared", "competitor", "already have", "instead",
    ],
    "pricing_deflection_handled": [
        "pricing", "price", "quote", "send me", "email me", "one pager", "some info", "how much",
        "cost",
    ],
    "next_step_booked": ["follow up", "next week", "touch base", "calendar", "invite", "meeting", "tuesday", "monday"],
    # renewal
    "value_recapped": ["saved", "adoption", "active users", "results", "since we went live", "since we started", "roi"],
    "risk_explored": [
        "concern", "worried", "not happy", "frustrat", "problem", "issue", "dropped", "cancel", "switch",
        "locked in", "price went up", "not using", "went back to", "complain", "unhappy",
    ],
    "goals_next_term": ["next year", "goal", "priority", "priorities", "coming year", "initiative", "target", "plan is"],
    "signer_confirmed": ["signs", "sign off", "signature", "approval", "procurement", "legal", "cfo", "contract"],
    "expansion_explored": ["new team", "other teams", "hiring", "headcount", "expand", "growing", "new office", "locations", "department"],
    # demo
    "priorities_confirmed": ["matters most", "priority", "most important", "need to see", "must have", "care about"],
    "reaction_checked": ["looks", "not sure about", "complicated", "that would", "like that", "nice"],
    "stakeholders_confirmed": ["cfo", "ceo", "signs", "boss", "approve", "committee", "it security", "sign off"],
    # outbound
    "discovery_question": ["using", "spreadsheet", "currently", "process", "manual", "we use", "right now"],
    "meeting_booked": ["calendar", "meeting", "tuesday", "thursday", "next week", "invite"],
}

_STOP = set(
    "a an and are as at be by do does did for from has have how i if in is it its me my of on or our "
    "so that the their them then there this to us was we what when where which who why will with you "
    "your yours can could would should any some about ask asks asked rep line going want made most "
    "getting down keeps like just really think know tell more much many".split()
)


def line_keywords(line: RubricLine) -> list[str]:
    """Lower-case words/phrases that show a buyer raised the line's topic."""
    words = list(TOPIC_WORDS.get(line.id, []))
    extra: list[str] = []
    # a known line: its topic words (plus its trigger's buyer phrases); an unknown line: the
    # content words of its phrases and title
    sources = [*(line.trigger.phrases if line.trigger else [])]
    if not words:
        sources += [*line.phrases, line.title]
    for src in sources:
        for w in re.findall(r"[a-z][a-z0-9']+", src.lower()):
            if len(w) > 3 and w not in _STOP:
                extra.append(w)
    for w in extra:
        if w not in words:
            words.append(w)
    return words


@lru_cache(maxsize=512)
def _keyword_re(keywords: tuple[str, ...]) -> re.Pattern:
    alts = "|".join(f"(?P<k{i}>{re.escape(k.lower())})" for i, k in enumerate(keywords))
    return re.compile(r"(?<![a-z0-9])(?:" + alts + ")")


def mentions(text: str, keywords: list[str]) -> list[str]:
    """The keywords found in `text` (word-start match, case-insensitive), in keyword order."""
    keywords = tuple(k for k in keywords if k)
    if not keywords:
        return []
    low = text.lower()
    found: set[int] = set()
    rx = _keyword_re(keywords)
    pos = 0
    # overlapping keywords ("thousand" inside "sixty thousand") are each found: scan every start
    while True:
        m = rx.search(low, pos)
        if not m:
            break
        for name, val in m.groupdict().items():
            if val is not None:
                found.add(int(name[1:]))
        # try the other alternatives at the same start too
        for i, k in enumerate(keywords):
            if i not in found and low.startswith(k.lower(), m.start()):
                found.add(i)
        pos = m.start() + 1
    return [k for i, k in enumerate(keywords) if i in found]


def is_question(text: str) -> bool:
    t = text.strip().lower()
    if "?" in t:
        return True
    return bool(
        re.search(
            r"\b(what|how|who|when|where|why|which|is there|are there|do you|does|did you|would you|could you|can you|have you|tell me)\b",
            t,
        )
    )


def _role(turn: dict) -> str:
    return (turn.get("role") or "").lower()


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _small_talk(text: str, patterns: list[str]) -> bool:
    low = " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())
    for p in patterns:
        try:
            if re.search(p, low, re.I):
                return True
        except re.error:
            continue
    return False


def missed_moments(
    turns: list[dict], line: RubricLine, verdict: dict | None = None, limit: int = 2, small_talk: list[str] | None = None
) -> tuple[list[dict], list[dict]]:
    """Where in one call the rep should have asked: (rep quotes, buyer cues).

    Each rep quote is {turn, text, why, kind} (kind: scorer | opening | closing | cue | pitch);
    each buyer cue is {turn, text, mentions}. `small_talk`: the scorecard's small-talk patterns,
    skipped when looking for where the call really started."""
    small_talk = small_talk or []
    keywords = line_keywords(line)
    quotes: list[dict] = []
    cues: list[dict] = []
    seen: set[int] = set()
    vturn = verdict.get("turn") if verdict else None
    if isinstance(vturn, int) and 0 <= vturn < len(turns) and _role(turns[vturn]) == "rep":
        quotes.append({"turn": vturn, "text": _short(turns[vturn]["text"]), "why": "the turn the scorer quoted for this line", "kind": "scorer"})
        seen.add(vturn)
    rep_idx = [i for i, t in enumerate(turns) if _role(t) == "rep"]
    if not quotes and line.where == "opening" and rep_idx:
        # the opening: the rep's first substantive turn (a question or a pitch) is where it belonged
        real = [i for i in rep_idx if not _small_talk(turns[i]["text"], small_talk) and len(turns[i]["text"].split()) >= 8]
        first = real[0] if real else rep_idx[0]
        quotes.append({"turn": first, "text": _short(turns[first]["text"]), "why": "where you started without saying what the call was for", "kind": "opening"})
        seen.add(first)
    if not quotes and line.where == "closing" and rep_idx:
        # the close: the rep's last words that tried to end the call
        last = next((i for i in reversed(rep_idx) if len(turns[i]["text"].split()) >= 4), rep_idx[-1])
        quotes.append({"turn": last, "text": _short(turns[last]["text"]), "why": "how you closed the call", "kind": "closing"})
        seen.add(last)
    for i, t in enumerate(turns):
        if len(quotes) >= limit or line.where != "any":
            break
        if _role(t) != "buyer":
            continue
        hits = mentions(t["text"], keywords)
        if not hits:
            continue
        nxt = next((j for j in range(i + 1, len(turns)) if _role(turns[j]) == "rep"), None)
        if nxt is None or nxt in seen:
            continue
        cues.append({"turn": i, "text": _short(t["text"]), "mentions": hits[:4]})
        seen.add(nxt)
        quotes.append(
            {
                "turn": nxt,
                "text": _short(turns[nxt]["text"]),
                "why": f"your reply right after the buyer brought it up ({', '.join(hits[:3])})",
                "kind": "cue",
            }
        )
    if not quotes:
        # no cue: quote the longest pitch, the turn that talked instead of asking
        pitches = [(len(t["text"]), i) for i, t in enumerate(turns) if _role(t) == "rep" and not is_question(t["text"])]
        if not pitches:
            pitches = [(len(t["text"]), i) for i, t in enumerate(turns) if _role(t) == "rep"]
        if pitches:
            _, i = max(pitches, key=lambda p: (p[0], -p[1]))
            quotes.append({"turn": i, "text": _short(turns[i]["text"]), "why": "your longest pitch, where a question would have fit", "kind": "pitch"})
    quotes.sort(key=lambda x: x["turn"])
    return quotes, cues


def _line_or_error(scorecard: Scorecard, line_id: str) -> RubricLine:
    line = scorecard.line(line_id)
    if line is None:
        raise StoreError(f"rubric line '{line_id}' is not in scorecard '{scorecard.id}' any more (check the playbook's scorecards/)")
    return line


def gap_feedback(coach, gap_id: int) -> dict[str, Any]:
    """Coaching feedback for gap `gap_id`.

    Returns {gap_id, rep_id, line_id, line_title, scorecard_id, statement, missed, calls: [{call_id,
    verdict, reason, rep_quotes, buyer_cues}], rep_words, good_examples, coaching, text}."""
    gap = q.require_gap(coach.store, gap_id)
    card = coach.playbook.scorecard(gap["scorecard_id"])
    line = _line_or_error(card, gap["line_id"])
    call_ids = [int(c) for c in (gap.get("call_ids") or [])]
    calls_out = []
    rep_words: list[dict] = []
    for call in q.get_calls(coach.store, call_ids):
        v = q.call_verdict(coach.store, call["id"], line.id)
        quotes, cues = missed_moments(call["turns"], line, v, small_talk=list(getattr(card, "small_talk", None) or []))
        calls_out.append(
            {
                "call_id": call["id"],
                "source": call.get("source_name"),
                "verdict": (v or {}).get("verdict"),
                "reason": (v or {}).get("reason"),
                "rep_quotes": quotes,
                "buyer_cues": cues,
            }
        )
        for qt in quotes:
            rep_words.append({"call_id": call["id"], **qt})
    examples = list(line.examples[:3])
    missed = line.fail_reason or (f"never {line.title[0].lower() + line.title[1:]}" if line.title else line.id)
    good = line.coaching or (examples[0] if examples else "")
    text = _paragraph(gap, line, calls_out, examples, missed)
    return {
        "gap_id": gap["id"],
        "rep_id": gap["rep_id"],
        "scorecard_id": card.id,
        "line_id": line.id,
        "line_title": line.title,
        "statement": gap.get("statement"),
        "missed": missed,
        "description": line.description,
        "calls": calls_out,
        "rep_words": rep_words,
        "good_examples": examples,
        "coaching": good,
        "text": text,
    }


def _paragraph(gap: dict, line: RubricLine, calls: list[dict], examples: list[str], missed: str) -> str:
    parts = []
    if gap.get("statement"):
        parts.append(gap["statement"].rstrip(".") + ".")
    else:
        parts.append(f"{line.title}: missed on {len(calls)} recent call(s).")
    parts.append(f"What was missed: {' '.join(missed.split()).rstrip('.')}.")
    shown = 0
    for c in calls:
        cue = c["buyer_cues"][0] if c["buyer_cues"] else None
        qt = c["rep_quotes"][0] if c["rep_quotes"] else None
        if not qt:
            continue
        said = _short(qt["text"], 160)
        kind = qt.get("kind")
        if kind == "cue" and cue:
            parts.append(f'On call {c["call_id"]} the buyer said "{_short(cue["text"], 160)}" and you answered "{said}".')
        elif kind == "opening":
            parts.append(f'On call {c["call_id"]} you got going with "{said}" without first saying what the call was for.')
        elif kind == "closing":
            parts.append(f'On call {c["call_id"]} you closed with "{said}".')
        elif kind == "scorer":
            parts.append(f'On call {c["call_id"]} you said "{said}".')
        else:
            parts.append(f'On call {c["call_id"]} you said "{said}" where a question would have fit.')
        shown += 1
        if shown >= 2:
            break
    if line.coaching:
        parts.append("What good sounds like: " + " ".join(line.coaching.split()).rstrip("."))
    if examples:
        parts.append("For example: " + " / ".join(f'"{e}"' for e in examples[:2]))
    return " ".join(parts)
