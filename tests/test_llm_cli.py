"""`coachloop score --engine llm` end to end: CLI -> tools.calls -> LLM engine -> fake server over HTTP."""
from __future__ import annotations

import json

import pytest

from fake_openai import fake_openai, fake_openai_server  # noqa: F401  (pytest fixtures)
from server.cli import main

CALL = {
    "id": "llm-cli-1",
    "call_type": "discovery",
    "rep": "Priya Raman",
    "turns": [
        {"speaker": "Priya Raman", "text": "Thanks for the time, Marcus. Here's the plan for our thirty minutes: your process first, then two screens. Does that agenda work?"},
        {"speaker": "Marcus Oduya", "text": "Works for me."},
        {"speaker": "Priya Raman", "text": "What's going on with activity data that made you take this call?"},
        {"speaker": "Marcus Oduya", "text": "Pipeline reviews are a mess because half the reps never log their calls at all."},
        {"speaker": "Priya Raman", "text": "Let's book a session with your admin on Tuesday at eleven. Does that work?"},
        {"speaker": "Marcus Oduya", "text": "Tuesday at eleven works."},
    ],
}


@pytest.fixture
def llm_env(fake_openai, monkeypatch, tmp_path):
    monkeypatch.setenv("COACHLOOP_LLM_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("COACHLOOP_LLM_MODEL", "cli-model")
    monkeypatch.setenv("COACHLOOP_LLM_RETRIES", "1")
    monkeypatch.setenv("COACHLOOP_LLM_BACKOFF", "0")
    f = tmp_path / "call.json"
    f.write_text(json.dumps(CALL))
    return f


def test_score_with_llm_engine_through_the_cli(llm_env, fake_openai, playbook_dir, tmp_path, capsys):
    rc = main(["score", str(llm_env), "--engine", "llm", "--json", "--playbook", str(playbook_dir),
               "--db", str(tmp_path / "c.db")])
    out, errout = capsys.readouterr()
    assert rc == 0, errout
    result = json.loads(out.strip().splitlines()[0])
    assert result["engine"] == "llm"
    from store.db import Store

    st = Store(tmp_path / "c.db")
    try:
        rows = st.query("select engine, engine_version from verdicts where call_id = ?", [result["call"]])
    finally:
        st.close()
    assert rows and all(r["engine"] == "llm" and r["engine_version"].startswith("llm:cli-model@judge-") for r in rows)
    req = fake_openai.completions()[0]
    assert req["body"]["model"] == "cli-model"
    assert "made you take this call" in req["body"]["messages"][1]["content"]
    lines = {v["id"]: v for v in result["lines"]}
    for v in lines.values():  # whatever the model said, every pass quotes a rep turn verbatim
        if v["verdict"] == "pass":
            assert CALL["turns"][v["turn"]]["speaker"] == "Priya Raman"


def test_endpoint_failure_is_one_clear_line(llm_env, fake_openai, playbook_dir, tmp_path, capsys):
    fake_openai.error(500, "model server crashed")
    fake_openai.error(500, "model server crashed")
    rc = main(["score", str(llm_env), "--engine", "llm", "--playbook", str(playbook_dir),
               "--db", str(tmp_path / "c.db")])
    out, errout = capsys.readouterr()
    assert rc == 1
    assert "HTTP 500: model server crashed" in errout and "Traceback" not in errout
