"""The orchestrator: runs every loop transition on events, with no human step.

It reads the append-only event log from a cursor kept in the `meta` table
(`orchestrator.cursor` = id of the last event handled) and reacts:

    call.scored (live)  -> verify the rep's open gaps on that call, then attribute the rep
                           (each new gap appends `gap.opened`)
    gap.opened          -> remediate: feedback + scenario from the gap's calls + learning path
                           + gates; appends `gap.remediated`
    gap.reopened        -> remediate again with the harder difficulty the verifier chose
    verdict.overridden,
    call.rescored       -> attribute the call's rep again (a gap the new verdicts show opens)
    practice.ended      -> certify the session (pass lifts the gates and the gap then waits for
                           verification on the next live call; fail assigns the next practice);
                           certify appends `certification.passed|failed` with this cause
    playbook.changed    -> the live playbook's step (tools.live: rollouts, rubric changes)
    playbook.changed    -> (tools.live) a path/scenario version with a `rollout:` block is assigned to
                           every targeted rep (`rollout.started`); a scorecard version queues the
                           background re-score of its stored calls (`rescore.queued`) and closes
                           the gaps of removed lines (`gap.closed`)
    playbook.removed    -> a scorecard file removed (and still gone when handled): its open gaps
                           close (`gap.closed`: gates lifted, assignments cancelled) and its
                           pending re-scoring stops
    anything else       -> nothing (the cursor moves on)
    after every event   -> practice/certification events may complete a rollout (`rollout.completed`)

`run_pending()` first records the playbook versions being served (`tools.live.sync_playbook`),
which appends `playbook.changed` / `playbook.invalid` / `playbook.recovered` for what changed.

Every handled event is ONE transaction: the transition's writes, its events (each with
`cause_id` = the triggering event; events appended by the capabilities without a cause are given
that one) and the cursor move commit together or not at all. A crash mid-way therefore leaves the
cursor before the event, and the next `run_pending()` does it again from scratch: nothing is done
twice. (Files are the exception a transaction cannot cover: a generated scenario file may already
be on disk; the generator rewrites its own files, never a person's.) An event whose handler keeps
failing is retried `max_attempts` times across runs, then skipped with an `orchestrator.skipped`
event so one bad event cannot stall the loop.

Two processes (the server and a CLI `coachloop run`) may run it on one database: the cursor is
re-read inside each transaction (BEGIN IMMEDIATE), so an event is handled once.
"""
from __future__ import annotations

import json
import logging
import traceback
from dataclasses import dataclass, field
from typing import Callable

from store.db import Store, StoreError, dumps
from tools import live
from tools.attribute import attribute
from tools.verify import remediate_gap, verify_call

log = logging.getLogger("coachloop")

CURSOR_KEY = "orchestrator.cursor"
FAILURES_KEY = "orchestrator.failures"


class OrchestratorError(Exception):
    """A handler failed; the event stays pending and is retried on the next run."""

    def __init__(self, event: dict, error: BaseException, attempts: int):
        self.event, self.error, self.attempts = event, error, attempts
        super().__init__(
            f"event {event['id']} ({event['type']} {event.get('subject') or ''}) failed on attempt {attempts}: {error}; "
            "it stays pending: fix the cause and run `coachloop run` again"
        )


@dataclass
class Action:
    """One thing the loop did, for people (`text`) and machines (the rest)."""

    event_id: int
    trigger: str
    kind: str
    text: str
    rep: str | None = None
    data: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"event_id": self.event_id, "trigger": self.trigger, "kind": self.kind, "rep": self.rep, "text": self.text, "data": self.data}


def _subject_id(subject: str | None, prefix: str) -> str | None:
    if subject and subject.startswith(prefix + ":"):
        return subject.split(":", 1)[1]
    return None


class Orchestrator:
    """Consumes the event log and runs the loop's transitions. See the module docstring."""

    def __init__(self, coach, *, max_attempts: int = 3):
        self.coach = coach
        self.store: Store = coach.store
        self.max_attempts = max_attempts
        self.handlers: dict[str, Callable[[dict], list[Action]]] = {
            "call.scored": self._on_call_scored,
            "gap.opened": self._on_gap_opened,
            "gap.reopened": self._on_gap_reopened,
            "practice.ended": self._on_practice_ended,
            "playbook.changed": self._on_playbook_changed,  # live playbook: rollouts, rubric changes
            "playbook.removed": self._on_playbook_removed,  # a removed scorecard's gaps close
            "verdict.overridden": self._on_verdicts_changed,  # a manager's verdict: attribution follows
            "call.rescored": self._on_verdicts_changed,
        }

    # ------------------------------------------------------------------ cursor
    @property
    def cursor(self) -> int:
        row = self.store.one("select value from meta where key = ?", (CURSOR_KEY,))
        return int(row["value"]) if row else 0

    def _set_cursor(self, event_id: int) -> None:
        self.store.db["meta"].upsert({"key": CURSOR_KEY, "value": str(event_id)}, pk="key")

    def _failures(self) -> dict[str, int]:
        row = self.store.one("select value from meta where key = ?", (FAILURES_KEY,))
        try:
            return json.loads(row["value"]) if row else {}
        except ValueError:
            return {}

    def pending(self) -> int:
        row = self.store.one("select count(*) n from events where id > ?", (self.cursor,))
        return row["n"] if row else 0

    def status(self) -> dict:
        """{cursor, last_event, pending, failing: {event_id: attempts}} for `coachloop run --status`."""
        last = self.store.one("select coalesce(max(id), 0) m from events")["m"]
        cur = self.cursor
        failing = {k: v for k, v in self._failures().items() if int(k) > cur}
        return {"cursor": cur, "last_event": last, "pending": self.pending() if last > cur else 0, "failing": failing}

    # ------------------------------------------------------------------ running
    def run_pending(self, *, limit: int | None = None) -> list[dict]:
        """Handle every event after the cursor (including those the handlers append), in order.

        Returns the actions taken, each `{event_id, trigger, kind, rep, text, data}`. Raises
        `OrchestratorError` when a handler fails (its transaction rolled back, cursor unmoved)."""
        live.sync_playbook(self.coach)  # playbook files changed since the last look -> playbook.* events
        actions: list[dict] = []
        handled = 0
        while limit is None or handled < limit:
            batch = self.store.events(since_id=self.cursor, limit=200)
            if not batch:
                break
            for ev in batch:
                if limit is not None and handled >= limit:
                    break
                actions.extend(a.as_dict() for a in self._handle(ev))
                handled += 1
        return actions

    def _handle(self, ev: dict) -> list[Action]:
        handler = self.handlers.get(ev["type"])
        try:
            with self.store.transaction():
                if self.cursor >= ev["id"]:
                    return []  # another process got there first
                start = self.store.one("select coalesce(max(id), 0) m from events")["m"]
                acts = handler(ev) if handler else []
                acts += self._live_actions(ev, live.observe(self.coach, ev))  # rollout progress
                # events the capabilities appended without a cause were caused by this one
                self.store.db.execute(
                    "update events set cause_id = ? where id > ? and cause_id is null", (ev["id"], start)
                )
                self._set_cursor(ev["id"])
                return acts
        except Exception as exc:  # noqa: BLE001 - any failure leaves the event pending
            return self._failed(ev, exc)

    def _failed(self, ev: dict, exc: BaseException) -> list[Action]:
        with self.store.transaction():
            failures = self._failures()
            n = failures.get(str(ev["id"]), 0) + 1
            failures[str(ev["id"])] = n
            self.store.db["meta"].upsert({"key": FAILURES_KEY, "value": dumps(failures)}, pk="key")
            if n < self.max_attempts:
                log.error("orchestrator: event %s (%s) failed (attempt %s of %s): %s", ev["id"], ev["type"], n,
                          self.max_attempts, exc)
                log.debug("%s", traceback.format_exc())
                error = OrchestratorError(ev, exc, n)
            else:
                eid = self.store.event(
                    "orchestrator.skipped",
                    rep_id=ev.get("rep_id"),
                    subject=f"event:{ev['id']}",
                    cause=ev["id"],
                    data={"type": ev["type"], "error": f"{type(exc).__name__}: {exc}", "attempts": n},
                )
                self._set_cursor(ev["id"])
                log.error("orchestrator: skipped event %s (%s) after %s failed attempts: %s", ev["id"], ev["type"], n, exc)
                return [Action(ev["id"], ev["type"], "skipped", f"gave up on event {ev['id']} ({ev['type']}) after {n} attempts: {exc}",
                               ev.get("rep_id"), {"error": str(exc), "event": eid})]
        raise error from exc

    # ------------------------------------------------------------------ handlers
    def _on_call_scored(self, ev: dict) -> list[Action]:
        data = ev.get("data") or {}
        cid = data.get("call_id") or data.get("call") or _subject_id(ev.get("subject"), "call")
        if cid is None:
            return []
        call = self.store.one("select id, rep_id, live, scorecard_id from calls where id = ?", (int(cid),))
        if call is None:
            raise StoreError(f"event {ev['id']} names call {cid}, which is not in the store")
        if not call.get("live", 1):
            return []
        acts: list[Action] = []
        for o in verify_call(self.coach, call["id"], cause=ev["id"], remediate=False):
            if o["outcome"] in ("na", "already-verified"):
                continue
            text = {
                "closed": f"closed gap {o['gap_id']} ({o['line']}): {o.get('reason')}",
                "passed": f"gap {o['gap_id']} ({o['line']}) passed on call {o['call_id']} ({o.get('verify_passes')} verified passes)",
                "reopened": f"reopened gap {o['gap_id']} ({o['line']}): {o.get('reason')}; next practice at difficulty {o.get('difficulty')}",
                "early-pass": f"call {o['call_id']} passed {o['line']} but gap {o['gap_id']} waits for {o.get('waiting_for')} first",
                "miss": f"call {o['call_id']} missed {o['line']} again (gap {o['gap_id']} still open, waiting for {o.get('waiting_for')})",
            }.get(o["outcome"], f"gap {o['gap_id']}: {o['outcome']}")
            acts.append(Action(ev["id"], ev["type"], f"verify.{o['outcome']}", text, call["rep_id"], o))
        for g in attribute(self.coach, call["rep_id"], cause=ev["id"], scorecard_id=call["scorecard_id"],
                           as_of_call=call["id"]):
            if g.get("new"):
                acts.append(Action(ev["id"], ev["type"], "gap.opened", f"opened gap {g['gap_id']}: {g['statement']}", call["rep_id"],
                                   {k: g[k] for k in ("gap_id", "line", "scorecard", "misses", "window", "call_ids", "severity", "statement")}))
        return acts

    def _on_verdicts_changed(self, ev: dict) -> list[Action]:
        """A stored call's verdicts changed (override, re-score): attribute its rep again, so a gap
        the new verdicts show opens (an open one is refreshed, never duplicated). Verification stays
        the job of the rep's next live call."""
        cid = _subject_id(ev.get("subject"), "call")
        call = self.store.one("select id, rep_id, live, scorecard_id from calls where id = ?", (int(cid),)) if cid else None
        if call is None or not call.get("live", 1):
            return []
        acts = []
        for g in attribute(self.coach, call["rep_id"], cause=ev["id"], scorecard_id=call["scorecard_id"]):
            if g.get("new"):
                acts.append(Action(ev["id"], ev["type"], "gap.opened", f"opened gap {g['gap_id']}: {g['statement']}", call["rep_id"],
                                   {k: g[k] for k in ("gap_id", "line", "scorecard", "misses", "window", "call_ids", "severity", "statement")}))
        return acts

    def _remediate(self, ev: dict, difficulty: int | None) -> list[Action]:
        data = ev.get("data") or {}
        gap_id = data.get("gap_id") or _subject_id(ev.get("subject"), "gap")
        gap = self.store.one("select * from gaps where id = ?", (int(gap_id),))
        if gap is None:
            raise StoreError(f"event {ev['id']} names gap {gap_id}, which is not in the store")
        if gap["status"] != "open":
            return []
        r = remediate_gap(self.coach, gap["id"], difficulty=difficulty, cause=ev["id"])
        sc, asg, gates = r["scenario"] or {}, r["assignment"] or {}, r["gates"] or []
        blocked = [g for g in gates if (g.get("status") == "blocked")]
        shadow = [g for g in gates if (g.get("status") == "shadow")]
        summary = {
            "gap_id": gap["id"],
            "line": gap["line_id"],
            "scenario_id": sc.get("scenario_id"),
            "scenario_path": sc.get("path"),
            "scenario_created": sc.get("created"),
            "assignment_id": asg.get("assignment_id") or asg.get("id"),
            "path_id": asg.get("path_id"),
            "gates": [{k: g.get(k) for k in ("gate_id", "id", "activity", "status", "certification_id")} for g in gates],
            "difficulty": difficulty,
            "problems": r.get("problems") or [],
        }
        eid = self.store.event("gap.remediated", rep_id=gap["rep_id"], subject=f"gap:{gap['id']}", cause=ev["id"], data=summary)
        summary["event_id"] = eid
        parts = [f"scenario {sc.get('scenario_id')} ({sc.get('path')})"] if sc.get("scenario_id") else []
        if summary["path_id"]:
            parts.append(f"path {summary['path_id']} assigned")
        if blocked:
            parts.append("blocked from " + ", ".join(sorted({str(g.get('activity')) for g in blocked})))
        if shadow:
            parts.append("shadow gate on " + ", ".join(sorted({str(g.get('activity')) for g in shadow})))
        for p in summary["problems"]:
            parts.append(f"{p['step']} failed: {p['error']}")
        acts = [Action(ev["id"], ev["type"], "gap.remediated", f"gap {gap['id']} ({gap['line_id']}): " + "; ".join(parts), gap["rep_id"], summary)]
        fb = r.get("feedback")
        if fb:
            text = fb.get("text") or fb.get("summary") or fb.get("message") if isinstance(fb, dict) else str(fb)
            if text:
                acts.append(Action(ev["id"], ev["type"], "feedback", str(text), gap["rep_id"], {"gap_id": gap["id"]}))
        return acts

    def _on_gap_opened(self, ev: dict) -> list[Action]:
        return self._remediate(ev, None)

    def _on_gap_reopened(self, ev: dict) -> list[Action]:
        return self._remediate(ev, (ev.get("data") or {}).get("difficulty"))

    def _on_practice_ended(self, ev: dict) -> list[Action]:
        from tools.certify import certify

        data = ev.get("data") or {}
        sid = data.get("session_id") or data.get("session") or _subject_id(ev.get("subject"), "session")
        if not sid:
            return []
        result = certify(self.coach, sid, cause=ev["id"])
        if not result or result.get("status") not in ("passed", "failed", "needs_manager"):
            # not a certifying session (no certification covers its scenario): nothing to judge
            return [Action(ev["id"], ev["type"], "practice.uncertified",
                           f"practice {sid} ended; {result.get('reason') if isinstance(result, dict) else 'no certification applies'}",
                           ev.get("rep_id"), dict(result or {}))]
        status = result["status"]
        info = {k: v for k, v in result.items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
        if result.get("duplicate"):
            # judged already (by hand with `coachloop certify`): the transition happened then
            return [Action(ev["id"], ev["type"], f"certification.{status}", f"practice {sid} was already judged: {status}",
                           ev.get("rep_id"), info)]
        # the transition's event is certify's own `certification.passed|failed`, caused by this one
        if status == "passed":
            text = f"practice {sid} passed: certified" + (f" {result.get('certification_id')}" if result.get("certification_id") else "") + \
                   "; gates lifted; the gap now waits for the next live call"
        elif status == "needs_manager":
            text = f"practice {sid} failed and used the last attempt: still blocked; a manager must review and lift the gate"
        else:
            nxt = result.get("next_scenario") or ((result.get("next_assignment") or {}).get("scenario_ids") or [None])[0]
            text = f"practice {sid} failed: still blocked; next practice assigned" + (f" ({nxt})" if nxt else "")
        return [Action(ev["id"], ev["type"], f"certification.{status}", text, ev.get("rep_id"), info)]

    def _live_actions(self, ev: dict, acts: list[dict]) -> list[Action]:
        return [Action(ev["id"], ev["type"], a["kind"], a["text"], a.get("rep"), a.get("data") or {}) for a in acts]

    def _on_playbook_changed(self, ev: dict) -> list[Action]:
        return self._live_actions(ev, live.handle_playbook_changed(self.coach, ev))

    def _on_playbook_removed(self, ev: dict) -> list[Action]:
        return self._live_actions(ev, live.handle_playbook_removed(self.coach, ev))

    # ------------------------------------------------------------------ conveniences
    def handle_call(self, call_id: int) -> list[dict]:
        """Run the loop for a newly scored call: every pending event up to and including the
        call's `call.scored` event, and whatever those append. Returns the actions taken."""
        row = self.store.one("select id from events where type = 'call.scored' and subject = ? order by id desc limit 1", (f"call:{call_id}",))
        if row is None:
            raise StoreError(f"call {call_id} has no call.scored event: score it with `coachloop score` first")
        return self.run_pending()
