"""TapController against a fake AMI: what it originates, and when it says "interrupted"."""

from __future__ import annotations

import asyncio
from typing import Any

from hotline.events import InProcessBus
from hotline.settings import Settings, TranscriptionSettings
from transcription import taps as taps_mod
from transcription.taps import TapController


class FakeAmi:
    def __init__(self) -> None:
        self.actions: list[tuple[str, dict[str, str]]] = []
        self.alive: set[str] = set()
        self.on_event: Any = None

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def action(self, name: str, **fields: str) -> dict[str, str]:
        self.actions.append((name, fields))
        if name == "Getvar":
            ok = fields["Channel"] in self.alive
            return {"Response": "Success" if ok else "Error"}
        return {"Response": "Success"}


async def _listening(self: TapController) -> bool:
    return True


async def _controller(monkeypatch: Any) -> tuple[TapController, FakeAmi, list[dict[str, Any]]]:
    monkeypatch.setattr(taps_mod, "INTERRUPT_GRACE_S", 0.01)
    # The controller taps only when the transcription service listens.
    monkeypatch.setattr(TapController, "_service_listening", _listening)
    settings = Settings(env="test", transcription=TranscriptionSettings(audiosocket_port=9099))
    bus = InProcessBus()
    events: list[dict[str, Any]] = []
    bus.subscribe("transcription_tap", events.append)
    bus.subscribe("transcription_status", events.append)
    ami = FakeAmi()
    ctl = TapController(settings, bus, ami=ami)  # type: ignore[arg-type]
    await ctl.start()
    return ctl, ami, events


async def test_two_taps_announced_then_originated(monkeypatch: Any) -> None:
    ctl, ami, events = await _controller(monkeypatch)
    ids = await ctl.start_taps(17, "PJSIP/citizens-0001", "PJSIP/8001-0002")
    assert [(e["speaker"], e["contact_id"]) for e in events] == [("caller", "17"),
                                                                 ("agent", "17")]
    originates = [f for name, f in ami.actions if name == "Originate"]
    assert [f["Channel"] for f in originates] == [
        f"AudioSocket/127.0.0.1:9099/{tap}" for tap in ids]
    assert [f["Variable"] for f in originates] == ["TAP=PJSIP/citizens-0001",
                                                   "TAP=PJSIP/8001-0002"]
    assert all(f["Context"] == "tap" and f["ChannelId"] in ids for f in originates)


async def test_tap_lost_while_the_party_is_on_the_call_is_interrupted(monkeypatch: Any):
    ctl, ami, events = await _controller(monkeypatch)
    caller_tap, _ = await ctl.start_taps("c1", "PJSIP/citizens-1", "PJSIP/8001-1")
    ami.alive = {"PJSIP/citizens-1", "PJSIP/8001-1"}
    ctl._on_event({"Event": "Hangup", "Uniqueid": caller_tap, "Channel": "AudioSocket/x"})
    await asyncio.sleep(0.1)
    statuses = [e for e in events if e["type"] == "transcription_status"]
    assert [(e["contact_id"], e["state"]) for e in statuses] == [("c1", "interrupted")]


async def test_tap_ending_with_its_party_is_normal(monkeypatch: Any) -> None:
    ctl, ami, events = await _controller(monkeypatch)
    caller_tap, agent_tap = await ctl.start_taps("c2", "PJSIP/citizens-2", "PJSIP/8001-2")
    ctl._on_event({"Event": "Newchannel", "Uniqueid": caller_tap,
                   "Channel": "AudioSocket/127.0.0.1:9099-00000001"})
    ctl._on_event({"Event": "Hangup", "Uniqueid": "x", "Channel": "PJSIP/8001-2"})
    ctl._on_event({"Event": "Hangup", "Uniqueid": agent_tap, "Channel": "AudioSocket/y"})
    await asyncio.sleep(0.1)
    await ctl.stop_taps("c2")
    assert not [e for e in events if e["type"] == "transcription_status"]
    # stop_taps hangs up the tap still running (the caller's), by its channel name.
    assert [f["Channel"] for name, f in ami.actions if name == "Hangup"] == [
        "AudioSocket/127.0.0.1:9099-00000001"]
