"""Helpers shared by the MCP tool, resource and prompt modules.

- `guard(name)`: wraps a tool body so that every known error (bad playbook id, unknown rep,
  unreadable transcript, bad value) reaches the client as a tool error (`isError: true`) whose
  text says what was wrong and how to fix it; unexpected crashes are logged to stderr and still
  come back as a tool error instead of breaking the session.
- `page(items, cursor, limit)`: opaque-cursor pagination for every list a tool returns.
"""
from __future__ import annotations

import base64
import functools
import inspect
import json
import logging
import re
from typing import Any, Callable, Sequence, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

from playbook.loader import PlaybookError
from store.db import StoreError
from tools.transcripts.model import TranscriptError

log = logging.getLogger("coachloop.mcp")

T = TypeVar("T")

MAX_LIMIT = 100
DEFAULT_LIMIT = 20


def _known_error_types() -> tuple[type[BaseException], ...]:
    """Domain errors whose message is written for people: passed through as is."""
    # (not KeyError/LookupError: in tool code those are bugs, reported as internal errors with a traceback on stderr)
    types: list[type[BaseException]] = [PlaybookError, StoreError, TranscriptError, ValueError, FileNotFoundError, PermissionError]
    # Loop modules may define their own error classes; pick them up when present.
    for mod, name in (
        ("tools.calls", "CallError"),
        ("tools.gates", "GateError"),
        ("tools.roleplay", "RoleplayError"),
        ("tools.roleplay", "SessionError"),
        ("tools.certify", "CertifyError"),
        ("tools.scenario", "ScenarioError"),
        ("tools.paths", "PathError"),
        ("tools.metrics", "MetricsError"),
        ("tools.attribute", "AttributeError_"),
        ("tools.llm", "LLMError"),
    ):
        try:
            cls = getattr(__import__(mod, fromlist=[name]), name)
        except Exception:
            continue
        if isinstance(cls, type) and issubclass(cls, BaseException):
            types.append(cls)
    return tuple(types)


def error_text(exc: BaseException) -> str:
    msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return msg.strip() or type(exc).__name__


# CLI hints inside domain error messages, said the way an MCP client can act on them.
_CLI_HINTS = (
    ("`coachloop rep add`", "the upsert_rep tool"),
    ("`coachloop score`", "the score tool"),
    ("`coachloop calls`", "the coachloop://reps/{rep} resource"),
    ("`coachloop attribute`", "the attribute tool"),
    ("`coachloop validate`", "the validate_playbook tool"),
)


_CLI_PATTERNS = (
    (re.compile(r"`?coachloop practice start --rep ([^\s`()]+) --scenario ([^\s`(),;]+?)`?(?=[,;.\s)]|$)"), r"roleplay_start(rep='\1', scenario='\2')"),
    (re.compile(r"then practice end and certify the session"), "then roleplay_end (which certifies the session)"),
    (re.compile(r"`?coachloop practice end (\S+?)`?(?=[,;.\s]|$)"), r"roleplay_end(session_id='\1')"),
    (re.compile(r"`coachloop practice say ([^\s`]+) TEXT`"), r"roleplay_reply(session_id='\1', text=...)"),
    (re.compile(r"`?coachloop gate lift (\S+?)(?: --by NAME --reason TEXT)?`?(?=[,;.\s]|$)"), r"lift_gate(rep='\1', by=..., reason=...)"),
    (re.compile(r"`?coachloop scenario generate --gap (\S+?)`?(?=[,;.\s]|$)"), r"generate_scenario(gap_id=\1)"),
    (re.compile(r"`?coachloop rep add \\?\"?([^`\"]+?)\\?\"?`"), r"upsert_rep(name='\1')"),
    (re.compile(r"\(--(by|reason) (NAME|TEXT)\)"), r"(\1)"),
    (re.compile(r"pass --rep( NAME)?"), "pass the rep argument"),
    (re.compile(r"`coachloop attribute(?: --json)?`"), "the attribute tool"),
)


def for_mcp(message: str | None) -> str:
    """Say CLI hints inside domain messages the way an MCP client acts on them (tool calls)."""
    if not message:
        return message or ""
    for pat, repl in _CLI_PATTERNS:
        message = pat.sub(repl, message)
    for cli, tool in _CLI_HINTS:
        message = message.replace(cli, tool)
    return message


def guard(name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Turn every failure of a tool into a ToolError with a message a model can act on."""

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        def convert(exc: BaseException) -> ToolError:
            if isinstance(exc, ToolError):
                return exc
            if isinstance(exc, UnicodeError):  # e.g. a lone surrogate ("\ud800") in a JSON string
                where = f" at character {exc.start}" if isinstance(exc, (UnicodeEncodeError, UnicodeDecodeError)) else ""
                return ToolError(
                    f"an argument holds text that is not valid Unicode ({getattr(exc, 'reason', exc)}{where}); "
                    "nothing was done. Send the text as valid UTF-8 (no unpaired surrogates)."
                )
            if isinstance(exc, _known_error_types()):
                return ToolError(for_mcp(error_text(exc)))
            log.exception("tool %s crashed", name)
            return ToolError(
                f"{name}: internal error ({type(exc).__name__}: {exc}). The request was not applied; "
                "check the server's stderr log, and report it if it persists."
            )

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def arun(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await fn(*args, **kwargs)
                except Exception as exc:
                    raise convert(exc) from exc

            return arun  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                raise convert(exc) from exc

        return run

    return wrap


def annotations(title: str, *, read_only: bool, destructive: bool = False, idempotent: bool = False, open_world: bool = False) -> ToolAnnotations:
    return ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=False if read_only else destructive,
        idempotent_hint=True if read_only else idempotent,
        open_world_hint=open_world,
    )


# --------------------------------------------------------------------------- pagination


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        pad = "=" * (-len(cursor) % 4)
        off = int(json.loads(base64.urlsafe_b64decode(cursor + pad))["o"])
        if off < 0:
            raise ValueError
        return off
    except Exception:
        raise ToolError(
            f"invalid cursor {cursor!r}: pass back exactly the next_cursor value of the previous page, or omit it to start at the first page"
        ) from None


def page(items: Sequence[T], cursor: str | None, limit: int | None) -> tuple[list[T], str | None, int]:
    """Slice `items` for one page. Returns (page, next_cursor or None, total)."""
    lim = DEFAULT_LIMIT if limit is None else limit
    if lim < 1 or lim > MAX_LIMIT:
        raise ToolError(f"limit must be between 1 and {MAX_LIMIT}, got {lim}")
    off = decode_cursor(cursor)
    chunk = list(items[off : off + lim])
    nxt = encode_cursor(off + lim) if off + lim < len(items) else None
    return chunk, nxt, len(items)


def clip(text: str | None, n: int = 300) -> str:
    if not text:
        return ""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"
