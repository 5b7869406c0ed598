"""Safe file access inside a playbook folder: no path escapes the root, writes are atomic."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .loader import MAX_FILE_BYTES, PlaybookError


def resolve_inside(root: str | Path, rel: str) -> Path:
    """Resolve `rel` under `root`; refuse absolute paths, `..` escapes and symlinks that leave it."""
    root = Path(root).resolve()
    if not rel or os.path.isabs(rel) or "\x00" in rel:
        raise PlaybookError(f"path {rel!r} must be relative to the playbook folder {root}")
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise PlaybookError(f"path {rel!r} is outside the playbook folder {root}")
    return target


def atomic_write(path: Path, text: str) -> None:
    """Write text to `path` via a temporary file and rename, so a reader never sees half a file."""
    data = text.encode("utf-8")
    if len(data) > MAX_FILE_BYTES:
        raise PlaybookError(f"{path.name}: {len(data)} bytes is over the {MAX_FILE_BYTES}-byte limit")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
