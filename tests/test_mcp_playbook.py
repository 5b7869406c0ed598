"""The MCP server in memory, both protocol eras: tool list, playbook tools, data tools, resources,
prompts, and change notifications (2025 resources/subscribe and 2026 subscriptions/listen)."""
from __future__ import annotations

import json
import warnings

import anyio
import pytest
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated

from mcp_helpers import ERAS, Inbox, client, error_text, read_json, structured
from server.mcp import build_server

TOOLS = {
    "score", "rescore", "score_batch", "override_verdict", "attribute", "generate_scenario", "assign_path",
    "roleplay_start", "roleplay_reply", "roleplay_end", "certify", "gate_check", "lift_gate", "metrics",
    "upsert_rep", "record_deal", "validate_playbook", "playbook_list", "playbook_read", "playbook_write",
}
READ_ONLY = {"validate_playbook", "playbook_list", "playbook_read", "gate_check", "metrics"}


@pytest.fixture
def server(coach):
    return build_server(coach)


def first_scenario(coach):
    art = coach.playbook.all("scenarios")[0]
    return art


@pytest.mark.parametrize("mode", ERAS)
def test_every_tool_listed_with_schema_annotations_and_description(server, mode):
    async def main():
        async with client(server, mode) as c:
            assert c.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
            caps = c.server_capabilities
            assert caps.resources.subscribe and caps.resources.list_changed
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert TOOLS <= set(tools), f"missing tools: {sorted(TOOLS - set(tools))}"
            for name, t in tools.items():
                assert len(t.description or "") > 120, name
                assert t.title and t.title == t.annotations.title, name
                assert t.output_schema and t.output_schema.get("type") == "object", name
                assert t.input_schema["type"] == "object"
                a = t.annotations
                assert a is not None and a.read_only_hint is not None and a.idempotent_hint is not None, name
                assert a.read_only_hint == (name in READ_ONLY), name
            assert tools["playbook_write"].annotations.destructive_hint is True

    anyio.run(main)


@pytest.mark.parametrize("mode", ERAS)
def test_playbook_list_read_validate(server, coach, mode):
    async def main():
        async with client(server, mode) as c:
            v = structured(await c.call_tool("validate_playbook", {}))
            assert v["playbook"] == str(coach.playbook_dir)
            assert v["counts"]["scenarios"] == len(coach.playbook.all("scenarios"))
            n = len(coach.playbook.all("scenarios"))
            page1 = structured(await c.call_tool("playbook_list", {"kind": "scenarios", "limit": 2}))
            assert page1["total"] == n and len(page1["items"]) == min(2, n)
            ids = [i["id"] for i in page1["items"]]
            cursor = page1["next_cursor"]
            while cursor:
                nxt = structured(await c.call_tool("playbook_list", {"kind": "scenarios", "limit": 2, "cursor": cursor}))
                ids += [i["id"] for i in nxt["items"]]
                cursor = nxt["next_cursor"]
            assert ids == sorted(a.id for a in coach.playbook.all("scenarios"))
            bad = error_text(await c.call_tool("playbook_list", {"cursor": "garbage!"}))
            assert "cursor" in bad
            art = first_scenario(coach)
            by_id = structured(await c.call_tool("playbook_read", {"kind": "scenarios", "id": art.id}))
            by_path = structured(await c.call_tool("playbook_read", {"path": art.path}))
            assert by_id["text"] == by_path["text"] == art.text and by_id["version"] == art.version
            # a long file comes in pages of lines that add up to the file
            card = coach.playbook.all("scorecards")[0]
            parts, start = [], 1
            while start:
                pg = structured(await c.call_tool("playbook_read", {"path": card.path, "start_line": start, "max_lines": 50}))
                assert pg["version"] == card.version and pg["total_lines"] == len(card.text.splitlines())
                assert len(json.dumps(pg)) < 40_000
                parts.append(pg["text"])
                start = pg["next_start_line"]
            assert "".join(parts) == card.text and len(parts) > 1
            assert "start_line" in error_text(await c.call_tool("playbook_read", {"path": card.path, "start_line": 100000}))
            pol = structured(await c.call_tool("playbook_read", {"path": "playbook.yaml"}))
            assert pol["kind"] == "policy" and pol["text"] == (coach.playbook_dir / "playbook.yaml").read_text()
            missing = error_text(await c.call_tool("playbook_read", {"kind": "scenarios", "id": "no-such"}))
            assert "no-such" in missing and "playbook_list" in missing

    anyio.run(main)


def test_playbook_write_validates_before_saving(server, coach):
    art = first_scenario(coach)
    new_text = art.text.replace(f"id: {art.id}", "id: mcp-written-scenario", 1)
    assert new_text != art.text
    target = coach.playbook_dir / "scenarios" / "mcp-written-scenario.md"

    async def main():
        async with client(server) as c:
            # invalid YAML / schema: refused with the problems, nothing written
            r = await c.call_tool("playbook_write", {"path": "scenarios/mcp-written-scenario.md", "text": "---\nid: x\ntitle: [unclosed\n---\nbody"})
            assert "not saved" in error_text(r) and not target.exists()
            r = await c.call_tool("playbook_write", {"path": "scenarios/mcp-written-scenario.md", "text": new_text.replace("title:", "titel:", 1)})
            msg = error_text(r)
            assert "titel" in msg and not target.exists()
            # a dangling reference is refused too
            r = await c.call_tool("playbook_write", {"path": "paths/dangling.yaml", "text": "id: dangling\ntitle: D\nlines: [no_such_line]\nsteps:\n  - scenario: no-such-scenario\n"})
            assert "no-such-scenario" in error_text(r) and not (coach.playbook_dir / "paths" / "dangling.yaml").exists()
            # outside the playbook, or not an artifact path
            for bad in ("../escape.yaml", "/etc/passwd", "notes/readme.md", "scenarios/sub/x.md"):
                r = await c.call_tool("playbook_write", {"path": bad, "text": "id: x"})
                assert r.is_error, bad
            assert not (coach.playbook_dir.parent / "escape.yaml").exists()
            # a valid new file is saved and served at once
            ok = structured(await c.call_tool("playbook_write", {"path": "scenarios/mcp-written-scenario.md", "text": new_text}))
            assert ok["saved"] and ok["created"] and ok["id"] == "mcp-written-scenario"
            assert target.read_text() == new_text
            assert coach.playbook.get("scenarios", "mcp-written-scenario") is not None
            # optimistic concurrency
            stale = error_text(await c.call_tool("playbook_write", {"path": "scenarios/mcp-written-scenario.md", "text": new_text + "\nmore\n", "expected_version": "0000000000000000"}))
            assert "changed since you read it" in stale
            again = structured(await c.call_tool("playbook_write", {"path": "scenarios/mcp-written-scenario.md", "text": new_text + "\nmore\n", "expected_version": ok["version"]}))
            assert again["created"] is False and again["version"] != ok["version"]
            # an id already used by another file is refused
            clash = error_text(await c.call_tool("playbook_write", {"path": "scenarios/other-file.md", "text": new_text}))
            assert "duplicate id" in clash or "already used" in clash

    anyio.run(main)


@pytest.mark.parametrize("mode", ERAS)
def test_upsert_rep_and_record_deal(server, coach, mode):
    async def main():
        async with client(server, mode) as c:
            rep = structured(await c.call_tool("upsert_rep", {"name": "Priya Raman", "segment": "mid-market", "hire_date": "2026-01-05"}))
            assert rep["id"] == "priya-raman" and rep["created"] and rep["segment"] == "mid-market"
            again = structured(await c.call_tool("upsert_rep", {"name": "Priya Raman", "team": "EMEA"}))
            assert not again["created"] and again["team"] == "EMEA" and again["segment"] == "mid-market"
            bad = error_text(await c.call_tool("upsert_rep", {"name": "X", "hire_date": "yesterday"}))
            assert "hire_date" in bad
            d = structured(await c.call_tool("record_deal", {"id": "OPP-1", "rep": "Priya Raman", "stage": "discovery", "amount": 12000}))
            assert d["created"] and d["rep"] == "priya-raman" and [s["stage"] for s in d["stages"]] == ["discovery"]
            d = structured(await c.call_tool("record_deal", {"id": "OPP-1", "stage": "demo", "outcome": "won"}))
            assert not d["created"] and [s["stage"] for s in d["stages"]] == ["discovery", "demo"] and d["closed_at"]
            unknown = error_text(await c.call_tool("record_deal", {"id": "OPP-2", "rep": "nobody"}))
            assert "unknown rep 'nobody'" in unknown and "upsert_rep" in unknown
            wrong_type = await c.call_tool("record_deal", {"id": "OPP-3", "amount": "lots"})
            assert wrong_type.is_error and "amount" in wrong_type.content[0].text
        assert coach.store.one("select count(*) n from reps")["n"] == 1

    anyio.run(main)


def test_upsert_rep_records_quota_and_attainment_per_period(server, coach):
    """Attainment through MCP: the quota and amount attained for a period feed ramp time and the
    quota attainment spread, exactly as `coachloop import reps` does."""
    from tools.metrics import compute_metrics

    async def main():
        async with client(server, "legacy") as c:
            r = structured(await c.call_tool("upsert_rep", {"name": "Priya Raman", "hire_date": "2026-01-05",
                                                           "period": "Mar 2026", "quota": 100000, "attained": 120000}))
            assert r["period_quota"] == {"rep_id": "priya-raman", "period": "2026-03", "quota": 100000.0, "attained": 120000.0}
            r = structured(await c.call_tool("upsert_rep", {"name": "Priya Raman", "period": "2026-03", "attained": 90000}))
            assert r["period_quota"]["quota"] == 100000.0 and r["period_quota"]["attained"] == 90000.0
            bad = error_text(await c.call_tool("upsert_rep", {"name": "Priya Raman", "attained": 5}))
            assert "needs a period" in bad

    anyio.run(main)
    rows = coach.store.query("select period, quota, attained from quotas")
    assert rows == [{"period": "2026-03", "quota": 100000.0, "attained": 90000.0}]
    att = compute_metrics(coach, names=["quota_attainment"])
    m = att["metrics"]["quota_attainment"]
    assert (m["rep_periods"], m["median"], m["at_or_above"]) == (1, 0.9, 0)


@pytest.mark.parametrize("mode", ERAS)
def test_resources_playbook_and_state(server, coach, mode):
    from store.reps import upsert_rep

    upsert_rep(coach.store, "Priya Raman", segment="mid-market")

    async def main():
        async with client(server, mode) as c:
            listed = {str(r.uri) for r in (await c.list_resources()).resources}
            for kind in ("scorecards", "scenarios", "paths", "certifications"):
                assert f"playbook://{kind}" in listed
                for art in coach.playbook.all(kind):
                    assert f"playbook://{kind}/{art.id}" in listed
                    text = (await c.read_resource(f"playbook://{kind}/{art.id}")).contents[0].text
                    assert text == art.text
                idx = read_json(await c.read_resource(f"playbook://{kind}"))
                assert [i["id"] for i in idx["items"]] == [a.id for a in coach.playbook.all(kind)]
            templates = {t.uri_template for t in (await c.list_resource_templates()).resource_templates}
            assert {"playbook://scenarios/{id}", "coachloop://reps/{rep}", "coachloop://calls/{call_id}"} <= templates
            pol = (await c.read_resource("playbook://policy")).contents[0].text
            assert pol == (coach.playbook_dir / "playbook.yaml").read_text()
            prof = read_json(await c.read_resource("coachloop://reps/priya-raman"))
            assert prof["rep"]["id"] == "priya-raman" and "open gap" in prof["summary"]
            roster = read_json(await c.read_resource("coachloop://reps"))
            assert [r["id"] for r in roster["reps"]] == ["priya-raman"]
            team = read_json(await c.read_resource("coachloop://metrics/team"))
            assert "metrics" in team
            from mcp.shared.exceptions import MCPError

            with pytest.raises(MCPError, match="unknown rep"):
                await c.read_resource("coachloop://reps/nobody")
            with pytest.raises(MCPError, match="unknown call"):
                await c.read_resource("coachloop://calls/999")
            with pytest.raises(MCPError, match="no-such"):
                await c.read_resource("playbook://scenarios/no-such")

    anyio.run(main)


@pytest.mark.parametrize("mode", ERAS)
def test_prompts(server, mode):
    async def main():
        async with client(server, mode) as c:
            names = {p.name: p for p in (await c.list_prompts()).prompts}
            assert {"coach_rep", "review_call", "rollout_playbook_change"} <= set(names)
            g = await c.get_prompt("coach_rep", {"rep": "priya-raman"})
            text = g.messages[0].content.text
            assert "priya-raman" in text and "assign_path" in text and "attribute" in text
            g = await c.get_prompt("review_call", {"call_id": "7"})
            assert "coachloop://calls/7" in g.messages[0].content.text
            g = await c.get_prompt("rollout_playbook_change", {"line": "budget_confirmed", "change": "ask budget before demo"})
            t = g.messages[0].content.text
            assert "budget_confirmed" in t and "playbook_write" in t and "validate_playbook" in t and "assign_path" in t

    anyio.run(main)


def _touch(coach, art, extra="\n<!-- edited -->\n"):
    p = coach.playbook_dir / art.path
    p.write_text(p.read_text() + extra)


def test_legacy_subscribe_updated_and_list_changed(server, coach):
    art = first_scenario(coach)
    uri = f"playbook://scenarios/{art.id}"
    other = coach.playbook.all("scenarios")[1]

    async def main():
        inbox = Inbox()
        async with client(server, "legacy", inbox) as c:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await c.subscribe_resource(uri)
            _touch(coach, art)
            coach.reload()
            await inbox.wait_for(lambda: uri in inbox.uris_updated())
            assert f"playbook://scenarios/{other.id}" not in inbox.uris_updated()  # only what was subscribed
            # the new text is served
            assert (await c.read_resource(uri)).contents[0].text.endswith("<!-- edited -->\n")
            # a file comes: list_changed
            new = coach.playbook_dir / "scenarios" / "brand-new.md"
            new.write_text(art.text.replace(f"id: {art.id}", "id: brand-new", 1))
            coach.reload()
            await inbox.wait_for(lambda: "notifications/resources/list_changed" in inbox.methods())
            assert "playbook://scenarios/brand-new" in {str(r.uri) for r in (await c.list_resources()).resources}
            # unsubscribe: no more updates for that URI
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await c.unsubscribe_resource(uri)
            before = len(inbox.uris_updated())
            _touch(coach, art, "\n<!-- again -->\n")
            coach.reload()
            new.unlink()
            coach.reload()  # a file goes: list_changed again (an event we can wait for)
            await inbox.wait_for(lambda: inbox.methods().count("notifications/resources/list_changed") >= 2)
            assert inbox.uris_updated()[before:].count(uri) == 0

    anyio.run(main)


def test_modern_listen_updated_and_list_changed(server, coach):
    art = first_scenario(coach)
    uri = f"playbook://scenarios/{art.id}"

    async def main():
        async with client(server, "auto") as c:
            assert c.protocol_version == "2026-07-28"
            async with c.listen(resource_subscriptions=[uri], resources_list_changed=True) as sub:
                _touch(coach, art)
                coach.reload()
                got = []
                with anyio.fail_after(5):
                    async for ev in sub:
                        got.append(ev)
                        if isinstance(ev, ResourceUpdated):
                            break
                assert ResourceUpdated(uri=uri) in got
                (coach.playbook_dir / "scenarios" / "another.md").write_text(art.text.replace(f"id: {art.id}", "id: another", 1))
                coach.reload()
                with anyio.fail_after(5):
                    async for ev in sub:
                        if isinstance(ev, ResourcesListChanged):
                            break

    anyio.run(main)


def test_reload_from_another_thread_reaches_subscribers(server, coach):
    """The watcher reloads on its own thread: delivery must hop onto the server's loop."""
    import threading

    art = first_scenario(coach)
    uri = f"playbook://scenarios/{art.id}"

    async def main():
        inbox = Inbox()
        async with client(server, "legacy", inbox) as c:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await c.subscribe_resource(uri)
            _touch(coach, art)
            t = threading.Thread(target=coach.reload)
            t.start()
            await inbox.wait_for(lambda: uri in inbox.uris_updated())
            t.join(5)

    anyio.run(main)


def test_playbook_write_policy(server, coach):
    pol = coach.playbook_dir / "playbook.yaml"
    text = pol.read_text()

    async def main():
        async with client(server) as c:
            bad = error_text(await c.call_tool("playbook_write", {"path": "playbook.yaml", "text": text + "\nteam_size: 9\n"}))
            assert "team_size" in bad and pol.read_text() == text
            bad = error_text(await c.call_tool("playbook_write", {"path": "playbook.yaml", "text": text.replace("window: 5", "window: 0", 1)}))
            assert "window" in bad and pol.read_text() == text
            new = text.replace("team: Starter sales team", "team: Mid-market West", 1)
            assert new != text
            ok = structured(await c.call_tool("playbook_write", {"path": "playbook.yaml", "text": new}))
            assert ok["kind"] == "policy" and ok["uri"] == "playbook://policy" and ok["saved"]
            assert coach.playbook.policy.team == "Mid-market West"
            assert (await c.read_resource("playbook://policy")).contents[0].text == new

    anyio.run(main)
