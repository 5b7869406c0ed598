"""Bad input through the MCP server in memory: every failure is a tool error (isError) saying what
was wrong and how to fix it; nothing is written outside the playbook, the last good playbook keeps
serving, and no call is half-stored."""
from __future__ import annotations

import os

import anyio
import pytest

from mcp_helpers import client, error_text, structured
from server.mcp import build_server

CALL = (
    "Priya Raman: Thanks for the time today. Let me suggest an agenda for the thirty minutes.\n"
    "Marcus Oduya: Sounds good.\n"
    "Priya Raman: What is going wrong with the activity data today?\n"
    "Marcus Oduya: Reps never log their calls.\n"
)


@pytest.fixture
def server(coach):
    return build_server(coach)


def counts(coach) -> dict:
    return {t: coach.store.one(f"select count(*) as n from {t}")["n"] for t in ("calls", "verdicts", "events")}


def test_playbook_write_outside_the_playbook_is_refused(server, coach, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, coach.playbook_dir / "scenarios" / "link")
    os.symlink(outside / "evil.md", coach.playbook_dir / "scenarios" / "evil.md")
    text = (coach.playbook_dir / "scenarios" / "practice-agenda-set.md").read_text()
    paths = ["../x.yaml", "/etc/x.yaml", str(coach.playbook_dir / "scenarios" / "abs.md"), "scenarios/../../x.md",
             "scenarios/link/x.md", "scenarios/evil.md", "scenarios/a\x00.md"]

    async def main():
        async with client(server) as c:
            for p in paths:
                msg = error_text(await c.call_tool("playbook_write", {"path": p, "text": text}))
                assert "refused" in msg and "relative to the playbook" in msg, (p, msg)

    anyio.run(main)
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "x.yaml").exists() and not (tmp_path / "x.md").exists()


def test_playbook_write_invalid_or_huge_keeps_the_last_good_version(server, coach):
    rel = "paths/path-agenda-set.yaml"
    before = (coach.playbook_dir / rel).read_text()
    version = coach.playbook.version_of("paths", "path-agenda-set")

    async def main():
        async with client(server) as c:
            msg = error_text(await c.call_tool("playbook_write", {"path": rel, "text": "id: [unclosed\n"}))
            assert rel in msg and "invalid YAML" in msg and "not saved" in msg
            msg = error_text(await c.call_tool("playbook_write", {"path": rel, "text": "x" * 1_100_000}))
            assert "1,000,000 bytes" in msg
            msg = error_text(await c.call_tool("playbook_write", {"path": rel, "text": "a: b\n"}))
            assert "required field is missing" in msg and "unknown field" in msg
            got = structured(await c.call_tool("playbook_read", {"path": rel}))
            assert got["version"] == version

    anyio.run(main)
    assert (coach.playbook_dir / rel).read_text() == before
    assert coach.playbook.version_of("paths", "path-agenda-set") == version and coach.playbook.ok


@pytest.mark.parametrize("text,expect", [
    ("garbage", "expected 'Name: words'"),
    ("", "empty transcript"),
    ("\x00\x01binary", "binary"),
    ('{"turns": 5}', "turns must be a list"),
    ("WEBVTT\n\nfoo", "no timing line"),
    ("Alice: hi\nBob: hello", "cannot tell which speaker is the rep"),
])
def test_score_garbage_is_a_tool_error_and_stores_nothing(server, coach, text, expect):
    async def main():
        async with client(server) as c:
            msg = error_text(await c.call_tool("score", {"transcript": text, "call_type": "discovery"}))
            assert expect in msg, msg
            assert "--rep" not in msg  # CLI flags are said as tool arguments

    before = counts(coach)
    anyio.run(main)
    assert counts(coach) == before


def test_unknown_ids_are_tool_errors_with_the_next_step(server, coach):
    async def main():
        async with client(server) as c:
            msg = error_text(await c.call_tool("gate_check", {"rep": "nobody", "activity": "dial"}))
            assert "unknown rep 'nobody'" in msg and "upsert_rep" in msg
            msg = error_text(await c.call_tool("roleplay_reply", {"session_id": "nope", "text": "hi"}))
            assert "roleplay_start(rep='R', scenario='S')" in msg and "`" not in msg
            msg = error_text(await c.call_tool("generate_scenario", {"gap_id": 9999}))
            assert "unknown gap 9999" in msg and "attribute tool" in msg and "coachloop" not in msg
            msg = error_text(await c.call_tool("score", {"transcript": CALL, "rep": "Nobody"}))
            assert "pass the rep argument" in msg and "Priya Raman" in msg
            msg = error_text(await c.call_tool("score", {"transcript": CALL, "scorecard": "nope"}))
            assert "unknown scorecard 'nope'" in msg
            msg = error_text(await c.call_tool("override_verdict", {"call_id": 999, "line": "agenda_set",
                                                                     "verdict": "pass", "reason": "x"}))
            assert "unknown call 999" in msg

    before = counts(coach)
    anyio.run(main)
    assert counts(coach)["calls"] == before["calls"] == 0


def test_unknown_argument_is_refused_not_dropped(server, coach):
    """A misnamed argument (`deal_id` for `deal`) must not be ignored silently: the call would be
    stored without its deal, or at "now" instead of its real time."""
    async def main():
        async with client(server) as c:
            msg = error_text(await c.call_tool("score", {"transcript": CALL, "rep": "Priya Raman", "deal_id": "D-1"}))
            assert "unknown argument" in msg and "'deal_id'" in msg and "did you mean 'deal'" in msg
            msg = error_text(await c.call_tool("gate_check", {"rep": "x", "activity": "dial", "whatever": 1}))
            assert "'whatever'" in msg and "gate_check takes:" in msg

    before = counts(coach)
    anyio.run(main)
    assert counts(coach) == before


def test_resource_errors_speak_mcp_not_cli(server):
    from mcp.shared.exceptions import MCPError

    async def main():
        async with client(server) as c:
            with pytest.raises(MCPError) as exc:
                await c.read_resource("coachloop://reps/nobody")
            assert "unknown rep 'nobody'" in str(exc.value) and "upsert_rep" in str(exc.value)
            assert "coachloop rep add" not in str(exc.value)
            with pytest.raises(MCPError) as exc:
                await c.read_resource("coachloop://calls/999")
            assert "unknown call 999" in str(exc.value) and "`coachloop" not in str(exc.value)

    anyio.run(main)


def test_roleplay_end_before_the_rep_spoke(server, coach):
    async def main():
        async with client(server) as c:
            structured(await c.call_tool("upsert_rep", {"name": "Jordan Pike"}))
            start = structured(await c.call_tool("roleplay_start", {"rep": "jordan-pike", "scenario": "practice-agenda-set"}))
            sid = start["session_id"]
            msg = error_text(await c.call_tool("roleplay_end", {"session_id": sid}))
            assert "not said anything" in msg and f"roleplay_reply(session_id='{sid}'" in msg and "coachloop" not in msg

    anyio.run(main)


def test_text_that_is_not_unicode_is_a_clear_tool_error(server, coach):
    async def main():
        async with client(server) as c:
            msg = error_text(await c.call_tool("score", {"transcript": "Al: hi \ud800\nBo: yo", "rep": "Al"}))
            assert "not valid Unicode" in msg and "surrogate" in msg
            msg = error_text(await c.call_tool("playbook_write", {"path": "paths/x.yaml", "text": "id: \ud800\n"}))
            assert "not valid Unicode" in msg

    before = counts(coach)
    anyio.run(main)
    assert counts(coach) == before and not (coach.playbook_dir / "paths" / "x.yaml").exists()


def test_rep_name_that_is_a_paragraph_is_refused(server, coach):
    async def main():
        async with client(server) as c:
            msg = error_text(await c.call_tool("upsert_rep", {"name": "A" * 5000}))
            assert "5000 characters" in msg and "at most 200" in msg

    anyio.run(main)
    assert coach.store.one("select count(*) as n from reps")["n"] == 0


def test_a_misnamed_field_inside_a_batch_item_is_refused(server, coach):
    """score_batch items are checked like top-level arguments: `deal_id` for `deal` inside an
    item is an error naming the item and the right field, and nothing is stored."""
    async def main():
        async with client(server) as c:
            res = await c.call_tool("score_batch", {"items": [
                {"transcript": CALL, "rep": "Priya Raman"},
                {"transcript": CALL, "rep": "Priya Raman", "deal_id": "D-1"}]})
            msg = error_text(res)
            assert "items.1.deal_id" in msg and "unknown field" in msg and "did you mean 'deal'" in msg, msg
            assert "transcript" in msg  # the fields an item takes are listed

    before = counts(coach)
    anyio.run(main)
    assert counts(coach) == before
