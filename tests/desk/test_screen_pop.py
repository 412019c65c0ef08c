"""The screen pop's content and the desk socket's live messages (no browser)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from agent_ui.app import create_app
from agent_ui.screen_pop import CallInfo, build_pop
from hotline.events import make_event
from hotline.services import Services
from hotline.settings import Settings
from tests.desk.conftest import seed_history
from tests.factories import PASSWORD, Org


def test_call_info_from_queue_brain_and_ami_style_events() -> None:
    brain = make_event("agent_connected", queue="complaint", uniqueid="1.2", agent="8001",
                       extension="8001", interface="PJSIP/8001", linkedid="1.1",
                       caller="13800138000", contact_id=7)
    info = CallInfo.from_event(brain)
    assert info is not None
    assert (info.extension, info.caller, info.contact_id, info.state) == (
        "8001", "13800138000", 7, "connected")
    ami_ish = CallInfo.from_event({"type": "agent_called", "interface": "PJSIP/8002",
                                   "calleridnum": "010-12345678"})
    assert ami_ish is not None and (ami_ish.extension, ami_ish.state) == ("8002", "ringing")
    assert CallInfo.from_event({"type": "agent_called", "caller": "1"}) is None


def test_pop_for_a_known_caller(services: Services, org: Org) -> None:
    with services.session_factory() as s:
        seeded = seed_history(s, org)
        pop = build_pop(s, services.kb_index, CallInfo(extension="8001", caller="13800138000",
                                                       uniqueid="1700000000.42"))
    assert pop["v"] == 1 and pop["type"] == "screen_pop"
    assert pop["call"]["contact_id"] == seeded["contact_id"]  # found by uniqueid
    assert pop["call"]["queue"] == "complaint"
    assert pop["citizen"]["name"] == "王秀英" and pop["citizen"]["tags"] == ["elderly"]
    assert [s["step"] for s in pop["ivr_path"]] == ["caller_lookup", "menu", "route"]
    assert {c["channel"] for c in pop["contacts"]} == {"phone", "wechat"}
    assert seeded["contact_id"] not in [c["id"] for c in pop["contacts"]]  # not the call itself
    [case] = pop["open_cases"]
    assert (case["number"], case["status_label"], case["category"]) == (
        seeded["open_case"], "已派单", "道路破损")
    assert case["handle_by"] and not case["overdue"]
    assert pop["suggestions"][0]["id"] == "kb-road-1"


def test_pop_for_an_unknown_caller_and_masked_numbers(services: Services, org: Org) -> None:
    with services.session_factory() as s:
        seed_history(s, org)
        pop = build_pop(s, services.kb_index, CallInfo(extension="8001", caller="13900001111",
                                                       queue="consultation"))
        masked = build_pop(s, services.kb_index, CallInfo(extension="8001",
                                                          caller="13800138000"),
                           show_numbers=False)
    assert pop["citizen"] is None and pop["open_cases"] == [] and pop["contacts"] == []
    assert pop["call"]["caller"] == "13900001111"
    assert "13800138000" not in str(masked)
    assert masked["call"]["caller"].count("*") >= 4


@pytest.fixture
def client(settings: Settings, services: Services, org: Org) -> Iterator[TestClient]:
    with TestClient(create_app(settings, services)) as c:
        yield c


def test_pop_transcript_and_suggestions_reach_only_that_agents_desk(
    client: TestClient, services: Services, org: Org
) -> None:
    with services.session_factory() as s:
        seeded = seed_history(s, org)
    client.post("/api/auth/login", json={"username": "agent01", "password": PASSWORD})
    origin = {"origin": "http://testserver"}
    with client.websocket_connect("/ws/desk", headers=origin) as ws:
        assert ws.receive_json()["type"] == "hello"

        def publish(type_: str, **payload: object) -> None:
            client.portal.call(services.bus.publish, make_event(type_, **payload))  # type: ignore[union-attr]

        publish("agent_called", extension="8099", caller="13800138000")  # someone else
        publish("agent_called", extension="8001", caller="13800138000",
                uniqueid="1700000000.42", queue="complaint")
        pop = ws.receive_json()
        assert pop["type"] == "screen_pop" and pop["call"]["extension"] == "8001"
        contact_id = seeded["contact_id"]
        publish("transcript_segment", contact_id=contact_id, speaker="caller",
                text="我家停水了", final=False)
        partial = ws.receive_json()
        assert (partial["type"], partial["final"]) == ("transcript", False)
        publish("transcript_segment", contact_id=contact_id, speaker="caller",
                text="我家停水两天了", final=True)
        assert ws.receive_json()["text"] == "我家停水两天了"
        suggestions = ws.receive_json()
        assert suggestions["type"] == "suggestions"
        assert suggestions["suggestions"][0]["id"] == "kb-water-1"
        publish("transcript_segment", contact_id=contact_id + 1, speaker="caller",
                text="别的通话", final=True)
        publish("agent_state_changed", agent="8001", state="paused", reason="break")
        state = ws.receive_json()  # the other call's transcript never arrived
        assert (state["type"], state["event"]["state"]) == ("agent_event", "paused")
        publish("kb_published", external_id="kb-water-1", title="停水了怎么办", version_no=2)
        update = ws.receive_json()
        assert (update["type"], update["action"], update["external_id"]) == (
            "kb_update", "published", "kb-water-1")
