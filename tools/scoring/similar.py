"""Example matching: a rubric line learns what passes from its `examples` and what does not from
its `counter_examples`, and the engine judges unseen wording by how close a sentence comes to them.

A sentence (or clause) becomes a bag of *concepts*: each content word is stemmed and mapped to a
concept when the lexicon below knows a family of words that say the same thing in a sales
conversation ("today", "currently", "right now", "at the moment" are one concept; "walk me
through", "tell me about", "what does X look like" another), otherwise the stem stands for
itself. Numbers are one concept. The lexicon is language knowledge, shared by every scorecard; a
line's meaning lives in its own examples.

Closeness is the weighted share of an example's concepts that the sentence holds (how much of
the example it says), tempered by the share of the sentence the example explains. A concept's
weight grows with its rarity across the scorecard's lines (a concept every line's examples use
tells lines apart poorly) and with how many of the line's own examples share it (what they keep
coming back to is the behaviour; a word one example mentions is its topic). A sentence matches a
line when its best example comes to at least the line's `similarity` (the scorecard's, default
0.4), no counter example comes closer (a near miss named by the scorecard, or learned from a
disputed verdict), and, for a single clause, no other line's example is clearly closer.

Deterministic: the same text and the same examples give the same answer. Pure Python; results
are kept per (line, sentence text) by the caller.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

from .text import normalise, stem

# Families of words that mean the same thing in a sales or service conversation. Multi-word
# entries are matched as phrases before single words. A word may belong to several families.
LEXICON_TEXT = """
NOW: today, currently, current, now, present, presently, nowadays, existing, right now, at the moment, these days,
  as it stands, as things stand, day to day, at present, at this point, as of now, this year
DESCRIBE: walk me through, walk us through, talk me through, take me through, tell me, tell us, describe, explain,
  paint a picture, paint me a picture, give me a sense, help me understand, look like, looks like, looking like,
  what happens, how does, how do, how is, how are, what is, what are, run me through
PROCESS: process, workflow, handle, handling, manage, managing, run, running, procedure, approach, setup, set up,
  system, method, routine, operation, operations, way, ways, tool, tools, spreadsheet, manually, manual
SEQ: first, second, third, start with, begin with, kick off with, then, after that, next, finally, lastly,
  wrap up, finish, end with, close out, afterwards, from there, to finish
PLAN: agenda, plan, outline, cover, go over, go through, get through, run through, structure, topics, topic,
  want to do today, like to do today, thought we'd, figured we'd, we could, three things, couple of things,
  few things, two things, purpose, goal for today, goal of the call, reason for the call, today's call, this call,
  use the hour, use our time, run this, i'll show you, show you, spend the time, the hour, minutes, the way i'd like,
  how i was thinking, here's how, game plan, rundown, lay out, walk through, walk you through, take you through,
  get a feel for, get a sense of, want to listen, by the end, end of the call, first half, second half, next steps
GOAL: goal, goals, priority, priorities, objective, objectives, focus, focusing, initiative, initiatives, target,
  targets, aim, push, big push, ambition, roadmap, agenda for next year, strategy, on the horizon,
  what's next, whats next, what is next, looking ahead, coming up
FUTURE: next year, coming year, year ahead, next twelve months, next 12 months, next term, going forward,
  moving forward, down the road, upcoming, over the next, in the next, future, next season, next quarter, 2027,
  2028, twelve months, 12 months, the year, next cycle, road ahead
PERSON: who, whom, whose, anyone, anybody, someone, somebody, person, people, folks, whoever, stakeholder,
  stakeholders, colleague, colleagues, boss, manager, leadership, exec, executive, executives, cfo, ceo, vp, director
ELSE: else, other, others, another, additional, besides, as well, also
INVOLVE: involve, involved, weigh in, a say, sign off, signs off, approve, approval, approves, decide, decision,
  decisions, vote, loop in, looped in, bring in, buy in, on board, input, consulted, need to see, needs to see,
  have to see, get behind, champion, blessing, green light, final say, part of the decision, commit
TEAMS: team, teams, department, departments, group, groups, division, divisions, unit, units, site, sites,
  location, locations, office, offices, branch, branches, region, regions, crew, crews, org, organization,
  function, functions, business unit, subsidiary, clinic, clinics, store, stores, warehouse, warehouses, plant, plants
GROW: grow, growing, growth, expand, expanding, expansion, extend, roll out, rolling out, rollout, scale, scaling,
  add, adding, additional, bring on, hire, hiring, new hires, headcount, acquisition, acquire, acquiring,
  opening a, opened a, just opened, opening new, more seats, more users, more licenses, use case, use cases, elsewhere, anywhere else, other parts,
  benefit from, could use, make use, same problem, same headache, same issue
CONCERN: concern, concerns, concerned, worry, worried, worries, issue, issues, problem, problems, frustration,
  frustrations, frustrate, frustrating, bug, bugs, bugging, headache, headaches, pain, painful, challenge,
  challenges, struggle, struggling, complaint, complaints, not working, isn't working, doesn't work, annoy,
  annoying, bother, bothering, friction, gripe, pain point, wrong, broken, unhappy, not happy, could be better,
  change one thing, keeps you up, hesitation, hesitations, reservations, risk, risks, missing, missed, gap, gaps, letdown,
  disappoint, disappointed, disappointing, falling short, fall short, improve, what's missing, is missing, are missing,
  something missing
ALT: alternative, alternatives, competitor, competitors, competition, vendor, vendors, option, options, looking around,
  shopping around, pitching, evaluate, evaluating, other tools, other solutions, switch, switching, replace,
  look elsewhere, rfp, talking to, talked to, considering, consider, reconsider, shop around, other providers
RESULT: result, results, saved, save, saving, savings, reduce, reduced, cut, improve, improved, increase, increased,
  percent, faster, fewer, less, roi, adoption, usage, active, users, went from,
  down from, up from, compared to, outcome, outcomes, impact, benefit, logged in, processed, handled, closed,
  completed, dropped, doubled, halved, went down, went up, year over year, since you, since go live, since launch
SIGN: sign, signs, signature, signer, signing, signed, approve, approval, approvals, procurement, legal, paperwork,
  contract, contracts, order form, purchase order, po, docusign, redline, redlines, security review, finance, budget holder,
  sign off, signs off, countersign, terms, renewal process, approval process, vendor onboarding
SORRY: sorry, apologize, apologise, apologies, frustrating, frustrated, annoying, i hear you, imagine, rough,
  not fun, awful, terrible, stressful, stress, no fun, hate that, i get it, that stinks, that sucks, that's a pain,
  thats a pain, nightmare, unacceptable, shouldn't have, should not have, understandable, i'd be upset,
  appreciate your patience, stressed, gut punch, hair out, the worst, brutal, that's hard, thats hard, tough,
  rough spot, rough day, rough morning, upset, panic, scary, worrying, disruptive, headache, last thing you need,
  completely understand, totally understand, i understand, i can see why, makes sense you're
HELP: help, sort, sorted, fix, take care, own this, own it, i'll own, on it, look into, get to the bottom, resolve, make sure, assist,
  happy to, stay on, figure out, take it from here, take ownership, my job, personally, until it's, until its,
  see it through, as long as it takes, you got me, you've got me, right place, i've got this, i got this, leave it with me,
  i'll handle, i will handle, i'm on it, we'll get, let's get, we will get
VERIFY: verify, verification, confirm, email on file, email address, account number, account, last four, digits,
  date of birth, security question, postcode, zip, zip code, phone number, identity, pin, security, passcode,
  user id, username, order number, customer id, customer number, billing address, spell, registered, on file,
  member id, policy number, invoice number
ERROR: error, message, messages, happen, happening, happened, what do you see, do you see, are you seeing,
  seeing an error, anything change, what changed, did anything change, has anything changed, when did it start, when did this start, start happening,
  started happening, when did that start, when it started, steps, screen, occur, occurring, symptom, exactly, reproduce, every time, browser, device, error code, pop up, pops up,
  popup, blank, crash, crashes, crashing, freeze, freezes, spin, spinning, load, loading, fail, failing, failed,
  when did, what were you, what does it say, what do you see, what version, which version, affected
FIXED: fixed, fix, reset, updated, update, changed, applied, cleared, escalated, escalate, escalating, ticket, engineer,
  engineering, workaround, patch, patched, pushed, rolled back, resolved, refund, refunded, credited, credit,
  resynced, resync, reissued, reinstalled, restored, removed, corrected, caused, cause, root cause, was because,
  what i did, what i've done, what happened was, going forward, from now on, within, by tomorrow, hours, will hear
WORKING: it's working, is working, working now, working again, it works, works now, work now, try it, give it a try, test, testing, refresh, log back in,
  show up, shows up, come through, comes through, looks right, look right, on your end, tell me what you see,
  let me know what you see, tell me what comes out, tell me what happens, what do you see now, go through now,
  tell me what it shows, tell me what it says, tell me whether, tell me if, let me know if, let me know whether,
  what does it show now, what does it say now, does it show, does it work, is it showing, are you seeing,
  went through, back to normal, all set now, fixed now, resolved now, gone now, loads now, come up now
ANYELSE: anything else, something else, else i can, else we can, other questions, help with today, ticket,
  reference, case number, ticket number, reference number, case id, ticket id, confirmation number, anything more
REASON: reason, reasons, i'm calling, im calling, reach out, reaching out, the reason, why i'm calling, why i called, calling about,
  calling because, thirty seconds, 30 seconds, got a sec, caught you, out of the blue
NOTICED: saw, seen, noticed, read, congrats, congratulations, announced, announcement, just opened, hired, hiring, funding,
  raised, linkedin, post, posted, article, podcast, website, job posting, job postings, launched, expanded,
  new location, award, press release, came across, heard, spoke at, featured, recently
COMPANIES: companies, teams like, companies like, similar, customers, clients, folks like, people like, typically,
  usually, average, on average, businesses, firms, shops, operators, organizations like, others like
REDUCE: cut, reduce, save, eliminate, lower, drop, shrink, avoid, get rid of, faster, quicker, increase, improve,
  boost, double, less, fewer, stop, prevent, free up, without
MATTER: matter, matters, important, importance, priority, most, top, care about, want to see, focus on, need to see,
  must have, make or break, biggest, number one, key, critical, essential, crucial, valuable, useful, interested in,
  spend time on, zero in, dig into, spend our time
YOUSAID: you mentioned, you said, you told me, you were saying, you described, you brought up, you flagged,
  you called out, earlier you, remember you, you talked about, you shared, you noted, you raised, you complained,
  your team told, you explained, last time you, on our last call, told me, you just said, said, mentioned, you were
  telling, brought up, you flagged, complained, you described, like you said, as you said, you were on about,
  you were just on about, you were saying earlier, you pointed out
FIXES: fix, fixes, solve, solves, address, addresses, takes care of, this is where, this is the part, so that, eliminate,
  eliminates, handles, covers, stops, prevents, gets rid of, no more, instead of, which means, that means, replaces,
  kill, kills, gone, goes away, disappears, no longer, that's how, this is how, would have prevented, prevented,
  takes care, built for, exactly for, this is what, that's what, for you, the answer to, comes down, cuts
REACTION: how would, how does that, how do you see, would this, would that, work for you, fit, fits, land, lands,
  compare, compares, thoughts, reaction, what do you think, make sense for, picture, resonate, resonates, useful,
  helpful, see this, see that, imagine, could you see, would your, your team use, how's that, hows that, feel about,
  first impression, first impressions, react, in your world, day to day
RECAP: recap, play back, playback, replay, recall, what i heard, what i learned, as i understand, if i've got it right,
  correct me, summarize, summarise, summary, to remind, quick review, last time, when we spoke, when we talked,
  on our last call, from our call, from our last call, our call, our conversation, you told me, we talked about,
  from discovery, what we discussed, we discussed, where we left off, just to recap, heard from you
IMPACT: impact, impacts, affect, affects, affected, effect, effects, consequence, consequences, knock on, ripple,
  downstream, as a result, result of, leads to, lead to, led to, means for, mean for, what does that do, what does it do,
  what did that do, what has that done, does to, set you back, sets you back, set off, cost you, costs you, costing you,
  cost the, feel it, feels it, feeling it, feel the, hit, hits, hurt, hurts, where does that leave, leave you, left waiting,
  undone, isn't getting done, not getting done, fall through, falls through, slip, slips, at risk, put at risk, lose,
  losing, lost, suffer, suffers, show up for, end up, ends up, pay for, price of, toll, burden, pressure on, because of that,
  because of it, if nothing changes, if it keeps, if that carries on, if that continues, stays this way, carry on,
  add up, adds up, add up to, what does that cost, what does it cost you, how much does that cost, knock-on, fallout
PRICE: price, prices, pricing, priced, uplift, fee, fees, rate card, list price, discount, discounts, per seat,
  per user, per month, invoice amount, quote, quoted, renewal price, price increase, increase in price, cost per
USE: use, uses, using, used, you're on, you are on, you guys are on, we're on, runs on, run on, built on,
  plugs into, plugs in, integrates with, integration, connects to, syncs with
TIME: monday, tuesday, wednesday, thursday, friday, saturday, sunday, tomorrow, next week, am, pm, noon, morning,
  afternoon, o'clock, oclock, end of week, end of month
"""

# Words that carry the act more than the topic: kept, at a lower weight.
FUNCTION_CONCEPTS = {"PERSON", "ELSE", "NOW", "SEQ", "DESCRIBE"}
FUNCTION_WEIGHT = 0.6
# a word of the text that none of the line's examples uses weighs this much against it
OTHER_WEIGHT = 0.25
# closeness = coverage of the example ** (1 - PRECISION_SHARE) * share of the text it explains ** PRECISION_SHARE
PRECISION_SHARE = 0.35
# a sentence this much closer to another line's example than to this line's belongs to that line
OTHER_LINE_MARGIN = 0.1
# a counter example vetoes a text it explains at least this much better than any example (a tie
# goes to the counter example at 0; a little above, a sentence that holds both a near miss and
# the behaviour, "thanks for calling, I'll get you sorted", still passes)
VETO_MARGIN = 0.02
# weight of a concept = rarity across lines * (RECUR_BASE + share of the line's examples that hold it)
RECUR_BASE = 3.0

# Common words that say nothing about which behaviour a sentence is (pronouns, auxiliaries...).
SKIP = set(
    "a an the and or but so of to in on at for with from by as is are was were be been being do does did have has had "
    "can could would will should may might must i you we they he she it this that these those my your our their his her "
    "its me us them what how when where why which there here just really like um uh okay ok yeah yes no not right well "
    "if whether then than very much many any some all more lot lots bit kind sort thing things stuff get got going "
    "gonna go want wanted know think guess mean maybe also still again sure great good cool awesome perfect alright "
    "i'm i've i'll i'd you're you've you'll you'd we're we've we'll we'd it's that's there's let let's about into "
    "over up out off down one just actually basically literally honestly definitely totally quite pretty something "
    "anything everything nothing say said says tell told look looking see seen make made take took give gave come came "
    "able way time times day days week weeks month months year years hour hours minute minutes".split()
)

# Set phrases that say nothing about the behaviour although their words would ("no worries" is
# no concern): removed before the words are read.
NEUTRAL_PHRASES = (
    "no worries", "no problem", "not a problem", "no rush", "thank you", "thanks so much", "makes sense",
    "that makes sense", "sounds good", "that's helpful", "thats helpful", "that's useful", "thats useful",
    "good to hear", "nice to meet you", "good to meet you", "have a good one", "no no", "fair enough",
)
_NEUTRAL_RE = re.compile(r"(?<![\w'])(" + "|".join(re.escape(p) for p in NEUTRAL_PHRASES) + r")(?![\w'])")

# speech-recognition spellings of contractions (text.py maps the common ones already)
ASR_CONTRACTIONS = {"ill": "i'll", "ive": "i've", "id": "i'd", "weve": "we've", "youve": "you've", "theyre": "they're",
                    "wasnt": "wasn't", "arent": "aren't", "havent": "haven't", "hasnt": "hasn't", "wouldnt": "wouldn't",
                    "couldnt": "couldn't", "shouldnt": "shouldn't", "youll": "you'll", "lets": "let's",
                    "itll": "it'll", "theyll": "they'll", "youd": "you'd", "wed": "we'd"}

_NUMBER_WORDS = set(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million billion half "
    "percent double triple dozen".split()
)
_DIGIT = re.compile(r"\d")


def _parse_lexicon(text: str) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    words: dict[str, list[str]] = {}
    phrases: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=[A-Z]+:)", text.strip()):
        name, _, body = block.partition(":")
        for entry in body.replace("\n", " ").split(","):
            norm = normalise(entry.strip())
            if not norm:
                continue
            if " " in norm:
                phrases.setdefault(norm, []).append(name.strip())
            else:
                words.setdefault(stem(norm), []).append(name.strip())
    return ({k: tuple(dict.fromkeys(v)) for k, v in words.items()},
            {k: tuple(dict.fromkeys(v)) for k, v in phrases.items()})


WORD_CONCEPTS, PHRASE_CONCEPTS = _parse_lexicon(LEXICON_TEXT)
_PHRASE_RE = re.compile(
    r"(?<![\w'])(" + "|".join(re.escape(p) for p in sorted(PHRASE_CONCEPTS, key=len, reverse=True)) + r")(?![\w'])"
)


@lru_cache(maxsize=65536)
def concepts(norm_text: str) -> frozenset[str]:
    """The concepts of normalised text (see module doc). Cached by text."""
    out: set[str] = set()
    if any(w in ASR_CONTRACTIONS for w in norm_text.split()):
        norm_text = " ".join(ASR_CONTRACTIONS.get(w, w) for w in norm_text.split())
    if " " in norm_text:
        norm_text = _NEUTRAL_RE.sub(" ", norm_text)
    if " " in norm_text:  # a phrase adds its family; its words still count on their own
        for m in _PHRASE_RE.finditer(norm_text):
            out.update(PHRASE_CONCEPTS[m.group(1)])
    for w in norm_text.split():
        if _DIGIT.search(w) or w in _NUMBER_WORDS:
            out.add("NUM")
            continue
        s = stem(w)
        fams = WORD_CONCEPTS.get(s)
        if fams:
            out.update(fams)
        elif w not in SKIP and s not in SKIP and len(s) > 2:
            out.add(s)
    return frozenset(out)


@dataclass(frozen=True)
class ExampleIndex:
    """One line's examples and counter examples, as weighted concept sets, ready to match."""

    pos: tuple[tuple[frozenset, float], ...]  # (concepts, total weight)
    neg: tuple[tuple[frozenset, float], ...]
    weights: dict  # concept -> weight
    threshold: float
    others: tuple[tuple[frozenset, float], ...] = ()  # the other lines' examples

    def _measure(self, norm_text: str) -> tuple[frozenset, float]:
        """The text's concepts and their total weight (a concept no example uses weighs OTHER_WEIGHT)."""
        have = concepts(norm_text)
        w = self.weights
        return have, sum(w.get(c, OTHER_WEIGHT) for c in have) or 1.0

    def _best(self, items, have: frozenset, have_total: float) -> float:
        w = self.weights
        best = 0.0
        for ex, total in items:
            shared = ex & have
            if total <= 0 or not _telling(shared, ex):
                continue
            got = sum(w[c] for c in shared)
            # how much of the example the text says, tempered by how much else the text says
            score = (got / total) ** (1 - PRECISION_SHARE) * (got / have_total) ** PRECISION_SHARE
            if score > best:
                best = score
        return best

    def may_match(self, norm_text: str, counter: bool = False) -> bool:
        """False only when no part of this text (a clause of it) can match an example (with
        `counter`, a counter example): an upper bound for every clause, whose concepts are a
        subset of the text's (a clause says at most as much of an example, and nothing else
        weighs against it)."""
        have = concepts(norm_text)
        w = self.weights
        for ex, total in (self.neg if counter else self.pos):
            shared = ex & have
            if total <= 0 or not _telling(shared, ex):
                continue
            if (sum(w[c] for c in shared) / total) ** (1 - PRECISION_SHARE) >= self.threshold:
                return True
        return False

    def closeness(self, norm_text: str) -> tuple[float, float]:
        """(closeness to the best example, to the best counter example) of this text, 0..1."""
        have, have_total = self._measure(norm_text)
        return self._best(self.pos, have, have_total), self._best(self.neg, have, have_total)

    def matches(self, norm_text: str, one_thing: bool = True) -> bool:
        """Close enough to an example, not as close to a counter example, and, for a text that says
        one thing (a clause), not clearly another line's behaviour (much closer to another line's
        example). A longer stretch (an agenda, a recap) may well name other lines' topics."""
        have, have_total = self._measure(norm_text)
        p = self._best(self.pos, have, have_total)
        if p < self.threshold or self._best(self.neg, have, have_total) >= p + VETO_MARGIN:
            return False
        if self.others and one_thing:
            if self._best(self.others, have, have_total) >= p + OTHER_LINE_MARGIN:
                return False
        return True

    def vetoes(self, norm_text: str) -> bool:
        """A near miss: the text comes closer (by VETO_MARGIN) to a counter example than to any example."""
        if not self.neg:
            return False
        p, n = self.closeness(norm_text)
        return n >= self.threshold and n >= p + VETO_MARGIN


def _telling(shared: frozenset, example: frozenset) -> bool:
    """Can these shared concepts carry a match? A word about the topic, not only function words
    ("how", "now"); and one shared plain word is a coincidence, where one shared word family is
    not (unless the example is that short)."""
    if shared <= FUNCTION_CONCEPTS:
        return False
    return len(shared) >= min(2, len(example)) or next(iter(shared)).isupper()


def _weight(concept: str, df: dict[str, int], n_docs: int) -> float:
    base = FUNCTION_WEIGHT if concept in FUNCTION_CONCEPTS else 1.0
    return base * math.log(1.0 + (n_docs + 1) / (df.get(concept, 0) + 1))


def build_index(examples: list[str], counter: list[str], threshold: float,
                background: tuple[tuple[str, ...], ...] = ()) -> ExampleIndex:
    """The index of one line. `background`: the example texts of every line of the scorecard
    (one tuple per line, this line's own among them), for the concepts' rarity and for telling
    this line's behaviour from the others'."""
    pos_sets = [concepts(normalise(e)) for e in examples]
    neg_sets = [concepts(normalise(e)) for e in counter]
    own = tuple(examples)
    other_sets = [concepts(normalise(t)) for doc in background if doc != own for t in doc]
    docs = [frozenset().union(*(concepts(normalise(t)) for t in doc)) for doc in background if doc and doc != own]
    docs.append(frozenset().union(*pos_sets) if pos_sets else frozenset())
    df: dict[str, int] = {}
    for d in docs:
        for c in d:
            df[c] = df.get(c, 0) + 1
    universe = set().union(*pos_sets, *neg_sets, *other_sets) if (pos_sets or neg_sets or other_sets) else set()
    # a concept most of the line's examples share is the behaviour; one that only one example
    # mentions is that example's topic
    recur = {c: sum(1 for p in pos_sets if c in p) / len(pos_sets) for c in universe} if pos_sets else {}
    weights = {c: _weight(c, df, len(docs)) * (RECUR_BASE + recur.get(c, 0.0)) for c in universe}

    def items(sets):
        return tuple((s, sum(weights[c] for c in s)) for s in sets if s)

    return ExampleIndex(items(pos_sets), items(neg_sets), weights, threshold, items(other_sets))
