"""The orchestrator's event cursor, exactly-once transitions, crash-resume, and verification.

Remediation is replaced here by a small fake that writes a row and an event inside the
orchestrator's transaction, so these tests pin the orchestrator's own guarantees; the end-to-end
test (tests/test_loop_e2e.py) runs the real remediation modules.
"""
from __future__ import annotations

import pytest

import server.orchestrator as orch_mod
from server.orchestrator import CURSOR_KEY, Orchestrator, OrchestratorError
from store.db import dumps, now_iso
from loop_data import add_call, add_rep, all_pass, light_coach
from tools import verify as verify_mod
from tools.verify import verify_call


@pytest.fixture
def coach(tmp_path):
    c = light_coach(tmp_path)
    yield c
    c.close()


class FakeRemediation:
    def __init__(self, coach, fail_times=0):
        self.coach, self.fail_times, self.calls = coach, fail_times, []

    def __call__(self, coach, gap_id, *, difficulty=None, cause=None):
        store = coach.store
        gap = store.one("select * from gaps where id = ?", (gap_id,))
        with store.transaction() as db:
            db["assignments"].insert({"rep_id": gap["rep_id"], "gap_id": gap_id, "status": "assigned", "source": "gap",
                                      "scenario_ids": "[]", "artifact_versions": "{}", "created_at": now_iso()})
            aid = db.execute("select last_insert_rowid()").fetchone()[0]
            store.event("path.assigned", rep_id=gap["rep_id"], subject=f"assignment:{aid}", data={"gap_id": gap_id})
            if self.fail_times:
                self.fail_times -= 1
                raise RuntimeError("disk on fire (simulated crash mid-remediation)")
        self.calls.append((gap_id, difficulty))
        return {"feedback": {"text": f"feedback for gap {gap_id}"}, "scenario": {"scenario_id": f"gap-{gap_id}", "path": f"scenarios/gap-{gap_id}.md"},
                "assignment": {"assignment_id": aid, "path_id": "p"}, "gates": [{"activity": "dial", "status": "blocked"}]}


@pytest.fixture
def fake(coach, monkeypatch):
    f = FakeRemediation(coach)
    monkeypatch.setattr(orch_mod, "remediate_gap", f)
    monkeypatch.setattr(verify_mod, "remediate_gap", f)
    return f


def weak_calls(store, rep="ana", n=3, line="budget_confirmed"):
    add_rep(store, rep)
    return [add_call(store, rep, all_pass(**{line: "fail"})) for _ in range(n)]


def count(store, sql, *params):
    return store.one(sql, params)["n"]


def opened_gap(coach):
    """The weak calls scored and the loop run once: (store, orchestrator, the gap it opened)."""
    s = coach.store
    weak_calls(s)
    o = Orchestrator(coach)
    o.run_pending()
    return s, o, s.one("select * from gaps")


def test_run_pending_opens_and_remediates_once(coach, fake):
    s = coach.store
    weak_calls(s)
    o = Orchestrator(coach)
    actions = o.run_pending()
    kinds = [a["kind"] for a in actions]
    assert kinds.count("gap.opened") == 1 and kinds.count("gap.remediated") == 1
    opened = next(a for a in actions if a["kind"] == "gap.opened")
    assert "Skipped budget_confirmed on 3 of the last 3" in opened["text"]
    assert o.cursor == s.one("select max(id) m from events")["m"]
    assert o.run_pending() == []
    assert count(s, "select count(*) n from gaps") == 1
    assert count(s, "select count(*) n from assignments") == 1
    assert fake.calls == [(1, None)]
    # the cursor lives in the meta table
    assert s.one("select value from meta where key = ?", (CURSOR_KEY,))["value"] == str(o.cursor)


def test_every_event_names_its_cause(coach, fake):
    s = coach.store
    weak_calls(s)
    Orchestrator(coach).run_pending()
    ev = {e["type"]: e for e in s.events()}
    gap_opened, remediated, assigned = ev["gap.opened"], ev["gap.remediated"], ev["path.assigned"]
    third_call = s.one("select id from events where type='call.scored' order by id desc limit 1")["id"]
    assert gap_opened["cause_id"] == third_call
    assert remediated["cause_id"] == gap_opened["id"]
    # an event a capability appended without a cause is given the triggering event
    assert assigned["cause_id"] == gap_opened["id"]


def test_crash_mid_transition_resumes_without_doing_anything_twice(coach, monkeypatch):
    s = coach.store
    f = FakeRemediation(coach, fail_times=1)
    monkeypatch.setattr(orch_mod, "remediate_gap", f)
    weak_calls(s)
    o = Orchestrator(coach)
    with pytest.raises(OrchestratorError, match="disk on fire"):
        o.run_pending()
    # the gap transition committed; the remediation transition rolled back whole, cursor before it
    assert count(s, "select count(*) n from gaps") == 1
    assert count(s, "select count(*) n from assignments") == 0
    assert count(s, "select count(*) n from events where type = 'path.assigned'") == 0
    gap_opened = s.one("select id from events where type = 'gap.opened'")["id"]
    assert o.cursor == gap_opened - 1
    # restart: a new orchestrator on the same database picks up where it stopped
    actions = Orchestrator(coach).run_pending()
    assert [a["kind"] for a in actions][:1] == ["gap.remediated"]
    assert count(s, "select count(*) n from gaps") == 1
    assert count(s, "select count(*) n from assignments") == 1
    assert count(s, "select count(*) n from events where type = 'gap.remediated'") == 1
    assert count(s, "select count(*) n from events where type = 'gap.opened'") == 1
    assert Orchestrator(coach).run_pending() == []


def test_crash_inside_attribution_rolls_back_the_gap(coach, fake, monkeypatch):
    s = coach.store
    weak_calls(s)
    real = orch_mod.attribute
    state = {"n": 0}

    def flaky(*a, **kw):
        out = real(*a, **kw)  # writes the gap and gap.opened ...
        state["n"] += 1
        if state["n"] == 3:  # ... on the third call, then the process "dies"
            raise RuntimeError("killed")
        return out

    monkeypatch.setattr(orch_mod, "attribute", flaky)
    with pytest.raises(OrchestratorError):
        Orchestrator(coach).run_pending()
    assert count(s, "select count(*) n from gaps") == 0
    assert count(s, "select count(*) n from events where type = 'gap.opened'") == 0
    Orchestrator(coach).run_pending()
    assert count(s, "select count(*) n from gaps") == 1
    assert count(s, "select count(*) n from events where type = 'gap.opened'") == 1
    assert len(fake.calls) == 1


def test_poison_event_is_skipped_after_max_attempts(coach, monkeypatch):
    s = coach.store
    add_rep(s, "ana")
    s.event("call.scored", rep_id="ana", subject="call:999")  # a call that does not exist
    o = Orchestrator(coach, max_attempts=2)
    with pytest.raises(OrchestratorError, match="call 999"):
        o.run_pending()
    actions = o.run_pending()
    assert actions[0]["kind"] == "skipped"
    skipped = s.one("select * from events where type = 'orchestrator.skipped'")
    assert skipped["subject"] == "event:1" and skipped["cause_id"] == 1
    assert o.run_pending() == []


def test_practice_calls_and_other_events_are_passed_over(coach, fake):
    s = coach.store
    add_rep(s, "ana")
    for _ in range(4):
        add_call(s, "ana", all_pass(budget_confirmed="fail"), live=0)
    s.event("rep.updated", rep_id="ana")
    o = Orchestrator(coach)
    assert o.run_pending() == []
    assert o.cursor == s.one("select max(id) m from events")["m"]


def certify_row(store, gap_id, rep="ana", status="passed"):
    with store.transaction() as db:
        db["certifications"].insert({"rep_id": rep, "certification_id": "budget-cert", "gap_id": gap_id, "status": status,
                                     "session_id": f"s{gap_id}", "created_at": now_iso(), "attempt": 1})
        store.event(f"certification.{status}", rep_id=rep, subject=f"gap:{gap_id}")


def test_verification_closes_only_after_certification(coach, fake):
    s, o, gap = opened_gap(coach)
    # a pass before the rep is ready (no certification, no passed practice) does not count
    early = add_call(s, "ana", all_pass())
    acts = o.run_pending()
    assert [a["kind"] for a in acts] == ["verify.early-pass"]
    assert s.one("select status, verify_passes from gaps")["status"] == "open"
    certify_row(s, gap["id"])
    o.run_pending()
    better = add_call(s, "ana", all_pass())
    acts = o.run_pending()
    closed = next(a for a in acts if a["kind"] == "verify.closed")
    assert f"passed on live call {better}" in closed["text"]
    row = s.one("select * from gaps where id = ?", (gap["id"],))
    assert row["status"] == "closed" and row["verify_passes"] == 1 and "certification" in row["close_reason"]
    ev = s.one("select * from events where type = 'gap.closed'")
    call_ev = s.one("select id from events where type='call.scored' and subject = ?", (f"call:{better}",))["id"]
    assert ev["cause_id"] == call_ev
    assert early != better
    # the old misses do not reopen it
    assert o.run_pending() == [] and count(s, "select count(*) n from gaps") == 1


def test_miss_after_certification_reopens_with_a_harder_scenario(coach, fake):
    s, o, gap = opened_gap(coach)
    certify_row(s, gap["id"])
    add_call(s, "ana", all_pass(budget_confirmed="fail"))
    acts = o.run_pending()
    kinds = [a["kind"] for a in acts]
    assert kinds == ["verify.reopened", "gap.remediated", "feedback"]
    assert fake.calls[-1] == (gap["id"], 2)
    row = s.one("select * from gaps where id = ?", (gap["id"],))
    assert row["status"] == "open" and count(s, "select count(*) n from gaps") == 1
    reopened = s.one("select * from events where type = 'gap.reopened'")
    assert reopened["cause_id"] == s.one("select max(id) m from events where type='call.scored'")["m"]
    # the old certification no longer counts: a pass now is early until certified again
    add_call(s, "ana", all_pass())
    assert [a["kind"] for a in o.run_pending()] == ["verify.early-pass"]
    certify_row(s, gap["id"])
    add_call(s, "ana", all_pass())
    assert "verify.closed" in [a["kind"] for a in o.run_pending()]


def test_close_passes_from_policy(coach, fake):
    pb = coach.playbook_dir / "playbook.yaml"
    pb.write_text(pb.read_text().replace("close_passes: 1", "close_passes: 2"))
    coach.reload()
    s, o, gap = opened_gap(coach)
    certify_row(s, gap["id"])
    add_call(s, "ana", all_pass())
    assert [a["kind"] for a in o.run_pending()] == ["verify.passed"]
    add_call(s, "ana", all_pass())
    assert [a["kind"] for a in o.run_pending()] == ["verify.closed"]


def test_verify_call_is_idempotent_and_needs_a_known_call(coach, fake):
    s, _, gap = opened_gap(coach)
    certify_row(s, gap["id"])
    cid = add_call(s, "ana", all_pass(), event=False)
    s.db["gaps"].update(gap["id"], {"details": dumps({})})
    first = verify_call(coach, cid)
    assert first[0]["outcome"] == "closed"
    from store.db import StoreError

    with pytest.raises(StoreError, match="unknown call 12345"):
        verify_call(coach, 12345)


def test_an_override_that_shows_a_gap_opens_it(coach, fake):
    s = coach.store
    add_rep(s, "ana")
    add_call(s, "ana", all_pass(budget_confirmed="fail"))
    add_call(s, "ana", all_pass(budget_confirmed="fail"))
    third = add_call(s, "ana", all_pass())
    o = Orchestrator(coach)
    o.run_pending()
    assert s.one("select count(*) n from gaps")["n"] == 0
    with s.transaction() as db:
        db.execute("update verdicts set verdict = 'fail', overridden_by = 'mgr' where call_id = ? and line_id = 'budget_confirmed'", (third,))
        ev = s.event("verdict.overridden", rep_id="ana", subject=f"call:{third}", data={"line": "budget_confirmed"})
    acts = o.run_pending()
    assert [a["kind"] for a in acts][:2] == ["gap.opened", "gap.remediated"]
    assert s.one("select cause_id from events where type = 'gap.opened'")["cause_id"] == ev
    # the same event handled again (another process, a replay) changes nothing
    assert o.run_pending() == [] and s.one("select count(*) n from gaps")["n"] == 1


def test_two_processes_on_one_database_handle_each_event_once(coach, fake, tmp_path):
    """The server and a `coachloop run` share a database: separate connections, same cursor."""
    import threading

    from tools.context import Coach

    s = coach.store
    for rep in ("ana", "ben", "cara"):
        weak_calls(s, rep)
    other = Coach(coach.playbook_dir, s.path)  # a second connection, as another process would have
    errors = []

    def run(c):
        try:
            for _ in range(3):
                Orchestrator(c).run_pending()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in (coach, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    other.close()
    assert not errors
    assert count(s, "select count(*) n from gaps") == 3
    assert count(s, "select count(*) n from events where type = 'gap.opened'") == 3
    assert count(s, "select count(*) n from events where type = 'gap.remediated'") == 3
    assert count(s, "select count(*) n from assignments") == 3
    assert sorted(g for g, _ in fake.calls) == [1, 2, 3]


def test_a_managers_lift_stands_in_for_certification(coach, fake):
    s, o, gap = opened_gap(coach)
    with s.transaction() as db:
        db["gates"].insert({"rep_id": "ana", "activity": "demo", "certification_id": "qualification", "gap_id": gap["id"],
                            "status": "lifted", "lifted_by": "Maya (manager)", "lift_reason": "reviewed the calls", "created_at": now_iso()})
    add_call(s, "ana", all_pass())
    acts = o.run_pending()
    closed = next(a for a in acts if a["kind"] == "verify.closed")
    assert "a manager's lift (Maya (manager))" in closed["text"]


def test_a_still_blocked_gate_means_not_ready(coach, fake):
    s, o, gap = opened_gap(coach)
    with s.transaction() as db:
        for status, by in (("lifted", "Maya"), ("blocked", None)):
            db["gates"].insert({"rep_id": "ana", "activity": "demo" if by else "dial", "certification_id": "c", "gap_id": gap["id"],
                                "status": status, "lifted_by": by, "created_at": now_iso()})
    add_call(s, "ana", all_pass())
    assert [a["kind"] for a in o.run_pending()] == ["verify.early-pass"]


def test_status_and_the_cli(coach, fake, capsys):
    from server.cli import main as cli

    s = coach.store
    weak_calls(s)
    o = Orchestrator(coach)
    assert o.status() == {"cursor": 0, "last_event": 3, "pending": 3, "failing": {}}
    where = ["--playbook", str(coach.playbook_dir), "--db", s.path]
    assert cli(["run", "--status", *where]) == 0
    assert "handled up to event 0 of 3; 3 pending" in capsys.readouterr().out
    o.run_pending()
    st = o.status()
    assert st["pending"] == 0 and st["cursor"] == st["last_event"]


def test_handle_call(coach, fake):
    s = coach.store
    ids = weak_calls(s)
    acts = Orchestrator(coach).handle_call(ids[-1])
    assert any(a["kind"] == "gap.opened" for a in acts)
    assert Orchestrator(coach).handle_call(ids[-1]) == []  # already handled
    from store.db import StoreError

    silent = add_call(s, "ana", all_pass(), event=False)
    with pytest.raises(StoreError, match=f"call {silent} has no call.scored event"):
        Orchestrator(coach).handle_call(silent)


def test_a_failing_remediation_step_is_undone_alone(playbook_dir, tmp_path, monkeypatch):
    """Calls without turns cannot make a scenario: the path and the gates still happen, the problem
    is reported, and the failed step leaves nothing behind (savepoint)."""
    import tools.scenario as scen_mod
    from tools.context import Coach

    real = scen_mod.generate_scenario

    def half_then_fail(coach, *a, **kw):
        coach.store.event("scenario.half-written", rep_id="ana")
        return real(coach, *a, **kw)  # raises: the calls have no buyer turns

    monkeypatch.setattr(scen_mod, "generate_scenario", half_then_fail)
    coach = Coach(playbook_dir, tmp_path / "full.db")
    try:
        s = coach.store
        weak_calls(s)
        acts = Orchestrator(coach).run_pending()
        rem = next(a for a in acts if a["kind"] == "gap.remediated")
        assert [p["step"] for p in rem["data"]["problems"]] == ["scenario"]
        assert "no buyer turns" in rem["data"]["problems"][0]["error"] and "scenario failed" in rem["text"]
        assert rem["data"]["path_id"] == "path-budget-confirmed" and rem["data"]["gates"]
        assert count(s, "select count(*) n from events where type = 'scenario.half-written'") == 0
        assert count(s, "select count(*) n from assignments") == 1
    finally:
        coach.close()
