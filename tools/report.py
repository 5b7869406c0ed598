"""`coachloop report --out report.html`: one self-contained HTML page, charts drawn as inline SVG by
a small inline script (report_assets/report.js); no network needed to open it.

    write_report(coach, out, rep=None, team=None, since=None, until=None) -> info
    report_data(coach, rep=None, team=None, since=None, until=None) -> dict   (what the page draws)

Charts: each rep's pass rate per rubric line per week with gap-opened, certification and
gap-closed markers; the adherence heatmap (rep by line); before/after pass rates for closed gaps;
the funnel from calls scored to certifications. When the script has drawn everything it sets
`data-ready="1"` on <body> and a count of drawn marks on each chart (`data-series`, `data-cells`,
`data-bars`, `data-steps`), which the browser test reads.
"""
from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from store.db import now_iso

from .metrics import compute_metrics, resolve_scope, week_of

ASSETS = Path(__file__).with_name("report_assets")


def _rep_line_rows(sc) -> list[dict]:
    dsql, dp = sc.day_clause()
    rsql, rp = sc.rep_clause()
    return sc.q(
        "select rep_id, day, scorecard_id, line_id, sum(passes) as p, sum(fails) as f from verdict_daily"
        f" where live = 1{dsql}{rsql} group by rep_id, day, scorecard_id, line_id",
        dp + rp,
    )


def report_data(coach, rep: str | None = None, team: str | None = None, since: str | None = None, until: str | None = None) -> dict:
    """Everything the page draws, as plain JSON-able data."""
    sc = resolve_scope(coach, rep=rep, team=team, since=since, until=until)
    rsql, rp = sc.rep_clause("id")
    reps = {r["id"]: r for r in sc.q(f"select id, name, team from reps where 1=1{rsql} order by name", rp)}

    titles: dict[str, str] = {}
    if getattr(coach, "playbook", None) is not None:
        for art in coach.playbook.all("scorecards"):
            for ln in art.model.lines:
                titles[f"{art.id}/{ln.id}"] = ln.title

    weekly: dict[str, dict[str, dict[str, list[int]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: [0, 0])))
    totals: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    weeks: set[str] = set()
    wk_cache: dict[str, str] = {}
    for r in _rep_line_rows(sc):
        if r["p"] + r["f"] == 0:
            continue
        wk = wk_cache.get(r["day"]) or wk_cache.setdefault(r["day"], week_of(r["day"]))
        key = f"{r['scorecard_id']}/{r['line_id']}"
        t = weekly[r["rep_id"]][key][wk]
        t[0] += r["p"]
        t[1] += r["p"] + r["f"]
        tt = totals[r["rep_id"]][key]
        tt[0] += r["p"]
        tt[1] += r["p"] + r["f"]
        weeks.add(wk)
    lines = sorted({k for per in totals.values() for k in per})

    gsql, gp = sc.rep_clause("rep_id")
    markers: dict[str, list[dict]] = defaultdict(list)
    for g in sc.q(f"select id, rep_id, scorecard_id, line_id, status, opened_at, closed_at from gaps where 1=1{gsql} order by id", gp):
        key = f"{g['scorecard_id']}/{g['line_id']}" if g["scorecard_id"] else g["line_id"]
        if g["opened_at"] and sc.in_period(g["opened_at"]):
            markers[g["rep_id"]].append({"kind": "gap", "at": g["opened_at"], "week": week_of(g["opened_at"]), "line": key, "gap": g["id"]})
        if g["closed_at"] and sc.in_period(g["closed_at"]):
            markers[g["rep_id"]].append({"kind": "closed", "at": g["closed_at"], "week": week_of(g["closed_at"]), "line": key, "gap": g["id"]})
    for c in sc.q(
        "select c.id, c.rep_id, c.certification_id, c.created_at, g.scorecard_id, g.line_id from certifications c"
        f" left join gaps g on g.id = c.gap_id where c.status = 'passed'{sc.rep_clause('c.rep_id')[0]} order by c.id",
        sc.rep_clause("c.rep_id")[1],
    ):
        if c["created_at"] and sc.in_period(c["created_at"]):
            line = f"{c['scorecard_id']}/{c['line_id']}" if c["line_id"] else None
            markers[c["rep_id"]].append({"kind": "certified", "at": c["created_at"], "week": week_of(c["created_at"]), "line": line,
                                         "certification": c["certification_id"]})
    for m in (x for per in markers.values() for x in per):
        weeks.add(m["week"])
    week_list = sorted(weeks)

    rep_series = []
    for rid in sorted(set(weekly) | set(markers), key=lambda r: (reps.get(r, {}).get("name") or r)):
        rep_series.append({
            "rep": rid,
            "name": (reps.get(rid) or {}).get("name") or rid,
            "team": (reps.get(rid) or {}).get("team"),
            "lines": [
                {"line": key, "title": titles.get(key, key.split("/")[-1]),
                 "points": [{"week": wk, "rate": round(p / n, 4), "n": n} for wk, (p, n) in sorted(per.items()) if n]}
                for key, per in sorted(weekly.get(rid, {}).items())
            ],
            "markers": sorted(markers.get(rid, []), key=lambda m: m["at"]),
        })

    heat = {
        "reps": [{"rep": rid, "name": (reps.get(rid) or {}).get("name") or rid} for rid in sorted(totals, key=lambda r: (reps.get(r, {}).get("name") or r))],
        "lines": [{"line": k, "title": titles.get(k, k.split("/")[-1])} for k in lines],
        "cells": [
            {"rep": rid, "line": k, "rate": round(p / n, 4), "n": n}
            for rid, per in totals.items() for k, (p, n) in per.items() if n
        ],
    }

    res = compute_metrics(coach, ["gap_closure", "funnel", "coverage", "adherence", "verdicts_per_line", "win_rate_by_stage",
                                  "deal_cycle_time", "quota_attainment", "blocked_now"],
                          rep=sc.rep_ids[0] if rep else None, team=team, since=since, until=until)["metrics"]
    closed = [g for g in res["gap_closure"]["per_gap"] if g["status"] == "closed"]
    before_after = [
        {"gap": g["gap_id"], "rep": g["rep_id"], "name": (reps.get(g["rep_id"]) or {}).get("name") or g["rep_id"],
         "line": f"{g['scorecard_id']}/{g['line_id']}", "title": titles.get(f"{g['scorecard_id']}/{g['line_id']}", g["line_id"]),
         "before": g["before"], "after": g["after"]}
        for g in closed
    ]
    kpis = [
        {"name": n, "title": res[n]["title"], "value": res[n]["value"], "unit": res[n]["unit"], "method": res[n]["method"]}
        for n in ("coverage", "verdicts_per_line", "adherence", "blocked_now", "win_rate_by_stage", "deal_cycle_time", "quota_attainment", "gap_closure")
    ]
    return {
        "title": f"coachloop report: {sc.label}",
        "team": getattr(getattr(getattr(coach, "playbook", None), "policy", None), "team", None),
        "scope": {"label": sc.label, "since": sc.since_s, "until": sc.until.isoformat() if sc.until else None},
        "generated_at": now_iso(),
        "weeks": week_list,
        "reps": rep_series,
        "heatmap": heat,
        "before_after": before_after,
        "funnel": res["funnel"]["steps"],
        "funnel_method": res["funnel"]["method"],
        "closure_method": res["gap_closure"]["method"],
        "adherence_tags": res["adherence"]["tags"],
        "adherence_methodologies": res["adherence"]["methodologies"],
        "kpis": kpis,
    }


def render_html(data: dict) -> str:
    css = (ASSETS / "report.css").read_text(encoding="utf-8")
    js = (ASSETS / "report.js").read_text(encoding="utf-8")
    # no '<' at all inside the data block: nothing in a name can close the script or open a comment
    payload = json.dumps(data, ensure_ascii=False, default=str).replace("<", "\\u003c")
    title = html.escape(data["title"])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body data-ready="0">
<header>
  <h1>{title}</h1>
  <p class="sub">{html.escape(data.get('team') or '')} &middot; generated {html.escape(data['generated_at'])}
  &middot; period {html.escape(data['scope']['since'] or 'start')} to {html.escape(data['scope']['until'] or 'now')}</p>
  <noscript><p class="warn">This report draws its charts with JavaScript; enable it to see them. The data is embedded in the page.</p></noscript>
</header>
<section id="kpis" class="kpis"></section>
<section>
  <h2>Funnel: from calls scored to certifications</h2>
  <p class="method" id="funnel-method"></p>
  <div id="funnel" class="chart" data-steps="0"></div>
</section>
<section>
  <h2>Methodology adherence: rep by line</h2>
  <p class="method">Each cell: the rep's pass rate on the line over live calls in the period (pass / (pass + fail)); hover for counts.</p>
  <div id="heatmap" class="chart" data-cells="0"></div>
  <div id="tags" class="tags"></div>
</section>
<section>
  <h2>Closed gaps: pass rate before and after practice</h2>
  <p class="method" id="closure-method"></p>
  <div id="before-after" class="chart" data-bars="0"></div>
</section>
<section>
  <h2>Each rep's line pass rates by week</h2>
  <p class="method">One line per rubric line (weekly pass rate on live calls). Markers: <span class="mk gap">&#9650;</span> gap opened,
  <span class="mk cert">&#9679;</span> certification passed, <span class="mk closed">&#9670;</span> gap closed.</p>
  <div id="rep-charts" class="reps" data-series="0" data-markers="0"></div>
</section>
<footer>Made by coachloop. Every number is computed from the store; `coachloop metrics --details` lists the calls, sessions and deals behind it.</footer>
<script type="application/json" id="report-data">{payload}</script>
<script>
{js}
</script>
</body>
</html>
"""


def write_report(coach, out: str | Path, rep: str | None = None, team: str | None = None, since: str | None = None,
                 until: str | None = None) -> dict[str, Any]:
    data = report_data(coach, rep=rep, team=team, since=since, until=until)
    text = render_html(data)
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"{out} is a folder: name the HTML file to write, e.g. {out / 'report.html'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return {"path": str(out), "bytes": len(text.encode("utf-8")), "reps": len(data["reps"]), "lines": len(data["heatmap"]["lines"]),
            "closed_gaps": len(data["before_after"]), "weeks": len(data["weeks"])}
