"""Text analysis for the offline engine: generic, language-level, no domain knowledge.

Works on clean punctuated transcripts and on raw speech-recognition text (lowercase, no
punctuation, fillers, run-on turns). A turn becomes sentences, a sentence becomes clauses, and
every clause is marked as a question or not:

- Normalisation: lowercase, curly quotes, `a.m.` -> `am`, hyphens and slashes split into words,
  a few spoken contractions (`gonna` -> `going to`), fillers dropped (`um`, `uh`, `you know`,
  `i mean`), stutters collapsed (`the the`).
- Sentences: split at `.`, `?`, `!` (abbreviations and `10 a.m. Eastern` kept together).
- Clauses: split at `;`, `:`, dashes, fillers, and before discourse words (`so`, `and`, `but`,
  `or`, `okay`, `yeah`, ...). Speech-recognition text has no punctuation, so these are what
  separate a pitch from the question that follows it.
- Questions: a sentence ending in `?` (in a punctuated call), or - wherever punctuation is
  missing - a clause with an interrogative shape: a wh-word followed by an auxiliary or by a short
  noun phrase and an inverted auxiliary (`what pos are you on`), an auxiliary before its subject
  (`is there`, `do you`, `have you guys`), `who else`, `what happens`, `how about`, an in-situ
  `on what platform`, or an ask (`tell me about`, `walk me through`, `help me understand`).
  Embedded wh-clauses (`here's what we do`, `see what each rep is doing`) are not questions.

`analyse_call(turns)` returns `CallText` with one `TurnText` per turn; offsets map every
normalised word back to the original text so quotes are the transcript's own words.
"""
from __future__ import annotations

import bisect
import re
import weakref
from itertools import accumulate, islice
from dataclasses import dataclass, field
from functools import lru_cache

# --------------------------------------------------------------------------- word lists

FILLERS = {"um", "umm", "uh", "uhh", "uhm", "erm", "er", "ah", "hmm", "hm", "mm", "mmm", "mhm", "mm-hmm", "uh-huh",
           "ugh", "oh", "wow", "huh", "whoa", "gosh", "jeez", "oof", "ooh", "aha", "ahh", "haha", "ha", "heh"}
# words that may precede the question word of a clause without changing what it asks
HEDGES = {"roughly", "approximately", "just", "quickly", "generally", "typically", "honestly", "curious", "actually",
          "realistically", "ballpark", "basically", "personally", "out", "of", "curiosity", "quick", "question"}
SUBORDINATE = {"if", "when", "once", "suppose", "supposing", "assuming", "say", "before", "after", "since", "whenever"}
STUTTER = {"i", "the", "a", "an", "and", "so", "we", "you", "it", "to", "is", "that", "of", "but", "or", "in", "on", "for", "like"}
DISCOURSE = {
    "so", "and", "but", "or", "okay", "yeah", "yep", "yes", "cool", "alright", "great", "perfect",
    "awesome", "gotcha", "nice", "anyway", "also", "plus", "because", "cause", "then", "now", "well",
}
AUX = {
    "is", "are", "was", "were", "do", "does", "did", "have", "has", "had", "can", "could", "would",
    "will", "should", "shall", "may", "might", "must", "am",
    "isn't", "aren't", "wasn't", "weren't", "don't", "doesn't", "didn't", "haven't", "hasn't",
    "can't", "couldn't", "wouldn't", "won't", "shouldn't",
}
SUBJ = {
    "you", "there", "it", "that", "this", "they", "we", "i", "he", "she", "your", "y'all", "anyone",
    "anybody", "someone", "somebody", "anything", "everyone", "the", "these", "those", "any", "something",
    "our", "my", "his", "her", "their", "a", "an", "each", "every", "everything", "things", "people",
}
INVERT_SUBJ = {"you", "there", "y'all", "anyone", "anybody", "someone", "somebody", "anything", "something"}
PRON = {
    "i", "we", "you", "they", "he", "she", "it", "i'm", "we're", "you're", "they're", "it's", "i've", "we've",
    "you've", "they've", "i'd", "we'd", "you'd", "they'd", "i'll", "we'll", "you'll", "they'll", "he's",
    "she's", "there's", "that's", "this",
}
WH = {"what", "how", "who", "when", "where", "why", "which", "whose", "whom"}
WH_CONTR = {
    "what's", "how's", "who's", "when's", "where's", "why's", "what're", "who're", "what'd", "how'd",
    "who'd", "where'd", "what'll", "who'll", "when'd",
}
WH_EXT = {"much", "many", "long", "big", "often", "soon", "far", "large", "quickly", "fast", "kind", "type", "sort"}
SUBJECT_WH_VERBS = {
    "else", "happens", "happened", "made", "makes", "drove", "drives", "brought", "brings", "prompted",
    "prompts", "changed", "caused", "causes", "keeps", "kept", "led", "worries", "matters", "owns", "signs",
    "decides", "approves", "handles", "runs", "gets", "needs", "has", "would've", "triggered", "sparked",
}
EMBED_BEFORE = {
    "here's", "that's", "this", "is", "know", "see", "show", "understand", "exactly", "of", "about", "matter",
    "whatever", "just", "regardless", "explain", "saw", "showed", "shows", "decide", "learn", "knows", "hear",
    "told", "tell", "ask", "asked", "wonder", "sure",
}
STATEMENT_WH = re.compile(
    r"^(what's|what is) (really |super |so |also |the )?(nice|cool|great|neat|important|interesting|unique|different|"
    r"special|powerful|awesome|best|key|beautiful|good|funny|crazy|wild|amazing)\b"
)
ASK = re.compile(
    r"\b(tell me|tell us|walk me through|walk us through|talk me through|help me understand|help me get|"
    r"give me a sense|paint me a picture|i'm curious|i am curious|curious (about|how|what|why|whether|if|who|when)|"
    r"(i'd|i would|we'd|we would) love to (hear|know|understand|learn)|i wonder (if|whether|what|how|who|when)|"
    r"can i ask|could i ask|may i ask|let me ask|(i'd|i would|i'm) (be )?interested to (know|hear|learn)|"
    r"(i'd|i would) like to (know|ask|hear)|i want to (know|ask)|i wanted to ask|quick question)\b"
)
# "customers tell us", "they keep telling me": a report of what others say, not an ask
TOLD_BY = re.compile(
    r"\b((they|people|folks|\w+s)( \w+ly| all| always| often| keep| kept)? (tell|telling)"
    r"|(he|she|it|everyone|everybody)( \w+ly| always| often| keeps| kept)? (tells|telling)) (me|us)$"
)


def asks(text: str) -> bool:
    """Does the clause ask (tell me, walk me through, I'm curious...)? Not when someone else is
    said to tell ("our customers tell us that...")."""
    for m in ASK.finditer(text):
        if m.group(0).startswith("tell") and TOLD_BY.search(text[: m.end()]):
            continue
        return True
    return False


def open_question(text: str) -> bool:
    """Is this clause (normalised words) an open question: a wh-word leads it (after discourse
    words and hedges: "so what", "and roughly how many"), it asks (tell me, walk me through), or
    its wh-word sits in place ("on what platform")? A yes/no question ("is it a headache", "do
    you use") is not."""
    ws = text.split()
    k = 0
    while k < len(ws) and (ws[k] in DISCOURSE or ws[k] in HEDGES or ws[k] in {"like", "just", "and", "so", "then"}):
        k += 1
    if k < len(ws) and (ws[k] in WH or ws[k] in WH_CONTR):
        return True
    return asks(text) or bool(IN_SITU.search(text))


IN_SITU = re.compile(r"\b(on|in|with|using|at|from|for|to) (what|which)( \w+){0,2}$")
CONFIRM_TAG = re.compile(r"(^|\b)(is that right|is that correct|correct|right|am i right|did i get that right|fair to say)$")
SOFT_TAG = re.compile(
    r"^(does that|that|would that|will that|do those|can that)? ?(make sense|sound good|sounds good|sound ok|sound okay|"
    r"sound fair|sound right|work|work for you|okay|ok|fair|alright|good)$"
)
ABBREV = {"a.m", "p.m", "am", "pm", "mr", "mrs", "ms", "dr", "vs", "etc", "e.g", "i.e", "st", "inc", "jr", "sr", "no", "approx", "u.s"}
TZ_WORDS = {"eastern", "central", "pacific", "mountain", "et", "ct", "pt", "mt", "est", "edt", "pst", "pdt", "cst", "cdt",
            "gmt", "utc", "bst", "cet", "your", "my", "our", "their", "his", "her", "on", "at", "in", "to", "with", "and",
            "for", "or", "plus", "then", "tomorrow", "today", "next", "this"}
SPOKEN = {"gonna": ["going", "to"], "wanna": ["want", "to"], "gotta": ["got", "to"], "kinda": ["kind", "of"],
          "sorta": ["sort", "of"], "lemme": ["let", "me"], "whats": ["what's"], "hows": ["how's"], "dont": ["don't"],
          "thats": ["that's"], "theres": ["there's"], "youre": ["you're"], "doesnt": ["doesn't"], "didnt": ["didn't"],
          "isnt": ["isn't"], "cant": ["can't"], "wont": ["won't"], "ok": ["okay"], "o.k": ["okay"], "whos": ["who's"],
          "whens": ["when's"], "wheres": ["where's"], "im": ["i'm"], "ya": ["you"], "y'know": ["you", "know"],
          "cuz": ["cause"], "'cause": ["cause"], "yup": ["yep"]}

# a discourse word right after these is part of the phrase ("an okay time", "sounds great")
NO_SPLIT_AFTER = {
    "a", "an", "the", "very", "pretty", "really", "is", "are", "was", "were", "be", "been", "it's", "that's",
    "sounds", "sound", "looks", "look", "seems", "feel", "feels", "not", "too", "super", "more", "most", "so",
    "how", "what", "just", "quite", "all", "fairly", "reasonably", "this", "that", "which", "it", "be", "feel", "feels",
}

# "like" after these is a filler ("you guys like looking"), unless it compares ("like this")
LIKE_FILLER_AFTER = {"guys", "folks", "it's", "is", "was", "are", "were", "so", "and", "but", "or", "just", "yeah", "okay",
                     "really", "basically", "literally", "then", "now", "um", "uh", "it", "that's", "there's", "we're",
                     "you're", "they're", "i'm", "all", "know", "mean", "honestly", "actually", "kinda"}
LIKE_OBJECT = {"this", "that", "these", "those", "it", "me", "us", "them", "him", "her", "you", "what", "ours", "yours",
               "to", "a", "an"}
# a phrase cannot end on these: a filler right after one splits nothing ("how uh are you")
OPEN_PHRASE = WH | WH_CONTR | {"the", "a", "an", "of", "to", "for", "with", "about", "your", "our", "my", "their", "is",
                               "are", "be", "and", "or", "but", "so", "if", "when", "that", "this", "i'd", "we'd", "you'd"}
CLAUSE_STARTERS = DISCOURSE | WH | WH_CONTR | AUX | {"i", "we", "you", "let's", "let", "tell", "walk", "if", "when"}

TOKEN_RE = re.compile(r"[\w$£€#@][\w$£€%'’.,:/&+@#-]*[\w%]|[\w$£€%]")
_TOKEN_SPLIT = re.compile("(" + TOKEN_RE.pattern + ")")  # split() keeps the tokens between the gaps
SPLIT_INNER = re.compile(r"(?<=[a-z])[-/](?=[a-z])|(?<=\d)[-/](?=[a-z])|(?<=[a-z])[-/](?=\d)|(?<=\d)-(?=\d)")


# --------------------------------------------------------------------------- structures


@dataclass(slots=True)
class Word:
    norm: str
    start: int  # span in the original text
    end: int


@dataclass
class Clause:
    words: list[Word]
    text: str  # normalised words joined by single spaces
    question: bool = False
    cue: bool = False  # has its own interrogative shape
    index: int = 0  # position in the turn (clause order)


class Sentence:
    """One sentence of a turn. Its normalised words, text and offsets come from the first, cheap
    pass over the turn; its clauses (and which of them ask) from the second pass, which runs only
    when something reads them (see `_TurnAnalysis.complete`): most turns of a call never need it.
    `words` (each with its span in the original text) are made when first read."""

    __slots__ = ("start", "end", "ends_q", "norms", "text", "offsets", "open_end", "memo", "breaks", "base", "punctuated",
                 "_shape", "_rel_starts", "_rel_ends", "_words", "_owner", "_clauses", "_word_clause", "_has_question")

    def __init__(self, core: "_SentenceCore", base: int, ends_q: bool, open_end: bool, punctuated: bool,
                 owner: "weakref.ref[_TurnAnalysis] | None"):
        self.punctuated = punctuated  # the call marks its questions (see _mark_questions)
        self._shape: tuple | None = None
        self.norms = core.norms  # the normalised words
        self.text = core.text  # normalised words joined by single spaces
        self.offsets = core.offsets  # start of each word in `text`
        self.breaks = core.breaks  # a clause boundary precedes word i
        self.base = base  # where the sentence's raw words start in the turn's original text
        self._rel_starts, self._rel_ends = core.starts, core.ends  # word spans, from `base`
        self.start, self.end = base + core.starts[0], base + core.ends[-1]
        self.ends_q = ends_q
        self.open_end = open_end  # no closing punctuation (a punctuated call's unpunctuated tail)
        self.memo: dict = {}  # per-line match results (offline.py)
        self._owner = owner  # weak: no reference cycle through the analysis cache
        self._words: list[Word] | None = None
        self._clauses: list[Clause] | None = None
        self._word_clause: list[int] | None = None  # clause index of each word
        self._has_question: bool | None = None

    def __repr__(self) -> str:
        return f"Sentence({self.text!r})"

    @property
    def shape(self) -> tuple:
        """What the sentence's clauses and questions depend on: equal shapes, equal clauses."""
        if self._shape is None:
            self._shape = (self.text, tuple(self.breaks), self.ends_q, self.open_end, self.punctuated)
        return self._shape

    @property
    def words(self) -> list[Word]:
        if self._words is None:
            b = self.base
            self._words = [Word(w, b + s, b + e) for w, s, e in zip(self.norms, self._rel_starts, self._rel_ends)]
        return self._words

    @property
    def clauses(self) -> list[Clause]:
        if self._clauses is None:
            self._complete()
        return self._clauses

    @property
    def word_clause(self) -> list[int]:
        if self._word_clause is None:
            self._complete()
        return self._word_clause

    def _complete(self) -> None:
        owner = self._owner() if self._owner is not None else None
        if owner is None:  # a sentence outlives its turn's analysis only if held apart from it
            raise RuntimeError("sentence read after its turn's analysis was dropped: keep the TurnText")
        owner.complete()

    @property
    def has_question(self) -> bool:
        if self._has_question is None:  # fixed once the sentence is analysed
            self._has_question = any(c.question for c in self.clauses)
        return self._has_question

    def clause_at(self, pos: int) -> int:
        i = bisect.bisect_right(self.offsets, pos) - 1
        wc = self.word_clause
        return wc[max(i, 0)] if wc else 0

    def clauses_in(self, a: int, b: int) -> list[int]:
        if not self.norms:
            return []
        wc = self.word_clause
        i = max(bisect.bisect_right(self.offsets, a) - 1, 0)
        j = max(bisect.bisect_right(self.offsets, max(a, b - 1)) - 1, 0)
        return sorted({wc[k] for k in range(i, j + 1)})

    def span_of(self, a: int, b: int) -> tuple[int, int]:
        """Original character span of the normalised range [a, b)."""
        i = max(bisect.bisect_right(self.offsets, a) - 1, 0)
        j = max(bisect.bisect_right(self.offsets, max(a, b - 1)) - 1, 0)
        return self.base + self._rel_starts[i], self.base + self._rel_ends[j]


class TurnText:
    """One turn of a call: its place, who spoke, the original words, and the analysis of the words
    (shared by every turn with the same text; see `_analyse_text`)."""

    __slots__ = ("index", "role", "speaker", "original", "analysis", "sentences", "text", "n_words", "memo")

    def __init__(self, index: int, role: str, speaker: str, original: str, analysis: "_TurnAnalysis"):
        self.index, self.role, self.speaker, self.original = index, role, speaker, original
        self.analysis = analysis  # also keeps the sentences completable
        self.sentences: list[Sentence] = analysis.sentences
        self.text: str = analysis.text  # whole turn normalised
        self.n_words: int = analysis.n_words
        self.memo: dict = analysis.memo  # shared by every turn with this text

    def __repr__(self) -> str:
        return f"TurnText({self.index}, {self.role!r}, {self.original[:40]!r})"

    @property
    def has_question(self) -> bool:
        """Does any sentence of this turn hold a question? (computed once per text)"""
        an = self.analysis
        if an.has_q is None:
            an.has_q = any(s.has_question for s in self.sentences)
        return an.has_q

    @property
    def clauses(self) -> list[Clause]:
        return [c for s in self.sentences for c in s.clauses]


@dataclass
class CallText:
    turns: list[TurnText]
    punctuated: bool  # the call uses question marks: trust them
    memo: dict = field(default_factory=dict, repr=False, compare=False)  # per-call lookups (offline.py)


# --------------------------------------------------------------------------- normalisation


def _norm_token(tok: str) -> tuple[str, ...]:
    return _norm_token_cached(tok)


@lru_cache(maxsize=65536)
def _norm_token_cached(tok: str) -> tuple[str, ...]:
    t = tok.lower().replace("’", "'").replace("‘", "'")
    t = t.strip("'.,:")
    if not t:
        return ()
    if t in ("a.m", "a.m.", "p.m", "p.m."):
        return (t[0] + "m",)
    if re.fullmatch(r"(?:[a-z]\.){2,}[a-z]?", t + ("." if not t.endswith(".") else "")):
        t = t.replace(".", "")
    if t in SPOKEN:
        return tuple(SPOKEN[t])
    # numbers keep their inner punctuation ($1,200 / 7:30 / 1.5); words lose it
    if not re.search(r"\d", t):
        t = re.sub(r"[.,:]", " ", t)
    parts = SPLIT_INNER.sub(" ", t).split()
    out: list[str] = []
    for p in parts:
        out.extend(SPOKEN.get(p, [p]))
    return tuple(out)


def normalise(text: str) -> str:
    """Normalise a free text (a phrase, an example) the same way transcripts are normalised."""
    ws = [n for m in TOKEN_RE.finditer(text) for n in _norm_token(m.group(0))]
    kept, _ = _drop_fillers(ws, [])
    return " ".join(ws[i] for i in kept)


# words that _drop_fillers must look at closely (anything else is kept as it is)
_NOT_PLAIN = FILLERS | STUTTER | {"you", "i", "kind", "sort", "like"}


def _keeps_all(ws: list[str]) -> bool:
    """True when `_drop_fillers` (with no clause boundary among these words) would keep every word
    as it is: no filler, no repeated word, none of the words its other rules look at. (False may
    still keep all: then `_drop_fillers` decides.)"""
    return (FILLERS.isdisjoint(ws) and _RULE_WORDS.isdisjoint(ws)
            and not any(map(str.__eq__, ws, islice(ws, 1, None))))


# the words _drop_fillers's rules start from, besides fillers and stutters ("you know", "i mean",
# "kind of", "sort of", filler "like")
_RULE_WORDS = frozenset({"know", "mean", "kind", "sort", "like"})


def _drop_fillers(ws: list[str], breaks: list[bool]) -> tuple[list[int], list[bool]]:
    """Remove fillers and stutters from the words `ws`: the positions kept, and for each kept word
    whether a clause boundary precedes it. `breaks[i]` says a boundary precedes word i; removed
    fillers leave a boundary behind them."""
    if not breaks:
        breaks = [False] * len(ws)
    out: list[int] = []
    obr: list[bool] = []
    pending = False
    n = len(ws)
    i = 0
    while i < n:
        w = ws[i]
        if not pending and w not in _NOT_PLAIN and not breaks[i]:
            out.append(i)  # the common case: an ordinary word, no boundary pending (same as below)
            obr.append(False)
            i += 1
            continue
        nxt = ws[i + 1] if i + 1 < n else ""
        prev = ws[out[-1]] if out else ""
        if breaks[i]:
            pending = True
        if w in FILLERS:
            pending = True
            i += 1
            continue
        if w == "you" and nxt == "know" and prev not in {"do", "did", "would", "does", "don't", "didn't", "let", "let's", "might", "could", "will"}:
            after = ws[i + 2] if i + 2 < n else ""
            after2 = ws[i + 3] if i + 3 < n else ""
            direct_q = after in WH and after2 in AUX  # "you know how does a purchase work": a filler before a question
            if direct_q or after not in {"if", "whether", "what", "how", "who", "when", "where", "why", "which", "that", "about", "of", "the", "anyone", "anybody", "someone"}:
                pending = True
                i += 2
                continue
        if w == "i" and nxt == "mean" and prev not in {"do", "did", "what", "if"}:
            pending = True
            i += 2
            continue
        if out and w == prev and w in STUTTER:
            i += 1
            continue
        if w in {"kind", "sort"} and nxt == "of" and prev not in {
                "what", "which", "this", "that", "the", "a", "any", "some", "same", "every", "each", "one", "these", "those",
                "all", "no", "that's", "what's", "different", "other", "right", "wrong", "new", "first", "only"}:
            i += 2  # "are kind of you guys on", "it's kind of a mess": a hedge, not "what kind of"
            continue
        if w == "like" and prev in LIKE_FILLER_AFTER and nxt not in LIKE_OBJECT:
            i += 1  # "are you guys like looking at", "so like what's": a filler, not a verb
            continue
        if pending and not breaks[i] and (w not in CLAUSE_STARTERS or prev in OPEN_PHRASE):
            pending = False  # "what's um the biggest headache": a filler inside a phrase splits nothing
        out.append(i)
        obr.append(pending)
        pending = False
        i += 1
    return out, obr


# --------------------------------------------------------------------------- question shape


def _wh_question(ws: list[str], j: int, start: int = 0) -> bool:
    """Is the wh-word at position j the head of a direct question?"""
    w = ws[j]
    prev = ws[j - 1] if j > 0 else ""
    if w == "who" and j + 1 < len(ws) and ws[j + 1] == "else" and prev not in {"know", "see", "saw", "wonder", "sure"}:
        return True  # "besides the two of you who else would have a say"
    if prev in EMBED_BEFORE or prev in PRON and prev not in {"this"}:
        return False
    nxt0 = ws[j + 1] if j + 1 < len(ws) else ""
    if w in {"which", "who", "whom"} and j != start and prev not in {
            "like", "and", "or", "but", "so", "then", "now", "okay", "yeah", "also", "just", "well", "right"} and (
            nxt0 in AUX or nxt0 in {"means", "makes", "gives", "lets", "helps", "signs", "runs", "owns", "handles"}
            or not nxt0):
        return False  # a relative clause: "our food cost, which is way too high"; "the person who signs"
    if w in WH_CONTR:
        rest = " ".join(ws[j:])
        return not STATEMENT_WH.match(rest)
    nxt = ws[j + 1] if j + 1 < len(ws) else ""
    if w == "how" and nxt in {"about", "come"}:
        return True
    if w == "what" and nxt == "about":
        return True
    if w == "why" and nxt == "not":
        return True
    if w in {"how", "which"} and nxt in {"much", "many", "one", "ones"} and j + 2 < len(ws) and ws[j + 2] in AUX:
        return True  # "how much has been set aside", "how many are still active"
    if w == "how" and nxt in {"many", "much"}:
        return True  # "how many people in the office would be editing it"
    if nxt in AUX:
        if w == "what" and nxt == "is":  # "what is nice is ..."
            return not STATEMENT_WH.match(" ".join(ws[j:]))
        return True
    if w in {"who", "what"} and nxt in SUBJECT_WH_VERBS:
        return True
    if w == "who" and j == start:
        return True
    if w in {"which", "what"}:
        # "...which part matters most", "what tool handles that": wh + noun phrase + verb
        k = j + 1
        while k < min(len(ws), j + 4) and ws[k] not in PRON and ws[k] not in AUX and ws[k] not in SUBJ:
            if k > j + 1 and ws[k].endswith("s") and not ws[k].endswith("ss") and ws[k] not in {"is", "has", "does", "was", "this", "its", "us"}:
                return True
            k += 1
    if j == start and w in {"what", "which", "how", "whose"} and nxt and nxt not in PRON and nxt not in {"if", "we", "i"}:
        # a clause that opens with what/which/how + a noun phrase asks ("what percentage of
        # invoices need review", "how many tickets a week come in")
        return not STATEMENT_WH.match(" ".join(ws[j:]))
    # wh + short noun phrase + auxiliary + subject: "what pos are you on", "how many temps are you"
    k = j + 1
    limit = min(len(ws), j + 8)
    while k < limit:
        t = ws[k]
        if t in PRON and t not in {"this"}:
            return False
        if t in AUX:
            after = ws[k + 1] if k + 1 < len(ws) else ""
            return after in SUBJ or after in PRON or after in {"y'all", "guys", "folks"}
        k += 1
    return False


def clause_cue(ws: list[str]) -> bool:
    """Does this clause (normalised words) have an interrogative shape of its own?"""
    if not ws:
        return False
    text = " ".join(ws)
    if asks(text):
        return True
    k0 = 0
    while k0 < len(ws) and (ws[k0] in DISCOURSE or ws[k0] in HEDGES):
        k0 += 1
    if k0 < len(ws) - 1 and ws[k0] in AUX and (ws[k0 + 1] in SUBJ or ws[k0 + 1] in PRON):
        return True
    for j, w in enumerate(ws):
        if (w in WH or w in WH_CONTR) and _wh_question(ws, j, k0):
            return True
        if j > 0 and w in AUX and j + 1 < len(ws) and ws[j + 1] in INVERT_SUBJ:
            prev = ws[j - 1]
            if prev not in PRON and prev not in {"to", "that", "if", "whether", "than", "as", "let", "what", "who", "where", "when", "how", "which", "there", "here"}:
                return True
            # "...doing the job for you is anything not working": "you is" cannot be one clause, so
            # a new one starts at the auxiliary (speech recognition runs sentences together)
            if prev == "you" and w in {"is", "was", "does", "has", "isn't", "doesn't", "hasn't"}:
                return True
    if IN_SITU.search(text):
        return True
    return False


def _is_fragment(ws: list[str]) -> bool:
    """A verbless continuation of a question ("a security review, anything like that")."""
    body = [w for w in ws if w not in DISCOURSE]
    if not body:
        return False
    return not any(w in PRON or w in AUX or w.endswith("'s") and w not in WH_CONTR for w in body) and len(body) <= 12


# --------------------------------------------------------------------------- analysis


def analyse_turn(index: int, role: str, speaker: str, text: str, punctuated: bool) -> TurnText:
    return TurnText(index, role, speaker, text, analysis_of(text, punctuated))


_SENT_END = re.compile(r"[.?!]")
_ELLIPSIS = re.compile(r"\s*(\.\.\.|…)\s*")
_CLAUSE_GAP = re.compile(r"[;:—–]|\s-\s|\.\.\.|…|\(|\)")


class _TurnAnalysis:
    """One turn's text, analysed in two passes. The first (here, always): sentences, normalised
    words (fillers dropped), their text and offsets. The second (`complete`, on demand): clauses,
    their interrogative cues and which ask. Shared through the cache of `_analyse_text`; neither
    pass's result is mutated after it is made, only read."""

    __slots__ = ("sentences", "text", "n_words", "punctuated", "done", "memo", "has_q", "__weakref__")

    def __init__(self, text: str, punctuated: bool):
        self.punctuated = punctuated
        self.done = False
        self.has_q: bool | None = None
        self.memo: dict = {}  # per-line results that depend on this text alone (offline.py)
        self.sentences = _sentences(text, punctuated, weakref.ref(self))
        words = [s.text for s in self.sentences]
        self.text = " ".join(words)
        self.n_words = sum(len(s.norms) for s in self.sentences)

    def complete(self) -> None:
        if self.done:
            return
        clause_no = 0
        for sent in self.sentences:
            clause_no = _clauses(sent, clause_no, self.punctuated)
        self.done = True


@lru_cache(maxsize=16384)
def _analyse_text(text: str, punctuated: bool) -> _TurnAnalysis:
    """One turn's analysis (cached: the result is never mutated, only read and completed)."""
    return _TurnAnalysis(text, punctuated)


def _sentences(text: str, punctuated: bool, owner: weakref.ref) -> list[Sentence]:
    """First pass: the sentences of one turn with their normalised words."""
    # [gap, token, gap, token, ..., gap]: gaps[i + 1] follows token i (TOKEN_RE never matches empty)
    pieces = _TOKEN_SPLIT.split(text)
    raws = pieces[1::2]
    n = len(raws)
    if not n:
        return []
    gaps = pieces[0::2]
    cum = list(accumulate(map(len, pieces), initial=0))  # piece k starts at cum[k]
    starts, ends = cum[1::2], cum[2::2]
    # sentence and clause boundaries from the gaps between tokens; most gaps are one space
    sent_bounds: list[tuple[int, int, bool]] = []  # (first token, last token excl, ends with ?)
    clause_break_at: set[int] = set()
    open_end: set[int] = set()  # sentences with no closing punctuation at all
    start = 0
    special = [i for i in range(n - 1) if gaps[i + 1] != " "]
    special.append(n - 1)
    for i in special:
        gap = gaps[i + 1]
        end_sentence = False
        if "\n" in gap.strip(" \t\r") or _SENT_END.search(gap):
            end_sentence = True
            low = raws[i].lower().replace("’", "'")
            nxt = raws[i + 1] if i + 1 < n else ""
            if "?" not in gap and "!" not in gap and low.rstrip(".") in ABBREV and nxt and (
                nxt[:1].islower() or nxt.lower() in TZ_WORDS or low.rstrip(".") in {"a.m", "p.m", "am", "pm"} and nxt.lower() in TZ_WORDS
            ):
                end_sentence = False
            if _ELLIPSIS.fullmatch(gap):
                end_sentence = False
                clause_break_at.add(i + 1)
        if end_sentence or i == n - 1:
            sent_bounds.append((start, i + 1, "?" in gap))
            if not _SENT_END.search(gap):
                open_end.add(len(sent_bounds) - 1)
            start = i + 1
        elif _CLAUSE_GAP.search(gap):
            clause_break_at.add(i + 1)
    sentences: list[Sentence] = []
    for si_, (a, b, ends_q) in enumerate(sent_bounds):
        base = starts[a]
        core = _sentence_core(text[base:ends[b - 1]], a, b, raws, starts, ends, clause_break_at)
        if core is not None:
            sentences.append(Sentence(core, base, ends_q, si_ in open_end, punctuated, owner))
    return sentences


class _SentenceCore:
    """What the first pass finds in one sentence's raw words, wherever they occur: normalised words,
    their spans from the sentence's first character, clause boundaries. Shared (read only) by every
    sentence with the same raw text."""

    __slots__ = ("norms", "starts", "ends", "breaks", "text", "offsets")

    def __init__(self, norms: list[str], starts: list[int], ends: list[int], breaks: list[bool]):
        self.norms, self.starts, self.ends, self.breaks = norms, starts, ends, breaks
        self.text = " ".join(norms)
        self.offsets = list(accumulate([len(w) + 1 for w in norms[:-1]], initial=0))


# raw sentence text -> its core (None: no words left). Sentences recur across turns that differ
# ("yeah that makes sense", "okay, perfect."): their normalisation is done once.
_CORES: dict[str, "_SentenceCore | None"] = {}


def _sentence_core(raw: str, a: int, b: int, raws: list[str], starts: list[int], ends: list[int],
                   clause_break_at: set[int]) -> "_SentenceCore | None":
    """The core of the sentence made of tokens a..b-1 (raw text `raw`). A sentence's clause
    boundaries come from the gaps inside it, so `raw` decides everything here."""
    core = _CORES.get(raw, _MISSING)
    if core is not _MISSING:
        return core
    norm = _norm_token_cached
    base = starts[a]
    norms = list(map(norm, raws[a:b]))
    flat = [n[0] for n in norms if len(n) == 1]
    brk = [i in clause_break_at for i in range(a, b)] if clause_break_at else None
    ss = [x - base for x in starts[a:b]]
    es = [x - base for x in ends[a:b]]
    if len(flat) == len(norms) and (brk is None or not any(brk)) and _keeps_all(flat):
        # the common case: one word per token, no boundary inside, nothing for _drop_fillers
        ws = flat
        breaks = brk or [False] * len(ws)
    else:
        if len(flat) == len(norms):  # one word per token
            ws, bs = flat, brk or []
        else:
            ws, bs, s2, e2 = [], [], [], []
            for i, s, e, nms in zip(range(a, b), ss, es, norms):
                for k, nm in enumerate(nms):
                    ws.append(nm)
                    s2.append(s)
                    e2.append(e)
                    bs.append(k == 0 and i in clause_break_at)
            ss, es = s2, e2
        keep, breaks = _drop_fillers(ws, bs)
        if len(keep) != len(ws):
            ws, ss, es = [ws[k] for k in keep], [ss[k] for k in keep], [es[k] for k in keep]
    core = _SentenceCore(ws, ss, es, breaks) if ws else None
    if len(raw) <= CACHED_TEXT_MAX:
        remember(_CORES, raw, core, 20_000)
    return core


def clear_caches() -> None:
    """Forget every analysed turn and sentence (see offline.clear_caches)."""
    _analyse_text.cache_clear()
    _CORES.clear()


def remember(cache: dict, key, value, limit: int) -> None:
    """cache[key] = value, keeping at most `limit` entries: when full, the older half goes
    (dicts keep insertion order), so what recurs now stays."""
    if len(cache) >= limit:
        for k in list(islice(cache, len(cache) // 2)):
            cache.pop(k, None)  # another thread may have dropped it already
    cache[key] = value


_MISSING = object()


def _clauses(sent: Sentence, clause_no: int, punctuated: bool) -> int:
    """Second pass over one sentence: its clauses (numbered from `clause_no` within the turn),
    their cues and which of them ask. Returns the next clause number."""
    words, breaks = sent.words, sent.breaks
    # clause splits before discourse words and before "like" + question word
    groups: list[list[Word]] = [[]]
    for k, w in enumerate(words):
        split = breaks[k]
        if not split and w.norm not in _SPLIT_WORDS:
            groups[-1].append(w)  # the common case: no rule below can split before this word
            continue
        if k > 0 and w.norm in DISCOURSE and (w.norm not in ADJ_DISCOURSE or words[k - 1].norm not in NO_SPLIT_AFTER):
            prevw = words[k - 1].norm
            if not (w.norm in {"so", "and", "or", "then", "now", "well", "also"} and prevw in {"and", "or", "but", "so", "as", "even", "just", "right", "if", "than", "more", "less", "even", "up", "down", "back", "by"}):
                split = True
            if w.norm == "well" and prevw in {"as", "very", "pretty", "really", "works", "work", "worked", "so"}:
                split = False
            if w.norm == "now" and prevw in {"right", "for", "until", "till", "from", "by", "up"}:
                split = False
            if w.norm == "then" and prevw in {"since", "until", "till", "by", "from", "and", "before", "after", "back"}:
                split = False
        if k > 0 and w.norm == "like" and k + 1 < len(words) and (
            words[k + 1].norm in WH or words[k + 1].norm in WH_CONTR or words[k + 1].norm in AUX
            and k + 2 < len(words) and words[k + 2].norm in SUBJ
        ):
            split = True
        if k > 0 and not split and w.norm in {"when", "if", "once", "whenever"} and words[k - 1].norm not in {
            "know", "see", "ask", "wonder", "wondering", "curious", "sure", "even", "as", "only", "and", "or", "but", "so", "like", "tell", "me",
            "check", "unclear", "clear", "matter", "decide", "regardless", "exactly", "just", "especially", "say",
            "okay", "alright", "fine", "mind", "right", "cool", "good"}:
            split = True  # "...solves the problem first | when you say end of q3, is that a hard deadline"
        if split and groups[-1]:
            groups.append([])
        groups[-1].append(w)
    groups = [h for g in groups for h in _split_at_questions(g)]
    clauses = []
    word_clause: list[int] = []
    for ci, g in enumerate(groups):
        ws = [w.norm for w in g]
        clauses.append(Clause(words=g, text=" ".join(ws), cue=clause_cue(ws), index=clause_no))
        clause_no += 1
        word_clause.extend([ci] * len(g))
    _mark_questions(clauses, sent.ends_q, sent.open_end, punctuated)
    sent._word_clause = word_clause
    sent._clauses = clauses
    return clause_no


# words before which the clause-split rules in _analyse_text may split (any other word: no split)
_SPLIT_WORDS = DISCOURSE | {"like", "when", "if", "once", "whenever"}
ADJ_DISCOURSE = {"okay", "great", "perfect", "awesome", "cool", "nice", "alright", "yes", "yeah", "yep", "well", "now", "then"}


def _split_at_questions(group: list[Word]) -> list[list[Word]]:
    """Start a new clause where a direct question begins mid-clause: "...that's doable | what does
    the approval process look like", so the pitch before it is not part of the question."""
    ws = [w.norm for w in group]
    cuts = []
    for j in range(2, len(ws)):
        if (ws[j] in WH or ws[j] in WH_CONTR) and ws[j - 1] not in DISCOURSE and ws[j - 1] not in {"like", "about", "of", "on", "in", "at", "for", "to", "with", "from"} \
                and ws[j - 1] not in EMBED_BEFORE and _wh_question(ws, j) and (j + 1 < len(ws) and (ws[j + 1] in AUX or ws[j] in WH_CONTR or ws[j + 1] == "else")):
            cuts.append(j)
    if not cuts:
        return [group]
    out, prev = [], 0
    for j in cuts:
        if _is_topic(ws[prev:j]):
            continue  # "and on the budget side what are you working with": a fronted topic, keep it
        out.append(group[prev:j])
        prev = j
    out.append(group[prev:])
    return [g for g in out if g]


def _mark_questions(cl: list[Clause], ends_q: bool, open_end: bool, punctuated: bool) -> None:
    for k in range(1, len(cl)):
        if cl[k].cue and not cl[k - 1].cue and _embedded_continuation(cl[k - 1].text, cl[k].text):
            cl[k].cue = False
    if punctuated and not ends_q and not open_end:
        # a punctuated call marks its questions: only an explicit ask counts here
        for c in cl:
            c.question = asks(c.text)
        return
    if ends_q:
        last = cl[-1].text
        body_cue = [c for c in cl if c.cue and not SOFT_TAG.match(c.text) and not CONFIRM_TAG.search(c.text) or c.cue and len(c.words) > 4]
        if not body_cue:
            if CONFIRM_TAG.search(last) or not any(c.cue for c in cl) and not SOFT_TAG.match(last):
                for c in cl:  # a confirmation ("so $400k in year one, is that right?") or a bare question
                    c.question = True
                return
            # only an agreement-seeking tag ("..., make sense?"): a statement
            for c in cl:
                c.question = asks(c.text)
            return
    on = False
    for k in range(len(cl) - 1):
        if cl[k + 1].cue and not cl[k].cue and (_subordinate(cl[k].text) or _is_topic(cl[k].text.split())):
            cl[k].cue = True  # "and if you changed nothing" + "what happens"; "budget wise" + "are you..."
    for c in cl:
        if c.cue:
            c.question = True
            on = True
        elif on and (_is_fragment([w.norm for w in c.words]) or c.words and c.words[0].norm == "or"
                     or len(c.words) > 1 and c.words[0].norm == "and" and (c.words[1].norm in WH or c.words[1].norm in WH_CONTR)):
            c.question = True
        else:
            c.question = False
            on = False


EMBED_CONTEXT = re.compile(
    r"\b(about|understand|understanding|learn|learning|hear|hearing|know|knowing|see|seeing|explore|exploring|"
    r"figure out|sense of|look at|looking at|walk you through|show you|cover|covering|discuss|talk about|talking about)\b"
)


def _is_topic(ws: list[str]) -> bool:
    """A short fronted topic before a question: "and on the money side", "budget wise", "in terms of timing"."""
    body = [w for w in ws if w not in DISCOURSE]
    if not body or len(body) > 6 or not _is_fragment(body):
        return False
    return body[0] in {"on", "in", "as", "for", "about", "regarding", "re", "around", "with", "from", "timing", "budget"} \
        or body[-1] in {"wise", "side", "front", "end"}


def _subordinate(text: str) -> bool:
    ws = text.split()
    k = 0
    while k < len(ws) and (ws[k] in DISCOURSE or ws[k] in HEDGES):
        k += 1
    return k < len(ws) and ws[k] in SUBORDINATE


def _embedded_continuation(prev: str, cur: str) -> bool:
    """'... learning about your operation' + 'and what's going on in the building': one statement."""
    ws = cur.split()
    if len(ws) < 2 or ws[0] not in {"and", "or"} or not (ws[1] in WH or ws[1] in WH_CONTR):
        return False
    return bool(EMBED_CONTEXT.search(prev)) and not ASK.search(prev)


def analyse_call(turns: list) -> CallText:
    """Analyse every turn (objects with .speaker, .text, .role)."""
    punctuated = any("?" in (t.text or "") for t in turns)
    out = [analyse_turn(i, t.role or "buyer", t.speaker, t.text or "", punctuated) for i, t in enumerate(turns)]
    return CallText(turns=out, punctuated=punctuated)


# Texts longer than this are analysed afresh each time instead of cached: long monologues rarely
# recur, and the caches are bounded by count, so this bounds their memory too.
CACHED_TEXT_MAX = 1500


def analysis_of(text: str, punctuated: bool) -> "_TurnAnalysis":
    """The analysis of one turn's text: from the cache for ordinary turns."""
    return _analyse_text(text, punctuated) if len(text) <= CACHED_TEXT_MAX else _TurnAnalysis(text, punctuated)


# --------------------------------------------------------------------------- word stems (similar.py)

@lru_cache(maxsize=65536)
def stem(w: str) -> str:
    """A crude stem: possessives and one suffix off (-ing, -ies, -ed, -es, -s). (Undoing a doubled
    consonant, "cutting" -> "cut", was measured and lowered accuracy on unseen calls: left out.)"""
    w = w.replace("'s", "").replace("'", "")
    for suf in ("ing", "ies", "ed", "es", "s"):
        if len(w) > len(suf) + 3 and w.endswith(suf):
            return w[: -len(suf)] + ("y" if suf == "ies" else "")
    return w
