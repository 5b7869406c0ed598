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
