"""Outgoing webhooks against a real HTTP server on 127.0.0.1: signature, event filter, retry with
backoff (500 then 200), the cursor in meta (nothing sent twice, also across restarts), a permanent
4xx, a missing secret, and the background thread."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from server.webhooks import WebhookDeliverer, sign, verify
from tools.context import Coach

SECRET = "whsec-test"


class Receiver:
    """A local webhook endpoint that answers with the scripted statuses, then 200."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.received: list[dict] = []
        rec = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = rec.statuses.pop(0) if rec.statuses else 200
                rec.received.append({"status": status, "body": body, "headers": dict(self.headers)})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def ok(self) -> list[dict]:
        return [r for r in self.received if r["status"] == 200]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def with_webhooks(playbook_dir, url, events=None, secret_env="COACHLOOP_WEBHOOK_SECRET"):
    pol = playbook_dir / "playbook.yaml"
    text = pol.read_text()
    assert "webhooks: []" in text
    ev = f"\n    events: [{', '.join(events)}]" if events else ""
    pol.write_text(text.replace("webhooks: []", f"webhooks:\n  - url: {url}{ev}\n    secret_env: {secret_env}"))


def emit(coach, type_, rep="priya-raman", **data):
    with coach.store.transaction():
        return coach.store.event(type_, rep_id=rep, subject=f"gate:{data.get('gate_id', 1)}", data=data)


def deliverer(coach, **kw):
    kw.setdefault("base_delay", 0.01)
    kw.setdefault("max_delay", 0.05)
    kw.setdefault("timeout", 5)
    return WebhookDeliverer(coach, environ={"COACHLOOP_WEBHOOK_SECRET": SECRET}, **kw)


def test_signed_filtered_and_sent_once(playbook_dir, tmp_path, receiver):
    with_webhooks(playbook_dir, receiver.url)
    coach = Coach(playbook_dir, tmp_path / "w.db")
    emit(coach, "gate.blocked", gate_id=0)  # before the webhook was first seen: not replayed
    d = deliverer(coach)
    e1 = emit(coach, "gate.blocked", gate_id=1, activity="dial")
    emit(coach, "call.scored")  # not a webhook event
    e2 = emit(coach, "certification.passed", certification_id="discovery-core")
    assert d.run_once() == 2
    got = receiver.ok()
    assert [json.loads(r["body"])["id"] for r in got] == [e1, e2]
    first = got[0]
    body = json.loads(first["body"])
    assert body["type"] == "gate.blocked" and body["rep"] == "priya-raman" and body["data"]["activity"] == "dial"
    assert first["headers"]["X-Coachloop-Event"] == "gate.blocked" and first["headers"]["X-Coachloop-Delivery"] == str(e1)
    expected = "sha256=" + hmac.new(SECRET.encode(), first["body"], hashlib.sha256).hexdigest()
    assert first["headers"]["X-Coachloop-Signature"] == expected and verify(SECRET, first["body"], expected)
    assert not verify("other", first["body"], expected)
    # nothing twice: again, and after a restart (cursor in meta)
    assert d.run_once() == 0
    coach.close()
    coach = Coach(playbook_dir, tmp_path / "w.db")
    assert deliverer(coach).run_once() == 0
    e3 = emit(coach, "gate.lifted", gate_id=1)
    assert deliverer(coach).run_once() == 1
    assert [json.loads(r["body"])["id"] for r in receiver.ok()] == [e1, e2, e3]
    coach.close()


def test_retry_500_then_200_with_backoff(playbook_dir, tmp_path):
    rec = Receiver([500, 503])
    try:
        with_webhooks(playbook_dir, rec.url, events=["gate.blocked"])
        coach = Coach(playbook_dir, tmp_path / "w.db")
        d = deliverer(coach, max_attempts=5)
        eid = emit(coach, "gate.blocked")
        t0 = time.monotonic()
        assert d.run_once() == 1
        assert [r["status"] for r in rec.received] == [500, 503, 200]
        assert time.monotonic() - t0 >= 0.01 + 0.02  # waited between attempts
        assert len({r["body"] for r in rec.received}) == 1  # the same body each time
        assert d.cursor(rec.url) == eid
        coach.close()
    finally:
        rec.close()


def test_retries_exhausted_pause_then_resume_without_loss(playbook_dir, tmp_path):
    rec = Receiver([500, 500])
    try:
        with_webhooks(playbook_dir, rec.url)
        coach = Coach(playbook_dir, tmp_path / "w.db")
        d = deliverer(coach, max_attempts=2, max_delay=0.05)
        eid = emit(coach, "gate.blocked")
        start = d.cursor(rec.url)
        assert d.run_once() == 0 and d.cursor(rec.url) == start  # paused, nothing lost
        time.sleep(0.06)
        assert d.run_once() == 1 and d.cursor(rec.url) == eid
        assert [r["status"] for r in rec.received] == [500, 500, 200]
        coach.close()
    finally:
        rec.close()


def test_permanent_4xx_skips_the_event(playbook_dir, tmp_path):
    rec = Receiver([400])
    try:
        with_webhooks(playbook_dir, rec.url)
        coach = Coach(playbook_dir, tmp_path / "w.db")
        d = deliverer(coach)
        emit(coach, "gate.blocked")
        e2 = emit(coach, "gate.lifted")
        assert d.run_once() == 1
        assert [r["status"] for r in rec.received] == [400, 200]
        assert json.loads(rec.received[1]["body"])["id"] == e2 and d.failed == 1
        coach.close()
    finally:
        rec.close()


def test_missing_secret_sends_nothing(playbook_dir, tmp_path, receiver):
    with_webhooks(playbook_dir, receiver.url, secret_env="NO_SUCH_SECRET_VAR")
    coach = Coach(playbook_dir, tmp_path / "w.db")
    d = WebhookDeliverer(coach, environ={})
    emit(coach, "gate.blocked")
    assert d.run_once() == 0 and receiver.received == []
    coach.close()


def test_background_thread_delivers(playbook_dir, tmp_path, receiver):
    with_webhooks(playbook_dir, receiver.url)
    coach = Coach(playbook_dir, tmp_path / "w.db")
    d = deliverer(coach, poll_interval=0.02).start()
    try:
        eid = emit(coach, "certification.failed")
        deadline = time.monotonic() + 5
        while not receiver.ok() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [json.loads(r["body"])["id"] for r in receiver.ok()] == [eid]
    finally:
        d.stop()
        coach.close()


def test_sign_matches_hmac():
    assert sign("k", b"{}") == "sha256=" + hmac.new(b"k", b"{}", hashlib.sha256).hexdigest()


def test_other_events_move_the_cursor_in_one_write_and_a_pause_keeps_it_before_the_failure(playbook_dir, tmp_path, monkeypatch):
    rec = Receiver([500])
    try:
        with_webhooks(playbook_dir, rec.url, events=["gate.blocked"])
        coach = Coach(playbook_dir, tmp_path / "w.db")
        d = deliverer(coach, max_attempts=1)
        writes = []
        real = d._set_cursor
        monkeypatch.setattr(d, "_set_cursor", lambda url, eid: writes.append(eid) or real(url, eid))
        noise = [emit(coach, "call.scored") for _ in range(50)]
        failing = emit(coach, "gate.blocked")
        assert d.run_once() == 0
        assert writes == [noise[-1]] and d.cursor(rec.url) == noise[-1]  # 50 passed over in one write; paused before the failure
        d._paused_until.clear()
        writes.clear()
        more = [emit(coach, "call.scored") for _ in range(3)]
        assert d.run_once() == 1
        assert writes == [failing, more[-1]] and d.cursor(rec.url) == more[-1]
        coach.close()
    finally:
        rec.close()
