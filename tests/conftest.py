"""Shared fixtures: a fresh starter playbook and a store for every test that wants one."""
from __future__ import annotations

from pathlib import Path

import pytest

from playbook.starter import write_starter
from tools.context import Coach

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DEV_SET = SHARED / "eval" / "dev"


@pytest.fixture
def playbook_dir(tmp_path: Path) -> Path:
    d = tmp_path / "playbook"
    write_starter(d)
    return d


@pytest.fixture
def coach(playbook_dir: Path, tmp_path: Path):
    c = Coach(playbook_dir, tmp_path / "coachloop.db")
    yield c
    c.close()
