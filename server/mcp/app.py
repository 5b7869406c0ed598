"""The coachloop MCP server: `build_server(coach)` returns an `MCPServer` with every tool,
resource and prompt, serving both protocol eras of the SDK (2025 initialize-handshake sessions
and the 2026-07-28 stateless per-request envelope) over stdio, streamable HTTP or in memory.
"""
from __future__ import annotations

import difflib
import logging
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.lowlevel import NotificationOptions
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from pydantic import ValidationError

from tools.context import Coach

from .hub import ChangeHub

log = logging.getLogger("coachloop.mcp")

INSTRUCTIONS = """coachloop runs a closed sales-coaching loop on a plain-text playbook.
Typical flow: upsert_rep (once per rep) -> score (a call transcript; returns every rubric line's
verdict with the evidence quote, and what the loop did next: gaps opened, practice assigned,
gates set) -> attribute (a rep's open gaps, stated with numbers and calls) -> generate_scenario /
assign_path (practice from the calls where it went wrong) -> roleplay_start / roleplay_reply /
roleplay_end (practice against an AI buyer) -> certify -> gate_check (may the rep do the activity?).
The playbook (scorecards, scenarios, learning paths, certifications) is readable and writable with
playbook_list / playbook_read / playbook_write, and as playbook:// resources. Rep profiles, calls
and team metrics are coachloop:// resources; `metrics` reports the team's numbers.
Lists are paginated: pass next_cursor back as cursor."""


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("coachloop")
    except Exception:
        return "0.0.0"


def argument_error_text(tool: str, err: ValidationError, schema: dict | None = None) -> str:
    """One line per bad argument, without pydantic's URLs: what was wrong and where. A field the
    tool does not take inside an argument (an item of a list) is named with the closest real one."""
    parts = []
    for e in err.errors()[:10]:
        path = [x for x in e.get("loc", ()) if x not in ("args", "kwargs")]
        loc = ".".join(str(x) for x in path) or "(arguments)"
        msg = e.get("msg", "invalid")
        if e.get("type") == "missing":
            msg = "required argument is missing"
        elif e.get("type") == "extra_forbidden":
            known = _fields_at(schema or {}, path[:-1])
            msg = "unknown field" + (_did_you_mean(str(path[-1]), known) if path else "") + (
                f"; the fields are: {', '.join(sorted(known))}" if known else "")
        elif "input" in e:
            shown = repr(e["input"])
            msg += f" (got {shown[:60] + '…' if len(shown) > 60 else shown})"
        parts.append(f"{loc}: {msg}")
    return f"invalid arguments for {tool}: " + "; ".join(parts) + ". The tool's input schema lists every argument and its type."


def _fields_at(schema: dict, path: list) -> list[str]:
    """The property names of the object at `path` (argument names, list indexes) in a JSON schema."""
    node = schema
    for step in path:
        node = _deref(schema, node)
        node = (node.get("items") if isinstance(step, int) else (node.get("properties") or {}).get(step)) or {}
    return list((_deref(schema, node).get("properties") or {}).keys())


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _deref(schema: dict, node: dict) -> dict:
    ref = node.get("$ref") if isinstance(node, dict) else None
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return (schema.get("$defs") or {}).get(ref.rsplit("/", 1)[-1]) or {}
    return node if isinstance(node, dict) else {}


def unknown_arguments_text(tool: str, schema: dict, arguments: dict) -> str | None:
    """An argument the tool does not take would be dropped silently (a misnamed `occurred_at` for
    `time` scoring the call at "now"): name it, with the closest real argument."""
    props = schema.get("properties") or {}
    if not props or schema.get("additionalProperties") is True:
        return None
    extra = sorted(k for k in arguments if k not in props)
    if not extra:
        return None
    parts = []
    for k in extra[:10]:
        parts.append(f"'{k}'" + _did_you_mean(k, list(props)))
    return (f"unknown argument(s) for {tool}: {', '.join(parts)}; nothing was done. "
            f"{tool} takes: {', '.join(sorted(props))}")


def _concise_argument_errors(mcp: MCPServer) -> None:
    """Argument validation failures become short tool errors naming each bad argument."""
    tm = mcp._tool_manager
    original = tm.call_tool

    async def call_tool(name: str, arguments: dict, context: Any = None, convert_result: bool = False, **kw: Any):
        tool = tm.get_tool(name)
        if tool is None:
            known = ", ".join(sorted(t.name for t in tm.list_tools()))
            raise ToolError(f"unknown tool {name!r}; this server's tools are: {known}")
        if isinstance(arguments, dict):
            unknown = unknown_arguments_text(name, tool.parameters, arguments)
            if unknown:
                raise ToolError(unknown)
        try:
            return await original(name, arguments, context, convert_result=convert_result, **kw)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError) and not isinstance(exc, UnexpectedToolError):
                raise ToolError(argument_error_text(name, cause, tool.parameters)) from cause
            raise

    tm.call_tool = call_tool  # type: ignore[method-assign]


def _new_server(name: str, lifespan: Any) -> MCPServer:
    return MCPServer(
        name,
        title="coachloop",
        description="A closed sales-coaching loop: score calls, attribute gaps, remediate with AI-buyer roleplay, gate and verify.",
        instructions=INSTRUCTIONS,
        version=_version(),
        lifespan=lifespan,
        log_level="WARNING",
    )


def build_server(coach: Coach, *, name: str = "coachloop") -> MCPServer:
    """Build the MCP server around a Coach (store + live playbook)."""
    hub_ref: dict[str, ChangeHub] = {}

    @asynccontextmanager
    async def lifespan(server: MCPServer):
        hub_ref["hub"].remember_loop()
        yield {"coach": coach}

    # MCPServer's constructor calls logging.basicConfig (a rich handler on the root logger, bound
    # to the sys.stderr of that moment) when the root has no handler; logging is the
    # application's business (the CLI configures it), so keep the root untouched.
    root = logging.getLogger()
    guard_handler = logging.NullHandler()
    root.addHandler(guard_handler)
    try:
        mcp = _new_server(name, lifespan)
    finally:
        root.removeHandler(guard_handler)
    hub = ChangeHub(mcp)
    hub_ref["hub"] = hub
    hub.install()
    coach.listeners.append(hub.on_reload)

    # 2025-era sessions learn from the initialize result whether list_changed is sent: say so.
    ll = mcp._lowlevel_server
    original = ll.create_initialization_options

    def init_options(notification_options: NotificationOptions | None = None, *args: Any, **kwargs: Any):
        return original(notification_options or NotificationOptions(resources_changed=True), *args, **kwargs)

    ll.create_initialization_options = init_options  # type: ignore[method-assign]

    from . import completions, data_tools, loop_tools, playbook_tools, prompts, resources
    from .logs import LEVELS_BY_SERVER, ClientLogLevels

    levels = ClientLogLevels()
    levels.install(mcp)
    LEVELS_BY_SERVER[id(mcp)] = levels

    playbook_tools.register(mcp, coach)
    data_tools.register(mcp, coach)
    loop_tools.register(mcp, coach)
    resources.register(mcp, coach)
    prompts.register(mcp, coach)
    completions.register(mcp, coach)

    _concise_argument_errors(mcp)
    for tool in mcp._tool_manager.list_tools():  # clients show the title: take it from the annotations
        if not tool.title and tool.annotations is not None and tool.annotations.title:
            tool.title = tool.annotations.title
    mcp.coachloop_hub = hub  # type: ignore[attr-defined]
    mcp.coachloop_coach = coach  # type: ignore[attr-defined]
    return mcp
