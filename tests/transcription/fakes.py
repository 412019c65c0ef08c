"""A decoder backend that needs no model: it 'recognises' how much audio it was given."""

from __future__ import annotations

from typing import Any

from transcription.recognizer import Hypothesis, Slots


class CountingDecoder:
    def __init__(self, backend: FakeBackend) -> None:
        self.backend = backend
        self.bytes = 0  # this utterance's
        self.fed = 0  # the stream's, in decoder time (what the gate skipped is not in it)
        self.utterance_from = 0

    async def accept(self, pcm: bytes) -> Hypothesis:
        self.backend.accept_calls += 1
        self.backend.bytes_decoded += len(pcm)
        if not self.bytes:
            self.utterance_from = self.fed
        self.bytes += len(pcm)
        self.fed += len(pcm)
        return Hypothesis(f"w{self.bytes // 1600}", False, [])

    async def endpoint(self) -> Hypothesis:
        self.backend.endpoints += 1
        text, self.bytes = f"utterance of {self.bytes // 16} ms", 0
        word = {"word": "w", "start": self.utterance_from / 16000, "end": self.fed / 16000}
        return Hypothesis(text, True, [word])

    async def aclose(self) -> None:
        self.backend.open_decoders -= 1


class FakeBackend:
    name = "fake"

    def __init__(self, slots: int = 4) -> None:
        self.slots = Slots(slots)
        self.accept_calls = 0
        self.bytes_decoded = 0
        self.open_decoders = 0
        self.opened = 0  # decoders ever opened (one per party stream that spoke)
        self.endpoints = 0

    def try_open_slot(self) -> bool:
        return self.slots.try_take()

    async def wait_slot(self) -> None:
        await self.slots.take()

    def release_slot(self) -> None:
        self.slots.give()

    async def open(self, sample_rate: int) -> CountingDecoder:
        self.open_decoders += 1
        self.opened += 1
        return CountingDecoder(self)

    def health(self) -> dict[str, Any]:
        return {"backend": self.name}
