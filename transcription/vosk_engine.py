"""The one module that imports vosk: a model loaded once per process, a KaldiRecognizer per
utterance, decoding in a thread pool (vosk's cffi calls release the GIL, so N threads use N
cores)."""

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


def finish(rec: Any) -> Hypothesis:
    h = _hyp(rec.FinalResult(), True)
    return h


def decode_pcm(model: Any, pcm: bytes, sample_rate: int = 8000, chunk_ms: int = 100) -> str:
    """Offline decode of a whole recording (the reference the live path is compared to)."""
    rec = new_recognizer(model, sample_rate)
    chunk = sample_rate * 2 * chunk_ms // 1000
    texts = []
    for i in range(0, len(pcm), chunk):
        h = accept(rec, pcm[i : i + chunk])
        if h.final and h.text:
            texts.append(h.text)
    h = finish(rec)
    if h.text:
        texts.append(h.text)
    return " ".join(texts)


class VoskDecoder:
    """One utterance on one worker thread: all its calls go to the same thread, so the
    recognizer's state stays in that core's cache (hopping threads cost ~25 % more CPU)."""

    def __init__(self, backend: VoskBackend, rec: Any, sample_rate: int, worker: int) -> None:
        self._backend = backend
        self._rec = rec
        self._rate = sample_rate
        self._worker = worker
        self._finished = False

    async def accept(self, pcm: bytes) -> Hypothesis:
        hyp: Hypothesis = await self._backend.run_on(self._worker, accept, self._rec, pcm)
        return hyp

    async def finish(self) -> Hypothesis:
        hyp: Hypothesis = await self._backend.run_on(self._worker, finish, self._rec)
        self._finished = True
        return hyp

    async def aclose(self) -> None:
        if self._rec is not None and self._finished:
            self._backend.recycle(self._rate, self._rec)
        self._backend.load[self._worker] -= 1
        self._rec = None


class VoskBackend:
    """In-process Vosk: `workers` decoder threads, `workers * streams_per_worker` utterances
    decoded live at once.

    Recognizers are recycled: FinalResult() resets one for the next utterance but keeps what
    it has composed of the decoding graph. A fresh recognizer of a lookahead model (HCLr + Gr)
    composes as it goes and costs about 7x the CPU of a warm one on its first utterances
    (measured: 2.6 s vs 0.38 s CPU for 4.8 s of speech), so one per utterance would waste
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
        self.load = [0] * workers  # open decoders per worker thread
        self._idle: dict[int, list[Any]] = {}

    def recycle(self, sample_rate: int, rec: Any) -> None:
        idle = self._idle.setdefault(sample_rate, [])
        if len(idle) < self.slots.size:
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
        worker = min(range(self.workers), key=self.load.__getitem__)
        self.load[worker] += 1
        idle = self._idle.get(sample_rate)
        try:
            rec = idle.pop() if idle else await self.run_on(worker, new_recognizer, self.model,
                                                            sample_rate)
        except BaseException:
            self.load[worker] -= 1
            raise
        return VoskDecoder(self, rec, sample_rate, worker)

    def health(self) -> dict[str, Any]:
        return {"backend": self.name, "model_dir": str(self.model_dir), "workers": self.workers,
                "slots": self.slots.size, "slots_busy": self.slots.used}

    def close(self) -> None:
        for pool in self._threads:
            pool.shutdown(wait=False, cancel_futures=True)
