"""Docs that cannot drift: the README's CLI reference lists exactly the commands (and their
actions) of the live parser, and docs/MCP.md's tool, resource and prompt tables list exactly what
the live MCP server offers (`tools/list`, `resources/templates/list`, `prompts/list`)."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import anyio

from mcp_helpers import client
from server.cli import build_parser
from server.mcp import build_server

REPO = Path(__file__).resolve().parent.parent


def _section(path: Path, start: str, stop: str) -> str:
    text = path.read_text()
    a = text.index(start)
    b = text.index(stop, a + len(start))
    return text[a:b]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its sub-commands here and nowhere public
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _documented_commands() -> dict[str, set[str]]:
    """README CLI table: command -> actions named with it ("rep add|list|show" -> {add, list, show})."""
    table = _section(REPO / "README.md", "## CLI reference", "Exit codes")
    out: dict[str, set[str]] = {}
    for row in table.splitlines():
        if not row.startswith("| `"):
            continue
        first_cell = row.split(" | ")[0]
        for span in re.findall(r"`([^`]+)`", first_cell):
            words = span.replace("\\|", "|").split()
            cmd = words[0]
            actions = out.setdefault(cmd, set())
            if len(words) > 1 and re.fullmatch(r"[a-z][a-z-]*(\|[a-z][a-z-]*)*", words[1]):
                actions.update(words[1].split("|"))
    return out


def test_readme_cli_table_matches_the_parser():
    live = _subparsers(build_parser())
    documented = _documented_commands()
    assert sorted(set(live) - set(documented)) == [], "commands missing from the README's CLI reference"
    assert sorted(set(documented) - set(live)) == [], "the README documents commands the CLI does not have"
    for cmd, actions in documented.items():
        sub = _subparsers(live[cmd])
        if sub:  # a command with actions: the README names each one
            assert actions == set(sub), f"{cmd}: README names {sorted(actions)}, the CLI has {sorted(sub)}"


def _doc_names(section: str) -> set[str]:
    names = set()
    for row in section.splitlines():
        m = re.match(r"\| `([^`]+)`", row)
        if m:
            names.add(m.group(1))
    return names


def test_docs_mcp_lists_exactly_the_live_tools_and_prompts(coach):
    doc = REPO / "docs" / "MCP.md"
    tools_doc = _doc_names(_section(doc, "## Tools", "## Resources"))
    prompts_doc = _doc_names(_section(doc, "## Prompts", "## Change notifications"))
    resources_doc = _section(doc, "## Resources", "## Prompts")

    async def main():
        async with client(build_server(coach), "legacy") as c:
            tools = {t.name for t in (await c.list_tools()).tools}
            prompts = {p.name for p in (await c.list_prompts()).prompts}
            templates = {str(t.uri_template) for t in (await c.list_resource_templates()).resource_templates}
            return tools, prompts, templates

    tools, prompts, templates = anyio.run(main)
    assert len(tools) >= 10 and prompts and templates
    assert tools_doc == tools, (sorted(tools - tools_doc), sorted(tools_doc - tools))
    assert prompts_doc == prompts, (sorted(prompts - prompts_doc), sorted(prompts_doc - prompts))
    # every resource template the server offers is named in the resources table (by its scheme and
    # first path segment: `playbook://versions/{kind}/{id}`, `coachloop://reps/{rep}`, ...)
    for uri in templates:
        head = re.sub(r"\{[^}]*\}.*$", "", uri).rstrip("/")
        assert head in resources_doc, f"resource template {uri} is not in docs/MCP.md"
