"""The playbook loader and `coachloop validate`: every problem at once, with file and field;
a broken file never takes the rest down."""
from __future__ import annotations

import json
from pathlib import Path

from playbook.loader import load_playbook
from playbook.starter import STARTER_DIR, write_starter
from server.cli import main

CARD = """\
id: mini
title: Mini card
call_types: [mini]
lines:
  - id: asks_budget
    title: Asks about budget
    phrases: [budget]
"""


def _mini(tmp_path: Path) -> Path:
    root = tmp_path / "pb"
    (root / "scorecards").mkdir(parents=True)
    (root / "playbook.yaml").write_text("team: Test\n")
    (root / "scorecards" / "mini.yaml").write_text(CARD)
    return root


def test_init_then_validate_exits_zero(tmp_path, capsys):
    dest = tmp_path / "p"
    assert main(["init", str(dest)]) == 0
    assert (dest / "playbook.yaml").exists()
    assert main(["validate", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out


def test_init_refuses_to_overwrite(tmp_path, capsys):
    dest = tmp_path / "p"
    assert main(["init", str(dest)]) == 0
    assert main(["init", str(dest)]) == 1
    assert "already holds a playbook" in capsys.readouterr().err


def test_validate_lists_broken_yaml_dangling_reference_and_wrong_type(tmp_path, capsys):
    dest = tmp_path / "p"
    write_starter(dest)
    for sub in ("scorecards", "paths", "certifications"):
        (dest / sub).mkdir(exist_ok=True)
    (dest / "scorecards" / "mini.yaml").write_text(CARD)
    # 1. broken YAML
    (dest / "scorecards" / "broken.yaml").write_text("id: broken\ntitle: [unclosed\nlines:\n  - id: x\n")
    # 2. dangling reference
    (dest / "paths" / "dangling.yaml").write_text(
        "id: dangling\ntitle: Dangling\nscorecard: mini\nlines: [asks_budget]\nsteps:\n  - scenario: no-such-scenario\n"
    )
    # 3. wrong type
    (dest / "certifications" / "wrongtype.yaml").write_text(
        "id: wrongtype\ntitle: Wrong\nscorecard: mini\nlines: [asks_budget]\nscenarios: []\n"
        "attempts: many\ngates: [dial]\n"
    )
    rc = main(["validate", str(dest), "--json"])
    assert rc == 1
    report = json.loads(capsys.readouterr().out)
    probs = report["problems"]
    by_file = {p["file"]: p for p in probs}
    assert "scorecards/broken.yaml" in by_file
    assert by_file["scorecards/broken.yaml"]["line"] in (2, 3, 4)
    assert "invalid YAML" in by_file["scorecards/broken.yaml"]["message"]
    dangling = [p for p in probs if p["file"] == "paths/dangling.yaml"]
    assert any(p["field"] == "steps[0].scenario" and "no-such-scenario" in p["message"] for p in dangling)
    wrong = [p for p in probs if p["file"] == "certifications/wrongtype.yaml"]
    assert any(p["field"] == "attempts" and p["line"] == 6 for p in wrong)
    # human output names file:line and field too
    assert main(["validate", str(dest)]) == 1
    out = capsys.readouterr().out
    assert "certifications/wrongtype.yaml:6: attempts:" in out
    assert "paths/dangling.yaml" in out and "scorecards/broken.yaml:" in out


def test_unknown_field_is_reported(tmp_path):
    root = _mini(tmp_path)
    (root / "scorecards" / "mini.yaml").write_text(CARD.replace("    phrases:", "    phrazes:"))
    pb = load_playbook(root)
    assert any(p.field == "lines[0].phrazes" and p.line == 7 and "unknown field" in p.message for p in pb.problems), pb.problems


def test_broken_file_keeps_last_good_version(tmp_path):
    root = _mini(tmp_path)
    good = load_playbook(root)
    assert good.ok, good.problems
    v1 = good.version_of("scorecards", "mini")
    (root / "scorecards" / "mini.yaml").write_text("id: mini\ntitle: [oops\n")
    broken = load_playbook(root, previous=good)
    assert not broken.ok
    assert broken.scorecard("mini").line("asks_budget") is not None
    assert broken.version_of("scorecards", "mini") == v1
    assert "scorecards/mini" in broken.stale
    (root / "scorecards" / "mini.yaml").write_text(CARD.replace("Mini card", "Mini card v2"))
    fixed = load_playbook(root, previous=broken)
    assert fixed.ok and fixed.version_of("scorecards", "mini") != v1
    assert fixed.scorecard("mini").title == "Mini card v2"


def test_content_version_changes_only_with_content(tmp_path):
    root = _mini(tmp_path)
    a = load_playbook(root).version_of("scorecards", "mini")
    b = load_playbook(root).version_of("scorecards", "mini")
    assert a == b
    (root / "scorecards" / "mini.yaml").write_text(CARD + "# a comment\n")
    assert load_playbook(root).version_of("scorecards", "mini") != a


def test_huge_file_is_refused_with_its_name(tmp_path):
    root = _mini(tmp_path)
    (root / "scorecards" / "huge.yaml").write_text("# " + "x" * 1_100_000)
    pb = load_playbook(root)
    assert any(p.file == "scorecards/huge.yaml" and "limit" in p.message for p in pb.problems)
    assert pb.scorecard("mini")


def test_scenario_front_matter_errors_have_file_lines(tmp_path):
    root = _mini(tmp_path)
    (root / "scenarios").mkdir()
    (root / "scenarios" / "s.md").write_text("no front matter here\n")
    (root / "scenarios" / "t.md").write_text(
        "---\nid: t\ntitle: T\nscorecard: mini\ntargets: [nope]\npersona: {name: A, role: CFO}\nopening: Hi\n---\nProse.\n"
    )
    pb = load_playbook(root)
    files = {(p.file, p.field) for p in pb.problems}
    assert ("scenarios/s.md", None) in files
    assert ("scenarios/t.md", "targets[0]") in files
    assert pb.get("scenarios", "t") is not None  # schema-valid; the dangling target is reported


def test_starter_ships_inside_the_package():
    assert (STARTER_DIR / "playbook.yaml").exists()


def test_a_link_out_of_the_playbook_is_refused_with_its_name(tmp_path, capsys):
    """What is served is what the playbook folder holds: a symlink that leads outside it (a
    scorecard, a rubric test, the policy) is a problem naming the file, not a way in."""
    root = _mini(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "card.yaml").write_text(CARD.replace("id: mini", "id: smuggled").replace("[mini]", "[smuggled]"))
    (root / "scorecards" / "smuggled.yaml").symlink_to(outside / "card.yaml")
    # a link that stays inside the folder is fine
    (root / "shared").mkdir()
    (root / "shared" / "other.yaml").write_text(CARD.replace("id: mini", "id: other").replace("[mini]", "[other]"))
    (root / "scorecards" / "other.yaml").symlink_to(root / "shared" / "other.yaml")
    pb = load_playbook(root)
    assert pb.get("scorecards", "smuggled") is None
    assert pb.get("scorecards", "other") is not None and pb.get("scorecards", "mini") is not None
    [prob] = [p for p in pb.problems if p.file == "scorecards/smuggled.yaml"]
    assert "outside the playbook folder" in prob.message and str(outside / "card.yaml") in prob.message
    assert main(["validate", str(root)]) == 1
    assert "scorecards/smuggled.yaml" in capsys.readouterr().out
    # the policy file too
    (root / "playbook.yaml").unlink()
    (outside / "policy.yaml").write_text("team: Elsewhere\n")
    (root / "playbook.yaml").symlink_to(outside / "policy.yaml")
    pb = load_playbook(root)
    assert any(p.file == "playbook.yaml" and "outside the playbook folder" in p.message for p in pb.problems)
    assert pb.policy.team != "Elsewhere"
