"""A call transcript after reading: ordered turns, one speaker each, timestamps kept."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


class TranscriptError(ValueError):
    """A transcript that cannot be read. The message names the file, the line and what was expected."""

    def __init__(self, source: str, message: str, line: int | None = None):
        self.source, self.line, self.detail = source, line, message
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")


@dataclass
class Turn:
    speaker: str
    text: str
    start: float | None = None  # seconds from the start of the call
    end: float | None = None
    role: str | None = None  # "rep" | "buyer", set once the rep is known
    affiliation: str | None = None  # "internal" | "external" when the source says so (Gong)


@dataclass
class Transcript:
    turns: list[Turn]
    format: str
    source: str = "<text>"
    meta: dict = field(default_factory=dict)

    @property
    def speakers(self) -> list[str]:
        seen: list[str] = []
        for t in self.turns:
            if t.speaker not in seen:
                seen.append(t.speaker)
        return seen

    def content_hash(self) -> str:
        """Hash of the normalised content (speakers and words), so one call ingested twice is stored once."""
        # the JSON text of [[speaker, words], ...] (json.dumps(..., ensure_ascii=False)), written
        # directly: every ingested call is hashed
        enc = json.encoder.encode_basestring
        text = "[" + ", ".join(
            f"[{enc(t.speaker.strip().lower())}, {enc(' '.join(t.text.split()).lower())}]" for t in self.turns) + "]"
        return hashlib.sha256(text.encode()).hexdigest()

    def to_json(self) -> list[dict]:
        return [asdict(t) for t in self.turns]

    @classmethod
    def from_turn_dicts(cls, turns: list[dict], format: str = "turns", source: str = "<turns>") -> "Transcript":
        return cls([Turn(**{k: v for k, v in t.items() if k in Turn.__dataclass_fields__}) for t in turns], format, source)

    def assign_rep(self, rep_speaker: str) -> None:
        for t in self.turns:
            t.role = "rep" if t.speaker == rep_speaker else "buyer"
