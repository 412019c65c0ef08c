"""The recognizer boundary and the pipeline every backend shares.

    transcribe(meta, chunks: AsyncIterable[bytes]) -> AsyncIterator[Segment]

`GatedRecognizer` implements it once for every backend (in-process Vosk, remote
Vosk-server endpoints): a voice-activity gate cuts the party's audio into utterances; an
utterance takes a decoding *slot* from the backend only while someone speaks, so a listening
party costs one RMS per 20 ms. When no slot is free the utterance is buffered and decoded
after the call (segments marked `delayed`): audio keeps flowing, the call is never touched.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from transcription.types import SAMPLE_WIDTH, Segment, StreamMeta
from transcription.vad import EnergyGate

log = logging.getLogger(__name__)

BATCH_MS = 100  # audio handed to the decoder at a time (fewer thread hops than 20 ms frames)



@dataclass
class Hypothesis:
    text: str
    final: bool  # the decoder ended a sentence by itself (Vosk endpointing)
    words: list[dict[str, Any]]


class Decoder(Protocol):
    """One utterance being decoded (holds a slot until closed)."""

    async def accept(self, pcm: bytes) -> Hypothesis: ...

    async def finish(self) -> Hypothesis: ...

    async def aclose(self) -> None: ...


class DecoderBackend(Protocol):
    name: str

    def try_open_slot(self) -> bool:
        """Take a live-decoding slot if one is free (never waits)."""
        ...

    async def wait_slot(self) -> None:
        """Take a slot, waiting as long as it takes (decoding after the call)."""
        ...

    def release_slot(self) -> None: ...

    async def open(self, sample_rate: int) -> Decoder: ...

    def health(self) -> dict[str, Any]: ...


class Recognizer(Protocol):
    def transcribe(self, meta: StreamMeta, chunks: AsyncIterable[bytes]) -> AsyncIterator[Segment]:
        ...


class Slots:
    """A counting semaphore with a non-blocking take (asyncio.Semaphore has no try-acquire)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self._cond: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _condition(self) -> asyncio.Condition | None:
        loop = asyncio.get_running_loop()
        if self._cond is None or self._loop is not loop:
            self._cond, self._loop = asyncio.Condition(), loop
        return self._cond

    def try_take(self) -> bool:
        if self.used < self.size:
            self.used += 1
            return True
        return False

    async def take(self) -> None:
        cond = self._condition()
        assert cond is not None
        async with cond:
            await cond.wait_for(lambda: self.used < self.size)
            self.used += 1

    def give(self) -> None:
        self.used = max(0, self.used - 1)
        cond = self._cond
        if cond is not None and self._loop is asyncio.get_running_loop():

            async def notify() -> None:
                async with cond:
                    cond.notify(1)

            asyncio.get_running_loop().create_task(notify())


@functools.cache
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def normalise_text(text: str) -> str:
    """Traditional -> simplified before anything downstream (KB matching, storage, desk)."""
    text = " ".join(text.split())
    if any("\u3400" <= ch <= "\u9fff" for ch in text):
        text = _t2s().convert(text)
    return text


class GatedRecognizer:
    def __init__(
        self,
        backend: DecoderBackend,
        *,
        threshold_dbfs: float = -42.0,
        preroll_ms: int = 300,
        hangover_ms: int = 300,
        partial_interval_ms: int = 300,
        normalise: Callable[[str], str] = normalise_text,
        gate_factory: Callable[[int], EnergyGate] | None = None,
    ) -> None:
        self.backend = backend
        self.partial_interval_ms = partial_interval_ms
        self.normalise = normalise
        self._gate_factory = gate_factory or (
            lambda rate: EnergyGate(rate, threshold_dbfs, preroll_ms, hangover_ms)
        )
        self.stats = {"utterances": 0, "live": 0, "delayed": 0, "audio_ms": 0, "speech_ms": 0}

    async def transcribe(
        self, meta: StreamMeta, chunks: AsyncIterable[bytes]
    ) -> AsyncIterator[Segment]:
        rate = meta.sample_rate
        bytes_per_ms = rate * SAMPLE_WIDTH // 1000
        batch_bytes = BATCH_MS * bytes_per_ms
        gate = self._gate_factory(rate)
        backlog: list[tuple[int, int, bytes]] = []

        decoder: Decoder | None = None
        delayed_pcm: bytearray | None = None
        pending = bytearray()
        seg_start = 0
        pos_ms = 0  # stream time of the end of `pending`
        last_partial_at = 0
        last_partial = ""

        def seg(text: str, final: bool, start: int, end: int, words: Any = (),
                delayed: bool = False) -> Segment:
            return Segment(meta.contact_id, meta.speaker, self.normalise(text), final,
                           start, end, delayed, list(words))

        async def feed(pcm: bytes) -> AsyncIterator[Segment]:
            nonlocal seg_start, last_partial_at, last_partial, pos_ms
            assert decoder is not None
            pos_ms += len(pcm) // bytes_per_ms
            hyp = await decoder.accept(pcm)
            if hyp.final:
                if hyp.text.strip():
                    yield seg(hyp.text, True, seg_start, pos_ms, hyp.words)
                seg_start = pos_ms
                last_partial, last_partial_at = "", pos_ms
            elif hyp.text.strip() and (
                hyp.text != last_partial or pos_ms - last_partial_at >= self.partial_interval_ms
            ):
                last_partial, last_partial_at = hyp.text, pos_ms
                yield seg(hyp.text, False, seg_start, pos_ms)

        async def end_utterance(end_ms: int) -> AsyncIterator[Segment]:
            """Close the utterance: decode what is left and free the slot (live), or keep
            its audio for after the call (delayed)."""
            nonlocal decoder, pending, delayed_pcm
            self.stats["speech_ms"] += end_ms - seg_start
            if decoder is not None:
                if pending:
                    async for s in feed(bytes(pending)):
                        yield s
                    pending = bytearray()
                hyp = await decoder.finish()
                await decoder.aclose()
                decoder = None
                self.backend.release_slot()
                if hyp.text.strip():
                    yield seg(hyp.text, True, seg_start, end_ms, hyp.words)
            elif delayed_pcm is not None:
                backlog.append((seg_start, end_ms, bytes(delayed_pcm)))
                delayed_pcm = None

        try:
            async for chunk in chunks:
                self.stats["audio_ms"] += len(chunk) // bytes_per_ms
                for ev in gate.feed(chunk):
                    if ev.kind == "start":
                        self.stats["utterances"] += 1
                        seg_start = ev.at_ms
                        pos_ms = ev.at_ms
                        last_partial, last_partial_at = "", seg_start
                        if self.backend.try_open_slot():
                            self.stats["live"] += 1
                            try:
                                decoder = await self.backend.open(rate)
                            except Exception:
                                self.backend.release_slot()
                                raise
                            pending = bytearray(ev.pcm)
                        else:
                            self.stats["delayed"] += 1
                            delayed_pcm = bytearray(ev.pcm)
                    elif ev.kind == "speech":
                        if decoder is not None:
                            pending += ev.pcm
                        elif delayed_pcm is not None:
                            delayed_pcm += ev.pcm
                    else:  # end of utterance
                        async for s in end_utterance(ev.at_ms):
                            yield s
                # Whole 100 ms batches: the decoder sees the same chunks whatever the
                # network's framing (Vosk's results depend a little on chunking).
                while decoder is not None and len(pending) >= batch_bytes:
                    batch, pending = bytes(pending[:batch_bytes]), pending[batch_bytes:]
                    async for s in feed(batch):
                        yield s
            # The stream is over (hang-up or dropped tap): close the open utterance.
            for ev in gate.flush():
                async for s in end_utterance(ev.at_ms):
                    yield s
        finally:
            if decoder is not None:  # cancelled or failed mid-utterance
                await decoder.aclose()
                self.backend.release_slot()
        # After the call: what could not be decoded live, in order, as capacity frees up.
        for start, end, pcm in backlog:
            await self.backend.wait_slot()
            try:
                dec = await self.backend.open(rate)
                try:
                    step = batch_bytes
                    words: list[dict[str, Any]] = []
                    texts: list[str] = []
                    for i in range(0, len(pcm), step):
                        hyp = await dec.accept(pcm[i : i + step])
                        if hyp.final and hyp.text.strip():
                            texts.append(hyp.text)
                            words += hyp.words
                    hyp = await dec.finish()
                    if hyp.text.strip():
                        texts.append(hyp.text)
                        words += hyp.words
                finally:
                    await dec.aclose()
            finally:
                self.backend.release_slot()
            if texts:
                yield seg(" ".join(texts), True, start, end, words, delayed=True)
