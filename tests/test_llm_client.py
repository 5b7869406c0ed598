"""tools/llm.py over real HTTP against the fake OpenAI-compatible server on 127.0.0.1."""
from __future__ import annotations

import logging
import threading
import time

import pytest
from pydantic import BaseModel

from fake_openai import fake_openai, fake_openai_server  # noqa: F401  (pytest fixtures)
from playbook.models import LLMSettings, Policy
from tools.llm import LLMClient, LLMError, extract_json, resolve_config, strict_json_schema

KEY = "sk-test-SECRET-4242"
MSGS = [{"role": "user", "content": "hello"}]


class Answer(BaseModel):
    x: int
    note: str | None = None


def make(fake, **kw) -> LLMClient:
    opts = dict(model="judge-model", base_url=fake.base_url, api_key=KEY, timeout=2.0, retries=2, backoff=0.01,
                temperature=0.0)
    opts.update(kw)
    return LLMClient(**opts)


# ------------------------------------------------------------------ structured output


def test_structured_output_request_and_answer(fake_openai):
    fake_openai.reply_json({"x": 7, "note": None})
    c = make(fake_openai, temperature=0.3)
    assert c.complete_json(MSGS, Answer) == Answer(x=7)
    req = fake_openai.completions()[0]
    body = req["body"]
    assert req["path"] == "/v1/chat/completions"
    assert body["model"] == "judge-model"
    assert body["temperature"] == 0.3
    rf = body["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    schema = rf["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert sorted(schema["required"]) == ["note", "x"]  # strict: every property required
    assert req["headers"]["authorization"] == f"Bearer {KEY}"
    assert c.engine_version == "llm:judge-model"
    assert c.stats["requests"] == 1 and c.stats["retries"] == 0


def test_strict_schema_closes_nested_objects():
    class Inner(BaseModel):
        a: int = 1

    class Outer(BaseModel):
        items: list[Inner]
        maybe: Inner | None = None

    s = strict_json_schema(Outer)
    assert s["$defs"]["Inner"]["additionalProperties"] is False
    assert s["$defs"]["Inner"]["required"] == ["a"]
    assert "default" not in s["$defs"]["Inner"]["properties"]["a"]
    assert s["required"] == ["items", "maybe"]


@pytest.mark.parametrize("text,value", [
    ('{"x": 1}', {"x": 1}),
    ('```json\n{"x": 2}\n```', {"x": 2}),
    ('Sure! Here it is: {"x": 3} Hope that helps.', {"x": 3}),
    ('[1, 2]', [1, 2]),
])
def test_extract_json(text, value):
    assert extract_json(text) == value


@pytest.mark.parametrize("text", ["", "no json here", "{broken"])
def test_extract_json_rejects(text):
    with pytest.raises(ValueError):
        extract_json(text)


def test_fenced_json_in_content_is_accepted(fake_openai):
    fake_openai.reply('Here you go:\n```json\n{"x": 5}\n```')
    assert make(fake_openai).complete_json(MSGS, Answer).x == 5


# ------------------------------------------------------------------ retries


def test_malformed_answer_retried_then_clear_error(fake_openai):
    for _ in range(3):
        fake_openai.malformed('{"x": "not a number"')
    c = make(fake_openai, retries=2)
    with pytest.raises(LLMError) as ei:
        c.complete_json(MSGS, Answer)
    msg = str(ei.value)
    assert "after 3 attempt(s)" in msg and "malformed answer" in msg and "judge-model" in msg
    assert ei.value.attempts == 3 and ei.value.last_answer.startswith('{"x"')
    assert len(fake_openai.completions()) == 3
    assert c.stats["malformed"] == 3 and c.stats["failures"] == 1


def test_cut_off_answer_says_so(fake_openai):
    fake_openai.reply('{"x": 1, "note": "a very long', finish_reason="length")
    with pytest.raises(LLMError, match=r"cut off at the token limit"):
        make(fake_openai, retries=0).complete_json(MSGS, Answer)


def test_schema_mismatch_retried_then_success(fake_openai):
    fake_openai.reply_json({"y": 1})  # valid JSON, wrong shape
    fake_openai.reply_json({"x": 2})
    c = make(fake_openai)
    assert c.complete_json(MSGS, Answer).x == 2
    assert len(fake_openai.completions()) == 2 and c.stats["retries"] == 1


def test_schema_mismatch_error_names_the_field(fake_openai):
    fake_openai.reply_json({"x": "seven"})
    with pytest.raises(LLMError, match=r"schema at x"):
        make(fake_openai, retries=0).complete_json(MSGS, Answer)


def test_429_then_success_honours_retry_after(fake_openai):
    fake_openai.rate_limit(retry_after_ms=150)
    fake_openai.reply_json({"x": 1})
    c = make(fake_openai, backoff=0.0)
    t0 = time.monotonic()
    assert c.complete_json(MSGS, Answer).x == 1
    assert time.monotonic() - t0 >= 0.14  # waited what the server asked, not the (zero) backoff
    reqs = fake_openai.completions()
    assert len(reqs) == 2 and reqs[1]["t"] - reqs[0]["t"] >= 0.14


def test_500_then_success(fake_openai):
    fake_openai.error(500, "upstream exploded")
    fake_openai.error(503, "overloaded")
    fake_openai.reply_json({"x": 3})
    c = make(fake_openai)
    assert c.complete_json(MSGS, Answer).x == 3
    assert c.stats["retries"] == 2


def test_persistent_500_gives_clear_error(fake_openai):
    for _ in range(2):
        fake_openai.error(500, "upstream exploded")
    with pytest.raises(LLMError, match=r"after 2 attempt\(s\): HTTP 500: upstream exploded") as ei:
        make(fake_openai, retries=1).complete_json(MSGS, Answer)
    assert ei.value.status == 500


def test_exponential_backoff_grows(fake_openai):
    for _ in range(3):
        fake_openai.error(500)
    fake_openai.reply_json({"x": 1})
    make(fake_openai, retries=3, backoff=0.04).complete_json(MSGS, Answer)
    t = [r["t"] for r in fake_openai.completions()]
    gaps = [b - a for a, b in zip(t, t[1:])]
    # 0.04, 0.08, 0.16 with up to -25% jitter
    assert gaps[0] >= 0.03 and gaps[1] >= 0.06 and gaps[2] >= 0.12


def test_timeout_then_success(fake_openai):
    fake_openai.delay(5.0)  # never answered: the client gives up at its timeout (the fake is reset after)
    fake_openai.reply_json({"x": 4})
    c = make(fake_openai, timeout=0.5)
    t0 = time.monotonic()
    assert c.complete_json(MSGS, Answer).x == 4
    assert 0.5 <= time.monotonic() - t0 < 4.0


def test_timeout_every_attempt_gives_clear_error(fake_openai):
    for _ in range(2):
        fake_openai.delay(5.0)
    with pytest.raises(LLMError, match=r"timed out after 0.5s"):
        make(fake_openai, timeout=0.5, retries=1).complete_json(MSGS, Answer)
    assert len(fake_openai.completions()) == 2


def test_400_is_not_retried(fake_openai):
    fake_openai.error(400, "model 'nope' does not exist")
    with pytest.raises(LLMError, match=r"rejected \(HTTP 400\): model 'nope' does not exist"):
        make(fake_openai).complete_text(MSGS)
    assert len(fake_openai.completions()) == 1


def test_401_names_the_key_variable_not_the_key(fake_openai):
    fake_openai.error(401, "Incorrect API key provided")
    with pytest.raises(LLMError) as ei:
        make(fake_openai).complete_text(MSGS)
    assert "COACHLOOP_LLM_API_KEY" in str(ei.value) and KEY not in str(ei.value)


def test_refusal_is_retried(fake_openai):
    fake_openai.push({"kind": "refusal", "text": "I can't help with that"})
    fake_openai.reply_json({"x": 9})
    assert make(fake_openai).complete_json(MSGS, Answer).x == 9


def test_connection_refused_is_a_clear_error():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    c = LLMClient(model="m", base_url=f"http://127.0.0.1:{port}/v1", timeout=1, retries=1, backoff=0.01)
    with pytest.raises(LLMError, match=r"connection error"):
        c.complete_text(MSGS)


def test_response_format_fallback_when_endpoint_rejects_json_schema(fake_openai):
    fake_openai.reject_response_format = True
    fake_openai.reply('{"x": 11}')  # served to the fallback request
    c = make(fake_openai, model="old-server-model")  # own model name: the learnt mode is per endpoint+model
    assert c.complete_json(MSGS, Answer).x == 11
    first, second = fake_openai.completions()
    assert first["body"]["response_format"]["type"] == "json_schema"
    assert second["body"]["response_format"] == {"type": "json_object"}
    hint = second["body"]["messages"][0]
    assert hint["role"] == "system" and '"x"' in hint["content"]  # the schema is now in the prompt, up front
    # the fallback sticks for later calls, also for a new client of the same endpoint: no second rejection
    fake_openai.reply('{"x": 12}')
    assert make(fake_openai, model="old-server-model").complete_json(MSGS, Answer).x == 12
    assert len(fake_openai.completions()) == 3


def test_prompt_mode_fallback_keeps_one_leading_system_message(fake_openai):
    fake_openai.reject_response_format = True
    fake_openai.error(400, "response_format json_object is not supported")  # then json_object is refused too
    fake_openai.reply('{"x": 13}')
    c = make(fake_openai, model="prompt-only-model")
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert c.complete_json(msgs, Answer).x == 13
    last = fake_openai.completions()[-1]["body"]
    assert "response_format" not in last
    assert [m["role"] for m in last["messages"]] == ["system", "user"]
    assert last["messages"][0]["content"].startswith("Be brief.") and '"x"' in last["messages"][0]["content"]
    assert msgs[0]["content"] == "Be brief."  # the caller's messages are not modified


def test_text_completion_round_trip(fake_openai):
    fake_openai.reply("  Hello there.  ")
    c = make(fake_openai)
    assert c.complete_text(MSGS, temperature=0.9) == "Hello there."
    body = fake_openai.completions()[0]["body"]
    assert body["temperature"] == 0.9 and "response_format" not in body


def test_empty_text_answer_retried(fake_openai):
    fake_openai.reply("   ")
    fake_openai.reply("Fine.")
    assert make(fake_openai).complete_text(MSGS) == "Fine."


# ------------------------------------------------------------------ concurrency


def test_concurrency_limit_shared_by_threads(fake_openai):
    fake_openai.default = "chat"
    fake_openai.hold = 0.15
    c = make(fake_openai, concurrency=2)
    out = []
    threads = [threading.Thread(target=lambda: out.append(c.complete_text(MSGS))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(out) == 6
    assert fake_openai.max_active == 2
    assert c.stats["in_flight_max"] == 2


def test_clients_of_one_endpoint_share_the_limit(fake_openai):
    fake_openai.default = "chat"
    fake_openai.hold = 0.08
    a, b = make(fake_openai, concurrency=1), make(fake_openai, concurrency=1)
    threads = [threading.Thread(target=(a if i % 2 else b).complete_text, args=(MSGS,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert fake_openai.max_active == 1


# ------------------------------------------------------------------ configuration


def test_not_configured_means_none():
    assert LLMClient.from_policy(Policy(), env={}) is None
    assert LLMClient.from_policy(None, env={}) is None


def test_enabled_without_endpoint_or_key_is_none_with_warning(caplog):
    pol = Policy(llm=LLMSettings(enabled=True))
    with caplog.at_level(logging.WARNING, logger="coachloop"):
        assert LLMClient.from_policy(pol, env={}) is None
    assert "no base_url and no API key" in caplog.text


def test_config_from_policy(fake_openai):
    pol = Policy(llm=LLMSettings(enabled=True, base_url=fake_openai.base_url, model="m-policy", temperature=0.2,
                                 concurrency=3, timeout=5, retries=1, backoff=0.01, api_key_env="MY_KEY"))
    c = LLMClient.from_policy(pol, env={"MY_KEY": KEY})
    assert (c.model, c.temperature, c.concurrency, c.timeout, c.retries, c.backoff) == ("m-policy", 0.2, 3, 5.0, 1, 0.01)
    fake_openai.reply("ok")
    c.complete_text(MSGS)
    req = fake_openai.completions()[0]
    assert req["headers"]["authorization"] == f"Bearer {KEY}"
    assert req["body"]["model"] == "m-policy" and req["body"]["temperature"] == 0.2


def test_env_overrides_policy_and_base_url_enables(fake_openai):
    env = {"COACHLOOP_LLM_BASE_URL": fake_openai.base_url, "COACHLOOP_LLM_MODEL": "m-env",
           "COACHLOOP_LLM_TEMPERATURE": "0.5", "COACHLOOP_LLM_TIMEOUT": "3", "COACHLOOP_LLM_RETRIES": "4",
           "COACHLOOP_LLM_CONCURRENCY": "7", "COACHLOOP_LLM_BACKOFF": "0.02", "COACHLOOP_LLM_API_KEY": KEY}
    c = LLMClient.from_policy(Policy(), env=env)  # policy says disabled; the base URL enables it
    assert c is not None
    assert (c.model, c.temperature, c.timeout, c.retries, c.concurrency, c.backoff) == ("m-env", 0.5, 3.0, 4, 7, 0.02)
    assert c.base_url == fake_openai.base_url
    fake_openai.reply("ok")
    c.complete_text(MSGS)
    assert fake_openai.completions()[0]["body"]["model"] == "m-env"


def test_env_roleplay_switch():
    env = {"COACHLOOP_LLM_BASE_URL": "http://127.0.0.1:9/v1"}
    assert LLMClient.from_policy(Policy(), env=env).roleplay is True
    assert LLMClient.from_policy(Policy(), env={**env, "COACHLOOP_LLM_ROLEPLAY": "off"}).roleplay is False


def test_env_can_disable():
    pol = Policy(llm=LLMSettings(enabled=True, base_url="http://127.0.0.1:9/v1"))
    assert LLMClient.from_policy(pol, env={"COACHLOOP_LLM_ENABLED": "0"}) is None
    assert LLMClient.from_policy(pol, env={}) is not None


def test_api_key_env_precedence():
    pol = Policy(llm=LLMSettings(enabled=True, base_url="http://127.0.0.1:9/v1", api_key_env="TEAM_KEY"))
    cfg = resolve_config(pol.llm, {"TEAM_KEY": "a", "COACHLOOP_LLM_API_KEY": "b", "OPENAI_API_KEY": "c"})
    assert cfg.api_key == "a" and cfg.key_source == "TEAM_KEY"
    cfg = resolve_config(pol.llm, {"COACHLOOP_LLM_API_KEY": "b", "OPENAI_API_KEY": "c"})
    assert cfg.api_key == "b"
    assert resolve_config(pol.llm, {"OPENAI_API_KEY": "c"}).api_key == "c"
    assert resolve_config(pol.llm, {}).api_key is None  # local endpoint, no key needed


@pytest.mark.parametrize("var,value,needle", [
    ("COACHLOOP_LLM_TEMPERATURE", "warm", "COACHLOOP_LLM_TEMPERATURE"),
    ("COACHLOOP_LLM_CONCURRENCY", "0", "COACHLOOP_LLM_CONCURRENCY"),
    ("COACHLOOP_LLM_RETRIES", "99", "COACHLOOP_LLM_RETRIES"),
    ("COACHLOOP_LLM_ENABLED", "maybe", "COACHLOOP_LLM_ENABLED"),
])
def test_bad_env_value_names_the_variable(var, value, needle):
    env = {"COACHLOOP_LLM_BASE_URL": "http://127.0.0.1:9/v1", var: value}
    with pytest.raises(LLMError, match=needle):
        LLMClient.from_policy(Policy(), env=env)


def test_bad_policy_value_names_the_field():
    with pytest.raises(LLMError, match=r"playbook.yaml llm.timeout"):
        resolve_config({"enabled": True, "base_url": "http://x", "timeout": -1}, {})


def test_starter_playbook_policy_is_offline(playbook_dir):
    from playbook.loader import load_playbook

    assert LLMClient.from_policy(load_playbook(playbook_dir).policy, env={}) is None


def test_key_never_logged_or_shown(fake_openai, caplog):
    env = {"COACHLOOP_LLM_BASE_URL": fake_openai.base_url, "COACHLOOP_LLM_API_KEY": KEY,
           "COACHLOOP_LLM_RETRIES": "1", "COACHLOOP_LLM_BACKOFF": "0"}
    with caplog.at_level(logging.DEBUG):
        c = LLMClient.from_policy(Policy(), env=env)
        fake_openai.error(500, "boom")
        fake_openai.malformed("{")
        with pytest.raises(LLMError) as ei:
            c.complete_json(MSGS, Answer)
    assert KEY not in caplog.text
    assert KEY not in repr(c) and "key=set" in repr(c)
    assert KEY not in str(ei.value)
    cfg = resolve_config(None, env)
    assert KEY not in repr(cfg)


def test_probe_reports_health(fake_openai):
    fake_openai.reply('{"ok": true}')
    c = make(fake_openai)
    p = c.probe()
    assert p["ok"] is True and p["model"] == "judge-model" and p["format"] == "json_schema" and p["latency_ms"] >= 0
    fake_openai.error(401, "bad key")
    p = c.probe()
    assert p["ok"] is False and "authentication failed" in p["error"]


def test_wrong_base_url_path_gives_a_hint(fake_openai):
    c = LLMClient(model="m", base_url=fake_openai.base_url.removesuffix("/v1") + "/api", timeout=2, retries=0)
    with pytest.raises(LLMError, match=r"HTTP 404.*usually serve under /v1"):
        c.complete_text(MSGS)
