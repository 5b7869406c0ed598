"""Watch the playbook folder and reload on every saved change.

`PlaybookWatcher(reload, root)` runs the `watchfiles` (Rust `notify`) watcher on a background
thread. When files under `root` change it waits `debounce_ms` for the burst to settle (editors
write a file in several steps), then calls `reload()` once, with no arguments; the caller passes
`coach.reload` (see `tools/live.py`), so this module knows nothing of the store or the tools.

- Temp and swap files are ignored: hidden names (`.discovery.yaml.tmp`, `.#file`), `*.tmp`,
  `*.swp`/`*.swx`/`*.swo`, `*~`, `#file#`, vim's `4913` probe, `sed -i`'s `sedXXXXXX`, `.git/`, `__pycache__/`. An
  atomic save (write a temp file, rename it over the real one) shows up as a change of the real
  file, so it is picked up once.
- `start()` returns once the OS watch is in place (a change saved right after `start()` is seen).
- `stop(timeout)` ends the thread within `timeout` seconds (the watcher wakes every `step_ms`) and
  says whether it did.
- A failing `reload()` is logged and the watcher keeps going; if the folder itself disappears the
  watcher logs it, sets `.error` and stops.

`WATCHFILES_FORCE_POLLING=1` (or `force_polling=True`) polls instead of using OS notifications,
for network and container file systems where notifications do not arrive.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("coachloop")

_IGNORED_DIRS = {".git", "__pycache__", ".hg", ".svn", ".idea", ".vscode", "node_modules"}
_TEMP = re.compile(r"(\.tmp|\.temp|\.swp|\.swx|\.swo|\.bak|\.orig|\.part|~)$|^#.*#$|^4913$|^sed[A-Za-z0-9]{6}$", re.I)


def is_ignored(root: Path, path: str | Path) -> bool:
    """True for editor temp/swap files, hidden files and VCS folders: changes to them never reload."""
    p = Path(path)
    try:
        parts = p.resolve().relative_to(root).parts if p.is_absolute() else p.parts
    except ValueError:
        parts = p.parts
    if not parts:
        return False
    for part in parts[:-1]:
        if part in _IGNORED_DIRS or part.startswith("."):
            return True
    name = parts[-1]
    return name.startswith(".") or bool(_TEMP.search(name)) or name in _IGNORED_DIRS


class PlaybookWatcher:
    """Calls `reload()` shortly after files in `root` change. See the module docstring."""

    def __init__(
        self,
        reload: Callable[[], Any],
        root: str | Path,
        *,
        debounce_ms: int = 80,
        step_ms: int = 20,
        force_polling: bool | None = None,
        poll_delay_ms: int = 100,
        on_error: Callable[[BaseException], Any] | None = None,
    ):
        self.reload = reload
        self.root = Path(root).resolve()
        self.debounce_ms = int(debounce_ms)
        self.step_ms = int(step_ms)
        if force_polling is None:
            force_polling = os.environ.get("WATCHFILES_FORCE_POLLING", "").lower() not in ("", "0", "false", "no")
        self.force_polling = bool(force_polling)
        self.poll_delay_ms = int(poll_delay_ms)
        self.on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._notify: Any = None
        self.error: BaseException | None = None
        self.reloads = 0  # how many times reload() ran (diagnostics, tests)
        self.last_changes: list[str] = []  # relative paths of the last batch that triggered a reload

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "PlaybookWatcher":
        """Put the OS watch in place and start the thread; raises FileNotFoundError (naming the
        folder) when `root` does not exist."""
        if self.running:
            return self
        from watchfiles._rust_notify import RustNotify

        if not self.root.is_dir():
            raise FileNotFoundError(f"playbook folder not found: {self.root} (cannot watch it)")
        self._stop.clear()
        self.error = None
        self._notify = RustNotify([str(self.root)], False, self.force_polling, self.poll_delay_ms, True, True)
        self._thread = threading.Thread(target=self._run, name="coachloop-playbook-watch", daemon=True)
        self._thread.start()
        log.info("watching playbook %s (debounce %d ms%s)", self.root, self.debounce_ms, ", polling" if self.force_polling else "")
        return self

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop watching; True when the thread ended within `timeout` seconds."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        done = t is None or not t.is_alive()
        if done:
            self._close()
            self._thread = None
        else:
            log.warning("playbook watcher did not stop within %.1f s", timeout)
        return done

    def __enter__(self) -> "PlaybookWatcher":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _close(self) -> None:
        n, self._notify = self._notify, None
        if n is not None:
            try:
                n.close()
            except Exception:  # noqa: BLE001 - closing twice or after an error
                pass

    # ------------------------------------------------------------------ the thread
    def _relevant(self, raw: set[tuple[int, str]]) -> list[str]:
        out = []
        for _change, path in raw:
            if is_ignored(self.root, path):
                continue
            try:
                out.append(Path(path).resolve().relative_to(self.root).as_posix())
            except ValueError:
                out.append(path)
        return sorted(set(out))

    def _run(self) -> None:
        notify = self._notify
        while not self._stop.is_set():
            try:
                raw = notify.watch(self.debounce_ms, self.step_ms, 500, self._stop)
            except Exception as exc:  # noqa: BLE001 - the folder went away, permission lost ...
                self.error = exc
                log.error("playbook watcher stopped: %s (restart the server once %s is back)", exc, self.root)
                if self.on_error:
                    self.on_error(exc)
                return
            if raw in ("stop", "signal"):
                return
            if raw == "timeout":
                if not self.root.is_dir():
                    self.error = FileNotFoundError(f"playbook folder {self.root} disappeared")
                    log.error("playbook watcher stopped: %s", self.error)
                    return
                continue
            changed = self._relevant(raw)
            if not changed:
                continue
            self.last_changes = changed
            t0 = time.perf_counter()
            try:
                self.reload()
            except Exception:  # noqa: BLE001 - keep watching; the next save gets another try
                log.exception("playbook reload after a change to %s failed", ", ".join(changed))
            else:
                log.info("playbook reloaded after %s changed (%.0f ms)", ", ".join(changed), (time.perf_counter() - t0) * 1000)
            self.reloads += 1
