"""hotline.ami.CallOriginator's logic with a fake AMI client (the real-call tests cover the
integration): what it sends, input refused before anything is sent, and how AMI events map
to one outcome per call."""

from __future__ import annotations

import asyncio

import pytest

from hotline.ami import AmiError, CallOriginator, CallOutcome


class FakeClient:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict] = []
        self.listeners: list = []
        self.fail = fail

    def add_listener(self, handler) -> None:
        self.listeners.append(handler)

    def remove_listener(self, handler) -> None:
        self.listeners.remove(handler)

    async def action(self, action: dict) -> dict:
        if self.fail:
            raise AmiError("not connected to Asterisk (AMI)")
        self.sent.append(action)
        return {"Response": "Success"}

    def emit(self, **message: str) -> None:
        for handler in self.listeners:
            handler(message)


def make(fail: bool = False) -> tuple[FakeClient, CallOriginator, list[CallOutcome]]:
    client, outcomes = FakeClient(fail), []
    originator = CallOriginator(client, trunk_endpoint="citizens",
                                callout_context="hotline-callout", on_outcome=outcomes.append)
    return client, originator, outcomes


def test_agent_first_then_citizen_and_outcome_from_the_user_event():
    client, originator, outcomes = make()
    ref = asyncio.run(originator.originate("8001", "13800138000", {"HOTLINE_CASE": "x-1"}))
    sent = client.sent[0]
    assert sent["Channel"] == "PJSIP/8001" and sent["Context"] == "hotline-callout"
    assert sent["Exten"] == "13800138000" and sent["Async"] == "true"
    assert sent["ActionID"] == ref == sent["ChannelId"]
    assert sent["Variable"] == ["HOTLINE_CASE=x-1", f"HOTLINE_CALL_REF={ref}"]
    client.emit(Event="OriginateResponse", ActionID=ref, Response="Success", Reason="4")
    assert outcomes == []  # the agent answered; the citizen's side is still ringing
    client.emit(Event="UserEvent", UserEvent="HotlineCallout", Reference=ref,
                DialStatus="ANSWER")
    client.emit(Event="UserEvent", UserEvent="HotlineCallout", Reference=ref,
                DialStatus="ANSWER")  # reported once only
    assert [(o.answered, o.status) for o in outcomes] == [(True, "ANSWER")]
    assert outcomes[0].variables["HOTLINE_CASE"] == "x-1"


def test_agent_not_answering_and_citizen_busy():
    client, originator, outcomes = make()
    ref = asyncio.run(originator.originate("8001", "13800138000", {}))
    client.emit(Event="OriginateResponse", ActionID=ref, Response="Failure", Reason="3")
    ivr = asyncio.run(originator.call_citizen("+8613800138000", "hotline-callback-ivr", {}))
    assert client.sent[1]["Channel"] == "PJSIP/8613800138000@citizens"
    client.emit(Event="OriginateResponse", ActionID=ivr, Response="Failure", Reason="5")
    client.emit(Event="OriginateResponse", ActionID="someone-else", Response="Failure")
    assert [(o.reference, o.answered, o.status) for o in outcomes] == [
        (ref, False, "AGENT_NOANSWER"), (ivr, False, "BUSY")]


@pytest.mark.parametrize(("ext", "number", "variables"), [
    ("8001;x", "13800138000", {}),
    ("8001", "138\r\nAction: Logoff", {}),
    ("8001", "13800138000", {"HOTLINE_CASE": "a,b"}),
    ("8001", "13800138000", {"lower": "x"}),
])
def test_unsafe_input_is_refused_before_anything_is_sent(ext, number, variables):
    client, originator, _ = make()
    with pytest.raises(ValueError):
        asyncio.run(originator.originate(ext, number, variables))
    assert client.sent == []


def test_ami_down_raises_and_forgets_the_call():
    client, originator, _ = make(fail=True)
    with pytest.raises(AmiError, match="not connected"):
        asyncio.run(originator.originate("8001", "13800138000", {}))
    assert originator._pending == {}
    originator.close()
    assert client.listeners == []
