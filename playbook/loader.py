"""Load and validate a playbook folder.

`load_playbook(root, previous)` reads every file, validates each against its model, checks the
cross-references, and returns a `Playbook` snapshot with every problem found (file, line, field,
message). A file that is broken never takes the rest down: when `previous` holds a good version of
that artifact, the previous version keeps serving and the problem is reported.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .models import (
    KIND_MODELS,
    KINDS,
    Certification,
    LearningPath,
    Policy,
    RubricTest,
    Scenario,
    Scorecard,
)

MAX_FILE_BYTES = 1_000_000
POLICY_FILE = "playbook.yaml"


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
    version: str  # content hash of the file's bytes
    text: str
    model: Any

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.id}@{self.version}"


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

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~20x faster

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
    """Parse one artifact's text into its model; on failure return every problem found."""
    model_cls = Policy if kind == "policy" else KIND_MODELS[kind]
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
            raw, prob = _read(path, rel, root)
            if prob:
                problems.append(prob)
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                problems.append(Problem(rel, "not UTF-8 text"))
                continue
            version = content_version(raw)
            prev = _previous_by_path(previous, kind, rel)
            if prev is not None and prev.version == version:
                model, probs = prev.model, []  # unchanged file: reuse the parsed model
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
