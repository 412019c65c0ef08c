"""CallTapper: the queue brain's events start, move and stop the taps (fake AMI; the real
thing is in test_live_calls.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from hotline.events import InProcessBus, make_event
from hotline.settings import Settings, TranscriptionSettings
from tests.transcription.test_taps import FakeAmi, _listening
from transcription import taps as taps_mod
from transcription.taps import TapController
from transcription.wiring import CallTapper

CALLER, AGENT, AGENT2 = "PJSIP/citizens-0001", "PJSIP/8001-0002", "PJSIP/8002-0003"


async def _tapper(monkeypatch: Any) -> tuple[CallTapper, FakeAmi, InProcessBus,
                                              list[dict[str, Any]]]:
    monkeypatch.setattr(taps_mod, "INTERRUPT_GRACE_S", 0.01)
    monkeypatch.setattr(TapController, "_service_listening", _listening)
    settings = Settings(env="test", transcription=TranscriptionSettings(audiosocket_port=9099))
    bus = InProcessBus()
    seen: list[dict[str, Any]] = []
    for name in ("transcription_tap", "transcription_tap_stop", "transcription_status"):
        bus.subscribe(name, seen.append)
    ami = FakeAmi()
    tapper = CallTapper(TapController(settings, bus, ami=ami), bus)  # type: ignore[arg-type]
    await tapper.start()
    return tapper, ami, bus, seen


def _spied(ami: FakeAmi) -> list[str]:
    return [f["Variable"].split("=", 1)[1] for name, f in ami.actions if name == "Originate"]


async def _connected(bus: InProcessBus, contact_id: Any = 41) -> None:
    await bus.publish(make_event("agent_connected", queue="complaint", uniqueid="1.1",
                                 agent="8001", contact_id=contact_id, channel=CALLER,
                                 agent_channel=AGENT))


async def test_answered_call_is_tapped_and_hangup_stops_it(monkeypatch: Any) -> None:
    tapper, ami, bus, seen = await _tapper(monkeypatch)
    await _connected(bus)
    assert _spied(ami) == [CALLER, AGENT]
    assert [(e["speaker"], e["contact_id"]) for e in seen] == [("caller", "41"), ("agent", "41")]
    await bus.publish(make_event("channel_hangup", uniqueid="1.1", channel=CALLER))
    assert [e["type"] for e in seen][-1] == "transcription_tap_stop"
    assert tapper.calls == {}
    await tapper.stop()


async def test_agent_completed_stops_but_a_transfer_moves_the_agent_tap(
        monkeypatch: Any) -> None:
    tapper, ami, bus, seen = await _tapper(monkeypatch)
    await _connected(bus)
    await bus.publish(make_event("bridge_enter", bridge_id="b1", uniqueid="1.1", channel=CALLER))
    await bus.publish(make_event("bridge_enter", bridge_id="b1", uniqueid="1.2", channel=AGENT))
    # A tap's own AudioSocket channel is not a party.
    await bus.publish(make_event("bridge_enter", bridge_id="b1", uniqueid="x",
                                 channel="AudioSocket/127.0.0.1:9099-00000001"))
    await bus.publish(make_event("agent_completed", queue="complaint", uniqueid="1.1",
                                 agent="8001", hangup_side="transfer", contact_id=41))
    assert tapper.calls, "a transfer must not stop the taps"
    await bus.publish(make_event("bridge_leave", bridge_id="b1", uniqueid="1.2", channel=AGENT))
    await bus.publish(make_event("bridge_enter", bridge_id="b1", uniqueid="1.3", channel=AGENT2))
    assert _spied(ami) == [CALLER, AGENT, AGENT2]
    assert [e["speaker"] for e in seen if e["type"] == "transcription_tap"] == [
        "caller", "agent", "agent"]
    await asyncio.sleep(0.05)
    # The old agent tap ending is a normal end, not "interrupted".
    assert not [e for e in seen if e["type"] == "transcription_status"]
    await bus.publish(make_event("agent_completed", queue="complaint", uniqueid="1.1",
                                 agent="8002", hangup_side="caller", contact_id=41))
    assert tapper.calls == {}
    assert [e["type"] for e in seen][-1] == "transcription_tap_stop"
    await tapper.stop()


async def test_blind_transfer_caller_moves_to_a_new_bridge(monkeypatch: Any) -> None:
    tapper, ami, bus, _ = await _tapper(monkeypatch)
    await _connected(bus)
    await bus.publish(make_event("bridge_enter", bridge_id="b1", uniqueid="1.1", channel=CALLER))
    await bus.publish(make_event("bridge_enter", bridge_id="b2", uniqueid="1.3", channel=AGENT2))
    assert _spied(ami) == [CALLER, AGENT]  # someone else's call
    await bus.publish(make_event("bridge_enter", bridge_id="b2", uniqueid="1.1", channel=CALLER))
    assert _spied(ami) == [CALLER, AGENT, AGENT2]
    await tapper.stop()


async def test_events_without_contact_or_channel_are_skipped(monkeypatch: Any) -> None:
    tapper, ami, bus, _ = await _tapper(monkeypatch)
    await _connected(bus, contact_id=None)
    await bus.publish(make_event("agent_connected", contact_id=5, channel=None))
    await bus.publish(make_event("agent_completed", contact_id=99, hangup_side="agent"))
    assert _spied(ami) == []
    await tapper.stop()


async def test_interrupted_call_is_retapped_when_the_service_listens_again(
        monkeypatch: Any) -> None:
    monkeypatch.setattr(taps_mod, "INTERRUPT_GRACE_S", 0.01)
    monkeypatch.setattr(taps_mod, "RESUME_POLL_S", 0.05)
    from tests.pbx.sipp import free_port

    port = free_port("tcp")
    settings = Settings(env="test", transcription=TranscriptionSettings(audiosocket_port=port))
    bus = InProcessBus()
    seen: list[dict[str, Any]] = []
    bus.subscribe("transcription_tap", seen.append)
    bus.subscribe("transcription_status", seen.append)
    ami = FakeAmi()
    ami.alive = {CALLER, AGENT}
    ctl = TapController(settings, bus, ami=ami)  # type: ignore[arg-type]
    first = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    caller_tap, agent_tap = await ctl.start_taps("c9", CALLER, AGENT)
    first.close()
    await first.wait_closed()
    # The worker dies: both taps hang up while both parties are on the call.
    ctl._on_event({"Event": "Hangup", "Uniqueid": caller_tap, "Channel": "AudioSocket/a"})
    ctl._on_event({"Event": "Hangup", "Uniqueid": agent_tap, "Channel": "AudioSocket/b"})
    await asyncio.sleep(0.3)
    assert [e["state"] for e in seen if e["type"] == "transcription_status"] == ["interrupted"]
    assert len(_spied(ami)) == 2  # nothing listens yet: no new taps
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        for _ in range(40):
            if len(_spied(ami)) == 4:
                break
            await asyncio.sleep(0.05)
        assert _spied(ami) == [CALLER, AGENT, CALLER, AGENT]
        taps = [e for e in seen if e["type"] == "transcription_tap"]
        assert [e["speaker"] for e in taps] == ["caller", "agent", "caller", "agent"]
        assert taps[2]["offset_ms"] >= 300  # the resumed taps start later in the call
    finally:
        server.close()
        await server.wait_closed()
    await ctl.stop_taps("c9")


async def test_no_service_listening_no_taps_until_it_is_there(monkeypatch: Any) -> None:
    """Nothing listens on the AudioSocket port: no tap is originated into nothing, the desk
    is told at once, and the call is tapped when the service starts listening."""
    monkeypatch.setattr(taps_mod, "RESUME_POLL_S", 0.05)
    from tests.pbx.sipp import free_port

    port = free_port("tcp")
    settings = Settings(env="test", transcription=TranscriptionSettings(audiosocket_port=port))
    bus = InProcessBus()
    seen: list[dict[str, Any]] = []
    bus.subscribe("transcription_status", seen.append)
    ami = FakeAmi()
    ami.alive = {CALLER, AGENT}
    tapper = CallTapper(TapController(settings, bus, ami=ami), bus)  # type: ignore[arg-type]
    await tapper.start()
    await _connected(bus)
    assert _spied(ami) == []
    assert [(e["state"], e["reason"]) for e in seen] == [
        ("interrupted", "transcription service not reachable")]
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        for _ in range(40):
            if _spied(ami):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        assert _spied(ami) == [CALLER, AGENT]
    finally:
        server.close()
        await server.wait_closed()
    await tapper.stop()
