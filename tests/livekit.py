"""Helpers for the live-playbook tests: demo calls scored for real, a person's edit of a scorecard
line, a bounded wait for the watcher, and a practice session driven through roleplay + certify."""
from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from store.reps import upsert_rep

DEMO = Path(__file__).resolve().parent.parent / "server" / "demo_data"
PRACTICE = json.loads((DEMO / "practice.json").read_text())

IMPOSSIBLE = {"phrases": ["zzqx quux frobnicate"], "examples": ["zzqx quux frobnicate wibble"], "patterns": []}


def seed_demo(coach, limit: int | None = None) -> list[dict]:
    """The bundled demo reps and calls, scored with the live scorecard. Returns the score results."""
    from tools.calls import score_call

    data = json.loads((DEMO / "calls.json").read_text())
    for r in data["reps"]:
        upsert_rep(coach.store, r["name"], team=r.get("team"), segment=r.get("segment"), hire_date=r.get("hire_date"))
    out = []
    for c in data["calls"][:limit]:
        f = DEMO / c["file"]
        out.append(score_call(coach, f.read_text(), rep=c["rep"], occurred_at=c["at"], source_name=c["file"]))
    return out


def edit_line(playbook_dir: Path, scorecard: str, line_id: str, **fields) -> Path:
    """Change fields of one rubric line the way a person would (load, edit, save)."""
    p = playbook_dir / "scorecards" / f"{scorecard}.yaml"
    data = yaml.safe_load(p.read_text())
    for ln in data["lines"]:
        if ln["id"] == line_id:
            ln.update(fields)
            break
    else:
        raise KeyError(line_id)
    p.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))
    return p


def remove_line(playbook_dir: Path, scorecard: str, line_id: str) -> Path:
    p = playbook_dir / "scorecards" / f"{scorecard}.yaml"
    data = yaml.safe_load(p.read_text())
    data["lines"] = [ln for ln in data["lines"] if ln["id"] != line_id]
    p.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))
    return p


def wait_until(pred, timeout: float = 5.0, what: str = "condition"):
    """Poll `pred` (bounded): the watcher's reload happens on another thread."""
    end = time.monotonic() + timeout
    while True:
        val = pred()
        if val:
            return val
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def practise(coach, rep: str, scenario_id: str, script: list[str], assignment_id: int | None = None) -> dict:
    """A whole practice session against the offline buyer, then certification."""
    from tools.certify import certify
    from tools.roleplay import end_session, reply, start_session

    s = start_session(coach, rep, scenario_id, assignment_id)
    for line in script:
        reply(coach, s["session_id"], line)
    ended = end_session(coach, s["session_id"])
    return {"session": ended, "certification": certify(coach, s["session_id"])}


def events(coach, *types: str) -> list[dict]:
    rows = coach.store.events(since_id=0, limit=100000)
    return [e for e in rows if not types or e["type"] in types]
