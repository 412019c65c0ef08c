"""What flows through transcription: a tapped stream's identity and the segments it yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Speaker = Literal["caller", "agent"]
SPEAKERS: tuple[Speaker, ...] = ("caller", "agent")

SAMPLE_WIDTH = 2  # AudioSocket and Vosk both speak 16-bit signed little-endian PCM


@dataclass(frozen=True)
class StreamMeta:
    """One party of one call: the contact it belongs to and who is speaking."""

    contact_id: str
    speaker: Speaker
    sample_rate: int = 8000
    tap_id: str = ""
    # Where this tap's audio starts in the call (ms after the call's first tap): a tap that
    # follows a transfer or resumes after a worker restart starts later than the call.
    offset_ms: int = 0


@dataclass
class Segment:
    """A piece of transcript. Partials are replaced by the next partial or final of the same
    utterance; finals are stored. Times are ms from the start of the tapped stream."""

    contact_id: str
    speaker: Speaker
    text: str
    final: bool
    start_ms: int
    end_ms: int
    delayed: bool = False
    words: list[dict[str, Any]] = field(default_factory=list)

    def event_payload(self) -> dict[str, Any]:
        return {
            "contact_id": self.contact_id,
            "speaker": self.speaker,
            "text": self.text,
            "final": self.final,
            "start": self.start_ms,
            "end": self.end_ms,
            "delayed": self.delayed,
        }
