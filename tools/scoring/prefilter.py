"""Prefilters for the offline engine: words a regular expression's matches cannot do without.

Most sentences of a call match none of a rubric line's phrases and patterns, and running every
regex over every sentence was most of the engine's time. `pattern_cues(pattern, flags)` reads a
pattern's syntax tree (`re._parser`) and returns groups of literal strings such that every match
contains at least one string of each group; a sentence lacking any group's strings is skipped
without running the regex. It is only ever a shortcut: when the cues are present the regex still
decides, so verdicts are exactly those of running every regex.

Soundness rules kept here:
- Only elements that every match must contain count: literal runs, groups, alternations (one
  cue per branch, so a branch without a cue voids the alternation's group) and repeats of at
  least one. Optional parts, character classes, lookarounds and anchors add nothing.
- Cues are lower-cased, so callers use them only on lower-case ASCII text (`offline._plain`),
  where a case-insensitive literal matches exactly its lower-case form (and a case-sensitive
  upper-case one matches nothing); a cue with a non-ASCII character is dropped (Unicode case
  folding could match it differently). The engine reads the cues from its compiled regexes
  (phrases and patterns alike), so they follow any change to how a line is compiled.
- A pattern that cannot be parsed, or yields no group, gets None: always run.
"""
from __future__ import annotations

import re
import re._parser as _sre
from re._constants import ATOMIC_GROUP, BRANCH, LITERAL, MAX_REPEAT, MIN_REPEAT, POSSESSIVE_REPEAT, SUBPATTERN


def _rank(group: tuple[str, ...]) -> tuple[int, int]:
    """Longer shortest string and fewer strings first: the groups most likely to be absent."""
    return min(map(len, group)), -len(group)


def _groups(items) -> list[tuple[str, ...]]:
    """Groups of strings: every match of the sequence `items` holds one string of each group."""
    out: list[tuple[str, ...]] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.append(("".join(run),))
            run.clear()

    for op, av in items:
        if op is LITERAL:
            run.append(chr(av))
            continue
        flush()
        if op is SUBPATTERN:
            out.extend(_groups(av[-1]))
        elif op is ATOMIC_GROUP:
            out.extend(_groups(av))
        elif op is BRANCH:
            picks = []
            for alt in av[1]:
                g = _groups(alt)
                if not g:  # this branch needs nothing: the alternation gives no cue
                    picks = []
                    break
                picks.append(max(g, key=_rank))
            if picks:
                out.append(tuple(sorted({s for p in picks for s in p})))
        elif op in (MAX_REPEAT, MIN_REPEAT, POSSESSIVE_REPEAT):
            if av[0] >= 1:
                out.extend(_groups(av[2]))
        # anything else (classes, any, anchors, lookarounds, optional parts): no cue, run broken
    flush()
    return out


def pattern_cues(pattern: str, flags: int = 0) -> tuple[tuple[str, ...], ...] | None:
    """Groups of lower-case ASCII strings (most selective first): every match of `pattern`
    (compiled with `flags`) contains one string of each group. None when nothing is certain."""
    try:
        tree = _sre.parse(pattern, flags)
    except Exception:  # an unparsable pattern fails at compile time elsewhere; no shortcut here
        return None
    groups = []
    for g in _groups(list(tree)):
        if all(s and s.isascii() and not s.isspace() for s in g):
            groups.append(tuple(s.lower() for s in g))
    if not groups:
        return None
    groups.sort(key=_rank, reverse=True)
    return tuple(groups)


def _trie(strings) -> dict:
    trie: dict = {}
    for w in strings:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = True
    return trie


def _trie_regex(strings: set[str]) -> str:
    """A regular expression matching any of `strings`, shaped as a trie ("bu(?:dget|y)"), so the
    regex engine tries one branch per character instead of every string at every position. Where
    a string ends and longer ones go on, it stops at the shorter (enough to know one is there)."""

    def build(node: dict) -> str:
        if "" in node:
            return ""
        alts = [re.escape(ch) + build(child) for ch, child in sorted(node.items())]
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    return build(_trie(strings))


def _longest_trie_regex(strings: set[str]) -> str:
    """Like _trie_regex, but matching the longest of `strings` that starts at a position."""

    def build(node: dict) -> str:
        alts = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch != ""]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(_trie(strings))


# Cue strings are cut to this length in the combined regexes (a text holding a string holds its
# start too), which keeps the trie shallow however long a phrase in a scorecard is.
MAX_CUE = 40


def _first_groups(cue_sets: list) -> set[str] | None:
    strings: set[str] = set()
    for groups in cue_sets:
        if not groups:
            return None
        strings.update(w[:MAX_CUE] for w in groups[0])
    if not strings or any("\n" in w for w in strings):  # callers search texts joined by line breaks
        return None
    return strings


def any_cue_regex(cue_sets: list) -> re.Pattern | None:
    """One regex that finds something in every text where at least one of several patterns can
    match: `cue_sets` holds each pattern's cue groups (as from `pattern_cues`, None when that
    pattern has no cue). From each pattern it takes its most selective group (every match of the
    pattern holds one of that group's strings), so a text where the combined regex finds nothing
    cannot match any of them. None when some pattern has no cue (nothing can be skipped)."""
    strings = _first_groups(cue_sets)
    return None if strings is None else _compile(_trie_regex(strings))


def _compile(pattern: str) -> re.Pattern | None:
    """A prefilter's regex, or None (no shortcut) when the regex engine refuses it (a trie of
    very long nested phrases can be too deep for it)."""
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return None


class CueIndex:
    """Which of several patterns can match a text, from one regex pass: `candidates(text)` gives,
    in order, the indices of the patterns one of whose first-group strings is in the text (a
    superset of the patterns that match it; the others cannot). For lower-case ASCII texts only,
    like every cue here. Build with `CueIndex.build`, which gives None when some pattern has no cue."""

    def __init__(self, scan: re.Pattern, by_found: dict[str, tuple[int, ...]]):
        self.scan = scan
        self.by_found = by_found

    @classmethod
    def build(cls, cue_sets: list) -> "CueIndex | None":
        strings = _first_groups(cue_sets)
        if strings is None:
            return None
        owners: dict[str, set[int]] = {}
        for i, groups in enumerate(cue_sets):
            for w in groups[0]:
                owners.setdefault(w[:MAX_CUE], set()).add(i)
        # the scan reports the longest string at each position; the shorter ones it holds at its
        # start are there too, so each string stands for the patterns of all its cue prefixes
        by_found = {}
        for w in strings:
            pats: set[int] = set()
            for k in range(1, len(w) + 1):
                pats |= owners.get(w[:k], set())
            by_found[w] = tuple(sorted(pats))
        scan = _compile("(?=(" + _longest_trie_regex(strings) + "))")
        return None if scan is None else cls(scan, by_found)

    def candidates(self, text: str) -> list[int]:
        found = {m.group(1) for m in self.scan.finditer(text)}
        if not found:
            return []
        if len(found) == 1:
            return list(self.by_found[found.pop()])
        return sorted({i for w in found for i in self.by_found[w]})
