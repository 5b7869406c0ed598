"""The LLM client: one OpenAI-compatible endpoint, configured from `playbook.yaml` and the environment.

Nothing in coachloop needs a model: the offline engine is the default. When an endpoint is
configured, `LLMClient` is what the LLM scoring engine (`tools/scoring/llm_engine.py`) and the
LLM-played buyer (`tools/roleplay_llm.py`) talk through.

Configuration (`llm:` in playbook.yaml, then environment variables, which win):

    enabled        COACHLOOP_LLM_ENABLED      (1/true/on, 0/false/off)
    base_url       COACHLOOP_LLM_BASE_URL     (setting it enables the LLM)
    model          COACHLOOP_LLM_MODEL
    api key        the variable named by `api_key_env` (default COACHLOOP_LLM_API_KEY),
                   then COACHLOOP_LLM_API_KEY, then OPENAI_API_KEY
    temperature    COACHLOOP_LLM_TEMPERATURE
    timeout        COACHLOOP_LLM_TIMEOUT      (seconds per request)
    retries        COACHLOOP_LLM_RETRIES      (retries after the first attempt)
    backoff        COACHLOOP_LLM_BACKOFF      (first retry delay, seconds; doubles, capped at 8 s)
    concurrency    COACHLOOP_LLM_CONCURRENCY  (requests in flight at once, shared by all threads)
    roleplay       COACHLOOP_LLM_ROLEPLAY     (0 keeps the offline buyer while the model scores)

Behaviour:
- Retries with exponential backoff (and the server's `Retry-After`/`retry-after-ms`) on 429,
  408/409, 5xx, timeouts, connection errors and malformed answers. Other 4xx are not retried.
- Structured output: `complete_json(messages, Model)` sends a strict JSON schema made from the
  pydantic model (`response_format: json_schema`). If the endpoint rejects that (400/404/422
  about the request), it falls back to `json_object`, then to plain text with the schema in the
  prompt, and parses the JSON out of the message (code fences and surrounding prose allowed).
  An answer that still does not validate after every retry raises `LLMError`.
  The mode an endpoint accepts is learnt once per process (per endpoint and model).
- A concurrency limit (a semaphore shared by every client of the same endpoint and model in this
  process) bounds requests in flight; it is released while a retry waits.
- One pooled HTTP client per endpoint, key and timeout, so `from_policy` is cheap to call often.
- `stats` counts requests, retries, failures, malformed answers, tokens and the most requests
  seen in flight; `probe()` is a one-request health check.
- The API key is never logged, never in `repr()` and never in an error message.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, TypeVar

from pydantic import BaseModel, ValidationError

log = logging.getLogger("coachloop.llm")

T = TypeVar("T", bound=BaseModel)

ENV_PREFIX = "COACHLOOP_LLM_"
MAX_BACKOFF = 8.0  # seconds: cap of the exponential backoff
MAX_RETRY_AFTER = 60.0  # seconds: longest Retry-After we honour; longer waits fail the call
NO_KEY = "not-needed"  # local endpoints (Ollama, vLLM, llama.cpp) need no key; openai wants one

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# One semaphore per (base_url, model, concurrency): every client of the same endpoint in this
# process shares the limit, so a CLI batch and a server thread cannot together exceed it.
_SEMAPHORES: dict[tuple, threading.BoundedSemaphore] = {}
_SEM_LOCK = threading.Lock()


class LLMError(RuntimeError):
    """The model could not give a usable answer (after retries), or the LLM is misconfigured.

    The message names the endpoint, the model and what went wrong; `attempts` says how many
    requests were made and `last_answer` holds the start of the last malformed answer, if any.
    """

    def __init__(self, message: str, *, attempts: int = 0, last_answer: str | None = None, status: int | None = None):
        super().__init__(message)
        self.attempts = attempts
        self.last_answer = last_answer
        self.status = status


class _Malformed(Exception):
    def __init__(self, detail: str, content: str | None):
        super().__init__(detail)
        self.detail, self.content = detail, content


class _Retryable(Exception):
    def __init__(self, detail: str, wait: float | None = None, status: int | None = None):
        super().__init__(detail)
        self.detail, self.wait, self.status = detail, wait, status


# --------------------------------------------------------------------------- JSON schema


def strict_json_schema(model: type[BaseModel]) -> dict:
    """The pydantic model's JSON schema made acceptable to `strict: true` structured output:
    every object closed (`additionalProperties: false`), every property required, no defaults."""
    schema = copy.deepcopy(model.model_json_schema())

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("default", None)
            if node.get("type") == "object" or "properties" in node:
                node.setdefault("additionalProperties", False)
                if "properties" in node:
                    node["required"] = list(node["properties"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return schema


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)


def extract_json(text: str) -> Any:
    """Parse the JSON value in a model's message: bare, in a ``` fence, or inside prose."""
    s = (text or "").strip()
    if not s:
        raise ValueError("empty answer")
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        pass
    for m in _FENCE.finditer(s):
        try:
            return json.loads(m.group(1).strip())
        except json.JSONDecodeError:
            continue
    dec = json.JSONDecoder()
    for i, ch in enumerate(s):
        if ch in "{[":
            try:
                value, _ = dec.raw_decode(s[i:])
                return value
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON object found in the answer")


def _snippet(text: str | None, n: int = 200) -> str:
    t = " ".join((text or "").split())
    return t if len(t) <= n else t[: n - 1] + "…"


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class LLMConfig:
    """Resolved settings for one endpoint. `api_key` is excluded from repr."""

    base_url: str | None
    model: str
    api_key: str | None = field(default=None, repr=False)
    temperature: float = 0.0
    concurrency: int = 4
    timeout: float = 60.0
    retries: int = 2
    backoff: float = 0.5
    roleplay: bool = True
    key_source: str | None = None  # name of the variable the key came from (safe to show)


def _env_bool(env: Mapping[str, str], name: str) -> bool | None:
    raw = env.get(name)
    if raw is None:
        return None
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise LLMError(f"environment variable {name}={raw!r} is not a boolean; use 1/true/on or 0/false/off")


def resolve_config(settings: Any = None, env: Mapping[str, str] | None = None) -> LLMConfig | None:
    """Merge `policy.llm` (an `LLMSettings`, a dict, or None) with COACHLOOP_LLM_* variables.

    Returns None when the LLM is not enabled, or enabled without anything to talk to (no base
    URL and no key). Raises `LLMError` naming the variable or field when a value is invalid.
    """
    from playbook.models import LLMSettings

    env = os.environ if env is None else env
    if settings is None:
        base = {}
    elif isinstance(settings, BaseModel):
        base = settings.model_dump()
    else:
        base = dict(settings)
    merged = dict(base)
    numeric = {"TEMPERATURE": "temperature", "TIMEOUT": "timeout", "RETRIES": "retries",
               "CONCURRENCY": "concurrency", "BACKOFF": "backoff"}
    sources: dict[str, str] = {}
    for suffix, fld in numeric.items():
        name = ENV_PREFIX + suffix
        raw = env.get(name)
        if raw is not None and raw.strip() != "":
            merged[fld] = raw.strip()
            sources[fld] = name
    if (m := env.get(ENV_PREFIX + "MODEL", "").strip()):
        merged["model"] = m
        sources["model"] = ENV_PREFIX + "MODEL"
    url = env.get(ENV_PREFIX + "BASE_URL", "").strip()
    if url:
        merged["base_url"] = url
        merged["enabled"] = True
    roleplay = _env_bool(env, ENV_PREFIX + "ROLEPLAY")
    if roleplay is not None:
        merged["roleplay"] = roleplay
    forced = _env_bool(env, ENV_PREFIX + "ENABLED")
    if forced is not None:
        merged["enabled"] = forced
    try:
        s = LLMSettings.model_validate(merged)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            fld = str(err["loc"][0]) if err["loc"] else "?"
            where = f"environment variable {sources[fld]}" if fld in sources else f"playbook.yaml llm.{fld}"
            problems.append(f"{where}: {err['msg']}")
        raise LLMError("invalid LLM settings: " + "; ".join(problems)) from None
    if not s.enabled:
        return None
    key, key_source = None, None
    for name in (s.api_key_env, ENV_PREFIX + "API_KEY", "OPENAI_API_KEY"):
        if name and env.get(name):
            key, key_source = env[name], name
            break
    if not s.base_url and not key:
        log.warning(
            "llm: enabled in playbook.yaml but no base_url and no API key in $%s; using the offline engine "
            "(set llm.base_url or COACHLOOP_LLM_BASE_URL for a local endpoint, or the key for api.openai.com)",
            s.api_key_env,
        )
        return None
    return LLMConfig(
        base_url=s.base_url, model=s.model, api_key=key, temperature=s.temperature,
        concurrency=s.concurrency, timeout=s.timeout, retries=s.retries, backoff=s.backoff,
        roleplay=s.roleplay, key_source=key_source,
    )


# --------------------------------------------------------------------------- client

# One openai client (one HTTP connection pool) per endpoint, key and timeout in this process:
# building one costs ~0.2 s (TLS context), and callers such as the roleplay buyer resolve the
# client from the policy on every turn. The key is part of the cache key only as a hash.
_OPENAI_CLIENTS: dict[tuple, Any] = {}
_FORMAT_MODES: dict[tuple, str] = {}  # (base_url, model) -> structured-output mode the endpoint accepts


def _openai_client(base_url: str | None, api_key: str, timeout: float):
    import hashlib

    import openai

    key = (base_url, hashlib.sha256(api_key.encode()).hexdigest(), timeout)
    with _SEM_LOCK:
        client = _OPENAI_CLIENTS.get(key)
        if client is None:
            # openai's own retries are off: LLMClient retries itself so that malformed answers,
            # the semaphore and the backoff follow one policy.
            client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)
            _OPENAI_CLIENTS[key] = client
        return client


def close_all() -> None:
    """Close every pooled HTTP connection (at process shutdown; clients made later reconnect)."""
    with _SEM_LOCK:
        clients = list(_OPENAI_CLIENTS.values())
        _OPENAI_CLIENTS.clear()
    for c in clients:
        try:
            c.close()
        except Exception:  # pragma: no cover - closing is best effort
            pass


class LLMClient:
    """A thread-safe client for one OpenAI-compatible chat-completions endpoint."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float = 0.0,
        concurrency: int = 4,
        timeout: float = 60.0,
        retries: int = 2,
        backoff: float = 0.5,
        max_backoff: float = MAX_BACKOFF,
        roleplay: bool = True,
    ):
        if concurrency < 1:
            raise LLMError(f"LLM concurrency must be at least 1, got {concurrency}")
        self.model = model
        self.base_url = base_url
        self.temperature = float(temperature)
        self.concurrency = int(concurrency)
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.roleplay = bool(roleplay)
        self._has_key = bool(api_key)
        self._openai = _openai_client(base_url, api_key or NO_KEY, self.timeout)
        key = (base_url or "https://api.openai.com/v1", model, self.concurrency)
        with _SEM_LOCK:
            self._sem = _SEMAPHORES.setdefault(key, threading.BoundedSemaphore(self.concurrency))
        self._format_key = (base_url or "https://api.openai.com/v1", model)
        self._stats_lock = threading.Lock()
        self.stats = {"requests": 0, "retries": 0, "failures": 0, "prompt_tokens": 0, "completion_tokens": 0,
                      "malformed": 0, "in_flight_max": 0}
        self._in_flight = 0

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_config(cls, cfg: LLMConfig) -> "LLMClient":
        return cls(model=cfg.model, base_url=cfg.base_url, api_key=cfg.api_key, temperature=cfg.temperature,
                   concurrency=cfg.concurrency, timeout=cfg.timeout, retries=cfg.retries, backoff=cfg.backoff,
                   roleplay=cfg.roleplay)

    @classmethod
    def from_policy(cls, policy: Any = None, env: Mapping[str, str] | None = None) -> "LLMClient | None":
        """A client from `policy.llm` (a `playbook.models.Policy`) and the environment, or None
        when the LLM is not enabled/configured. Raises `LLMError` on invalid settings."""
        settings = getattr(policy, "llm", None) if policy is not None else None
        cfg = resolve_config(settings, env)
        if cfg is None:
            return None
        client = cls.from_config(cfg)
        log.debug("llm: using %s at %s (key from %s)", cfg.model, cfg.base_url or "api.openai.com",
                 cfg.key_source or "none")
        return client

    @property
    def _format_mode(self) -> str:
        """"json_schema" -> "json_object" -> "prompt": what this endpoint and model accept, learnt
        once per process from its 400s (shared by every client of the endpoint)."""
        return _FORMAT_MODES.get(self._format_key, "json_schema")

    @_format_mode.setter
    def _format_mode(self, mode: str) -> None:
        _FORMAT_MODES[self._format_key] = mode

    @property
    def engine_version(self) -> str:
        """What is recorded with each verdict: `llm:<model>`."""
        return f"llm:{self.model}"

    def __repr__(self) -> str:
        return (f"LLMClient(model={self.model!r}, base_url={self.base_url!r}, key={'set' if self._has_key else 'none'}, "
                f"concurrency={self.concurrency}, timeout={self.timeout}, retries={self.retries})")

    def close(self) -> None:
        """Nothing to release per client: the HTTP connection pool is shared per endpoint
        (see `close_all`)."""

    def __enter__(self) -> "LLMClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------- public calls

    def complete_text(self, messages: list[dict], *, temperature: float | None = None,
                      max_tokens: int | None = None) -> str:
        """The model's text answer to `messages` (retried on transient errors and empty answers)."""

        def parse(content: str | None) -> str:
            text = (content or "").strip()
            if not text:
                raise _Malformed("empty answer", content)
            return text

        return self._run(messages, parse, response_format=None, temperature=temperature, max_tokens=max_tokens,
                         what="text answer")

    def complete_json(self, messages: list[dict], model: type[T], *, name: str | None = None,
                      schema: dict | None = None, temperature: float | None = None,
                      max_tokens: int | None = None) -> T:
        """The model's answer validated as `model`. `schema` overrides the JSON schema sent
        (for example to add an enum of allowed ids); parsing always uses `model`."""
        name = re.sub(r"[^A-Za-z0-9_-]", "_", name or model.__name__)[:64]
        schema = schema or strict_json_schema(model)

        def parse(content: str | None) -> T:
            if content is None or not content.strip():
                raise _Malformed("empty answer", content)
            try:
                data = extract_json(content)
            except ValueError as e:
                raise _Malformed(f"not JSON ({e})", content) from None
            try:
                return model.model_validate(data)
            except ValidationError as e:
                first = e.errors()[0]
                loc = ".".join(str(p) for p in first["loc"]) or "(root)"
                raise _Malformed(f"JSON does not match the {name} schema at {loc}: {first['msg']}", content) from None

        return self._run(messages, parse, response_format=(name, schema), temperature=temperature,
                         max_tokens=max_tokens, what=f"{name} JSON")

    def probe(self) -> dict:
        """One small structured request, for a health check (`coachloop doctor`, MCP status):
        {ok, model, base_url, engine_version, format, latency_ms, error}. Never raises."""

        class Ping(BaseModel):
            ok: bool

        t0 = time.monotonic()
        out = {"model": self.model, "base_url": self.base_url or "https://api.openai.com/v1",
               "engine_version": self.engine_version}
        try:
            self.complete_json([{"role": "system", "content": "You are a health check."},
                                {"role": "user", "content": 'Answer with {"ok": true}.'}], Ping, name="ping")
            out.update(ok=True, error=None)
        except LLMError as e:
            out.update(ok=False, error=str(e))
        out.update(format=self._format_mode, latency_ms=round((time.monotonic() - t0) * 1000, 1))
        return out

    # ----------------------------------------------------------------- machinery

    def _bump(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def _delay(self, attempt: int, wait: float | None) -> float:
        if wait is not None:
            return max(0.0, wait)
        base = min(self.max_backoff, self.backoff * (2 ** attempt))
        return base * (0.75 + 0.25 * random.random())

    def _format_kwargs(self, response_format: tuple[str, dict] | None, messages: list[dict]) -> tuple[dict, list[dict]]:
        if response_format is None:
            return {}, messages
        name, schema = response_format
        mode = self._format_mode
        if mode == "json_schema":
            return {"response_format": {"type": "json_schema",
                                        "json_schema": {"name": name, "schema": schema, "strict": True}}}, messages
        hint = ("Answer with one JSON object only, no prose and no code fence, matching this JSON schema:\n"
                + json.dumps(schema, ensure_ascii=False))
        msgs = list(messages)
        # into the first system message: some chat templates reject a system message anywhere else
        if msgs and msgs[0].get("role") == "system" and isinstance(msgs[0].get("content"), str):
            msgs[0] = {**msgs[0], "content": msgs[0]["content"] + "\n\n" + hint}
        else:
            msgs.insert(0, {"role": "system", "content": hint})
        if mode == "json_object":
            return {"response_format": {"type": "json_object"}}, msgs
        return {}, msgs

    def _run(self, messages, parse, *, response_format, temperature, max_tokens, what):
        import openai

        attempts_allowed = self.retries + 1
        attempt = 0
        last_detail, last_content, last_status = "", None, None
        while True:
            kwargs, msgs = self._format_kwargs(response_format, messages)
            params: dict[str, Any] = {"model": self.model, "messages": msgs,
                                      "temperature": self.temperature if temperature is None else temperature}
            if max_tokens:
                params["max_tokens"] = max_tokens
            params.update(kwargs)
            attempt += 1
            wait = None
            try:
                content, finish = self._request(params)
                try:
                    return parse(content)
                except _Malformed as e:
                    if finish == "length":
                        e.detail += " (the answer was cut off at the token limit: finish_reason=length)"
                    raise
            except _Malformed as e:
                self._bump("malformed")
                last_detail, last_content, last_status = f"malformed answer: {e.detail}", e.content, None
                log.warning("llm %s: attempt %d/%d: %s: %s", self.model, attempt, attempts_allowed, last_detail,
                            _snippet(e.content, 120))
            except _Retryable as e:
                last_detail, last_status, wait, last_content = e.detail, e.status, e.wait, None
                log.warning("llm %s: attempt %d/%d: %s", self.model, attempt, attempts_allowed, e.detail)
            except (openai.BadRequestError, openai.NotFoundError, openai.UnprocessableEntityError) as e:
                if response_format is not None and self._format_mode != "prompt" and _about_format(e):
                    old = self._format_mode
                    self._format_mode = "json_object" if old == "json_schema" else "prompt"
                    log.warning("llm %s: endpoint rejected response_format %s (HTTP %s); falling back to %s",
                                self.model, old, e.status_code, self._format_mode)
                    attempt -= 1  # a format fallback is not a failed attempt
                    continue
                self._bump("failures")
                hint = ""
                if e.status_code == 404:
                    hint = ("; check llm.base_url (OpenAI-compatible servers usually serve under /v1, e.g. "
                            "http://localhost:11434/v1) and llm.model")
                raise LLMError(self._where() + f": request rejected (HTTP {e.status_code}): {_api_message(e)}{hint}",
                               attempts=attempt, status=e.status_code) from None
            except openai.AuthenticationError as e:
                self._bump("failures")
                raise LLMError(self._where() + f": authentication failed (HTTP {e.status_code}); set the API key in "
                               "the variable named by llm.api_key_env (default COACHLOOP_LLM_API_KEY)",
                               attempts=attempt, status=e.status_code) from None
            except openai.APIStatusError as e:
                self._bump("failures")
                raise LLMError(self._where() + f": HTTP {e.status_code}: {_api_message(e)}",
                               attempts=attempt, status=e.status_code) from None
            if attempt >= attempts_allowed:
                self._bump("failures")
                msg = self._where() + f": no usable {what} after {attempt} attempt(s): {last_detail}"
                if last_content is not None:
                    msg += f"; last answer began: {_snippet(last_content)!r}"
                raise LLMError(msg, attempts=attempt, last_answer=_snippet(last_content, 500) if last_content else None,
                               status=last_status)
            if wait is not None and wait > MAX_RETRY_AFTER:
                self._bump("failures")
                raise LLMError(self._where() + f": server asked to wait {wait:.0f}s (Retry-After), more than "
                               f"{MAX_RETRY_AFTER:.0f}s; giving up: {last_detail}", attempts=attempt, status=last_status)
            self._bump("retries")
            time.sleep(self._delay(attempt - 1, wait))

    def _request(self, params: dict) -> tuple[str | None, str | None]:
        import openai

        with self._sem:
            with self._stats_lock:
                self._in_flight += 1
                self.stats["requests"] += 1
                self.stats["in_flight_max"] = max(self.stats["in_flight_max"], self._in_flight)
            try:
                resp = self._openai.chat.completions.create(**params)
            except openai.APITimeoutError:
                raise _Retryable(f"timed out after {self.timeout:g}s") from None
            except openai.APIConnectionError as e:
                raise _Retryable(f"connection error: {e.__cause__ or e}") from None
            except openai.APIStatusError as e:
                code = e.status_code
                if code in (408, 409, 429) or code >= 500:
                    raise _Retryable(f"HTTP {code}: {_api_message(e)}", wait=_retry_after(e), status=code) from None
                raise
            finally:
                with self._stats_lock:
                    self._in_flight -= 1
        usage = getattr(resp, "usage", None)
        if usage is not None:
            self._bump("prompt_tokens", int(getattr(usage, "prompt_tokens", 0) or 0))
            self._bump("completion_tokens", int(getattr(usage, "completion_tokens", 0) or 0))
        choices = getattr(resp, "choices", None) or []
        if not choices:
            raise _Malformed("answer has no choices", None)
        msg = choices[0].message
        refusal = getattr(msg, "refusal", None)
        if refusal:
            raise _Malformed(f"model refused: {_snippet(refusal, 120)}", refusal)
        return msg.content, getattr(choices[0], "finish_reason", None)

    def _where(self) -> str:
        return f"LLM {self.model} at {self.base_url or 'api.openai.com'}"


def _api_message(e: Exception) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return _snippet(str(err["message"]), 200)
        if isinstance(err, str):
            return _snippet(err, 200)
    return _snippet(str(getattr(e, "message", "") or e), 200)


def _about_format(e: Exception) -> bool:
    """True when a 4xx looks like the endpoint does not support the response_format we sent."""
    text = (_api_message(e) + " " + json.dumps(getattr(e, "body", None), default=str)).lower()
    return any(w in text for w in ("response_format", "json_schema", "json schema", "structured output",
                                   "json_object", "response format"))


def _retry_after(e: Exception) -> float | None:
    resp = getattr(e, "response", None)
    headers = getattr(resp, "headers", None)
    if headers is None:
        return None
    raw = headers.get("retry-after-ms")
    if raw:
        try:
            return float(raw) / 1000.0
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw:
        try:
            return float(raw)
        except ValueError:
            import email.utils

            parsed = email.utils.parsedate_tz(raw)
            if parsed is not None:
                return max(0.0, email.utils.mktime_tz(parsed) - time.time())
    return None
