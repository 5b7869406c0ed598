"""Load and validate a playbook folder.

`load_playbook(root, previous)` reads every file, validates each against its model, checks the
cross-references, and returns a `Playbook` snapshot with every problem found (file, line, field,
message). A file that is broken never takes the rest down: when `previous` holds a good version of
that artifact, the previous version keeps serving and the problem is reported.

Learned examples (`scorecards/examples/<scorecard-id>.yaml`, written by `coachloop override`) are
merged into their scorecard's lines as it loads (pass -> `examples`, fail -> `counter_examples`), so
every consumer sees them. The scorecard's version then covers both files: it is the hash of the
scorecard's text followed by a marked, commented copy of the examples file (`recorded_text`), which
is also the text kept for that version, so `show-version` gives the exact inputs. A broken examples
file never takes its scorecard down: the scorecard serves without it and the problem is reported.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .models import (
    KIND_MODELS,
    KINDS,
    Certification,
    LearnedExamples,
    LearningPath,
    Policy,
    RubricTest,
    Scenario,
    Scorecard,
)

MAX_FILE_BYTES = 1_000_000
POLICY_FILE = "playbook.yaml"
EXAMPLES_DIR = "scorecards/examples"  # learned examples, one file per scorecard: <scorecard-id>.yaml


class PlaybookError(Exception):
    """A playbook operation that cannot be done; the message names the file and field."""


@dataclass(frozen=True)
class Problem:
    file: str
    message: str
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        return f"{where}: {self.field + ': ' if self.field else ''}{self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class Artifact:
    kind: str
    id: str
    path: str  # relative to the playbook root, with forward slashes
    version: str  # content hash of `text`
    text: str  # the text this version is recorded under: the file's text (+ learned examples, see below)
    model: Any
    # A scorecard with learned examples merged in: `base` is the scorecard as its own file holds it
    # (text, version and model before the merge) and `examples_path` the examples file merged in.
    base: "Artifact | None" = None
    examples_path: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.id}@{self.version}"

    @property
    def file_text(self) -> str:
        """The text of the artifact's own file (what an editor opens)."""
        return self.base.text if self.base is not None else self.text

    @property
    def file_version(self) -> str:
        """The content hash of the artifact's own file (what a writer compares before saving)."""
        return self.base.version if self.base is not None else self.version

    @property
    def file_model(self) -> Any:
        return self.base.model if self.base is not None else self.model


@dataclass
class Playbook:
    root: Path
    policy: Policy
    policy_version: str
    artifacts: dict[str, dict[str, Artifact]] = field(default_factory=dict)
    tests: dict[str, list[tuple[str, RubricTest]]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    stale: set[str] = field(default_factory=set)  # "kind/id" served from a previous good version

    @property
    def ok(self) -> bool:
        return not self.problems

    def get(self, kind: str, art_id: str) -> Artifact | None:
        return self.artifacts.get(kind, {}).get(art_id)

    def require(self, kind: str, art_id: str) -> Artifact:
        art = self.get(kind, art_id)
        if art is None:
            known = ", ".join(sorted(self.artifacts.get(kind, {}))) or "none"
            raise PlaybookError(f"unknown {kind[:-1]} '{art_id}' in {self.root} (known: {known})")
        return art

    def scorecard(self, sid: str) -> Scorecard:
        return self.require("scorecards", sid).model

    def scenario(self, sid: str) -> Scenario:
        return self.require("scenarios", sid).model

    def path(self, pid: str) -> LearningPath:
        return self.require("paths", pid).model

    def certification(self, cid: str) -> Certification:
        return self.require("certifications", cid).model

    def all(self, kind: str) -> list[Artifact]:
        return [self.artifacts[kind][k] for k in sorted(self.artifacts.get(kind, {}))]

    def version_of(self, kind: str, art_id: str) -> str | None:
        art = self.get(kind, art_id)
        return art.version if art else None

    def scorecard_for(self, call_type: str) -> Scorecard:
        """The scorecard for a call type: policy mapping first, then a scorecard listing it, then same id."""
        sid = self.policy.default_scorecards.get(call_type)
        if sid:
            return self.scorecard(sid)
        for art in self.all("scorecards"):
            if call_type in art.model.call_types:
                return art.model
        if self.get("scorecards", call_type):
            return self.scorecard(call_type)
        raise PlaybookError(
            f"no scorecard for call type '{call_type}': add it to a scorecard's call_types or to "
            f"default_scorecards in {POLICY_FILE}"
        )


def content_version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


# --------------------------------------------------------------------------- parsing helpers

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~20x faster


class _Loader(_BaseLoader):
    """Safe YAML that refuses a field given twice in one mapping: YAML would keep the later one
    and silently drop the earlier (a second `examples:` list hiding the first)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is None:
                    continue
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"field '{key}' is given twice (first on line {seen[key] + 1}); "
                        "YAML would keep only the second: merge them", key_node.start_mark)
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)

_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)(.*)\Z", re.S)


def split_front_matter(text: str) -> tuple[str, str, int]:
    """Return (yaml_text, body, line offset of the yaml) for a Markdown file with front matter."""
    m = _FRONT.match(text)
    if not m:
        raise ValueError("expected YAML front matter: a first line '---', the YAML, then a line '---'")
    return m.group(1), m.group(2), 1


def _yaml_line(node: yaml.Node | None, loc: tuple) -> int | None:
    """Walk a composed YAML node by a pydantic error location; return the 1-based line."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if node is None:
            break
        nxt = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if getattr(k, "value", None) == key:
                    nxt = v
                    line = k.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            nxt = node.value[key]
            line = nxt.start_mark.line + 1
        node = nxt
    return line


def _field(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
    return out or "(file)"


def _message(err: dict) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see the schema in README)"
    if kind == "missing":
        return "required field is missing"
    if kind == "string_pattern_mismatch":
        return "must be an id: lowercase letters, digits, '_' and '-'"
    got = err.get("input")
    shown = repr(got) if isinstance(got, (str, int, float, bool)) or got is None else type(got).__name__
    return f"{err['msg']} (got {shown[:60]})"


def parse_artifact_text(kind: str, rel: str, text: str) -> tuple[BaseModel | None, list[Problem]]:
    """Parse one artifact's text into its model; on failure return every problem found. `kind` is
    one of KINDS, "policy", or "examples" (a learned-examples file)."""
    model_cls = {"policy": Policy, "examples": LearnedExamples}.get(kind) or KIND_MODELS[kind]
    offset = 0
    body = None
    if rel.endswith(".md"):
        try:
            ytext, body, offset = split_front_matter(text)
        except ValueError as exc:
            return None, [Problem(rel, str(exc), line=1)]
    else:
        ytext = text
    try:
        data = yaml.load(ytext, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 + offset if mark else None
        msg = getattr(exc, "problem", None) or str(exc)
        return None, [Problem(rel, f"invalid YAML: {msg}", line=line)]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [Problem(rel, f"expected a mapping of fields, found {type(data).__name__}", line=1 + offset)]
    if body is not None:
        if "body" in data:
            return None, [Problem(rel, "'body' is the Markdown text below the front matter; remove it from the YAML", field="body")]
        data["body"] = body.strip("\n")
    try:
        return model_cls.model_validate(data), []
    except ValidationError as exc:
        probs = []
        node = yaml.compose(ytext, Loader=_Loader)  # only on failure: maps fields to lines
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _yaml_line(node, loc)
            probs.append(Problem(rel, _message(err), line=line + offset if line else None, field=_field(loc)))
        return None, probs


def _kind_files(root: Path, kind: str) -> list[Path]:
    folder = root / kind
    if not folder.is_dir():
        return []
    exts = {".md"} if kind == "scenarios" else {".yaml", ".yml"}
    if kind == "scenarios":
        exts |= {".yaml", ".yml"}
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in exts and not p.name.startswith("."))


def _read(path: Path, rel: str, root: Path) -> tuple[bytes | None, Problem | None]:
    """The bytes of a playbook file, or the problem that stops it loading (too big, unreadable, or
    a link that leads out of the playbook folder: what is served must be what the folder holds)."""
    try:
        real = path.resolve()
        if root not in real.parents:
            return None, Problem(rel, f"links to {real}, outside the playbook folder {root}: "
                                      "copy the file into the playbook instead")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, Problem(rel, f"file is {size} bytes; the limit is {MAX_FILE_BYTES}")
        return path.read_bytes(), None
    except OSError as exc:
        return None, Problem(rel, f"cannot read: {exc.strerror or exc}")


def _read_text(path: Path, rel: str, root: Path, problems: list[Problem]) -> tuple[bytes, str] | None:
    """A playbook file's bytes and UTF-8 text; None (the problem added) when it cannot be served."""
    raw, prob = _read(path, rel, root)
    if prob:
        problems.append(prob)
        return None
    try:
        return raw, raw.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(Problem(rel, "not UTF-8 text"))
        return None


def load_playbook(root: str | Path, previous: Playbook | None = None) -> Playbook:
    root = Path(root).resolve()
    problems: list[Problem] = []
    if not root.is_dir():
        raise PlaybookError(f"playbook folder not found: {root}")

    # policy
    policy, policy_version = Policy(), "default"
    ppath = root / POLICY_FILE
    if ppath.exists():
        raw, prob = _read(ppath, POLICY_FILE, root)
        model, probs = (None, [prob]) if prob else parse_artifact_text("policy", POLICY_FILE, raw.decode("utf-8", "replace"))
        if model is not None:
            policy, policy_version = model, content_version(raw)
        else:
            problems.extend(probs)
            if previous is not None:
                policy, policy_version = previous.policy, previous.policy_version
    else:
        problems.append(Problem(POLICY_FILE, "missing: the playbook's policy file (coachloop init writes one)"))

    pb = Playbook(root=root, policy=policy, policy_version=policy_version)
    for kind in KINDS:
        pb.artifacts[kind] = {}
        for path in _kind_files(root, kind):
            rel = path.relative_to(root).as_posix()
            got = _read_text(path, rel, root, problems)
            if got is None:
                continue
            raw, text = got
            version = content_version(raw)
            prev = _previous_by_path(previous, kind, rel)
            if prev is not None and prev.file_version == version:
                model, probs = prev.file_model, []  # unchanged file: reuse the parsed model
            else:
                model, probs = parse_artifact_text(kind, rel, text)
            if model is None:
                problems.extend(probs)
                _keep_previous(pb, previous, kind, rel)
                continue
            aid = model.id
            if aid in pb.artifacts[kind]:
                other = pb.artifacts[kind][aid].path
                problems.append(Problem(rel, f"duplicate id '{aid}' (also in {other})", field="id"))
                continue
            pb.artifacts[kind][aid] = Artifact(kind, aid, rel, version, text, model)

    _load_examples(pb, problems)
    _load_tests(pb, problems)
    problems.extend(_check_references(pb))
    pb.problems = problems
    return pb


def _previous_by_path(previous: Playbook | None, kind: str, rel: str) -> Artifact | None:
    if previous is None:
        return None
    for art in previous.artifacts.get(kind, {}).values():
        if art.path == rel and f"{kind}/{art.id}" not in previous.stale:
            return art
    return None


def _keep_previous(pb: Playbook, previous: Playbook | None, kind: str, rel: str) -> None:
    if previous is None:
        return
    for art in previous.artifacts.get(kind, {}).values():
        if art.path == rel and art.id not in pb.artifacts[kind]:
            pb.artifacts[kind][art.id] = art
            pb.stale.add(f"{kind}/{art.id}")


# --------------------------------------------------------------------------- learned examples

_EXAMPLES_MARK = re.compile(
    r"^# -{4} learned examples: (?P<path>\S+), merged into the lines above "
    r"\(its text follows, each line after '# '\) -{4}\n", re.M)


def examples_path(scorecard_id: str) -> str:
    """Where a scorecard's learned examples live, relative to the playbook root."""
    return f"{EXAMPLES_DIR}/{scorecard_id}.yaml"


def recorded_text(card_text: str, ex_rel: str, ex_text: str) -> str:
    """The text a scorecard version with learned examples is recorded under: the scorecard's text,
    then a marker line, then the examples file's text with every line behind '# '. It is still a
    valid scorecard file (the copy is comments), and `split_recorded` gives both texts back."""
    head = card_text if card_text.endswith("\n") or not card_text else card_text + "\n"
    copy = "".join(f"# {ln}\n" if ln else "#\n" for ln in ex_text.splitlines())
    return (f"{head}# ---- learned examples: {ex_rel}, merged into the lines above "
            f"(its text follows, each line after '# ') ----\n{copy}")


def split_recorded(text: str) -> tuple[str, str | None, str | None]:
    """(scorecard text, examples path, examples text) of a recorded scorecard version; the last two
    are None when the version has no learned examples."""
    marks = list(_EXAMPLES_MARK.finditer(text))
    if not marks:
        return text, None, None
    m = marks[-1]
    copy = [ln[2:] if ln.startswith("# ") else ln[1:] for ln in text[m.end():].splitlines()]
    return text[: m.start()], m.group("path"), "".join(ln + "\n" for ln in copy)


def _norm_text(text: str) -> str:
    return " ".join(text.split()).casefold()


def merge_examples(card: Scorecard, rel: str, text: str, scorecard_id: str | None = None) -> tuple[Scorecard | None, list[Problem]]:
    """The scorecard with the learned examples in `text` (the file `rel`) merged into its lines, and
    the problems found. None when the file cannot be used at all (the scorecard then serves
    without it); an example naming a line the scorecard lacks, or contradicting another one (the
    same words both pass and fail), is left out and reported, the rest are used."""
    model, probs = parse_artifact_text("examples", rel, text)
    if model is None:
        return None, probs
    sid = scorecard_id or card.id
    if model.scorecard != sid:
        return None, [Problem(rel, f"names scorecard '{model.scorecard}', but this file holds the examples of "
                                   f"scorecard '{sid}' (the file is named after the scorecard)", field="scorecard")]
    entries = list(model.examples or [])
    bad: dict[int, Problem] = {}
    node = None

    def where(i: int, name: str) -> int | None:
        nonlocal node
        if node is None:
            node = yaml.compose(text, Loader=_Loader)
        return _yaml_line(node, ("examples", i, name))

    seen: dict[tuple[str, str], tuple[int, str]] = {}
    for i, ex in enumerate(entries):
        if card.line(ex.line) is None:
            bad[i] = Problem(rel, f"rubric line '{ex.line}' is not in scorecard '{sid}'", line=where(i, "line"),
                             field=f"examples[{i}].line")
            continue
        key = (ex.line, _norm_text(ex.text))
        if key in seen and seen[key][1] != ex.verdict:
            j = seen[key][0]
            for k in (j, i):
                bad[k] = Problem(rel, f"the same words are labelled both pass and fail for line '{ex.line}' "
                                      f"(examples[{j}] and examples[{i}]): keep the right one, delete the other",
                                 line=where(k, "verdict"), field=f"examples[{k}].verdict")
        seen.setdefault(key, (i, ex.verdict))
    add: dict[str, tuple[list[str], list[str]]] = {}
    for i, ex in enumerate(entries):
        if i in bad:
            continue
        passes, fails = add.setdefault(ex.line, ([], []))
        (passes if ex.verdict == "pass" else fails).append(" ".join(ex.text.split()))
    lines = []
    for ln in card.lines:
        passes, fails = add.get(ln.id, ([], []))
        have_p = {_norm_text(t) for t in ln.examples}
        have_f = {_norm_text(t) for t in ln.counter_examples}
        new_p = [t for t in _unique(passes) if _norm_text(t) not in have_p]
        new_f = [t for t in _unique(fails) if _norm_text(t) not in have_f]
        if new_p or new_f:
            ln = ln.model_copy(update={"examples": [*ln.examples, *new_p], "counter_examples": [*ln.counter_examples, *new_f]})
        lines.append(ln)
    return card.model_copy(update={"lines": lines}), [bad[i] for i in sorted(bad)]


def _unique(texts: list[str]) -> list[str]:
    out, seen = [], set()
    for t in texts:
        if _norm_text(t) not in seen:
            seen.add(_norm_text(t))
            out.append(t)
    return out


def with_examples(art: Artifact, ex_rel: str, ex_text: str, merged: Scorecard) -> Artifact:
    """The scorecard artifact serving `merged` (its lines plus the learned examples)."""
    text = recorded_text(art.text, ex_rel, ex_text)
    return replace(art, version=content_version(text.encode("utf-8")), text=text, model=merged, base=art,
                   examples_path=ex_rel)


def _load_examples(pb: Playbook, problems: list[Problem]) -> None:
    folder = pb.root / EXAMPLES_DIR
    if not folder.is_dir():
        return
    cards = pb.artifacts["scorecards"]
    seen: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix not in {".yaml", ".yml"} or path.name.startswith("."):
            continue
        rel = path.relative_to(pb.root).as_posix()
        sid = path.stem
        if sid in seen:
            problems.append(Problem(rel, f"scorecard '{sid}' already has its examples in {seen[sid]}: keep one file"))
            continue
        seen[sid] = rel
        art = cards.get(sid)
        if art is None:
            known = ", ".join(sorted(cards)) or "none"
            problems.append(Problem(rel, f"no scorecard '{sid}': an examples file is named after its scorecard's id "
                                         f"(scorecards: {known})"))
            continue
        got = _read_text(path, rel, pb.root, problems)
        if got is None:
            continue
        text = got[1]
        if f"scorecards/{sid}" in pb.stale:
            continue  # the scorecard's file is broken: its last good version serves as it was
        merged, probs = merge_examples(art.model, rel, text, sid)
        problems.extend(probs)
        if merged is not None:
            cards[sid] = with_examples(art, rel, text, merged)


def artifact_from_record(kind: str, aid: str, path: str, version: str, text: str) -> Artifact | None:
    """An artifact rebuilt from a recorded version (`artifact_versions`): a scorecard recorded with
    learned examples gets them merged again. None when the text does not parse."""
    if kind != "scorecards":
        model, _probs = parse_artifact_text(kind, path, text)
        return None if model is None else Artifact(kind, aid, path, version, text, model)
    card_text, ex_rel, ex_text = split_recorded(text)
    card, _probs = parse_artifact_text(kind, path, card_text)
    if card is None:
        return None
    if ex_rel is None:
        return Artifact(kind, aid, path, version, text, card)
    merged, _probs = merge_examples(card, ex_rel, ex_text or "")
    base = Artifact(kind, aid, path, content_version(card_text.encode("utf-8")), card_text, card)
    return Artifact(kind, aid, path, version, text, merged or card, base=base, examples_path=ex_rel)


def parse_recorded_scorecard(text: str, path: str = "scorecards/(stored).yaml") -> Scorecard | None:
    """The scorecard a recorded version served (learned examples merged), or None."""
    art = artifact_from_record("scorecards", "(stored)", path, "", text)
    return None if art is None else art.model


def _load_tests(pb: Playbook, problems: list[Problem]) -> None:
    folder = pb.root / "scorecards" / "tests"
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.suffix not in {".json", ".yaml", ".yml"}:
            continue
        rel = path.relative_to(pb.root).as_posix()
        raw, prob = _read(path, rel, pb.root)
        if prob:
            problems.append(prob)
            continue
        try:
            data = json.loads(raw) if path.suffix == ".json" else yaml.load(raw, Loader=_Loader)
            test = RubricTest.model_validate({"id": path.stem, **data} if isinstance(data, dict) else data)
        except (ValueError, yaml.YAMLError) as exc:
            problems.append(Problem(rel, f"invalid rubric test: {str(exc).splitlines()[0]}"))
            continue
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(Problem(rel, err["msg"], field=_field(tuple(err["loc"]))))
            continue
        pb.tests.setdefault(test.scorecard, []).append((rel, test))


def _check_references(pb: Playbook) -> list[Problem]:
    probs: list[Problem] = []
    cards = pb.artifacts["scorecards"]
    scen = pb.artifacts["scenarios"]

    def line_ok(rel: str, card_id: str, line_id: str, fieldname: str) -> None:
        card = cards.get(card_id)
        if card is None:
            probs.append(Problem(rel, f"scorecard '{card_id}' does not exist", field="scorecard"))
        elif card.model.line(line_id) is None:
            probs.append(Problem(rel, f"rubric line '{line_id}' is not in scorecard '{card_id}'", field=fieldname))

    for art in cards.values():
        seen: set[str] = set()
        for i, ln in enumerate(art.model.lines):
            if ln.id in seen:
                probs.append(Problem(art.path, f"duplicate rubric line id '{ln.id}'", field=f"lines[{i}].id"))
            seen.add(ln.id)
            for j, pat in enumerate(ln.patterns + ln.not_patterns + (ln.trigger.patterns if ln.trigger else [])):
                try:
                    re.compile(pat)
                except re.error as exc:
                    probs.append(Problem(art.path, f"invalid regular expression {pat!r}: {exc}", field=f"lines[{i}].patterns"))
    for art in scen.values():
        if art.model.scorecard not in cards:
            probs.append(Problem(art.path, f"scorecard '{art.model.scorecard}' does not exist", field="scorecard"))
            continue
        for i, t in enumerate(art.model.targets):
            line_ok(art.path, art.model.scorecard, t, f"targets[{i}]")
        for i, fact in enumerate(art.model.facts):
            if fact.line:
                line_ok(art.path, art.model.scorecard, fact.line, f"facts[{i}].line")
    for art in pb.artifacts["paths"].values():
        for i, ln in enumerate(art.model.lines):
            line_ok(art.path, art.model.scorecard, ln, f"lines[{i}]")
        for i, step in enumerate(art.model.steps):
            if step.scenario not in scen:
                probs.append(Problem(art.path, f"scenario '{step.scenario}' does not exist", field=f"steps[{i}].scenario"))
    for art in pb.artifacts["certifications"].values():
        for i, ln in enumerate(art.model.lines):
            line_ok(art.path, art.model.scorecard, ln, f"lines[{i}]")
        for i, s in enumerate(art.model.scenarios):
            if s not in scen:
                probs.append(Problem(art.path, f"scenario '{s}' does not exist", field=f"scenarios[{i}]"))
        for i, act in enumerate(art.model.gates):
            if act not in pb.policy.gated_activities:
                probs.append(
                    Problem(art.path, f"activity '{act}' is not in gated_activities of {POLICY_FILE}", field=f"gates[{i}]")
                )
    for card_id, tests in pb.tests.items():
        for rel, test in tests:
            card = cards.get(card_id)
            if card is None:
                probs.append(Problem(rel, f"scorecard '{card_id}' does not exist", field="scorecard"))
                continue
            for lid in test.labels:
                if card.model.line(lid) is None:
                    probs.append(Problem(rel, f"rubric line '{lid}' is not in scorecard '{card_id}'", field=f"labels.{lid}"))
    return probs
