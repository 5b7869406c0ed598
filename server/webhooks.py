"""Outgoing webhooks: gate changes and certifications, HMAC-signed, retried with backoff.

`playbook.yaml`:

    webhooks:
      - url: https://dialer.example.com/coachloop
        events: [gate.blocked, gate.lifted, gate.shadow, certification.passed, certification.failed]
        secret_env: COACHLOOP_WEBHOOK_SECRET

Each matching event of the store's event log is POSTed as JSON:

    {"id": 42, "type": "gate.blocked", "at": "...", "rep": "priya-raman", "subject": "gate:3",
     "cause": 41, "data": {...}, "team": "..."}

with headers `X-Coachloop-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>`,
`X-Coachloop-Event: <type>` and `X-Coachloop-Delivery: <event id>` (receivers can dedupe on it).

Delivery: a background thread (`WebhookDeliverer.start()`, run by `coachloop serve`) polls the event
log. Each webhook has its own cursor in the store's `meta` table (`webhook.cursor.<hash of url>`),
advanced after each successful delivery, so nothing is sent twice across restarts and one dead
endpoint does not hold up the others. A new webhook starts at the end of the log (no replay of
history). A failed POST (network error, 5xx, 408, 429) is retried with exponential backoff up to
`max_attempts`; if it still fails, that webhook pauses (cursor kept) and is tried again on a later
poll. Any other 4xx is permanent: the event is skipped for that webhook with an error log.
A webhook whose secret variable is unset is not delivered (unsigned bodies are never sent).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

from store.db import now_iso

log = logging.getLogger("coachloop.webhooks")

WEBHOOK_EVENTS = ("gate.blocked", "gate.lifted", "gate.shadow", "certification.passed", "certification.failed")
RETRYABLE = {408, 425, 429}


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """For receivers (and tests): check an X-Coachloop-Signature header."""
    return bool(header) and hmac.compare_digest(sign(secret, body), header)


def _key(url: str) -> str:
    return "webhook.cursor." + hashlib.sha256(url.encode()).hexdigest()[:16]


@dataclass
class Attempt:
    ok: bool
    status: int | None
    error: str
    retryable: bool


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Attempt:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read(65536)
            return Attempt(True, resp.status, "", False)
    except urllib.error.HTTPError as exc:
        status = exc.code
        return Attempt(False, status, f"HTTP {status}", status >= 500 or status in RETRYABLE)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        return Attempt(False, None, f"{type(exc).__name__}: {reason}", True)


class WebhookDeliverer:
    """Delivers the event log's gate and certification events to the policy's webhooks."""

    def __init__(
        self,
        coach: Any,
        *,
        poll_interval: float = 1.0,
        max_attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        timeout: float = 10.0,
        sender: Callable[[str, bytes, dict[str, str], float], Attempt] = post,
        environ: dict | None = None,
    ):
        self.coach = coach
        self.poll_interval = poll_interval
        self.max_attempts = max(1, max_attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.sender = sender
        self.environ = os.environ if environ is None else environ
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._paused_until: dict[str, float] = {}
        self._warned: set[str] = set()
        self.sent = 0
        self.failed = 0
        self._init_cursors()

    # ------------------------------------------------------------------ cursors (meta table)
    def _max_event(self) -> int:
        row = self.coach.store.one("select max(id) as m from events")
        return int(row["m"] or 0) if row else 0

    def cursor(self, url: str) -> int | None:
        row = self.coach.store.one("select value from meta where key = ?", (_key(url),))
        return int(row["value"]) if row else None

    def _set_cursor(self, url: str, event_id: int) -> None:
        with self.coach.store.transaction() as db:
            db["meta"].upsert({"key": _key(url), "value": str(event_id)}, pk="key")

    def _init_cursors(self) -> None:
        for hook in self._hooks():
            if self.cursor(hook.url) is None:
                self._set_cursor(hook.url, self._max_event())

    def _hooks(self) -> list:
        return list(self.coach.playbook.policy.webhooks or [])

    # ------------------------------------------------------------------ delivery
    def body_for(self, ev: dict) -> bytes:
        payload = {
            "id": ev["id"],
            "type": ev["type"],
            "at": ev["at"],
            "rep": ev.get("rep_id"),
            "subject": ev.get("subject"),
            "cause": ev.get("cause_id"),
            "data": ev.get("data") or {},
            "team": self.coach.playbook.policy.team,
            "sent_at": now_iso(),
        }
        return json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")

    def _deliver_one(self, hook, secret: str, ev: dict) -> str:
        """Returns 'sent', 'skipped' (permanent failure) or 'paused' (retries exhausted / stopping)."""
        body = self.body_for(ev)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "coachloop-webhooks/1",
            "X-Coachloop-Event": ev["type"],
            "X-Coachloop-Delivery": str(ev["id"]),
            "X-Coachloop-Signature": sign(secret, body),
        }
        delay = self.base_delay
        for attempt in range(1, self.max_attempts + 1):
            res = self.sender(hook.url, body, headers, self.timeout)
            if res.ok:
                self.sent += 1
                log.info("webhook %s: delivered event %s (%s)", hook.url, ev["id"], ev["type"])
                return "sent"
            if not res.retryable:
                self.failed += 1
                log.error("webhook %s: event %s (%s) refused with %s; not retried (fix the receiver)", hook.url, ev["id"], ev["type"], res.error)
                return "skipped"
            if attempt < self.max_attempts:
                log.warning("webhook %s: event %s attempt %d failed (%s); retrying in %.1fs", hook.url, ev["id"], attempt, res.error, delay)
                if self._stop.wait(delay):
                    return "paused"
                delay = min(delay * 2, self.max_delay)
        self.failed += 1
        log.error("webhook %s: event %s failed %d times; will try again later", hook.url, ev["id"], self.max_attempts)
        return "paused"

    def run_once(self) -> int:
        """Deliver every pending event to every webhook; returns how many were sent."""
        sent = 0
        for hook in self._hooks():
            if self._paused_until.get(hook.url, 0) > time.monotonic():
                continue
            secret = self.environ.get(hook.secret_env)
            if not secret:
                if hook.url not in self._warned:
                    log.error("webhook %s: environment variable %s is not set; not delivering unsigned events", hook.url, hook.secret_env)
                    self._warned.add(hook.url)
                continue
            cur = self.cursor(hook.url)
            if cur is None:
                cur = self._max_event()
                self._set_cursor(hook.url, cur)
            wanted = set(hook.events)
            saved = cur
            while not self._stop.is_set():
                batch = self.coach.store.events(since_id=cur, limit=200)
                if not batch:
                    break
                paused = False
                for ev in batch:
                    if ev["type"] in wanted:
                        outcome = self._deliver_one(hook, secret, ev)
                        if outcome == "paused":
                            paused = True
                            break
                        sent += outcome == "sent"
                        cur = saved = ev["id"]
                        self._set_cursor(hook.url, cur)  # each delivery recorded at once: never sent twice
                    else:
                        cur = ev["id"]
                if cur != saved:  # the events of other types passed over: one write per batch, not one per event
                    self._set_cursor(hook.url, cur)
                    saved = cur
                if paused:
                    self._paused_until[hook.url] = time.monotonic() + self.max_delay
                    break
        return sent

    # ------------------------------------------------------------------ thread
    def start(self) -> "WebhookDeliverer":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="coachloop-webhooks", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("webhook delivery cycle failed")
            self._stop.wait(self.poll_interval)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
