"""Generate a roleplay scenario from the very calls where a gap showed.

`generate_scenario(coach, gap_id)` reads the gap's calls and builds a buyer from them: the buyer's
role (from what they said about themselves), industry and segment, their opening words, their
pushback and concerns as objections (their own sentences), the way they tried to end the call
("just send me pricing"), and hidden facts in their own words (a budget they volunteered, the
person who signs ...) that the AI buyer now reveals only when the rep asks the question that earns
them. The file is written as `scenarios/<id>.md` (YAML front matter + persona prose) inside the
playbook, validated against the schema first, and never over a file a person wrote.

Deterministic: the same gap, calls and difficulty give the same id and the same bytes.
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from typing import Any

import yaml

from playbook.files import atomic_write, resolve_inside
from playbook.loader import PlaybookError, parse_artifact_text, split_front_matter
from playbook.models import RubricLine, Scorecard
from store import loop as q
from store.db import StoreError

from .feedback import TOPIC_WORDS, line_keywords, mentions

log = logging.getLogger("coachloop")

GENERATOR = "coachloop"
SCENARIO_DIR = "scenarios"

INDUSTRIES: dict[str, list[str]] = {
    "healthcare": ["patient", "clinic", "dental", "hospital", "doctor", "hygienist", "pharma", "medical"],
    "logistics": ["freight", "shipper", "carrier", "warehouse", "logistics", "truck", "fulfillment", "3pl", "lane"],
    "financial services": ["bank", "loan", "lending", "insur", "wealth", "credit union", "underwrit", "compliance"],
    "retail": ["store", "retail", "e-commerce", "ecommerce", "grocery", "shop"],
    "manufacturing": ["plant", "factory", "manufactur", "machin", "production line"],
    "construction": ["contractor", "job site", "jobsite", "construction", "equipment"],
    "hospitality": ["restaurant", "hotel", "guests", "brewpub", "menu", "kitchen"],
    "real estate": ["tenant", "property", "units", "leasing", "landlord"],
    "telecom": ["wireless", "telecom", "contact center", "call center", "subscribers"],
    "media": ["streaming", "broadcast", "media", "content"],
    "software": ["saas", "startup", "engineers", "developers", "sdr"],
    "field services": ["technician", "dispatch", "hvac", "plumbing"],
}

ROLE_RE = re.compile(
    r"\b(?:i'm|i am|im|as)\s+(?:the\s+|a\s+|an\s+|our\s+)?"
    r"((?:[a-z&/-]+\s+){0,4}?(?:manager|director|head of [a-z ]+?|vp(?: of [a-z ]+?)?|vice president(?: of [a-z ]+?)?|ceo|cfo|cto|coo|cro|"
    r"founder|co-founder|owner|lead|administrator|admin|officer|partner|controller|coordinator|supervisor|analyst|"
    r"counsel|principal|president)(?:\s+of\s+[a-z]+(?:\s+(?!and\b|at\b|for\b)[a-z]+)?)?)\b",
    re.I,
)

PUSHBACK = [
    "but ", "honestly", "not sure", "concern", "worried", "worry", "too expensive", "expensive", "already",
    "don't need", "do not need", "don't have time", "only got", "only have", "hard stop", "gotta run", "have to run",
    "busy", "skeptical", "tried", "didn't work", "built for bigger", "not a priority", "not a deal-breaker",
    "deal-breaker", "we'll see", "no budget", "locked in", "contract", "risk", "hesitant", "push back",
]
DEFLECT_RE = re.compile(
    r"(?:just|can you|could you|why don't you|please)?\s*(?:send|email|shoot)\s+(?:me|us|over)\b[^.?!]*?"
    r"(?:pricing|price|prices|quote|info|information|deck|one[- ]pager|brochure|something|proposal)",
    re.I,
)
FILLER_WORDS = re.compile(r"\b(?:um+|uh+|er+|like,|you know,)\s*", re.I)

# Facts used when the calls never touched a target line: generic, in a buyer's voice.
DEFAULT_FACTS: dict[str, str] = {
    "agenda_set": "Okay, that plan works for me. I have a hard stop in twenty-five minutes, so let's keep to it.",
    "pain_identified": "Honestly the real problem is that we do this by hand today, and it breaks every month-end; people are chasing each other for information.",
    "impact_quantified": "If I had to put a number on it, it's about six hours a week per person on the team, and last quarter it cost us a renewal worth around forty thousand.",
    "budget_confirmed": "We do have money set aside: roughly twenty-five thousand for this year, out of the operations budget.",
    "decision_process": "Anything over ten thousand goes through procurement and an IT security review; last time that took about four weeks.",
    "decision_maker_identified": "I'd run the evaluation, but our CFO signs off on anything like this, and she'll want to see the numbers.",
    "timeline_established": "We need something in place before our busy season starts in about three months; that's the real deadline.",
    "competition_explored": "We're also looking at one other vendor, and part of the team would rather just keep patching our spreadsheet.",
    "pricing_deflection_handled": "Fair enough. What I really need to know is whether this can cut the month-end scramble, because that's what my boss will ask.",
    "next_step_booked": "Sure, let's put thirty minutes on the calendar: Thursday at two works for me.",
}
DEFAULT_DEFLECTION = "Look, I'm short on time. Can you just send me pricing and I'll take a look?"
DEFAULT_FILLER = ["Okay.", "Sure, go on.", "Hm. Not sure what you're getting at.", "Right."]
PAIN_LINES = ("pain_identified", "risk_explored", "discovery_question", "issue_clarified", "concern_explored", "tied_to_pain")


def _fact_line(line: RubricLine) -> bool:
    """A line whose question uncovers something the buyer knows (budget, signer, date ...)."""
    return line.kind == "question" and line.trigger is None and line.where == "any"


# --------------------------------------------------------------------------- text helpers


def _clean(text: str) -> str:
    text = FILLER_WORDS.sub("", text)
    text = " ".join(text.split())
    return text[:1].upper() + text[1:] if text else text


def _clauses(text: str) -> list[str]:
    """Sentences of a buyer turn; long unpunctuated speech is split at conjunctions."""
    parts = [p.strip() for p in re.split(r"(?<=[.?!;])\s+|\s+[—–]\s+", text) if p.strip()]
    out: list[str] = []
    split_but: list[str] = []
    for p in parts:  # "fact, but doubt": two sentences when both halves say something
        pieces = [p]
        for sep in (r",?\s+but\s+", r",\s+and\s+", r",\s+so\s+"):
            nxt = []
            for piece in pieces:
                halves = re.split(sep, piece, maxsplit=1)
                if len(halves) == 2 and all(len(h.split()) >= 4 for h in halves):
                    nxt.extend(halves)
                else:
                    nxt.append(piece)
            pieces = nxt
        split_but.extend(pieces)
    for p in split_but:
        if len(p.split()) > 24:
            sub = [s.strip() for s in re.split(r"\s+(?:but|and uh|and um|and then|so|and also)\s+", p) if s.strip()]
            out.extend(sub)
        else:
            out.append(p)
    return [s for s in out if len(s.split()) >= 3]


def _sentence(text: str) -> str:
    s = _clean(text).rstrip(",;: ")
    if s and s[-1] not in ".?!":
        s += "."
    return s


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _role(turn: dict, rep_speaker: str | None) -> str:
    r = (turn.get("role") or "").lower()
    if r in ("rep", "buyer"):
        return r
    return "rep" if rep_speaker and turn.get("speaker") == rep_speaker else "buyer"


# --------------------------------------------------------------------------- extraction


def _inputs(coach, gap_id, rep_id, line_id, call_ids) -> tuple[dict | None, str, Scorecard, RubricLine, list[int]]:
    store = coach.store
    gap = None
    if gap_id is not None:
        gap = q.require_gap(store, gap_id)
        rep_id = gap["rep_id"]
        line_id = gap["line_id"]
        card = coach.playbook.scorecard(gap["scorecard_id"])
        if call_ids is None:
            call_ids = [int(c) for c in (gap.get("call_ids") or [])]
    else:
        if not rep_id or not line_id:
            raise ValueError("generate_scenario needs a gap id, or both a rep and a rubric line (--rep R --line L)")
        rep_id = q.require_rep(store, rep_id)["id"]
        card = None
        if call_ids:
            calls = q.get_calls(store, call_ids)
            sid = next((c.get("scorecard_id") for c in calls if c.get("scorecard_id")), None)
            if sid and coach.playbook.get("scorecards", sid):
                card = coach.playbook.scorecard(sid)
        if card is None:
            cards = [a.model for a in coach.playbook.all("scorecards") if a.model.line(line_id)]
            cards.sort(key=lambda c: (c.id != "discovery", c.id))
            if not cards:
                raise PlaybookError(f"no scorecard in {coach.playbook.root} has a rubric line '{line_id}'")
            card = cards[0]
        if call_ids is None:
            call_ids = q.failed_calls(store, rep_id, line_id, coach.playbook.policy.attribution.window)
    line = card.line(line_id)
    if line is None:
        raise PlaybookError(f"rubric line '{line_id}' is not in scorecard '{card.id}'")
    call_ids = sorted({int(c) for c in call_ids or []})
    if not call_ids:
        raise StoreError(
            f"no calls to build a scenario from: rep '{rep_id}' has no scored call where '{line_id}' failed; "
            "score some calls first or pass call ids"
        )
    return gap, rep_id, card, line, call_ids


def _buyer_turns(calls: list[dict]) -> list[tuple[int, int, dict]]:
    out = []
    for c in calls:
        for i, t in enumerate(c["turns"]):
            if _role(t, c.get("rep_speaker")) == "buyer" and (t.get("text") or "").strip():
                out.append((c["id"], i, t))
    return out


def _persona(calls: list[dict], buyer_turns: list[tuple[int, int, dict]], rep_row: dict | None) -> dict:
    first_call = calls[0]["id"]
    names = Counter(t.get("speaker") or "Buyer" for cid, _, t in buyer_turns if cid == first_call)
    name = names.most_common(1)[0][0] if names else "Buyer"
    role = ""
    for _, _, t in buyer_turns:
        if t.get("speaker") != name:
            continue
        m = ROLE_RE.search(t["text"])
        if m:
            role = " ".join(m.group(1).split())
            break
    role = role[:1].upper() + role[1:] if role else "Buyer"
    industry = next((c.get("industry") for c in calls if c.get("industry")), None)
    if not industry:
        text = " ".join(t["text"].lower() for _, _, t in buyer_turns)
        scores = {ind: sum(text.count(w) for w in words) for ind, words in INDUSTRIES.items()}
        best = max(sorted(scores), key=lambda k: scores[k])
        industry = best if scores[best] > 0 else ""
    segs = Counter(c.get("segment") for c in calls if c.get("segment"))
    segment = segs.most_common(1)[0][0] if segs else ((rep_row or {}).get("segment") or "")
    return {"name": name, "role": role, "company": "", "industry": industry, "segment": segment}


def _best_line(s: str, card: Scorecard, kw: dict[str, list[str]]) -> str | None:
    """The rubric line a buyer sentence is most about (most keyword hits; scorecard order breaks ties)."""
    best, n_best = None, 0
    for ln in card.lines:
        n = len(mentions(s, kw[ln.id]))
        if n > n_best:
            best, n_best = ln.id, n
    return best


def _best_sentence(sentences: list[tuple[int, int, str]], line_id: str, about: dict[str, str | None],
                   kw: dict[str, list[str]], used: set[str]) -> str | None:
    """The buyer sentence most about `line_id` (only sentences whose best line it is)."""
    best = None
    for cid, ti, s in sentences:
        if s in used or about.get(s) != line_id:
            continue
        key = (-len(mentions(s, kw[line_id])), cid, ti)
        if best is None or key < best[0]:
            best = (key, s)
    return best[1] if best else None


def _build(coach, gap, rep_id: str, card: Scorecard, line: RubricLine, calls: list[dict], difficulty: int) -> dict:
    buyer_turns = _buyer_turns(calls)
    if not buyer_turns:
        raise StoreError(f"calls {', '.join(str(c['id']) for c in calls)} have no buyer turns to build a buyer from")
    rep_row = q.find_rep(coach.store, rep_id)
    persona = _persona(calls, buyer_turns, rep_row)
    sentences = [(cid, ti, _sentence(s)) for cid, ti, t in buyer_turns for s in _clauses(t["text"])]

    # opening: the buyer's first words on the first call
    first = next(t for cid, _, t in buyer_turns if cid == calls[0]["id"])
    opening = _sentence(first["text"])

    used: set[str] = set()
    # deflection: how the buyer tried to end the call
    deflection = None
    for _, _, s in sentences:
        if DEFLECT_RE.search(s):
            deflection = s
            used.add(s)
            break
    if deflection is None and line.trigger is not None:
        deflection = DEFAULT_DEFLECTION

    # hidden facts: the target line first (their own words when they said it), then the other lines
    facts: list[dict] = []
    kw = {ln.id: line_keywords(ln) for ln in card.lines}
    # a buyer's own question is never a fact they hold back
    about = {s: _best_line(s, card, kw) for _, _, s in sentences if s not in used and not s.endswith("?") and len(s.split()) <= 60}
    if _fact_line(line):
        for n in range(2):  # up to two facts on the target line, in the buyer's words
            found = _best_sentence(sentences, line.id, about, kw, used)
            if not found:
                break
            used.add(found)
            facts.append({"id": _slug(line.id) + ("" if n == 0 else f"-{n + 1}"), "line": line.id, "say": found})
    elif line.id not in DEFAULT_FACTS or line.id == "pricing_deflection_handled" or line.where == "opening":
        # not a question that uncovers a fact: the answer a good move earns is the buyer's real
        # problem (a question after a brush-off or pricing request) or their time box (an agenda),
        # in their own words
        found = None
        if line.trigger is not None:
            for src in PAIN_LINES:
                if src in kw and src != line.id:
                    found = _best_sentence(sentences, src, about, kw, used)
                    if found:
                        break
            lead = "Fair enough. Honestly, "
        elif line.where == "opening":
            found = next((s for _, _, s in sentences if s not in used and re.search(r"\b(minutes|hard stop|half hour|only (have|got))\b", s, re.I)), None)
            lead = "Okay, that works. "
        if found:
            used.add(found)
            facts.append({"id": _slug(line.id), "line": line.id, "say": lead + found[:1].lower() + found[1:]})
    if not facts:
        if line.id in DEFAULT_FACTS:
            say = DEFAULT_FACTS[line.id]
        elif line.kind == "agreement" or line.where == "closing":
            say = DEFAULT_FACTS["next_step_booked"]
        elif line.trigger is not None:
            say = DEFAULT_FACTS["pricing_deflection_handled"]
        elif line.where == "opening":
            say = DEFAULT_FACTS["agenda_set"]
        else:
            say = "Good question. Honestly, that's the part we haven't figured out yet, and it's why I took this call."
        facts.append({"id": _slug(line.id), "line": line.id, "say": say})
    for other in card.lines:
        if other.id == line.id or not _fact_line(other) or len(facts) >= 3 + difficulty:
            continue
        if other.id not in TOPIC_WORDS and not other.phrases:
            continue
        found = _best_sentence(sentences, other.id, about, kw, used)
        if found:
            used.add(found)
            facts.append({"id": _slug(other.id), "line": other.id, "say": found})

    # objections: the buyer's pushback and concerns, in their words
    cands = []
    for cid, ti, s in sentences:
        if s in used or s == opening or len(s.split()) > 28:
            continue  # a long statement is the buyer explaining, not pushing back
        hits = [p for p in PUSHBACK if p in s.lower()]
        if hits:
            cands.append((-len(hits), cid, ti, s))
    cands.sort()
    objections = []
    for n, (_, _, _, s) in enumerate(cands[: 1 + difficulty]):
        if n == 0:
            objections.append({"say": s})
        else:
            # provoked when the rep touches the objection's topic: that line's own rep phrases
            topic = _best_line(s, card, kw)
            tl = card.line(topic) if topic else None
            when = [p for p in (tl.phrases if tl else []) if 3 < len(p) <= 30][:4]
            objections.append({"say": s, "when": when} if when else {"say": s})
        used.add(s)

    # filler: short neutral buyer replies from the calls
    filler = []
    for _, _, t in buyer_turns:
        s = _sentence(t["text"])
        neutral = _best_line(s, card, kw) is None and not re.search(r"\d|\b(we're on|we use|using)\b", s, re.I)
        if 1 <= len(s.split()) <= 8 and neutral and s not in used and s != opening and s not in filler and not DEFLECT_RE.search(s):
            filler.append(s)
        if len(filler) >= 4:
            break
    if len(filler) < 2:
        filler += [f for f in DEFAULT_FILLER if f not in filler][: 2 - len(filler)]

    example = line.examples[0] if line.examples else ""
    passing = (
        f"The rep passes '{line.id}' ({line.title}) in the conversation"
        + (f", for example: \"{example}\"" if example else "")
        + f". Facts the buyer gives only to that question: {', '.join(f['id'] for f in facts if f['line'] == line.id)}."
    )
    call_ref = ", ".join(str(c["id"]) for c in calls)
    h = hashlib.sha256(f"{rep_id}|{card.id}|{line.id}|{call_ref}|{difficulty}".encode()).hexdigest()[:6]
    sid = f"{_slug(line.id)}-{rep_id}"[:70].strip("-") + f"-{h}"
    title = f"{line.title}: {persona['role']}" + (f" in {persona['industry']}" if persona["industry"] else "") + f" (from call{'s' if ',' in call_ref else ''} {call_ref})"
    data: dict[str, Any] = {
        "id": sid,
        "title": title,
        "scorecard": card.id,
        "targets": [line.id],
        "difficulty": difficulty,
        "persona": {k: v for k, v in persona.items() if v},
        "opening": opening,
        "facts": facts,
        "objections": objections,
        "deflection": deflection,
        "deflect_after": max(1, 4 - difficulty),
        "filler": filler,
        "passing": passing,
        "pass_mark": 1.0,
        "source_calls": [str(c["id"]) for c in calls],
        "generated_by": GENERATOR,
    }
    if data["deflection"] is None:
        del data["deflection"]
    quotes = [s for _, _, s in sentences if s in used][:4]
    body = _body(persona, line, gap, calls, quotes, rep_id)
    return {"data": data, "body": body, "call_ref": call_ref}


def _body(persona: dict, line: RubricLine, gap: dict | None, calls: list[dict], quotes: list[str], rep_id: str) -> str:
    who = f"{persona['name']}, {persona['role']}"
    where = " ".join(x for x in [persona.get("segment"), persona.get("industry")] if x)
    lines = [
        f"# {who}",
        "",
        f"You are {who}" + (f" ({where})" if where else "") + ". You took this call because something",
        "is not working, but you are busy and you do not volunteer what you know: you answer what you are",
        "asked, in your own plain words, and you push back the way you did on the real calls.",
        "",
        f"This buyer was built from call{'s' if len(calls) > 1 else ''} {', '.join(str(c['id']) for c in calls)} of rep `{rep_id}`, where the rep missed "
        f"**{line.title}** (`{line.id}`).",
    ]
    if gap and gap.get("statement"):
        lines += ["", f"Gap: {gap['statement']}"]
    if quotes:
        lines += ["", "What the buyer actually said on those calls:", ""]
        lines += [f"> {s}" for s in quotes]
    lines += [
        "",
        "Reveal each hidden fact only when the rep asks the question that earns it; otherwise stay",
        "polite, brief and slightly impatient.",
    ]
    return "\n".join(lines)


def render(data: dict, body: str, call_ref: str, gap_id: int | None) -> str:
    header = [
        f"# Generated by coachloop from call{'s' if ',' in call_ref else ''} {call_ref}" + (f" (gap {gap_id})" if gap_id is not None else "") + ".",
        "# The buyer's words come from those transcripts. coachloop never rewrites a file without",
        "# `generated_by`: delete that line to make this scenario yours.",
    ]
    text = yaml.safe_dump(data, sort_keys=True, allow_unicode=True, width=100, default_flow_style=False)
    return "---\n" + "\n".join(header) + "\n" + text + "---\n" + body.rstrip("\n") + "\n"


def _is_generated(text: str) -> bool:
    try:
        ytext, _, _ = split_front_matter(text)
        data = yaml.safe_load(ytext)
    except (ValueError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and bool(data.get("generated_by"))


def _validate(coach, rel: str, text: str, card: Scorecard) -> None:
    model, problems = parse_artifact_text("scenarios", rel, text)
    if model is None:
        raise PlaybookError("generated scenario is invalid: " + "; ".join(str(p) for p in problems))
    for t in [*model.targets, *[f.line for f in model.facts if f.line]]:
        if card.line(t) is None:
            raise PlaybookError(f"{rel}: rubric line '{t}' is not in scorecard '{card.id}'")


def generate_scenario(
    coach,
    gap_id: int | None = None,
    *,
    rep_id: str | None = None,
    line_id: str | None = None,
    call_ids: list[int] | None = None,
    difficulty: int | None = None,
) -> dict:
    """Write a roleplay scenario for a gap (or a rep + rubric line) built from the calls where it showed.

    Returns {scenario_id, path (relative to the playbook), version, created (False when the same
    file already existed), rep_id, line_id, call_ids, difficulty}."""
    gap, rep_id, card, line, call_ids = _inputs(coach, gap_id, rep_id, line_id, call_ids)
    difficulty = int(difficulty or 1)
    if not 1 <= difficulty <= 5:
        raise ValueError(f"difficulty must be between 1 and 5, got {difficulty}")
    calls = q.get_calls(coach.store, call_ids)
    missing = sorted(set(call_ids) - {c["id"] for c in calls})
    if missing:
        raise StoreError(f"unknown call id(s) {', '.join(map(str, missing))}: they are not in the database {coach.store.path}")
    built = _build(coach, gap, rep_id, card, line, calls, difficulty)
    data, body = built["data"], built["body"]
    gid = gap["id"] if gap else None

    base_id = data["id"]
    root = coach.playbook.root
    created = True
    for n in range(1, 100):
        sid = base_id if n == 1 else f"{base_id}-{n}"
        data["id"] = sid
        rel = f"{SCENARIO_DIR}/{sid}.md"
        text = render(data, body, built["call_ref"], gid)
        target = resolve_inside(root, rel)
        other = coach.playbook.get("scenarios", sid)
        if other is not None and other.path != rel:
            continue  # the id is taken by another file
        if target.exists():
            old = target.read_text(encoding="utf-8", errors="replace")
            if old == text:
                created = False
                break
            if not _is_generated(old):
                log.info("scenario %s was written by a person; choosing a new id", rel)
                continue
            continue  # an edited or older generated file: leave it, pick a new id
        break
    else:
        raise PlaybookError(f"could not find a free scenario id for {base_id} in {root / SCENARIO_DIR}")

    _validate(coach, rel, text, card)
    if created:
        try:
            atomic_write(target, text)
        except OSError as exc:
            raise PlaybookError(f"cannot write {target}: {exc.strerror or exc} (is the playbook folder writable?)") from None
    pb = coach.reload()
    art = pb.get("scenarios", sid)
    if art is None:
        raise PlaybookError(f"{rel} was written but the playbook did not load it: " + "; ".join(str(p) for p in pb.problems if p.file == rel))
    result = {
        "scenario_id": sid,
        "path": rel,
        "version": art.version,
        "created": created,
        "gap_id": gid,
        "rep_id": rep_id,
        "scorecard_id": card.id,
        "line_id": line.id,
        "call_ids": call_ids,
        "difficulty": difficulty,
    }
    logged = coach.store.one(
        "select id from events where type = 'scenario.generated' and subject = ? limit 1", (f"scenario:{sid}",)
    )
    if created or logged is None:  # also after a crash that kept the file but rolled the event back
        with coach.store.transaction():
            coach.store.event(
                "scenario.generated",
                rep_id=rep_id,
                subject=f"scenario:{sid}",
                cause=(gap or {}).get("cause_event_id"),
                data=result,
            )
    return result


def scenarios_for_gap(coach, gap_id: int) -> list[str]:
    """Ids of scenarios generated for a gap, oldest first, that the playbook still serves."""
    rows = coach.store.query(
        "select data from events where type = 'scenario.generated' and json_extract(data, '$.gap_id') = ? order by id",
        (int(gap_id),),
    )
    out: list[str] = []
    import json

    for r in rows:
        sid = json.loads(r["data"]).get("scenario_id")
        if sid and sid not in out and coach.playbook.get("scenarios", sid):
            out.append(sid)
    return out
