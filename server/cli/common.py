"""Options and helpers shared by the sub-commands."""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from functools import wraps
from pathlib import Path
from typing import Any, Callable

from playbook.loader import PlaybookError
from store.db import StoreError, default_db_path
from tools.context import PLAYBOOK_ENV, Coach, default_playbook_dir
from tools.llm import LLMError
from tools.transcripts.model import TranscriptError


class CLIError(Exception):
    """An error to print as one clear line on stderr, exit code 1 (or `code`)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def add_playbook(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--playbook",
        metavar="DIR",
        default=None,
        help=f"playbook folder (env {PLAYBOOK_ENV}; default ./playbook)",
    )


def add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="PATH", default=None, help="SQLite database (env COACHLOOP_DB; default ./coachloop.db)")


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of text for people")


def iso_date(value: str) -> str:
    """argparse type for YYYY-MM-DD options: a bad date is a usage error naming the option."""
    from datetime import date

    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a date; use YYYY-MM-DD") from None


def playbook_dir(args: argparse.Namespace) -> str:
    return getattr(args, "playbook", None) or default_playbook_dir()


def db_path(args: argparse.Namespace) -> str:
    return getattr(args, "db", None) or default_db_path()


def open_coach(args: argparse.Namespace) -> Coach:
    pdir = Path(playbook_dir(args))
    if pdir.exists() and not pdir.is_dir():
        raise CLIError(f"--playbook {pdir} is a file, not a folder: pass the playbook folder (the one holding playbook.yaml)")
    if not pdir.is_dir():
        raise CLIError(f"playbook folder not found: {pdir} (create one with `coachloop init {pdir}` or pass --playbook)")
    return Coach(pdir, db_path(args))


def answer(args: argparse.Namespace, obj: Any, text: str | Callable[[Any], None]) -> int:
    """The command's answer: `obj` as JSON with --json, else `text` for people (or a printer
    called with `obj`). Returns 0, the exit code."""
    if args.json:
        emit_json(obj)
    elif callable(text):
        text(obj)
    else:
        print(text)
    return 0


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def err(msg: str) -> None:
    print(f"coachloop: {msg}", file=sys.stderr)


def describe_os_error(exc: OSError) -> str:
    """One line for a file-system error: the path first, then what is wrong with it in plain words."""
    if exc.errno is None or not exc.filename:
        return str(exc)  # raised with our own message
    where = str(exc.filename)
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return f"{where}: part of this path is a file, not a folder; choose another path"
    if isinstance(exc, IsADirectoryError):
        return f"{where}: is a folder where a file is needed; give a file path"
    if isinstance(exc, FileNotFoundError):
        return f"{where}: no such file or folder"
    if isinstance(exc, PermissionError):
        return f"{where}: permission denied; choose a path you can write to"
    return f"{where}: {exc.strerror or exc}"


def command(fn: Callable[[argparse.Namespace], int | None]) -> Callable[[argparse.Namespace], int]:
    """Wrap a sub-command: known errors become one line on stderr and exit 1, never a traceback."""

    @wraps(fn)
    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args) or 0)
        except CLIError as exc:
            err(str(exc))
            return exc.code
        except (PlaybookError, StoreError, TranscriptError, LLMError, ValueError) as exc:
            err(str(exc))
            return 1
        except BrokenPipeError:
            raise  # stdout closed by `| head`: main() ends quietly
        except OSError as exc:  # a missing file, a folder that cannot be written, a full disk, ...
            err(describe_os_error(exc))
            return 1
        except sqlite3.OperationalError as exc:  # database locked by another process, disk I/O error
            err(f"database {db_path(args)}: {exc}")
            return 1

    return run
