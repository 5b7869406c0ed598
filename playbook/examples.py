"""Learned examples: write a labelled sentence from a disputed verdict beside its scorecard.

`add_example(root, scorecard_id, line=..., verdict=..., text=..., ...)` appends one entry to
`scorecards/examples/<scorecard-id>.yaml` (creating the file with its explaining header the first
time). The file stays the people's file: new entries are appended as text, so the header, other
comments and the order of what is there are kept byte for byte; only a file whose layout does not
allow a plain append (the `examples:` list is not the last thing in it, or is written in flow
style) is rewritten, keeping its leading comment block. An entry with the same line, verdict and
words (case and spacing aside) is not added twice. Writes are atomic (temporary file + rename),
serialised between threads and processes, and never leave the playbook folder. The loader
(`playbook.loader`) merges the file into the scorecard when the playbook loads.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from .files import atomic_write, resolve_inside
from .loader import PlaybookError, _Loader, examples_path, parse_artifact_text

HEADER = """\
# Labelled sentences from disputed verdicts (coachloop override). The engine learns from them when
# the playbook loads: `pass` examples count as the line, `fail` ones are near misses that must not.
# Each entry: line (rubric line id), verdict, text (what was said), call (the stored call id it came
# from), by (who disputed it), at (when), reason (why the engine was wrong).
# Review them in git; edit or delete freely (`coachloop validate` checks the file, `coachloop test`
# shows the rubric tests' agreement before and after them).
"""

_LOCK = threading.Lock()
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$")


@dataclass
class Written:
    path: str  # relative to the playbook root
    added: bool  # False: the same example was there already
    created: bool  # the file did not exist before


_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9 _.,'()/@-]*")


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is a subset of it)."""
    return json.dumps(text, ensure_ascii=False)


def _scalar(text: str) -> str:
    """Plain when that reads back as the same string (names, most reasons), else double-quoted."""
    if _PLAIN.fullmatch(text) and text == text.strip():
        try:
            if yaml.load(f"k: {text}", Loader=_Loader) == {"k": text}:
                return text
        except yaml.YAMLError:
            pass
    return _q(text)


def render_entry(entry: dict[str, Any], indent: int = 2) -> str:
    """One list item, in the field order of the file's header."""
    pad = " " * indent
    out = [f"{pad}- line: {entry['line']}", f"{pad}  verdict: {entry['verdict']}", f"{pad}  text: {_q(entry['text'])}"]
    call = entry.get("call")
    if call is not None and call != "":
        out.append(f"{pad}  call: {call if isinstance(call, int) else _scalar(str(call))}")
    if entry.get("by"):
        out.append(f"{pad}  by: {_scalar(' '.join(str(entry['by']).split()))}")
    at = entry.get("at")
    if at:
        at = str(at)
        out.append(f"{pad}  at: {at if _ISO.match(at) else _q(at)}")
    if entry.get("reason"):
        out.append(f"{pad}  reason: {_scalar(' '.join(str(entry['reason']).split()))}")
    return "\n".join(out) + "\n"


def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold()


@contextlib.contextmanager
def _file_lock(folder: Path) -> Iterator[None]:
    """One writer at a time, across threads and processes (an advisory lock on the folder itself,
    so no lock file lands in the playbook)."""
    with _LOCK:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl

            fd = os.open(folder, os.O_RDONLY)
        except (ImportError, OSError):  # not POSIX: the thread lock is what we have
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


def _entries(text: str) -> list[dict]:
    data = yaml.load(text, Loader=_Loader) or {}
    return list(data.get("examples") or []) if isinstance(data, dict) else []


def _appendable(text: str) -> int | None:
    """The indentation to append a list item at, or None when the file's layout needs a rewrite
    (`examples` is not the last key, or its list is in flow style)."""
    node = yaml.compose(text, Loader=_Loader)
    if not isinstance(node, yaml.MappingNode) or not node.value:
        return None
    key, value = node.value[-1]
    if getattr(key, "value", None) != "examples":
        return None
    if isinstance(value, yaml.ScalarNode) and value.tag.endswith(":null") and value.value in ("", "~", "null"):
        return 2 if not value.value else None  # `examples:` with nothing after it
    if isinstance(value, yaml.SequenceNode) and not value.flow_style and value.value:
        return value.start_mark.column
    return None


def _rewrite(text: str, scorecard_id: str, entries: list[dict]) -> str:
    """The file rewritten: its leading comment block kept, then the scorecard and every entry."""
    head = []
    for ln in text.splitlines(keepends=True):
        if ln.startswith("#") or not ln.strip():
            head.append(ln if ln.endswith("\n") else ln + "\n")
        else:
            break
    body = "".join(head) or HEADER
    body += f"scorecard: {scorecard_id}\nexamples:\n" + "".join(render_entry(e) for e in entries)
    return body


def add_example(root: str | Path, scorecard_id: str, *, line: str, verdict: str, text: str, call: Any = None,
                by: str | None = None, at: str | None = None, reason: str = "") -> Written:
    """Append one learned example for `scorecard_id` (see the module docstring). Raises
    PlaybookError naming the file when it exists but cannot be read as an examples file (fix it
    first: nothing is written over it)."""
    if verdict not in ("pass", "fail"):
        raise PlaybookError(f"a learned example is pass or fail, not '{verdict}'")
    text = " ".join(str(text or "").split())
    if not text:
        raise PlaybookError("a learned example needs the words that were said")
    rel = examples_path(scorecard_id)
    target = resolve_inside(root, rel)  # refuses a folder or link that leads out of the playbook
    entry = {"line": line, "verdict": verdict, "text": text, "call": call, "by": by, "at": at, "reason": reason}
    with _file_lock(target.parent):
        target = resolve_inside(root, rel)  # again, now that the folder exists
        if not target.exists():
            atomic_write(target, HEADER + f"scorecard: {scorecard_id}\nexamples:\n" + render_entry(entry))
            return Written(rel, True, True)
        if not target.is_file():
            raise PlaybookError(f"{rel} is not a file; move it away so the learned examples can be written there")
        try:
            old = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PlaybookError(f"{rel}: cannot read it ({exc}); fix or remove the file") from None
        model, probs = parse_artifact_text("examples", rel, old)
        if model is None:
            raise PlaybookError(f"{rel} is not a valid examples file ({probs[0]}); fix it (coachloop validate lists "
                                "every problem) and the next override adds its example")
        if model.scorecard != scorecard_id:
            raise PlaybookError(f"{rel}: scorecard: '{model.scorecard}' should be '{scorecard_id}' (the file is named after it)")
        key = (line, verdict, _norm(text))
        if any((e.line, e.verdict, _norm(e.text)) == key for e in model.examples or []):
            return Written(rel, False, False)
        before = _entries(old)
        indent = _appendable(old)
        new = None
        if indent is not None:
            candidate = old + ("" if old.endswith("\n") or not old else "\n") + render_entry(entry, indent)
            try:
                if _entries(candidate) == before + [_plain(entry)]:
                    new = candidate
            except yaml.YAMLError:
                new = None
        if new is None:  # an unusual layout: rewrite the list, keep the leading comments
            new = _rewrite(old, scorecard_id, [*(e.model_dump(exclude_none=True) for e in model.examples or []), entry])
        atomic_write(target, new)
        return Written(rel, True, False)


def _plain(entry: dict) -> dict:
    """The entry as YAML reads it back (to check that an append parses to what was meant)."""
    return yaml.load(render_entry(entry, 0), Loader=_Loader)[0]
