"""The service: taps in over AudioSocket, segments on the bus, finals stored; no model ->
transcription off, clearly."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import transcription
from agent_ui.app import create_app
from cases.models import Channel, Contact, TranscriptSegment
from hotline.events import InProcessBus, make_event
from hotline.services import Services
from hotline.settings import Settings, TranscriptionSettings
from tests.transcription.audio import silence, tone
from tests.transcription.fakes import FakeBackend
from transcription.audiosocket import KIND_HANGUP, KIND_SLIN, KIND_UUID, encode_frame
from transcription.service import TranscriptionService


def _settings(base: Settings, **kw: Any) -> Settings:
    return base.model_copy(update={"transcription": TranscriptionSettings(
        audiosocket_port=0, **kw)})


async def _play(port: int, tap: str, pcm: bytes, hang_up: bool = True) -> None:
    _, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(encode_frame(KIND_UUID, uuid.UUID(tap).bytes))
    for i in range(0, len(pcm), 320):
        w.write(encode_frame(KIND_SLIN, pcm[i : i + 320]))
    if hang_up:
        w.write(encode_frame(KIND_HANGUP))
    await w.drain()
    w.close()


async def test_taps_become_segments_on_the_bus_and_finals_are_stored(services: Services):
    with services.transaction() as s:
        contact = Contact(channel=Channel.PHONE, from_address="13800000001")
        s.add(contact)
        s.flush()
        contact_id = contact.id
    bus = InProcessBus()
    events: list[dict[str, Any]] = []
    bus.subscribe("transcript_segment", events.append)
    bus.subscribe("transcription_status", events.append)
    svc = TranscriptionService(_settings(services.settings), bus, services.session_factory,
                               backend=FakeBackend())
    await svc.start()
    assert svc.health()["state"] == "running"
    assert svc.server is not None
    caller_tap, agent_tap = str(uuid.uuid4()), str(uuid.uuid4())
    # Registration arrives as the TapController's events.
    await bus.publish(make_event("transcription_tap", tap_id=caller_tap, contact_id=contact_id,
                                 speaker="caller"))
    await bus.publish(make_event("transcription_tap", tap_id=agent_tap, contact_id=contact_id,
                                 speaker="agent"))
    speech = silence(300) + tone(1200) + silence(600)
    await asyncio.gather(_play(svc.server.port, caller_tap, speech),
                         _play(svc.server.port, agent_tap, silence(len(speech) // 16)))
    for _ in range(100):
        if any(e["type"] == "transcript_segment" and e["final"] for e in events):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    await svc.stop()
    segs = [e for e in events if e["type"] == "transcript_segment"]
    assert segs and {e["speaker"] for e in segs} == {"caller"}  # the agent only listened
    assert all(e["contact_id"] == str(contact_id) for e in segs)
    assert [e["final"] for e in segs][-1] is True and not segs[-1]["delayed"]
    assert {"start", "end", "text"} <= segs[-1].keys()
    statuses = [e for e in events if e["type"] == "transcription_status"]
    assert {e["state"] for e in statuses} == {"running"}
    with services.transaction() as s:
        stored = s.scalars(select(TranscriptSegment)).all()
        assert [(r.contact_id, r.speaker, r.final) for r in stored] == [
            (contact_id, "caller", True)]
        assert stored[0].end_ms > stored[0].start_ms


async def test_a_dropped_tap_ends_its_stream_cleanly_and_the_next_is_served(settings: Settings):
    bus = InProcessBus()
    events: list[dict[str, Any]] = []
    bus.subscribe("transcription_status", events.append)
    bus.subscribe("transcript_segment", events.append)
    svc = TranscriptionService(_settings(settings), bus, backend=FakeBackend())
    await svc.start()
    assert svc.server is not None
    tap = str(uuid.uuid4())
    svc.registry.register(tap, "c1", "caller")
    await _play(svc.server.port, tap, tone(500), hang_up=False)  # closed mid-utterance
    tap2 = str(uuid.uuid4())
    svc.registry.register(tap2, "c2", "caller")
    await _play(svc.server.port, tap2, tone(500))

    def finals(contact: str) -> list[dict[str, Any]]:
        return [e for e in events if e["type"] == "transcript_segment" and e["final"]
                and e["contact_id"] == contact]

    for _ in range(100):
        if finals("c1") and finals("c2"):
            break
        await asyncio.sleep(0.05)
    await svc.stop()
    assert len(finals("c1")) == 1 and len(finals("c2")) == 1  # the open utterance is closed
    assert svc.active_streams == 0 and svc.registry.lookup(uuid.UUID(tap)) is None


async def test_missing_model_turns_transcription_off_clearly(
        settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    bus = InProcessBus()
    statuses: list[dict[str, Any]] = []
    bus.subscribe("transcription_status", statuses.append)
    svc = TranscriptionService(_settings(settings, model_dir=tmp_path / "no-such-model"), bus)
    with caplog.at_level(logging.ERROR):
        await svc.start()  # does not raise
    health = svc.health()
    assert health["ok"] is False and health["state"] == "off"
    assert "no-such-model" in health["reason"] and "MODEL_DIR" in health["reason"]
    assert statuses[0]["state"] == "off"
    assert "transcription is OFF" in caplog.text
    await svc.stop()


def test_healthz_says_whether_transcription_is_on(settings: Settings, tmp_path: Path):
    off = settings.model_copy(update={"transcription": TranscriptionSettings(
        model_dir=tmp_path / "missing")})
    with TestClient(create_app(off)) as client:
        body = client.get("/healthz").json()
    t = body["checks"]["transcription"]
    assert t["ok"] is False and t["state"] == "off" and "missing" in t["reason"]
    assert transcription.health(off)["state"] == "off"


def test_transcribe_command_runs_with_transcription_off_when_the_model_is_missing(
        settings: Settings, tmp_path: Path):
    import os
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ, HOTLINE_ENV="test", HOTLINE_VAR_DIR=str(settings.var_dir),
               HOTLINE_TRANSCRIPTION__MODEL_DIR=str(tmp_path / "absent"))
    proc = subprocess.Popen([sys.executable, "-m", "hotline", "transcribe", "--no-store"],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        deadline = time.monotonic() + 30
        seen = ""
        while time.monotonic() < deadline and "transcription is OFF" not in seen:
            seen += proc.stderr.readline()
        assert "transcription is OFF" in seen and "absent" in seen, seen
        assert proc.poll() is None  # still running: the service starts, transcription off
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
