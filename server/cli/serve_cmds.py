"""`coachloop serve`: the MCP server over stdio (default) or streamable HTTP.

stdio: stdout carries the protocol only; every log line goes to stderr.
HTTP: `--http HOST:PORT`, bearer tokens from COACHLOOP_TOKENS / COACHLOOP_TOKENS_FILE / --tokens-file
(stored hashed); `--no-auth` only on a loopback address. Outgoing webhooks (policy `webhooks:`) are
delivered by a background thread while the server runs.
"""
from __future__ import annotations

import argparse
import logging
import sys

from .common import CLIError, add_db, add_playbook, command, open_coach

log = logging.getLogger("coachloop")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the MCP server (stdio, or streamable HTTP with --http)",
        description=(
            "Run the coachloop MCP server. Without --http it speaks MCP on stdin/stdout (for Claude Code, Cursor, "
            "VS Code). With --http HOST:PORT it serves streamable HTTP at /mcp with bearer-token auth, plus "
            "GET /gates/{rep}/{activity} for a dialer."
        ),
    )
    add_playbook(p)
    add_db(p)
    p.add_argument("--http", metavar="HOST:PORT", default=None, help="serve streamable HTTP on HOST:PORT instead of stdio")
    p.add_argument("--tokens-file", metavar="PATH", default=None, help="file of bearer tokens, one per line (plain or sha256:<hex>); env COACHLOOP_TOKENS_FILE")
    p.add_argument("--no-auth", action="store_true", help="serve HTTP without tokens (only on 127.0.0.1, ::1 or localhost)")
    p.add_argument("--no-watch", action="store_true", help="do not watch the playbook folder for changes")
    p.add_argument("--no-webhooks", action="store_true", help="do not deliver outgoing webhooks")
    p.add_argument("--hash-token", metavar="TOKEN", default=None, help="print the sha256 line to put in a tokens file for TOKEN, and exit")
    p.set_defaults(func=cmd_serve)


def _start_watcher(coach):
    """Start the live playbook (issue 6): the folder watcher (a saved change is served within a
    second) and a worker that runs the orchestrator on the changes (rollouts, re-scoring jobs).
    Returns a stop callable, or None when it could not start (the server still runs)."""
    try:
        from server.orchestrator import Orchestrator
        from tools.live import start_live

        orch = Orchestrator(coach)
        service = start_live(coach, run_events=orch.run_pending)
    except Exception as exc:  # the server still runs without live reload
        log.warning("playbook watcher did not start: %s", exc)
        return None
    return service.stop


@command
def cmd_serve(args: argparse.Namespace) -> int:
    if args.hash_token is not None:
        from server.mcp.auth import hash_token

        print(hash_token(args.hash_token))
        return 0
    # Logs never touch stdout: on stdio it carries the protocol.
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="coachloop: %(levelname)s: %(message)s")

    from server.mcp.auth import AuthConfigError, TokenSet
    from server.mcp.netaddr import ServeError, is_loopback, parse_hostport

    host = port = None
    tokens = None
    if args.http:
        try:
            host, port = parse_hostport(args.http)
        except ServeError as exc:
            raise CLIError(str(exc)) from None
        if args.no_auth and not is_loopback(host):
            raise CLIError(
                f"--no-auth is only allowed on a loopback address (127.0.0.1, ::1, localhost), not {host!r}; "
                "configure tokens with COACHLOOP_TOKENS or --tokens-file instead"
            )
        if not args.no_auth:
            try:
                tokens = TokenSet.load(args.tokens_file)
            except AuthConfigError as exc:
                raise CLIError(str(exc)) from None
            if len(tokens) == 0:
                raise CLIError(
                    "no access tokens configured for the HTTP server: set COACHLOOP_TOKENS (comma separated), "
                    "COACHLOOP_TOKENS_FILE or --tokens-file; or pass --no-auth on a loopback address for local tools"
                )
    elif args.no_auth or args.tokens_file:
        raise CLIError("--no-auth and --tokens-file apply to --http only; stdio needs no tokens")

    from server.mcp.app import build_server
    from server.mcp.http_app import serve_http

    coach = open_coach(args)
    stop_watch = None if args.no_watch else _start_watcher(coach)
    deliverer = None
    if not args.no_webhooks:
        from server.webhooks import WebhookDeliverer

        deliverer = WebhookDeliverer(coach)
        deliverer.start()
    try:
        if args.http:
            try:
                serve_http(coach, host, port, tokens=tokens, no_auth=args.no_auth)
            except ServeError as exc:
                raise CLIError(str(exc)) from None
        else:
            build_server(coach).run("stdio")
    finally:
        if deliverer is not None:
            deliverer.stop()
        if stop_watch is not None:
            try:
                stop_watch()
            except Exception:
                pass
        coach.close()
    return 0
