"""store/reps.py, store/deals.py and store/calls.py on a real SQLite file."""
from __future__ import annotations

import pytest

from store import calls as cs
from store.db import Store, StoreError
from store.deals import get_deal, record_deal
from store.reps import get_rep, list_reps, resolve_rep, roster, slugify, upsert_rep


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "t.db")
    yield s
    s.close()


def test_slugify():
    assert slugify("Priya Raman") == "priya-raman"
    assert slugify("Megan O'Brien") == "megan-obrien"
    assert slugify("Élena  Volkova") == "elena-volkova"


def test_upsert_rep_creates_then_updates_only_given_fields(store):
    r = upsert_rep(store, "Priya Raman", team="EMEA", segment="mid-market", hire_date="2025-01-02", quota=500000, aliases=["Priya"])
    assert r["id"] == "priya-raman" and r["team"] == "EMEA" and r["aliases"] == ["Priya"]
    r2 = upsert_rep(store, "priya raman", quota=600000, aliases=["P. Raman"])
    assert r2["id"] == "priya-raman"
    assert r2["name"] == "Priya Raman"  # the stored spelling stays
    assert r2["team"] == "EMEA" and r2["segment"] == "mid-market" and r2["hire_date"] == "2025-01-02"
    assert r2["quota"] == 600000
    assert r2["aliases"] == ["Priya", "P. Raman"]
    assert len(list_reps(store)) == 1


def test_upsert_rep_by_alias_updates_that_rep(store):
    upsert_rep(store, "Priya Raman", aliases=["PR (Zoom)"])
    r = upsert_rep(store, "pr (zoom)", team="West")
    assert r["id"] == "priya-raman" and r["team"] == "West"


def test_upsert_rep_with_id_renames_and_keeps_old_name_as_alias(store):
    upsert_rep(store, "Jordan Pike", id="jp")
    r = upsert_rep(store, "Jordan Pike-Smith", id="jp")
    assert r["name"] == "Jordan Pike-Smith" and "Jordan Pike" in r["aliases"]
    assert resolve_rep(store, "jordan pike")["id"] == "jp"


@pytest.mark.parametrize("kwargs, field", [({"hire_date": "2025-13-01"}, "hire_date"), ({"quota": "lots"}, "quota"),
                                            ({"quota": -5}, "quota"), ({"id": "Not A Slug"}, "slug")])
def test_upsert_rep_rejects_bad_fields(store, kwargs, field):
    with pytest.raises(StoreError, match=field):
        upsert_rep(store, "Kevin Marsh", **kwargs)
    assert list_reps(store) == []


def test_resolve_and_get_rep(store):
    upsert_rep(store, "Grace Liu", aliases=["Grace L."])
    assert resolve_rep(store, "grace-liu")["name"] == "Grace Liu"
    assert resolve_rep(store, "GRACE  LIU")["id"] == "grace-liu"
    assert resolve_rep(store, "grace l.")["id"] == "grace-liu"
    assert resolve_rep(store, "Nobody") is None
    with pytest.raises(StoreError) as exc:
        get_rep(store, "Nobody")
    msg = str(exc.value)
    assert "unknown rep 'Nobody'" in msg and "grace-liu" in msg and "coachloop rep add" in msg
    assert roster(store) == ["Grace Liu", "Grace L."]


def test_record_deal_keeps_stage_history_and_outcome(store):
    upsert_rep(store, "Owen Gallagher")
    d = record_deal(store, "D-1", name="Acme", rep="owen gallagher", amount=12000, stage="discovery", at="2026-01-05")
    assert d["rep_id"] == "owen-gallagher" and d["outcome"] == "open" and d["closed_at"] is None
    assert [s["stage"] for s in d["stages"]] == ["discovery"]
    record_deal(store, "D-1", stage="discovery", at="2026-01-06")  # same stage: no new history row
    d = record_deal(store, "D-1", stage="proposal", at="2026-02-01T10:00:00Z")
    assert [s["stage"] for s in d["stages"]] == ["discovery", "proposal"]
    assert d["amount"] == 12000 and d["name"] == "Acme"  # kept
    d = record_deal(store, "D-1", outcome="won", at="2026-03-01")
    assert d["outcome"] == "won" and d["closed_at"] == "2026-03-01T00:00:00+00:00"
    d = record_deal(store, "D-1", outcome="open")
    assert d["closed_at"] is None


def test_record_deal_errors(store):
    with pytest.raises(StoreError, match="outcome 'maybe'"):
        record_deal(store, "D-2", outcome="maybe")
    with pytest.raises(StoreError, match="unknown rep 'ghost'"):
        record_deal(store, "D-2", rep="ghost")
    with pytest.raises(StoreError, match="not an ISO 8601"):
        record_deal(store, "D-2", at="yesterday")
    with pytest.raises(StoreError, match="unknown deal 'D-2'"):
        get_deal(store, "D-2")


def _call(h="h1", rep="priya-raman"):
    return {"source_hash": h, "source_name": "x.txt", "format": "text", "rep_id": rep, "rep_speaker": "Priya",
            "call_type": "discovery", "scorecard_id": "discovery", "scorecard_version": "v1", "turns": [{"speaker": "Priya", "text": "hi"}],
            "engine": "offline", "engine_version": "e1", "score": 0.5, "occurred_at": "2026-01-05T00:00:00+00:00"}


def test_insert_call_dedupes_and_override_survives_rescore(store):
    upsert_rep(store, "Priya Raman")
    verdicts = [{"line_id": "a", "verdict": "pass", "turn": 0, "quote": "hi", "reason": ""},
                {"line_id": "b", "verdict": "fail", "turn": None, "quote": None, "reason": "never asked"}]
    cid, dup = cs.insert_call(store, _call(), verdicts)
    assert not dup
    cid2, dup2 = cs.insert_call(store, _call(), verdicts)
    assert (cid2, dup2) == (cid, True)
    assert cs.count_calls(store) == 1
    call = cs.get_call(store, cid)
    assert call["turns"][0]["text"] == "hi" and [v["line_id"] for v in call["verdicts"]] == ["a", "b"]

    prev = cs.set_override(store, cid, "b", "pass", reason="asked at turn 0", by="lead", turn=0)
    assert prev["verdict"] == "fail"
    row = cs.verdicts_for(store, cid)[1]
    assert (row["verdict"], row["engine_verdict"], row["overridden_by"]) == ("pass", "fail", "lead")

    changes = cs.update_scoring(store, cid, [{"line_id": "a", "verdict": "fail", "turn": None, "quote": None, "reason": "x"},
                                             {"line_id": "b", "verdict": "fail", "turn": None, "quote": None, "reason": "y"},
                                             {"line_id": "c", "verdict": "na", "turn": None, "quote": None, "reason": "z"}],
                                scorecard_version="v2", engine="offline", engine_version="e1")
    by = {c["line"]: c for c in changes}
    assert by["a"]["before"] == "pass" and by["a"]["after"] == "fail"
    assert "b" not in by  # the engine still says fail, the human pass stays in force
    assert by["c"]["before"] is None and by["c"]["after"] == "na"
    rows = {v["line_id"]: v for v in cs.verdicts_for(store, cid)}
    assert rows["b"]["verdict"] == "pass" and rows["b"]["engine_verdict"] == "fail"
    assert cs.get_call(store, cid)["scorecard_version"] == "v2"
    assert cs.overridden_call_ids(store) == [cid]


def test_get_call_errors(store):
    with pytest.raises(StoreError, match="unknown call 7"):
        cs.get_call(store, 7)
    with pytest.raises(StoreError, match="not a number"):
        cs.get_call(store, "seven")
    upsert_rep(store, "Priya Raman")
    cid, _ = cs.insert_call(store, _call(), [{"line_id": "a", "verdict": "pass"}])
    assert cs.get_call(store, f"call:{cid}")["id"] == cid
    with pytest.raises(StoreError, match="no verdict for line 'zz'"):
        cs.set_override(store, cid, "zz", "pass", reason="r", by="me")
    with pytest.raises(StoreError, match="verdict 'maybe'"):
        cs.set_override(store, cid, "a", "maybe", reason="r", by="me")


def test_insert_call_failure_leaves_nothing(store):
    upsert_rep(store, "Priya Raman")
    with pytest.raises(StoreError, match="verdict 'bogus'"):
        cs.insert_call(store, _call(), [{"line_id": "a", "verdict": "pass"}, {"line_id": "b", "verdict": "bogus"}])
    assert cs.count_calls(store) == 0
    assert store.one("select count(*) n from verdicts")["n"] == 0


def test_list_calls_filters(store):
    upsert_rep(store, "Priya Raman")
    upsert_rep(store, "Jordan Pike")
    cs.insert_call(store, _call("h1"), [])
    c2 = {**_call("h2", "jordan-pike"), "occurred_at": "2026-02-01T00:00:00+00:00"}
    cs.insert_call(store, c2, [])
    assert [c["rep_id"] for c in cs.list_calls(store)] == ["priya-raman", "jordan-pike"]
    assert [c["rep_id"] for c in cs.list_calls(store, rep_id="jordan-pike")] == ["jordan-pike"]
    assert [c["rep_id"] for c in cs.list_calls(store, since="2026-01-15")] == ["jordan-pike"]
    assert "turns" not in cs.list_calls(store)[0]
