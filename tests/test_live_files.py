"""Git-friendly playbook: files coachloop writes (generated scenarios) are stable, sorted and
commented; coachloop never rewrites a file a person wrote, and the live machinery (versions,
rollouts, re-scoring) never writes to the playbook at all."""
from __future__ import annotations

import hashlib

import yaml

from livekit import IMPOSSIBLE, edit_line, seed_demo
from playbook.loader import split_front_matter
from server.orchestrator import Orchestrator
from tools.live import enable_live
from tools.rubric_change import run_pending_jobs
from tools.scenario import generate_scenario


def _tree(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _failed_budget_calls(coach):
    return [r["call_id"] for r in coach.store.query(
        "select v.call_id from verdicts v join calls c on c.id = v.call_id where c.rep_id = 'priya-raman'"
        " and v.line_id = 'budget_confirmed' and v.verdict = 'fail' order by v.call_id")]


def test_generated_scenario_is_stable_sorted_and_commented(coach, playbook_dir):
    seed_demo(coach)
    calls = _failed_budget_calls(coach)
    assert calls
    a = generate_scenario(coach, rep_id="priya-raman", line_id="budget_confirmed", call_ids=calls)
    path = playbook_dir / a["path"]
    first = path.read_bytes()
    text = first.decode()
    ytext, body, _ = split_front_matter(text)
    assert ytext.lstrip().startswith("#"), "a comment says where the file came from"
    keys = [ln.split(":", 1)[0] for ln in ytext.splitlines() if ln and not ln.startswith((" ", "#", "-"))]
    assert keys == sorted(keys), "top-level keys sorted: stable diffs"
    assert yaml.safe_load(ytext)["generated_by"]
    # the same inputs give the same bytes; nothing is rewritten
    b = generate_scenario(coach, rep_id="priya-raman", line_id="budget_confirmed", call_ids=calls)
    assert b["scenario_id"] == a["scenario_id"] and not b["created"] and path.read_bytes() == first
    path.unlink()
    coach.reload()
    c = generate_scenario(coach, rep_id="priya-raman", line_id="budget_confirmed", call_ids=calls)
    assert c["created"] and path.read_bytes() == first, "regenerating from scratch is byte-identical"


def test_a_persons_file_is_never_rewritten(coach, playbook_dir):
    seed_demo(coach)
    calls = _failed_budget_calls(coach)
    a = generate_scenario(coach, rep_id="priya-raman", line_id="budget_confirmed", call_ids=calls)
    path = playbook_dir / a["path"]
    # a person takes the generated file over (drops generated_by) and edits it
    mine = "\n".join(ln for ln in path.read_text().splitlines() if not ln.startswith("generated_by")) + "\n<!-- my notes -->\n"
    path.write_text(mine)
    coach.reload()
    b = generate_scenario(coach, rep_id="priya-raman", line_id="budget_confirmed", call_ids=calls)
    assert b["scenario_id"] != a["scenario_id"] and b["created"]
    assert path.read_text() == mine
    # a generated file someone touched, and a file a person wrote at the next id: both left alone
    bpath = playbook_dir / b["path"]
    bpath.write_text(bpath.read_text() + "<!-- tweaked -->\n")
    btext = bpath.read_text()
    nxt = playbook_dir / "scenarios" / f"{a['scenario_id']}-3.md"
    nxt.write_text((playbook_dir / "scenarios" / "practice-budget-confirmed.md").read_text()
                   .replace("id: practice-budget-confirmed", f"id: {a['scenario_id']}-3", 1))
    hand = nxt.read_bytes()
    coach.reload()
    c = generate_scenario(coach, rep_id="priya-raman", line_id="budget_confirmed", call_ids=calls)
    assert (b["scenario_id"], c["scenario_id"]) == (f"{a['scenario_id']}-2", f"{a['scenario_id']}-4")
    assert nxt.read_bytes() == hand and path.read_text() == mine and bpath.read_text() == btext


def test_live_machinery_never_writes_to_the_playbook(coach, playbook_dir):
    enable_live(coach)
    seed_demo(coach, limit=3)
    from store.reps import upsert_rep

    upsert_rep(coach.store, "Sam Lee", team="SMB")
    src = (playbook_dir / "scenarios" / "practice-budget-confirmed.md").read_text()
    (playbook_dir / "scenarios" / "drill.md").write_text(
        src.replace("id: practice-budget-confirmed", "id: drill", 1).replace("---\n", "---\nrollout:\n  reps: all\n", 1))
    edit_line(playbook_dir, "discovery", "budget_confirmed", **IMPOSSIBLE)
    top = coach.store.one("select max(id) m from events")["m"]
    coach.store.db["meta"].upsert({"key": "orchestrator.cursor", "value": str(top)}, pk="key")
    before = _tree(playbook_dir)
    coach.reload()
    Orchestrator(coach).run_pending()
    run_pending_jobs(coach)
    assert coach.store.one("select count(*) n from rollouts")["n"] == 1
    assert coach.store.one("select count(*) n from jobs where status = 'done'")["n"] == 1
    assert _tree(playbook_dir) == before
