"""Real Vosk (the bundled Korean model) through the pipeline, in-process and over the
Vosk-server websocket protocol."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from tests.transcription.audio import word_agreement
from tests.transcription.test_pipeline import collect
from transcription import vosk_engine
from transcription.recognizer import GatedRecognizer
from transcription.remote import RemoteBackend, serve_vosk_compatible
from transcription.types import StreamMeta
from transcription.vad import EnergyGate, split_utterances


def _backend(model: Any) -> vosk_engine.VoskBackend:
    return vosk_engine.VoskBackend(Path("unused"), workers=2, model=model)


@pytest.fixture(scope="module")
def offline(vosk_model: Any, speech_pcm: bytes) -> str:
    """The reference: the utterances the gate cuts, decoded offline on one recognizer, each
    closed with an endpoint (what the in-process backend does live). (What gating itself costs
    against an ungated decode is measured by bench/transcription.py.)"""
    return vosk_engine.decode_utterances(
        vosk_model, [u for _, _, u in split_utterances(speech_pcm, EnergyGate())])


@pytest.fixture(scope="module")
def offline_per_utterance(vosk_model: Any, speech_pcm: bytes) -> str:
    """The remote protocol's reference: each utterance decoded on its own (a connection per
    utterance, `eof` flushes and resets)."""
    return " ".join(vosk_engine.decode_pcm(vosk_model, u)
                    for _, _, u in split_utterances(speech_pcm, EnergyGate()))


async def test_in_process_vosk_matches_an_offline_decode(vosk_model: Any, speech_pcm: bytes,
                                                         offline: str):
    backend = _backend(vosk_model)
    segs = await collect(GatedRecognizer(backend), StreamMeta("5", "caller"), speech_pcm)
    backend.close()
    finals = [s for s in segs if s.final]
    assert len(finals) >= 2  # one per sentence at least
    assert any(not s.final and s.text for s in segs)
    live = " ".join(s.text for s in finals)
    assert word_agreement(offline, live) >= 0.9, (offline, live)
    # Finals are in order and inside the stream.
    assert all(a.end_ms <= b.start_ms for a, b in itertools.pairwise(finals))
    assert finals[-1].end_ms <= len(speech_pcm) // 16


async def test_remote_endpoint_gives_the_same_transcript(vosk_model: Any, speech_pcm: bytes,
                                                         offline_per_utterance: str):
    offline = offline_per_utterance
    server = await serve_vosk_compatible(Path("unused"), port=0, model=vosk_model)
    port = server.sockets and next(iter(server.sockets)).getsockname()[1]
    try:
        remote = RemoteBackend(["ws://127.0.0.1:1/unreachable", f"ws://127.0.0.1:{port}"])
        segs = await collect(GatedRecognizer(remote), StreamMeta("6", "agent"), speech_pcm)
    finally:
        server.close()
        await server.wait_closed()
    text = " ".join(s.text for s in segs if s.final)
    assert text and word_agreement(offline, text) >= 0.9, (offline, text)
    assert any(not s.final for s in segs)
    assert all(s.speaker == "agent" for s in segs)
    assert "ws://127.0.0.1:1/unreachable" in remote.health()["failing"]


async def test_all_endpoints_down_buffers_nothing_and_raises_cleanly() -> None:
    remote = RemoteBackend(["ws://127.0.0.1:1/"])
    assert remote.try_open_slot()
    try:
        await asyncio.wait_for(remote.connect(8000), 5)
    except ConnectionError as exc:
        assert "no transcription endpoint" in str(exc)
    else:
        raise AssertionError("expected ConnectionError")
    finally:
        remote.release_slot()


async def test_a_recycled_recognizer_starts_the_next_call_afresh(vosk_model: Any,
                                                                 speech_pcm: bytes):
    """A stream's decoder keeps its adaptation between utterances (endpoint = Result()), but
    the next call on the recycled recognizer must not inherit the last caller's: Vosk's
    FinalResult() does not reset a recognizer that was just endpointed, finish() makes sure."""
    utterances = [u for _, _, u in split_utterances(speech_pcm, EnergyGate())]
    fresh = vosk_engine.decode_pcm(vosk_model, speech_pcm)
    backend = _backend(vosk_model)
    try:
        first = await backend.open(8000)
        for u in utterances:  # a call that ends right after an endpoint
            await first.accept(u)
            await first.endpoint()
        await first.aclose()
        second = await backend.open(8000)
        assert second._rec is not None and backend._idle[8000] == []  # the recycled one
        texts = []
        for i in range(0, len(speech_pcm), 1600):
            h = await second.accept(speech_pcm[i : i + 1600])
            if h.final and h.text:
                texts.append(h.text)
        h = await second.endpoint()
        texts.append(h.text)
        await second.aclose()
    finally:
        backend.close()
    assert " ".join(t for t in texts if t) == fresh
