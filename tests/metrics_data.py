"""A small hand-checked data set for the metrics, export and report tests.

Rows go straight into the store (not through the loop's modules) so these tests do not depend on
other areas. The right answers are worked out by hand in tests/test_metrics.py.

Three reps: ana (team east, hired 2026-01-10), ben (east, hired 2026-02-01), cy (west, hired
2025-12-01). Scorecard `disc` has three lines: budget [BANT, MEDDICC], pain [MEDDICC], next_step
(untagged).
"""
from __future__ import annotations

from pathlib import Path

from tools.context import Coach

SCORECARD = """\
id: disc
title: Discovery (metrics test)
call_types: [discovery]
lines:
  - id: budget
    title: Budget confirmed
    methodology: [BANT, MEDDICC]
    phrases: [budget]
  - id: pain
    title: Pain quantified
    methodology: [MEDDICC]
    phrases: [cost you]
  - id: next_step
    title: Next step agreed
    phrases: [next step]
"""

# call id, rep, occurred_at, live, scored, {line: verdict}
CALLS = [
    (1, "ana", "2026-01-05T10:00:00+00:00", 1, 1, {"budget": "fail", "pain": "pass", "next_step": "na"}),
    (2, "ana", "2026-01-07T10:00:00+00:00", 1, 1, {"budget": "fail", "pain": "pass", "next_step": "pass"}),
    (3, "ana", "2026-01-13T10:00:00+00:00", 1, 1, {"budget": "fail", "pain": "fail", "next_step": "pass"}),
    (4, "ana", "2026-01-15T08:00:00+00:00", 1, 1, {"budget": "fail", "pain": "pass", "next_step": "na"}),
    (5, "ana", "2026-01-15T11:00:00+00:00", 1, 1, {"budget": "pass", "pain": "pass", "next_step": "pass"}),
    (6, "ana", "2026-01-20T10:00:00+00:00", 1, 1, {"budget": "pass", "pain": "pass", "next_step": "fail"}),
    (7, "ana", "2026-01-21T10:00:00+00:00", 1, 1, {"budget": "fail", "pain": "pass", "next_step": "pass"}),
    (8, "ben", "2026-01-06T10:00:00+00:00", 1, 1, {"budget": "pass", "pain": "fail", "next_step": "pass"}),
    (9, "ben", "2026-01-14T10:00:00+00:00", 1, 1, {"budget": "pass", "pain": "fail", "next_step": "fail"}),
    (10, "ben", "2026-01-14T15:00:00+00:00", 1, 0, {}),
    (11, "ben", "2026-01-14T16:00:00+00:00", 0, 1, {"budget": "pass", "pain": "pass", "next_step": "pass"}),  # practice
    (12, "cy", "2026-01-20T10:00:00+00:00", 1, 1, {"budget": "na", "pain": "pass", "next_step": "pass"}),
]


def build(root: Path) -> Coach:
    pb = root / "pb"
    (pb / "scorecards").mkdir(parents=True)
    (pb / "playbook.yaml").write_text("team: Metrics test\ndefault_scorecards:\n  discovery: disc\n")
    (pb / "scorecards" / "disc.yaml").write_text(SCORECARD)
    coach = Coach(pb, root / "m.db")
    fill(coach.store)
    return coach


def fill(store) -> None:
    with store.transaction() as db:
        for rid, name, team, hire in [
            ("ana", "Ana Diaz", "east", "2026-01-10"),
            ("ben", "Ben Okafor", "east", "2026-02-01"),
            ("cy", "Cy Young", "west", "2025-12-01"),
        ]:
            db.execute("insert into reps (id, name, team, hire_date, quota) values (?, ?, ?, ?, 100)", [rid, name, team, hire])
        for cid, rep, at, live, scored, verdicts in CALLS:
            db.execute(
                "insert into calls (id, source_hash, rep_id, call_type, scorecard_id, occurred_at, live, scored_at, created_at)"
                " values (?, ?, ?, 'discovery', 'disc', ?, ?, ?, ?)",
                [cid, f"h{cid}", rep, at, live, at if scored else None, at],
            )
            for line, v in verdicts.items():
                db.execute("insert into verdicts (call_id, line_id, verdict) values (?, ?, ?)", [cid, line, v])
        db.execute(
            "insert into ingested_files (path, content_hash, call_id, status, error, at) values"
            " ('inbox/broken.vtt', 'x1', null, 'error', 'no speakers', '2026-01-08T09:00:00+00:00')"
        )
        # gaps
        db.execute(
            "insert into gaps (id, rep_id, scorecard_id, line_id, status, opened_at, closed_at, statement) values"
            " (1, 'ana', 'disc', 'budget', 'closed', '2026-01-13T12:00:00+00:00', '2026-01-20T11:00:00+00:00', 'ana skips budget'),"
            " (2, 'ben', 'disc', 'pain', 'open', '2026-01-14T16:00:00+00:00', null, 'ben skips pain'),"
            " (3, 'cy', 'disc', 'next_step', 'closed', '2025-12-20T10:00:00+00:00', '2026-01-02T10:00:00+00:00', 'cy next step')"
        )
        db.execute(
            "insert into assignments (id, rep_id, gap_id, path_id, source, status, created_at) values"
            " (1, 'ana', 1, 'budget-path', 'gap', 'passed', '2026-01-13T12:00:00+00:00'),"
            " (2, 'ben', 2, 'pain-path', 'gap', 'started', '2026-01-14T16:00:00+00:00')"
        )
        db.execute(
            "insert into practice_sessions (id, rep_id, scenario_id, assignment_id, status, passed, score, started_at, ended_at) values"
            " ('s1', 'ana', 'budget-sc', 1, 'ended', 0, 0.3, '2026-01-14T09:00:00+00:00', '2026-01-14T09:30:00+00:00'),"
            " ('s2', 'ana', 'budget-sc', 1, 'ended', 1, 1.0, '2026-01-15T09:00:00+00:00', '2026-01-15T09:30:00+00:00'),"
            " ('s3', 'ben', 'pain-sc', 2, 'ended', 0, 0.5, '2026-01-16T09:00:00+00:00', '2026-01-16T09:20:00+00:00'),"
            " ('s4', 'ben', 'pain-sc', 2, 'active', null, null, '2026-01-21T09:00:00+00:00', null)"
        )
        db.execute(
            "insert into certifications (id, rep_id, certification_id, gap_id, session_id, status, score, attempt, created_at) values"
            " (1, 'ana', 'budget-cert', 1, 's2', 'passed', 1.0, 2, '2026-01-15T10:00:00+00:00'),"
            " (2, 'ben', 'pain-cert', 2, 's3', 'failed', 0.5, 1, '2026-01-16T10:00:00+00:00')"
        )
        db.execute(
            "insert into gates (id, rep_id, activity, certification_id, gap_id, status, created_at, lifted_at) values"
            " (1, 'ana', 'dial', 'budget-cert', 1, 'lifted', '2026-01-13T12:00:00+00:00', '2026-01-15T10:00:00+00:00'),"
            " (2, 'ben', 'demo', 'pain-cert', 2, 'blocked', '2026-01-14T16:00:00+00:00', null),"
            " (3, 'cy', 'dial', 'next-cert', 3, 'shadow', '2026-01-20T10:00:00+00:00', null)"
        )
        # quotas: monthly (and a quarterly row that ramp ignores but attainment uses)
        for rep, period, quota, attained in [
            ("ana", "2026-01", 100, 50), ("ana", "2026-02", 100, 90), ("ana", "2026-03", 100, 120),
            ("ben", "2026-02", 100, 100),
            ("cy", "2025-12", 100, 80), ("cy", "2026-01", 100, 95),
        ]:
            db.execute("insert into quotas (rep_id, period, quota, attained) values (?, ?, ?, ?)", [rep, period, quota, attained])
        # deals
        for did, rep, created, outcome, closed, stages in [
            ("d1", "ana", "2026-01-01", "won", "2026-01-31", [("Discovery", "2026-01-01"), ("Demo", "2026-01-10"), ("Proposal", "2026-01-20"), ("Closed Won", "2026-01-31")]),
            ("d2", "ana", "2026-01-05", "lost", "2026-01-25", [("Discovery", "2026-01-05"), ("Demo", "2026-01-12"), ("Closed Lost", "2026-01-25")]),
            ("d3", "ben", "2026-01-02", "lost", "2026-01-12", [("Discovery", "2026-01-02"), ("Closed Lost", "2026-01-12")]),
            ("d4", "cy", "2026-01-03", "won", "2026-02-02", [("Discovery", "2026-01-03"), ("Demo", "2026-01-08"), ("Proposal", "2026-01-15"), ("Closed Won", "2026-02-02")]),
            ("d5", "ben", "2026-01-04", "open", None, [("Discovery", "2026-01-04"), ("Demo", "2026-01-09")]),
        ]:
            db.execute(
                "insert into deals (id, name, rep_id, amount, stage, outcome, created_at, closed_at) values (?, ?, ?, 1000, ?, ?, ?, ?)",
                [did, did.upper(), rep, stages[-1][0], outcome, created + "T00:00:00+00:00", closed + "T00:00:00+00:00" if closed else None],
            )
            for st, at in stages:
                db.execute("insert into deal_stages (deal_id, stage, at) values (?, ?, ?)", [did, st, at + "T00:00:00+00:00"])
        db.execute(
            "insert into rollouts (id, kind, artifact_id, version, landed_at, targeted, completed_at, cycle_seconds) values"
            " (1, 'paths', 'budget-path', 'v1', '2026-01-10T00:00:00+00:00', 2, '2026-01-12T12:00:00+00:00', null),"
            " (2, 'scenarios', 'pain-sc', 'v1', '2026-01-16T00:00:00+00:00', 1, '2026-01-17T00:00:00+00:00', 86400),"
            " (3, 'scenarios', 'next-sc', 'v1', '2026-01-20T00:00:00+00:00', 3, null, null)"
        )
        db.execute(
            "insert into assignments (id, rep_id, path_id, source, rollout_id, status, created_at, completed_at) values"
            " (3, 'ana', 'budget-path', 'rollout', 1, 'passed', '2026-01-10T00:00:00+00:00', '2026-01-11T00:00:00+00:00'),"
            " (4, 'ben', 'budget-path', 'rollout', 1, 'passed', '2026-01-10T00:00:00+00:00', '2026-01-12T12:00:00+00:00')"
        )
