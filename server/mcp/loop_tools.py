"""Loop tools (filled in as the loop modules land)."""
from __future__ import annotations

from tools.context import Coach


def register(mcp, coach: Coach) -> None:
    pass
