"""The offline engine: deterministic, no network, generic.

All domain knowledge lives in the scorecard file; this module only knows language. For each
rubric line it reads:

- `speaker` (rep / buyer / any): whose turns can pass it. Words the other side volunteers never
  pass a rep line.
- `where` (opening / any / closing, with the scorecard's `opening_turns` / `closing_turns`).
- `kind`:
  - `question`: the matching words must sit in a clause that is a question (see `text.py`: works
    without question marks). A match preceded by "our/we/my" ("our budget-friendly plan") is a
    pitch, not a question, and does not count. A question line with no phrases/patterns/examples
    accepts any real question (small talk excepted): "continues discovery with a question".
  - `statement`: the words must be said (any sentence); a negated match ("we don't have an agenda")
    does not count.
  - `agreement`: the line speaker proposes something that matches (e.g. a specific day or time)
    and the other side accepts it (`agree_patterns`, unless `refuse_patterns` hold them off).
    Evidence is the accepted proposal (`evidence: proposal`, the default), or the line speaker's
    confirmation after the acceptance when there is one (`evidence: confirmation`).
- `phrases` (plain words, normalised like the transcript), `patterns` (regular expressions over
  the normalised text: lowercase, no punctuation, fillers removed), `examples` and
  `counter_examples` (whole utterances: a clause, a sentence or two sentences in a row that come
  close enough to an example and not closer to a near miss match; see similar.py), `similarity`.
- `not_phrases` / `not_patterns`: a clause they match cannot carry a pass.
- `before_first_question`: only counts before the rep's first real question (an agenda);
  `until_examples`: only before the line speaker's first turn close to one of them (a demo tour).
- `where: early | late`: the first / second half of the call; `open_question`: no yes/no question.
- `min_answer_words`: the other side's next turn must answer with at least that many words.
- `trigger`: the line is `na` until the trigger fires (trigger speaker's words matching its
  phrases/patterns or close to its examples, not its `not_patterns`, and not right after an `unless_after` turn); then it
  is judged on the line speaker's reply (`scope: reply`), on anything after (`after`), or on the
  whole call (`call`). A failed triggered line names the reply that fell short.

The scorecard's `small_talk` patterns name courtesy/logistics questions ("can you hear me",
"can you see my screen") that are not discovery.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

from playbook.models import RubricLine, Scorecard

from . import OFFLINE_ENGINE, OFFLINE_ENGINE_VERSION, CallScore, LineVerdict, weighted_score
from .prefilter import CueIndex, any_cue_regex, pattern_cues
from .similar import ExampleIndex, build_index
from . import text as _text
from .text import CallText, Sentence, TurnText, analyse_call, normalise, remember

MAX_QUOTE = 300
PITCH_BEFORE = {"our", "we", "we're", "we've", "we'll", "we'd", "my", "us", "i'll"}
NEGATION = {"not", "no", "never", "don't", "didn't", "won't", "can't", "cannot", "without", "isn't", "aren't", "wasn't", "doesn't", "nothing"}


# --------------------------------------------------------------------------- compiled lines


@dataclass
class Compiled:
    pos: list[re.Pattern]
    neg: list[re.Pattern]
    examples: list[set[str]]
    agree: list[re.Pattern]
    refuse: list[re.Pattern]
    trig: list[re.Pattern]
    trig_neg: list[re.Pattern]
    unless: list[re.Pattern]
    key: str = ""  # content hash of the line: memo key for per-sentence results
    # prefilters (speed only, see prefilter.py): `pos` and `trig` again, same regexes in the same
    # order, each as (single cue or None, cue groups or None, rx); derived from the compiled
    # regexes themselves, so they follow any change to how phrases or patterns are compiled
    pos_cued: list = None
    trig_cued: list = None
    # one regex per line that finds something wherever any of `pos` can match (None: always run),
    # and which of `pos` can match a sentence, from one scan of it
    pos_any: re.Pattern | None = None
    pos_index: CueIndex | None = None
    # the line's examples and counter examples as concepts (similar.py), and the trigger's examples
    open_question: bool = False
    kind: str = "question"
    sim: ExampleIndex | None = None
    trig_sim: ExampleIndex | None = None
    until_sim: ExampleIndex | None = None


def _phrase_re(phrase: str) -> re.Pattern | None:
    norm = normalise(phrase)
    if not norm:
        return None
    return re.compile(r"(?<![\w'])" + re.escape(norm) + r"(?![\w'])")


def _rx(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern, re.I)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None


def _compile_list(phrases: list[str], patterns: list[str]) -> list[re.Pattern]:
    out = [r for r in (_phrase_re(p) for p in phrases) if r is not None]
    out.extend(_rx(p) for p in patterns)
    return out


def _cued(rxs: list[re.Pattern]) -> list[tuple[str | None, tuple | None, re.Pattern]]:
    """Each regex with the cues every match of it holds (prefilter.pattern_cues, read from the
    compiled regex): `single` when that is one string (a phrase), else the groups; None: no cue."""
    out = []
    for rx in rxs:
        groups = pattern_cues(rx.pattern, rx.flags)
        single = groups[0][0] if groups is not None and len(groups) == 1 and len(groups[0]) == 1 else None
        out.append((single, None if single is not None else groups, rx))
    return out


def _has_cues(groups: tuple, text: str) -> bool:
    """Does `text` hold one string of every group? (False: the pattern cannot match it)"""
    for g in groups:
        for w in g:
            if w in text:
                break
        else:
            return False
    return True


def _runnable(cued: list, text: str, plain: bool):
    """The regexes of `cued`, in order, leaving out those whose cues `text` lacks (cues only count
    on `plain` text: see _plain)."""
    for single, groups, rx in cued:
        if plain:
            if single is not None:
                if single not in text:
                    continue
            elif groups is not None and not _has_cues(groups, text):
                continue
        yield rx


def _search_any(cued: list, text: str) -> bool:
    """any(rx.search(text)) over cued regexes, skipping those that cannot match."""
    return any(rx.search(text) for rx in _runnable(cued, text, _plain(text)))


def _plain(text: str) -> bool:
    """Lower-case ASCII: where a case-insensitive pattern's cues can be looked up as they are."""
    return text.isascii() and not _UPPER.search(text)


_UPPER = re.compile(r"[A-Z]")


@lru_cache(maxsize=512)
def _compile_line(line_json: str, background: tuple[tuple[str, ...], ...] = (), similarity: float = 0.4) -> Compiled:
    line = RubricLine.model_validate_json(line_json)
    trig = line.trigger
    comp = Compiled(
        key=hashlib.sha1((line_json + repr(background) + repr(similarity)).encode()).hexdigest(),
        pos=_compile_list(line.phrases, line.patterns),
        neg=_compile_list(line.not_phrases, line.not_patterns),
        examples=list(line.examples),
        open_question=line.open_question,
        kind=line.kind,
        agree=[_rx(p) for p in line.agree_patterns],
        refuse=[_rx(p) for p in line.refuse_patterns],
        trig=_compile_list(trig.phrases, trig.patterns) if trig else [],
        trig_neg=[_rx(p) for p in trig.not_patterns] if trig else [],
        unless=[_rx(p) for p in trig.unless_after] if trig else [],
    )
    comp.pos_cued = _cued(comp.pos)
    comp.trig_cued = _cued(comp.trig)
    cue_sets = [pattern_cues(rx.pattern, rx.flags) for rx in comp.pos]
    comp.pos_any = any_cue_regex(cue_sets) if comp.pos else None
    comp.pos_index = CueIndex.build(cue_sets) if comp.pos else None
    if line.examples or line.counter_examples:
        comp.sim = build_index(line.examples, line.counter_examples, line.similarity or similarity, background)
    if line.until_examples:
        comp.until_sim = build_index(line.until_examples, [], line.similarity or similarity)
    if trig is not None and trig.examples:
        # buyer talk wanders more than a rep's move: a trigger's examples must be matched more closely
        comp.trig_sim = build_index(trig.examples, [], min(1.0, (line.similarity or similarity) + 0.2))
    return comp


_BY_ID: dict[int, tuple[RubricLine, object, Compiled]] = {}


def background(card: Scorecard | None) -> tuple[tuple[str, ...], ...]:
    """Every line's examples: how common a concept is across the scorecard (similar.py)."""
    if card is None:
        return ()
    return tuple(tuple(ln.examples) for ln in card.lines if ln.examples)


def compiled(line: RubricLine, card: Scorecard | None = None) -> Compiled:
    """The line's compiled patterns and examples; cached by object (cheap) and by content (safe)."""
    hit = _BY_ID.get(id(line))
    if hit is not None and hit[0] is line and hit[1] is card:
        return hit[2]
    comp = _compile_line(line.model_dump_json(), background(card), card.similarity if card is not None else 0.4)
    if len(_BY_ID) > 2048:
        _BY_ID.clear()
    _BY_ID[id(line)] = (line, card, comp)
    return comp


@lru_cache(maxsize=128)
def _compile_small_talk(patterns: tuple[str, ...]) -> list[re.Pattern]:
    return [_rx(p) for p in patterns]


# --------------------------------------------------------------------------- matching


@dataclass
class Hit:
    turn: int
    sentence: int
    clause: int  # clause index within the turn
    quote: str
    what: str  # the words that matched


def _quote(tt: TurnText, sent: Sentence, a: int, b: int, from_clause: int | None = None) -> str:
    """The sentence holding the match, trimmed to about MAX_QUOTE characters around it."""
    text = tt.original
    s0, s1 = sent.start, sent.end
    while s1 < len(text) and text[s1] in "?.!\"'”)":  # keep the sentence's own punctuation
        s1 += 1
    if s1 - s0 <= MAX_QUOTE:
        return text[s0:s1].strip()
    ms, me = sent.span_of(a, b)
    cs = ms
    if from_clause is not None and sent.clauses[from_clause].words:
        cs = min(ms, sent.clauses[from_clause].words[0].start)  # from the start of the clause that asks
    if me - cs <= MAX_QUOTE:
        start = cs
    else:
        start = max(cs, ms - MAX_QUOTE // 3)
        sp = text.rfind(" ", s0, start)  # back to a word start
        start = sp + 1 if sp >= s0 else s0
    end = min(s1, start + MAX_QUOTE)
    if end < s1:
        sp = text.rfind(" ", start, end)
        end = sp if sp > me else end
    return text[start:end].strip(" ,;-—")


# the line speaker puts something forward (not just restating the buyer's own dates)
PROPOSAL = re.compile(
    r"\b(let's|let us|how about|what about|can we|could we|shall we|should we|would you be|are you (free|around|available)|"
    r"i'll (send|put|book|set|get|hold|call|see|email|shoot)|i will (send|put|book|set|call)|i can (send|do|set|book|call)|"
    r"invite|calendar|book|schedule|set up|lock in|pencil|hold|meet|see you|talk (to you )?(then|on|monday|tuesday|wednesday|"
    r"thursday|friday)|i'd suggest|i suggest|i propose|i'd propose|next step|demo|session|walkthrough|workshop|kickoff|"
    r"kick off|follow up call|site visit|site walk|trial|onsite)\b"
)
PITCH_SUBJECT = {"our", "we", "we're", "we've", "we'll", "we'd"}
OFFER = re.compile(
    r"^(so |and |but |okay |well |great |sure |perfect )*(did you know|(do|would) you (want|like) (me|us) to\b|(do|would) you (want|like) to (see|hear|learn|look|try)\b|"
    r"want (me |us )?to (see|show|send|include)|(can|could|shall|should) (i|we) (show|send|include|add|copy|cc|loop|email|forward)\b|"
    r"let me show you|have you heard (of|about) (us|our)|does that help|is that helpful|make sense)"
)


def _pitch_or_negated(sent: Sentence, a: int, kind: str) -> bool:
    """A question match inside a pitch ("our budget-friendly plan", "how do we compare to other
    vendors", "did you know..."); a statement match that is negated."""
    ci = sent.clause_at(a)
    clause = sent.clauses[ci]
    first_word = sent.word_clause.index(ci)
    own = sent.text[sent.offsets[first_word]:a].split()  # this clause's words before the match
    before = own[-3:]
    if kind == "question":
        if before and (before[-1] in PITCH_BEFORE or len(before) >= 2 and before[-2] in PITCH_BEFORE):
            return True
        if any(w in PITCH_SUBJECT for w in own[-5:]):
            return True
        return bool(OFFER.match(clause.text))
    return any(w in NEGATION for w in before)


def _clause_small_talk(text: str, small: list[re.Pattern]) -> bool:
    return any(p.search(text) for p in small)


# a request of the listener ("read me the PIN", "give it a try and tell me what you see", "order
# number please"): for a line that asks, as good as a question
REQUEST = re.compile(
    r"^(okay |ok |so |now |then |just |alright |great |right )*(please )?"
    r"(read|give|tell|send|spell|confirm|verify|check|try|open|pull|print|refresh|log|go ahead|run|place|restart|"
    r"reload|click|tap|call|test|walk|let me know|show|share)\b"
    r"|\b(can|could|may) (i|we) (get|have|grab|take|ask for|confirm|verify)\b"
    r"|\b(can|could|would|will) you (please )?(read|give|tell|send|spell|confirm|verify|check|try|open|pull|print|"
    r"refresh|log|run|place|restart|reload|click|tap|call|test|walk|show|share|go)\b"
    r"|\b(i'll|i will|i'd|i would) need\b|\bplease\b"
)


# how close a whole sentence must come (as a share of the line's `similarity`) for one of its
# clauses to count
SENTENCE_SHARE = 0.9
# a clause shorter than this ("and approve") says too little to be a line's behaviour on its own
MIN_CLAUSE_WORDS = 3


# "what I've done is...", "what we did was...": a statement that opens with a wh-word
PSEUDO_CLEFT = re.compile(r"^(so |and |okay |ok |well |right )*what (i|we|you|they|i've|ive|we've|weve|you've|i'd|we'd) (\w+ ){0,3}(is|was)\b")


def _plainly_asks(c, sent: Sentence) -> bool:
    """A clause that is plainly a question (a statement line is not passed by it): marked with a
    question mark, or, where speech recognition left none, a question led by a wh-word."""
    if not c.question:
        return False
    if sent.ends_q:
        return True
    # led by its wh-word ("so when did it start"); an ask ("I'd like to hear how the year went,
    # then...") can be a plan as much as a question
    return _text.open_question(c.text) and not _text.asks(c.text) and not PSEUDO_CLEFT.match(c.text)


# a wh-word asking a few words into a run-on clause ("so besides you who's going to need to see
# this"): for a line whose examples it resembles, enough to count as asking
WH_ASK = re.compile(r"\b(who|what|how|when|where|why)('s|'re| is| are| was| were| do| does| did| would| will|"
                    r" could| can| has| have| else| much| many| long| often)\b")


# words after which speech-recognition text often starts a new question ("...sorted for you
# what's your driver id", "...okay so who signs")
RUN_ON_LEADS = {"so", "and", "but", "okay", "ok", "then", "now", "you", "yeah", "right", "also", "well", "guys",
                "too", "though", "anyway", "actually", "alright", "great", "perfect", "cool"}


def _asks(c, sent: Sentence) -> bool:
    if c.question or REQUEST.search(c.text) is not None:
        return True
    if sent.punctuated and not sent.ends_q and not sent.open_end:
        return False  # punctuation says it does not ask
    for m in WH_ASK.finditer(c.text):  # not embedded ("hear what's next for you"); near the clause's
        before = c.text[:m.start()].split()  # start where punctuation drew the clauses
        if len(before) > 4:
            if sent.punctuated:
                break
            if before[-1] not in RUN_ON_LEADS:  # deep in a run-on: only right after a break-like word
                continue
        if not before or before[-1] not in _text.EMBED_BEFORE:
            return True
    return False


def _example_hits(sent: Sentence, comp: Compiled, kind: str) -> list[tuple[int, int]]:
    """Spans (a, b) in sent.text that come close enough to one of the line's examples (and not
    closer to a counter example): each clause on its own, else the whole sentence. A statement
    line is not passed by a question ("which plan are you on" states no plan)."""
    sim = comp.sim
    if sim is None or not sim.pos or not sim.may_match(sent.text):
        return []
    # a clause counts where its sentence as a whole is close enough too: an aside inside a
    # sentence about something else is not the behaviour
    if sim.closeness(sent.text)[0] < sim.threshold * SENTENCE_SHARE:
        return []
    out = []
    pos = 0
    statement, question = kind == "statement", kind == "question"
    for c in sent.clauses:
        ln = len(c.text)
        # a statement line is not passed by a question clause; a question line looks at the
        # clauses that ask, else at the whole sentence ("... you think they'd use it, or would they fight it")
        if (len(c.words) >= MIN_CLAUSE_WORDS and not (statement and _plainly_asks(c, sent))
                and not (question and not _asks(c, sent)) and sim.matches(c.text)):
            out.append((pos, pos + max(ln, 1)))
        pos += ln + 1
    # (a sentence that ends asking says nothing a statement line wants: "Looking ahead to next
    # year, what are you focused on?" states no plan)
    said = ("" if sent.ends_q else " ".join(c.text for c in sent.clauses if not _plainly_asks(c, sent))) if statement else sent.text
    if not out and len(sent.clauses) > 1 and said and sim.matches(said, one_thing=False):
        out.append((0, max(len(sent.text), 1)))
    return out


def _vetoed(sent: Sentence, comp: Compiled) -> set[int] | None:
    """Clauses (indexes within the sentence) that come closer to a counter example than to any
    example: they cannot carry a pass. None: the whole sentence is a near miss (and no clause of
    it is the behaviour on its own: "let's get this sorted together now" is no "how can I help
    you today" because both say "now")."""
    sim = comp.sim
    if sim is None or not sim.neg or not sim.may_match(sent.text, counter=True):
        return set()
    clauses = [c.text for c in sent.clauses]
    out = {i for i, t in enumerate(clauses) if t and sim.vetoes(t)}
    if sim.vetoes(sent.text):
        if not any(t and i not in out and sim.matches(t) for i, t in enumerate(clauses)):
            return None
    return out


def match_turn(
    tt: TurnText,
    line: RubricLine,
    comp: Compiled,
    small: list[re.Pattern],
    *,
    kind: str | None = None,
    before: tuple[int, int] | None = None,
    small_key: str | None = None,
) -> Hit | None:
    """The first place in this turn where the line's words are said the way the line wants.
    `before` = (sentence, clause index): only matches up to there count (an agenda before the
    first question)."""
    kind = kind or line.kind
    if small_key is None:
        small_key = "\x00".join(p.pattern for p in small)
    key = (comp.key, kind, small_key)
    for si, sent in enumerate(tt.sentences):
        if not sent.text:
            continue
        found = sent.memo.get(key)
        if found is None:
            # the same sentence (words, boundaries, punctuation) says the same in any turn
            skey = (key, sent.shape)
            found = _SENTENCE_MATCHES.get(skey)
            if found is None:
                # the line's words first (the sentence's text alone), the clauses only where they
                # match: most sentences of a call never need their clause analysis
                found = _sentence_matches(sent, comp, small, kind)
                if len(sent.text) <= _text.CACHED_TEXT_MAX:
                    remember(_SENTENCE_MATCHES, skey, found, 40_000)
            if len(sent.memo) > 256:
                sent.memo.clear()
            sent.memo[key] = found
        for first_clause, ci, a, b, what in found:
            if before is not None and (si, sent.clauses[first_clause].index) > before:
                continue
            return Hit(tt.index, si, sent.clauses[ci].index, _quote(tt, sent, a, b, ci), what)
    return None


# (line, kind, small talk, sentence shape) -> _sentence_matches of any sentence of that shape
_SENTENCE_MATCHES: dict[tuple, list[tuple]] = {}


def _sentence_matches(sent: Sentence, comp: Compiled, small: list[re.Pattern], kind: str) -> list[tuple]:
    """Every match of the line in one sentence that passes all checks, in order: (clause of its
    first word, clause of the evidence, a, b, what), clauses numbered within the sentence. Depends
    only on the sentence's shape (words, clause boundaries, punctuation), so it is memoised."""
    any_question = kind == "question" and not comp.pos and not comp.examples
    vetoed = _vetoed(sent, comp)
    if vetoed is None:
        return []
    if any_question and not sent.has_question:
        return []
    text = sent.text
    spans: list[tuple[int, int, str]] = []
    if any_question:
        pos = 0
        for c in sent.clauses:
            spans.append((pos, pos + max(len(c.text), 1), c.text))
            pos += len(c.text) + 1
    else:
        # comp.pos in order, each skipped when a word every match of it holds is missing from
        # the (lower-case ASCII) sentence: most sentences match nothing (see prefilter.py)
        plain = _plain(text)
        cued = comp.pos_cued
        if plain and comp.pos_index is not None:  # only the patterns whose cues are in the sentence
            cued = [cued[i] for i in comp.pos_index.candidates(text)]
        for rx in _runnable(cued, text, plain):
            for m in rx.finditer(text):
                spans.append((m.start(), max(m.end(), m.start() + 1), m.group(0)))
        for a, b in _example_hits(sent, comp, kind):
            spans.append((a, b, "example"))
    if not spans:
        return []
    banned: set[int] = vetoed
    for rx in comp.neg:
        for m in rx.finditer(text):
            banned.update(sent.clauses_in(m.start(), m.end()))
    spans.sort(key=lambda s: (s[0], s[1]))
    out = []
    for a, b, what in spans:
        cis = sent.clauses_in(a, b)
        if what == "example" and len(cis) > 1:
            # a whole sentence close to an example: its near-miss clauses drop out, the rest carry it
            cis = [ci for ci in cis if ci not in banned]
        if not cis or any(ci in banned for ci in cis):
            continue
        if kind == "question":
            qcs = [ci for ci in cis if (_asks(sent.clauses[ci], sent) if what == "example" else sent.clauses[ci].question)
                   and not _clause_small_talk(sent.clauses[ci].text, small)
                   and not (any_question and OFFER.match(sent.clauses[ci].text))
                   and not (comp.open_question and not _text.open_question(sent.clauses[ci].text))]
            if not qcs:
                continue
            if what != "example" and not any_question and _pitch_or_negated(sent, a, "question"):
                continue
            ci = qcs[0]
        else:
            if what != "example" and _pitch_or_negated(sent, a, "statement"):
                continue
            ci = cis[0]
        out.append((cis[0], ci, a, b, what))
    return out


def first_real_question(call: CallText, small: list[re.Pattern], role: str = "rep",
                        upto: int | None = None) -> tuple[int, int, int] | None:
    """(turn, sentence, clause index) of the first question by `role` that is not small talk;
    with `upto`, only if it comes in turn `upto` or before (turns after it are not analysed)."""
    for tt in call.turns:
        if upto is not None and tt.index > upto:
            break
        if tt.role != role:
            continue
        for si, sent in enumerate(tt.sentences):
            for c in sent.clauses:
                if c.question and not _clause_small_talk(c.text, small) and len(c.words) >= 2:
                    return tt.index, si, c.index
    return None


# --------------------------------------------------------------------------- judging one line


def _may_match(tt: TurnText, comp: Compiled) -> bool:
    """Could the line's phrases, patterns or examples match somewhere in this turn? False only
    when they cannot (no cue of any pattern, too few example words): `match_turn` decides the rest."""
    if not comp.pos and not comp.examples:
        return True  # any question will do
    may = tt.memo.get(comp.key)
    if may is None:
        may = tt.memo[comp.key] = _may_match_text(tt, comp)
        if len(tt.memo) > 256:
            tt.memo.clear()
    return may


def _may_match_text(tt: TurnText, comp: Compiled) -> bool:
    if comp.pos and comp.pos_any is None:
        return True
    for sent in tt.sentences:  # a match lies within one sentence
        key = (comp.key, sent.text)
        may = _SENTENCE_MAY.get(key)
        if may is None:
            may = _may_match_sentence(sent, comp)
            if len(sent.text) <= _text.CACHED_TEXT_MAX:
                remember(_SENTENCE_MAY, key, may, 40_000)
        if may:
            return True
    if comp.kind == "statement" and comp.sim is not None and comp.sim.pos:
        # two sentences in a row may say an example together (_window_hit)
        sents = tt.sentences
        return any(sents[i].text and sents[i + 1].text and comp.sim.may_match(sents[i].text + " " + sents[i + 1].text)
                   for i in range(len(sents) - 1))
    return False


# (line, sentence text) -> could the line match there: short sentences ("yeah that makes sense",
# "okay") come back in call after call, inside turns that differ
_SENTENCE_MAY: dict[tuple[str, str], bool] = {}


def _may_match_sentence(sent: Sentence, comp: Compiled) -> bool:
    text = sent.text
    if comp.pos and (not _plain(text) or comp.pos_any.search(text)):  # cues only hold on lower-case ASCII text
        return True
    # an example: the sentence itself comes close to one (a clause alone holds fewer concepts)
    return comp.sim is not None and bool(comp.sim.pos) and comp.sim.may_match(text)


def _speaker_ok(line_speaker: str, role: str) -> bool:
    if line_speaker == "any":
        return True
    if line_speaker == "rep":
        return role == "rep"
    return role != "rep"


def _answered(call: CallText, hit: Hit, line: RubricLine, min_words: int) -> bool:
    """Did the other side answer with at least `min_words` words? A question that ends the
    transcript (a live roleplay turn being checked, a cut-off recording) gets the benefit of the
    doubt: there is no answer to judge."""
    role = call.turns[hit.turn].role
    for tt in call.turns[hit.turn + 1:]:
        if tt.role != role if line.speaker != "any" else tt.speaker != call.turns[hit.turn].speaker:
            return tt.n_words >= min_words
    return True


def _any(rxs: list[re.Pattern], text: str) -> re.Match | None:
    for rx in rxs:
        m = rx.search(text)
        if m:
            return m
    return None


def _trigger_turns(call: CallText, line: RubricLine, comp: Compiled) -> list[int]:
    trig = line.trigger
    fired = []
    key = (comp.key, "trigger")
    for tt in call.turns:
        if not _speaker_ok(trig.speaker, tt.role):
            continue
        ok = tt.memo.get(key)  # the same for every turn with this text
        if ok is None:
            ok = tt.memo[key] = any(_trigger_fires(comp, sent.text) for sent in tt.sentences)
        if not ok:
            continue
        if comp.unless:
            prev = next((p for p in reversed(call.turns[: tt.index]) if p.role != tt.role), None)
            if prev is not None and _any(comp.unless, prev.text):
                continue
        fired.append(tt.index)
    return fired


def _trigger_fires(comp: Compiled, text: str) -> bool:
    """Do the trigger's words fire in this sentence text? (kept per sentence text)"""
    key = (comp.key, text)
    fired = _TRIGGER_FIRES.get(key)
    if fired is None:
        fired = ((_search_any(comp.trig_cued, text) or comp.trig_sim is not None and comp.trig_sim.matches(text))
                 and not any(n.search(text) for n in comp.trig_neg))
        if len(text) <= _text.CACHED_TEXT_MAX:
            remember(_TRIGGER_FIRES, key, fired, 20_000)
    return fired


_TRIGGER_FIRES: dict[tuple[str, str], bool] = {}


def _fail_reason(line: RubricLine, default: str) -> str:
    return line.fail_reason or default


def judge_line(call: CallText, line: RubricLine, card: Scorecard, small: list[re.Pattern]) -> LineVerdict:
    """One line's verdict."""
    comp = compiled(line, card)
    small_key = "\x00".join(p.pattern for p in small)
    n = len(call.turns)
    ck = ("cands", line.speaker, line.where, card.opening_turns, card.closing_turns)
    cands = call.memo.get(ck)
    if cands is None:  # the same for every line with this speaker and window
        turns = call.turns
        if line.where == "opening":
            turns = turns[:card.opening_turns]
        elif line.where == "closing":
            turns = turns[max(0, n - card.closing_turns):]
        elif line.where == "early":
            turns = turns[:(n + 1) // 2]
        elif line.where == "late":
            turns = turns[n // 2:]
        cands = call.memo[ck] = [t for t in turns if _speaker_ok(line.speaker, t.role)]
    replies: list[int] = []
    if line.trigger is not None:
        fired = _trigger_turns(call, line, comp)
        if not fired:
            why = line.trigger.description or "the trigger never fired"
            return LineVerdict(id=line.id, verdict="na", reason=f"not applicable: {why}")
        scope = line.trigger.scope
        if scope == "reply":
            for f in fired:
                nxt = next((t.index for t in call.turns[f + 1:] if _speaker_ok(line.speaker, t.role)), None)
                if nxt is not None and nxt not in replies:
                    replies.append(nxt)
            cands = [t for t in cands if t.index in replies]
        elif scope == "after":
            cands = [t for t in cands if t.index > fired[0]]
            replies = [t.index for t in cands[:1]]
    if line.kind == "agreement":
        return _judge_agreement(call, line, comp, cands)
    before = None
    first_q = None
    if comp.until_sim is not None:
        # only the turns before the first that does what `until_examples` describe
        stop = next((t.index for t in call.turns if _speaker_ok(line.speaker, t.role)
                     and any(s.text and comp.until_sim.matches(s.text) for s in t.sentences)), None)
        if stop is not None:
            cands = [t for t in cands if t.index < stop]
    if line.before_first_question and cands:
        # the rep's first real question: only one among the candidate turns changes anything
        first_q = first_real_question(call, small, upto=cands[-1].index)
    for tt in cands:
        if first_q is not None:
            if tt.index > first_q[0]:
                break
            if tt.index == first_q[0]:
                before = (first_q[1], first_q[2])
        if not _may_match(tt, comp):
            continue  # none of the line's words are in this turn
        hit = match_turn(tt, line, comp, small, before=before, small_key=small_key)
        if hit is None and before is None:
            hit = _window_hit(tt, line, comp, small)
        if hit is None:
            continue
        if line.min_answer_words and not _answered(call, hit, line, line.min_answer_words):
            continue
        return LineVerdict(id=line.id, verdict="pass", turn=hit.turn, quote=hit.quote, reason=_pass_reason(line, hit))
    if line.trigger is not None:
        turn = replies[0] if replies else None
        quote = _short(call.turns[turn].original) if turn is not None else None
        return LineVerdict(id=line.id, verdict="fail", turn=turn, quote=quote,
                           reason=_fail_reason(line, "the reply did not do what the line asks"))
    default = {
        "question": "the rep never asked this",
        "statement": "never said",
        "agreement": "nothing specific was agreed",
    }[line.kind]
    if line.before_first_question:
        default = "not stated before the first question"
    elif line.where == "opening":
        default += " in the opening"
    elif line.where == "closing":
        default += " in the closing"
    else:
        default += _half(line)
    return LineVerdict(id=line.id, verdict="fail", reason=_fail_reason(line, default))


def _half(line: RubricLine) -> str:
    """' in the first/second half of the call' for where: early/late, else ''."""
    return {"early": " in the first half of the call", "late": " in the second half of the call"}.get(line.where, "")


def _window_hit(tt: TurnText, line: RubricLine, comp: Compiled, small: list[re.Pattern]) -> Hit | None:
    """Two sentences in a row that together come close to an example of a statement line ("You told
    me the packets sit for a week. This is what ends that."), when neither does alone. (A question
    says what it asks in its own sentence.)"""
    sim = comp.sim
    if sim is None or not sim.pos or len(tt.sentences) < 2 or line.kind != "statement":
        return None
    sents = tt.sentences
    for i in range(len(sents) - 1):
        a, b = sents[i], sents[i + 1]
        if not a.text or not b.text:
            continue
        key = (comp.key, "window", a.text, b.text)
        ok = _SENTENCE_MATCHES.get(key)
        if ok is None:
            both = a.text + " " + b.text
            ok = sim.matches(both, one_thing=False) and _vetoed(a, comp) is not None and _vetoed(b, comp) is not None
            if ok:  # a statement is said, not asked: no question in the pair
                ok = not (a.has_question or b.has_question)
            if len(both) <= _text.CACHED_TEXT_MAX:
                remember(_SENTENCE_MATCHES, key, ok, 40_000)
        if ok:
            quote = _short(tt.original[a.start:b.end + 1].strip())
            return Hit(tt.index, i, a.clauses[0].index if a.clauses else 0, quote, "example")
    return None


def _pass_reason(line: RubricLine, hit: Hit) -> str:
    verb = {"question": "asked", "statement": "said", "agreement": "agreed"}[line.kind]
    what = "" if hit.what in ("example", "") else f" ('{hit.what[:60]}')"
    return f"{verb} in turn {hit.turn}{what}"


def _short(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_QUOTE:
        return text
    cut = text.rfind(" ", 0, MAX_QUOTE)
    return text[: cut if cut > 0 else MAX_QUOTE]


def _judge_agreement(call: CallText, line: RubricLine, comp: Compiled, cands: list[TurnText]) -> LineVerdict:
    """Line speaker proposes (phrases/patterns), the other side accepts (agree_patterns)."""
    memo: dict[int, Hit | None] = {}

    def item(tt: TurnText) -> Hit | None:
        if tt.index not in memo:
            memo[tt.index] = match_turn(tt, line, comp, [], kind="statement") if _may_match(tt, comp) else None
        return memo[tt.index]

    def without_refusals(text: str) -> str:
        for rx in comp.refuse:
            text = rx.sub(" ", text)
        return text

    def agrees(tt: TurnText) -> bool:
        # "not sure" is no "sure": agreement words inside a refusal do not count
        if not _any(comp.agree, without_refusals(tt.text)):
            return False
        return not _any(comp.refuse, tt.text) or item(tt) is not None

    def refuses(tt: TurnText) -> bool:
        return _any(comp.refuse, tt.text) is not None and not agrees(tt)

    turns = call.turns
    accepted: Hit | None = None
    for tt in cands:
        hit = item(tt)
        if hit is None:
            # the other side proposed a specific time and this turn accepts it ("perfect, see you then")
            prev = turns[tt.index - 1] if tt.index > 0 else None
            if (prev is not None and not _speaker_ok(line.speaker, prev.role) and item(prev) is not None
                    and prev.has_question and _any(comp.agree, without_refusals(tt.text))
                    and not refuses(tt)):
                return LineVerdict(id=line.id, verdict="pass", turn=tt.index, quote=_short(tt.original),
                                   reason=f"accepted the proposed time in turn {tt.index}")
            continue
        # 1. confirmation: the other side just accepted (or proposed) something specific
        prev_other = []
        k = tt.index - 1
        while k >= 0 and not _speaker_ok(line.speaker, turns[k].role):
            prev_other.append(turns[k])
            k -= 1
        prev_own = turns[k] if k >= 0 else None
        if prev_other and not any(refuses(b) for b in prev_other):
            own_item = prev_own is not None and item(prev_own) is not None
            for b in prev_other:
                other_proposed = item(b) is not None and (agrees(b) or b.has_question)
                confirms = own_item or PROPOSAL.search(tt.text) is not None or tt.has_question
                if agrees(b) and (item(b) is not None and confirms or own_item) or other_proposed and _any(comp.agree, tt.text):
                    if line.evidence == "proposal" and own_item and agrees(b):
                        own = item(prev_own)
                        return LineVerdict(id=line.id, verdict="pass", turn=own.turn, quote=own.quote,
                                           reason=f"proposed in turn {own.turn} and accepted ('{own.what[:60]}')")
                    return LineVerdict(id=line.id, verdict="pass", turn=tt.index, quote=hit.quote,
                                       reason=f"agreed and confirmed in turn {tt.index} ('{hit.what[:60]}')")
        # 2. proposal accepted by the other side's next turn(s)
        if accepted is None and (tt.has_question or PROPOSAL.search(tt.text)):
            nxt = []
            for b in turns[tt.index + 1:]:
                if _speaker_ok(line.speaker, b.role):
                    break
                nxt.append(b)
            if nxt and any(agrees(b) for b in nxt) and not any(refuses(b) for b in nxt):
                accepted = hit
    if accepted is not None:
        return LineVerdict(id=line.id, verdict="pass", turn=accepted.turn, quote=accepted.quote,
                           reason=f"proposed in turn {accepted.turn} and accepted ('{accepted.what[:60]}')")
    default = "nothing specific was proposed and accepted"
    if line.where == "closing":
        default += " in the closing"
    default += _half(line)
    return LineVerdict(id=line.id, verdict="fail", reason=_fail_reason(line, default))


# --------------------------------------------------------------------------- the call


def clear_caches() -> None:
    """Forget every analysis and match kept between calls (compiled lines stay). For measuring a
    cold engine and for tests that compare runs; scoring never needs it."""
    _text.clear_caches()
    _SENTENCE_MATCHES.clear()
    _SENTENCE_MAY.clear()
    _TRIGGER_FIRES.clear()


def score_offline(turns: list, scorecard: Scorecard, *, version: str = "") -> CallScore:
    """Score one call's turns against a scorecard with the offline engine."""
    turns = list(getattr(turns, "turns", turns))
    for i, t in enumerate(turns):
        if isinstance(t, dict):
            from tools.transcripts.model import Turn

            turns[i] = Turn(**{k: v for k, v in t.items() if k in Turn.__dataclass_fields__})
    if turns and not any(t.role == "rep" for t in turns):
        raise ValueError(
            f"cannot score against scorecard '{scorecard.id}': no turn has role 'rep' "
            "(identify the rep first, e.g. Transcript.assign_rep(name) or --rep NAME)"
        )
    call = analyse_call(turns)
    small = _compile_small_talk(tuple(scorecard.small_talk))
    lines = [judge_line(call, ln, scorecard, small) for ln in scorecard.lines]
    return CallScore(
        scorecard=scorecard.id,
        scorecard_version=version,
        engine=OFFLINE_ENGINE,
        engine_version=OFFLINE_ENGINE_VERSION,
        lines=lines,
        score=weighted_score(lines, scorecard),
    )
