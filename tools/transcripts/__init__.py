"""Transcripts in: readers for the formats teams export, and which speaker is the rep.

>>> t = read_transcript("Priya: Hi Marcus.\\nMarcus: Hi!")
>>> t.format, [x.speaker for x in t.turns]
('text', ['Priya', 'Marcus'])
"""
from .identify import identify_rep
from .model import Transcript, TranscriptError, Turn
from .readers import FORMATS, MAX_BYTES, decode_bytes, detect_format, merge_segments, read_path, read_transcript

__all__ = [
    "FORMATS", "MAX_BYTES", "Transcript", "TranscriptError", "Turn", "decode_bytes", "detect_format", "identify_rep",
    "merge_segments", "read_path", "read_transcript",
]
