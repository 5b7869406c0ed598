"""identify_rep: which speaker is the rep, from --rep, the roster, or Gong's affiliation."""
from __future__ import annotations

from pathlib import Path

import pytest

from tools.transcripts import TranscriptError, identify_rep, read_path, read_transcript

FIX = Path(__file__).parent / "fixtures" / "transcripts"


def call(*speakers: str):
    return read_transcript("\n".join(f"{s}: words {i}" for i, s in enumerate(speakers)), source="call.txt")


def test_rep_given_exact_case_first_name_prefix():
    t = call("Priya Raman", "Marcus Webb")
    assert identify_rep(t, "Priya Raman", []) == "Priya Raman"
    assert identify_rep(t, "priya raman", []) == "Priya Raman"
    assert identify_rep(t, "  PRIYA   raman ", []) == "Priya Raman"
    assert identify_rep(t, "Priya", []) == "Priya Raman"
    assert identify_rep(t, "mar", []) == "Marcus Webb"


def test_rep_full_name_matches_short_display_name():
    t = call("Priya", "Marcus Webb")
    assert identify_rep(t, "Priya Raman", []) == "Priya"


def test_rep_not_a_speaker_lists_speakers():
    t = call("Priya Raman", "Marcus Webb")
    with pytest.raises(TranscriptError) as e:
        identify_rep(t, "Jordan Pike", ["Priya Raman"])
    msg = str(e.value)
    assert msg.startswith("call.txt: ") and "'Jordan Pike' is not a speaker" in msg
    assert "Priya Raman, Marcus Webb" in msg


def test_rep_ambiguous_first_name():
    t = call("Sam Ortiz", "Marcus Webb", "Sam Lee")
    with pytest.raises(TranscriptError) as e:
        identify_rep(t, "Sam", [])
    assert "matches several speakers" in str(e.value) and "Sam Ortiz, Sam Lee" in str(e.value)
    assert identify_rep(t, "Sam Lee", []) == "Sam Lee"


def test_roster_exact_case_insensitive_and_first_name():
    t = call("Priya Raman", "Marcus Webb")
    assert identify_rep(t, None, ["Jordan Pike", "priya raman"]) == "Priya Raman"
    t2 = call("Priya", "Marcus Webb")
    assert identify_rep(t2, None, ["Jordan Pike", "Priya Raman"]) == "Priya"


def test_roster_several_speakers_on_roster_is_ambiguous():
    t = call("Priya Raman", "Sam Ortiz", "Marcus Webb")
    with pytest.raises(TranscriptError) as e:
        identify_rep(t, None, ["Priya Raman", "Sam Ortiz"])
    assert "several speakers are on the roster (Priya Raman, Sam Ortiz)" in str(e.value)
    assert identify_rep(t, "Sam", ["Priya Raman", "Sam Ortiz"]) == "Sam Ortiz"


def test_roster_first_name_is_about_the_speaker_not_the_roster():
    # roster = names + aliases: two entries sharing a first name still identify the one speaker
    t = call("Sam", "Marcus Webb")
    assert identify_rep(t, None, ["Sam Ortiz", "Sam O."]) == "Sam"
    # a buyer who shares only the rep's first name is not the rep
    t = call("Priya Shah", "Marcus Webb")
    with pytest.raises(TranscriptError) as e:
        identify_rep(t, None, ["Priya Raman"])
    assert "cannot tell which speaker is the rep" in str(e.value)
    t = call("Priya R.", "Marcus Webb")
    assert identify_rep(t, None, ["Priya Raman"]) == "Priya R."
    # two speakers match by first name: no guess
    t = call("Sam", "Sam O.", "Marcus Webb")
    with pytest.raises(TranscriptError) as e:
        identify_rep(t, None, ["Sam Ortiz", "Jordan Pike"])
    assert "by first name, Sam, Sam O. all match" in str(e.value)
    # ... but a full name that only shares the first name does not count
    t = call("Sam", "Sam Lee", "Marcus Webb")
    assert identify_rep(t, None, ["Sam Ortiz"]) == "Sam"


def test_nobody_on_roster_clear_error():
    t = call("Priya Raman", "Marcus Webb")
    with pytest.raises(TranscriptError) as e:
        identify_rep(t, None, ["Jordan Pike"])
    assert str(e.value) == ("call.txt: cannot tell which speaker is the rep: speakers are Priya Raman, Marcus Webb; "
                            "pass --rep NAME or add the rep to the roster")


def test_gong_single_internal_speaker_is_the_rep():
    t = read_path(FIX / "gong_grace_discovery.json")
    assert identify_rep(t, None, []) == "Grace Liu"
    t.assign_rep("Grace Liu")
    assert {x.speaker: x.role for x in t.turns}["Frank Castillo"] == "buyer"


def test_gong_two_internal_speakers_need_roster_or_rep():
    t = read_path(FIX / "gong_nested_parties.json")
    with pytest.raises(TranscriptError) as e:
        identify_rep(t, None, [])
    assert "several internal speakers: Priya Raman, Sam Ortiz" in str(e.value)
    assert identify_rep(t, None, ["Priya Raman"]) == "Priya Raman"
    assert identify_rep(t, "sam ortiz", []) == "Sam Ortiz"


def test_file_declared_rep_used_when_none_given():
    t = read_path(FIX / "turns_priya_discovery.json")
    assert identify_rep(t, None, []) == "Priya Raman"
    assert identify_rep(t, "Marcus", []) == "Marcus Webb"  # --rep wins over the file


def test_single_speaker_transcript():
    t = call("Kevin Marsh")
    assert identify_rep(t, "kevin", []) == "Kevin Marsh"
    assert identify_rep(t, None, ["Kevin Marsh"]) == "Kevin Marsh"
    with pytest.raises(TranscriptError) as e:
        identify_rep(t, None, [])
    assert "speakers are Kevin Marsh" in str(e.value)


def test_assign_rep_sets_roles_on_all_formats():
    for f in sorted(FIX.glob("*.*")):
        t = read_path(f)
        rep = identify_rep(t, t.speakers[0], [])
        t.assign_rep(rep)
        assert {x.role for x in t.turns} <= {"rep", "buyer"}
        assert any(x.role == "rep" for x in t.turns)


def test_display_name_variants_last_first_and_company_suffix():
    text = ("WEBVTT\n\n00:01.000 --> 00:02.000\n<v Raman, Priya (Ledgerline)>Hi Marcus.</v>\n\n"
            "00:02.000 --> 00:03.000\n<v Marcus Webb>Hi.</v>\n")
    t = read_transcript(text, source="teams.vtt")
    assert identify_rep(t, "Priya Raman", []) == "Raman, Priya (Ledgerline)"
    assert identify_rep(t, None, ["Jordan Pike", "priya raman"]) == "Raman, Priya (Ledgerline)"


def test_transcript_without_speaker_names():
    t = read_transcript("1\n00:00:01,000 --> 00:00:02,000\nhello\n\n2\n00:00:03,000 --> 00:00:04,000\nhi\n", source="c.srt")
    with pytest.raises(TranscriptError) as e:
        identify_rep(t, None, ["Priya Raman"])
    assert "names no speakers" in str(e.value)
