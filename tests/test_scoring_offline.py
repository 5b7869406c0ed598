"""The offline engine on small synthetic calls: the traps real calls are full of, evidence and
quotes, determinism, and the generic line fields (so a scorecard author can rely on them)."""
from __future__ import annotations

import pytest

from playbook.loader import load_playbook
from playbook.models import Scorecard
from playbook.starter import STARTER_DIR
from tools.scoring import CallScore, LineVerdict, OFFLINE_ENGINE_VERSION, score_turns
from tools.scoring.text import analyse_call, normalise
from tools.transcripts.model import Turn


@pytest.fixture(scope="module")
def card() -> Scorecard:
    return load_playbook(STARTER_DIR).scorecard("discovery")


def call(*lines: str) -> list[Turn]:
    """'R: text' / 'B: text' lines -> turns with roles."""
    out = []
    for ln in lines:
        who, text = ln.split(":", 1)
        rep = who.strip() == "R"
        out.append(Turn(speaker="Rep Name" if rep else "Buyer Name", text=text.strip(), role="rep" if rep else "buyer"))
    return out


def verdict(card, turns, line) -> LineVerdict:
    return score_turns(turns, card).verdict(line)


# --------------------------------------------------------------------------- question detection


@pytest.mark.parametrize("text,is_q", [
    ("so um is there budget set aside for this or would you have to go find it", True),
    ("and who else would weigh in on something like this", True),
    ("what pos are you guys on right now", True),
    ("ok so let's put a number on that how many temps are you bringing on", True),
    ("walk me through how you bought your last tool", True),
    ("so um what i was hoping to do today is learn about your operation", False),
    ("you'd actually see what each rep is doing in the dashboard", False),
    ("here's how we do it for other customers", False),
    ("we don't charge extra so there's no surprise on the budget side", False),
    ("our food cost was thirty four percent which is way too high", False),
    ("i'd love to meet the person who signs off on these", False),
    ("it depends on the connectors which of your core systems is the hardest to provision", True),
    ("and on the budget side what are you working with", True),
])
def test_question_detection_without_question_marks(text, is_q):
    c = analyse_call([Turn("Rep", text, role="rep")])
    assert any(cl.question for cl in c.turns[0].clauses) is is_q


def test_normalise_drops_fillers_and_punctuation():
    assert normalise("Um, so — you know, what's the Budget?") == "so what's the budget"
    assert normalise("10 a.m. Eastern") == "10 am eastern"


# --------------------------------------------------------------------------- traps


def test_buyer_volunteered_budget_does_not_pass(card):
    turns = call("R: what's going on with your reporting today",
                 "B: it's slow and we have about fifty thousand set aside for a new tool this year",
                 "R: great that's helpful let me show you the dashboard")
    v = verdict(card, turns, "budget_confirmed")
    assert v.verdict == "fail" and v.turn is None and v.reason


def test_budget_in_a_pitch_does_not_pass(card):
    turns = call("R: our budget-friendly plan fits any budget and we have plans for every budget",
                 "B: ok",
                 "R: did you know our platform keeps teams under budget?",
                 "B: ok")
    assert verdict(card, turns, "budget_confirmed").verdict == "fail"


def test_budget_question_in_asr_text_passes_with_evidence(card):
    turns = call("R: hi there", "B: hi",
                 "R: perfect um and on the money side is there budget set aside for this or is it something you'd have to go find",
                 "B: nothing yet")
    v = verdict(card, turns, "budget_confirmed")
    assert v.verdict == "pass" and v.turn == 2
    assert "budget set aside" in v.quote and v.quote in turns[2].text


def test_decision_is_yours_is_not_asking_who_decides(card):
    turns = call("R: honestly the decision is yours and it's totally your decision no pressure", "B: thanks",
                 "R: who should I send the deck to?", "B: me")
    assert verdict(card, turns, "decision_maker_identified").verdict == "fail"
    turns = call("R: and who else would need to sign off on this", "B: our cfo")
    assert verdict(card, turns, "decision_maker_identified").verdict == "pass"


def test_timing_of_something_unrelated_is_not_a_timeline(card):
    turns = call("R: when did you open the second location", "B: last year",
                 "R: our implementation timeline is about six weeks", "B: ok")
    assert verdict(card, turns, "timeline_established").verdict == "fail"
    turns = call("R: when do you need something in place is there a date driving this", "B: by march")
    v = verdict(card, turns, "timeline_established")
    assert v.verdict == "pass" and v.turn == 0


def test_agenda_only_at_the_end_fails(card):
    filler = []
    for i in range(8):
        filler += [f"R: let me show you screen number {i}", "B: ok"]
    turns = call("R: hi can you hear me", "B: yes", *filler,
                 "R: so the whole point of today was to give you a quick look and decide on a next step", "B: sure")
    assert verdict(card, turns, "agenda_set").verdict == "fail"


def test_agenda_after_the_first_real_question_fails_small_talk_does_not_count(card):
    late = call("R: hi which crm are you on", "B: hubspot",
                "R: ok so my goal for today is to learn how you sell and see if a demo makes sense", "B: sure")
    assert verdict(card, late, "agenda_set").verdict == "fail"
    early = call("R: hi sam can you hear me ok", "B: yep",
                 "R: great so my goal for today is to learn how you sell and see if a demo makes sense does that work", "B: sure",
                 "R: which crm are you on", "B: hubspot")
    v = verdict(card, early, "agenda_set")
    assert v.verdict == "pass" and v.turn == 2


def test_vague_close_fails_specific_agreed_close_passes_on_the_confirmation(card):
    vague = call("R: what's not working in onboarding", "B: it's slow and manual and people quit in the first month",
                 "R: i'll send something over and we'll circle back next week", "B: sounds good")
    assert verdict(card, vague, "next_step_booked").verdict == "fail"
    booked = call("R: what's not working in onboarding", "B: it's slow and manual",
                  "R: how's tuesday the 14th at 11 for a session with your admin", "B: tuesday at 11 works",
                  "R: great I'll send the invite for tuesday the 14th at 11", "B: thanks")
    v = verdict(card, booked, "next_step_booked")
    assert v.verdict == "pass" and v.turn == 4


def test_proposed_time_not_accepted_fails(card):
    turns = call("R: could we do wednesday at two with your it team", "B: let me talk to them first and i'll get back to you",
                 "R: ok i'll follow up in a week or two", "B: thanks")
    assert verdict(card, turns, "next_step_booked").verdict == "fail"


def test_pricing_deflection_na_pass_fail(card):
    none = call("R: what's not working today", "B: we lose track of orders every week and customers complain")
    assert verdict(card, none, "pricing_deflection_handled").verdict == "na"
    handled = call("R: what's not working today", "B: lots of things",
                   "B: honestly can you just send me some pricing",
                   "R: sure but so it's useful which part matters most to your team right now", "B: reporting")
    v = verdict(card, handled, "pricing_deflection_handled")
    assert v.verdict == "pass" and v.turn == 3
    gave_in = call("R: what's not working today", "B: lots of things", "B: what does it cost",
                   "R: it's forty dollars a seat a month. Let me show you the reports.", "B: ok")
    v = verdict(card, gave_in, "pricing_deflection_handled")
    assert v.verdict == "fail" and v.turn == 3 and v.reason
    offered = call("R: i'll send you a one pager after this", "B: yeah send it over", "R: great")
    assert verdict(card, offered, "pricing_deflection_handled").verdict == "na"


def test_volunteered_alternatives_and_sizing_questions_do_not_pass(card):
    turns = call("R: how many locations do you have", "B: twelve and we tried samsara last year",
                 "R: which erp are you on", "B: netsuite")
    res = score_turns(turns, card)
    assert res.verdict("competition_explored").verdict == "fail"
    assert res.verdict("impact_quantified").verdict == "fail"


def test_pain_question_needs_an_answer_and_ignores_fillers(card):
    turns = call("R: so um uh what's um the biggest headache for you right now you know",
                 "B: honestly scheduling we double book crews every week and lose jobs because of it")
    v = verdict(card, turns, "pain_identified")
    assert v.verdict == "pass" and v.turn == 0


# --------------------------------------------------------------------------- result shape


def test_every_verdict_has_evidence_or_reason_and_score_is_weighted(card):
    turns = call("R: hi so my goal for today is to understand your process and decide on a next step",
                 "B: sure",
                 "R: what problems are you running into with invoicing",
                 "B: invoices get lost and we pay late fees every single month")
    res = score_turns(turns, card, version="abc")
    assert isinstance(res, CallScore)
    assert res.scorecard == "discovery" and res.scorecard_version == "abc"
    assert res.engine == "offline" and res.engine_version == OFFLINE_ENGINE_VERSION
    assert [v.id for v in res.lines] == [ln.id for ln in card.lines]
    for v in res.lines:
        if v.verdict == "pass":
            assert turns[v.turn].role == "rep" and v.quote and len(v.quote) <= 310 and v.quote in turns[v.turn].text
        else:
            assert v.reason
    applicable = [v for v in res.lines if v.verdict != "na"]
    assert res.score == pytest.approx(sum(v.verdict == "pass" for v in applicable) / len(applicable), abs=1e-4)


def test_deterministic(card):
    turns = call("R: hi so what's going on with hiring right now", "B: we can't hire fast enough and lose candidates",
                 "R: how many candidates a month drop out", "B: maybe thirty")
    a = score_turns(turns, card).model_dump()
    b = score_turns([Turn(t.speaker, t.text, role=t.role) for t in turns], card).model_dump()
    assert a == b


def test_no_rep_is_a_clear_error(card):
    with pytest.raises(ValueError, match="no turn has role 'rep'"):
        score_turns([Turn("A", "hello", role="buyer")], card)


def test_engine_dispatch(card, monkeypatch):
    import tools.scoring.llm_engine as llm_engine

    seen = {}

    def fake(turns, scorecard, *, version="", client=None):
        seen["client"] = client
        return CallScore(scorecard=scorecard.id, scorecard_version=version, engine="llm", engine_version="fake", lines=[], score=0.0)

    monkeypatch.setattr(llm_engine, "score_with_llm", fake)
    out = score_turns(call("R: hi", "B: hi"), card, version="v1", engine="llm", llm="CLIENT")
    assert out.engine == "llm" and seen["client"] == "CLIENT"
    with pytest.raises(ValueError, match="unknown scoring engine"):
        score_turns(call("R: hi"), card, engine="magic")


# --------------------------------------------------------------------------- generic fields


def test_generic_fields_speaker_statement_trigger_scope():
    card = Scorecard.model_validate({
        "id": "custom", "title": "Custom", "opening_turns": 2, "closing_turns": 2,
        "small_talk": ["\\bcan you hear me\\b"],
        "lines": [
            {"id": "buyer_confirms", "title": "Buyer confirms", "speaker": "buyer", "kind": "statement",
             "phrases": ["it works now"]},
            {"id": "greeting", "title": "Greeting", "where": "opening", "kind": "statement", "phrases": ["thanks for calling"]},
            {"id": "any_question_after_complaint", "title": "Explores complaint", "kind": "question",
             "trigger": {"speaker": "buyer", "phrases": ["this is ridiculous"], "scope": "after"},
             "not_patterns": ["\\bcan you hear me\\b"]},
            {"id": "weighted", "title": "Weighted", "kind": "statement", "phrases": ["never said here"], "weight": 3},
        ],
    })
    turns = call("R: thanks for calling how can i help", "B: this is ridiculous the export failed again",
                 "R: sorry about that", "B: ok", "R: what were you exporting when it failed", "B: ok it works now")
    res = score_turns(turns, card)
    got = {v.id: (v.verdict, v.turn) for v in res.lines}
    assert got["buyer_confirms"] == ("pass", 5)
    assert got["greeting"] == ("pass", 0)
    assert got["any_question_after_complaint"] == ("pass", 4)
    assert got["weighted"] == ("fail", None)
    assert res.score == pytest.approx(3 / 6)


def test_punctuated_call_with_unpunctuated_or_indirect_questions(card):
    turns = call("R: Hi Jo, can you hear me?", "B: Yes.",
                 "R: So what are you using today for payroll",  # no closing punctuation at all
                 "B: ADP, and we hate it.",
                 "R: I'd be interested to know who else is involved in a decision like this.",
                 "B: Our CFO.",
                 "R: We integrate with ADP. Our budget tiers are flexible.",
                 "B: Okay.")
    res = score_turns(turns, card)
    assert (res.verdict("competition_explored").verdict, res.verdict("competition_explored").turn) == ("pass", 2)
    assert (res.verdict("decision_maker_identified").verdict, res.verdict("decision_maker_identified").turn) == ("pass", 4)
    assert res.verdict("budget_confirmed").verdict == "fail"


def test_offers_and_small_talk_are_not_discovery(card):
    turns = call("R: hey what's going on with you guys today", "B: not much just busy with the end of quarter close and the usual stuff",
                 "B: can you just send me some info", "R: sure would you like me to include case studies", "B: yes")
    res = score_turns(turns, card)
    assert res.verdict("pain_identified").verdict == "fail"
    assert (res.verdict("pricing_deflection_handled").verdict, res.verdict("pricing_deflection_handled").turn) == ("fail", 3)


def test_answer_requirement(card):
    brushed = call("R: what are the biggest challenges on your team right now", "B: eh not sure")
    assert verdict(card, brushed, "pain_identified").verdict == "fail"
    last = call("B: thanks for calling", "R: what are the biggest challenges on your team right now")
    assert verdict(card, last, "pain_identified").verdict == "pass"  # nothing to judge yet (live roleplay turn)


def test_agreement_needs_a_proposal_not_a_restated_date_or_price(card):
    restated = call("R: what's not working with payroll today", "B: payroll closes friday and it's always late and manual for everyone",
                    "R: our plans start at six dollars an employee", "B: okay fine",
                    "R: so the board meets on march 13th if you want it in by april", "B: yeah that'd be tight but yeah",
                    "R: i'll send over some info", "B: thanks")
    assert verdict(card, restated, "next_step_booked").verdict == "fail"
    proposed = call("R: what's not working with payroll today", "B: it's always late and manual for everyone",
                    "R: a setup session thursday at 2 with your admin", "B: yes that works", "R: thanks")
    v = verdict(card, proposed, "next_step_booked")
    assert (v.verdict, v.turn) == ("pass", 2)
