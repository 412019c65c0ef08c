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
    def __init__(self, backend: VoskBackend, rec: Any) -> None:
        self._backend = backend
        self._rec = rec

    async def accept(self, pcm: bytes) -> Hypothesis:
        hyp: Hypothesis = await self._backend.run(accept, self._rec, pcm)
        return hyp

    async def finish(self) -> Hypothesis:
        hyp: Hypothesis = await self._backend.run(finish, self._rec)
        return hyp

    async def aclose(self) -> None:
        self._rec = None


class VoskBackend:
    """In-process Vosk: `workers` decoder threads, `workers * streams_per_worker` utterances
    decoded live at once."""

    name = "vosk"

    def __init__(self, model_dir: Path, workers: int, streams_per_worker: int = 2,
                 model: Any = None) -> None:
        self.model_dir = model_dir
        self.workers = workers
        self.model = model if model is not None else load_model(model_dir)
        self.slots = Slots(workers * streams_per_worker)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="vosk")

    async def run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def try_open_slot(self) -> bool:
        return self.slots.try_take()

    async def wait_slot(self) -> None:
        await self.slots.take()

    def release_slot(self) -> None:
        self.slots.give()

    async def open(self, sample_rate: int) -> VoskDecoder:
        rec = await self.run(new_recognizer, self.model, sample_rate)
        return VoskDecoder(self, rec)

    def health(self) -> dict[str, Any]:
        return {"backend": self.name, "model_dir": str(self.model_dir), "workers": self.workers,
                "slots": self.slots.size, "slots_busy": self.slots.used}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
