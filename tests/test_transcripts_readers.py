"""Transcript readers on real-looking export files of every format, and on broken ones."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


from tools.transcripts import FORMATS, MAX_BYTES, Transcript, TranscriptError, detect_format, read_path, read_transcript

FIX = Path(__file__).parent / "fixtures" / "transcripts"
BROKEN = FIX / "broken"
DEV_SET = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "dev"


def no_consecutive_speakers(t: Transcript) -> bool:
    return all(a.speaker != b.speaker for a, b in zip(t.turns, t.turns[1:]))


def increasing_starts(t: Transcript) -> bool:
    starts = [x.start for x in t.turns]
    return all(s is not None for s in starts) and starts == sorted(starts)


# ---------------------------------------------------------------------------------------------
# good files, one per format (plus variants)

GOOD = {
    "text_priya_discovery.txt": ("text", ["Priya Raman", "Marcus Webb"], 34),
    "turns_priya_discovery.json": ("turns", ["Priya Raman", "Marcus Webb"], 34),
    "otter_jordan_discovery.txt": ("otter", ["Jordan Pike", "Rosa Delgado"], 26),
    "vtt_zoom_helena_discovery.vtt": ("vtt", ["Helena Brandt", "Raj Patel", "Colleen Murphy"], 27),
    "vtt_teams_sofia_discovery.vtt": ("vtt", ["Sofia Marchetti", "Greg O'Neil", "José Martínez", "Tanya Brooks"], 26),
    "srt_kevin_discovery.srt": ("srt", ["Kevin Marsh", "Aaliyah Johnson"], 23),
    "gong_grace_discovery.json": ("gong", ["Grace Liu", "Frank Castillo", "Nadia Rahman"], 24),
    "gong_nested_parties.json": ("gong", ["Priya Raman", "Marcus Webb", "Sam Ortiz"], 21),
    "fireflies_elena_discovery.json": ("fireflies", ["Elena Volkova", "Brian Ko"], 21),
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_reads_sample_file(name):
    fmt, speakers, n = GOOD[name]
    t = read_path(FIX / name)
    assert t.format == fmt
    assert t.source == str(FIX / name)
    assert t.speakers == speakers
    assert len(t.turns) == n
    assert no_consecutive_speakers(t)
    assert increasing_starts(t)
    assert all(x.text and x.text == " ".join(x.text.split()) for x in t.turns)
    # detection agrees with the reader, and forcing the format gives the same result
    assert detect_format((FIX / name).read_text(encoding="utf-8")) == fmt
    forced = read_transcript((FIX / name).read_text(encoding="utf-8"), source="x", fmt=fmt)
    assert forced.to_json() == t.to_json()


def test_text_timestamps_continuations_and_same_speaker_merge():
    t = read_path(FIX / "text_priya_discovery.txt")
    assert t.turns[0].start == 2.0 and t.turns[0].end is None
    # a wrapped line without a name continues the turn above it
    assert t.turns[1].text.endswith("the month-end close is eating my week.")
    # two timestamped lines of Marcus in a row are one turn, starting at the first
    audit = next(x for x in t.turns if "audit fees" in x.text)
    assert audit.start == 82.0 and "Last year the auditors billed us an extra forty thousand" in audit.text
    # 'The short version: ...' inside Marcus's turn is words, not a new speaker
    crit = next(x for x in t.turns if x.text.startswith("Three things, really."))
    assert crit.speaker == "Marcus Webb" and "The short version: it has to consolidate" in crit.text


def test_same_call_in_two_formats_hashes_the_same():
    a = read_path(FIX / "text_priya_discovery.txt")
    b = read_path(FIX / "turns_priya_discovery.json")
    assert a.content_hash() == b.content_hash()
    assert [x.start for x in a.turns][:5] == [float(int(x.start)) for x in b.turns][:5]
    assert b.meta["rep"] == "Priya Raman" and "turns" not in b.meta


def test_otter_footer_dropped_and_split_paragraphs_merged():
    t = read_path(FIX / "otter_jordan_discovery.txt")
    assert not any("otter.ai" in x.text.lower() for x in t.turns)
    assert t.turns[-1].text == "thanks jordan bye"
    dup = next(x for x in t.turns if x.text.startswith("receipts go missing"))
    assert dup.speaker == "Rosa Delgado" and "duplicate reimbursements that we only caught at audit" in dup.text
    assert t.turns[1].start == 4.0


def test_otter_hour_long_headers():
    text = ("Dana Whitfield  59:58\nSo that is the plan.\n\nPriya Raman  1:00:03\nGreat, thank you.\n\n"
            "Dana Whitfield  1:02:07\nBye now.\n\nTranscribed by https://otter.ai\n")
    t = read_transcript(text)
    assert t.format == "otter"
    assert [x.start for x in t.turns] == [3598.0, 3603.0, 3727.0]


def test_zoom_cues_without_speaker_continue_previous_speaker():
    t = read_path(FIX / "vtt_zoom_helena_discovery.vtt")
    assert t.meta["variant"] == "zoom"
    assert t.meta["cues_without_speaker"] > 5
    first = t.turns[0]
    assert first.text == ("Good morning, both. Thanks for joining. Raj, Colleen, I have us down for forty-five "
                          "minutes. Does that still work?")
    assert (first.start, first.end) == (1.2, 8.04)
    raj = next(x for x in t.turns if x.text.startswith("We run two distribution centres"))
    assert raj.speaker == "Raj Patel" and raj.text.endswith("more in November.")


def test_zoom_first_cue_without_speaker_is_unknown():
    text = ("WEBVTT\n\n1\n00:00:00.500 --> 00:00:02.000\nis this thing on\n\n2\n00:00:02.000 --> 00:00:04.000\n"
            "Priya Raman: Hi Marcus, can you hear me?\n\n3\n00:00:04.100 --> 00:00:05.000\nMarcus Webb: Yes.\n")
    t = read_transcript(text)
    assert [x.speaker for x in t.turns] == ["Unknown", "Priya Raman", "Marcus Webb"]


def test_teams_voice_tags_entities_notes_and_split_cues():
    t = read_path(FIX / "vtt_teams_sofia_discovery.vtt")
    assert t.meta["variant"] == "teams"
    assert "José Martínez" in t.speakers and "Greg O'Neil" in t.speakers  # &#233; &#237; &#39; decoded
    text = " ".join(x.text for x in t.turns)
    assert "</v>" not in text and "<v" not in text and "&amp;" not in text and "&#" not in text
    assert "NOTE" not in text and "Confidential" not in text
    assert "P&L line for analytics tools" in text
    # one utterance over three cues (GUID ids .../14-0, -1, -2), some without </v>, is one turn
    assert t.turns[0].text == ("Hi Greg, hi Tanya. Thanks for joining. I'm Sofia Marchetti, I lead the retail team "
                               "at Northbeam Analytics.")
    assert (t.turns[0].start, t.turns[0].end) == (3.4, 9.88)


def test_vtt_voice_tags_several_speakers_in_one_cue_and_classes():
    text = ("WEBVTT - meeting\nKind: captions\n\nSTYLE\n::cue { color: yellow }\n\n"
            "00:01.000 --> 00:03.500 align:start\n<v.loud Ann Lee>Hello <b>there</b>.</v>\n<v Bob Ray>Hi Ann &amp; team\n\n"
            "00:03.500 --> 00:05.000\n<v Bob Ray><c.yellow>How</c> are <00:00:04.200>you?\n")
    t = read_transcript(text)
    assert [(x.speaker, x.text) for x in t.turns] == [("Ann Lee", "Hello there."), ("Bob Ray", "Hi Ann & team How are you?")]
    assert t.turns[0].start == 1.0 and t.turns[1].end == 5.0


def test_srt_optional_name_prefix_and_tags():
    t = read_path(FIX / "srt_kevin_discovery.srt")
    assert t.turns[0].text == "hey aaliyah kevin marsh with pickwell robotics can you hear me ok"
    assert (t.turns[0].start, t.turns[0].end) == (0.8, 5.12)
    inj = next(x for x in t.turns if x.text.startswith("floor loaded containers"))
    assert inj.speaker == "Aaliyah Johnson" and "<i>" not in inj.text


def test_srt_without_any_names_is_one_unknown_speaker():
    text = "1\n00:00:01,000 --> 00:00:02,000\nhello\n\n2\n00:00:02,500 --> 00:00:04,000\nhi there\n"
    t = read_transcript(text)
    assert t.format == "srt" and [(x.speaker, x.text) for x in t.turns] == [("Unknown", "hello hi there")]


def test_gong_parties_joined_affiliation_and_ms_to_seconds():
    t = read_path(FIX / "gong_grace_discovery.json")
    raw = json.loads((FIX / "gong_grace_discovery.json").read_text())
    first_sentence = raw["callTranscripts"][0]["transcript"][0]["sentences"][0]
    assert t.turns[0].start == first_sentence["start"] / 1000
    assert {x.speaker: x.affiliation for x in t.turns} == {
        "Grace Liu": "internal", "Frank Castillo": "external", "Nadia Rahman": "external"}  # "Nadia  Rahman" normalised
    assert t.meta["callId"] == "7782342274025937895"
    assert "Pain" in t.meta["topics"]
    # two monologues of Frank (topic change) are one turn
    slip = next(x for x in t.turns if x.text.startswith("Deals slip out of quarter."))
    assert slip.speaker == "Frank Castillo" and "about 1.2 million" in slip.text
    # the invitee who never spoke is no speaker
    assert "Tom Reyes" not in t.speakers


def test_gong_parties_nested_in_calls_with_integer_speaker_ids():
    t = read_path(FIX / "gong_nested_parties.json")
    assert [x.affiliation for x in t.turns if x.speaker == "Sam Ortiz"] == ["internal"]
    assert t.meta["callId"] == "5506981230938747104"


def test_gong_parties_inside_call_transcript():
    data = {"callTranscripts": [{"callId": "1", "parties": [{"speakerId": 1, "name": "A B", "affiliation": "Internal"},
                                                           {"speakerId": 2, "name": "C D", "affiliation": "External"}],
                                 "transcript": [{"speakerId": 1, "sentences": [{"start": 0, "end": 1500, "text": "Hi."}]},
                                                {"speakerId": "2", "sentences": [{"start": 1600, "end": 2000, "text": "Yo."}]}]}]}
    t = read_transcript(json.dumps(data))
    assert [(x.speaker, x.start, x.end) for x in t.turns] == [("A B", 0.0, 1.5), ("C D", 1.6, 2.0)]


def test_fireflies_nested_sentences_merged_per_speaker():
    t = read_path(FIX / "fireflies_elena_discovery.json")
    assert t.meta["title"].startswith("Parlance AI")
    assert t.turns[2].text.startswith("Then let's use them well.") and t.turns[2].text.endswith("Okay?")
    assert t.turns[0].start == 0.5


@pytest.mark.parametrize("wrap", [
    lambda s: s,
    lambda s: {"sentences": s},
    lambda s: {"data": {"transcript": {"title": "x", "sentences": s}}},
])
def test_fireflies_shapes(wrap):
    s = [{"speaker_name": "Ann", "text": "Hi.", "start_time": 0.2, "end_time": 1.0},
         {"speaker_name": "Ann", "text": "Budget?", "start_time": 1.1, "end_time": 2.0},
         {"speaker_name": None, "speaker_id": 7, "text": "Yes.", "start_time": 2.5, "end_time": 3.0}]
    t = read_transcript(json.dumps(wrap(s)))
    assert t.format == "fireflies"
    assert [(x.speaker, x.text, x.start, x.end) for x in t.turns] == [
        ("Ann", "Hi. Budget?", 0.2, 2.0), ("Speaker 7", "Yes.", 2.5, 3.0)]


def test_turns_json_variants():
    t = read_transcript('[{"speaker": "A", "text": "x", "start": "00:01:05"}, {"speaker": "B", "text": "y"}]')
    assert t.format == "turns" and t.turns[0].start == 65.0 and t.turns[1].start is None
    t = read_transcript('{"turns": [{"speaker": "A", "text": "x", "role": "rep"}, {"speaker": "A", "text": "z"}]}')
    assert [(x.text, x.role) for x in t.turns] == [("x z", "rep")]


def test_dev_set_files_read_as_turns_with_same_count():
    files = sorted(DEV_SET.glob("*.json"))
    if not files:
        pytest.skip("no dev set next to the repo")
    for f in files:
        raw = json.loads(f.read_text(encoding="utf-8"))
        t = read_path(f)
        assert t.format == "turns", f
        assert len(t.turns) == len(raw["turns"]), f
        assert [x.speaker for x in t.turns] == [x["speaker"] for x in raw["turns"]], f
        assert t.meta["rep"] == raw["rep"] and "labels" not in t.meta


# ---------------------------------------------------------------------------------------------
# plain text details


def test_text_timestamp_prefix_forms():
    text = ("00:00:05 Priya: Hi.\n(00:07) Marcus: Hello.\n[1:02:03.5] Priya: Late in the call.\n"
            "00:10:00\nMarcus: A timestamp on its own line starts the next turn.\n")
    t = read_transcript(text)
    assert [(x.speaker, x.start) for x in t.turns] == [
        ("Priya", 5.0), ("Marcus", 7.0), ("Priya", 3723.5), ("Marcus", 600.0)]


def test_text_unstamped_label_in_a_stamped_file_is_words():
    text = ("[00:00:01] Priya: hi\n[00:00:03] Marcus: hello\n[00:00:05] Priya: so, what budget do you have?\n"
            "Budget: about fifty thousand, approved.\n[00:00:09] Marcus: yes\nPriya: A name already heard still counts.\n"
            "[00:00:15] Dana Whitfield: hi all\n")
    t = read_transcript(text)
    assert [x.speaker for x in t.turns] == ["Priya", "Marcus", "Priya", "Marcus", "Priya", "Dana Whitfield"]
    assert t.turns[2].text == "so, what budget do you have? Budget: about fifty thousand, approved."
    assert t.turns[4].start is None and t.turns[5].start == 15.0


def test_text_rev_style_name_then_timestamp():
    text = "Speaker 1 (00:00):\nHello there, welcome.\n\nSpeaker 2 (00:04):\nThanks.\nSpeaker 1 [01:02]: Next.\n"
    t = read_transcript(text)
    assert t.format == "text"
    assert [(x.speaker, x.text, x.start) for x in t.turns] == [
        ("Speaker 1", "Hello there, welcome.", 0.0), ("Speaker 2", "Thanks.", 4.0), ("Speaker 1", "Next.", 62.0)]


def test_text_lowercase_labels_recurring_are_speakers():
    t = read_transcript("rep: hi there\ncustomer: hello\nrep: so, budget: do you have one\ncustomer: yes\n")
    assert [x.speaker for x in t.turns] == ["rep", "customer", "rep", "customer"]
    assert t.turns[2].text == "so, budget: do you have one"


def test_text_markdown_bold_names():
    t = read_transcript("**Priya Raman:** Hi Marcus.\n**Marcus Webb**: Hello.\n__Priya Raman__: So, budget?\n")
    assert [(x.speaker, x.text) for x in t.turns] == [
        ("Priya Raman", "Hi Marcus."), ("Marcus Webb", "Hello."), ("Priya Raman", "So, budget?")]


def test_detection_edge_cases():
    assert detect_format("Priya: pricing --> later\nMarcus: ok\n") == "text"
    assert detect_format("00:00:01,000 --> 00:00:02,000\nA: hi\n") == "srt"
    assert detect_format("e5f4b6c1/1-0\n00:00:01.000 --> 00:00:02.000\n<v A>hi</v>\n") == "vtt"
    with pytest.raises(TranscriptError) as e:  # WebVTT cues without the header: say so
        read_transcript("1\n00:00:01.000 --> 00:00:02.000\nA: hi\n", source="zoom.vtt")
    assert e.value.line == 1 and "expected the 'WEBVTT' header, found '1'" in str(e.value)
    assert detect_format('  [ {"speaker": "A", "text": "x"} ]') == "turns"
    assert detect_format("[00:00:01] A: hi") == "text"


def test_cue_timing_without_spaces_around_arrow():
    t = read_transcript("WEBVTT\n\n00:00:01.000-->00:00:02.500\n<v A>hi</v>\n")
    assert (t.turns[0].start, t.turns[0].end) == (1.0, 2.5)


def test_text_names_with_apostrophes_and_accents():
    t = read_transcript("Megan O'Brien: Hi Luis.\nLuis Peña-Ortiz: Hola.\nDr. Anne van der Berg: Morning.\n")
    assert t.speakers == ["Megan O'Brien", "Luis Peña-Ortiz", "Dr. Anne van der Berg"]


def test_url_and_clock_time_in_words_are_not_names():
    t = read_transcript("Priya: see https://example.com/pricing\nat 3:30 we can talk\nMarcus: ok\n")
    assert [x.speaker for x in t.turns] == ["Priya", "Marcus"]
    assert t.turns[0].text == "see https://example.com/pricing at 3:30 we can talk"


def test_one_spelling_per_speaker():
    text = ("WEBVTT\n\n00:01.000 --> 00:02.000\nPriya Raman: Hi.\n\n00:02.000 --> 00:03.000\nMarcus Webb: Hey.\n\n"
            "00:03.000 --> 00:04.000\npriya  raman: Budget?\n\n00:04.000 --> 00:05.000\nPRIYA RAMAN: Roughly?\n")
    t = read_transcript(text)
    assert t.speakers == ["Priya Raman", "Marcus Webb"]
    assert t.turns[-1].text == "Budget? Roughly?"


def test_crlf_and_bom():
    t = read_transcript("\ufeffPriya: Hi.\r\nMarcus: Hello.\r\n")
    assert t.speakers == ["Priya", "Marcus"]


def test_utf16_with_bom(tmp_path):
    p = tmp_path / "teams.vtt"
    p.write_bytes("WEBVTT\r\n\r\n00:00:01.000 --> 00:00:02.000\r\n<v José>Hola</v>\r\n".encode("utf-16"))
    t = read_path(p)
    assert (t.turns[0].speaker, t.turns[0].text) == ("José", "Hola")


def test_single_speaker_allowed():
    t = read_transcript("Kevin Marsh: Hi, this is Kevin from Pickwell, leaving you a quick voicemail.\n"
                        "Call me back at your convenience.\n")
    assert t.speakers == ["Kevin Marsh"] and len(t.turns) == 1


def test_format_aliases_and_unknown_format():
    assert read_transcript("WEBVTT\n\n00:01.000 --> 00:02.000\nA: hi\n", fmt="teams").format == "vtt"
    assert read_transcript('{"turns": [{"speaker": "A", "text": "hi"}]}', fmt="json").format == "turns"
    with pytest.raises(TranscriptError) as e:
        read_transcript("A: hi", source="call.txt", fmt="docx")
    assert "unknown transcript format 'docx'" in str(e.value) and "vtt" in str(e.value)
    assert set(FORMATS) == {"text", "otter", "vtt", "srt", "gong", "fireflies", "turns"}


def test_forced_format_mismatch_is_an_error():
    with pytest.raises(TranscriptError) as e:
        read_path(FIX / "gong_grace_discovery.json", fmt="turns")
    assert "turns JSON: no 'turns' list (top-level keys: requestId, records, callTranscripts, parties)" in str(e.value)
    with pytest.raises(TranscriptError) as e:
        read_transcript("Priya: hi\nMarcus: hello\n", source="a.vtt", fmt="vtt")
    assert e.value.line == 1 and "WEBVTT" in str(e.value)
    with pytest.raises(TranscriptError) as e:
        read_transcript("Priya: hi\n", source="a.json", fmt="gong")
    assert "invalid JSON" in str(e.value)


# ---------------------------------------------------------------------------------------------
# broken files: the error names the file, the line (or JSON path) and what was expected

BROKEN_CASES = {
    "gong_truncated.json": (233, "invalid JSON"),
    "fireflies_truncated.json": (288, "invalid JSON: Unterminated string"),
    "gong_unknown_speaker.json": (56, "gong JSON: callTranscripts[0].transcript[3].speakerId 999 not in parties"),
    "turns_missing_speaker.json": (36, "turns JSON: turns[5].speaker must be a non-empty string"),
    "vtt_bad_timestamp.vtt": (20, "bad timestamp '00:00:7x.080' in cue timing: expected hh:mm:ss.mmm"),
    "vtt_cue_without_timing.vtt": (31, "has no timing line: expected '00:00:01.000 --> 00:00:04.000'"),
    "srt_bad_timestamp.srt": (38, "bad timestamp '00:75:01,000' in cue timing"),
    "text_title_line.txt": (1, "expected 'Name: words' or a timestamp, found 'Ledgerline / Webb Holdings"),
    "otter_no_header.txt": (1, "expected an Otter speaker header 'Name  12:34'"),
    "empty.vtt": (None, "empty transcript"),
    "blank.txt": (None, "empty transcript"),
    "only_header.vtt": (None, "empty transcript: no spoken turns found (vtt format)"),
    "junk.bin": (None, "looks like a binary file"),
    "cp1252.txt": (1, "not UTF-8 text: byte 0xe9 at offset 3"),
}


@pytest.mark.parametrize("name", sorted(BROKEN_CASES))
def test_broken_file_errors(name):
    line, fragment = BROKEN_CASES[name]
    path = BROKEN / name
    with pytest.raises(TranscriptError) as e:
        read_path(path)
    err = e.value
    assert err.source == str(path)
    assert err.line == line
    assert fragment in str(err)
    assert str(err).startswith(f"{path}:{line}: " if line else f"{path}: ")


def test_text_error_on_later_line_names_it():
    text = "Priya: hi\nMarcus: hello\n\n[00:00:99] Priya: bad seconds\n"
    with pytest.raises(TranscriptError) as e:
        read_transcript(text, source="call.txt")
    assert e.value.line == 4 and "bad timestamp '00:00:99'" in str(e.value)


def test_vtt_cue_ending_before_start_and_missing_header():
    with pytest.raises(TranscriptError) as e:
        read_transcript("WEBVTT\n\n1\n00:00:05.000 --> 00:00:04.000\nA: hi\n", source="z.vtt")
    assert e.value.line == 4 and "ends" in str(e.value)
    with pytest.raises(TranscriptError) as e:
        read_transcript("WEBVTTX\n\n00:00:01.000 --> 00:00:02.000\nA: hi\n", source="z.vtt", fmt="vtt")
    assert e.value.line == 1


def test_srt_text_block_without_timing():
    text = "1\n00:00:01,000 --> 00:00:02,000\nA: hi\n\nB: stray words\n"
    with pytest.raises(TranscriptError) as e:
        read_transcript(text, source="c.srt")
    assert e.value.line == 5 and "expected a cue" in str(e.value) and "'B: stray words'" in str(e.value)


@pytest.mark.parametrize("doc, fragment", [
    ({"callTranscripts": [{"callId": "1", "transcript": [{"speakerId": 1, "sentences": []}]}]}, "no 'parties' list found"),
    ({"callTranscripts": [{"callId": "1", "transcript": []}, {"callId": "2", "transcript": []}], "parties": []},
     "holds 2 calls (1, 2)"),
    ({"callTranscripts": []}, "empty transcript"),
    ({"callTranscripts": [{"transcript": [{"speakerId": 1, "sentences": [{"start": "soon", "text": "x"}]}]}],
      "parties": [{"speakerId": 1, "name": "A"}]}, "callTranscripts[0].transcript[0].sentences[0].start must be a number"),
    ({"callTranscripts": [{"transcript": [{"sentences": []}]}], "parties": [{"speakerId": 1, "name": "A"}]},
     "callTranscripts[0].transcript[0] has no speakerId"),
    ({"sentences": [{"speaker_name": "A", "text": 5}]}, "fireflies JSON: sentences[0].text must be a string"),
    ({"data": {"transcript": {"sentences": [{"text": "hi"}]}}}, "data.transcript.sentences[0] has no speaker_name"),
    ({"turns": "Priya: hi"}, "turns JSON: turns must be a list"),
    ({"turns": []}, "empty transcript"),
    ({"turns": [{"speaker": "A", "text": "x", "start": -3}]}, "turns[0].start must be a non-negative number"),
    ({"meeting": {}}, "JSON does not look like a transcript"),
    ([], "empty transcript"),
])
def test_json_structure_errors(doc, fragment):
    with pytest.raises(TranscriptError) as e:
        read_transcript(json.dumps(doc), source="call.json")
    assert fragment in str(e.value)
    assert str(e.value).startswith("call.json")


def test_json_errors_carry_the_line_of_the_bad_value():
    doc = '{"turns": [\n  {"speaker": "A", "text": "x"},\n  {"speaker": "B",\n   "text": ["y"]}\n]}'
    with pytest.raises(TranscriptError) as e:
        read_transcript(doc, source="c.json")
    assert e.value.line == 4 and str(e.value).startswith("c.json:4: turns JSON: turns[1].text must be a string")
    bare = '[{"speaker_name": "A", "text": "x"},\n{"speaker_name": "A", "text": "y", "start_time": "late"}]'
    with pytest.raises(TranscriptError) as e:
        read_transcript(bare, source="f.json")
    assert e.value.line == 2 and "sentences[1].start_time must be a number" in str(e.value)


def test_huge_file_refused_without_reading(tmp_path):
    p = tmp_path / "huge.vtt"
    with open(p, "wb") as f:
        f.truncate(MAX_BYTES + 1)
    with pytest.raises(TranscriptError) as e:
        read_path(p)
    assert f"over the {MAX_BYTES // 1048576} MB limit" in str(e.value) and str(p) in str(e.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(TranscriptError) as e:
        read_path(tmp_path / "nope.txt")
    assert "no such file" in str(e.value)
    with pytest.raises(TranscriptError) as e:
        read_path(tmp_path)
    assert "directory" in str(e.value)


def test_nothing_partial_on_error():
    good = (FIX / "text_priya_discovery.txt").read_text()
    with pytest.raises(TranscriptError):
        read_transcript(good + "\n[00:99:00] Priya Raman: the end\n")
