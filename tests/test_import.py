"""The CSV importer on real-looking Salesforce and HubSpot exports: good files land whole, files
with bad rows land not at all and every bad row is reported (line, column, message)."""
from __future__ import annotations

import json

import pytest

from server.cli import main
from tools.importer import ImportFailed, import_deals, import_reps, parse_amount, parse_date, parse_period

# Salesforce "Users" report with quota columns, exported as CSV ("Export > Details only"), with
# the footer Salesforce appends.
SF_REPS = '''\ufeff"Full Name","Role","Manager","Email","Hire Date","Quota","Quota Period","Closed Won Amount","Active"
"Priya Raman","AE - Mid-Market","Dana Whitfield","priya.raman@example.com","1/15/2026","$50,000.00","Jan 2026","$21,500.00","1"
"Priya Raman","AE - Mid-Market","Dana Whitfield","priya.raman@example.com","1/15/2026","$50,000.00","Feb 2026","$48,000.00","1"
"Priya Raman","AE - Mid-Market","Dana Whitfield","priya.raman@example.com","1/15/2026","$50,000.00","Mar 2026","$52,250.00","1"
"Marcus Chen","AE - Enterprise","Dana Whitfield","marcus.chen@example.com","9/1/2025","$80,000.00","Jan 2026","$91,000.00","1"
"Élena Volkova","SDR","Sam Ortiz","elena.volkova@example.com","2/2/2026","$20,000.00","Feb 2026","$5,000.00","1"

"Confidential Information - Do Not Distribute"
"Copyright (c) 2000-2026 salesforce.com, inc. All rights reserved."
'''

SF_REPS_BAD = '''"Full Name","Role","Manager","Email","Hire Date","Quota","Quota Period","Closed Won Amount"
"Priya Raman","AE - Mid-Market","Dana Whitfield","priya.raman@example.com","1/15/2026","$50,000.00","Jan 2026","$21,500.00"
"","AE - Mid-Market","Dana Whitfield","nobody@example.com","1/15/2026","$50,000.00","Jan 2026","$1.00"
"Marcus Chen","AE - Enterprise","Dana Whitfield","marcus.chen@example.com","31/01/2026","$80,000.00","Jan 2026","$91,000.00"
"Tom Reed","AE","Dana Whitfield","tom.reed-at-example.com","1/4/2026","eighty grand","Jan 2026","$0.00"
"Ava Stone","AE","Dana Whitfield","ava@example.com","1/4/2026","$10,000.00","Smarch 2026","$0.00"
'''

# Salesforce "Opportunity History" style report: one row per stage change.
SF_OPPS = '''"Opportunity ID","Opportunity Name","Opportunity Owner","Stage","Amount","Created Date","Close Date","Last Stage Change Date","Won","Closed","Linked Calls"
"0065g00000AbCdE","Acme Corp - Platform","Priya Raman","Discovery","$24,000.00","1/5/2026","2/20/2026","1/5/2026","0","0",""
"0065g00000AbCdE","Acme Corp - Platform","Priya Raman","Demo","$24,000.00","1/5/2026","2/20/2026","1/19/2026","0","0","1"
"0065g00000AbCdE","Acme Corp - Platform","Priya Raman","Closed Won","$26,500.00","1/5/2026","2/20/2026","2/20/2026","1","1",""
"0065g00000FgHiJ","Globex - Renewal","Marcus Chen","Discovery","$80,000.00","1/8/2026","3/1/2026","1/8/2026","0","0",""
"0065g00000FgHiJ","Globex - Renewal","Marcus Chen","Closed Lost","$80,000.00","1/8/2026","3/1/2026","3/1/2026","0","1",""
"0065g00000KlMnO","Initech - Pilot","Priya Raman","Proposal/Price Quote","$12,000.00","2/1/2026","4/30/2026","2/15/2026","0","0","2"

"Grand Totals (6 records)"
'''

SF_OPPS_BAD = '''"Opportunity ID","Opportunity Name","Opportunity Owner","Stage","Amount","Created Date","Close Date","Won","Closed"
"0065g00000AbCdE","Acme Corp - Platform","Priya Raman","Closed Won","$26,500.00","1/5/2026","2/20/2026","1","1"
"0065g00000ZzZzZ","Hooli - Expansion","Gavin Belson","Discovery","$99,000.00","1/5/2026","2/20/2026","0","0"
"0065g00000YyYyY","Pied Piper","Priya Raman","Closed Won","lots","1/5/2026","2/20/2026","1","1"
"0065g00000XxXxX","Umbrella","Marcus Chen","Closed Lost","$5,000.00","3/5/2026","2/20/2026","0","1"
"0065g00000WwWwW","Stark","Marcus Chen","Negotiation","$5,000.00","1/5/2026","2/20/2026","maybe","0"
'''

# HubSpot "Deals" export (internal stage names and HubSpot's date-time layout).
HUBSPOT = '''Record ID,Deal Name,Deal Stage,Amount,Close Date,Create Date,Deal owner,Pipeline
9876543210,Wayne Enterprises,closedwon,15000,2026-02-14 17:30,2026-01-10 09:12,Marcus Chen,Sales Pipeline
9876543211,Cyberdyne,Presentation Scheduled,42000.5,2026-05-01 00:00,2026-02-03 11:00,Élena Volkova,Sales Pipeline
9876543212,Tyrell,closedlost,8000,2026-02-28 12:00,2026-02-01 08:00,priya raman,Sales Pipeline
'''


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def count(store, table):
    return store.one(f"select count(*) as n from {table}")["n"]


def seed_calls(store):
    store.db.execute("insert into reps (id, name) values ('seed', 'Seed Rep')")
    for i in (1, 2):
        store.db.execute(
            "insert into calls (id, source_hash, source_name, rep_id, call_type) values (?, ?, ?, 'seed', 'discovery')",
            [i, f"h{i}", f"call-{i}.vtt"],
        )


def test_salesforce_reps_with_quota_periods(coach, tmp_path):
    res = import_reps(coach, write(tmp_path, "users.csv", SF_REPS))
    assert (res["rows"], res["created"], res["updated"], res["quota_periods"]) == (5, 3, 0, 5)
    assert "Active" in res["ignored_columns"]
    priya = coach.store.one("select * from reps where id = 'priya-raman'")
    assert (priya["team"], priya["manager"], priya["hire_date"], priya["email"]) == ("AE - Mid-Market", "Dana Whitfield", "2026-01-15", "priya.raman@example.com")
    assert coach.store.one("select id from reps where name = 'Élena Volkova'")["id"] == "elena-volkova"
    q = coach.store.query("select period, quota, attained from quotas where rep_id = 'priya-raman' order by period")
    assert q == [{"period": "2026-01", "quota": 50000.0, "attained": 21500.0},
                 {"period": "2026-02", "quota": 50000.0, "attained": 48000.0},
                 {"period": "2026-03", "quota": 50000.0, "attained": 52250.0}]
    # importing the same file again changes nothing and creates nobody
    again = import_reps(coach, write(tmp_path, "users.csv", SF_REPS))
    assert (again["created"], again["updated"]) == (0, 3)
    assert count(coach.store, "reps") == 3 and count(coach.store, "quotas") == 5


def test_bad_rep_rows_import_nothing_and_are_all_reported(coach, tmp_path):
    with pytest.raises(ImportFailed) as ei:
        import_reps(coach, write(tmp_path, "users.csv", SF_REPS_BAD))
    errs = [(e.line, e.column) for e in ei.value.errors]
    assert errs == [(3, "Full Name"), (4, "Hire Date"), (5, "Email"), (5, "Quota"), (6, "Quota Period")]
    msgs = str(ei.value)
    assert "nothing imported, 5 bad row(s)" in msgs and "'31/01/2026' is not a date" in msgs and "'eighty grand' is not an amount" in msgs
    assert count(coach.store, "reps") == 0 and count(coach.store, "quotas") == 0


def test_salesforce_opportunity_history(coach, tmp_path):
    seed_calls(coach.store)
    import_reps(coach, write(tmp_path, "users.csv", SF_REPS))
    res = import_deals(coach, write(tmp_path, "opps.csv", SF_OPPS))
    assert (res["rows"], res["deals"], res["created"], res["stages_added"], res["calls_linked"]) == (6, 3, 3, 6, 2)
    acme = coach.store.one("select * from deals where id = '0065g00000AbCdE'")
    assert (acme["rep_id"], acme["outcome"], acme["amount"], acme["stage"]) == ("priya-raman", "won", 26500.0, "Closed Won")
    assert acme["created_at"].startswith("2026-01-05") and acme["closed_at"].startswith("2026-02-20")
    hist = coach.store.query("select stage, substr(at, 1, 10) as day from deal_stages where deal_id = '0065g00000AbCdE' order by at")
    assert hist == [{"stage": "Discovery", "day": "2026-01-05"}, {"stage": "Demo", "day": "2026-01-19"}, {"stage": "Closed Won", "day": "2026-02-20"}]
    assert coach.store.one("select outcome from deals where id = '0065g00000FgHiJ'")["outcome"] == "lost"
    assert coach.store.one("select outcome, closed_at from deals where id = '0065g00000KlMnO'") == {"outcome": "open", "closed_at": None}
    assert [r["deal_id"] for r in coach.store.query("select deal_id from calls order by id")] == ["0065g00000AbCdE", "0065g00000KlMnO"]
    # re-import: no new stages
    again = import_deals(coach, write(tmp_path, "opps.csv", SF_OPPS))
    assert (again["created"], again["stages_added"]) == (0, 0)


def test_bad_deal_rows_import_nothing_and_are_all_reported(coach, tmp_path):
    import_reps(coach, write(tmp_path, "users.csv", SF_REPS))
    with pytest.raises(ImportFailed) as ei:
        import_deals(coach, write(tmp_path, "opps.csv", SF_OPPS_BAD))
    got = [(e.line, e.column, e.message.split(";")[0][:30]) for e in ei.value.errors]
    assert [(l, c) for l, c, _ in got] == [(3, "Opportunity Owner"), (4, "Amount"), (5, "Close Date"), (6, "Won")]
    assert "'Gavin Belson' is not a known rep" in str(ei.value)
    assert "close date 2026-02-20 is before the created date 2026-03-05" in str(ei.value)
    assert count(coach.store, "deals") == 0 and count(coach.store, "deal_stages") == 0  # not even the good first row


def test_hubspot_deals(coach, tmp_path):
    import_reps(coach, write(tmp_path, "users.csv", SF_REPS))
    res = import_deals(coach, write(tmp_path, "hubspot.csv", HUBSPOT))
    assert (res["deals"], res["created"]) == (3, 3)
    assert "Pipeline" in res["ignored_columns"]
    rows = {r["id"]: r for r in coach.store.query("select * from deals")}
    assert rows["9876543210"]["outcome"] == "won" and rows["9876543210"]["closed_at"].startswith("2026-02-14T17:30")
    assert rows["9876543211"]["rep_id"] == "elena-volkova" and rows["9876543211"]["amount"] == 42000.5
    assert rows["9876543212"]["rep_id"] == "priya-raman" and rows["9876543212"]["outcome"] == "lost"
    assert rows["9876543210"]["created_at"].startswith("2026-01-10T09:12")


def test_mapping_file_and_date_format(coach, tmp_path):
    csv_text = "Seller,Squad,Started,Target,Month,Booked\nNia Long,emea,31/01/2026,\"10.000\",2026-02,12000\n"
    mapping = write(tmp_path, "map.yaml", "columns:\n  Seller: name\n  Squad: team\n  Started: hire_date\n  Target: ignore\n"
                                            "  Month: period\n  Booked: attained\ndate_format: '%d/%m/%Y'\n")
    res = import_reps(coach, write(tmp_path, "reps.csv", csv_text), mapping)
    assert res["created"] == 1
    assert coach.store.one("select team, hire_date from reps where id = 'nia-long'") == {"team": "emea", "hire_date": "2026-01-31"}
    assert coach.store.one("select attained from quotas where rep_id = 'nia-long' and period = '2026-02'")["attained"] == 12000.0
    with pytest.raises(ValueError, match="maps to unknown field 'nme'"):
        import_reps(coach, write(tmp_path, "reps.csv", csv_text), ["Seller=nme"])


def test_missing_required_column_names_the_columns(coach, tmp_path):
    with pytest.raises(ImportFailed, match="no column for owner; columns are: Deal Name, Stage"):
        import_deals(coach, write(tmp_path, "d.csv", "Deal Name,Stage\nX,Demo\n"))


def test_parsers():
    assert parse_amount("$12,500.00") == 12500.0 and parse_amount("USD 7 000") == 7000.0 and parse_amount("99") == 99.0
    assert parse_date("3/14/2026", []) == "2026-03-14" and parse_date("2026-03-14 15:30", []).startswith("2026-03-14T15:30")
    assert parse_period("Mar 2026") == "2026-03" and parse_period("Q2 2026") == "2026-Q2" and parse_period("03/2026") == "2026-03"
    with pytest.raises(ValueError):
        parse_amount("-5")


def test_cli_import_reports_every_bad_row_and_exits_1(tmp_path, playbook_dir, capsys):
    db = tmp_path / "cli.db"
    bad = write(tmp_path, "users.csv", SF_REPS_BAD)
    rc = main(["import", "reps", str(bad), "--db", str(db), "--playbook", str(playbook_dir)])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("users.csv: line ") == 5 and "line 4, column 'Hire Date'" in err
    good = write(tmp_path, "good.csv", SF_REPS)
    assert main(["import", "reps", str(good), "--db", str(db), "--playbook", str(playbook_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["created"] == 3
    opps = write(tmp_path, "h.csv", HUBSPOT)
    assert main(["import", "deals", str(opps), "--db", str(db), "--playbook", str(playbook_dir), "--map", "Pipeline=ignore"]) == 0
    assert "3 deals" in capsys.readouterr().out
