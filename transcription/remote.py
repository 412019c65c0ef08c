"""Remote decoding on Vosk-server-compatible websocket endpoints, so capacity grows by adding
machines. The protocol (alphacep/vosk-server): send ``{"config": {"sample_rate": 8000}}``,
then binary audio, each answered by ``{"partial": ...}`` or ``{"text": ..., "result": [...]}``;
``{"eof": 1}`` is answered by the final result. One connection per utterance (opened at its
first audio, closed by `endpoint()`): the gate already cut the audio, and `eof` is the only way
that protocol flushes a sentence, so a remote decoder cannot keep its adaptation between
utterances as the in-process one does.

`serve_vosk_compatible` is a small server of the same protocol on our own Vosk engine (tests,
and a second machine that has this package but not vosk-server).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve

from transcription.recognizer import Hypothesis, Slots

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0


def _parse(raw: str | bytes) -> Hypothesis:
    data = json.loads(raw)
    if "partial" in data:
        return Hypothesis(data.get("partial", ""), False, [])
    return Hypothesis(data.get("text", ""), True, data.get("result", []))


class RemoteDecoder:
    """One party stream; a connection per utterance."""

    def __init__(self, backend: RemoteBackend, sample_rate: int) -> None:
        self._backend = backend
        self._rate = sample_rate
        self._ws: ClientConnection | None = None

    async def accept(self, pcm: bytes) -> Hypothesis:
        if self._ws is None:
            self._ws = await self._backend.connect(self._rate)
        await self._ws.send(pcm)
        return _parse(await self._ws.recv())

    async def endpoint(self) -> Hypothesis:
        ws, self._ws = self._ws, None
        if ws is None:
            return Hypothesis("", True, [])
        try:
            await ws.send(json.dumps({"eof": 1}))
            return _parse(await ws.recv())
        finally:
            with contextlib.suppress(Exception):
                await ws.close()

    async def aclose(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()


class RemoteBackend:
    name = "remote"

    def __init__(self, endpoints: list[str], streams_per_endpoint: int = 4) -> None:
        if not endpoints:
            raise ValueError("no remote endpoints")
        self.endpoints = list(endpoints)
        self.slots = Slots(len(endpoints) * streams_per_endpoint)
        self._next = itertools.cycle(range(len(endpoints)))
        self.failures: dict[str, str] = {}

    def try_open_slot(self) -> bool:
        return self.slots.try_take()

    async def wait_slot(self) -> None:
        await self.slots.take()

    def release_slot(self) -> None:
        self.slots.give()

    async def open(self, sample_rate: int) -> RemoteDecoder:
        return RemoteDecoder(self, sample_rate)

    async def connect(self, sample_rate: int) -> ClientConnection:
        """A configured connection to the first endpoint that answers (round robin)."""
        last: Exception | None = None
        for _ in range(len(self.endpoints)):
            url = self.endpoints[next(self._next)]
            try:
                ws = await asyncio.wait_for(connect(url, max_size=None), CONNECT_TIMEOUT_S)
                await ws.send(json.dumps({"config": {"sample_rate": sample_rate, "words": 1}}))
                self.failures.pop(url, None)
                return ws
            except (OSError, TimeoutError, Exception) as exc:  # try the next endpoint
                self.failures[url] = str(exc) or type(exc).__name__
                log.warning("transcription endpoint %s unavailable: %s", url, exc)
                last = exc
        raise ConnectionError(f"no transcription endpoint reachable: {last}")

    def health(self) -> dict[str, Any]:
        return {"backend": self.name, "endpoints": self.endpoints, "slots": self.slots.size,
                "slots_busy": self.slots.used, "failing": dict(self.failures)}


async def serve_vosk_compatible(model_dir: Path, host: str = "127.0.0.1", port: int = 2700,
                                workers: int = 2, model: Any = None) -> Server:
    """A Vosk-server-compatible endpoint on this package's engine. Returns the started server
    (`server.sockets[0].getsockname()[1]` is the port; `server.close()` stops it)."""
    from concurrent.futures import ThreadPoolExecutor

    from transcription import vosk_engine

    model = model if model is not None else vosk_engine.load_model(model_dir)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="vosk-ws")

    idle: dict[int, list[Any]] = {}  # warm recognizers (see VoskBackend), by sample rate

    async def take(rate: int) -> Any:
        if idle.get(rate):
            return idle[rate].pop()
        return await asyncio.get_running_loop().run_in_executor(
            pool, vosk_engine.new_recognizer, model, rate)

    async def handle(ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        rec = None
        rate = 8000
        async for message in ws:
            if isinstance(message, str):
                data = json.loads(message)
                if "config" in data:
                    rate = int(data["config"].get("sample_rate", rate))
                    continue
                if data.get("eof"):
                    if rec is None:
                        rec = await take(rate)
                    h = await loop.run_in_executor(pool, vosk_engine.finish, rec)
                    await ws.send(json.dumps({"text": h.text, "result": h.words},
                                             ensure_ascii=False))
                    idle.setdefault(rate, []).append(rec)  # FinalResult reset it
                    rec = None
                continue
            if rec is None:
                rec = await take(rate)
            h = await loop.run_in_executor(pool, vosk_engine.accept, rec, message)
            reply = ({"text": h.text, "result": h.words} if h.final else {"partial": h.text})
            await ws.send(json.dumps(reply, ensure_ascii=False))

    return await serve(handle, host, port, max_size=None)
