"""An asyncio AudioSocket server: Asterisk's chan_audiosocket taps connect here.

Each tap is one party of one call (ChanSpy with `o` hears only the spied channel). The tap
announces itself with a 16-byte UUID, which `TapRegistry` maps to (contact, speaker); the
TapController registers it before originating the tap. Frames are: 1 byte type, 2 bytes
big-endian payload length, payload. Audio is handed on through an unbounded queue so that a
slow decoder never back-pressures Asterisk: the call is never disturbed by transcription.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from transcription.types import Speaker, StreamMeta

log = logging.getLogger(__name__)

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_SLIN = 0x10
KIND_ERROR = 0xFF
# Asterisk 22.7+: signed linear at higher rates.
SLIN_RATES = {
    0x10: 8000,
    0x11: 12000,
    0x12: 16000,
    0x13: 24000,
    0x14: 32000,
    0x15: 44100,
    0x16: 48000,
    0x17: 96000,
    0x18: 192000,
}
MAX_PAYLOAD = 0xFFFF
REGISTRATION_WAIT_S = 3.0  # a tap may connect a moment before its registration arrives
READ_TIMEOUT_S = 30.0  # a tap sends a frame every 20 ms; silence this long means it is gone


class FrameError(ValueError):
    """The peer sent something that is not an AudioSocket frame."""


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("AudioSocket payload longer than 65535 bytes")
    return struct.pack(">BH", kind, len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One frame; raises asyncio.IncompleteReadError at EOF."""
    header = await reader.readexactly(3)
    kind, length = struct.unpack(">BH", header)
    payload = await reader.readexactly(length) if length else b""
    return kind, payload


@dataclass
class TapRegistry:
    """tap UUID -> (contact, speaker). Filled by the TapController (directly in one process,
    through `transcription_tap` events across processes)."""

    _taps: dict[uuid.UUID, StreamMeta] = field(default_factory=dict)
    _changed: asyncio.Event | None = None

    def register(self, tap_id: str | uuid.UUID, contact_id: str, speaker: Speaker,
                 offset_ms: int = 0) -> None:
        key = uuid.UUID(str(tap_id))
        self._taps[key] = StreamMeta(contact_id=contact_id, speaker=speaker, tap_id=str(key),
                                     offset_ms=offset_ms)
        if self._changed is not None:
            self._changed.set()

    def forget(self, tap_id: str | uuid.UUID) -> None:
        self._taps.pop(uuid.UUID(str(tap_id)), None)

    def forget_contact(self, contact_id: str) -> list[str]:
        gone = [k for k, m in self._taps.items() if m.contact_id == contact_id]
        for k in gone:
            del self._taps[k]
        return [str(k) for k in gone]

    def lookup(self, tap_id: uuid.UUID) -> StreamMeta | None:
        return self._taps.get(tap_id)

    async def wait_for(self, tap_id: uuid.UUID, wait_s: float) -> StreamMeta | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while (meta := self.lookup(tap_id)) is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            if self._changed is None:
                self._changed = asyncio.Event()
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.1))
        return meta


class TapStream:
    """The audio of one connected tap, as an async iterator of PCM chunks. It ends at the
    tap's hang-up frame (`hung_up` True) or when the connection drops (`hung_up` False)."""

    def __init__(self, meta: StreamMeta) -> None:
        self.meta = meta
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.hung_up = False
        self.bytes_received = 0

    def put(self, pcm: bytes) -> None:
        self.bytes_received += len(pcm)
        self._queue.put_nowait(pcm)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk


StreamHandler = Callable[[TapStream], Awaitable[None]]


class AudioSocketServer:
    """Accepts taps; for each known tap, runs `handler(stream)` as a task while frames are
    pumped into the stream. Unknown taps, garbage and protocol errors close that connection
    only."""

    def __init__(
        self,
        registry: TapRegistry,
        handler: StreamHandler,
        host: str = "127.0.0.1",
        port: int = 9092,
        registration_wait_s: float = REGISTRATION_WAIT_S,
    ) -> None:
        self.registry = registry
        self.handler = handler
        self.host = host
        self.port = port
        self.registration_wait_s = registration_wait_s
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: dict[str, list[asyncio.StreamWriter]] = {}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("AudioSocket server listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writers in list(self._writers.values()):
                for w in writers:
                    w.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def drop_contact(self, contact_id: str) -> None:
        """Close the taps of a contact (stop_taps): Asterisk hangs the tap channels up."""
        for w in self._writers.pop(contact_id, []):
            w.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream: TapStream | None = None
        try:
            # Check the header before reading a payload: garbage must not make us wait for
            # 64 KiB that never come.
            header = await asyncio.wait_for(reader.readexactly(3), READ_TIMEOUT_S)
            kind, length = struct.unpack(">BH", header)
            if kind != KIND_UUID or length != 16:
                raise FrameError(f"first frame is type 0x{kind:02x} length {length}, not a UUID")
            tap_id = uuid.UUID(bytes=await asyncio.wait_for(reader.readexactly(16), 5))
            meta = await self.registry.wait_for(tap_id, self.registration_wait_s)
            if meta is None:
                log.warning("AudioSocket: unknown tap %s; closing it", tap_id)
                return
            self._writers.setdefault(meta.contact_id, []).append(writer)
            stream = TapStream(meta)
            task = asyncio.create_task(self._run_handler(stream), name=f"tap-{tap_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            while True:
                kind, payload = await asyncio.wait_for(read_frame(reader), READ_TIMEOUT_S)
                if kind in SLIN_RATES:
                    rate = SLIN_RATES[kind]
                    if rate != stream.meta.sample_rate and stream.bytes_received == 0:
                        stream.meta = dataclasses.replace(meta, sample_rate=rate)
                    if payload:
                        stream.put(payload)
                elif kind == KIND_HANGUP:
                    stream.hung_up = True
                    break
                elif kind == KIND_ERROR:
                    log.warning("AudioSocket: tap %s reports error %r", tap_id, payload[:8])
                    stream.hung_up = True
                    break
                # DTMF and unknown kinds are skipped: their length is known, the stream stays
                # in step.
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except FrameError as exc:
            log.warning("AudioSocket: %s; closing the connection", exc)
        finally:
            if stream is not None:
                if writer.is_closing() and not stream.hung_up:
                    stream.hung_up = True  # we closed it on purpose (stop_taps)
                stream.close()
                writers = self._writers.get(stream.meta.contact_id, [])
                with contextlib.suppress(ValueError):
                    writers.remove(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _run_handler(self, stream: TapStream) -> None:
        try:
            await self.handler(stream)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("transcription of tap %s failed", stream.meta.tap_id)
