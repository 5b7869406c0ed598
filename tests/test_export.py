"""Export: every table and the metric series, csv / jsonl / parquet, incremental by cursor."""
from __future__ import annotations

import csv
import json
import sys

import pytest

from metrics_data import build
from server.cli import main
from tools.export import ExportError, export, normalise_cursor


@pytest.fixture
def mc(tmp_path):
    c = build(tmp_path)
    yield c
    c.close()


def read_jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_jsonl_full_then_incremental(mc, tmp_path):
    out1 = tmp_path / "x1"
    man = export(mc, out1, "jsonl")
    assert man["since"] is None and man["cursor"]
    t = man["tables"]
    for name in ("reps", "quotas", "deals", "deal_stages", "calls", "verdicts", "gaps", "assignments", "practice_sessions",
                 "certifications", "gates", "events", "rollouts", "ingested_files", "metric_series"):
        assert name in t, name
        assert (out1 / t[name]["file"]).exists()
    assert "verdict_daily" not in t and "meta" not in t
    assert t["calls"]["rows"] == 12 and t["verdicts"]["rows"] == 33 and t["reps"]["rows"] == 3
    assert t["verdicts"]["primary_key"] == ["call_id", "line_id"]
    assert {"name": "updated_at", "type": "TEXT"} in t["calls"]["columns"]
    calls = read_jsonl(out1 / "calls.jsonl")
    assert [c["id"] for c in calls] == list(range(1, 13))
    assert all(c["updated_at"] <= man["cursor"] for c in calls)
    assert json.loads((out1 / "manifest.json").read_text())["cursor"] == man["cursor"]

    # nothing changed: the next export (inclusive cursor) holds at most the rows stamped at the cursor itself
    man2 = export(mc, tmp_path / "x2", "jsonl", since=man["cursor"])
    assert all(r["updated_at"] == man["cursor"] for r in read_jsonl(tmp_path / "x2" / "calls.jsonl"))

    # an override and a new rep: exactly those rows come out next time
    mc.store.db.execute("update verdicts set verdict = 'pass', overridden_by = 'dana' where call_id = 3 and line_id = 'pain'")
    mc.store.db.execute("insert into reps (id, name, team) values ('dee', 'Dee Park', 'west')")
    man3 = export(mc, tmp_path / "x3", "jsonl", since=man2["cursor"])
    v = read_jsonl(tmp_path / "x3" / "verdicts.jsonl")
    assert [(r["call_id"], r["line_id"], r["verdict"]) for r in v if r["updated_at"] > man2["cursor"]] == [(3, "pain", "pass")]
    assert [r["id"] for r in read_jsonl(tmp_path / "x3" / "reps.jsonl") if r["updated_at"] > man2["cursor"]] == ["dee"]
    assert man3["cursor"] > man2["cursor"]
    assert man3["tables"]["calls"]["rows"] <= 12


def test_csv_and_metric_series(mc, tmp_path):
    man = export(mc, tmp_path / "c", "csv")
    with (tmp_path / "c" / "deals.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == ["d1", "d2", "d3", "d4", "d5"]
    assert rows[4]["closed_at"] == ""  # NULL -> empty
    with (tmp_path / "c" / "metric_series.csv").open() as fh:
        series = list(csv.DictReader(fh))
    assert man["tables"]["metric_series"]["rows"] == len(series) > 0
    budget = {r["week"]: float(r["value"]) for r in series if r["metric"] == "verdicts_per_line" and r["key"] == "disc/budget"}
    # budget pass rate per week, everyone: 01-05 ana F F + ben P -> 1/3; 01-12 ana F F P + ben P -> 2/4; 01-19 ana P F -> 1/2
    assert budget == {"2026-01-05": pytest.approx(1 / 3, abs=1e-4), "2026-01-12": 0.5, "2026-01-19": 0.5}


def test_parquet(mc, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    export(mc, tmp_path / "p", "parquet")
    tbl = pq.read_table(tmp_path / "p" / "verdicts.parquet")
    assert tbl.num_rows == 33 and "updated_at" in tbl.column_names
    assert pq.read_table(tmp_path / "p" / "calls.parquet").schema.field("id").type.bit_width == 64


def test_parquet_without_pyarrow_says_how_to_get_it(mc, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ExportError, match=r"pip install 'coachloop\[parquet\]'"):
        export(mc, tmp_path / "p", "parquet")


def test_cursor_checks():
    assert normalise_cursor("2026-03-14") == "2026-03-14T00:00:00.000Z"
    assert normalise_cursor("2026-03-14T17:30:00+02:00") == "2026-03-14T15:30:00.000Z"
    assert normalise_cursor("2026-03-14T15:30:00.123Z") == "2026-03-14T15:30:00.123Z"
    with pytest.raises(ExportError, match="not a cursor"):
        normalise_cursor("yesterday")


def test_cli_export(mc, tmp_path, capsys):
    db = mc.store.path
    pb = str(mc.playbook_dir)
    rc = main(["export", "--format", "csv", "--to", str(tmp_path / "o"), "--db", db, "--playbook", pb])
    out = capsys.readouterr().out
    assert rc == 0 and "next cursor: " in out
    cursor = json.loads((tmp_path / "o" / "manifest.json").read_text())["cursor"]
    assert main(["export", "--format", "jsonl", "--to", str(tmp_path / "o2"), "--since", cursor, "--db", db, "--playbook", pb, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["since"] == cursor
    assert main(["export", "--to", str(tmp_path / "o3"), "--since", "last tuesday", "--db", db, "--playbook", pb]) == 1
    assert "not a cursor" in capsys.readouterr().err


def test_every_exported_table_and_column_is_documented(coach):
    from pathlib import Path

    from tools.export import export_tables, table_schema

    doc = (Path(__file__).resolve().parent.parent / "docs" / "DATA.md").read_text()
    missing = []
    for table in export_tables(coach.store.db.conn):
        sect = doc.split(f"### {table} ")[1].split("\n### ")[0] if f"### {table} " in doc else None
        if sect is None:
            missing.append(f"table {table}")
            continue
        for col in table_schema(coach.store.db.conn, table)["columns"]:
            if f"| {col['name']} |" not in sect:
                missing.append(f"{table}.{col['name']}")
    assert not missing, f"document these in docs/DATA.md (the export schema): {', '.join(missing)}"


def test_an_export_does_not_hold_up_writers(mc, tmp_path, monkeypatch):
    """The export reads one snapshot on a connection of its own: a call can be stored while an
    export is half-way through, and the export holds only what was committed when it began."""
    import threading

    from tools import export as export_mod

    before = mc.store.one("select count(*) n from reps")["n"]
    reading, inserted = threading.Event(), threading.Event()
    real_write = export_mod._Writer.write

    def write(self, row):
        if not reading.is_set():
            reading.set()
            # the export waits, mid-read, for the writer: were the store locked, it never comes
            assert inserted.wait(10), "the writer was held up by the export"
        return real_write(self, row)

    monkeypatch.setattr(export_mod._Writer, "write", write)
    done: dict = {}
    t = threading.Thread(target=lambda: done.update(manifest=export(mc, tmp_path / "slow", "jsonl", metrics=False)))
    t.start()
    assert reading.wait(10)
    with mc.store.transaction() as db:  # a writer while the export is reading
        db.execute("insert into reps (id, name) values ('late-rep', 'Late Rep')")
    inserted.set()
    t.join(60)
    assert "manifest" in done
    reps = read_jsonl(tmp_path / "slow" / "reps.jsonl")
    assert len(reps) == before and "late-rep" not in {r["id"] for r in reps}
