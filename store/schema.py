"""Forward-only migrations. MIGRATIONS[i] takes the schema from version i to i+1.

Migration 1 is the whole first schema. Once a release ships, never edit a migration: append one.
"""
from __future__ import annotations

from typing import Callable

import sqlite_utils


def _v1(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
    db["reps"].create(
        {
            "id": str,  # stable slug of the rep's name (or the id given)
            "name": str,
            "email": str,
            "team": str,
            "manager": str,
            "segment": str,
            "hire_date": str,
            "quota": float,
            "aliases": str,  # JSON list of other spellings seen in transcripts
            "active": int,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"name"},
        defaults={"active": 1, "aliases": "[]"},
    )
    db["quotas"].create(
        {"rep_id": str, "period": str, "quota": float, "attained": float, "updated_at": str},
        pk=("rep_id", "period"),
        foreign_keys=[("rep_id", "reps", "id")],
    )
    db["deals"].create(
        {
            "id": str,
            "name": str,
            "rep_id": str,
            "segment": str,
            "amount": float,
            "stage": str,
            "outcome": str,  # open | won | lost
            "created_at": str,
            "closed_at": str,
            "updated_at": str,
        },
        pk="id",
        defaults={"outcome": "open"},
    )
    db["deal_stages"].create(
        {"id": int, "deal_id": str, "stage": str, "at": str},
        pk="id",
        foreign_keys=[("deal_id", "deals", "id")],
    )
    db["calls"].create(
        {
            "id": int,
            "source_hash": str,  # sha256 of the normalised transcript: one call stored once
            "source_name": str,
            "format": str,
            "rep_id": str,
            "rep_speaker": str,
            "call_type": str,
            "scorecard_id": str,
            "scorecard_version": str,
            "segment": str,
            "deal_id": str,
            "stage": str,
            "occurred_at": str,
            "turns": str,  # JSON list of {speaker, text, start, end, role}
            "engine": str,
            "engine_version": str,
            "score": float,
            "live": int,  # 1 for a real call, 0 for a practice transcript
            "created_at": str,
            "scored_at": str,
        },
        pk="id",
        not_null={"source_hash", "rep_id", "call_type"},
        foreign_keys=[("rep_id", "reps", "id")],
        defaults={"live": 1},
    )
    db["calls"].create_index(["source_hash"], unique=True)
    db["calls"].create_index(["rep_id", "occurred_at"])
    db["calls"].create_index(["scorecard_id"])
    db["verdicts"].create(
        {
            "call_id": int,
            "line_id": str,
            "verdict": str,  # the effective verdict: the human's when overridden
            "engine_verdict": str,
            "turn": int,
            "quote": str,
            "reason": str,
            "engine": str,
            "engine_version": str,
            "scorecard_version": str,
            "overridden_by": str,
            "override_reason": str,
            "overridden_at": str,
        },
        pk=("call_id", "line_id"),
        foreign_keys=[("call_id", "calls", "id")],
    )
    db["verdicts"].create_index(["line_id", "verdict"])
    db["gaps"].create(
        {
            "id": int,
            "rep_id": str,
            "scorecard_id": str,
            "line_id": str,
            "status": str,  # open | closed
            "statement": str,
            "misses": int,
            "window": int,
            "rep_rate": float,
            "team_rate": float,
            "lost_deals": int,
            "severity": float,
            "call_ids": str,  # JSON list
            "breakdown": str,  # JSON
            "details": str,  # JSON: anything else the loop wants to keep
            "verify_passes": int,
            "opened_at": str,
            "closed_at": str,
            "close_reason": str,
            "cause_event_id": int,
        },
        pk="id",
        foreign_keys=[("rep_id", "reps", "id")],
        defaults={"verify_passes": 0},
    )
    db["gaps"].create_index(["rep_id", "line_id", "status"])
    db["assignments"].create(
        {
            "id": int,
            "rep_id": str,
            "gap_id": int,
            "path_id": str,
            "path_version": str,
            "scenario_ids": str,  # JSON list
            "artifact_versions": str,  # JSON {kind/id: version}
            "source": str,  # gap | rollout | manual
            "rollout_id": int,
            "status": str,  # assigned | started | passed | failed | cancelled
            "due": str,
            "created_at": str,
            "started_at": str,
            "completed_at": str,
        },
        pk="id",
        foreign_keys=[("rep_id", "reps", "id")],
    )
    db["assignments"].create_index(["rep_id", "status"])
    db["practice_sessions"].create(
        {
            "id": str,
            "rep_id": str,
            "scenario_id": str,
            "scenario_version": str,
            "assignment_id": int,
            "status": str,  # active | ended | expired
            "turns": str,  # JSON list of {speaker: rep|buyer, text}
            "state": str,  # JSON buyer state (facts revealed, objections raised ...)
            "verdicts": str,  # JSON, when ended
            "score": float,
            "passed": int,
            "engine": str,
            "started_at": str,
            "last_activity_at": str,
            "ended_at": str,
        },
        pk="id",
        foreign_keys=[("rep_id", "reps", "id")],
    )
    db["certifications"].create(
        {
            "id": int,
            "rep_id": str,
            "certification_id": str,
            "certification_version": str,
            "session_id": str,
            "gap_id": int,
            "status": str,  # passed | failed
            "score": float,
            "attempt": int,
            "details": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("rep_id", "reps", "id")],
    )
    db["gates"].create(
        {
            "id": int,
            "rep_id": str,
            "activity": str,
            "certification_id": str,
            "gap_id": int,
            "status": str,  # blocked | shadow | lifted
            "reason": str,
            "action": str,  # what the rep must do
            "created_at": str,
            "lifted_at": str,
            "lifted_by": str,
            "lift_reason": str,
        },
        pk="id",
        foreign_keys=[("rep_id", "reps", "id")],
    )
    db["gates"].create_index(["rep_id", "activity", "status"])
    db["events"].create(
        {"id": int, "at": str, "type": str, "rep_id": str, "subject": str, "cause_id": int, "data": str},
        pk="id",
    )
    db["events"].create_index(["rep_id"])
    db["events"].create_index(["type"])
    db["artifact_versions"].create(
        {"kind": str, "artifact_id": str, "version": str, "path": str, "text": str, "first_seen": str},
        pk=("kind", "artifact_id", "version"),
    )
    db["rollouts"].create(
        {
            "id": int,
            "kind": str,  # paths | scenarios
            "artifact_id": str,
            "version": str,
            "landed_at": str,
            "due": str,
            "targeted": int,
            "completed_at": str,
            "cycle_seconds": float,
        },
        pk="id",
    )
    db["ingested_files"].create(
        {"path": str, "content_hash": str, "call_id": int, "status": str, "error": str, "at": str},
        pk="content_hash",
    )
    db["jobs"].create(
        {"id": int, "kind": str, "status": str, "params": str, "cursor": str, "created_at": str, "updated_at": str},
        pk="id",
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1]
