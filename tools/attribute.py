"""Gap attribution: turn stored verdicts into specific, stated behaviour gaps.

For every rep and rubric line, look at the rep's latest `window` *applicable* live calls on that
line (verdict `pass` or `fail`; `na` does not count), with the numbers in `playbook.yaml`:

    attribution:
      window: 5           # the rep's last 5 applicable calls per line
      gap_misses: 3       # 3 misses in the window open a gap
      min_applicable: 3   # fewer applicable calls than this is not a gap yet

The verdict read is the effective one (`verdicts.verdict`: a manager's override wins over the
engine's). Practice transcripts (`calls.live = 0`) never count.

Each gap carries its numbers (misses, window, rep rate, team rate, lost deals), the calls where
the behaviour failed, a breakdown by call metadata (call type, segment, deal stage, deal outcome),
a severity used for ranking, and a statement in a sales leader's words:

    Skipped budget_confirmed on 3 of the last 5 mid-market discovery calls (calls 41, 44, 47);
    team rate 82%; 2 of those 3 deals were lost.

Rules:
- The team rate of a line is the pooled pass rate of every *other* rep over their own windows.
- Severity = how far the rep trails the team (team_rate - rep_rate, or (1 - rep_rate) / 2 when
  there is no one to compare with) + half the share of missed calls whose deal was lost. Gaps are
  returned most severe first.
- A gap is never opened twice: while a gap on (rep, scorecard, line) is open, attribution only
  refreshes its numbers and statement.
- A closed gap starts its line afresh: only calls stored after the call that closed it count, so
  the misses that opened it do not reopen it at once. (Reopening after certification is the
  verifier's job, see tools/verify.py.)
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import Any

from playbook.models import AttributionPolicy
from store.db import Store, StoreError, dumps, now_iso

VERDICT_APPLICABLE = ("pass", "fail")
log = logging.getLogger("coachloop")


# --------------------------------------------------------------------------- reading verdicts


_WARNED: set[tuple] = set()


def _policy(coach) -> AttributionPolicy:
    pol = coach.playbook.policy.attribution
    key = (pol.window, pol.gap_misses, pol.min_applicable)
    if key not in _WARNED and (pol.gap_misses > pol.window or pol.min_applicable > pol.window):
        _WARNED.add(key)
        log.warning(
            "playbook.yaml: attribution: gap_misses (%s) and min_applicable (%s) must not exceed window (%s), "
            "or no gap can ever open; lower them or raise window",
            pol.gap_misses, pol.min_applicable, pol.window,
        )
    return pol


_ROW_COLUMNS = """
    v.call_id, v.line_id, v.verdict, v.quote, v.turn,
    c.rep_id, c.scorecard_id, c.call_type, c.segment, c.stage, c.deal_id, c.occurred_at as at,
    d.outcome as outcome, d.stage as deal_stage
"""

# The floor of a (rep, scorecard, line): the call that closed its last closed gap.
_FLOORS = """
    select rep_id, scorecard_id, line_id,
           max(cast(coalesce(case when json_valid(details) then json_extract(details, '$.closed_by_call') end, 0) as integer)) as floor
    from gaps where status = 'closed' group by rep_id, scorecard_id, line_id
"""


def _window_rows(
    store: Store,
    window: int,
    *,
    rep_id: str | None = None,
    scorecard_id: str | None = None,
    as_of_call: int | None = None,
) -> dict[tuple[str, str, str], list[dict]]:
    """(rep, scorecard, line) -> the latest `window` applicable verdicts on live calls, oldest
    first, joined to call and deal metadata. Calls are ordered by when they happened (then id);
    calls up to the one that closed the line's last gap do not count. One query (a window
    function), so the whole team costs one scan."""
    where = ["c.live = 1", "v.verdict in ('pass', 'fail')", "c.id > coalesce(f.floor, 0)"]
    params: list[Any] = []
    if rep_id:
        where.append("c.rep_id = ?")
        params.append(rep_id)
    if scorecard_id:
        # unary + keeps SQLite off the scorecard index: the rep's (rep_id, occurred_at) index is the
        # selective one, and a whole-team scan reads everything anyway
        where.append("+c.scorecard_id = ?")
        params.append(scorecard_id)
    if as_of_call is not None:
        where.append("+c.id <= ?")
        params.append(int(as_of_call))
    sql = f"""
        select * from (
            select {_ROW_COLUMNS},
                   row_number() over (partition by c.rep_id, c.scorecard_id, v.line_id
                                      order by c.occurred_at desc, c.id desc) as rn
            from calls c
            join verdicts v on v.call_id = c.id
            left join deals d on d.id = c.deal_id
            left join ({_FLOORS}) f on f.rep_id = c.rep_id and f.scorecard_id = c.scorecard_id and f.line_id = v.line_id
            where {' and '.join(where)}
        ) where rn <= ?
        order by rep_id, scorecard_id, line_id, rn desc
    """
    params.append(int(window))
    out: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for r in store.query(sql, params):
        out[(r["rep_id"], r["scorecard_id"], r["line_id"])].append(r)
    return dict(out)


def _rep_line_counts(
    store: Store, rep_id: str, scorecard_id: str, line_id: str, window: int, floor: int, as_of_call: int | None
) -> tuple[int, int]:
    """(passes, applicable) over one rep's window on one line: an index walk of the rep's
    latest calls, so the team rate of one line costs one short query per rep."""
    sql = """
        select v.verdict from calls c
        join verdicts v on v.call_id = c.id and v.line_id = ?
        where c.rep_id = ? and +c.scorecard_id = ? and c.live = 1 and v.verdict in ('pass', 'fail') and +c.id > ?
    """
    params: list[Any] = [line_id, rep_id, scorecard_id, floor]
    if as_of_call is not None:
        sql += " and +c.id <= ?"
        params.append(int(as_of_call))
    sql += " order by c.occurred_at desc, c.id desc limit ?"
    params.append(int(window))
    rows = store.query(sql, params)
    return sum(r["verdict"] == "pass" for r in rows), len(rows)


def _reset_floors(store: Store, rep_id: str | None = None) -> dict[tuple[str, str, str], int]:
    """(rep, scorecard, line) -> id of the call that closed the last closed gap there.

    Calls up to that one no longer count for that line (a closed gap starts afresh)."""
    sql = "select rep_id, scorecard_id, line_id, details from gaps where status = 'closed'"
    params: list[Any] = []
    if rep_id:
        sql += " and rep_id = ?"
        params.append(rep_id)
    floors: dict[tuple[str, str, str], int] = {}
    for g in store.query(sql, params):
        details = _loads(g["details"], {})
        floor = int(details.get("closed_by_call") or 0)
        key = (g["rep_id"], g["scorecard_id"], g["line_id"])
        floors[key] = max(floors.get(key, 0), floor)
    return floors


def _loads(text: str | None, default):
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


# --------------------------------------------------------------------------- wording


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{round(rate * 100)}%"


def _humanise(value: str) -> str:
    return str(value).replace("_", " ")


def _common(values: list) -> str | None:
    vals = {v for v in values}
    if len(vals) == 1:
        v = next(iter(vals))
        return v if v not in (None, "") else None
    return None


def _verb(coach, scorecard_id: str, line_id: str) -> str:
    try:
        line = coach.playbook.scorecard(scorecard_id).line(line_id)
    except Exception:
        line = None
    if line is not None and line.trigger is not None:
        return "Missed"  # a conditional line (e.g. pricing deflection): not skipped, handled badly
    return "Skipped"


def _ids(ids: list[int]) -> str:
    return ("call " if len(ids) == 1 else "calls ") + ", ".join(str(i) for i in ids)


def make_statement(
    *,
    verb: str,
    line_id: str,
    misses: int,
    applicable: int,
    window_rows: list[dict],
    miss_rows: list[dict],
    team_rate: float | None,
    deals_missed: int,
    lost_deals: int,
) -> str:
    """One sentence a sales leader would say about a gap, with its numbers and its calls."""
    # Qualifiers shared by the whole window go into the main phrase ("mid-market discovery calls");
    # qualifiers shared only by the misses are called out as a concentration.
    seg_all = _common([r["segment"] for r in window_rows])
    type_all = _common([r["call_type"] for r in window_rows])
    seg_miss = _common([r["segment"] for r in miss_rows]) if not seg_all else None
    type_miss = _common([r["call_type"] for r in miss_rows]) if not type_all else None
    stage_miss = _common([r["stage"] or r["deal_stage"] for r in miss_rows])

    qual = " ".join(_humanise(q) for q in (seg_all, type_all) if q)
    noun = "call" if applicable == 1 else "calls"
    head = f"{verb} {line_id} on {misses} of the last {applicable} {qual + ' ' if qual else ''}{noun}"
    extra = []
    conc = " ".join(_humanise(q) for q in (seg_miss, type_miss) if q)
    if conc and misses > 1:
        extra.append(f"all {misses} misses on {conc} calls")
    stages = [r["stage"] or r["deal_stage"] for r in window_rows]
    if stage_miss and misses > 1 and None not in stages and len(set(stages)) > 1:
        extra.append(f"all at the {_humanise(stage_miss)} stage")
    if extra:
        head += ", " + ", ".join(extra)
    head += f" ({_ids([r['call_id'] for r in miss_rows])})"
    parts = [head]
    parts.append(f"team rate {_pct(team_rate)}" if team_rate is not None else "no team comparison yet")
    if deals_missed:
        were = "was" if lost_deals == 1 else "were"
        if deals_missed == 1:
            parts.append("that deal was lost" if lost_deals else "that deal was not lost")
        else:
            parts.append(f"{lost_deals} of those {deals_missed} deals {were} lost")
    return "; ".join(parts) + "."


# --------------------------------------------------------------------------- computing gaps


def _breakdown(window_rows: list[dict], dims: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """dimension -> value -> {applicable, misses} over the window."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for dim in dims:
        table: dict[str, dict[str, int]] = {}
        for r in window_rows:
            if dim == "stage":
                val = r["stage"] or r["deal_stage"]
            else:
                val = r.get(dim)
            key = str(val) if val not in (None, "") else "unknown"
            cell = table.setdefault(key, {"applicable": 0, "misses": 0})
            cell["applicable"] += 1
            cell["misses"] += r["verdict"] == "fail"
        out[dim] = table
    return out


def _team_rates(windows: dict[tuple[str, str, str], list[dict]]) -> dict[tuple[str, str], dict[str, tuple[int, int]]]:
    """(scorecard, line) -> rep -> (passes, applicable) over that rep's window."""
    out: dict[tuple[str, str], dict[str, tuple[int, int]]] = defaultdict(dict)
    for (rep, sc, line), rows in windows.items():
        passes = sum(r["verdict"] == "pass" for r in rows)
        out[(sc, line)][rep] = (passes, len(rows))
    return out


def _team_rate_excluding(per_rep: dict[str, tuple[int, int]], rep: str) -> float | None:
    passes = sum(p for r, (p, n) in per_rep.items() if r != rep)
    total = sum(n for r, (p, n) in per_rep.items() if r != rep)
    return passes / total if total else None


def compute_gaps(
    coach, rep_id: str | None = None, *, scorecard_id: str | None = None, as_of_call: int | None = None
) -> list[dict]:
    """Gaps as the verdicts show them now (or as of the call with id `as_of_call`: later calls
    are ignored), without touching the store. Most severe first."""
    pol = _policy(coach)
    store: Store = coach.store
    windows = _window_rows(store, pol.window, rep_id=rep_id, scorecard_id=scorecard_id, as_of_call=as_of_call)
    team = _team_rates(windows) if not rep_id else None
    floors = _reset_floors(store) if rep_id else {}
    others = [r["id"] for r in store.query("select id from reps where id != ?", (rep_id,))] if rep_id else []
    gaps: list[dict] = []
    for (rep, sc, line), win in windows.items():
        if len(win) < pol.min_applicable:
            continue
        miss_rows = [r for r in win if r["verdict"] == "fail"]
        misses = len(miss_rows)
        if misses < pol.gap_misses:
            continue
        rep_rate = (len(win) - misses) / len(win)
        if team is not None:
            team_rate = _team_rate_excluding(team[(sc, line)], rep)
        else:
            # one rep (the orchestrator's case): the rest of the team's windows on this line only
            passes = total = 0
            for other in others:
                p, n = _rep_line_counts(store, other, sc, line, pol.window, floors.get((other, sc, line), 0), as_of_call)
                passes, total = passes + p, total + n
            team_rate = passes / total if total else None
        deals = {}
        for r in miss_rows:
            if r["deal_id"]:
                deals[r["deal_id"]] = r["outcome"]
        lost = sum(1 for o in deals.values() if o == "lost")
        trail = (team_rate - rep_rate) if team_rate is not None else (1.0 - rep_rate) / 2
        severity = round(max(trail, 0.0) + 0.5 * (lost / misses if misses else 0.0), 4)
        gaps.append(
            {
                "rep": rep,
                "rep_id": rep,
                "scorecard": sc,
                "line": line,
                "misses": misses,
                "applicable": len(win),
                "window": pol.window,
                "rep_rate": round(rep_rate, 4),
                "team_rate": None if team_rate is None else round(team_rate, 4),
                "call_ids": [r["call_id"] for r in miss_rows],
                "window_call_ids": [r["call_id"] for r in win],
                "deals": sorted(deals),
                "lost_deals": lost,
                "lost_deal_ids": sorted(d for d, o in deals.items() if o == "lost"),
                "breakdown": _breakdown(win, list(pol.breakdown)),
                "severity": severity,
                "statement": make_statement(
                    verb=_verb(coach, sc, line),
                    line_id=line,
                    misses=misses,
                    applicable=len(win),
                    window_rows=win,
                    miss_rows=miss_rows,
                    team_rate=team_rate,
                    deals_missed=len(deals),
                    lost_deals=lost,
                ),
                "quotes": [
                    {"call_id": r["call_id"], "quote": r["quote"], "turn": r["turn"]} for r in miss_rows if r.get("quote")
                ],
            }
        )
    gaps.sort(key=lambda g: (-g["severity"], -g["misses"], g["rep"], g["line"]))
    return gaps


# --------------------------------------------------------------------------- persistence


def _cause_for(store: Store, call_ids: list[int]) -> int | None:
    """The `call.scored` event of the latest call among `call_ids`."""
    for cid in sorted(call_ids, reverse=True):
        row = store.one(
            "select id from events where type = 'call.scored' and subject = ? order by id desc limit 1",
            (f"call:{cid}",),
        )
        if row:
            return row["id"]
    return None


def _row_to_gap(row: dict) -> dict:
    g = dict(row)
    g["call_ids"] = _loads(g.get("call_ids"), [])
    g["breakdown"] = _loads(g.get("breakdown"), {})
    g["details"] = _loads(g.get("details"), {})
    g["gap_id"] = g["id"]
    g["rep"] = g["rep_id"]
    g["line"] = g["line_id"]
    g["scorecard"] = g["scorecard_id"]
    return g


def get_gap(coach, gap_id: int) -> dict:
    row = coach.store.one("select * from gaps where id = ?", (gap_id,))
    if row is None:
        raise StoreError(f"unknown gap {gap_id}: list gaps with `coachloop attribute`")
    return _row_to_gap(row)


def _persist(coach, gap: dict, cause: int | None) -> dict:
    """Insert a new gap or refresh the open one on the same rep/scorecard/line. Inside a transaction."""
    store: Store = coach.store
    fields = {
        "statement": gap["statement"],
        "misses": gap["misses"],
        "window": gap["window"],
        "rep_rate": gap["rep_rate"],
        "team_rate": gap["team_rate"],
        "lost_deals": gap["lost_deals"],
        "severity": gap["severity"],
        "call_ids": dumps(gap["call_ids"]),
        "breakdown": dumps(gap["breakdown"]),
    }
    with store.transaction() as db:
        existing = store.one(
            "select * from gaps where rep_id = ? and scorecard_id = ? and line_id = ? and status = 'open' order by id limit 1",
            (gap["rep"], gap["scorecard"], gap["line"]),
        )
        if existing:
            changed = _loads(existing["call_ids"], []) != gap["call_ids"] or existing["statement"] != gap["statement"]
            if changed:
                db["gaps"].update(existing["id"], fields)
            out = dict(gap, gap_id=existing["id"], id=existing["id"], new=False, updated=changed, status="open")
            return out
        details = {
            "window_call_ids": gap["window_call_ids"],
            "deals": gap["deals"],
            "lost_deal_ids": gap["lost_deal_ids"],
            "applicable": gap["applicable"],
            "difficulty": 1,
            "reopened": 0,
            "quotes": gap["quotes"],
        }
        ev_cause = cause if cause is not None else _cause_for(store, gap["call_ids"])
        db["gaps"].insert(
            dict(
                fields,
                rep_id=gap["rep"],
                scorecard_id=gap["scorecard"],
                line_id=gap["line"],
                status="open",
                details=dumps(details),
                verify_passes=0,
                opened_at=now_iso(),
                cause_event_id=ev_cause,
            )
        )
        gap_id = db.execute("select last_insert_rowid()").fetchone()[0]
        event_id = store.event(
            "gap.opened",
            rep_id=gap["rep"],
            subject=f"gap:{gap_id}",
            cause=ev_cause,
            data={
                "gap_id": gap_id,
                "line": gap["line"],
                "scorecard": gap["scorecard"],
                "statement": gap["statement"],
                "misses": gap["misses"],
                "window": gap["window"],
                "call_ids": gap["call_ids"],
                "severity": gap["severity"],
            },
        )
        return dict(gap, gap_id=gap_id, id=gap_id, new=True, updated=False, status="open", event_id=event_id)


def attribute(
    coach,
    rep_id: str | None = None,
    *,
    persist: bool = True,
    scorecard_id: str | None = None,
    cause: int | None = None,
    as_of_call: int | None = None,
) -> list[dict]:
    """Find the behaviour gaps of one rep (or the whole team), most severe first.

    With `persist=True` each new gap is inserted into `gaps` with a `gap.opened` event whose cause
    is `cause` (default: the `call.scored` event of the latest missed call), all in one
    transaction; a gap already open on the same rep and line is refreshed, never duplicated. Each
    returned dict has `new` (True when this call opened it) and `gap_id` when persisted.

    `as_of_call` ignores calls stored after that one: the orchestrator passes the call it is
    handling, so replaying the event log opens each gap at the call that crossed the threshold.
    """
    if rep_id is not None and coach.store.one("select id from reps where id = ?", (rep_id,)) is None:
        raise StoreError(f"unknown rep '{rep_id}': add the rep first (rep ids are slugs such as 'priya-raman')")
    gaps = compute_gaps(coach, rep_id, scorecard_id=scorecard_id, as_of_call=as_of_call)
    if not persist:
        return gaps
    with coach.store.transaction():
        return [_persist(coach, g, cause) for g in gaps]


def open_gaps(coach, rep_id: str | None = None, *, line_id: str | None = None) -> list[dict]:
    """Open gaps from the store, most severe first."""
    sql = "select * from gaps where status = 'open'"
    params: list[Any] = []
    if rep_id:
        sql += " and rep_id = ?"
        params.append(rep_id)
    if line_id:
        sql += " and line_id = ?"
        params.append(line_id)
    sql += " order by severity desc, id"
    return [_row_to_gap(r) for r in coach.store.query(sql, params)]


def list_gaps(coach, rep_id: str | None = None, *, status: str | None = None) -> list[dict]:
    """Every gap (open and closed), newest first."""
    sql = "select * from gaps where 1=1"
    params: list[Any] = []
    if rep_id:
        sql += " and rep_id = ?"
        params.append(rep_id)
    if status:
        sql += " and status = ?"
        params.append(status)
    sql += " order by id desc"
    return [_row_to_gap(r) for r in coach.store.query(sql, params)]


def team_gaps(coach, *, scorecard_id: str | None = None) -> list[dict]:
    """Lines the team as a whole fails: pooled over every rep's window, the miss share reaches
    the policy's gap share (gap_misses / window). Each entry says how many reps have a gap there."""
    pol = _policy(coach)
    windows = _window_rows(coach.store, pol.window, scorecard_id=scorecard_id)
    team = _team_rates(windows)
    threshold = pol.gap_misses / pol.window
    out = []
    for (sc, line), per_rep in team.items():
        eligible = {r: pn for r, pn in per_rep.items() if pn[1] >= pol.min_applicable}
        if not eligible:
            continue
        passes = sum(p for p, n in eligible.values())
        total = sum(n for p, n in eligible.values())
        miss_share = 1 - passes / total
        reps_with_gap = sorted(r for r, (p, n) in eligible.items() if n - p >= pol.gap_misses)
        if miss_share < threshold:
            continue
        out.append(
            {
                "scorecard": sc,
                "line": line,
                "team_rate": round(passes / total, 4),
                "applicable": total,
                "reps": len(eligible),
                "reps_with_gap": reps_with_gap,
                "statement": (
                    f"Team-wide: {line} passes on {_pct(passes / total)} of the team's recent applicable calls "
                    f"({total} calls, {len(eligible)} reps); {len(reps_with_gap)} of {len(eligible)} reps have a gap there."
                ),
            }
        )
    out.sort(key=lambda g: (g["team_rate"], g["line"]))
    return out
