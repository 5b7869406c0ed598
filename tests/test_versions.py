"""Artifact versions: every version that was live is kept with its exact text; verdicts,
assignments and certifications name versions that can be shown; `coachloop diff` and
`coachloop show-version` on real files and a real database."""
from __future__ import annotations

import json
import re

import pytest

from livekit import edit_line, remove_line
from server.cli import main as cli_main
from store import versions as vstore
from store.db import StoreError
from tools.live import artifact_text, artifact_versions, enable_live, scorecard_diff


def test_record_get_list_and_prefixes(coach):
    s = coach.store
    assert vstore.record_version(s, "scorecards", "x", "abcd1111", "scorecards/x.yaml", "one")
    assert not vstore.record_version(s, "scorecards", "x", "abcd1111", "scorecards/x.yaml", "one")  # content-addressed
    vstore.record_version(s, "scorecards", "x", "abcd2222", "scorecards/x.yaml", "two")
    assert vstore.get_version(s, "scorecard", "x", "abcd2222") == "two"
    assert vstore.get_version(s, "scorecards", "x", "abcd1") == "one"  # unique prefix
    assert [v["version"] for v in vstore.list_versions(s, "scorecards", "x")] == ["abcd1111", "abcd2222"]
    with pytest.raises(StoreError, match="ambiguous"):
        vstore.get_version(s, "scorecards", "x", "abcd")
    with pytest.raises(StoreError, match="too short"):
        vstore.get_version(s, "scorecards", "x", "abcd1"[:3])
    with pytest.raises(StoreError, match="not a stored version.*abcd1111, abcd2222"):
        vstore.get_version(s, "scorecards", "x", "ffff")
    with pytest.raises(StoreError, match="no stored versions of scorecard 'nope'"):
        vstore.get_version(s, "scorecards", "nope", "ffff")
    with pytest.raises(StoreError, match="unknown artifact kind 'widget'"):
        vstore.get_version(s, "widget", "x", "ffff")


def test_every_live_version_is_kept_and_verdicts_show_their_text(coach, playbook_dir):
    from livekit import seed_demo

    enable_live(coach)
    [res] = seed_demo(coach, limit=1)
    v1 = res["scorecard_version"]
    edit_line(playbook_dir, "discovery", "agenda_set", title="Agenda stated")
    coach.reload()
    v2 = coach.playbook.version_of("scorecards", "discovery")
    assert v2 != v1
    rows = artifact_versions(coach, "scorecards", "discovery")
    assert [r["version"] for r in rows] == [v1, v2] and rows[-1]["live"] and not rows[0]["live"]
    # the verdict made under v1 shows the exact v1 text, byte for byte
    call_v = coach.store.one("select scorecard_version from verdicts where call_id = ? limit 1", (res["call"],))["scorecard_version"]
    old = artifact_text(coach, "scorecard", "discovery", call_v)
    assert old["version"] == v1 and not old["live"]
    assert "title: Agenda set\n" in old["text"] and "Agenda stated" not in old["text"]
    assert "# Discovery call scorecard" in old["text"]  # comments kept: the file's text, not a dump
    cur = artifact_text(coach, "scorecards", "discovery")
    assert cur["version"] == v2 and cur["live"] and "Agenda stated" in cur["text"]
    # scenarios, paths, certifications and the policy are kept too
    for kind, aid in [("scenarios", "practice-budget-confirmed"), ("paths", "path-budget-confirmed"),
                      ("certifications", "qualification"), ("policy", "playbook")]:
        assert artifact_versions(coach, kind, aid), kind
    # going back to v1's text is not a new version
    (playbook_dir / "scorecards" / "discovery.yaml").write_text(old["text"])
    coach.reload()
    assert [r["version"] for r in artifact_versions(coach, "scorecards", "discovery")] == [v1, v2]
    assert artifact_versions(coach, "scorecards", "discovery")[0]["live"]


def test_assignment_and_certification_versions_are_retrievable(coach):
    from store.reps import upsert_rep
    from tools.paths import assign_path

    enable_live(coach)
    upsert_rep(coach.store, "Priya Raman")
    a = assign_path(coach, "priya-raman", path_id="path-budget-confirmed")
    for ref, version in a["artifact_versions"].items():
        kind, aid = ref.split("/", 1)
        t = artifact_text(coach, kind, aid, version)
        assert t["text"] == coach.playbook.get(kind, aid).text


def test_scorecard_diff_summary_and_unified(coach, playbook_dir):
    enable_live(coach)
    v1 = coach.playbook.version_of("scorecards", "discovery")
    with pytest.raises(StoreError, match="only one stored version"):
        scorecard_diff(coach, "discovery")
    edit_line(playbook_dir, "discovery", "agenda_set", title="Agenda stated", weight=2.0)
    remove_line(playbook_dir, "discovery", "competition_explored")
    coach.reload()
    d = scorecard_diff(coach, "discovery")
    assert d["from"]["version"] == v1 and d["to"]["live"]
    assert d["lines"]["removed"] == ["competition_explored"] and d["lines"]["added"] == []
    [ch] = d["lines"]["changed"]
    assert ch["id"] == "agenda_set" and ch["fields"] == ["title", "weight"]
    assert ch["before"] == {"title": "Agenda set", "weight": 1.0} and ch["after"] == {"title": "Agenda stated", "weight": 2.0}
    assert "- line competition_explored removed" in d["summary"] and "~ line agenda_set changed: title, weight" in d["summary"]
    assert re.search(r"^- +title: Agenda set$", d["unified"], re.M)  # the old title as a removed line
    assert d["unified"].startswith(f"--- scorecards/discovery.yaml@{v1}")
    # explicit versions, by prefix, either way round
    back = scorecard_diff(coach, "discovery", d["to"]["version"][:6], v1[:6])
    assert back["lines"]["added"] == ["competition_explored"]
    with pytest.raises(StoreError, match="unknown scorecard 'nope'"):
        scorecard_diff(coach, "nope")
    # a revert: the previous live version is compared, not the oldest stored one
    (playbook_dir / "scorecards" / "discovery.yaml").write_text(artifact_text(coach, "scorecards", "discovery", v1)["text"])
    coach.reload()
    rev = scorecard_diff(coach, "discovery")
    assert rev["to"]["version"] == v1 and rev["from"]["version"] == d["to"]["version"]
    assert rev["lines"]["added"] == ["competition_explored"]


def test_cli_diff_and_show_version(coach, playbook_dir, capsys):
    args = ["--playbook", str(playbook_dir), "--db", coach.store.path]
    enable_live(coach)
    v1 = coach.playbook.version_of("scorecards", "discovery")
    assert cli_main(["diff", "discovery", *args]) == 1
    assert "only one stored version" in capsys.readouterr().err
    edit_line(playbook_dir, "discovery", "budget_confirmed", title="Budget range confirmed")
    assert cli_main(["diff", "discovery", *args]) == 0  # the CLI records the new version itself
    out = capsys.readouterr().out
    assert f"scorecard discovery: {v1}" in out and "~ line budget_confirmed changed: title" in out
    assert "budget_confirmed.title: 'Budget confirmed' -> 'Budget range confirmed'" in out
    assert "+    title: Budget range confirmed" in out or "+  title: Budget range confirmed" in out
    assert cli_main(["diff", "discovery", "--json", *args]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["lines"]["changed"][0]["id"] == "budget_confirmed"
    assert cli_main(["show-version", "scorecard", "discovery", v1[:8], *args]) == 0
    cap = capsys.readouterr()
    assert "title: Budget confirmed\n" in cap.out and f"scorecards/discovery@{v1}" in cap.err
    assert cli_main(["show-version", "scorecard", "discovery", "--list", *args]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(v1) and lines[1].endswith("(live)")
    assert cli_main(["show-version", "scorecard", "discovery", "0000", *args]) == 1
    assert "is not a stored version" in capsys.readouterr().err
