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
    db["rollouts"].create_index(["kind", "artifact_id", "version"], unique=True)  # one rollout per version
    db["ingested_files"].create(
        {"path": str, "content_hash": str, "call_id": int, "status": str, "error": str, "at": str},
        pk="content_hash",
    )
    db["jobs"].create(
        {"id": int, "kind": str, "status": str, "params": str, "cursor": str, "created_at": str, "updated_at": str},
        pk="id",
    )
    _v1_tracking(db)


# --------------------------------------------------------------------------- change tracking + metric summaries
# (metrics/export area) Every table gets `updated_at` (ISO 8601 UTC with milliseconds, `...Z`),
# kept by triggers whatever the writer does, so a warehouse can load incrementally by that
# cursor. Two summary tables, kept by triggers on `calls` and `verdicts`, let the metrics answer
# in well under a second on a million calls: `call_daily`, `verdict_daily` (per rep) and
# `verdict_daily_all` (everyone). Store's connection (sqlite-utils) turns recursive triggers on, which
# is what makes INSERT OR REPLACE fire the delete triggers too; the touch triggers stop at 'now'.

TS_SQL = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"
TS_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z"
SUMMARY_TABLES = ("call_daily", "verdict_daily", "verdict_daily_all")
UNTRACKED = {"meta", *SUMMARY_TABLES}
_CALL_DAY = "substr(coalesce({t}.occurred_at, {t}.created_at, ''), 1, 10)"


def _v1_tracking(db: sqlite_utils.Database) -> None:
    for table in db.table_names():
        if table in UNTRACKED or table.startswith("sqlite_"):
            continue
        add_tracking(db, table)
    db["events"].create_index(["at"], if_not_exists=True)
    db["calls"].create_index(["occurred_at"], if_not_exists=True)
    db["calls"].create_index(["deal_id"], if_not_exists=True)
    db["gaps"].create_index(["opened_at"], if_not_exists=True)
    db["gaps"].create_index(["closed_at"], if_not_exists=True)
    db["certifications"].create_index(["gap_id"], if_not_exists=True)
    db["certifications"].create_index(["created_at"], if_not_exists=True)
    db["certifications"].create_index(["session_id"], if_not_exists=True)  # certify: an earlier verdict on the session
    db["certifications"].create_index(["rep_id", "certification_id"], if_not_exists=True)  # certify: attempts so far
    db["practice_sessions"].create_index(["rep_id", "status"], if_not_exists=True)  # start_session: the rep's active ones
    db["practice_sessions"].create_index(["assignment_id"], if_not_exists=True)
    db["practice_sessions"].create_index(["started_at"], if_not_exists=True)
    db["assignments"].create_index(["gap_id"], if_not_exists=True)
    db["deal_stages"].create_index(["deal_id", "at"], if_not_exists=True)
    db["deals"].create_index(["closed_at"], if_not_exists=True)
    db["gates"].create_index(["status"], if_not_exists=True)
    db.execute(
        "create table if not exists call_daily (day text not null, rep_id text not null, scorecard_id text not null,"
        " live integer not null, calls integer not null default 0, scored integer not null default 0,"
        " primary key (day, scorecard_id, live, rep_id)) without rowid"
    )
    db.execute("create index if not exists idx_call_daily_rep on call_daily (rep_id, day)")
    db.execute(
        "create table if not exists verdict_daily (day text not null, rep_id text not null, scorecard_id text not null,"
        " line_id text not null, live integer not null, passes integer not null default 0,"
        " fails integer not null default 0, nas integer not null default 0,"
        " primary key (rep_id, line_id, day, scorecard_id, live)) without rowid"  # clustered by rep and line
    )
    db.execute(  # the same without the rep: what 'everyone' reads
        "create table if not exists verdict_daily_all (day text not null, scorecard_id text not null,"
        " line_id text not null, live integer not null, passes integer not null default 0,"
        " fails integer not null default 0, nas integer not null default 0,"
        " primary key (day, scorecard_id, line_id, live)) without rowid"
    )
    for sql in _summary_triggers():
        db.execute(sql)


def add_tracking(db: sqlite_utils.Database, table: str) -> None:
    """Give `table` an `updated_at` column kept current by triggers (idempotent)."""
    cols = {c.name for c in db[table].columns}
    if "updated_at" not in cols:
        db.execute(f"alter table [{table}] add column updated_at text")
    db.execute(f"create index if not exists [idx_{table}_updated_at] on [{table}] (updated_at)")
    db.execute(
        f"create trigger if not exists [{table}_touch_ins] after insert on [{table}]"
        f" when new.updated_at is null or new.updated_at not glob '{TS_GLOB}'"
        f" begin update [{table}] set updated_at = {TS_SQL} where rowid = new.rowid; end"
    )
    db.execute(
        f"create trigger if not exists [{table}_touch_upd] after update on [{table}]"
        f" when (new.updated_at is old.updated_at or new.updated_at is null or new.updated_at not glob '{TS_GLOB}')"
        f" and new.updated_at is not {TS_SQL}"  # sqlite-utils turns recursive triggers on: stop at 'now'"
        f" begin update [{table}] set updated_at = {TS_SQL} where rowid = new.rowid; end"
    )


def _summary_triggers() -> list[str]:
    new_day, old_day = _CALL_DAY.format(t="new"), _CALL_DAY.format(t="old")
    c_day = _CALL_DAY.format(t="c")

    def call_add(t: str, sign: str) -> str:
        day = new_day if t == "new" else old_day
        return (
            f"insert into call_daily (day, rep_id, scorecard_id, live, calls, scored) values ({day},"
            f" coalesce({t}.rep_id, ''), coalesce({t}.scorecard_id, ''), coalesce({t}.live, 1), {sign}1,"
            f" {sign}({t}.scored_at is not null)) on conflict do update set calls = calls + excluded.calls,"
            f" scored = scored + excluded.scored;"
        )

    def verdict_add(t: str, sign: str) -> str:
        return "".join(
            f"insert into {table} (day, {rep}scorecard_id, line_id, live, passes, fails, nas)"
            f" select {c_day}, {rep_val}coalesce(c.scorecard_id, ''), {t}.line_id, coalesce(c.live, 1),"
            f" {sign}({t}.verdict = 'pass'), {sign}({t}.verdict = 'fail'), {sign}({t}.verdict = 'na')"
            f" from calls c where c.id = {t}.call_id"
            f" on conflict do update set passes = passes + excluded.passes, fails = fails + excluded.fails,"
            f" nas = nas + excluded.nas;"
            for table, rep, rep_val in (("verdict_daily", "rep_id, ", "coalesce(c.rep_id, ''), "), ("verdict_daily_all", "", ""))
        )

    def call_verdicts(t: str, sign: str) -> str:
        day = new_day if t == "new" else old_day
        return "".join(
            f"insert into {table} (day, {rep}scorecard_id, line_id, live, passes, fails, nas)"
            f" select {day}, {rep_val}coalesce({t}.scorecard_id, ''), v.line_id, coalesce({t}.live, 1),"
            f" {sign}sum(v.verdict = 'pass'), {sign}sum(v.verdict = 'fail'), {sign}sum(v.verdict = 'na')"
            f" from verdicts v where v.call_id = {t}.id group by v.line_id"
            f" on conflict do update set passes = passes + excluded.passes, fails = fails + excluded.fails,"
            f" nas = nas + excluded.nas;"
            for table, rep, rep_val in (("verdict_daily", "rep_id, ", f"coalesce({t}.rep_id, ''), "), ("verdict_daily_all", "", ""))
        )

    moved = (
        "old.rep_id is not new.rep_id or old.scorecard_id is not new.scorecard_id or old.live is not new.live"
        f" or {old_day} is not {new_day}"
    )
    return [
        f"create trigger if not exists calls_daily_ins after insert on calls begin {call_add('new', '+')} end",
        f"create trigger if not exists calls_daily_del after delete on calls begin {call_add('old', '-')} end",
        "create trigger if not exists calls_daily_upd after update of rep_id, scorecard_id, live, occurred_at,"
        f" created_at, scored_at on calls when {moved} or (old.scored_at is null) is not (new.scored_at is null)"
        f" begin {call_add('old', '-')} {call_add('new', '+')} end",
        "create trigger if not exists calls_verdicts_move after update of rep_id, scorecard_id, live, occurred_at,"
        f" created_at on calls when {moved} begin {call_verdicts('old', '-')} {call_verdicts('new', '+')} end",
        f"create trigger if not exists verdicts_daily_ins after insert on verdicts begin {verdict_add('new', '+')} end",
        f"create trigger if not exists verdicts_daily_del after delete on verdicts begin {verdict_add('old', '-')} end",
        "create trigger if not exists verdicts_daily_upd after update of verdict, call_id, line_id on verdicts"
        " when old.verdict is not new.verdict or old.call_id is not new.call_id or old.line_id is not new.line_id"
        f" begin {verdict_add('old', '-')} {verdict_add('new', '+')} end",
    ]


def rebuild_summaries(db: sqlite_utils.Database) -> None:
    """Recompute `call_daily` and `verdict_daily` from `calls` and `verdicts` (repair or bulk load)."""
    db.execute("delete from call_daily")
    db.execute("delete from verdict_daily")
    db.execute("delete from verdict_daily_all")
    db.execute(
        f"insert into call_daily (day, rep_id, scorecard_id, live, calls, scored) select {_CALL_DAY.format(t='calls')},"
        " coalesce(rep_id, ''), coalesce(scorecard_id, ''), coalesce(live, 1), count(*), sum(scored_at is not null)"
        " from calls group by 1, 2, 3, 4"
    )
    db.execute(
        f"insert into verdict_daily (day, rep_id, scorecard_id, line_id, live, passes, fails, nas) select {_CALL_DAY.format(t='c')},"
        " coalesce(c.rep_id, ''), coalesce(c.scorecard_id, ''), v.line_id, coalesce(c.live, 1), sum(v.verdict = 'pass'),"
        " sum(v.verdict = 'fail'), sum(v.verdict = 'na') from verdicts v join calls c on c.id = v.call_id"
        " group by 1, 2, 3, 4, 5"
    )
    db.execute(
        "insert into verdict_daily_all (day, scorecard_id, line_id, live, passes, fails, nas) select day, scorecard_id,"
        " line_id, live, sum(passes), sum(fails), sum(nas) from verdict_daily group by 1, 2, 3, 4"
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1]
