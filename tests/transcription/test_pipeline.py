"""The gated pipeline: partial cadence, listening costs nothing, overflow -> delayed."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

from tests.transcription.audio import silence, tone
from tests.transcription.fakes import FakeBackend
from transcription.recognizer import GatedRecognizer, normalise_text
from transcription.types import Segment, StreamMeta


async def realtime(pcm: bytes, frame: int = 320, pace: float = 0.0) -> AsyncIterator[bytes]:
    """Chunks as Asterisk sends them (20 ms); `pace` seconds between frames (0: flat out)."""
    for i in range(0, len(pcm), frame):
        yield pcm[i : i + frame]
        await asyncio.sleep(pace)


async def collect(rec: GatedRecognizer, meta: StreamMeta, pcm: bytes,
                  pace: float = 0.0) -> list[Segment]:
    return [s async for s in rec.transcribe(meta, realtime(pcm, pace=pace))]


async def test_partials_at_least_every_300_ms_and_finals_with_times() -> None:
    backend = FakeBackend()
    rec = GatedRecognizer(backend, preroll_ms=200, hangover_ms=300)
    segs = await collect(rec, StreamMeta("1", "caller"), silence(1000) + tone(2000) + silence(800))
    partials = [s for s in segs if not s.final]
    finals = [s for s in segs if s.final]
    assert len(finals) == 1
    f = finals[0]
    assert (f.speaker, f.contact_id, f.start_ms, f.end_ms, f.delayed) == ("caller", "1", 800,
                                                                        3000, False)
    times = [f.start_ms] + [p.end_ms for p in partials] + [f.end_ms]
    assert max(b - a for a, b in itertools.pairwise(times)) <= 300
    assert all(p.start_ms == 800 for p in partials)
    assert backend.open_decoders == 0 and backend.slots.used == 0


async def test_a_listening_party_costs_no_decoding() -> None:
    backend = FakeBackend()
    rec = GatedRecognizer(backend)
    segs = await collect(rec, StreamMeta("1", "agent"), silence(10_000, level=40))
    assert segs == [] and backend.accept_calls == 0 and backend.bytes_decoded == 0


async def test_only_speech_is_decoded() -> None:
    backend = FakeBackend()
    rec = GatedRecognizer(backend, preroll_ms=300, hangover_ms=300)
    pcm = silence(5000) + tone(1000) + silence(5000)
    await collect(rec, StreamMeta("1", "caller"), pcm)
    decoded_ms = backend.bytes_decoded // 16
    assert 1000 <= decoded_ms <= 1700, decoded_ms  # speech + pre-roll + hang-over


async def test_overflow_buffers_and_finishes_after_the_call_marked_delayed() -> None:
    backend = FakeBackend(slots=1)
    rec = GatedRecognizer(backend, hangover_ms=200)
    pcm = silence(200) + tone(1500) + silence(600)
    first, second = await asyncio.gather(
        collect(rec, StreamMeta("1", "caller"), pcm, pace=0.002),
        collect(rec, StreamMeta("2", "caller"), silence(100) + pcm, pace=0.002),
    )
    assert [s.delayed for s in first if s.final] == [False]
    assert any(not s.final for s in first)
    # The second call found no free slot: nothing live, one delayed final after its end.
    assert [s.final for s in second] == [True] and second[0].delayed
    assert second[0].start_ms == 0 and second[0].end_ms > 1500
    assert "utterance of" in second[0].text
    assert backend.slots.used == 0


async def test_delayed_backlog_waits_for_capacity() -> None:
    backend = FakeBackend(slots=1)
    assert backend.try_open_slot()  # someone else holds the only slot
    rec = GatedRecognizer(backend, hangover_ms=200)
    task = asyncio.create_task(collect(rec, StreamMeta("3", "agent"), tone(500) + silence(400)))
    await asyncio.sleep(0.2)
    assert not task.done()  # the call is over, the backlog waits for a slot
    backend.release_slot()
    segs = await asyncio.wait_for(task, 5)
    assert [(s.final, s.delayed) for s in segs] == [(True, True)]


def test_text_is_normalised_to_simplified() -> None:
    assert normalise_text("請問  垃圾 車幾點來") == "请问 垃圾 车几点来"
    assert normalise_text("안녕 하세요") == "안녕 하세요"


async def test_one_decoder_per_party_stream_slots_only_while_speaking() -> None:
    """The decoder (and its adaptation) lives for the whole stream; each utterance is closed
    with an endpoint; the slot is given back in the silence between utterances."""
    backend = FakeBackend()
    rec = GatedRecognizer(backend, preroll_ms=200, hangover_ms=300)
    slots_in_silence: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for part in (silence(500), tone(1000), silence(2000), tone(800), silence(600)):
            for i in range(0, len(part), 320):
                yield part[i : i + 320]
            slots_in_silence.append(backend.slots.used)

    segs = [s async for s in rec.transcribe(StreamMeta("1", "caller"), chunks())]
    finals = [s for s in segs if s.final]
    assert [(f.start_ms, f.end_ms) for f in finals] == [(300, 1500), (3300, 4300)]
    assert backend.opened == 1 and backend.endpoints == 2
    assert slots_in_silence[2] == 0  # after 2 s of silence the first utterance gave it back
    assert backend.open_decoders == 0 and backend.slots.used == 0
    # The 1.7 s of silence the gate skipped was never fed to the decoder.
    assert backend.bytes_decoded // 16 == (200 + 1000 + 300) + (200 + 800 + 300)


async def test_word_times_are_stream_times_across_skipped_silence() -> None:
    backend = FakeBackend()
    rec = GatedRecognizer(backend, preroll_ms=200, hangover_ms=300)
    pcm = silence(500) + tone(1000) + silence(2000) + tone(800) + silence(600)
    finals = [s for s in await collect(rec, StreamMeta("1", "caller"), pcm) if s.final]
    # The decoder's second utterance starts 1.5 s into *its* audio; in the stream, at 3.3 s.
    assert [(w["start"], w["end"]) for f in finals for w in f.words] == [(0.3, 1.8),
                                                                          (3.3, 4.6)]


async def test_delayed_utterance_is_decoded_after_the_call_on_the_same_decoder() -> None:
    backend = FakeBackend(slots=1)
    rec = GatedRecognizer(backend, preroll_ms=200, hangover_ms=300)
    taken = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        for n, part in enumerate((silence(500), tone(600), silence(1000), tone(600),
                                  silence(600))):
            if n == 3:  # someone else takes the only slot before the second utterance
                assert backend.try_open_slot()
                taken.set()
            for i in range(0, len(part), 320):
                yield part[i : i + 320]
        backend.release_slot()

    segs = [s async for s in rec.transcribe(StreamMeta("1", "agent"), chunks())]
    assert taken.is_set()
    assert [(s.delayed, s.start_ms) for s in segs if s.final] == [(False, 300), (True, 1900)]
    assert backend.opened == 1 and backend.slots.used == 0 and backend.open_decoders == 0
