"""A small OpenAI-compatible chat-completions server for the LLM tests (real HTTP on 127.0.0.1).

    from fake_openai import fake_openai, fake_openai_server   # fixtures (tests/ is on sys.path)

    def test_x(fake_openai):
        fake_openai.rate_limit(retry_after_ms=20)   # the first request gets a 429
        fake_openai.reply_json({"lines": [...]})    # the second gets this content
        ...                                         # later requests: the default mode ("judge")
        fake_openai.requests[-1]["body"]            # what the client sent

Scripted responses are served in order, one per request; when the queue is empty the default
mode answers (`fake.default`, a kind or a callable): "judge" finds the rubric and the transcript data block in the prompt and returns
plausible verdicts whose quotes are real words of the transcript; "chat" returns a short text.
A scripted item can be a callable `fn(request) -> spec` (for answers built from the request).
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest

TRANSCRIPT_BLOCK = re.compile(r"<<<TRANSCRIPT (\w+)\n(.*?)\nTRANSCRIPT \1>>>", re.S)
RUBRIC_BLOCK = re.compile(r"<<<RUBRIC\n(.*?)\nRUBRIC>>>", re.S)
TURN_LINE = re.compile(r"^\[(\d+)\] (rep|buyer|unknown)(?: \([^)]*\))?: (.*)$")
STOP = set("""a an the and or but to of in on for with at by from as is are was were be been it its this that these
those you your we our they their he she his her i me my do does did have has had not no so if then than what which who
whom how when where why can could would should will shall may might must about into over under more most some any
each other such only own same very just also there here rep buyer asks ask asked says said""".split())


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


class FakeOpenAI:
    """The server. `requests` holds every request received: {"path", "headers", "body", "t"}."""

    def __init__(self, default: str = "judge"):
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._generation = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset(default)

    def reset(self, default: str = "judge") -> "FakeOpenAI":
        """Forget requests, script and settings (one server serves a whole test session). Requests
        still waiting on a `delay` from before are dropped without an answer."""
        with self._lock:
            self._stopping.set()  # wake sleepers of the previous test
            self._stopping = threading.Event()
            self._generation += 1
            self.default = default
            self.requests: list[dict] = []
            self.reject_response_format = False  # 400 on response_format json_schema, like older servers
            self.hold = 0.0  # seconds every request waits before answering (to observe concurrency)
            self.active = 0
            self.max_active = 0
            self._script: deque = deque()
        return self

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FakeOpenAI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                fake._handle(self)

            def do_GET(self):
                self._send(404, {"error": {"message": "not found"}})

            def _send(self, status: int, body: Any, headers: dict | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, str(v))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="fake-openai")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------------ scripting

    def push(self, spec: dict | Callable[[dict], dict]) -> "FakeOpenAI":
        with self._lock:
            self._script.append(spec)
        return self

    def reply(self, content: str | None, **extra) -> "FakeOpenAI":
        """A 200 answer whose message content is `content` (any text, valid JSON or not)."""
        return self.push({"kind": "content", "content": content, **extra})

    def reply_json(self, obj: Any) -> "FakeOpenAI":
        return self.reply(json.dumps(obj))

    def malformed(self, text: str = '{"lines": [{"id": "agenda_set", "verdict": ') -> "FakeOpenAI":
        return self.reply(text)

    def error(self, status: int, message: str = "error", headers: dict | None = None) -> "FakeOpenAI":
        return self.push({"kind": "status", "status": status,
                          "body": {"error": {"message": message, "type": "fake_error", "code": status}},
                          "headers": headers or {}})

    def rate_limit(self, retry_after_ms: int | None = None, retry_after: float | None = None) -> "FakeOpenAI":
        headers = {}
        if retry_after_ms is not None:
            headers["retry-after-ms"] = str(retry_after_ms)
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        return self.error(429, "Rate limit reached for requests", headers)

    def delay(self, seconds: float, then: dict | None = None) -> "FakeOpenAI":
        """Wait `seconds` before answering (a client with a shorter timeout gives up)."""
        return self.push({"kind": "delay", "seconds": seconds, "then": then})

    def judge(self) -> "FakeOpenAI":
        return self.push({"kind": "judge"})

    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    # ------------------------------------------------------------------ request helpers for tests

    def completions(self) -> list[dict]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    @staticmethod
    def prompt_text(request: dict) -> str:
        return "\n".join(_content_text(m.get("content")) for m in request["body"].get("messages", []))

    # ------------------------------------------------------------------ serving

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            h._send(400, {"error": {"message": "body is not JSON"}})
            return
        req = {"path": h.path, "headers": {k.lower(): v for k, v in h.headers.items()}, "body": body,
               "t": time.monotonic()}
        rf = body.get("response_format") or {}
        rejected = self.reject_response_format and rf.get("type") == "json_schema"
        with self._lock:
            gen, stopping = self._generation, self._stopping
            self.requests.append(req)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            # a rejected request does not consume the script: the client's fallback request gets it
            if rejected:
                spec = {"kind": "reject"}
            elif self._script:
                spec = self._script.popleft()
            else:
                spec = self.default if callable(self.default) else {"kind": self.default}
        try:
            if h.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                h._send(404, {"error": {"message": f"unknown path {h.path}"}})
                return
            if self.hold:
                stopping.wait(self.hold)
            if callable(spec):
                spec = spec(req)
            while spec.get("kind") == "delay":
                if stopping.wait(spec["seconds"]):
                    return
                spec = spec.get("then") or {"kind": "judge"}
            if spec.get("kind") == "reject":
                h._send(400, {"error": {"message": "response_format json_schema is not supported by this server",
                                        "type": "invalid_request_error", "param": "response_format"}})
                return
            kind = spec.get("kind")
            if kind == "status":
                h._send(spec["status"], spec["body"], spec.get("headers"))
                return
            if kind == "judge" and not RUBRIC_BLOCK.search(self.prompt_text(req)) and "response_format" not in body:
                kind = "chat"  # not a scoring request (the AI buyer, say): answer in words
            if kind == "judge":
                content = json.dumps(judge_answer(req))
            elif kind == "chat":
                content = chat_answer(req)
            elif kind == "content":
                content = spec["content"]
                if spec.get("finish_reason"):
                    h._send(200, _completion(body, content, finish_reason=spec["finish_reason"]))
                    return
            elif kind == "refusal":
                h._send(200, _completion(body, None, refusal=spec.get("text", "I can't help with that.")))
                return
            else:
                raise ValueError(f"unknown fake response kind {kind!r}")
            h._send(200, _completion(body, content))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): nothing to answer
        finally:
            with self._lock:
                if gen == self._generation:
                    self.active -= 1


def _content_text(content: Any) -> str:
    if isinstance(content, list):  # content parts
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def _completion(body: dict, content: str | None, refusal: str | None = None, finish_reason: str = "stop") -> dict:
    prompt_chars = sum(len(_content_text(m.get("content"))) for m in body.get("messages", []))
    return {
        "id": f"chatcmpl-fake-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "finish_reason": finish_reason, "logprobs": None,
                     "message": {"role": "assistant", "content": content, "refusal": refusal}}],
        "usage": {"prompt_tokens": prompt_chars // 4, "completion_tokens": len(content or "") // 4,
                  "total_tokens": prompt_chars // 4 + len(content or "") // 4},
    }


# ---------------------------------------------------------------------- default answers


def parse_transcript(request: dict) -> list[tuple[int, str, str]]:
    """[(index, role, text)] from the transcript data block of a judge request."""
    m = TRANSCRIPT_BLOCK.search(FakeOpenAI.prompt_text(request))
    if not m:
        return []
    out = []
    for line in m.group(2).splitlines():
        t = TURN_LINE.match(line)
        if t:
            out.append((int(t.group(1)), t.group(2), t.group(3)))
    return out


def parse_rubric(request: dict) -> list[dict]:
    m = RUBRIC_BLOCK.search(FakeOpenAI.prompt_text(request))
    return json.loads(m.group(1)) if m else []


def judge_answer(request: dict) -> dict:
    """Plausible verdicts: a line passes on the rep turn sharing most content words with its
    title, phrases and examples (at least two), quoting the first words of that turn verbatim."""
    turns = parse_transcript(request)
    lines = []
    for line in parse_rubric(request):
        keys = {w for w in _words(" ".join([line.get("title", "")] + line.get("phrases", []) + line.get("examples", [])))
                if len(w) > 3 and w not in STOP}
        best, best_hits = None, 0
        for idx, role, text in turns:
            if line.get("speaker", "rep") != "any" and role != line.get("speaker", "rep"):
                continue
            hits = len(keys & set(_words(text)))
            if hits > best_hits:
                best, best_hits = (idx, text), hits
        if best and best_hits >= 2:
            idx, text = best
            quote = " ".join(text.split()[:12])
            lines.append({"id": line["id"], "verdict": "pass", "turn": idx, "quote": quote,
                          "reason": f"rep covers {line.get('title', line['id']).lower()}"})
        elif line.get("conditional"):
            lines.append({"id": line["id"], "verdict": "na", "turn": None, "quote": None, "reason": "trigger not met"})
        else:
            lines.append({"id": line["id"], "verdict": "fail", "turn": None, "quote": None,
                          "reason": "not done in the call"})
    return {"lines": lines}


def chat_answer(request: dict) -> str:
    msgs = request["body"].get("messages", [])
    last = next((_content_text(m.get("content")) for m in reversed(msgs) if m.get("role") == "user"), "")
    return f"Fair question. About '{' '.join(last.split()[:6])}', let me think about that."


@pytest.fixture(scope="session")
def fake_openai_server():
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_openai(fake_openai_server):
    """The session's fake server, reset for this test (empty script, no requests, judge mode)."""
    yield fake_openai_server.reset()
    fake_openai_server.reset()
