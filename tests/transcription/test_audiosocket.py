"""AudioSocket framing and the server's handling of taps, garbage and disconnects."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from transcription.audiosocket import (
    KIND_DTMF,
    KIND_HANGUP,
    KIND_SLIN,
    KIND_UUID,
    AudioSocketServer,
    TapRegistry,
    TapStream,
    encode_frame,
    read_frame,
)


async def test_frames_round_trip() -> None:
    reader = asyncio.StreamReader()
    tap = uuid.uuid4()
    reader.feed_data(encode_frame(KIND_UUID, tap.bytes) + encode_frame(KIND_SLIN, b"\x01\x02")
                     + encode_frame(KIND_HANGUP))
    reader.feed_eof()
    assert await read_frame(reader) == (KIND_UUID, tap.bytes)
    assert await read_frame(reader) == (KIND_SLIN, b"\x01\x02")
    assert await read_frame(reader) == (KIND_HANGUP, b"")
    with pytest.raises(asyncio.IncompleteReadError):
        await read_frame(reader)
    assert encode_frame(KIND_SLIN, b"\x00" * 320)[:3] == b"\x10\x01\x40"
    with pytest.raises(ValueError):
        encode_frame(KIND_SLIN, b"\x00" * 70000)


class Collector:
    def __init__(self) -> None:
        self.streams: list[tuple[TapStream, bytes]] = []
        self.done = asyncio.Event()

    async def __call__(self, stream: TapStream) -> None:
        data = b"".join([c async for c in stream.chunks()])
        self.streams.append((stream, data))
        self.done.set()


async def _server(collector: Collector, registry: TapRegistry) -> AudioSocketServer:
    server = AudioSocketServer(registry, collector, "127.0.0.1", 0, registration_wait_s=0.3)
    await server.start()
    return server


async def test_known_tap_audio_reaches_its_contact_and_speaker() -> None:
    registry, collector = TapRegistry(), Collector()
    server = await _server(collector, registry)
    tap = uuid.uuid4()
    registry.register(tap, "42", "caller")
    _, w = await asyncio.open_connection("127.0.0.1", server.port)
    w.write(encode_frame(KIND_UUID, tap.bytes))
    for i in range(5):
        w.write(encode_frame(KIND_SLIN, bytes([i]) * 320))
    w.write(encode_frame(KIND_DTMF, b"5"))  # skipped, the stream stays in step
    w.write(encode_frame(0x42, b"junk"))  # unknown kind: skipped too
    w.write(encode_frame(KIND_SLIN, b"\x09" * 320))
    w.write(encode_frame(KIND_HANGUP))
    await w.drain()
    await asyncio.wait_for(collector.done.wait(), 5)
    stream, data = collector.streams[0]
    assert (stream.meta.contact_id, stream.meta.speaker) == ("42", "caller")
    assert stream.hung_up and len(data) == 6 * 320 and data.endswith(b"\x09" * 320)
    w.close()
    await server.stop()


async def test_registration_may_arrive_just_after_the_tap_connects() -> None:
    registry, collector = TapRegistry(), Collector()
    server = await _server(collector, registry)
    tap = uuid.uuid4()
    _, w = await asyncio.open_connection("127.0.0.1", server.port)
    w.write(encode_frame(KIND_UUID, tap.bytes) + encode_frame(KIND_SLIN, b"\x01" * 320))
    await w.drain()
    await asyncio.sleep(0.1)
    registry.register(str(tap), "7", "agent")
    w.write(encode_frame(KIND_HANGUP))
    await w.drain()
    await asyncio.wait_for(collector.done.wait(), 5)
    assert collector.streams[0][0].meta.speaker == "agent"
    w.close()
    await server.stop()


async def test_unknown_taps_and_garbage_are_closed_without_harm() -> None:
    registry, collector = TapRegistry(), Collector()
    server = await _server(collector, registry)
    # Unknown UUID: closed after the registration wait.
    r, w = await asyncio.open_connection("127.0.0.1", server.port)
    w.write(encode_frame(KIND_UUID, uuid.uuid4().bytes))
    await w.drain()
    assert await asyncio.wait_for(r.read(), 3) == b""
    # Garbage instead of a UUID frame.
    r, w = await asyncio.open_connection("127.0.0.1", server.port)
    w.write(b"GET / HTTP/1.1\r\n\r\n")
    await w.drain()
    assert await asyncio.wait_for(r.read(), 3) == b""
    # A known tap that drops mid-frame: its stream ends, marked as not hung up.
    tap = uuid.uuid4()
    registry.register(tap, "9", "caller")
    r, w = await asyncio.open_connection("127.0.0.1", server.port)
    w.write(encode_frame(KIND_UUID, tap.bytes) + encode_frame(KIND_SLIN, b"\x01" * 320)
            + b"\x10\x01")
    await w.drain()
    w.close()
    await asyncio.wait_for(collector.done.wait(), 5)
    stream, data = collector.streams[0]
    assert not stream.hung_up and len(data) == 320
    # The server still serves.
    collector.done.clear()
    tap2 = uuid.uuid4()
    registry.register(tap2, "10", "agent")
    _, w = await asyncio.open_connection("127.0.0.1", server.port)
    w.write(encode_frame(KIND_UUID, tap2.bytes) + encode_frame(KIND_HANGUP))
    await w.drain()
    await asyncio.wait_for(collector.done.wait(), 5)
    assert collector.streams[1][0].hung_up
    await server.stop()
