"""The recognizer boundary and the pipeline every backend shares.

    transcribe(meta, chunks: AsyncIterable[bytes]) -> AsyncIterator[Segment]

`GatedRecognizer` implements it once for every backend (in-process Vosk, remote
Vosk-server endpoints): a voice-activity gate cuts the party's audio into utterances and only
the voiced audio (pre-roll + speech + hang-over) is fed to the decoder, so a listening party
costs one RMS per 20 ms. Each party stream keeps *one* decoder for the whole call (the
recognizer's online adaptation and context survive between utterances); at the end of an
utterance the decoder is told to close the sentence (`endpoint()`), which keeps its state.
A decoding *slot* (= live decoding capacity, i.e. CPU) is held only while someone speaks.
When no slot is free the utterance is buffered and decoded after the call (segments marked
`delayed`): audio keeps flowing, the call is never touched.
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
    """One party stream being decoded, utterance after utterance (slots are taken apart)."""

    async def accept(self, pcm: bytes) -> Hypothesis: ...

    async def endpoint(self) -> Hypothesis:
        """Close the current sentence now (the gate saw its end) and return it as final;
        the decoder keeps its adaptation for the stream's next utterance."""
        ...

    async def aclose(self) -> None:
        """The stream is over (the backend may recycle the decoder for another call)."""
        ...


class DecoderBackend(Protocol):
    name: str

    def try_open_slot(self) -> bool:
        """Take a live-decoding slot if one is free (never waits)."""
        ...

    async def wait_slot(self) -> None:
        """Take a slot, waiting as long as it takes (decoding after the call)."""
        ...

    def release_slot(self) -> None: ...

    async def open(self, sample_rate: int) -> Decoder:
        """A decoder for one party stream (held for the whole call; it holds no slot)."""
        ...

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

        decoder: Decoder | None = None  # the stream's decoder, opened at its first utterance
        live = False  # the current utterance is decoded live (and holds a slot)
        delayed_pcm: bytearray | None = None
        pending = bytearray()
        seg_start = 0
        pos_ms = 0  # stream time of the end of `pending`
        fed_ms = 0  # decoder time: audio fed to the decoder so far (silences are skipped)
        offset_ms = 0  # stream time minus decoder time, for the current utterance
        last_partial_at = 0
        last_partial = ""

        def seg(text: str, final: bool, start: int, end: int, words: Any = (),
                delayed: bool = False) -> Segment:
            return Segment(meta.contact_id, meta.speaker, self.normalise(text), final,
                           start, end, delayed, list(words))

        def stream_times(words: list[dict[str, Any]]) -> list[dict[str, Any]]:
            """Word times from decoder time (skipped silences missing) to stream time."""
            shift = offset_ms / 1000
            return [{**w, "start": round(w["start"] + shift, 3), "end": round(w["end"] + shift, 3)}
                    if "start" in w and "end" in w else w for w in words]

        async def open_decoder() -> Decoder:
            nonlocal decoder
            if decoder is None:
                decoder = await self.backend.open(rate)
            return decoder

        def begin(at_ms: int) -> None:
            nonlocal pos_ms, offset_ms
            pos_ms = at_ms
            offset_ms = at_ms - fed_ms

        async def decode(pcm: bytes) -> Hypothesis:
            nonlocal fed_ms
            assert decoder is not None
            fed_ms += len(pcm) // bytes_per_ms
            return await decoder.accept(pcm)

        async def feed(pcm: bytes) -> AsyncIterator[Segment]:
            nonlocal seg_start, last_partial_at, last_partial, pos_ms
            pos_ms += len(pcm) // bytes_per_ms
            hyp = await decode(pcm)
            if hyp.final:  # Vosk's own endpointing closed a sentence inside the utterance
                if hyp.text.strip():
                    yield seg(hyp.text, True, seg_start, pos_ms, stream_times(hyp.words))
                seg_start = pos_ms
                last_partial, last_partial_at = "", pos_ms
            elif hyp.text.strip() and (
                hyp.text != last_partial or pos_ms - last_partial_at >= self.partial_interval_ms
            ):
                last_partial, last_partial_at = hyp.text, pos_ms
                yield seg(hyp.text, False, seg_start, pos_ms)

        async def end_utterance(end_ms: int) -> AsyncIterator[Segment]:
            """Close the utterance: decode what is left, end the sentence and free the slot
            (live), or keep its audio for after the call (delayed)."""
            nonlocal live, pending, delayed_pcm
            self.stats["speech_ms"] += end_ms - seg_start
            if live:
                assert decoder is not None
                if pending:
                    async for s in feed(bytes(pending)):
                        yield s
                    pending = bytearray()
                hyp = await decoder.endpoint()
                live = False
                self.backend.release_slot()
                if hyp.text.strip():
                    yield seg(hyp.text, True, seg_start, end_ms, stream_times(hyp.words))
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
                        last_partial, last_partial_at = "", seg_start
                        if self.backend.try_open_slot():
                            live = True
                            self.stats["live"] += 1
                            await open_decoder()
                            begin(ev.at_ms)
                            pending = bytearray(ev.pcm)
                        else:
                            self.stats["delayed"] += 1
                            delayed_pcm = bytearray(ev.pcm)
                    elif ev.kind == "speech":
                        if live:
                            pending += ev.pcm
                        elif delayed_pcm is not None:
                            delayed_pcm += ev.pcm
                    else:  # end of utterance
                        async for s in end_utterance(ev.at_ms):
                            yield s
                # Whole 100 ms batches from the utterance's start: the decoder sees the same
                # chunks whatever the network's framing (Vosk's results depend on chunking).
                while live and len(pending) >= batch_bytes:
                    batch, pending = bytes(pending[:batch_bytes]), pending[batch_bytes:]
                    async for s in feed(batch):
                        yield s
            # The stream is over (hang-up or dropped tap): close the open utterance.
            for ev in gate.flush():
                async for s in end_utterance(ev.at_ms):
                    yield s
            # After the call: what could not be decoded live, in order, as capacity frees up,
            # on the same decoder (its adaptation to this speaker helps).
            for start, end, pcm in backlog:
                await self.backend.wait_slot()
                live = True
                texts: list[str] = []
                words: list[dict[str, Any]] = []
                await open_decoder()
                assert decoder is not None
                begin(start)
                for i in range(0, len(pcm), batch_bytes):
                    hyp = await decode(pcm[i : i + batch_bytes])
                    if hyp.final and hyp.text.strip():
                        texts.append(hyp.text)
                        words += stream_times(hyp.words)
                hyp = await decoder.endpoint()
                live = False
                self.backend.release_slot()
                if hyp.text.strip():
                    texts.append(hyp.text)
                    words += stream_times(hyp.words)
                if texts:
                    yield seg(" ".join(texts), True, start, end, words, delayed=True)
        finally:
            if live:  # cancelled or failed mid-utterance
                self.backend.release_slot()
            if decoder is not None:
                await decoder.aclose()
