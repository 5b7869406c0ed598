"""Metrics an agent can move: the loop's own numbers and the business numbers it should move.

One entry point, `compute_metrics(coach, names=None, rep=None, team=None, since=None, until=None,
weekly=False, details=False) -> dict`, serves the MCP `metrics` tool, `coachloop metrics`, the
export and the report. Every metric can be asked for one rep, one team or everyone, over a period
(`since`/`until`, dates inclusive, ISO 8601), and as a weekly series (weeks start on Monday).
Every answer carries a `method` sentence saying how it was computed, and with `details=True` the
calls, sessions, gaps, deals or rollouts behind it (at most `DETAIL_LIMIT` per list, with the total).

Verdict and call counts come from the `verdict_daily` / `call_daily` summary tables that triggers
keep in step with `verdicts` / `calls` (store/schema.py), so the answers stay fast on a million
calls; details always come from the raw rows.
"""
from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from store.db import Store, now_iso, parse_utc

DETAIL_LIMIT = 500
LIVE_VERDICTS = ("pass", "fail")
CLOSED_STAGE_WORDS = ("closed won", "closed lost", "closed-won", "closed-lost", "won", "lost")


class MetricsError(ValueError):
    """A metrics request that cannot be answered (unknown metric, rep or team; bad date)."""


# --------------------------------------------------------------------------- helpers


def _day(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)[:10]


def _parse_day(value: Any, field_name: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise MetricsError(f"{field_name}: '{value}' is not a date; use YYYY-MM-DD") from None


def week_of(day: str | date) -> str:
    """The Monday (ISO date) of the week holding `day`."""
    d = day if isinstance(day, date) else date.fromisoformat(str(day)[:10])
    return (d - timedelta(days=d.weekday())).isoformat()


def _rate(num: int | float, den: int | float) -> float | None:
    return round(num / den, 4) if den else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def quartiles(values: list[float]) -> dict:
    """Quartiles by linear interpolation between order statistics (numpy's default, 'inclusive')."""
    vals = sorted(values)
    if not vals:
        return {"q1": None, "median": None, "q3": None, "min": None, "max": None}
    if len(vals) == 1:
        q1 = med = q3 = vals[0]
    else:
        q1, med, q3 = statistics.quantiles(vals, n=4, method="inclusive")
    return {"q1": round(q1, 4), "median": round(med, 4), "q3": round(q3, 4), "min": round(vals[0], 4), "max": round(vals[-1], 4)}


def _limited(rows: list, limit: int = DETAIL_LIMIT) -> dict:
    return {"total": len(rows), "truncated": len(rows) > limit, "items": rows[:limit]}


def _period_start(period: str) -> date | None:
    """'2026-03' -> 2026-03-01; '2026-Q2' -> 2026-04-01; '2026' -> 2026-01-01; a date -> itself."""
    p = str(period).strip()
    try:
        if len(p) == 7 and p[4] == "-" and p[5:].isdigit():
            return date(int(p[:4]), int(p[5:]), 1)
        if len(p) == 7 and p[4:6].upper() in ("-Q",) and p[6] in "1234":
            return date(int(p[:4]), 3 * (int(p[6]) - 1) + 1, 1)
        if len(p) == 4 and p.isdigit():
            return date(int(p), 1, 1)
        return date.fromisoformat(p[:10])
    except ValueError:
        return None


def _month_end(d: date) -> date:
    nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


# --------------------------------------------------------------------------- scope


@dataclass
class Scope:
    store: Store
    playbook: Any
    rep_ids: list[str] | None  # None = everyone
    label: str
    since: date | None
    until: date | None
    weekly: bool
    details: bool
    cache: dict = field(default_factory=dict)

    @property
    def since_s(self) -> str | None:
        return self.since.isoformat() if self.since else None

    @property
    def until_next(self) -> str | None:
        """The day after `until`: timestamps compare `< until_next`."""
        return (self.until + timedelta(days=1)).isoformat() if self.until else None

    def time_clause(self, col: str) -> tuple[str, list]:
        sql, params = "", []
        if self.since:
            sql += f" and {col} >= ?"
            params.append(self.since_s)
        if self.until:
            sql += f" and {col} < ?"
            params.append(self.until_next)
        return sql, params

    def day_clause(self, col: str = "day") -> tuple[str, list]:
        sql, params = "", []
        if self.since:
            sql += f" and {col} >= ?"
            params.append(self.since_s)
        if self.until:
            sql += f" and {col} <= ?"
            params.append(self.until.isoformat())
        return sql, params

    def rep_clause(self, col: str = "rep_id") -> tuple[str, list]:
        if self.rep_ids is None:
            return "", []
        if not self.rep_ids:
            return " and 0", []
        return f" and {col} in ({', '.join('?' for _ in self.rep_ids)})", list(self.rep_ids)

    def in_period(self, value: Any) -> bool:
        d = _day(value)
        if d is None:
            return False
        if self.since and d < self.since_s:
            return False
        if self.until and d > self.until.isoformat():
            return False
        return True

    def q(self, sql: str, params: Iterable = ()) -> list[dict]:
        return self.store.query(sql, list(params))


def resolve_scope(coach, rep=None, team=None, since=None, until=None, weekly=False, details=False) -> Scope:
    store: Store = coach.store if hasattr(coach, "store") else coach
    playbook = getattr(coach, "playbook", None)
    if rep and team:
        raise MetricsError("give --rep or --team, not both")
    s, u = _parse_day(since, "since"), _parse_day(until, "until")
    if s and u and s > u:
        raise MetricsError(f"since {s} is after until {u}")
    rep_ids: list[str] | None = None
    label = "everyone"
    if rep:
        from store.reps import resolve_rep

        found = resolve_rep(store, rep)
        if found is None:
            known = [r["id"] for r in store.query("select id from reps order by id limit 20")]
            raise MetricsError(f"unknown rep '{rep}' (known: {', '.join(known) or 'none'}); import reps with `coachloop import reps FILE.csv`")
        rep_ids, label = [found["id"]], f"rep {found['id']}"
    elif team:
        rows = store.query("select id from reps where lower(team) = lower(?) order by id", [str(team).strip()])
        if not rows:
            teams = [r["team"] for r in store.query("select distinct team from reps where team is not null order by team")]
            raise MetricsError(f"unknown team '{team}' (known: {', '.join(teams) or 'none'})")
        rep_ids, label = [r["id"] for r in rows], f"team {team}"
    return Scope(store, playbook, rep_ids, label, s, u, bool(weekly), bool(details))


# --------------------------------------------------------------------------- metric registry


@dataclass
class Metric:
    name: str
    title: str
    unit: str
    method: str
    atoms: Callable[[Scope], list[dict]]  # rows, each with a 'day' (for weekly grouping)
    agg: Callable[[Scope, list[dict]], dict]  # -> {"value": ..., ...}
    detail: Callable[[Scope, list[dict]], dict] | None = None
    series: Callable[[Scope, list[dict]], list[dict]] | None = None  # custom weekly series


REGISTRY: dict[str, Metric] = {}


def register(metric: Metric) -> None:
    REGISTRY[metric.name] = metric


# --------------------------------------------------------------------------- loop: coverage


def _coverage_atoms(sc: Scope) -> list[dict]:
    dsql, dp = sc.day_clause()
    rsql, rp = sc.rep_clause()
    rows = sc.q(
        f"select day, sum(calls) as calls, sum(scored) as scored from call_daily where live = 1{dsql}{rsql} group by day",
        dp + rp,
    )
    if sc.rep_ids is None:  # files that could not become a call count as unscored calls
        tsql, tp = sc.time_clause("at")
        for r in sc.q(
            f"select substr(at, 1, 10) as day, count(*) as n from ingested_files where call_id is null"
            f" and status in ('failed', 'error'){tsql} group by 1",
            tp,
        ):
            rows.append({"day": r["day"], "calls": r["n"], "scored": 0, "failed_files": r["n"]})
    return rows


def _coverage_agg(sc: Scope, atoms: list[dict]) -> dict:
    calls = sum(a["calls"] for a in atoms)
    scored = sum(a["scored"] for a in atoms)
    failed = sum(a.get("failed_files", 0) for a in atoms)
    return {"value": _rate(scored, calls), "calls": calls, "scored": scored, "unscored": calls - scored, "failed_files": failed}


def _coverage_detail(sc: Scope, atoms: list[dict]) -> dict:
    tsql, tp = sc.time_clause("coalesce(occurred_at, created_at)")
    rsql, rp = sc.rep_clause()
    unscored = sc.q(
        f"select id, rep_id, source_name, occurred_at from calls where live = 1 and scored_at is null{tsql}{rsql}"
        f" order by id limit {DETAIL_LIMIT}",
        tp + rp,
    )
    n_unscored = sum(a["calls"] - a["scored"] for a in atoms if "failed_files" not in a)
    scored = sc.q(
        f"select id from calls where live = 1 and scored_at is not null{tsql}{rsql} order by id limit {DETAIL_LIMIT + 1}",
        tp + rp,
    )
    out = {"unscored_calls": {"total": n_unscored, "truncated": n_unscored > len(unscored), "items": unscored},
           "scored_call_ids": [r["id"] for r in scored[:DETAIL_LIMIT]]}
    if sc.rep_ids is None:
        fsql, fp = sc.time_clause("at")
        out["failed_files"] = _limited(
            sc.q(
                f"select path, status, error, at from ingested_files where call_id is null"
                f" and status in ('failed', 'error'){fsql} order by at",
                fp,
            )
        )
    return out


register(
    Metric(
        "coverage",
        "Calls scored (coverage)",
        "share",
        "Live calls in the period that have been scored, divided by all live calls recorded in the period "
        "(a call counts on the day it occurred; for everyone, transcript files that failed to become a call count as unscored).",
        _coverage_atoms,
        _coverage_agg,
        _coverage_detail,
    )
)


# --------------------------------------------------------------------------- loop: verdicts per line


def _line_atoms(sc: Scope) -> list[dict]:
    key = ("verdict_rows", sc.since, sc.until, tuple(sc.rep_ids or ()) if sc.rep_ids is not None else None)
    if key in sc.cache:
        return sc.cache[key]
    dsql, dp = sc.day_clause()
    rsql, rp = sc.rep_clause()
    table = "verdict_daily_all" if sc.rep_ids is None else "verdict_daily"
    rows = sc.q(
        "select day, scorecard_id, line_id, sum(passes) as passes, sum(fails) as fails, sum(nas) as nas"
        f" from {table} where live = 1{dsql}{rsql} group by day, scorecard_id, line_id",
        dp + rp,
    )
    sc.cache[key] = rows
    return rows


def _line_title(sc: Scope, scorecard_id: str, line_id: str) -> str | None:
    pb = sc.playbook
    if pb is None:
        return None
    art = pb.get("scorecards", scorecard_id)
    if art is None:
        return None
    ln = art.model.line(line_id)
    return ln.title if ln else None


def _lines_agg(sc: Scope, atoms: list[dict]) -> dict:
    acc: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for a in atoms:
        t = acc[(a["scorecard_id"], a["line_id"])]
        t[0] += a["passes"]
        t[1] += a["fails"]
        t[2] += a["nas"]
    lines = []
    tp = tf = 0
    for (sid, lid), (p, f, n) in sorted(acc.items()):
        if p + f + n == 0:
            continue
        tp, tf = tp + p, tf + f
        lines.append(
            {"scorecard": sid, "line": lid, "title": _line_title(sc, sid, lid), "pass": p, "fail": f, "na": n,
             "applicable": p + f, "pass_rate": _rate(p, p + f)}
        )
    return {"value": _rate(tp, tp + tf), "pass": tp, "fail": tf, "lines": lines}


def _lines_detail(sc: Scope, atoms: list[dict]) -> dict:
    """Per scorecard line and verdict: up to DETAIL_LIMIT call ids (one bounded query each)."""
    tsql, tp = sc.time_clause("coalesce(c.occurred_at, c.created_at)")
    rsql, rp = sc.rep_clause("c.rep_id")
    totals: dict[tuple, dict[str, int]] = {}
    for a in atoms:
        t = totals.setdefault((a["scorecard_id"], a["line_id"]), {"pass": 0, "fail": 0, "na": 0})
        t["pass"] += a["passes"]
        t["fail"] += a["fails"]
        t["na"] += a["nas"]
    out: dict[str, Any] = {}
    for (sid, lid), counts in sorted(totals.items()):
        d = out[f"{sid}/{lid}"] = {}
        for verdict, total in counts.items():
            if not total:
                d[verdict] = []
                continue
            rows = sc.q(
                "select c.id from verdicts v join calls c on c.id = v.call_id where v.line_id = ? and v.verdict = ?"
                f" and c.scorecard_id = ? and c.live = 1{tsql}{rsql} limit {DETAIL_LIMIT}",
                [lid, verdict, sid] + tp + rp,
            )
            d[verdict] = sorted(r["id"] for r in rows)
            if total > len(rows):
                d[f"{verdict}_total"] = total
    return {"calls_by_line": out}


register(
    Metric(
        "verdicts_per_line",
        "Verdicts per rubric line",
        "share",
        "Effective verdicts (a human override wins) of live calls in the period, counted per scorecard line; "
        "pass rate = pass / (pass + fail), 'na' (line not applicable) left out. The headline is the pooled pass rate.",
        _line_atoms,
        _lines_agg,
        _lines_detail,
    )
)


# --------------------------------------------------------------------------- loop: methodology adherence


def _line_tags(sc: Scope) -> dict[tuple[str, str], list[str]]:
    tags: dict[tuple[str, str], list[str]] = {}
    if sc.playbook is None:
        return tags
    for art in sc.playbook.all("scorecards"):
        for ln in art.model.lines:
            tags[(art.id, ln.id)] = list(ln.methodology) or ["(untagged)"]
    return tags


def _adherence_agg(sc: Scope, atoms: list[dict]) -> dict:
    tags = _line_tags(sc)
    acc: dict[str, dict] = {}
    for a in atoms:
        for tag in tags.get((a["scorecard_id"], a["line_id"]), ["(not in playbook)"]):
            t = acc.setdefault(tag, {"tag": tag, "pass": 0, "fail": 0, "lines": defaultdict(lambda: [0, 0]), "scorecards": set()})
            t["pass"] += a["passes"]
            t["fail"] += a["fails"]
            lt = t["lines"][f"{a['scorecard_id']}/{a['line_id']}"]
            lt[0] += a["passes"]
            lt[1] += a["fails"]
            t["scorecards"].add(a["scorecard_id"])
    out, tp, tf = [], 0, 0
    for tag in sorted(acc):
        t = acc[tag]
        if t["pass"] + t["fail"] == 0:
            continue
        tp, tf = tp + t["pass"], tf + t["fail"]
        out.append(
            {
                "tag": tag,
                "pass": t["pass"],
                "applicable": t["pass"] + t["fail"],
                "adherence": _rate(t["pass"], t["pass"] + t["fail"]),
                "scorecards": sorted(t["scorecards"]),
                "lines": {k: _rate(p, p + f) for k, (p, f) in sorted(t["lines"].items()) if p + f},
            }
        )
    fam: dict[str, list[int]] = {}  # 'MEDDICC (Economic buyer)' and 'MEDDICC (Metrics)' -> MEDDICC
    for a in atoms:
        for f in sorted({t.split(" (")[0].strip() for t in tags.get((a["scorecard_id"], a["line_id"]), ["(not in playbook)"])}):
            t = fam.setdefault(f, [0, 0])
            t[0] += a["passes"]
            t[1] += a["passes"] + a["fails"]
    families = [{"methodology": f, "pass": p, "applicable": n, "adherence": _rate(p, n)} for f, (p, n) in sorted(fam.items()) if n]
    p = n = 0  # headline: each tagged line once, however many tags it has
    for a in atoms:
        if any(not t.startswith("(") for t in tags.get((a["scorecard_id"], a["line_id"]), [])):
            p += a["passes"]
            n += a["passes"] + a["fails"]
    return {"value": _rate(p, n), "pass": p, "applicable": n, "methodologies": families, "tags": out}


register(
    Metric(
        "adherence",
        "Methodology adherence",
        "share",
        "For each methodology tag on the playbook's scorecard lines (MEDDICC, BANT, SPIN, ...), the share of live calls "
        "in the period meeting the tagged lines: passes / (passes + fails) over those lines, 'na' left out; a line with "
        "several tags counts for each; `methodologies` pools the tags of one family ('MEDDICC (Metrics)' and "
        "'MEDDICC (Champion)' -> MEDDICC), each line once. The headline pools every tagged line once.",
        _line_atoms,
        _adherence_agg,
        _lines_detail,
    )
)


# --------------------------------------------------------------------------- loop: gaps


def _gap_rows(sc: Scope) -> list[dict]:
    key = ("gaps", tuple(sc.rep_ids or ()) if sc.rep_ids is not None else None)
    if key not in sc.cache:
        rsql, rp = sc.rep_clause()
        sc.cache[key] = sc.q(
            f"select id, rep_id, scorecard_id, line_id, status, opened_at, closed_at, close_reason from gaps where 1=1{rsql} order by id",
            rp,
        )
    return sc.cache[key]


def _gaps_atoms(sc: Scope) -> list[dict]:
    atoms = []
    for g in _gap_rows(sc):
        if sc.in_period(g["opened_at"]):
            atoms.append({"day": _day(g["opened_at"]), "kind": "opened", "gap": g})
        if g["closed_at"] and sc.in_period(g["closed_at"]):
            atoms.append({"day": _day(g["closed_at"]), "kind": "closed", "gap": g})
    return atoms


def _gaps_agg(sc: Scope, atoms: list[dict]) -> dict:
    opened = [a["gap"] for a in atoms if a["kind"] == "opened"]
    closed = [a["gap"] for a in atoms if a["kind"] == "closed"]
    end = sc.until_next
    open_at_end = [
        g for g in _gap_rows(sc)
        if (end is None or (g["opened_at"] or "") < end) and (not g["closed_at"] or (end is not None and g["closed_at"] >= end))
    ]
    by_line: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for g in opened:
        by_line[g["line_id"]][0] += 1
    for g in closed:
        by_line[g["line_id"]][1] += 1
    return {
        "value": len(opened),
        "opened": len(opened),
        "closed": len(closed),
        "open_at_end": len(open_at_end),
        "lines": [{"line": k, "opened": v[0], "closed": v[1]} for k, v in sorted(by_line.items())],
    }


def _gaps_detail(sc: Scope, atoms: list[dict]) -> dict:
    return {
        "opened": _limited([a["gap"] for a in atoms if a["kind"] == "opened"]),
        "closed": _limited([a["gap"] for a in atoms if a["kind"] == "closed"]),
    }


register(
    Metric(
        "gaps",
        "Gaps opened and closed",
        "gaps",
        "Gaps whose opened_at falls in the period (the headline), gaps whose closed_at falls in it, and gaps still open "
        "at the end of the period (opened before its end and not closed by then).",
        _gaps_atoms,
        _gaps_agg,
        _gaps_detail,
    )
)


# --------------------------------------------------------------------------- loop: gap -> certification


def _first_passed_certs(sc: Scope) -> dict[int, dict]:
    key = ("first_certs", tuple(sc.rep_ids or ()) if sc.rep_ids is not None else None)
    if key not in sc.cache:
        rsql, rp = sc.rep_clause()
        out: dict[int, dict] = {}
        for c in sc.q(
            f"select id, rep_id, gap_id, certification_id, session_id, created_at from certifications"
            f" where status = 'passed' and gap_id is not null{rsql} order by created_at, id",
            rp,
        ):
            out.setdefault(c["gap_id"], c)
        sc.cache[key] = out
    return sc.cache[key]


def _g2c_atoms(sc: Scope) -> list[dict]:
    certs = _first_passed_certs(sc)
    atoms = []
    for g in _gap_rows(sc):
        c = certs.get(g["id"])
        if c is None or not sc.in_period(c["created_at"]):
            continue
        t0, t1 = parse_utc(g["opened_at"]), parse_utc(c["created_at"])
        if t0 is None or t1 is None:
            continue
        atoms.append(
            {"day": _day(c["created_at"]), "gap_id": g["id"], "rep_id": g["rep_id"], "line_id": g["line_id"],
             "certification": c["id"], "opened_at": g["opened_at"], "certified_at": c["created_at"],
             "days": round((t1 - t0).total_seconds() / 86400, 4)}
        )
    return atoms


def _g2c_agg(sc: Scope, atoms: list[dict]) -> dict:
    days = [a["days"] for a in atoms]
    return {"value": _median(days), "gaps": len(days), "mean_days": round(sum(days) / len(days), 4) if days else None,
            "max_days": max(days) if days else None}


register(
    Metric(
        "gap_to_certification",
        "Time from gap to certification",
        "days",
        "For each gap whose first passed certification (certifications.gap_id, status passed) falls in the period: days "
        "from the gap's opened_at to that certification; the headline is the median over those gaps.",
        _g2c_atoms,
        _g2c_agg,
        lambda sc, atoms: {"gaps": _limited(atoms)},
    )
)


# --------------------------------------------------------------------------- loop: practice


def _practice_atoms(sc: Scope) -> list[dict]:
    tsql, tp = sc.time_clause("coalesce(ended_at, started_at)")
    rsql, rp = sc.rep_clause()
    return [
        {**r, "day": _day(r["ended_at"] or r["started_at"])}
        for r in sc.q(
            "select id, rep_id, scenario_id, assignment_id, status, score, passed, started_at, ended_at from practice_sessions"
            f" where 1=1{tsql}{rsql} order by started_at, id",
            tp + rp,
        )
    ]


def _practice_agg(sc: Scope, atoms: list[dict]) -> dict:
    ended = [a for a in atoms if a["ended_at"] and a["passed"] is not None]
    passed = sum(1 for a in ended if a["passed"])
    return {"value": len(ended), "sessions": len(atoms), "ended": len(ended), "passed": passed,
            "pass_rate": _rate(passed, len(ended)), "reps": len({a["rep_id"] for a in atoms})}


register(
    Metric(
        "practice",
        "Practice sessions and pass rate",
        "sessions",
        "Practice sessions that ended in the period (or started in it, when still running); headline = sessions ended "
        "with a verdict; pass rate = passed / ended.",
        _practice_atoms,
        _practice_agg,
        lambda sc, atoms: {"sessions": _limited(atoms)},
    )
)


# --------------------------------------------------------------------------- loop: certifications


def _cert_atoms(sc: Scope) -> list[dict]:
    tsql, tp = sc.time_clause("created_at")
    rsql, rp = sc.rep_clause()
    return [
        {**r, "day": _day(r["created_at"])}
        for r in sc.q(
            "select id, rep_id, certification_id, gap_id, session_id, status, score, attempt, created_at from certifications"
            f" where 1=1{tsql}{rsql} order by created_at, id",
            tp + rp,
        )
    ]


def _cert_agg(sc: Scope, atoms: list[dict]) -> dict:
    passed = [a for a in atoms if a["status"] == "passed"]
    return {"value": len(passed), "attempts": len(atoms), "passed": len(passed), "failed": len(atoms) - len(passed),
            "pass_rate": _rate(len(passed), len(atoms)), "reps_certified": len({a["rep_id"] for a in passed})}


register(
    Metric(
        "certifications",
        "Certifications passed",
        "certifications",
        "Certification attempts judged in the period; headline = attempts passed; pass rate = passed / attempts.",
        _cert_atoms,
        _cert_agg,
        lambda sc, atoms: {"attempts": _limited(atoms)},
    )
)


# --------------------------------------------------------------------------- loop: reps blocked now


def _gate_atoms(sc: Scope) -> list[dict]:
    rsql, rp = sc.rep_clause()
    return [
        {**r, "day": _day(r["created_at"])}
        for r in sc.q(
            "select id, rep_id, activity, certification_id, gap_id, status, reason, action, created_at, lifted_at from gates"
            f" where 1=1{rsql} order by id",
            rp,
        )
    ]


def _blocked_agg(sc: Scope, atoms: list[dict]) -> dict:
    blocked = [a for a in atoms if a["status"] == "blocked"]
    shadow = [a for a in atoms if a["status"] == "shadow"]
    return {"value": len({a["rep_id"] for a in blocked}), "reps_blocked": sorted({a["rep_id"] for a in blocked}),
            "gates_blocking": len(blocked), "gates_shadow": len(shadow),
            "activities": dict(sorted(_count(a["activity"] for a in blocked).items()))}


def _count(items: Iterable) -> dict:
    out: dict = defaultdict(int)
    for i in items:
        out[i] += 1
    return out


def _blocked_series(sc: Scope, atoms: list[dict]) -> list[dict]:
    """Reps blocked at the end of each week (shadow gates never block)."""
    days = [a["day"] for a in atoms if a["day"]]
    if not days:
        return []
    start = sc.since or date.fromisoformat(min(days))
    stop = sc.until or datetime.now(timezone.utc).date()
    out = []
    wk = date.fromisoformat(week_of(start))
    while wk <= stop:
        end = (wk + timedelta(days=7)).isoformat()
        reps = {
            a["rep_id"] for a in atoms
            if a["status"] != "shadow" and (a["created_at"] or "") < end and (not a["lifted_at"] or a["lifted_at"] >= end)
        }
        out.append({"week": wk.isoformat(), "value": len(reps)})
        wk += timedelta(days=7)
    return out


register(
    Metric(
        "blocked_now",
        "Reps blocked now",
        "reps",
        "Reps with at least one gate whose status is 'blocked' right now (shadow gates are counted apart and do not "
        "block); the period does not apply. The weekly series counts reps blocked at the end of each week.",
        _gate_atoms,
        _blocked_agg,
        lambda sc, atoms: {"gates": _limited([a for a in atoms if a["status"] in ("blocked", "shadow")])},
        _blocked_series,
    )
)


# --------------------------------------------------------------------------- loop: gap closure (before / after)


def _practice_window(sc: Scope) -> dict[int, tuple[str | None, str]]:
    """gap id -> (practice start, practice end): first session start of the gap's assignments
    (else the certifying session's start), and the first passed certification (else the last
    passed session's end)."""
    rsql, rp = sc.rep_clause("a.rep_id")
    starts: dict[int, str] = {}
    ends: dict[int, str] = {}
    for r in sc.q(
        "select a.gap_id, min(s.started_at) as start, max(case when s.passed = 1 then s.ended_at end) as passed_end"
        f" from assignments a join practice_sessions s on s.assignment_id = a.id where a.gap_id is not null{rsql} group by a.gap_id",
        rp,
    ):
        if r["start"]:
            starts[r["gap_id"]] = r["start"]
        if r["passed_end"]:
            ends[r["gap_id"]] = r["passed_end"]
    for gid, c in _first_passed_certs(sc).items():
        ends[gid] = c["created_at"]
        if gid not in starts and c.get("session_id"):
            s = sc.store.one("select started_at from practice_sessions where id = ?", [c["session_id"]])
            if s and s["started_at"]:
                starts[gid] = s["started_at"]
    return {gid: (starts.get(gid), end) for gid, end in ends.items()}


def _exact_line(sc: Scope, rep_id: str, line_id: str, scorecard_id: str | None, lo: str | None, hi: str | None,
                limit: int = DETAIL_LIMIT) -> list[dict]:
    """Live verdicts of one rep on one line with lo < occurred time < hi (strings; None = open)."""
    when = "coalesce(c.occurred_at, c.created_at)"
    sql = (
        f"select c.id as call_id, {when} as at, v.verdict from calls c join verdicts v on v.call_id = c.id and v.line_id = ?"
        " where c.rep_id = ? and c.live = 1 and v.verdict in ('pass', 'fail')"
    )
    params: list = [line_id, rep_id]
    if scorecard_id:
        sql += " and c.scorecard_id = ?"
        params.append(scorecard_id)
    if lo:
        sql += f" and {when} > ?"
        params.append(lo)
    if hi:
        sql += f" and {when} < ?"
        params.append(hi)
    return sc.q(sql + f" order by at, c.id limit {limit}", params)


_GAPS_JSON = (
    "g as materialized (select json_extract(value, '$.id') as gap_id, json_extract(value, '$.rep') as rep_id,"
    " json_extract(value, '$.line') as line_id, json_extract(value, '$.sc') as sc, json_extract(value, '$.t') as t,"
    " json_extract(value, '$.d') as d, json_extract(value, '$.n') as n from json_each(?))"
)


def _closure_counts(sc: Scope, items: list[dict]) -> dict[int, list[int]]:
    """gap id -> [before passes, before applicable, after passes, after applicable], in a few
    set-based queries: whole days from verdict_daily, the practice's own start/end days from
    the raw rows (strictly before the start, strictly after the end)."""
    out: dict[int, list[int]] = {it["id"]: [0, 0, 0, 0] for it in items}
    for i in range(0, len(items), 2000):
        chunk = items[i:i + 2000]
        days = json.dumps([{"id": it["id"], "rep": it["rep"], "line": it["line"], "sc": it["sc"], "s": it["start"][:10],
                            "e": it["end"][:10]} for it in chunk])
        for r in sc.q(
            "with g as materialized (select json_extract(value, '$.id') as gap_id, json_extract(value, '$.rep') as rep_id,"
            " json_extract(value, '$.line') as line_id, json_extract(value, '$.sc') as sc, json_extract(value, '$.s') as s,"
            " json_extract(value, '$.e') as e from json_each(?))"
            " select g.gap_id, sum(case when v.day < g.s then v.passes else 0 end) as bp,"
            " sum(case when v.day < g.s then v.passes + v.fails else 0 end) as bn,"
            " sum(case when v.day > g.e then v.passes else 0 end) as ap,"
            " sum(case when v.day > g.e then v.passes + v.fails else 0 end) as an"
            " from g join verdict_daily v on v.rep_id = g.rep_id and v.line_id = g.line_id"
            " where v.live = 1 and (g.sc is null or v.scorecard_id = g.sc) group by g.gap_id",
            [days],
        ):
            t = out[r["gap_id"]]
            t[0] += r["bp"] or 0
            t[1] += r["bn"] or 0
            t[2] += r["ap"] or 0
            t[3] += r["an"] or 0
        for side, key in (("before", "start"), ("after", "end")):
            # before: [start day 00:00, practice start); after: (practice end, the next day 00:00)
            edge = json.dumps([
                {"id": it["id"], "rep": it["rep"], "line": it["line"], "sc": it["sc"],
                 "d": it[key][:10] if side == "before" else it[key],
                 "n": it[key] if side == "before" else (date.fromisoformat(it[key][:10]) + timedelta(days=1)).isoformat()}
                for it in chunk
            ])
            lo = ">=" if side == "before" else ">"
            for r in sc.q(
                f"with {_GAPS_JSON}, b as ("
                " select g.gap_id, g.line_id, g.sc, c.id as call_id, c.live, c.scorecard_id"
                f" from g join calls c on c.rep_id = g.rep_id and c.occurred_at {lo} g.d and c.occurred_at < g.n"
                " union all"
                " select g.gap_id, g.line_id, g.sc, c.id, c.live, c.scorecard_id"
                f" from g join calls c on c.rep_id = g.rep_id and c.occurred_at is null and c.created_at {lo} g.d and c.created_at < g.n)"
                " select b.gap_id, sum(v.verdict = 'pass') as p, count(*) as n from b"
                " join verdicts v on v.call_id = b.call_id and v.line_id = b.line_id"
                " where b.live = 1 and v.verdict in ('pass', 'fail') and (b.sc is null or b.scorecard_id = b.sc)"
                " group by b.gap_id",
                [edge],
            ):
                t = out[r["gap_id"]]
                j = 0 if side == "before" else 2
                t[j] += r["p"] or 0
                t[j + 1] += r["n"] or 0
    return out


def _closure_atoms(sc: Scope) -> list[dict]:
    windows = _practice_window(sc)
    items = []
    for g in _gap_rows(sc):
        w = windows.get(g["id"])
        if w is None or not sc.in_period(w[1]):
            continue
        items.append({"id": g["id"], "rep": g["rep_id"], "line": g["line_id"], "sc": g["scorecard_id"],
                      "start": w[0] or w[1], "end": w[1], "gap": g})
    counts = _closure_counts(sc, items)
    atoms = []
    for it in items:
        g = it["gap"]
        bp, bn, ap, an = counts[it["id"]]
        atoms.append(
            {"day": _day(it["end"]), "gap_id": g["id"], "rep_id": g["rep_id"], "scorecard_id": g["scorecard_id"], "line_id": g["line_id"],
             "status": g["status"], "practice_start": it["start"], "practice_end": it["end"],
             "before": {"pass": bp, "applicable": bn, "rate": _rate(bp, bn)},
             "after": {"pass": ap, "applicable": an, "rate": _rate(ap, an)}}
        )
    return atoms


def _closure_agg(sc: Scope, atoms: list[dict]) -> dict:
    bp = sum(a["before"]["pass"] for a in atoms)
    bn = sum(a["before"]["applicable"] for a in atoms)
    ap = sum(a["after"]["pass"] for a in atoms)
    an = sum(a["after"]["applicable"] for a in atoms)
    before, after = _rate(bp, bn), _rate(ap, an)
    return {
        "value": round(after - before, 4) if before is not None and after is not None else None,
        "before_rate": before, "after_rate": after, "before_calls": bn, "after_calls": an, "gaps": len(atoms),
        "per_gap": [{k: v for k, v in a.items() if k != "day"} for a in atoms[:DETAIL_LIMIT]],
    }


def _closure_detail(sc: Scope, atoms: list[dict]) -> dict:
    out = []
    for a in atoms[:DETAIL_LIMIT]:  # (at most 100 calls each side; the counts are in per_gap)
        before = _exact_line(sc, a["rep_id"], a["line_id"], a["scorecard_id"], None, a["practice_start"], limit=100)
        after = _exact_line(sc, a["rep_id"], a["line_id"], a["scorecard_id"], a["practice_end"], None, limit=100)
        out.append({"gap_id": a["gap_id"], "before_calls": before, "after_calls": after})
    return {"gaps": out}


register(
    Metric(
        "gap_closure",
        "Gap closure: line pass rate before vs after practice",
        "change in share",
        "For each gap whose practice finished in the period (first passed certification for the gap, else its last "
        "passed practice session): the rep's pass rate on that line over live calls before the first practice session "
        "started, and over live calls after the practice finished ('na' left out). Headline = pooled after rate minus "
        "pooled before rate.",
        _closure_atoms,
        _closure_agg,
        _closure_detail,
    )
)


# --------------------------------------------------------------------------- business: ramp time


def _ramp_atoms(sc: Scope) -> list[dict]:
    rsql, rp = sc.rep_clause("r.id")
    reps = sc.q(f"select id, name, hire_date, quota from reps r where hire_date is not null{rsql} order by id", rp)
    quotas: dict[str, list[dict]] = defaultdict(list)
    rsql2, rp2 = sc.rep_clause("q.rep_id")
    for q in sc.q(
        "select q.rep_id, q.period, coalesce(q.quota, r.quota) as quota, q.attained from quotas q join reps r on r.id = q.rep_id"
        f" where 1=1{rsql2} order by q.rep_id, q.period",
        rp2,
    ):
        quotas[q["rep_id"]].append(q)
    atoms = []
    for r in reps:
        hire = _parse_day(r["hire_date"], "hire_date")
        if hire is None or not sc.in_period(hire.isoformat()):
            continue
        first = None
        for q in quotas.get(r["id"], []):
            p = str(q["period"])
            if not (len(p) == 7 and p[4] == "-"):
                continue  # ramp counts months
            start = _period_start(p)
            if start is None or _month_end(start) < hire:
                continue
            if q["quota"] and q["attained"] is not None and q["attained"] >= q["quota"]:
                first = start
                break
        atom = {"day": hire.isoformat(), "rep_id": r["id"], "hire_date": hire.isoformat(), "first_month_at_quota": None,
                "ramp_days": None, "ramp_months": None}
        if first:
            end = _month_end(first)
            atom.update(
                first_month_at_quota=first.strftime("%Y-%m"),
                ramp_days=(end - hire).days,
                ramp_months=(first.year - hire.year) * 12 + first.month - hire.month,
            )
        atoms.append(atom)
    return atoms


def _ramp_agg(sc: Scope, atoms: list[dict]) -> dict:
    ramped = [a for a in atoms if a["ramp_days"] is not None]
    return {"value": _median([a["ramp_days"] for a in ramped]), "reps": len(atoms), "ramped": len(ramped),
            "not_ramped": sorted(a["rep_id"] for a in atoms if a["ramp_days"] is None),
            "median_months": _median([a["ramp_months"] for a in ramped])}


register(
    Metric(
        "ramp_time",
        "Ramp time",
        "days",
        "For reps hired in the period: the first calendar month (quotas.period YYYY-MM, not ending before the hire date) "
        "in which attained >= quota; ramp = days from the hire date to the end of that month (and whole months between "
        "the hire month and it). Headline = median days over reps that reached quota; the others are listed as not ramped. "
        "Weekly series group reps by hire week.",
        _ramp_atoms,
        _ramp_agg,
        lambda sc, atoms: {"reps": _limited(atoms)},
    )
)


# --------------------------------------------------------------------------- business: deals


def _closed_deals(sc: Scope) -> list[dict]:
    key = ("closed_deals", sc.since, sc.until, tuple(sc.rep_ids or ()) if sc.rep_ids is not None else None)
    if key in sc.cache:
        return sc.cache[key]
    tsql, tp = sc.time_clause("closed_at")
    rsql, rp = sc.rep_clause()
    deals = sc.q(  # (+closed_at: scan the table rather than look every row up through the index)
        "select id, name, rep_id, amount, stage, outcome, created_at, closed_at from deals"
        f" where outcome in ('won', 'lost') and +closed_at is not null{tsql}{rsql}",
        tp + rp,
    )
    deals.sort(key=lambda d: (d["closed_at"], d["id"]))
    for d in deals:
        d["day"] = _day(d["closed_at"])
    sc.cache[key] = deals
    return deals


def _is_closing_stage(stage: str) -> bool:
    s = stage.strip().lower()
    return s in CLOSED_STAGE_WORDS or s.startswith("closed")


def _deal_stages(sc: Scope) -> dict[str, list[str]]:
    """deal id -> stages reached in order of `at` (first time each), for the closed deals in scope."""
    key = ("deal_stages", sc.since, sc.until, tuple(sc.rep_ids or ()) if sc.rep_ids is not None else None)
    if key in sc.cache:
        return sc.cache[key]
    wanted = {d["id"] for d in _closed_deals(sc)}
    with sc.store.lock:  # one sequential pass over the history beats a lookup per deal
        rows = sc.store.db.execute("select deal_id, stage, at, id from deal_stages").fetchall()
    per: dict[str, list[tuple]] = defaultdict(list)
    for r in rows:
        if r[0] in wanted:
            per[r[0]].append((r[2] or "", r[3], r[1]))
    stages: dict[str, list[str]] = {}
    for did, items in per.items():
        items.sort()
        lst: list[str] = []
        for _, _, st in items:
            if st not in lst:
                lst.append(st)
        stages[did] = lst
    sc.cache[key] = stages
    return stages


def _win_atoms(sc: Scope) -> list[dict]:
    """Grouped in SQL: per closing day, deals closed and won; per closing day and stage reached,
    deals and wins and the summed days from creation to first reaching the stage (for ordering)."""
    tsql, tp = sc.time_clause("d.closed_at")
    rsql, rp = sc.rep_clause("d.rep_id")
    closed = (f"select d.id, d.outcome, d.created_at, d.closed_at, d.stage from deals d"
              f" where d.outcome in ('won', 'lost') and +d.closed_at is not null{tsql}{rsql}")
    atoms = [
        {**r, "kind": "deals"}
        for r in sc.q(
            f"with c as materialized ({closed}) select substr(closed_at, 1, 10) as day, count(*) as n,"
            " sum(outcome = 'won') as won from c group by 1",
            tp + rp,
        )
    ]
    atoms += [
        {**r, "kind": "stage"}
        for r in sc.q(  # every stage in the history (a deal counted once per stage), then current stages missing from it
            f"with c as materialized ({closed})"
            " select substr(c.closed_at, 1, 10) as day, ds.stage, count(distinct ds.deal_id) as n,"
            " count(distinct case when c.outcome = 'won' then ds.deal_id end) as won, count(*) as rows,"
            " sum(julianday(ds.at) - julianday(c.created_at)) as offset_days"
            " from c join deal_stages ds on ds.deal_id = c.id group by 1, 2"
            " union all"
            " select substr(c.closed_at, 1, 10), c.stage, count(*), sum(c.outcome = 'won'), count(*),"
            " sum(julianday(c.closed_at) - julianday(c.created_at)) from c where c.stage is not null"
            " and not exists (select 1 from deal_stages x where x.deal_id = c.id and x.stage = c.stage) group by 1, 2",
            tp + rp,
        )
    ]
    return atoms


def _win_agg(sc: Scope, atoms: list[dict]) -> dict:
    acc: dict[str, list[float]] = {}
    closed = won = 0
    for a in atoms:
        if a["kind"] == "deals":
            closed += a["n"]
            won += a["won"]
        elif not _is_closing_stage(a["stage"]):
            t = acc.setdefault(a["stage"], [0, 0, 0.0, 0])
            t[0] += a["n"]
            t[1] += a["won"]
            t[2] += a["offset_days"] or 0.0
            t[3] += a["rows"]
    stages = sorted(acc.items(), key=lambda kv: (kv[1][2] / max(kv[1][3], 1), kv[0]))
    return {
        "value": _rate(won, closed), "closed": closed, "won": won,
        "stages": [{"stage": st, "reached": n, "won": w, "win_rate": _rate(w, n)} for st, (n, w, _, _) in stages],
    }


def _win_detail(sc: Scope, atoms: list[dict]) -> dict:
    deals = _closed_deals(sc)
    hist = _deal_stages(sc)
    return {"deals": _limited([{**{k: v for k, v in d.items() if k != "day"}, "stages": hist.get(d["id"], [])} for d in deals])}


def _cycle_atoms(sc: Scope) -> list[dict]:
    tsql, tp = sc.time_clause("closed_at")
    rsql, rp = sc.rep_clause()
    return sc.q(
        "select substr(closed_at, 1, 10) as day, outcome, julianday(closed_at) - julianday(created_at) as days from deals"
        f" where outcome in ('won', 'lost') and +closed_at is not null and created_at is not null{tsql}{rsql}",
        tp + rp,
    )


def _deal_detail(sc: Scope, atoms: list[dict]) -> dict:
    return {"deals": _limited([{k: v for k, v in d.items() if k != "day"} for d in atoms])}


register(
    Metric(
        "win_rate_by_stage",
        "Win rate by stage",
        "share",
        "Deals closed (won or lost) in the period; for each stage a deal reached (its deal_stages history plus its current "
        "stage, closing stages left out), win rate = won / closed deals that reached it; stages ordered by the average "
        "days from a deal's creation to entering them. Headline = won / closed.",
        _win_atoms,
        _win_agg,
        _win_detail,
    )
)


def _cycle_agg(sc: Scope, atoms: list[dict]) -> dict:
    all_days = [a["days"] for a in atoms if a["days"] is not None]
    won_days = [a["days"] for a in atoms if a["days"] is not None and a["outcome"] == "won"]
    return {"value": _median(all_days), "deals": len(all_days), "median_won_days": _median(won_days), "won": len(won_days)}


register(
    Metric(
        "deal_cycle_time",
        "Median deal cycle time",
        "days",
        "Deals closed (won or lost) in the period: days from created_at to closed_at; headline = median over all of them "
        "(median_won_days over won deals only).",
        _cycle_atoms,
        _cycle_agg,
        lambda sc, atoms: _deal_detail(sc, _closed_deals(sc)),
    )
)


# --------------------------------------------------------------------------- business: quota attainment


def _quota_atoms(sc: Scope) -> list[dict]:
    rsql, rp = sc.rep_clause("q.rep_id")
    atoms = []
    for q in sc.q(
        "select q.rep_id, q.period, coalesce(q.quota, r.quota) as quota, q.attained from quotas q join reps r on r.id = q.rep_id"
        f" where 1=1{rsql} order by q.period, q.rep_id",
        rp,
    ):
        start = _period_start(q["period"])
        if start is None or not sc.in_period(start.isoformat()) or not q["quota"] or q["attained"] is None:
            continue
        atoms.append({**q, "day": start.isoformat(), "attainment": round(q["attained"] / q["quota"], 4)})
    return atoms


def _quota_agg(sc: Scope, atoms: list[dict]) -> dict:
    vals = [a["attainment"] for a in atoms]
    at = sum(1 for v in vals if v >= 1)
    return {"value": _rate(at, len(vals)), "rep_periods": len(vals), "at_or_above": at, **quartiles(vals)}


register(
    Metric(
        "quota_attainment",
        "Quota attainment distribution",
        "share",
        "Quota periods (quotas table) starting in the period: attainment = attained / quota per rep and period; quartiles "
        "by linear interpolation (numpy's default); headline = share of rep-periods at or above quota.",
        _quota_atoms,
        _quota_agg,
        lambda sc, atoms: {"rep_periods": _limited(atoms)},
    )
)


# --------------------------------------------------------------------------- rollouts


def _rollout_atoms(sc: Scope) -> list[dict]:
    tsql, tp = sc.time_clause("landed_at")
    rows = sc.q(
        f"select id, kind, artifact_id, version, landed_at, due, targeted, completed_at, cycle_seconds from rollouts where 1=1{tsql} order by landed_at, id",
        tp,
    )
    if sc.rep_ids is not None:
        rsql, rp = sc.rep_clause()
        per: dict[int, list[dict]] = defaultdict(list)
        for a in sc.q(f"select rollout_id, rep_id, status, completed_at from assignments where rollout_id is not null{rsql}", rp):
            per[a["rollout_id"]].append(a)
        scoped = []
        for r in rows:
            mine = per.get(r["id"])
            if not mine:
                continue
            done = all(a["completed_at"] and a["status"] == "passed" for a in mine)
            end = max(a["completed_at"] for a in mine) if done else None
            t0, t1 = parse_utc(r["landed_at"]), parse_utc(end)
            scoped.append({**r, "targeted": len(mine), "completed_at": end,
                           "cycle_seconds": (t1 - t0).total_seconds() if t0 and t1 else None})
        rows = scoped
    out = []
    for r in rows:
        cyc = r["cycle_seconds"]
        if cyc is None and r["completed_at"]:
            t0, t1 = parse_utc(r["landed_at"]), parse_utc(r["completed_at"])
            cyc = (t1 - t0).total_seconds() if t0 and t1 else None
        out.append({**r, "day": _day(r["landed_at"]), "cycle_seconds": cyc,
                    "cycle_hours": round(cyc / 3600, 4) if cyc is not None else None,
                    "complete": cyc is not None})
    return out


def _rollout_agg(sc: Scope, atoms: list[dict]) -> dict:
    hours = [a["cycle_hours"] for a in atoms if a["cycle_hours"] is not None]
    return {"value": _median(hours), "rollouts": len(atoms), "complete": len(hours), "running": len(atoms) - len(hours),
            "per_rollout": [{k: a[k] for k in ("id", "kind", "artifact_id", "version", "landed_at", "targeted", "completed_at", "cycle_hours")} for a in atoms[:DETAIL_LIMIT]]}


register(
    Metric(
        "rollout_cycle_time",
        "Playbook-change cycle time",
        "hours",
        "Rollouts (a path or scenario file landing) in the period: hours from the file landing to every targeted rep "
        "having practised it (for a rep or team: their own assignments from the rollout); headline = median over "
        "complete rollouts; running ones are counted apart.",
        _rollout_atoms,
        _rollout_agg,
        lambda sc, atoms: {"rollouts": _limited(atoms)},
    )
)


# --------------------------------------------------------------------------- funnel


def _funnel_atoms(sc: Scope) -> list[dict]:
    atoms = [{"day": a["day"], "step": "calls_scored", "n": a["scored"]} for a in _coverage_atoms(sc) if a["scored"]]
    atoms += [{"day": a["day"], "step": f"gaps_{a['kind']}", "n": 1} for a in _gaps_atoms(sc)]
    for a in _practice_atoms(sc):
        atoms.append({"day": a["day"], "step": "practice_sessions", "n": 1})
        if a["passed"]:
            atoms.append({"day": a["day"], "step": "practice_passed", "n": 1})
    atoms += [{"day": a["day"], "step": "certifications_passed", "n": 1} for a in _cert_atoms(sc) if a["status"] == "passed"]
    return atoms


FUNNEL_STEPS = ("calls_scored", "gaps_opened", "practice_sessions", "practice_passed", "certifications_passed", "gaps_closed")


def _funnel_agg(sc: Scope, atoms: list[dict]) -> dict:
    tot = _count_n(atoms)
    steps = [{"step": s, "count": tot.get(s, 0)} for s in FUNNEL_STEPS]
    return {"value": tot.get("certifications_passed", 0), "steps": steps}


def _count_n(atoms: list[dict]) -> dict:
    out: dict = defaultdict(int)
    for a in atoms:
        out[a["step"]] += a["n"]
    return out


register(
    Metric(
        "funnel",
        "Loop funnel: calls scored to certifications",
        "count",
        "Counts in the period of each loop step: live calls scored, gaps opened, practice sessions, practice sessions "
        "passed, certifications passed, gaps closed (each as the metrics of the same names count them).",
        _funnel_atoms,
        _funnel_agg,
    )
)


METRIC_NAMES = tuple(REGISTRY)


# --------------------------------------------------------------------------- entry point


def _series(sc: Scope, m: Metric, atoms: list[dict]) -> list[dict]:
    if m.series is not None:
        return m.series(sc, atoms)
    groups: dict[str, list[dict]] = defaultdict(list)
    weeks_cache: dict[str, str] = {}
    for a in atoms:
        d = a.get("day")
        if not d:
            continue
        wk = weeks_cache.get(d)
        if wk is None:
            try:
                wk = weeks_cache[d] = week_of(d)
            except ValueError:
                continue
        groups[wk].append(a)
    out = []
    for wk in sorted(groups):
        res = m.agg(sc, groups[wk])
        res.pop("per_gap", None)
        res.pop("per_rollout", None)
        out.append({"week": wk, **res})
    return out


def compute_metric(sc: Scope, name: str) -> dict:
    m = REGISTRY[name]
    atoms = m.atoms(sc)
    res = {"name": m.name, "title": m.title, "unit": m.unit, "method": m.method, **m.agg(sc, atoms)}
    if sc.weekly:
        res["series"] = _series(sc, m, atoms)
    if sc.details:
        res["details"] = m.detail(sc, atoms) if m.detail else {"note": "this metric is made of the other metrics' rows; ask for those"}
    return res


def compute_metrics(
    coach,
    names: list[str] | str | None = None,
    rep: str | None = None,
    team: str | None = None,
    since: str | date | None = None,
    until: str | date | None = None,
    weekly: bool = False,
    details: bool = False,
) -> dict:
    """Compute the named metrics (all when `names` is None) for a rep, a team or everyone over a
    period. Returns {"scope": {...}, "generated_at", "metrics": {name: {name, title, unit, method,
    value, ..., series?, details?}}}. Raises MetricsError (a ValueError) naming what is wrong."""
    if isinstance(names, str):
        names = [n for n in names.replace(",", " ").split() if n]
    wanted = list(names) if names else list(METRIC_NAMES)
    unknown = [n for n in wanted if n not in REGISTRY]
    if unknown:
        raise MetricsError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRIC_NAMES)}")
    sc = resolve_scope(coach, rep=rep, team=team, since=since, until=until, weekly=weekly, details=details)
    return {
        "scope": {"label": sc.label, "rep": rep, "team": team, "reps": sc.rep_ids, "since": sc.since_s,
                  "until": sc.until.isoformat() if sc.until else None, "weekly": sc.weekly},
        "generated_at": now_iso(),
        "metrics": {n: compute_metric(sc, n) for n in wanted},
    }


def describe() -> list[dict]:
    """Every metric's name, title, unit and method (for docs, `coachloop metrics --list`, MCP)."""
    return [{"name": m.name, "title": m.title, "unit": m.unit, "method": m.method} for m in REGISTRY.values()]


_ID_FIELDS = ("scorecard", "line", "tag", "methodology", "stage", "step")
_VALUE_FIELDS = ("pass_rate", "adherence", "win_rate", "count", "opened")


def series_rows(result: dict) -> list[dict]:
    """Flatten a weekly `compute_metrics` result into long rows for export:
    {metric, scope, week, key, value, data}. key '' is the metric's headline; breakdown rows
    (per line, tag, stage, funnel step) carry their id as key ('disc/budget', 'MEDDICC', 'Demo')
    and their main figure as value; data holds every other figure as JSON."""
    rows = []
    scope = result["scope"]["label"]
    for name, m in result["metrics"].items():
        for pt in m.get("series", []):
            flat = {k: v for k, v in pt.items() if k not in ("week", "value") and not isinstance(v, list)}
            rows.append({"metric": name, "scope": scope, "week": pt["week"], "key": "", "value": pt.get("value"),
                         "data": json.dumps(flat, sort_keys=True, default=str)})
            for v in pt.values():
                if not (isinstance(v, list) and v and isinstance(v[0], dict)):
                    continue
                for item in v:
                    key = "/".join(str(item[f]) for f in _ID_FIELDS if item.get(f) is not None)
                    if not key:
                        continue
                    val = next((item[f] for f in _VALUE_FIELDS if f in item), None)
                    rows.append({"metric": name, "scope": scope, "week": pt["week"], "key": key, "value": val,
                                 "data": json.dumps(item, sort_keys=True, default=str)})
    return rows
