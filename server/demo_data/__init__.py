"""Sample calls shipped with coachloop for `coachloop demo` (see calls.json for what each one is)."""
from __future__ import annotations

from pathlib import Path

DEMO_DATA = Path(__file__).resolve().parent
