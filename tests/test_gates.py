"""Certification gates: trusted lines block, untrusted lines run in shadow mode, manual lift is
logged, gate_check is a single query. Also certify: pass lifts, fail keeps and assigns the next
practice, attempts run out."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopkit import CALL_A, CALL_B, PRIYA, add_call, add_gap, add_rep, ensure_discovery, write_budget_rubric_tests as _rubric_tests
from store.db import StoreError
from tools import gates as gates_mod
from tools.certify import certify
from tools.context import Coach
from tools.gates import apply_gates_for_gap, block, clear_trust_cache, gate_check, lift, line_trust, list_gates
from tools.paths import assign_path, list_assignments
from tools.roleplay import end_session, reply, start_session
from tools.scenario import generate_scenario

def _setup(playbook_dir: Path, tmp_path: Path, agree: bool = True, attempts: int | None = None):
    ensure_discovery(playbook_dir)
    _rubric_tests(playbook_dir, agree)
    if attempts is not None:
        cert = playbook_dir / "certifications" / "qualification.yaml"
        cert.write_text(cert.read_text().replace("attempts: 3", f"attempts: {attempts}"))
    clear_trust_cache()
    c = Coach(playbook_dir, tmp_path / "gates.db")
    add_rep(c.store, "priya-raman", PRIYA)
    a = add_call(c.store, "priya-raman", PRIYA, CALL_A, {"budget_confirmed": "fail"})
    b = add_call(c.store, "priya-raman", PRIYA, CALL_B, {"budget_confirmed": "fail"})
    gap = add_gap(c.store, "priya-raman", "budget_confirmed", [a, b])
    return c, gap


@pytest.fixture
def trusted(playbook_dir, tmp_path):
    c, gap = _setup(playbook_dir, tmp_path, agree=True)
    generate_scenario(c, gap)
    asg = assign_path(c, "priya-raman", gap_id=gap)
    gates = apply_gates_for_gap(c, gap)
    yield c, gap, asg, gates
    c.close()


def _events(coach, type_: str) -> list[dict]:
    rows = coach.store.query("select * from events where type = ? order by id", (type_,))
    for r in rows:
        r["data"] = json.loads(r["data"])
    return rows


def _practice(coach, scenario_id: str, lines: list[str]) -> str:
    s = start_session(coach, "priya-raman", scenario_id)
    for text in lines:
        reply(coach, s["session_id"], text)
    end_session(coach, s["session_id"])
    return s["session_id"]


BAD = ["Our platform logs every call into the CRM.", "Managers also get a dashboard.", "I'll send you the deck."]
GOOD = ["What's going on with your pipeline data?", "What budget have you set aside for fixing this?"]


def test_trusted_line_blocks_the_certifications_activities(trusted):
    coach, gap, asg, gates = trusted
    trust = line_trust(coach, coach.playbook.certification("qualification"), "budget_confirmed")
    assert trust["trusted"] is True and trust["kappa"] == 1.0
    assert {g["activity"] for g in gates} == {"demo", "renewal_call"}
    assert {g["status"] for g in gates} == {"blocked"}
    assert all(g["certification_id"] == "qualification" and g["gap_id"] == gap for g in gates)
    assert len(_events(coach, "gate.blocked")) == 2
    r = gate_check(coach, "priya-raman", "demo")
    assert r["allowed"] is False and r["status"] == "blocked"
    assert "budget_confirmed" in r["reason"] and "qualification" in r["reason"]
    assert asg["scenario_ids"][0] in r["action"] and "practice start" in r["action"]
    assert gate_check(coach, "priya-raman", "dial")["allowed"] is True  # not gated by qualification
    # applying again changes nothing
    again = apply_gates_for_gap(coach, gap)
    assert [g["id"] for g in again] == [g["id"] for g in gates] and all(g["existing"] for g in again)
    assert len(_events(coach, "gate.blocked")) == 2


def test_untrusted_line_runs_in_shadow_mode(playbook_dir, tmp_path):
    coach, gap = _setup(playbook_dir, tmp_path, agree=False)
    trust = line_trust(coach, coach.playbook.certification("qualification"), "budget_confirmed")
    assert trust["trusted"] is False and trust["kappa"] < 0.6
    gates = apply_gates_for_gap(coach, gap)
    assert {g["status"] for g in gates} == {"shadow"}
    assert "shadow mode" in gates[0]["reason"] and "kappa" in gates[0]["reason"]
    assert len(_events(coach, "gate.shadow")) == 2 and not _events(coach, "gate.blocked")
    r = gate_check(coach, "priya-raman", "demo")
    assert r["allowed"] is True and r["status"] == "shadow" and len(r["shadow"]) == 1
    assert [g["status"] for g in list_gates(coach, "priya-raman")] == ["shadow", "shadow"]
    coach.close()


def test_line_without_rubric_tests_is_not_trusted(playbook_dir, tmp_path):
    coach, gap = _setup(playbook_dir, tmp_path)
    trust = line_trust(coach, coach.playbook.certification("discovery-core"), "agenda_set")
    assert trust["trusted"] is False and "no rubric tests" in trust["reason"]
    coach.close()


def test_gate_check_is_one_query_without_reload_or_tests(trusted, monkeypatch):
    coach, gap, _, _ = trusted

    def boom(*a, **k):
        raise AssertionError("gate_check must not reload the playbook or run rubric tests")

    monkeypatch.setattr(coach, "reload", boom)
    monkeypatch.setattr(gates_mod, "scorecard_trust", boom)
    monkeypatch.setattr(gates_mod, "_run_tests", boom)
    calls = []
    real = coach.store.query
    monkeypatch.setattr(coach.store, "query", lambda sql, params=(): calls.append(sql) or real(sql, params))
    assert gate_check(coach, "priya-raman", "demo")["allowed"] is False
    assert len(calls) == 1
    plan = coach.store.db.execute("explain query plan " + gates_mod._CHECK_SQL, ("demo", "priya-raman")).fetchall()
    detail = " ".join(str(tuple(r)) for r in plan)
    assert "USING INDEX" in detail.upper() or "PRIMARY KEY" in detail.upper()
    assert "SCAN g" not in detail and "SCAN gates" not in detail


def test_gate_check_unknown_rep_and_names(trusted):
    coach, *_ = trusted
    with pytest.raises(StoreError, match="unknown rep 'ghost'"):
        gate_check(coach, "ghost", "dial")
    assert gate_check(coach, "Priya Raman", "demo")["allowed"] is False  # by name
    r = gate_check(coach, "priya-raman", "coffee")
    assert r["allowed"] is True and r["status"] == "not_gated"


def test_manual_lift_is_logged_with_who_and_why(trusted):
    coach, gap, _, _ = trusted
    with pytest.raises(ValueError, match="reason"):
        lift(coach, "priya-raman", "demo", by="Sam Lead", reason="  ")
    with pytest.raises(ValueError, match="who"):
        lift(coach, "priya-raman", "demo", by="", reason="x")
    lifted = lift(coach, "priya-raman", "demo", by="Sam Lead", reason="shadowed two calls live, fine")
    assert [g["activity"] for g in lifted] == ["demo"] and lifted[0]["status"] == "lifted"
    assert lifted[0]["lifted_by"] == "Sam Lead" and lifted[0]["lift_reason"] == "shadowed two calls live, fine"
    ev = _events(coach, "gate.lifted")
    assert len(ev) == 1 and ev[0]["data"]["by"] == "Sam Lead" and ev[0]["data"]["manual"] is True
    assert ev[0]["data"]["reason"] == "shadowed two calls live, fine"
    assert gate_check(coach, "priya-raman", "demo")["allowed"] is True
    assert gate_check(coach, "priya-raman", "renewal_call")["allowed"] is False
    with pytest.raises(StoreError, match="no open gate on 'demo'"):
        lift(coach, "priya-raman", "demo", by="Sam Lead", reason="again")


def test_manual_block(trusted):
    coach, *_ = trusted
    g = block(coach, "priya-raman", "dial", by="Sam Lead", reason="listen to three calls first")
    assert g["status"] == "blocked" and gate_check(coach, "priya-raman", "dial")["allowed"] is False
    with pytest.raises(ValueError, match="not gated"):
        block(coach, "priya-raman", "coffee", by="Sam", reason="x")


def test_certify_fail_keeps_block_and_assigns_next_then_pass_lifts(trusted):
    coach, gap, asg, gates = trusted
    first = asg["scenario_ids"][0]
    sid = _practice(coach, first, BAD)
    r = certify(coach, sid)
    assert r["status"] == "failed" and r["attempt"] == 1 and r["certification_id"] == "qualification"
    assert r["certification_version"] == coach.playbook.version_of("certifications", "qualification")
    assert r["gap_id"] == gap and r["lines"] == [{"id": "budget_confirmed", "verdict": "fail"}]
    assert gate_check(coach, "priya-raman", "demo")["allowed"] is False
    nxt = r["next_assignment"]
    assert nxt["scenario_ids"] == ["practice-budget-confirmed"] and nxt["gap_id"] == gap and nxt["source"] == "retry"
    assert "practice-budget-confirmed" in gate_check(coach, "priya-raman", "demo")["action"]
    statuses = {a["assignment_id"]: a["status"] for a in list_assignments(coach, "priya-raman")}
    assert statuses[asg["assignment_id"]] == "failed" and statuses[nxt["assignment_id"]] == "assigned"
    assert len(_events(coach, "certification.failed")) == 1
    # idempotent per session
    again = certify(coach, sid)
    assert again["duplicate"] is True and again["status"] == "failed" and again["id"] == r["id"]
    assert coach.store.one("select count(*) n from certifications")["n"] == 1

    sid2 = _practice(coach, "practice-budget-confirmed", GOOD)
    row = coach.store.one("select assignment_id from practice_sessions where id = ?", (sid2,))
    assert row["assignment_id"] == nxt["assignment_id"]  # linked to the active assignment
    r2 = certify(coach, sid2)
    assert r2["status"] == "passed" and r2["attempt"] == 2 and r2["score"] == 1.0
    assert {g["activity"] for g in r2["lifted"]} == {"demo", "renewal_call"}
    assert gate_check(coach, "priya-raman", "demo")["allowed"] is True
    assert gate_check(coach, "priya-raman", "renewal_call")["allowed"] is True
    lifted = _events(coach, "gate.lifted")
    assert len(lifted) == 2 and all(e["data"]["by"] == "certification" and e["data"]["manual"] is False for e in lifted)
    assert len(_events(coach, "certification.passed")) == 1
    stored = coach.store.one("select * from certifications where session_id = ?", (sid2,))
    assert stored["status"] == "passed" and stored["gap_id"] == gap


def test_attempts_run_out_needs_manager(playbook_dir, tmp_path):
    coach, gap = _setup(playbook_dir, tmp_path, attempts=2)
    assign_path(coach, "priya-raman", gap_id=gap)
    apply_gates_for_gap(coach, gap)
    r1 = certify(coach, _practice(coach, "practice-budget-confirmed", BAD))
    assert r1["status"] == "failed" and r1["attempt"] == 1
    r2 = certify(coach, _practice(coach, r1["next_scenario"], BAD))
    assert r2["status"] == "needs_manager" and r2["attempt"] == 2 and r2["next_assignment"] is None
    assert "manager" in r2["reason"] and "below the pass mark" in r1["reason"]
    ev = _events(coach, "certification.needs_manager")
    assert len(ev) == 1 and ev[0]["data"]["attempts_allowed"] == 2
    chk = gate_check(coach, "priya-raman", "demo")
    assert chk["allowed"] is False and "manager" in chk["action"]
    coach.close()


def test_certify_errors(trusted):
    coach, *_ = trusted
    with pytest.raises(StoreError, match="unknown practice session"):
        certify(coach, "ps-nope")
    s = start_session(coach, "priya-raman", "practice-budget-confirmed")
    with pytest.raises(StoreError, match="end it first"):
        certify(coach, s["session_id"])


def test_reopened_gap_is_remediated_again_with_a_harder_scenario(trusted):
    coach, gap, asg, gates = trusted
    sid = _practice(coach, "practice-budget-confirmed", GOOD)
    assert certify(coach, sid)["status"] == "passed"
    assert gate_check(coach, "priya-raman", "demo")["allowed"] is True
    # the verifier reopens the gap after a missed live call: remediation runs again
    harder = generate_scenario(coach, gap, difficulty=2)
    assert harder["created"] and coach.playbook.scenario(harder["scenario_id"]).difficulty == 2
    asg2 = assign_path(coach, "priya-raman", gap_id=gap)
    assert asg2["duplicate"] is False and asg2["assignment_id"] != asg["assignment_id"]
    assert asg2["scenario_ids"][0] == harder["scenario_id"]
    new_gates = apply_gates_for_gap(coach, gap)
    assert {g["status"] for g in new_gates} == {"blocked"} and not any(g["existing"] for g in new_gates)
    assert {g["id"] for g in new_gates}.isdisjoint({g["id"] for g in gates})
    chk = gate_check(coach, "priya-raman", "demo")
    assert chk["allowed"] is False and harder["scenario_id"] in chk["action"]
    # attempts count afresh after the pass
    r = certify(coach, _practice(coach, harder["scenario_id"], BAD))
    assert r["status"] == "failed" and r["attempt"] == 1


def test_two_gaps_under_one_certification_each_need_their_own_practice(trusted):
    coach, gap, asg, gates = trusted
    a = add_call(coach.store, "priya-raman", PRIYA, CALL_B + [("Dana Whitfield", "Bye.")], {"decision_maker_identified": "fail"})
    gap2 = add_gap(coach.store, "priya-raman", "decision_maker_identified", [a])
    # no rubric test labels this line, so its gates are shadow ones; they still wait for their own practice
    g2 = apply_gates_for_gap(coach, gap2)
    assert {g["gap_id"] for g in g2} == {gap2} and not any(g["existing"] for g in g2)
    r = certify(coach, _practice(coach, "practice-budget-confirmed", GOOD))
    assert r["status"] == "passed"
    assert {g["gap_id"] for g in r["lifted"]} == {gap}
    left = list_gates(coach, "priya-raman", "active")
    assert {g["gap_id"] for g in left} == {gap2}


def test_practice_no_certification_covers_completes_its_assignment(playbook_dir, tmp_path):
    (playbook_dir / "certifications" / "qualification.yaml").unlink()
    coach, gap = _setup(playbook_dir, tmp_path)
    asg = assign_path(coach, "priya-raman", gap_id=gap)
    assert apply_gates_for_gap(coach, gap) == []  # nothing certifies the line: nothing to gate on
    r = certify(coach, _practice(coach, "practice-budget-confirmed", GOOD))
    assert r["status"] == "uncertified" and r["practice_passed"] is True and "no certification" in r["reason"]
    assert [a["status"] for a in list_assignments(coach, "priya-raman")] == ["passed"]
    assert asg["certifications"] == []
    coach.close()


def test_certify_is_one_transaction_against_a_second_process(trusted, playbook_dir, monkeypatch):
    """A second connection (another process) certifying the same session while the first is
    between its look for an earlier verdict and its insert: one certification row, the other
    caller gets it back as a duplicate."""
    import threading

    from tools import certify as certify_mod

    coach, gap, asg, _ = trusted
    sid = _practice(coach, asg["scenario_ids"][0], BAD)
    other = Coach(playbook_dir, coach.store.path)
    results: dict[str, dict] = {}
    real = certify_mod.q.certification_attempts

    def attempts_then_race(store, *a, **k):
        out = real(store, *a, **k)
        if store is coach.store and "other" not in results:
            t = threading.Thread(target=lambda: results.__setitem__("other", certify(other, sid)))
            t.start()
            t.join(0.5)  # bounded: with one transaction the other waits on the write lock until we commit
            results["other_started"] = {"done": not t.is_alive()}
            results["thread"] = t  # type: ignore[assignment]
        return out

    monkeypatch.setattr(certify_mod.q, "certification_attempts", attempts_then_race)
    mine = certify(coach, sid)
    results["thread"].join(30)  # type: ignore[union-attr]
    other.close()
    assert results["other_started"]["done"] is False  # it waited for our transaction
    assert coach.store.one("select count(*) n from certifications where session_id = ?", (sid,))["n"] == 1
    assert mine["duplicate"] is False and results["other"]["duplicate"] is True and results["other"]["id"] == mine["id"]
    assert len(_events(coach, "certification.failed")) == 1


def test_practice_events_carry_their_cause(trusted):
    """path.assigned -> practice.started -> practice.ended -> certification: each event names the one before."""
    coach, gap, asg, _ = trusted
    sid = _practice(coach, asg["scenario_ids"][0], BAD)
    r = certify(coach, sid, cause=_events(coach, "practice.ended")[-1]["id"])
    [assigned] = [e for e in _events(coach, "path.assigned") if e["subject"] == f"assignment:{asg['assignment_id']}"]
    [started] = _events(coach, "practice.started")
    [ended] = _events(coach, "practice.ended")
    [failed] = _events(coach, "certification.failed")
    assert started["cause_id"] == assigned["id"] and started["subject"] == f"session:{sid}"
    assert ended["cause_id"] == started["id"] and failed["cause_id"] == ended["id"]
    assert r["status"] == "failed"


def test_mcp_roster_counts_calls_gaps_and_gates_per_rep(trusted):
    from server.mcp.state import roster

    coach, gap, _, gates = trusted
    add_rep(coach.store, "jordan-lee", "Jordan Lee")
    by_id = {r["id"]: r for r in roster(coach)["reps"]}
    assert by_id["priya-raman"]["calls"] == 2 and by_id["priya-raman"]["open_gaps"] == 1
    assert by_id["priya-raman"]["active_gates"] == len(gates) > 0
    assert (by_id["jordan-lee"]["calls"], by_id["jordan-lee"]["open_gaps"], by_id["jordan-lee"]["active_gates"]) == (0, 0, 0)


def test_lifting_a_gate_lifted_meanwhile_logs_nothing_twice(trusted):
    from tools.gates import lift_gates
    from store import loop as q

    coach, _, _, _ = trusted
    rows = q.active_gates(coach.store, "priya-raman")  # read by two callers before either lifts
    first = lift_gates(coach, rows, by="Dana", reason="reviewed", manual=True)
    second = lift_gates(coach, rows, by="Sam", reason="also reviewed", manual=True)
    assert len(first) == len(rows) > 0 and second == []
    assert len(_events(coach, "gate.lifted")) == len(rows)
    assert {g["lifted_by"] for g in list_gates(coach, "priya-raman")} == {"Dana"}
