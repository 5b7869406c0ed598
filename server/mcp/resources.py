"""Resources: the playbook, live, and the state of the loop.

Playbook (text of the file as it is served now; an index per kind as JSON):
  playbook://policy, playbook://scorecards, playbook://scorecards/{id}, playbook://scenarios[/{id}],
  playbook://paths[/{id}], playbook://certifications[/{id}]; every version ever live:
  playbook://versions/{kind}/{id} (JSON list), playbook://versions/{kind}/{id}/{version} (text)
Loop state (JSON):
  coachloop://reps (roster), coachloop://reps/{rep} (profile), coachloop://calls/{id} (scorecard with
  evidence), coachloop://metrics/team

`resources/list` lists the static resources plus one entry per playbook artifact, so a client can
subscribe to a concrete file; it changes (list_changed) when files come and go.
"""
from __future__ import annotations

import json
from typing import Any

import mcp_types as types
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from playbook.loader import POLICY_FILE
from playbook.models import KINDS
from tools.context import Coach

from . import state
from .common import decode_cursor, encode_cursor, for_mcp
from .hub import POLICY_URI, artifact_uri, index_uri

MIME = {".md": "text/markdown", ".yaml": "application/yaml", ".yml": "application/yaml"}
PAGE = 200


def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=1, default=str)


def _artifact_text(coach: Coach, kind: str, art_id: str) -> str:
    art = coach.playbook.get(kind, art_id)
    if art is None:
        known = ", ".join(sorted(coach.playbook.artifacts.get(kind, {}))) or "none"
        raise ResourceNotFoundError(f"no {kind[:-1]} '{art_id}' in the playbook (known: {known}); read {index_uri(kind)} for the list")
    return art.file_text


def _index(coach: Coach, kind: str) -> str:
    return _json(
        {
            "kind": kind,
            "items": [
                {"id": a.id, "title": getattr(a.model, "title", a.id), "path": a.path, "version": a.version, "uri": artifact_uri(kind, a.id)}
                for a in coach.playbook.all(kind)
            ],
        }
    )


def register(mcp, coach: Coach) -> None:
    # ------------------------------------------------------------------ playbook
    @mcp.resource(POLICY_URI, name="policy", title="Playbook policy (playbook.yaml)", mime_type="application/yaml",
                  description="The team's policy: attribution thresholds, gated activities, default scorecards, LLM and webhook settings.")
    def policy() -> str:
        f = coach.playbook_dir / POLICY_FILE
        return f.read_text(encoding="utf-8") if f.exists() else ""

    def add_kind(kind: str) -> None:
        single = kind[:-1]

        def index() -> str:
            return _index(coach, kind)

        index.__name__ = f"{kind}_index"
        mcp.resource(index_uri(kind), name=f"{kind}", title=f"All {kind}", mime_type="application/json",
                     description=f"Index of the playbook's {kind}: id, title, path, version and URI of each.")(index)

        def one(id: str) -> str:
            return _artifact_text(coach, kind, id)

        one.__name__ = f"{single}_file"
        mcp.resource(f"playbook://{kind}/{{id}}", name=f"{single}", title=f"A {single} file",
                     description=f"The text of one {single} file of the playbook, as served now (the last good version if the file on disk is broken).")(one)

    for kind in KINDS:
        add_kind(kind)

    # ------------------------------------------------------------------ versions (live playbook, issue 6)
    @mcp.resource("playbook://versions/{kind}/{id}", name="artifact_versions", title="Versions of an artifact",
                  mime_type="application/json",
                  description="Every version of a playbook artifact that was ever live (content hash, path, first seen, live), "
                              "oldest first. kind: scorecards | scenarios | paths | certifications | policy.")
    def artifact_versions(kind: str, id: str) -> str:
        from store.db import StoreError
        from tools.live import artifact_versions as versions

        try:
            return _json(versions(coach, kind, id))
        except StoreError as exc:
            raise ResourceNotFoundError(for_mcp(str(exc))) from None

    @mcp.resource("playbook://versions/{kind}/{id}/{version}", name="artifact_version", title="One version of an artifact",
                  description="The exact text of a playbook artifact at a version: the version a verdict (scorecard_version), "
                              "an assignment (artifact_versions) or a certification (certification_version) names.")
    def artifact_version(kind: str, id: str, version: str) -> str:
        from store.db import StoreError
        from tools.live import artifact_text

        try:
            return artifact_text(coach, kind, id, version)["text"]
        except StoreError as exc:
            raise ResourceNotFoundError(for_mcp(str(exc))) from None

    # ------------------------------------------------------------------ loop state
    @mcp.resource("coachloop://reps", name="reps", title="Roster", mime_type="application/json",
                  description="Every rep: id, name, team, segment, and counts of calls, open gaps and active gates.")
    def reps() -> str:
        return _json(state.roster(coach))

    @mcp.resource("coachloop://reps/{rep}", name="rep_profile", title="A rep's profile", mime_type="application/json",
                  description="A rep's profile: recent scores per rubric line, open gaps with their statements, assignments, gates and certifications.")
    def rep_profile(rep: str) -> str:
        try:
            return _json(state.rep_profile(coach, rep))
        except LookupError as exc:
            raise ResourceNotFoundError(for_mcp(str(exc))) from None

    @mcp.resource("coachloop://calls/{call_id}", name="call", title="A scored call", mime_type="application/json",
                  description="A stored call's scorecard: every line's verdict with the evidence quote, turn and reason.")
    def call(call_id: str) -> str:
        try:
            return _json(state.call_detail(coach, call_id))
        except LookupError as exc:
            raise ResourceNotFoundError(for_mcp(str(exc))) from None

    @mcp.resource("coachloop://metrics/team", name="team_metrics", title="Team metrics", mime_type="application/json",
                  description="The team's metrics: methodology adherence, ramp time, win rate by stage, cycle time, quota attainment spread, playbook-change cycle time.")
    def team_metrics() -> str:
        try:
            return _json(state.team_metrics(coach))
        except Exception as exc:
            raise ResourceError(for_mcp(f"metrics are not available: {exc}")) from None

    # resources/list: the static resources plus one entry per playbook artifact.
    static_list = mcp.list_resources

    async def list_resources(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        items = list(await static_list())
        for kind in KINDS:
            for art in coach.playbook.all(kind):
                items.append(
                    types.Resource(
                        uri=artifact_uri(kind, art.id),
                        name=f"{kind}/{art.id}",
                        title=getattr(art.model, "title", art.id),
                        description=f"{kind[:-1]} file {art.path} (version {art.version})",
                        mime_type=next((m for ext, m in MIME.items() if art.path.endswith(ext)), "text/plain"),
                    )
                )
        cursor = params.cursor if params is not None else None
        try:
            off = decode_cursor(cursor)
        except Exception:
            from mcp.shared.exceptions import MCPError

            raise MCPError(code=types.INVALID_PARAMS, message=f"invalid cursor {cursor!r}") from None
        chunk = items[off : off + PAGE]
        nxt = encode_cursor(off + PAGE) if off + PAGE < len(items) else None
        return types.ListResourcesResult(resources=chunk, next_cursor=nxt)

    mcp._lowlevel_server.add_request_handler("resources/list", types.PaginatedRequestParams, list_resources)
