"""Each metric on the hand-checked data set in metrics_data.py; the right answers are worked out
in the comments and written here, not computed."""
from __future__ import annotations

import pytest

from metrics_data import build
from tools.metrics import METRIC_NAMES, MetricsError, compute_metrics


@pytest.fixture
def mc(tmp_path):
    c = build(tmp_path)
    yield c
    c.close()


def m(coach, name, **kw):
    return compute_metrics(coach, [name], **kw)["metrics"][name]


def test_coverage(mc):
    # live calls 1-10 and 12 = 11, call 10 unscored, plus one transcript file that failed: 10 / 12
    r = m(mc, "coverage")
    assert (r["calls"], r["scored"], r["failed_files"]) == (12, 10, 1)
    assert r["value"] == pytest.approx(10 / 12, abs=1e-4)
    assert m(mc, "coverage", rep="ana")["value"] == 1.0  # 7 of 7
    east = m(mc, "coverage", team="east")  # ana 7 + ben 2 of 3 (practice call 11 is not live)
    assert (east["calls"], east["scored"]) == (10, 9)
    wk = m(mc, "coverage", since="2026-01-12", until="2026-01-18")  # calls 3, 4, 5, 9, 10
    assert (wk["calls"], wk["scored"], wk["value"]) == (5, 4, 0.8)
    assert "scored" in r["method"]


def test_coverage_details_list_the_unscored_call_and_file(mc):
    d = m(mc, "coverage", details=True)["details"]
    assert [c["id"] for c in d["unscored_calls"]["items"]] == [10]
    assert d["failed_files"]["items"][0]["path"] == "inbox/broken.vtt"
    assert 11 not in d["scored_call_ids"] and len(d["scored_call_ids"]) == 10


def test_verdicts_per_line(mc):
    r = m(mc, "verdicts_per_line")
    lines = {ln["line"]: ln for ln in r["lines"]}
    # budget: ana F F F F P P F, ben P P, cy na -> 4 pass, 5 fail, 1 na
    assert (lines["budget"]["pass"], lines["budget"]["fail"], lines["budget"]["na"]) == (4, 5, 1)
    assert lines["budget"]["pass_rate"] == pytest.approx(4 / 9, abs=1e-4)
    assert lines["budget"]["title"] == "Budget confirmed"
    # pain: ana 6 pass 1 fail, ben 2 fail, cy pass -> 7 / 10
    assert lines["pain"]["pass_rate"] == 0.7
    # next_step: ana P P P F P (2 na), ben P F, cy P -> 6 / 8
    assert (lines["next_step"]["pass"], lines["next_step"]["fail"], lines["next_step"]["na"]) == (6, 2, 2)
    assert r["value"] == pytest.approx(17 / 27, abs=1e-4)  # pooled


def test_verdicts_per_line_weekly_for_one_rep(mc):
    r = m(mc, "verdicts_per_line", rep="Ana Diaz", weekly=True)
    series = {pt["week"]: {ln["line"]: ln for ln in pt["lines"]} for pt in r["series"]}
    assert sorted(series) == ["2026-01-05", "2026-01-12", "2026-01-19"]
    assert series["2026-01-05"]["budget"]["pass_rate"] == 0.0  # calls 1, 2
    assert series["2026-01-12"]["budget"]["pass_rate"] == pytest.approx(1 / 3, abs=1e-4)  # calls 3, 4, 5
    assert series["2026-01-19"]["budget"]["pass_rate"] == 0.5  # calls 6, 7


def test_verdicts_details_list_the_calls(mc):
    d = m(mc, "verdicts_per_line", rep="ben", details=True)["details"]["calls_by_line"]
    assert d["disc/pain"]["fail"] == [8, 9]
    assert 11 not in d["disc/budget"]["pass"]  # practice transcript left out


def test_adherence_by_methodology_tag(mc):
    r = m(mc, "adherence")
    tags = {t["tag"]: t for t in r["tags"]}
    assert tags["BANT"]["adherence"] == pytest.approx(4 / 9, abs=1e-4)  # budget only
    assert tags["MEDDICC"]["adherence"] == pytest.approx(11 / 19, abs=1e-4)  # budget + pain
    assert tags["(untagged)"]["adherence"] == 0.75
    assert r["value"] == pytest.approx(11 / 19, abs=1e-4)  # each tagged line once
    assert tags["MEDDICC"]["lines"]["disc/pain"] == 0.7
    fam = {f["methodology"]: f["adherence"] for f in r["methodologies"]}
    assert fam == {"(untagged)": 0.75, "BANT": pytest.approx(4 / 9, abs=1e-4), "MEDDICC": pytest.approx(11 / 19, abs=1e-4)}


def test_adherence_pools_a_methodology_family(tmp_path):
    from metrics_data import SCORECARD

    c = build(tmp_path)
    try:
        sc = c.playbook_dir / "scorecards" / "disc.yaml"
        sc.write_text(SCORECARD.replace("[BANT, MEDDICC]", "[BANT (Budget), MEDDICC (Economic buyer)]").replace("[MEDDICC]", "[MEDDICC (Identify pain)]"))
        c.reload()
        r = m(c, "adherence")
        assert {t["tag"] for t in r["tags"]} >= {"MEDDICC (Economic buyer)", "MEDDICC (Identify pain)", "BANT (Budget)"}
        fam = {f["methodology"]: f for f in r["methodologies"]}
        assert (fam["MEDDICC"]["pass"], fam["MEDDICC"]["applicable"]) == (11, 19)  # budget + pain, each once
    finally:
        c.close()


def test_gaps(mc):
    r = m(mc, "gaps")
    assert (r["opened"], r["closed"], r["open_at_end"]) == (3, 2, 1)
    wk = m(mc, "gaps", since="2026-01-12", until="2026-01-18")
    # gaps 1 and 2 opened that week; gap 1 closes on the 20th so both are open at its end
    assert (wk["opened"], wk["closed"], wk["open_at_end"]) == (2, 0, 2)
    d = m(mc, "gaps", rep="cy", details=True)
    assert [g["id"] for g in d["details"]["closed"]["items"]] == [3]


def test_gap_to_certification(mc):
    r = m(mc, "gap_to_certification")
    # gap 1 opened 01-13 12:00, certified 01-15 10:00 = 46 h; gap 2's certification failed
    assert r["gaps"] == 1
    assert r["value"] == pytest.approx(46 / 24, abs=1e-4)


def test_practice(mc):
    r = m(mc, "practice")
    assert (r["sessions"], r["ended"], r["passed"]) == (4, 3, 1)
    assert r["pass_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert m(mc, "practice", rep="ana")["pass_rate"] == 0.5


def test_certifications(mc):
    r = m(mc, "certifications")
    assert (r["attempts"], r["passed"], r["failed"], r["value"]) == (2, 1, 1, 1)
    assert m(mc, "certifications", team="west")["attempts"] == 0


def test_blocked_now(mc):
    r = m(mc, "blocked_now")
    assert r["value"] == 1 and r["reps_blocked"] == ["ben"]
    assert r["gates_shadow"] == 1
    s = {pt["week"]: pt["value"] for pt in m(mc, "blocked_now", since="2026-01-12", until="2026-01-18", weekly=True)["series"]}
    # at the end of the week of 01-12: ana's gate was lifted on the 15th, ben's still blocks
    assert s == {"2026-01-12": 1}


def test_gap_closure_before_and_after_practice(mc):
    r = m(mc, "gap_closure", details=True)
    # gap 1: practice from s1 start (01-14 09:00) to the certification (01-15 10:00).
    # before: calls 1, 2, 3 all fail budget -> 0/3; call 4 (01-15 08:00) is mid-practice, not counted;
    # after: calls 5 (same day, after), 6 pass, 7 fail -> 2/3
    assert r["gaps"] == 1
    g = r["per_gap"][0]
    assert g["before"] == {"pass": 0, "applicable": 3, "rate": 0.0}
    assert g["after"] == {"pass": 2, "applicable": 3, "rate": pytest.approx(2 / 3, abs=1e-4)}
    assert r["value"] == pytest.approx(2 / 3, abs=1e-4)
    det = r["details"]["gaps"][0]
    assert [c["call_id"] for c in det["before_calls"]] == [1, 2, 3]
    assert [c["call_id"] for c in det["after_calls"]] == [5, 6, 7]


def test_ramp_time(mc):
    r = m(mc, "ramp_time")
    # ana hired 01-10, first month at quota 2026-03 -> 03-31 - 01-10 = 80 days (2 months)
    # ben hired 02-01, at quota in 2026-02 -> 27 days; cy never reached quota
    assert (r["reps"], r["ramped"], r["not_ramped"]) == (3, 2, ["cy"])
    assert r["value"] == 53.5
    reps = {a["rep_id"]: a for a in m(mc, "ramp_time", details=True)["details"]["reps"]["items"]}
    assert (reps["ana"]["ramp_days"], reps["ana"]["ramp_months"], reps["ana"]["first_month_at_quota"]) == (80, 2, "2026-03")


def test_win_rate_by_stage(mc):
    r = m(mc, "win_rate_by_stage")
    # closed: d1 won, d2 lost, d3 lost, d4 won (d5 open)
    assert (r["closed"], r["won"], r["value"]) == (4, 2, 0.5)
    stages = [(s["stage"], s["reached"], s["won"], s["win_rate"]) for s in r["stages"]]
    assert stages == [("Discovery", 4, 2, 0.5), ("Demo", 3, 2, pytest.approx(2 / 3, abs=1e-4)), ("Proposal", 2, 2, 1.0)]
    jan = m(mc, "win_rate_by_stage", since="2026-01-01", until="2026-01-31")  # d4 closes in February
    assert (jan["closed"], jan["won"]) == (3, 1)


def test_deal_cycle_time(mc):
    r = m(mc, "deal_cycle_time", details=True)
    # d1 30 days, d2 20, d3 10, d4 30 -> median 25; won: 30, 30
    assert (r["deals"], r["value"], r["median_won_days"]) == (4, 25.0, 30.0)
    assert sorted(d["id"] for d in r["details"]["deals"]["items"]) == ["d1", "d2", "d3", "d4"]


def test_quota_attainment_distribution(mc):
    r = m(mc, "quota_attainment")
    # attainments 0.5 0.8 0.9 0.95 1.0 1.2
    assert r["rep_periods"] == 6 and r["at_or_above"] == 2
    assert r["value"] == pytest.approx(1 / 3, abs=1e-4)
    assert (r["q1"], r["median"], r["q3"]) == (pytest.approx(0.825), pytest.approx(0.925), pytest.approx(0.9875))
    assert m(mc, "quota_attainment", rep="ana", since="2026-02-01")["rep_periods"] == 2


def test_rollout_cycle_time(mc):
    r = m(mc, "rollout_cycle_time")
    # rollout 1: 01-10 00:00 -> 01-12 12:00 = 60 h; rollout 2: 86400 s = 24 h; rollout 3 running
    assert (r["rollouts"], r["complete"], r["running"]) == (3, 2, 1)
    assert r["value"] == 42.0
    ana = m(mc, "rollout_cycle_time", rep="ana")  # ana finished rollout 1 on 01-11 00:00 -> 24 h
    assert (ana["rollouts"], ana["value"]) == (1, 24.0)


def test_funnel(mc):
    r = m(mc, "funnel")
    assert {s["step"]: s["count"] for s in r["steps"]} == {
        "calls_scored": 10, "gaps_opened": 3, "practice_sessions": 4, "practice_passed": 1,
        "certifications_passed": 1, "gaps_closed": 2,
    }


def test_every_metric_answers_with_method_series_and_details(mc):
    res = compute_metrics(mc, weekly=True, details=True, team="east", since="2026-01-01", until="2026-03-31")
    assert set(res["metrics"]) == set(METRIC_NAMES)
    for name, r in res["metrics"].items():
        assert r["method"].strip().endswith(".") and len(r["method"]) > 40, name
        assert isinstance(r["series"], list), name
        assert "details" in r, name
    assert res["scope"]["reps"] == ["ana", "ben"]


def test_summaries_follow_overrides_and_moves(mc):
    # a human override flips call 7's budget verdict: the summary follows through the trigger
    mc.store.db.execute("update verdicts set verdict = 'pass' where call_id = 7 and line_id = 'budget'")
    assert m(mc, "verdicts_per_line", rep="ana")["lines"][0]["pass"] == 3
    # the call moves to ben: its verdicts move too
    mc.store.db.execute("update calls set rep_id = 'ben' where id = 7")
    assert m(mc, "coverage", rep="ana")["calls"] == 6
    lines = {ln["line"]: ln for ln in m(mc, "verdicts_per_line", rep="ben")["lines"]}
    assert lines["budget"]["pass"] == 3


def test_bad_requests_say_what_is_wrong(mc):
    with pytest.raises(MetricsError, match="unknown metric.*known: coverage"):
        compute_metrics(mc, ["covrage"])
    with pytest.raises(MetricsError, match="unknown rep 'zed'"):
        compute_metrics(mc, rep="zed")
    with pytest.raises(MetricsError, match="unknown team 'north'.*east, west"):
        compute_metrics(mc, team="north")
    with pytest.raises(MetricsError, match="since: '13/01/2026' is not a date"):
        compute_metrics(mc, since="13/01/2026")


def test_summary_tables_match_a_rebuild_after_random_writes(mc):
    """The triggers keep call_daily / verdict_daily(_all) equal to a recount from the raw rows."""
    import random

    from store.schema import rebuild_summaries

    rnd = random.Random(3)
    db = mc.store.db
    for i in range(200):
        op = rnd.random()
        cid = rnd.randint(1, 14)
        if op < 0.3:
            db.execute("insert or ignore into calls (id, source_hash, rep_id, call_type, scorecard_id, occurred_at, live, scored_at)"
                       " values (?, ?, ?, 'discovery', 'disc', ?, ?, ?)",
                       [100 + i, f"r{i}", rnd.choice(["ana", "ben", "cy"]), f"2026-01-{rnd.randint(1, 28):02d}T10:00:00+00:00",
                        rnd.randint(0, 1), None if rnd.random() < 0.2 else "2026-02-01"])
        elif op < 0.55:
            row = mc.store.one("select id from calls order by random() limit 1")
            db.execute("insert or replace into verdicts (call_id, line_id, verdict) values (?, ?, ?)",
                       [row["id"], rnd.choice(["budget", "pain", "x"]), rnd.choice(["pass", "fail", "na"])])
        elif op < 0.7:
            db.execute("update verdicts set verdict = ? where rowid = (select rowid from verdicts order by random() limit 1)",
                       [rnd.choice(["pass", "fail", "na"])])
        elif op < 0.85:
            db.execute("update calls set rep_id = ?, occurred_at = ?, live = ? where id = ?",
                       [rnd.choice(["ana", "ben", "cy"]), f"2026-01-{rnd.randint(1, 28):02d}T09:00:00+00:00", rnd.randint(0, 1), cid])
        else:
            db.execute("delete from verdicts where rowid = (select rowid from verdicts order by random() limit 1)")

    def snapshot():
        return {t: sorted(tuple(r.values()) for r in mc.store.query(f"select * from {t} where {cond}"))
                for t, cond in (("call_daily", "calls != 0 or scored != 0"), ("verdict_daily", "passes + fails + nas != 0"),
                                ("verdict_daily_all", "passes + fails + nas != 0"))}

    kept = snapshot()
    with mc.store.transaction() as tdb:
        rebuild_summaries(tdb)
    assert snapshot() == kept


def test_cli_metrics(mc, capsys):
    import json

    from server.cli import main

    base = ["--db", mc.store.path, "--playbook", str(mc.playbook_dir)]
    assert main(["metrics", "coverage", "win_rate_by_stage", "--team", "east", *base]) == 0
    out = capsys.readouterr().out
    assert "metrics for team east, all time" in out and "Calls scored (coverage) [coverage]: 90.0%" in out
    assert "how: " in out
    assert main(["metrics", "verdicts_per_line", "--rep", "ana", "--from", "2026-01-12", "--to", "2026-01-18", "--weekly", "--json", *base]) == 0
    res = json.loads(capsys.readouterr().out)
    m = res["metrics"]["verdicts_per_line"]
    assert [pt["week"] for pt in m["series"]] == ["2026-01-12"] and m["pass"] == 5
    # calls 3, 4, 5: budget F F P (1), pain F P P (2), next_step P na P (2) -> 5 of 8 applicable
    assert m["value"] == 0.625
    assert main(["metrics", "--list", *base]) == 0
    assert "gap_closure" in capsys.readouterr().out
    assert main(["metrics", "nope", *base]) == 1
    assert "unknown metric(s) nope" in capsys.readouterr().err
