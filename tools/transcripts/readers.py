"""Read call transcripts in the formats teams actually export.

Formats (``FORMATS``):

- ``text``: ``Name: words`` lines, each optionally prefixed by ``[hh:mm:ss]`` / ``hh:mm:ss`` (or
  ``mm:ss``); a line without a name continues the turn above it; a line holding only a timestamp
  gives the start of the next turn.
- ``otter``: Otter.ai's text export: a ``Name  12:34`` (or ``Name  1:02:03``) header line, the words,
  a blank line; the "Transcribed by https://otter.ai" footer is dropped.
- ``vtt``: WebVTT as Zoom writes it (``Name: words`` cues, some with no speaker, which continue the
  previous speaker or become "Unknown") and as Teams writes it (``<v Name>`` voice tags, ``</v>``
  sometimes missing, HTML entities, GUID cue ids, ``NOTE`` blocks).
- ``srt``: SubRip (numbered cues, ``00:00:01,000 --> 00:00:04,000``), ``Name:`` prefix optional.
- ``gong``: Gong's transcript JSON (``callTranscripts[].transcript[]`` of ``speakerId`` +
  ``sentences[{start,end,text}]`` in milliseconds) joined to its ``parties`` list.
- ``fireflies``: Fireflies' sentences JSON (a list, ``{"sentences": [...]}`` or
  ``{"data": {"transcript": {"sentences": [...]}}}``), ``start_time``/``end_time`` in seconds.
- ``turns``: ``{"turns": [{"speaker", "text", "start"?, "end"?}]}`` (or a bare list of such).

Every reader returns a :class:`Transcript` whose consecutive segments by one speaker are merged
into one turn (texts joined with a space, start of the first, end of the last); timestamps are
float seconds from the start of the call. Malformed input raises :class:`TranscriptError` naming
the source, the line (JSON: the path of the bad field) and what was expected; nothing partial is
returned.
"""
from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from .model import Transcript, TranscriptError, Turn

FORMATS: tuple[str, ...] = ("text", "otter", "vtt", "srt", "gong", "fireflies", "turns")
JSON_FORMATS = ("gong", "fireflies", "turns")
MAX_BYTES = 8 * 1024 * 1024  # a 10-hour call is well under 2 MB of text (Gong JSON ~3x); the offline scorer takes ~4 s and ~60 MB per MB, so 8 MB bounds one call to ~30 s

_ALIASES = {
    "txt": "text", "plain": "text", "webvtt": "vtt", "zoom": "vtt", "teams": "vtt",
    "subrip": "srt", "otter.ai": "otter", "json": None,
}
_UNKNOWN = "Unknown"

# ---------------------------------------------------------------------------------------------
# public API


def read_path(path: str | Path, fmt: str | None = None) -> Transcript:
    """Read one transcript file. Refuses files over ``MAX_BYTES`` and text that is not UTF-8
    (UTF-16 with a byte-order mark, as some Windows tools write, is accepted)."""
    p = Path(path)
    source = str(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise TranscriptError(source, "no such file") from None
    except OSError as e:
        raise TranscriptError(source, f"cannot read: {e.strerror or e}") from None
    if p.is_dir():
        raise TranscriptError(source, "is a directory, expected a transcript file")
    if size > MAX_BYTES:
        raise TranscriptError(
            source, f"file is {size / 1048576:.1f} MB, over the {MAX_BYTES // 1048576} MB limit for one "
            "transcript; is this really a call transcript? Split it into one file per call")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise TranscriptError(source, f"cannot read: {e.strerror or e}") from None
    return read_transcript(decode_bytes(data, source), source=source, fmt=fmt)


def read_transcript(text: str, source: str = "<text>", fmt: str | None = None) -> Transcript:
    """Parse transcript ``text``; detect its format unless ``fmt`` (one of ``FORMATS``) is given."""
    if not isinstance(text, str):
        raise TranscriptError(source, f"expected transcript text (str), got {type(text).__name__}")
    if len(text) > MAX_BYTES:
        raise TranscriptError(source, f"transcript is over the {MAX_BYTES // 1048576} MB limit")
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        raise TranscriptError(source, "contains NUL bytes: this looks like a binary file, not a transcript")
    if not text.strip():
        raise TranscriptError(source, "empty transcript: the file holds no text")
    wanted = _normalise_fmt(fmt, source)
    parsed_json: Any = _NOT_JSON
    if wanted is None or wanted in JSON_FORMATS:
        if wanted in JSON_FORMATS or _looks_like_json(text):
            parsed_json = _load_json(text, source)
    if wanted is None:
        wanted = _json_kind(parsed_json, source) if parsed_json is not _NOT_JSON else detect_text_format(text)
    if wanted in JSON_FORMATS:
        if parsed_json is _NOT_JSON:
            parsed_json = _load_json(text, source)
        try:
            segments, meta = _JSON_READERS[wanted](parsed_json, source)
        except TranscriptError as e:
            path = getattr(e, "json_path", None)
            line = _json_line(text, path) if path and e.line is None else None
            if line is None:
                raise
            raise TranscriptError(source, e.detail, line) from None
    else:
        segments, meta = _TEXT_READERS[wanted](text, source)
    turns = merge_segments(_one_spelling(segments), reuse=True)  # the reader's segments are its own
    if not turns:
        raise TranscriptError(source, f"empty transcript: no spoken turns found ({wanted} format)")
    return Transcript(turns, wanted, source, meta)


def detect_format(text: str) -> str:
    """The format name of ``text`` (one of ``FORMATS``), without reading it fully."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if _looks_like_json(text):
        return _json_kind(_load_json(text, "<text>"), "<text>")
    return detect_text_format(text)


def _content_lines(lines: list[str], which: range) -> list[str]:
    out = []
    for i in which:
        s = lines[i].strip()
        if s:
            out.append(s)
            if len(out) == 3:
                break
    return out


def detect_text_format(text: str) -> str:
    lines = _lines(text)
    head = _content_lines(lines, range(len(lines)))  # the first non-blank lines (up to 3)
    if not head:
        return "text"
    tail = _content_lines(lines, range(len(lines) - 1, -1, -1))  # the last ones
    first = head[0]
    if first.startswith("WEBVTT"):
        return "vtt"
    # cue files: a timing on the first line, or after a cue id on the second
    for cand in head[:2]:
        m = _TIMING_LIKE.match(cand)
        if m:
            # SubRip writes 00:00:01,000; a '.' file is WebVTT that lost its header (the vtt reader says so)
            return "srt" if "," in m.group(0) else "vtt"
    if _OTTER_HEADER.match(first) and not _TS_ONLY.match(first):
        nxt = head[1] if len(head) > 1 else ""
        if nxt and not _OTTER_HEADER.match(nxt):
            return "otter"
    if any(_OTTER_FOOTER.match(s) for s in tail):
        return "otter"
    return "text"


def _one_spelling(segments: list[Turn]) -> list[Turn]:
    """One speaker, one spelling: "priya raman" and "Priya  Raman" become the first spelling seen."""
    seen: dict[str, str] = {}
    as_written: dict[str, str] = {}  # a name as written -> its one spelling (names recur on every turn)
    for seg in segments:
        raw = seg.speaker
        one = as_written.get(raw)
        if one is None:
            name = " ".join(raw.split())
            one = as_written[raw] = seen.setdefault(name.casefold(), name)
        seg.speaker = one
    return segments


def merge_segments(segments: list[Turn], *, reuse: bool = False) -> list[Turn]:
    """Merge consecutive segments of one speaker into one turn; drop segments without words.
    `reuse`: the segments are the caller's to give up, and become the turns (no copies)."""
    out: list[Turn] = []
    for seg in segments:
        txt = " ".join(seg.text.split())
        if not txt:
            continue
        if out and out[-1].speaker == seg.speaker:
            last = out[-1]
            last.text = f"{last.text} {txt}"
            if seg.end is not None:
                last.end = seg.end
            if last.start is None:
                last.start = seg.start
            last.role = last.role or seg.role
            last.affiliation = last.affiliation or seg.affiliation
        elif reuse:
            seg.text = txt
            out.append(seg)
        else:
            out.append(Turn(seg.speaker, txt, seg.start, seg.end, seg.role, seg.affiliation))
    return out


# ---------------------------------------------------------------------------------------------
# helpers


class _NotJson:
    pass


_NOT_JSON: Any = _NotJson()


def _normalise_fmt(fmt: str | None, source: str) -> str | None:
    if fmt is None or fmt == "" or fmt == "auto":
        return None
    f = fmt.strip().lower()
    if f in FORMATS:
        return f
    if f in _ALIASES:
        return _ALIASES[f]
    raise TranscriptError(source, f"unknown transcript format {fmt!r}: expected one of {', '.join(FORMATS)}")


def decode_bytes(data: bytes, source: str) -> str:
    """Transcript bytes to text: UTF-8 (BOM optional) or UTF-16 with a BOM; a clear error otherwise."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as e:
            raise TranscriptError(source, f"bad UTF-16 text at byte {e.start}; save the transcript as UTF-8") from None
    if b"\x00" in data[:8192]:
        raise TranscriptError(source, "contains NUL bytes: this looks like a binary file, not a transcript "
                                      "(expected UTF-8 text: .txt, .vtt, .srt or .json)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TranscriptError(
            source, f"not UTF-8 text: byte 0x{data[e.start]:02x} at offset {e.start} cannot be decoded; "
            "save or export the transcript as UTF-8", line) from None


_decode = decode_bytes  # older name, used by tools/ingest.py


def _lines(text: str) -> list[str]:
    return re.split(r"\r\n|\r|\n", text)


def _snip(s: str, n: int = 60) -> str:
    s = s.strip()
    return repr(s if len(s) <= n else s[: n - 1] + "…")


# clock values: [h:]mm:ss[.fff] (fraction separator '.' or ',')
_CLOCK = re.compile(r"^(?:(\d{1,3}):)?(\d{1,3}):(\d{1,2})(?:[.,](\d{1,3}))?$")


@lru_cache(maxsize=16384)
def _clock(s: str) -> float | None:
    """Seconds for 'hh:mm:ss(.fff)' / 'mm:ss'; None if malformed or out of range."""
    m = _CLOCK.match(s.strip())
    if not m:
        return None
    h, mi, se, frac = m.groups()
    if int(se) >= 60 or (h is not None and int(mi) >= 60):
        return None
    secs = int(h or 0) * 3600 + int(mi) * 60 + int(se)
    if frac:
        secs += int(frac) / 10 ** len(frac)
    return float(secs)


# "Name: words". A name starts with a letter, is at most 6 words, has no sentence punctuation.
_NAME_PREFIX = re.compile(r"^(?P<name>[^\W\d_][^:?!;\"<>\[\]{}=|]{0,59}?)\s*:(?:\s+(?P<rest>.*))?$", re.S)
_PARTICLES = {"de", "da", "di", "del", "della", "der", "den", "van", "von", "la", "le", "du", "dos", "das",
              "bin", "bint", "al", "el", "y", "e", "ter", "ten", "mc", "mac", "st"}


def _name_prefix(s: str) -> tuple[str, str] | None:
    m = _NAME_PREFIX.match(s)
    if not m:
        return None
    name = _speaker_name(m.group("name"))
    if name is None:
        return None
    return name, (m.group("rest") or "")


@lru_cache(maxsize=4096)
def _speaker_name(raw: str) -> str | None:
    """The name in a 'Name:' prefix, spaces tidied; None when it cannot be a speaker's name."""
    name = " ".join(raw.split())
    words = name.split(" ")
    if len(words) > 6 or any(len(w) > 30 for w in words) or name.endswith((".", ",", "-")) and len(words) > 3:
        return None
    return name


@lru_cache(maxsize=4096)
def _capitalised(name: str) -> bool:
    words = re.findall(r"[^\W\d_][\w'’\-]*", name)
    return bool(words) and all(w[0].isupper() or w.lower() in _PARTICLES for w in words)


class _NamePolicy:
    """Decides whether a 'X: ...' prefix names a speaker or is part of the words.

    A prefix counts as a speaker when it is capitalised like a name, recurs as a prefix (lower-case
    labels such as 'rep:' / 'customer:'), carries a timestamp, or nothing has been said yet."""

    def __init__(self, candidates: list[str]):
        self.counts: dict[str, int] = {}
        for c in candidates:
            self.counts[c.lower()] = self.counts.get(c.lower(), 0) + 1

    def accept(self, name: str, *, stamped: bool, first: bool) -> bool:
        return stamped or first or _capitalised(name) or self.counts.get(name.lower(), 0) >= 2


_JSON_PATH = re.compile(r"^\w+ JSON: ((?:[A-Za-z_]\w*)(?:\[\d+\]|\.[A-Za-z_]\w*)*)")


def _err(source: str, line: int | None, msg: str) -> TranscriptError:
    e = TranscriptError(source, msg, line)
    m = _JSON_PATH.match(msg) if line is None else None
    e.json_path = m.group(1) if m else None  # type: ignore[attr-defined]  # read_transcript adds its line
    return e


def _json_line(text: str, path: str) -> int | None:
    """The line where the value at ``path`` ("turns[5].speaker") starts in JSON ``text``; when a
    key is missing, the line of the deepest enclosing value found. Only run on the error path."""
    dec = json.JSONDecoder()
    ws = re.compile(r"\s*")
    pos = ws.match(text, 0).end()
    found = None
    try:
        for depth, (key, idx) in enumerate(re.findall(r"\.?([A-Za-z_]\w*)|\[(\d+)\]", path)):
            ch = text[pos]
            if key and ch == "[" and depth == 0:
                continue  # a bare top-level list reported as "sentences[3]"
            if key:
                if ch != "{":
                    break
                pos = ws.match(text, pos + 1).end()
                hit = False
                while text[pos] != "}":
                    k, pos = dec.raw_decode(text, pos)
                    pos = ws.match(text, pos).end() + 1  # past ':'
                    pos = ws.match(text, pos).end()
                    if k == key:
                        hit = True
                        break
                    _, pos = dec.raw_decode(text, pos)
                    pos = ws.match(text, pos).end()
                    if text[pos] == ",":
                        pos = ws.match(text, pos + 1).end()
                if not hit:
                    break
            else:
                if ch != "[":
                    break
                pos = ws.match(text, pos + 1).end()
                for _ in range(int(idx)):
                    _, pos = dec.raw_decode(text, pos)
                    pos = ws.match(text, pos).end()
                    if text[pos] == ",":
                        pos = ws.match(text, pos + 1).end()
                if text[pos] == "]":
                    break
            found = pos
    except (ValueError, IndexError):
        pass
    return None if found is None else text.count("\n", 0, found) + 1


# ---------------------------------------------------------------------------------------------
# plain text

_TS_PREFIX = re.compile(
    r"^(?:\[(?P<b>\d{1,3}:\d{1,3}(?::\d{1,3})?(?:[.,]\d{1,3})?)\]|\((?P<p>\d{1,3}:\d{1,3}(?::\d{1,3})?(?:[.,]\d{1,3})?)\)"
    r"|(?P<n>\d{1,3}:\d{1,3}(?::\d{1,3})?(?:[.,]\d{1,3})?)(?=\s|$))\s*(?:[-–—|]\s*)?(?P<rest>.*)$", re.S)
_TIMING_LIKE = re.compile(r"^\s*\d[\d:.,]*\s*-->\s*\d")
_TS_ONLY = re.compile(r"^[\[(]?\d{1,3}:\d{1,3}(?::\d{1,3})?(?:[.,]\d{1,3})?[\])]?$")


_NAME_TS = re.compile(  # "Speaker 1 (00:00):" / "Priya Raman [00:01:02]: words" (Rev, Descript)
    r"^(?P<name>[^\W\d_][^:?!;\"<>\[\]{}=|()]{0,59}?)\s*[\[(](?P<ts>\d{1,3}:\d{1,3}(?::\d{1,3})?(?:[.,]\d{1,3})?)[\])]"
    r"\s*:(?:\s+(?P<rest>.*))?$", re.S)


_MD_NAME = re.compile(r"^(\*\*|__)([^*_:\n]{1,60}?)(:?)\1(:?)")


def _text_line(s: str) -> tuple[str | None, str | None, str]:
    """(timestamp text or None, speaker name candidate or None, words) of one stripped line."""
    if s[:1] in "*_":
        s = _MD_NAME.sub(r"\2\3\4", s)  # "**Priya:** words" / "**Priya**: words" (Markdown notes)
    ts_raw, rest = None, s
    if s[:1] in ("[", "(") or s[:1].isdecimal():  # where _TS_PREFIX can match
        m = _TS_PREFIX.match(s)
        if m:
            ts_raw = m.group("b") or m.group("p") or m.group("n")
            rest = m.group("rest").strip()
    m = _NAME_TS.match(rest) if ts_raw is None and ("[" in rest or "(" in rest) else None
    if m:
        name = " ".join(m.group("name").split())
        if len(name.split(" ")) <= 6:
            return m.group("ts"), name, (m.group("rest") or "").strip()
    np = _name_prefix(rest)
    if np:
        return ts_raw, np[0], np[1].strip()
    return ts_raw, None, rest


def _read_text(text: str, source: str) -> tuple[list[Turn], dict]:
    parsed: list[tuple[int, str | None, str | None, str]] = []  # (lineno, ts_raw, name, words)
    for i, raw in enumerate(_lines(text), 1):
        s = raw.strip()
        if s:
            parsed.append((i, *_text_line(s)))
    policy = _NamePolicy([n for _, _, n, _ in parsed if n])
    # A file whose speaker lines carry timestamps ("[00:01:02] Priya: ...") starts turns only on
    # stamped lines or with a name already heard; an unstamped "Budget: ..." there is words.
    named = [(ts, n) for _, ts, n, _ in parsed if n and policy.counts[n.lower()] >= 2]
    stamped_file = len(named) >= 3 and sum(ts is not None for ts, _ in named) >= 0.8 * len(named)
    segs: list[Turn] = []
    heard: set[str] = set()
    pending: float | None = None
    current: Turn | None = None
    stamped_turns = 0
    for i, ts_raw, name, words in parsed:
        ts = None
        if ts_raw is not None:
            ts = _clock(ts_raw)
            if ts is None:
                raise _err(source, i, f"bad timestamp {ts_raw!r}: expected hh:mm:ss or mm:ss "
                                      "(minutes and seconds below 60)")
            if name is None and not words:
                pending = ts  # a timestamp on its own line: the start of the next turn
                continue
        stamped = ts_raw is not None
        if name and (not stamped_file or stamped or name in heard or current is None) \
                and policy.accept(name, stamped=stamped, first=current is None):
            start = ts if ts is not None else pending
            pending = None
            stamped_turns += start is not None
            current = Turn(name, words, start)
            heard.add(name)
            segs.append(current)
            continue
        if current is None:
            raise _err(source, i, f"expected 'Name: words' or a timestamp, found {_snip(words if not name else f'{name}: {words}')}")
        line_words = f"{name}: {words}" if name else words
        current.text = f"{current.text} {line_words}" if current.text else line_words
    meta = {"timestamps": bool(stamped_turns)}
    return segs, meta


# ---------------------------------------------------------------------------------------------
# Otter.ai

_OTTER_HEADER = re.compile(r"^(?P<name>[^\W\d_][^:\n]{0,80}?)\s+(?P<ts>\d{1,3}:\d{1,2}(?::\d{1,2})?)\s*$")
_OTTER_FOOTER = re.compile(r"^transcribed by\s+(https?://)?(www\.)?otter\.ai\S*\s*$", re.I)


def _read_otter(text: str, source: str) -> tuple[list[Turn], dict]:
    segs: list[Turn] = []
    current: Turn | None = None
    after_blank = True
    for i, raw in enumerate(_lines(text), 1):
        s = raw.strip()
        if not s:
            after_blank = True
            continue
        if _OTTER_FOOTER.match(s):
            after_blank = True
            continue
        m = _OTTER_HEADER.match(s)
        if m and (after_blank or current is None or not current.text):
            start = _clock(m.group("ts"))
            if start is None:
                raise _err(source, i, f"bad timestamp {m.group('ts')!r} in Otter header: expected "
                                      "'Name  mm:ss' or 'Name  h:mm:ss'")
            current = Turn(" ".join(m.group("name").split()), "", start)
            segs.append(current)
        elif current is None:
            raise _err(source, i, f"expected an Otter speaker header 'Name  12:34', found {_snip(s)}")
        else:
            current.text = f"{current.text} {s}" if current.text else s
        after_blank = False
    return segs, {}


# ---------------------------------------------------------------------------------------------
# WebVTT and SRT

_TIMING = re.compile(r"^\s*(?P<a>\S+?)\s*-->\s*(?P<b>\S+)(?:\s+.*)?$")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?(?:\s+(?P<name>[^>]*))?>", re.I)
_TAGS = re.compile(r"</?(?:v|c|i|b|u|s|ruby|rt|lang|font|span)(?:[.\s][^>]*)?>|<\d{1,3}(?::\d{2}){1,2}(?:[.,]\d{1,3})?>", re.I)


def _blocks(lines: list[str], start: int = 0):
    """Yield (first line number, [stripped lines]) for blank-line separated blocks."""
    block: list[str] = []
    first = 0
    for i in range(start, len(lines)):
        s = lines[i].strip()
        if not s:
            if block:
                yield first, block
                block = []
            continue
        if not block:
            first = i + 1
        block.append(s)
    if block:
        yield first, block


def _parse_timing(line: str, lineno: int, source: str, fmt: str) -> tuple[float, float]:
    example = "00:00:01.000 --> 00:00:04.000" if fmt == "vtt" else "00:00:01,000 --> 00:00:04,000"
    m = _TIMING.match(line)
    if not m:
        raise _err(source, lineno, f"expected a cue timing '{example}', found {_snip(line)}")
    a, b = _clock(m.group("a")), _clock(m.group("b"))
    for raw, val in ((m.group("a"), a), (m.group("b"), b)):
        if val is None:
            raise _err(source, lineno, f"bad timestamp {raw!r} in cue timing: expected hh:mm:ss{'.' if fmt == 'vtt' else ','}mmm "
                                       f"as in '{example}'")
    if b < a:
        raise _err(source, lineno, f"cue ends ({m.group('b')}) before it starts ({m.group('a')})")
    return a, b


def _cue_segments(payload: str) -> list[tuple[str | None, str]]:
    """Split a cue payload into (speaker or None, text) pieces, using <v> tags or a 'Name:' prefix."""
    voices = list(_VOICE.finditer(payload)) if "<" in payload else []
    pieces: list[tuple[str | None, str]] = []
    if voices:
        head = payload[: voices[0].start()]
        if _TAGS.sub("", head).strip():
            pieces.append((None, head))
        for k, v in enumerate(voices):
            end = voices[k + 1].start() if k + 1 < len(voices) else len(payload)
            name = html.unescape(v.group("name") or "").strip() or None
            pieces.append((" ".join(name.split()) if name else None, payload[v.end(): end]))
    else:
        pieces.append((None, payload))
    out = []
    for spk, txt in pieces:
        if "<" in txt:
            txt = _TAGS.sub("", txt)
        out.append((spk, " ".join(html.unescape(txt).split())))
    return out


def _read_cues(text: str, source: str, fmt: str) -> tuple[list[Turn], dict]:
    lines = _lines(text)
    start_at = 0
    meta: dict = {}
    if fmt == "vtt":
        first = lines[0].strip() if lines else ""
        if not first.startswith("WEBVTT") or (len(first) > 6 and first[6] not in " \t"):
            raise _err(source, 1, f"expected the 'WEBVTT' header, found {_snip(first)}")
        # the header block runs to the first blank line
        start_at = 1
        while start_at < len(lines) and lines[start_at].strip():
            start_at += 1
    raw_cues: list[tuple] = []  # lineno, speaker, text, a, b, the text's 'Name:' prefix or None
    candidates: list[str] = []
    voiced = False
    for lineno, block in _blocks(lines, start_at):
        head = block[0]
        if fmt == "vtt" and (head == "NOTE" or head.startswith(("NOTE ", "NOTE\t", "STYLE", "REGION"))):
            continue
        if "-->" in head:
            t_line, t_no, payload = head, lineno, block[1:]
        elif len(block) > 1 and "-->" in block[1]:
            t_line, t_no, payload = block[1], lineno + 1, block[2:]
        else:
            example = "00:00:01.000 --> 00:00:04.000" if fmt == "vtt" else "00:00:01,000 --> 00:00:04,000"
            if _looks_like_cue_id(head) and len(block) > 1:
                raise _err(source, lineno + 1, f"cue {head} has no timing line: expected '{example}' after the "
                                               f"cue id, found {_snip(block[1])}")
            if _looks_like_cue_id(head):
                raise _err(source, lineno, f"cue {head} has no timing line: expected '{example}' after the cue id")
            raise _err(source, lineno, f"expected a cue (an optional id, then a timing '{example}', then the "
                                       f"words), found {_snip(head)}")
        a, b = _parse_timing(t_line, t_no, source, fmt)
        for spk, txt in _cue_segments("\n".join(payload)):
            np = None
            if spk is not None:
                voiced = True
            elif (np := _name_prefix(txt)) is not None:
                candidates.append(np[0])
            raw_cues.append((t_no, spk, txt, a, b, np))
    policy = _NamePolicy(candidates)
    segs: list[Turn] = []
    previous: str | None = None
    unlabelled = 0
    for _, spk, txt, a, b, np in raw_cues:
        if spk is None and txt:
            if np and policy.accept(np[0], stamped=False, first=previous is None):
                spk, txt = np
        if spk is None:
            spk = previous or _UNKNOWN
            unlabelled += 1
        previous = spk
        segs.append(Turn(spk, txt, a, b))
    meta["cues"] = len(raw_cues)
    meta["cues_without_speaker"] = unlabelled
    if fmt == "vtt":
        meta["variant"] = "teams" if voiced else "zoom"
    return segs, meta


def _looks_like_cue_id(s: str) -> bool:
    return bool(s) and " " not in s and not s.startswith("<") and len(s) <= 80


def _read_vtt(text: str, source: str) -> tuple[list[Turn], dict]:
    return _read_cues(text, source, "vtt")


def _read_srt(text: str, source: str) -> tuple[list[Turn], dict]:
    return _read_cues(text, source, "srt")


# ---------------------------------------------------------------------------------------------
# JSON formats


def _looks_like_json(text: str) -> bool:
    s = text.lstrip()
    return s.startswith("{") or bool(re.match(r"\[\s*(?:\{|\]|$)", s))


def _load_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise _err(source, e.lineno, f"invalid JSON: {e.msg} (column {e.colno})") from None
    except RecursionError:
        raise _err(source, None, "invalid JSON: nested too deeply") from None


def _json_kind(data: Any, source: str) -> str:
    if isinstance(data, dict):
        if "callTranscripts" in data:
            return "gong"
        if "turns" in data:
            return "turns"
        if _fireflies_sentences(data) is not None:
            return "fireflies"
        keys = ", ".join(list(data)[:8]) or "none"
        raise _err(source, None, "JSON does not look like a transcript: expected a 'turns' list, Gong's "
                                 f"'callTranscripts' or Fireflies' 'sentences' (top-level keys: {keys})")
    if isinstance(data, list):
        if not data:
            raise _err(source, None, "empty transcript: the JSON list holds no turns")
        first = data[0]
        if isinstance(first, dict):
            if "speaker_name" in first or "start_time" in first or "raw_text" in first:
                return "fireflies"
            if "speaker" in first:
                return "turns"
        raise _err(source, None, "JSON list does not look like a transcript: expected objects with "
                                 "'speaker' and 'text' (turns) or 'speaker_name' and 'text' (Fireflies)")
    raise _err(source, None, f"JSON does not look like a transcript: top level is a {type(data).__name__}")


def _num(v: Any, where: str, source: str, fmt: str, *, clock_ok: bool = False) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise _err(source, None, f"{fmt} JSON: {where} must be a number, got {json.dumps(v)[:40]}")
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            c = _clock(v) if clock_ok else None
            if c is None:
                raise _err(source, None, f"{fmt} JSON: {where} must be a number{' or hh:mm:ss' if clock_ok else ''}, "
                                         f"got {v[:40]!r}") from None
            return c
    if v != v or v < 0:  # NaN or negative
        raise _err(source, None, f"{fmt} JSON: {where} must be a non-negative number, got {v}")
    return float(v)


def _text_field(v: Any, where: str, source: str, fmt: str) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise _err(source, None, f"{fmt} JSON: {where} must be a string, got {json.dumps(v)[:40]}")
    return v


def _affiliation(v: Any) -> str | None:
    if isinstance(v, str) and v.strip().lower() in ("internal", "external"):
        return v.strip().lower()
    return None


def _read_turns(data: Any, source: str) -> tuple[list[Turn], dict]:
    meta: dict = {}
    if isinstance(data, dict):
        turns = data.get("turns")
        where = "turns"
        # keep descriptive keys (dev-set files carry id, rep, buyers, call_type...); labels stay out
        for k, v in data.items():
            if k not in ("turns", "labels"):
                meta[k] = v
        if "turns" not in data:
            keys = ", ".join(list(data)[:8]) or "none"
            raise _err(source, None, f"turns JSON: no 'turns' list (top-level keys: {keys}); expected "
                                     "{\"turns\": [{\"speaker\": ..., \"text\": ...}]}")
    else:
        turns, where = data, "top-level list"
    if not isinstance(turns, list):
        raise _err(source, None, f"turns JSON: {where} must be a list of {{\"speaker\", \"text\"}} objects, "
                                 f"got {type(turns).__name__}")
    segs: list[Turn] = []
    for k, t in enumerate(turns):
        w = f"turns[{k}]"
        if not isinstance(t, dict):
            raise _err(source, None, f"turns JSON: {w} must be an object with 'speaker' and 'text', got {json.dumps(t)[:40]}")
        spk = t.get("speaker")
        if not isinstance(spk, str) or not spk.strip():
            raise _err(source, None, f"turns JSON: {w}.speaker must be a non-empty string, got {json.dumps(spk)[:40]}")
        if "text" not in t:
            raise _err(source, None, f"turns JSON: {w} has no 'text'")
        txt = _text_field(t.get("text"), f"{w}.text", source, "turns")
        start = _num(t.get("start"), f"{w}.start", source, "turns", clock_ok=True)
        end = _num(t.get("end"), f"{w}.end", source, "turns", clock_ok=True)
        role = t.get("role") if t.get("role") in ("rep", "buyer") else None
        segs.append(Turn(" ".join(spk.split()), txt, start, end, role, _affiliation(t.get("affiliation"))))
    return segs, meta


def _fireflies_sentences(data: Any) -> tuple[Any, str, dict] | None:
    """(sentences, json path, container) if data holds Fireflies sentences."""
    if isinstance(data, list):
        return data, "", {}
    if not isinstance(data, dict):
        return None
    if "sentences" in data:
        return data["sentences"], "sentences", data
    tr = data.get("transcript")
    if isinstance(tr, dict) and "sentences" in tr:
        return tr["sentences"], "transcript.sentences", tr
    d = data.get("data")
    if isinstance(d, dict):
        tr = d.get("transcript")
        if isinstance(tr, dict) and "sentences" in tr:
            return tr["sentences"], "data.transcript.sentences", tr
    return None


def _read_fireflies(data: Any, source: str) -> tuple[list[Turn], dict]:
    found = _fireflies_sentences(data)
    if found is None:
        raise _err(source, None, "fireflies JSON: expected a list of sentences, {\"sentences\": [...]} or "
                                 "{\"data\": {\"transcript\": {\"sentences\": [...]}}}")
    sentences, path, container = found
    prefix = path or "sentences"
    if not isinstance(sentences, list):
        raise _err(source, None, f"fireflies JSON: {prefix} must be a list, got {type(sentences).__name__}")
    names_by_id: dict[str, str] = {}
    for sp in container.get("speakers") or [] if isinstance(container.get("speakers"), list) else []:
        if isinstance(sp, dict) and sp.get("id") is not None and isinstance(sp.get("name"), str):
            names_by_id[str(sp["id"])] = sp["name"]
    segs: list[Turn] = []
    for k, s in enumerate(sentences):
        w = f"{prefix}[{k}]"
        if not isinstance(s, dict):
            raise _err(source, None, f"fireflies JSON: {w} must be an object, got {json.dumps(s)[:40]}")
        name = s.get("speaker_name")
        if name is not None and not isinstance(name, str):
            raise _err(source, None, f"fireflies JSON: {w}.speaker_name must be a string, got {json.dumps(name)[:40]}")
        if not (name and name.strip()):
            sid = s.get("speaker_id")
            name = names_by_id.get(str(sid)) if sid is not None else None
            if not name:
                name = f"Speaker {sid}" if sid is not None else None
        if not name:
            raise _err(source, None, f"fireflies JSON: {w} has no speaker_name (nor speaker_id)")
        if "text" not in s and "raw_text" not in s:
            raise _err(source, None, f"fireflies JSON: {w} has no 'text'")
        txt = _text_field(s.get("text", s.get("raw_text")), f"{w}.text", source, "fireflies")
        start = _num(s.get("start_time"), f"{w}.start_time", source, "fireflies")
        end = _num(s.get("end_time"), f"{w}.end_time", source, "fireflies")
        segs.append(Turn(" ".join(name.split()), txt, start, end))
    meta = {k: container[k] for k in ("id", "title", "date", "duration") if k in container}
    return segs, meta


def _gong_parties(data: dict, call: dict, call_id: Any) -> list[tuple[str, dict]]:
    """Every parties list we can find, with its JSON path: on the call, at the top level, in a
    'calls' list (Gong's /v2/calls/extensive answer, matched by call id) or under 'call'."""
    found: list[tuple[str, dict]] = []

    def take(lst: Any, where: str) -> None:
        if isinstance(lst, list):
            for k, p in enumerate(lst):
                if isinstance(p, dict):
                    found.append((f"{where}[{k}]", p))

    take(call.get("parties"), "callTranscripts[0].parties")
    take(data.get("parties"), "parties")
    for key in ("call", "callData"):
        if isinstance(data.get(key), dict):
            take(data[key].get("parties"), f"{key}.parties")
    calls = data.get("calls")
    if isinstance(calls, list):
        for j, c in enumerate(calls):
            if not isinstance(c, dict):
                continue
            cid = c.get("id", (c.get("metaData") or {}).get("id") if isinstance(c.get("metaData"), dict) else None)
            if call_id is None or cid is None or str(cid) == str(call_id) or len(calls) == 1:
                take(c.get("parties"), f"calls[{j}].parties")
    return found


def _read_gong(data: Any, source: str) -> tuple[list[Turn], dict]:
    if not isinstance(data, dict) or not isinstance(data.get("callTranscripts"), list):
        raise _err(source, None, "gong JSON: expected an object with a 'callTranscripts' list")
    calls = data["callTranscripts"]
    if not calls:
        raise _err(source, None, "empty transcript: gong JSON 'callTranscripts' is empty")
    if len(calls) > 1:
        ids = ", ".join(str(c.get("callId")) for c in calls if isinstance(c, dict))
        raise _err(source, None, f"gong JSON holds {len(calls)} calls ({ids}); one transcript is one call: "
                                 "split the file into one file per call")
    call = calls[0]
    if not isinstance(call, dict):
        raise _err(source, None, "gong JSON: callTranscripts[0] must be an object")
    call_id = call.get("callId")
    parties = _gong_parties(data, call, call_id)
    if not parties:
        raise _err(source, None, "gong JSON: no 'parties' list found, so speakerIds cannot be named; add the "
                                 "call's parties (speakerId, name, affiliation) from Gong's /v2/calls/extensive "
                                 "as a top-level 'parties' key")
    by_id: dict[str, tuple[str, str | None]] = {}
    for where, p in parties:
        sid = p.get("speakerId")
        if sid is None:
            continue  # invitees who never spoke have no speakerId
        name = p.get("name") or p.get("emailAddress") or p.get("title")
        if not isinstance(name, str) or not name.strip():
            name = f"Speaker {sid}"
        by_id.setdefault(str(sid), (" ".join(name.split()), _affiliation(p.get("affiliation"))))
    mono = call.get("transcript")
    if not isinstance(mono, list):
        raise _err(source, None, "gong JSON: callTranscripts[0].transcript must be a list of monologues")
    segs: list[Turn] = []
    topics: list[str] = []
    for k, m in enumerate(mono):
        w = f"callTranscripts[0].transcript[{k}]"
        if not isinstance(m, dict):
            raise _err(source, None, f"gong JSON: {w} must be an object with speakerId and sentences")
        sid = m.get("speakerId")
        if sid is None:
            raise _err(source, None, f"gong JSON: {w} has no speakerId")
        if str(sid) not in by_id:
            known = ", ".join(f"{i} ({n})" for i, (n, _) in by_id.items())
            raise _err(source, None, f"gong JSON: {w}.speakerId {sid} not in parties (known: {known})")
        name, aff = by_id[str(sid)]
        topic = m.get("topic")
        if isinstance(topic, str) and topic and topic not in topics:
            topics.append(topic)
        sentences = m.get("sentences")
        if not isinstance(sentences, list):
            raise _err(source, None, f"gong JSON: {w}.sentences must be a list of {{start, end, text}}")
        for j, s in enumerate(sentences):
            ws = f"{w}.sentences[{j}]"
            if not isinstance(s, dict):
                raise _err(source, None, f"gong JSON: {ws} must be an object with start, end, text")
            txt = _text_field(s.get("text"), f"{ws}.text", source, "gong")
            a = _num(s.get("start"), f"{ws}.start", source, "gong")
            b = _num(s.get("end"), f"{ws}.end", source, "gong")
            segs.append(Turn(name, txt, a / 1000 if a is not None else None, b / 1000 if b is not None else None,
                             None, aff))
    meta: dict = {"callId": call_id} if call_id is not None else {}
    if topics:
        meta["topics"] = topics
    meta["parties"] = [{"speakerId": i, "name": n, "affiliation": a} for i, (n, a) in by_id.items()]
    return segs, meta


_TEXT_READERS: dict[str, Callable[[str, str], tuple[list[Turn], dict]]] = {
    "text": _read_text, "otter": _read_otter, "vtt": _read_vtt, "srt": _read_srt,
}
_JSON_READERS: dict[str, Callable[[Any, str], tuple[list[Turn], dict]]] = {
    "gong": _read_gong, "fireflies": _read_fireflies, "turns": _read_turns,
}
