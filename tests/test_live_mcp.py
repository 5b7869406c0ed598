"""The live playbook through the MCP server: a scorecard edited on disk (no tool call) reaches a
subscribed client as notifications/resources/updated, the resource serves the new text, and the
`score` tool uses the new version."""
from __future__ import annotations

import warnings

import anyio

from livekit import DEMO, edit_line, seed_demo
from mcp_helpers import Inbox, client, structured
from server.mcp import build_server
from server.orchestrator import Orchestrator
from tools.live import LiveService


def test_disk_edit_notifies_subscriber_and_next_score_uses_it(coach, playbook_dir):
    seed_demo(coach, limit=1)
    server = build_server(coach)
    uri = "playbook://scorecards/discovery"
    before = coach.playbook.version_of("scorecards", "discovery")

    async def main():
        inbox = Inbox()
        async with client(server, "legacy", inbox) as c:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await c.subscribe_resource(uri)
            svc = LiveService(coach, run_events=Orchestrator(coach).run_pending, poll_seconds=60).start()
            try:
                edit_line(playbook_dir, "discovery", "budget_confirmed", title="Budget range confirmed")
                await inbox.wait_for(lambda: uri in inbox.uris_updated(), timeout=5.0)
                text = (await c.read_resource(uri)).contents[0].text
                assert "Budget range confirmed" in text
                new = coach.playbook.version_of("scorecards", "discovery")
                assert new != before
                res = structured(await c.call_tool("score", {
                    "transcript": (DEMO / "04-priya-kestrel-electrical.vtt").read_text(), "rep": "Priya Raman"}))
                assert new in str(res), "the score tool's answer names the new scorecard version"
                row = coach.store.one("select scorecard_version from calls order by id desc limit 1")
                assert row["scorecard_version"] == new
            finally:
                assert svc.stop()

    anyio.run(main)


def test_versions_resources(coach, playbook_dir):
    from mcp_helpers import read_json
    from tools.live import enable_live

    enable_live(coach)
    v1 = coach.playbook.version_of("scorecards", "discovery")
    edit_line(playbook_dir, "discovery", "agenda_set", title="Agenda stated")
    coach.reload()
    server = build_server(coach)

    async def main():
        async with client(server, "legacy") as c:
            rows = read_json(await c.read_resource("playbook://versions/scorecards/discovery"))
            assert [r["version"] for r in rows][0] == v1 and rows[-1]["live"]
            old = (await c.read_resource(f"playbook://versions/scorecards/discovery/{v1}")).contents[0].text
            assert "title: Agenda set\n" in old and "Agenda stated" not in old
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    await c.read_resource("playbook://versions/scorecards/discovery/ffff0000")
                except Exception as exc:  # the SDK raises the server's error
                    assert "not a stored version" in str(exc)
                else:
                    raise AssertionError("an unknown version must be an error")

    anyio.run(main)


def test_score_on_a_broken_scorecard_says_so_and_uses_the_last_good_version(coach, playbook_dir):
    """An invalid edit is reported on the next tool call that touches it: `score` answers with the
    file's problems and scores with the last good version."""
    good = coach.playbook.version_of("scorecards", "discovery")
    card = playbook_dir / "scorecards" / "discovery.yaml"
    card.write_text(card.read_text().replace("lines:", "lines: [oops", 1))
    coach.reload()
    server = build_server(coach)

    async def main():
        async with client(server, "legacy") as c:
            res = structured(await c.call_tool("score", {
                "transcript": (DEMO / "04-priya-kestrel-electrical.vtt").read_text(), "rep": "Priya Raman"}))
            assert res["scorecard_version"] == good
            assert res["playbook_problems"] and res["playbook_problems"][0]["file"] == "scorecards/discovery.yaml"
            assert "scorecards/discovery.yaml" in res["next_action"] and "broken" in res["next_action"]
            card.write_text(card.read_text().replace("lines: [oops", "lines:", 1))
            coach.reload()
            fixed = structured(await c.call_tool("score", {
                "transcript": (DEMO / "05-priya-halden-home.txt").read_text(), "rep": "Priya Raman"}))
            assert fixed["playbook_problems"] == []

    anyio.run(main)
