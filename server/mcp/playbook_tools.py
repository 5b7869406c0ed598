"""Playbook tools: validate, list, read and write the plain-text playbook.

Claude Code and Cursor do not act on resource subscriptions, so everything the `playbook://`
resources offer is reachable through these tools too. `playbook_write` validates a file (schema,
YAML, and the cross-references of the whole playbook with the new file in place) before it saves
it; an invalid file is refused with every problem, and nothing on disk changes.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from playbook.files import atomic_write, resolve_inside
from playbook.loader import POLICY_FILE, Problem, content_version, load_playbook, parse_artifact_text
from playbook.models import KINDS
from tools.context import Coach

from .common import annotations, guard, page
from .hub import artifact_uri, index_uri

Kind = Literal["scorecards", "scenarios", "paths", "certifications"]


class ProblemOut(BaseModel):
    file: str
    line: int | None = None
    field: str | None = None
    message: str

    @classmethod
    def of(cls, p: Problem) -> "ProblemOut":
        return cls(file=p.file, line=p.line, field=p.field, message=p.message)


class ValidateResult(BaseModel):
    ok: bool = Field(description="True when every file is valid and every reference resolves.")
    playbook: str = Field(description="The playbook folder.")
    counts: dict[str, int] = Field(description="Artifacts loaded per kind.")
    problems: list[ProblemOut] = Field(description="Every problem: file, line, field and what is wrong.")
    stale: list[str] = Field(default_factory=list, description="kind/id still served from the last good version because the file on disk is broken.")
    summary: str


class PlaybookEntry(BaseModel):
    kind: str
    id: str
    title: str
    path: str = Field(description="Path inside the playbook; pass it to playbook_read / playbook_write.")
    version: str = Field(description="Content hash of the file; pass as expected_version to playbook_write to avoid overwriting someone else's change.")
    uri: str = Field(description="The resource URI of this artifact.")
    summary: str = Field("", description="What it covers (lines, targets, steps, gates).")


class PlaybookListResult(BaseModel):
    items: list[PlaybookEntry]
    total: int
    next_cursor: str | None = Field(None, description="Pass as cursor to get the next page; null on the last page.")


class PlaybookFile(BaseModel):
    kind: str
    id: str | None
    path: str
    version: str = Field(description="Content hash of the whole file (pass as expected_version to playbook_write).")
    uri: str | None
    text: str = Field(description="The file's exact text (YAML, or Markdown with YAML front matter), lines start_line..end_line.")
    start_line: int = Field(1, description="First line in text (1-based).")
    end_line: int = Field(0, description="Last line in text.")
    total_lines: int = Field(0, description="Lines in the whole file.")
    next_start_line: int | None = Field(None, description="Pass as start_line to read on; null when text reaches the end of the file.")
    stale: bool = Field(False, description="True when the file on disk is broken and this is the last good version.")
    problems: list[ProblemOut] = Field(default_factory=list, description="Problems of this file on disk, if any.")


class PlaybookWriteResult(BaseModel):
    saved: bool
    path: str
    kind: str
    id: str | None
    version: str = Field(description="Content hash of the saved file.")
    created: bool = Field(description="True when the file did not exist before.")
    uri: str | None
    playbook_ok: bool = Field(description="Whether the whole playbook validates after the write.")
    next_action: str


def _summary(kind: str, model) -> str:
    if kind == "scorecards":
        return f"{len(model.lines)} lines: " + ", ".join(ln.id for ln in model.lines[:12]) + ("…" if len(model.lines) > 12 else "")
    if kind == "scenarios":
        return f"targets {', '.join(model.targets)}; difficulty {model.difficulty}; buyer {model.persona.name} ({model.persona.role})"
    if kind == "paths":
        return f"lines {', '.join(model.lines)}; steps {', '.join(s.scenario for s in model.steps)}"
    if kind == "certifications":
        return f"lines {', '.join(model.lines)}; scenarios {', '.join(model.scenarios)}; gates {', '.join(model.gates)}"
    return ""


def _kind_of(rel: str) -> str:
    if rel == POLICY_FILE:
        return "policy"
    head, _, rest = rel.partition("/")
    if head in KINDS and rest and "/" not in rest:
        if head == "scenarios" and not rest.endswith((".md", ".yaml", ".yml")):
            raise ToolError(f"{rel}: a scenario file must end in .md (front matter + persona prose)")
        if head != "scenarios" and not rest.endswith((".yaml", ".yml")):
            raise ToolError(f"{rel}: a {head[:-1]} file must end in .yaml")
        return head
    if head == "scorecards" and rest.startswith("tests/"):
        raise ToolError(f"{rel}: rubric tests are not written through playbook_write; edit the file in the playbook folder")
    if head == "scorecards" and rest.startswith("examples/"):
        raise ToolError(f"{rel}: learned examples are written by override_verdict; review or edit the file in the playbook folder")
    raise ToolError(
        f"{rel!r} is not a playbook artifact path: use playbook.yaml or <kind>/<id>.yaml "
        f"(scenarios/<id>.md), kind one of {', '.join(KINDS)}"
    )


def _norm(rel: str) -> str:
    rel = rel.strip().replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    return rel


def _find(coach: Coach, kind: str | None, art_id: str | None, path: str | None):
    pb = coach.playbook
    if path:
        rel = _norm(path)
        for k in KINDS:
            for art in pb.artifacts.get(k, {}).values():
                if art.path == rel:
                    return art, rel
        return None, rel
    if not kind or not art_id:
        raise ToolError("give either path (e.g. 'scenarios/budget-probe.md') or both kind and id")
    art = pb.get(kind, art_id)
    if art is None:
        known = ", ".join(sorted(pb.artifacts.get(kind, {}))) or "none"
        raise ToolError(f"no {kind[:-1]} with id '{art_id}' (known: {known}); playbook_list shows every id")
    return art, art.path


def validate(coach: Coach) -> ValidateResult:
    pb = load_playbook(coach.playbook_dir)
    counts = {k: len(v) for k, v in pb.artifacts.items()}
    probs = [ProblemOut.of(p) for p in pb.problems]
    if pb.ok:
        summary = "valid: " + ", ".join(f"{n} {k}" for k, n in counts.items())
    else:
        summary = f"{len(probs)} problem(s); first: {pb.problems[0]}"
    return ValidateResult(ok=pb.ok, playbook=str(pb.root), counts=counts, problems=probs[:200], stale=sorted(coach.playbook.stale), summary=summary)


def list_artifacts(coach: Coach, kind: str | None, cursor: str | None, limit: int | None) -> PlaybookListResult:
    pb = coach.playbook
    kinds = [kind] if kind else list(KINDS)
    items = [
        PlaybookEntry(
            kind=k,
            id=a.id,
            title=getattr(a.model, "title", a.id),
            path=a.path,
            version=a.version,
            uri=artifact_uri(k, a.id),
            summary=_summary(k, a.model),
        )
        for k in kinds
        for a in pb.all(k)
    ]
    chunk, nxt, total = page(items, cursor, limit)
    return PlaybookListResult(items=chunk, total=total, next_cursor=nxt)


def _window(f: PlaybookFile, start_line: int, max_lines: int) -> PlaybookFile:
    """Cut a long file into pages of lines (a big scorecard is more than 10k tokens)."""
    lines = f.text.splitlines(keepends=True)
    total = len(lines)
    if start_line < 1 or (total and start_line > total):
        raise ToolError(f"{f.path} has {total} lines; start_line must be between 1 and {max(total, 1)}")
    end = min(total, start_line - 1 + max_lines)
    f.text = "".join(lines[start_line - 1 : end])
    f.start_line, f.end_line, f.total_lines = start_line, end, total
    f.next_start_line = end + 1 if end < total else None
    return f


def read_artifact(coach: Coach, kind: str | None, art_id: str | None, path: str | None) -> PlaybookFile:
    pb = coach.playbook
    rel_in = _norm(path) if path else None
    if rel_in == POLICY_FILE:
        f = coach.playbook_dir / POLICY_FILE
        text = f.read_text(encoding="utf-8") if f.exists() else ""
        probs = [ProblemOut.of(p) for p in pb.problems if p.file == POLICY_FILE]
        return PlaybookFile(kind="policy", id=None, path=POLICY_FILE, version=content_version(text.encode()), uri="playbook://policy", text=text, problems=probs)
    art, rel = _find(coach, kind, art_id, path)
    probs = [ProblemOut.of(p) for p in pb.problems if p.file == rel]
    if art is None:
        # A file that exists but never loaded (broken from the start): show it with its problems.
        f = resolve_inside(coach.playbook_dir, rel)
        if not f.is_file():
            raise ToolError(f"no playbook file at {rel}; playbook_list shows every path")
        text = f.read_text(encoding="utf-8", errors="replace")
        return PlaybookFile(kind=_kind_of(rel), id=None, path=rel, version=content_version(f.read_bytes()), uri=None, text=text, problems=probs)
    return PlaybookFile(
        kind=art.kind,
        id=art.id,
        path=art.path,
        version=art.file_version,  # what playbook_write's expected_version is compared with
        uri=artifact_uri(art.kind, art.id),
        text=art.file_text,
        stale=f"{art.kind}/{art.id}" in pb.stale,
        problems=probs,
    )


def _problem_lines(probs: list[Problem]) -> str:
    return "\n".join(f"- {p}" for p in probs[:50]) + (f"\n- … and {len(probs) - 50} more" if len(probs) > 50 else "")


def write_artifact(coach: Coach, path: str, text: str, expected_version: str | None) -> PlaybookWriteResult:
    rel = _norm(path)
    if not rel:
        raise ToolError("path is empty: give the file's path inside the playbook, e.g. 'scenarios/budget-probe.md'")
    try:
        target = resolve_inside(coach.playbook_dir, rel)
    except Exception as exc:
        raise ToolError(f"refused: {exc}. Paths are relative to the playbook folder, e.g. 'paths/budget.yaml'") from None
    rel = target.relative_to(coach.playbook_dir).as_posix()
    kind = _kind_of(rel)
    if len(text.encode("utf-8")) > 1_000_000:
        raise ToolError(f"{rel}: the text is over 1,000,000 bytes; playbook files must be smaller")
    existed = target.is_file()
    if expected_version is not None:
        current = content_version(target.read_bytes()) if existed else None
        if current != expected_version:
            raise ToolError(
                f"{rel} changed since you read it (expected version {expected_version}, "
                f"on disk {current or 'no file'}); playbook_read it again and reapply your edit"
            )
    model, probs = parse_artifact_text(kind, rel, text)
    if model is None:
        raise ToolError(f"{rel} was not saved: it is invalid.\n{_problem_lines(probs)}\nFix these and call playbook_write again.")
    # Check the whole playbook with the new file in place, in a scratch copy, so that a file
    # referring to a missing scenario or line (or a change breaking another file) is refused too.
    before = {str(p) for p in load_playbook(coach.playbook_dir).problems}
    with tempfile.TemporaryDirectory(prefix="coachloop-validate-") as tmp:
        scratch = Path(tmp) / "pb"
        shutil.copytree(coach.playbook_dir, scratch, ignore=shutil.ignore_patterns(".*", "*.db", "*.db-*"))
        dest = scratch / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
        after = load_playbook(scratch)
    new_probs = [p for p in after.problems if p.file == rel or str(p) not in before]
    if new_probs:
        raise ToolError(
            f"{rel} was not saved: with it in place the playbook has new problems.\n{_problem_lines(new_probs)}\n"
            "Fix these (for example create the scenario or rubric line it refers to first) and call playbook_write again."
        )
    art_id = getattr(model, "id", None)
    if kind != "policy":
        clash = coach.playbook.get(kind, art_id)
        if clash is not None and clash.path != rel:
            raise ToolError(f"{rel} was not saved: id '{art_id}' is already used by {clash.path}; choose another id or edit that file")
    atomic_write(target, text)
    new = coach.reload()
    version = content_version(text.encode("utf-8"))
    ok = new.ok
    uri = artifact_uri(kind, art_id) if kind != "policy" else "playbook://policy"
    nxt = {
        "scenarios": f"assign it with assign_path (through a learning path that lists scenario '{art_id}'), or practise it with roleplay_start",
        "paths": f"assign it to a rep with assign_path(path_id='{art_id}')",
        "certifications": "reps certify with certify after a passing practice session",
        "scorecards": "new calls are scored with it; rescore re-scores stored calls on the new version",
        "policy": "the policy applies from the next call on",
    }[kind]
    return PlaybookWriteResult(saved=True, path=rel, kind=kind, id=art_id, version=version, created=not existed, uri=uri, playbook_ok=ok, next_action=nxt)


def register(mcp, coach: Coach) -> None:
    @mcp.tool(
        name="validate_playbook",
        annotations=annotations("Validate the playbook", read_only=True),
        description=(
            "Check every file of the playbook folder (scorecards, scenarios, learning paths, certifications, "
            "playbook.yaml): YAML syntax, schema, and cross-references. Use after editing files by hand or "
            "before a rollout. Returns ok, counts per kind, and every problem with file, line, field and message."
        ),
    )
    @guard("validate_playbook")
    def validate_playbook() -> ValidateResult:
        return validate(coach)

    @mcp.tool(
        name="playbook_list",
        annotations=annotations("List playbook artifacts", read_only=True),
        description=(
            "List the playbook's artifacts (id, title, path, version, what each covers), optionally of one kind. "
            "Use to find the id or path to read, write, assign or certify. Paginated: pass next_cursor back as cursor."
        ),
    )
    @guard("playbook_list")
    def playbook_list(
        kind: Annotated[Kind | None, Field(description="Only this kind; omit for all kinds.")] = None,
        cursor: Annotated[str | None, Field(description="next_cursor from the previous page.")] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="Items per page (1-100).")] = 50,
    ) -> PlaybookListResult:
        return list_artifacts(coach, kind, cursor, limit)

    @mcp.tool(
        name="playbook_read",
        annotations=annotations("Read a playbook file", read_only=True),
        description=(
            "Read one playbook file's exact text, by path ('scenarios/budget-probe.md', 'playbook.yaml') or by kind "
            "and id. Use before editing it with playbook_write (keep its version as expected_version). Long files come "
            "in pages of lines: read on from next_start_line until it is null. Returns the text, its version, and any "
            "problems the file has on disk."
        ),
    )
    @guard("playbook_read")
    def playbook_read(
        path: Annotated[str | None, Field(description="Path inside the playbook, e.g. 'scorecards/discovery.yaml'.")] = None,
        kind: Annotated[Kind | None, Field(description="Kind, with id, instead of path.")] = None,
        id: Annotated[str | None, Field(description="Artifact id, with kind.")] = None,
        start_line: Annotated[int, Field(ge=1, description="First line to return (1-based).")] = 1,
        max_lines: Annotated[int, Field(ge=1, le=1000, description="Lines per page (1-1000).")] = 300,
    ) -> PlaybookFile:
        return _window(read_artifact(coach, kind, id, path), start_line, max_lines)

    @mcp.tool(
        name="playbook_write",
        annotations=annotations("Write a playbook file", read_only=False, destructive=True, idempotent=True),
        description=(
            "Create or replace one playbook file (a scorecard, scenario, learning path, certification, or "
            "playbook.yaml) with the full text given. The text is validated first (YAML, schema, and every "
            "reference across the playbook with the new file in place); an invalid file is refused with every "
            "problem and nothing is saved. Paths outside the playbook are refused. On success the server reloads "
            "the playbook at once. Returns the saved path, id, new version and the next step."
        ),
    )
    @guard("playbook_write")
    def playbook_write(
        path: Annotated[str, Field(description="Path inside the playbook: 'scenarios/<id>.md', 'paths/<id>.yaml', 'certifications/<id>.yaml', 'scorecards/<id>.yaml' or 'playbook.yaml'.")],
        text: Annotated[str, Field(description="The complete file text. Scenarios are Markdown: YAML front matter between '---' lines, then the persona prose.")],
        expected_version: Annotated[str | None, Field(description="The version playbook_read returned; the write is refused if the file changed since. Omit to overwrite.")] = None,
    ) -> PlaybookWriteResult:
        return write_artifact(coach, path, text, expected_version)


__all__ = ["register", "validate", "list_artifacts", "read_artifact", "write_artifact", "index_uri"]
