"""The whole coaching loop driven through the MCP tools, in memory, with the real `mcp.Client`:
score calls -> the loop opens a gap and assigns practice -> attribute states it -> gate blocked ->
roleplay fails then passes (certified, gate lifted) -> a better live call closes the gap; plus
generate_scenario, assign_path, certify, lift_gate, override_verdict, rescore and score_batch
(with progress notifications), metrics, and the resources for calls and reps."""
from __future__ import annotations

import json

import anyio
import pytest

from mcp_types import PromptReference, ResourceTemplateReference

from mcp_helpers import ERAS, client, error_text, read_json, structured
from server.demo_data import DEMO_DATA
from server.mcp import build_server

MANIFEST = json.loads((DEMO_DATA / "calls.json").read_text())
SCRIPT = json.loads((DEMO_DATA / "practice.json").read_text())
LINE = "budget_confirmed"
REP = "priya-raman"
MAX_CHARS = 40_000  # ~10k tokens: every structured result must stay well under it


def small(result) -> dict:
    data = structured(result)
    assert len(json.dumps(data)) < MAX_CHARS
    return data


def score_args(entry: dict) -> dict:
    return {
        "transcript": (DEMO_DATA / entry["file"]).read_text(), "rep": entry["rep"], "segment": "mid-market",
        "deal": entry["deal"], "stage": entry["stage"], "time": entry.get("at"), "source_name": entry["file"],
    }


@pytest.fixture
def loop_coach(playbook_dir, tmp_path):
    from test_loop_e2e import trust_budget_line  # labelled rubric tests so the gate blocks (not shadow)
    from tools.context import Coach

    trust_budget_line(playbook_dir)
    c = Coach(playbook_dir, tmp_path / "mcp-loop.db")
    yield c
    c.close()


def test_whole_loop_through_mcp_tools(loop_coach):
    coach = loop_coach
    server = build_server(coach)

    logs: list = []

    async def on_log(params):
        logs.append(params)

    async def main():
        async with client(server, "legacy", logging_callback=on_log) as c:
            for r in MANIFEST["reps"]:
                small(await c.call_tool("upsert_rep", {"name": r["name"], "team": r["team"], "segment": r["segment"], "hire_date": r["hire_date"]}))
            scored = {}
            for e in sorted(MANIFEST["calls"], key=lambda e: e["at"]):
                if e["outcome"] != "open":
                    small(await c.call_tool("record_deal", {"id": e["deal"], "rep": e["rep"], "outcome": e["outcome"]}))
                scored[e["file"]] = small(await c.call_tool("score", score_args(e)))
            weak = [scored[f] for f in ("03-priya-brightwater-pest.txt", "04-priya-kestrel-electrical.vtt", "05-priya-halden-home.txt")]
            for s in weak:
                budget = next(ln for ln in s["lines"] if ln["id"] == LINE)
                assert budget["verdict"] == "fail" and LINE in s["failed"] and budget["title"]
                assert s["uri"] == f"coachloop://calls/{s['call_id']}"
            good = scored["01-priya-harbor-plumbing.txt"]
            passed = next(ln for ln in good["lines"] if ln["id"] == LINE)
            assert passed["verdict"] == "pass" and "budget" in passed["quote"].lower()
            # the loop reacted on the third weak call: gap opened and remediated, reported in the score result
            kinds = [a["kind"] for a in weak[-1]["loop"]]
            assert "gap.opened" in kinds and "gap.remediated" in kinds, weak[-1]["loop"]
            assert "Practice was assigned" in weak[-1]["next_action"]
            # ... and told the client's log as it happened
            assert any(p.level == "info" and "opened gap" in str(p.data) for p in logs), logs
            # same transcript again: stored once
            again = small(await c.call_tool("score", score_args(MANIFEST["calls"][0])))
            assert again["duplicate"] and again["call_id"] == scored[MANIFEST["calls"][0]["file"]]["call_id"]

            # -- attribute: the gap, stated with numbers and calls
            att = small(await c.call_tool("attribute", {"rep": "Priya Raman"}))
            (gap,) = [g for g in att["gaps"] if g["line"] == LINE]
            ids = [w["call_id"] for w in weak]
            assert gap["statement"].startswith(f"Skipped budget_confirmed on 3 of the last 5 mid-market discovery calls (calls {ids[0]}, {ids[1]}, {ids[2]})")
            assert gap["call_ids"] == ids and not gap["new"] and att["scope"] == REP
            team = small(await c.call_tool("attribute", {}))
            assert team["scope"] == "team" and any(g["gap_id"] == gap["gap_id"] for g in team["gaps"])
            profile = read_json(await c.read_resource(f"coachloop://reps/{REP}"))
            assert profile["open_gaps"][0]["statement"] == gap["statement"]
            budget_line = next(ln for ln in profile["lines"] if ln["line"] == LINE)
            assert budget_line["recent"].endswith("FFF")
            call = read_json(await c.read_resource(f"coachloop://calls/{ids[0]}"))
            assert call["rep"] == REP and any(v["line"] == LINE and v["verdict"] == "fail" for v in call["verdicts"])

            # -- gate blocked
            rem = next(a for a in weak[-1]["loop"] if a["kind"] == "gap.remediated")
            activity = rem["gates"][0]["activity"]
            chk = small(await c.call_tool("gate_check", {"rep": REP, "activity": activity}))
            assert chk["allowed"] is False and chk["status"] == "blocked" and chk["action"]
            assert small(await c.call_tool("gate_check", {"rep": REP, "activity": "not-a-gated-thing"}))["status"] == "not_gated"
            assert "unknown rep" in error_text(await c.call_tool("gate_check", {"rep": "nobody", "activity": "dial"}))

            # -- assign_path: the gap already has its assignment (never twice)
            asg = small(await c.call_tool("assign_path", {"rep": REP, "gap_id": gap["gap_id"]}))
            assert asg["duplicate"] and asg["scenarios"] and asg["certifications"]
            assert "give gap_id" in error_text(await c.call_tool("assign_path", {"rep": REP}))

            # -- generate_scenario: a harder one from the same calls
            gen = small(await c.call_tool("generate_scenario", {"gap_id": gap["gap_id"], "difficulty": 2}))
            assert gen["line"] == LINE and sorted(gen["call_ids"]) == sorted(ids) and gen["uri"].startswith("playbook://scenarios/")
            assert (coach.playbook_dir / gen["path"]).is_file() and gen["buyer"] and gen["opening"]

            # -- practice: fail, then pass
            async def practise(kind: str, scenario: str) -> dict:
                st = small(await c.call_tool("roleplay_start", {"rep": REP, "scenario": scenario}))
                assert st["buyer"] and LINE in st["targets"] and st["session_id"]
                for text in SCRIPT[kind]:
                    rr = small(await c.call_tool("roleplay_reply", {"session_id": st["session_id"], "text": text}))
                    assert rr["buyer"]
                return small(await c.call_tool("roleplay_end", {"session_id": st["session_id"]}))

            ended = await practise("fail", asg["scenarios"][0])
            assert not ended["passed"] and LINE in ended["failed_lines"]
            assert [a["kind"] for a in ended["loop"] if a["kind"].startswith("certification.")] == ["certification.failed"]
            assert small(await c.call_tool("gate_check", {"rep": REP, "activity": activity}))["status"] == "blocked"
            nxt = small(await c.call_tool("assign_path", {"rep": REP, "gap_id": gap["gap_id"]}))
            ended = await practise("pass", nxt["scenarios"][0])
            assert ended["passed"] and any(v["id"] == LINE and v["verdict"] == "pass" and v["quote"] for v in ended["verdicts"])
            assert [a["kind"] for a in ended["loop"] if a["kind"].startswith("certification.")] == ["certification.passed"]
            cert = small(await c.call_tool("certify", {"session_id": ended["session_id"]}))  # already judged: the stored result
            assert cert["status"] == "passed" and cert["certification_id"]
            assert small(await c.call_tool("gate_check", {"rep": REP, "activity": activity}))["allowed"] is True
            assert "unknown practice session" in error_text(await c.call_tool("certify", {"session_id": "ps-nope"}))
            assert ended["session_id"] in error_text(await c.call_tool("roleplay_reply", {"session_id": ended["session_id"], "text": "hello?"}))

            # -- a better live call closes the gap
            after = small(await c.call_tool("score", score_args(MANIFEST["after"])))
            assert any(a["kind"] == "verify.closed" for a in after["loop"]), after["loop"]
            assert not [g for g in small(await c.call_tool("attribute", {"rep": REP}))["gaps"] if g["line"] == LINE]

            # -- manual gate and lift_gate
            from tools.gates import block

            block(coach, REP, "demo", by="Manager Mo", reason="ride-along first")
            assert small(await c.call_tool("gate_check", {"rep": REP, "activity": "demo"}))["status"] == "blocked"
            lifted = small(await c.call_tool("lift_gate", {"rep": REP, "activity": "demo", "by": "Manager Mo", "reason": "ride-along done"}))
            assert [g["activity"] for g in lifted["lifted"]] == ["demo"]
            assert small(await c.call_tool("gate_check", {"rep": REP, "activity": "demo"}))["allowed"] is True
            assert "no open gate" in error_text(await c.call_tool("lift_gate", {"rep": REP, "activity": "demo", "by": "Mo", "reason": "x"}))

            # -- override a verdict
            ov = small(await c.call_tool("override_verdict", {"call_id": ids[0], "line": LINE, "verdict": "pass", "reason": "asked in the follow-up email", "by": "Mo"}))
            assert ov["before"] == "fail" and ov["verdict"] == "pass" and ov["engine_verdict"] == "fail"
            v = next(v for v in read_json(await c.read_resource(f"coachloop://calls/{ids[0]}"))["verdicts"] if v["line"] == LINE)
            assert v["verdict"] == "pass" and v["overridden_by"] == "Mo" and v["engine_verdict"] == "fail"
            bad = await c.call_tool("override_verdict", {"call_id": ids[0], "line": LINE, "verdict": "maybe", "reason": "x"})
            assert bad.is_error

            # -- metrics
            met = small(await c.call_tool("metrics", {}))
            assert met["metrics"] and all(m["method"] for m in met["metrics"])
            one = small(await c.call_tool("metrics", {"names": [met["metrics"][0]["name"]], "rep": REP, "detail": "detailed"}))
            assert [m["name"] for m in one["metrics"]] == [met["metrics"][0]["name"]]
            assert "unknown metric" in error_text(await c.call_tool("metrics", {"names": ["nope"]}))
            team = read_json(await c.read_resource("coachloop://metrics/team"))
            assert team["metrics"]

            # -- logging/setLevel: above info, the loop's info lines are no longer sent
            await c.set_logging_level("warning")
            n = len(logs)
            small(await c.call_tool("score", {**score_args(MANIFEST["calls"][1]), "transcript": (DEMO_DATA / MANIFEST["calls"][1]["file"]).read_text() + "\n"}))
            assert len(logs) == n

            # -- completions for prompt arguments and resource templates
            comp = await c.complete(PromptReference(type="ref/prompt", name="coach_rep"), {"name": "rep", "value": "pri"})
            assert comp.completion.values == [REP]
            comp = await c.complete(ResourceTemplateReference(type="ref/resource", uri="coachloop://calls/{call_id}"), {"name": "call_id", "value": ""})
            assert str(ids[0]) in comp.completion.values
            comp = await c.complete(PromptReference(type="ref/prompt", name="rollout_playbook_change"), {"name": "line", "value": "budg"})
            assert comp.completion.values == [LINE]
            comp = await c.complete(ResourceTemplateReference(type="ref/resource", uri="playbook://scenarios/{id}"), {"name": "id", "value": gen["scenario_id"][:8]})
            assert gen["scenario_id"] in comp.completion.values
            comp = await c.complete(PromptReference(type="ref/prompt", name="unknown"), {"name": "x", "value": ""})
            assert comp.completion.values == []

    anyio.run(main)


@pytest.mark.parametrize("mode", ERAS)
def test_rescore_and_score_batch_send_progress(loop_coach, mode):
    coach = loop_coach
    server = build_server(coach)
    calls = sorted(MANIFEST["calls"], key=lambda e: e["at"])

    async def main():
        async with client(server, mode) as c:
            progress: list[tuple] = []

            async def on_progress(p, total, message):
                progress.append((p, total, message))

            items = [score_args(e) for e in calls[:3]]
            items.append({**score_args(calls[0])})  # a duplicate
            items.append({"transcript": "nothing that looks like a transcript", "rep": "Priya Raman"})
            batch = small(await c.call_tool("score_batch", {"items": items}, progress_callback=on_progress))
            assert batch["scored"] == 3 and batch["duplicates"] == 1 and batch["errors"] == 1
            assert batch["results"][4]["ok"] is False and batch["results"][4]["error"]
            assert [p[0] for p in progress] == [1, 2, 3, 4, 5] and all(p[1] == 5 for p in progress)

            progress.clear()
            rs = small(await c.call_tool("rescore", {"scorecard": "discovery", "force": True}, progress_callback=on_progress))
            assert rs["calls"] == 3 and rs["rescored"] == 3 and rs["flips_total"] == 0
            assert progress and progress[-1][0] == progress[-1][1] == 3
            # change the scorecard: budget_confirmed no longer accepts anything -> flips
            f = coach.playbook_dir / "scorecards" / "discovery.yaml"
            text = f.read_text()
            assert "  - id: budget_confirmed\n" in text
            f.write_text(text.replace("  - id: budget_confirmed\n", "  - id: budget_confirmed\n    weight: 2\n", 1))
            coach.reload()
            rs = small(await c.call_tool("rescore", {"scorecard": "discovery"}))
            assert rs["rescored"] == 3 and rs["version"] == coach.playbook.version_of("scorecards", "discovery")
            assert "unknown scorecard" in error_text(await c.call_tool("rescore", {"scorecard": "nope"}))

    anyio.run(main)


def test_score_errors_are_tool_errors(coach):
    server = build_server(coach)

    async def main():
        async with client(server, "auto") as c:
            r = await c.call_tool("score", {"transcript": "", "rep": "x"})
            assert r.is_error
            r = await c.call_tool("score", {"transcript": "Priya Raman: hi\nBuyer Bob: hello\n", "rep": "Priya Raman", "scorecard": "nope"})
            assert "nope" in error_text(r)
            r = await c.call_tool("score", {"transcript": "Priya Raman: hi\nBuyer Bob: hello\n", "rep": "Priya Raman", "time": "not a date"})
            assert "occurred_at" in error_text(r) or "time" in error_text(r) or "date" in error_text(r)
            r = await c.call_tool("score", {"transcript": "Priya Raman: hi\nBuyer Bob: hello\n", "rep": "Priya Raman", "format": "vtt"})
            assert "WEBVTT" in error_text(r)
            r = await c.call_tool("scroe", {})
            assert "unknown tool 'scroe'" in error_text(r) and "score_batch" in error_text(r)
            r = await c.call_tool("score", {"rep": "x"})  # missing the transcript
            assert r.is_error and "transcript" in r.content[0].text
            ok = small(await c.call_tool("score", {"transcript": "Priya Raman: Hi, what budget have you set aside for this?\nBuyer Bob: About 20k.\n", "rep": "Priya Raman"}))
            assert ok["rep"] == REP and ok["lines"]

    anyio.run(main)


def test_loop_actions_reported_when_another_runner_handled_the_event(loop_coach, monkeypatch):
    """In `coachloop serve` the live worker may run the orchestrator before the tool does: the
    score and roleplay_end results must still say what the loop did (read back from the log)."""
    from server.orchestrator import Orchestrator

    real = Orchestrator.run_pending

    def other_runner_first(self, **kw):
        real(self, **kw)  # the worker handled everything ...
        return []  # ... so the tool's own run finds nothing left to do

    monkeypatch.setattr(Orchestrator, "run_pending", other_runner_first)
    server = build_server(loop_coach)

    async def main():
        async with client(server, "legacy") as c:
            for r in MANIFEST["reps"]:
                await c.call_tool("upsert_rep", {"name": r["name"], "segment": r["segment"]})
            last = None
            for e in sorted(MANIFEST["calls"], key=lambda e: e["at"]):
                if e["outcome"] != "open":
                    await c.call_tool("record_deal", {"id": e["deal"], "rep": e["rep"], "outcome": e["outcome"]})
                res = small(await c.call_tool("score", score_args(e)))
                if e["file"].startswith("05"):
                    last = res
            kinds = [a["kind"] for a in last["loop"]]
            assert "gap.opened" in kinds and "gap.remediated" in kinds, last["loop"]
            opened = next(a for a in last["loop"] if a["kind"] == "gap.opened")
            assert opened["text"].startswith(f"opened gap {opened['gap_id']}: Skipped budget_confirmed")
            rem = next(a for a in last["loop"] if a["kind"] == "gap.remediated")
            assert rem["scenario_id"] and rem["path_id"] and rem["gates"]
            st = small(await c.call_tool("roleplay_start", {"rep": REP, "scenario": rem["scenario_id"]}))
            for text in SCRIPT["pass"]:
                await c.call_tool("roleplay_reply", {"session_id": st["session_id"], "text": text})
            ended = small(await c.call_tool("roleplay_end", {"session_id": st["session_id"]}))
            assert ended["passed"]
            assert "certification.passed" in [a["kind"] for a in ended["loop"]], ended["loop"]
            assert "gate.lifted" in [a["kind"] for a in ended["loop"]]

    anyio.run(main)


def test_a_crash_inside_a_tool_is_a_tool_error_and_the_session_goes_on(coach, monkeypatch):
    import tools.calls

    def boom(*a, **kw):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(tools.calls, "score_call", boom)
    server = build_server(coach)

    async def main():
        async with client(server, "legacy") as c:
            r = await c.call_tool("score", {"transcript": "Priya Raman: hi\nBuyer Bob: hello\n"})
            msg = error_text(r)
            assert "internal error" in msg and "disk on fire" in msg and "stderr" in msg
            assert small(await c.call_tool("validate_playbook", {}))["playbook"] == str(coach.playbook_dir)  # still serving

    anyio.run(main)


def test_attribute_opens_the_gap_and_the_loop_remediates_it(loop_coach):
    """Calls stored without the loop running (e.g. imported): `attribute` finds the pattern, records
    the gap once, and reports the practice and gates the loop set for it."""
    from store.deals import record_deal
    from store.reps import upsert_rep
    from tools.calls import score_call

    coach = loop_coach
    for r in MANIFEST["reps"]:
        upsert_rep(coach.store, r["name"], segment=r["segment"])
    for e in sorted(MANIFEST["calls"], key=lambda e: e["at"]):
        if e["outcome"] != "open":
            record_deal(coach.store, e["deal"], rep=e["rep"], outcome=e["outcome"])
        score_call(coach, (DEMO_DATA / e["file"]).read_text(), rep=e["rep"], segment="mid-market", deal_id=e["deal"],
                   stage=e["stage"], occurred_at=e["at"], source_name=e["file"])
    server = build_server(coach)

    async def main():
        async with client(server, "auto") as c:
            att = small(await c.call_tool("attribute", {"rep": REP}))
            (gap,) = [g for g in att["gaps"] if g["line"] == LINE]
            assert gap["new"] and "new" in att["summary"]
            rem = [a for a in att["loop"] if a["kind"] == "gap.remediated" and a["gap_id"] == gap["gap_id"]]
            assert rem and rem[0]["gates"], att["loop"]
            again = small(await c.call_tool("attribute", {"rep": REP}))
            assert [g["gap_id"] for g in again["gaps"] if g["line"] == LINE] == [gap["gap_id"]]
            assert not any(g["new"] for g in again["gaps"]) and again["loop"] == []

    anyio.run(main)
