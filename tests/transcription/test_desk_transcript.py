"""The desk socket carries the live transcript as the transcription service publishes it:
contact ids as strings (tap labels), speaker labels, partial/final, the rolling-transcript
suggestions, and the transcription status ("interrupted" for that call, "off" for all)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from agent_ui.app import create_app
from hotline.events import make_event
from hotline.services import Services
from hotline.settings import Settings
from tests.desk.conftest import seed_history
from tests.factories import PASSWORD, Org, make_org


@pytest.fixture
def org(session: object) -> Org:
    return make_org(session)  # type: ignore[arg-type]


@pytest.fixture
def client(settings: Settings, services: Services, org: Org) -> Iterator[TestClient]:
    with TestClient(create_app(settings, services)) as c:
        yield c


def test_service_events_reach_the_desk_showing_that_call(
        client: TestClient, services: Services, org: Org) -> None:
    with services.session_factory() as s:
        seeded = seed_history(s, org)
    client.post("/api/auth/login", json={"username": "agent01", "password": PASSWORD})
    with client.websocket_connect("/ws/desk", headers={"origin": "http://testserver"}) as ws:
        assert ws.receive_json()["type"] == "hello"

        def publish(type_: str, **payload: object) -> None:
            client.portal.call(services.bus.publish, make_event(type_, **payload))  # type: ignore[union-attr]

        publish("agent_connected", extension="8001", caller="13800138000",
                uniqueid="1700000000.42", queue="complaint")
        pop = ws.receive_json()
        contact_id = seeded["contact_id"]
        assert pop["call"]["contact_id"] == contact_id
        key = str(contact_id)  # as TapController labels taps
        publish("transcription_status", contact_id=key, state="running", reason="")
        status = ws.receive_json()
        assert (status["type"], status["state"], status["contact_id"]) == (
            "transcription_status", "running", contact_id)
        publish("transcript_segment", contact_id=key, speaker="agent", text="您好", final=False,
                start=0, end=300)
        partial = ws.receive_json()
        assert (partial["type"], partial["speaker"], partial["final"], partial["contact_id"]) == (
            "transcript", "agent", False, contact_id)
        publish("transcript_segment", contact_id=key, speaker="caller", text="我家停水两天了",
                final=True, start=500, end=2000)
        final = ws.receive_json()
        assert (final["speaker"], final["final"], final["start"]) == ("caller", True, 500)
        assert ws.receive_json()["suggestions"][0]["id"] == "kb-water-1"
        # Another call's status and a forged speaker never show as this call's.
        publish("transcription_status", contact_id=str(contact_id + 1), state="interrupted")
        publish("transcript_segment", contact_id=key, speaker="<b>x</b>", text="嗯", final=False)
        odd = ws.receive_json()
        assert odd["speaker"] is None
        publish("transcription_status", contact_id=key, state="interrupted",
                reason="caller tap lost mid-call")
        lost = ws.receive_json()
        assert (lost["state"], lost["reason"]) == ("interrupted", "caller tap lost mid-call")
        publish("transcription_status", contact_id=None, state="off", reason="no model")
        off = ws.receive_json()
        assert (off["state"], off["contact_id"]) == ("off", None)
