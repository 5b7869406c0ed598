"""The starter playbook that ships inside the package, and `init` that writes it out."""
from __future__ import annotations

import shutil
from pathlib import Path

from .loader import PlaybookError

STARTER_DIR = Path(__file__).parent / "starter"


def write_starter(dest: str | Path, force: bool = False) -> list[Path]:
    """Copy the starter playbook into `dest`. Refuses to overwrite an existing file unless `force`."""
    dest = Path(dest)
    files = sorted(p for p in STARTER_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    clashes = [dest / f.relative_to(STARTER_DIR) for f in files if (dest / f.relative_to(STARTER_DIR)).exists()]
    if clashes and not force:
        raise PlaybookError(
            f"{dest} already holds a playbook ({clashes[0]} exists); choose an empty folder or pass --force"
        )
    written = []
    for f in files:
        target = dest / f.relative_to(STARTER_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
        written.append(target)
    return written
