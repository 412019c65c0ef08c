"""The one module that imports vosk: a model loaded once per process, a KaldiRecognizer per
party stream (recycled across calls), decoding on one thread per core (vosk's cffi calls
release the GIL, so N threads use N cores)."""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import vosk

from transcription.recognizer import Hypothesis, Slots

log = logging.getLogger(__name__)

vosk.SetLogLevel(-1)


def load_model(model_dir: Path) -> Any:
    return vosk.Model(str(model_dir))


def new_recognizer(model: Any, sample_rate: int) -> Any:
    rec = vosk.KaldiRecognizer(model, float(sample_rate))
    rec.SetWords(True)
    return rec


def _hyp(raw: str, final: bool) -> Hypothesis:
    data = json.loads(raw)
    if final:
        return Hypothesis(data.get("text", ""), True, data.get("result", []))
    return Hypothesis(data.get("partial", ""), False, [])


def accept(rec: Any, pcm: bytes) -> Hypothesis:
    """Feed PCM; a final hypothesis when Vosk's own endpointing closed a sentence."""
    if rec.AcceptWaveform(pcm):
        return _hyp(rec.Result(), True)
    return _hyp(rec.PartialResult(), False)


def endpoint(rec: Any) -> Hypothesis:
    """End the current sentence now and return it. Result() keeps the feature pipeline (and
    so the online i-vector adaptation) for the next utterance; FinalResult() would rebuild it.
    When Vosk's own endpointing already closed the sentence this returns an empty final."""
    return _hyp(rec.Result(), True)


def finish(rec: Any) -> Hypothesis:
    """End of stream: the rest of the audio, and a fresh feature pipeline for the next stream
    (the next caller). FinalResult() only resets a recognizer that is mid-sentence, so one
    that was just endpointed is given 10 ms of silence first."""
    h = _hyp(rec.FinalResult(), True)
    if not h.text:
        rec.AcceptWaveform(bytes(160))
        rec.FinalResult()
    return h


def _feed(rec: Any, pcm: bytes, chunk: int) -> list[str]:
    """Feed `pcm` in `chunk`-byte pieces; the texts of the finals Vosk produced on the way."""
    texts = []
    for i in range(0, len(pcm), chunk):
        h = accept(rec, pcm[i : i + chunk])
        if h.final and h.text:
            texts.append(h.text)
    return texts


def decode_pcm(model: Any, pcm: bytes, sample_rate: int = 8000, chunk_ms: int = 100) -> str:
    """Offline decode of a whole recording, ungated (the bench's reference)."""
    rec = new_recognizer(model, sample_rate)
    texts = _feed(rec, pcm, sample_rate * 2 * chunk_ms // 1000)
    h = finish(rec)
    if h.text:
        texts.append(h.text)
    return " ".join(texts)


def decode_utterances(model: Any, utterances: list[bytes], sample_rate: int = 8000,
                      chunk_ms: int = 100) -> str:
    """Offline decode of gated audio exactly as the live path decodes it: one recognizer for
    the stream, each utterance fed in `chunk_ms` chunks from its start and closed with
    endpoint(). The reference the live transcript is compared to."""
    rec = new_recognizer(model, sample_rate)
    chunk = sample_rate * 2 * chunk_ms // 1000
    texts: list[str] = []
    for pcm in utterances:
        texts += _feed(rec, pcm, chunk)
        h = endpoint(rec)
        if h.text:
            texts.append(h.text)
    return " ".join(texts)


class VoskDecoder:
    """One party stream. Each utterance runs on one worker thread (the least busy when it
    starts): all its calls go to that thread, so the recognizer's state stays in that core's
    cache (hopping threads cost ~25 % more CPU); between utterances it may move."""

    def __init__(self, backend: VoskBackend, rec: Any, sample_rate: int) -> None:
        self._backend = backend
        self._rec = rec
        self._rate = sample_rate
        self._worker: int | None = None

    def _on(self) -> int:
        if self._worker is None:
            self._worker = self._backend.pick_worker()
        return self._worker

    async def accept(self, pcm: bytes) -> Hypothesis:
        hyp: Hypothesis = await self._backend.run_on(self._on(), accept, self._rec, pcm)
        return hyp

    async def endpoint(self) -> Hypothesis:
        worker = self._on()
        try:
            hyp: Hypothesis = await self._backend.run_on(worker, endpoint, self._rec)
        finally:
            self._backend.busy[worker] -= 1
            self._worker = None
        return hyp

    async def aclose(self) -> None:
        rec, self._rec = self._rec, None
        if self._worker is not None:  # closed mid-utterance (cancelled)
            self._backend.busy[self._worker] -= 1
            self._worker = None
        if rec is None:
            return
        try:
            await self._backend.run_on(self._backend.pick_worker(release=True), finish, rec)
        except Exception:  # a recognizer in an unknown state is not reused
            log.warning("Vosk recognizer not recycled", exc_info=True)
            return
        self._backend.recycle(self._rate, rec)


class VoskBackend:
    """In-process Vosk: `workers` decoder threads, `workers * streams_per_worker` utterances
    decoded live at once (slots); a recognizer per party stream, held for the call.

    Recognizers are recycled across calls: finish() resets one for the next call but keeps what
    it has composed of the decoding graph. A fresh recognizer of a lookahead model (HCLr + Gr)
    composes as it goes and costs about 7x the CPU of a warm one on its first utterances
    (measured: 2.6 s vs 0.38 s CPU for 4.8 s of speech), so a new one per call would waste
    most of the machine."""

    name = "vosk"

    def __init__(self, model_dir: Path, workers: int, streams_per_worker: int = 2,
                 model: Any = None) -> None:
        self.model_dir = model_dir
        self.workers = workers
        self.model = model if model is not None else load_model(model_dir)
        self.slots = Slots(workers * streams_per_worker)
        self._threads = [ThreadPoolExecutor(1, thread_name_prefix=f"vosk{i}")
                         for i in range(workers)]
        self.busy = [0] * workers  # utterances being decoded per worker thread
        self._idle: dict[int, list[Any]] = {}
        self.max_idle = 64  # warm recognizers kept per sample rate (memory, not CPU)

    def pick_worker(self, release: bool = False) -> int:
        """The least busy worker; counted busy until the utterance ends (unless `release`)."""
        worker = min(range(self.workers), key=self.busy.__getitem__)
        if not release:
            self.busy[worker] += 1
        return worker

    def recycle(self, sample_rate: int, rec: Any) -> None:
        idle = self._idle.setdefault(sample_rate, [])
        if len(idle) < self.max_idle:
            idle.append(rec)

    async def run_on(self, worker: int, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._threads[worker], fn, *args)

    def try_open_slot(self) -> bool:
        return self.slots.try_take()

    async def wait_slot(self) -> None:
        await self.slots.take()

    def release_slot(self) -> None:
        self.slots.give()

    async def open(self, sample_rate: int) -> VoskDecoder:
        idle = self._idle.get(sample_rate)
        if idle:
            rec = idle.pop()
        else:
            rec = await self.run_on(self.pick_worker(release=True), new_recognizer, self.model,
                                    sample_rate)
        return VoskDecoder(self, rec, sample_rate)

    def health(self) -> dict[str, Any]:
        return {"backend": self.name, "model_dir": str(self.model_dir), "workers": self.workers,
                "slots": self.slots.size, "slots_busy": self.slots.used}

    def close(self) -> None:
        for pool in self._threads:
            pool.shutdown(wait=False, cancel_futures=True)
