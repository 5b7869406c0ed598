"""Which speaker of a transcript is the rep."""
from __future__ import annotations

import re

from .model import Transcript, TranscriptError


def _norm(s: str) -> str:
    return " ".join(s.split()).casefold()


def same_person(a: str, b: str) -> bool:
    """First names equal and the rest compatible: "Priya" ~ "Priya Raman" ~ "Priya R.", but
    "Priya Shah" is not "Priya Raman"."""
    ta = [w.strip(".,") for w in _norm(a).split(" ") if w.strip(".,")]
    tb = [w.strip(".,") for w in _norm(b).split(" ") if w.strip(".,")]
    if not ta or not tb or ta[0] != tb[0]:
        return False
    if len(ta) == 1 or len(tb) == 1:
        return True
    return ta[1].startswith(tb[1]) or tb[1].startswith(ta[1])


def _tokens(s: str) -> frozenset[str]:
    """Name words, order-free, without parentheticals: "Raman, Priya (Ledgerline)" == "Priya Raman"."""
    s = re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", s)
    return frozenset(w for w in re.findall(r"[^\W_]+(?:['’\-][^\W_]+)*", s.casefold()))


def _listing(names: list[str]) -> str:
    return ", ".join(names) if names else "(none)"


def _match_name(wanted: str, speakers: list[str]) -> tuple[list[str], str]:
    """Speakers matching ``wanted``: exactly, then case-insensitively, then by first name or unique
    prefix. Returns (matches at the first tier that matched, tier name)."""
    if wanted in speakers:
        return [wanted], "exact"
    w = _norm(wanted)
    if not w:
        return [], "none"
    hits = [s for s in speakers if _norm(s) == w]
    if hits:
        return hits, "case"
    # "Priya Raman" -> Teams' "Raman, Priya" or Zoom's "Priya Raman (Ledgerline)"
    wt = _tokens(wanted)
    hits = [s for s in speakers if wt and _tokens(s) == wt]
    if hits:
        return hits, "name words"
    # "Priya" -> "Priya Raman"; "Priya Raman" -> Zoom display name "Priya"; "pri" -> "Priya Raman"
    hits = [s for s in speakers if same_person(s, wanted)]
    if hits:
        return hits, "first name"
    hits = [s for s in speakers if _norm(s).startswith(w)]
    return hits, "prefix"


def identify_rep(transcript: Transcript, rep: str | None, roster: list[str]) -> str:
    """The speaker name (as it appears in ``transcript.speakers``) that is the rep.

    - ``rep`` given: the speaker matching it exactly, else case-insensitively, else by first name
      or a unique prefix ("Priya" finds "Priya Raman"); no match or several raise
      :class:`TranscriptError` listing the speakers.
    - no ``rep``: a ``rep`` the file itself declares (the labelled JSON files carry one), else the
      one speaker whose name is on ``roster`` (case-insensitive; "Raman, Priya (Acme)" counts as
      "Priya Raman"), else the one speaker whose first name matches a roster name's ("Priya" or
      "Priya R." for "Priya Raman"; "Priya Shah" does not), else (Gong) the one speaker Gong marks
      Internal; otherwise a clear error saying to pass ``--rep NAME`` or add the rep to the roster.

    Callers then run ``transcript.assign_rep(name)`` to set each turn's role.
    """
    speakers = transcript.speakers
    src = transcript.source
    if not speakers:
        raise TranscriptError(src, "cannot tell which speaker is the rep: the transcript has no speakers")
    if rep is not None and str(rep).strip():
        hits, tier = _match_name(str(rep), speakers)
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise TranscriptError(src, f"rep {rep!r} is not a speaker in this call: speakers are "
                                       f"{_listing(speakers)}; pass --rep with one of these names")
        raise TranscriptError(src, f"rep {rep!r} matches several speakers by {tier} ({_listing(hits)}); "
                                   "pass the full name with --rep")

    declared = transcript.meta.get("rep") if isinstance(transcript.meta, dict) else None
    if isinstance(declared, str) and declared.strip():
        hits, _ = _match_name(declared, speakers)
        if len(hits) == 1:
            return hits[0]

    names = [r for r in (roster or []) if isinstance(r, str) and r.strip()]
    on_roster = {_norm(r) for r in names}
    hits = [s for s in speakers if _norm(s) in on_roster]
    if not hits:
        roster_tokens = {_tokens(r) for r in names} - {frozenset()}
        hits = [s for s in speakers if _tokens(s) in roster_tokens]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise TranscriptError(src, f"cannot tell which speaker is the rep: several speakers are on the roster "
                                   f"({_listing(hits)}); pass --rep NAME")
    # first names: speaker "Priya" with roster "Priya Raman", or speaker "Priya R." with roster "Priya"
    hits = [s for s in speakers if any(same_person(s, r) for r in names)]
    if len(hits) == 1:
        return hits[0]
    ambiguous_first = hits

    internal = [s for s in speakers if any(t.speaker == s and t.affiliation == "internal" for t in transcript.turns)]
    if len(internal) == 1:
        return internal[0]

    why = ""
    if speakers == ["Unknown"]:
        raise TranscriptError(src, "cannot tell which speaker is the rep: the transcript names no speakers (every "
                                   "cue is unlabelled); export it with speaker names, e.g. Zoom's 'Name: words' captions")
    if ambiguous_first:
        why = f" (by first name, {_listing(ambiguous_first)} all match the roster)"
    elif len(internal) > 1:
        why = f" (several internal speakers: {_listing(internal)})"
    raise TranscriptError(src, f"cannot tell which speaker is the rep: speakers are {_listing(speakers)}{why}; "
                               "pass --rep NAME or add the rep to the roster")
