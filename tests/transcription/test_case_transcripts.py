"""A call's transcript goes with its case: attached when the case is filed from the contact
(or the contact is linked later), shown by the case API and page, and found by case search
(after traditional -> simplified folding). Department isolation holds. SQLite and
PostgreSQL (HOTLINE_TEST_DATABASE_URL)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agent_ui.app import create_app
from cases.models import Channel, Contact, TranscriptSegment
from tests.factories import PASSWORD, Org, make_org
from transcription.service import store_segment
from transcription.types import Segment

CASE = {"type": "complaint", "title": "路面问题", "description": "来电反映路面问题",
        "category_code": "C-CITY-ROAD", "citizen_phone": "13800138000"}


@pytest.fixture
def org(session: Any) -> Org:
    return make_org(session)


@pytest.fixture
def client(settings: Any, services: Any, org: Org) -> Any:
    with TestClient(create_app(settings, services)) as c:
        yield c


def bearer(client: Any, username: str) -> dict[str, str]:
    r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _call_with_transcript(services: Any, lines: list[tuple[str, str]]) -> int:
    """A phone contact and its final segments, stored the way the transcription service
    stores them (store_segment)."""
    with services.session_factory() as s:
        contact = Contact(channel=Channel.PHONE, from_address="13800138000")
        s.add(contact)
        s.commit()
        contact_id = contact.id
    for i, (speaker, text) in enumerate(lines):
        store_segment(services.session_factory, contact_id, Segment(
            contact_id=str(contact_id), speaker=speaker, text=text, final=True,  # type: ignore[arg-type]
            start_ms=i * 2000, end_ms=i * 2000 + 1500))
    return contact_id


def test_transcript_attached_on_filing_shown_and_searchable(client: Any, services: Any) -> None:
    contact_id = _call_with_transcript(services, [
        ("caller", "幸福小区门口的井盖丢了"),  # stored as simplified by the service
        ("agent", "请问具体在哪个位置"),
        ("caller", "在三号楼东侧"),
    ])
    agent = bearer(client, "agent01")
    r = client.post("/api/cases", json={**CASE, "contact_id": contact_id}, headers=agent)
    assert r.status_code == 201, r.text
    number = r.json()["number"]
    other = client.post("/api/cases", json={**CASE, "title": "另一件事"}, headers=agent)
    assert other.status_code == 201

    with services.session_factory() as s:
        segs = s.scalars(select(TranscriptSegment).where(
            TranscriptSegment.contact_id == contact_id)).all()
        assert {seg.case_id for seg in segs} == {r.json()["id"]}

    detail = client.get(f"/api/cases/{number}", headers=agent).json()
    assert [(t["speaker"], t["text"]) for t in detail["transcript"]] == [
        ("caller", "幸福小区门口的井盖丢了"), ("agent", "请问具体在哪个位置"),
        ("caller", "在三号楼东侧")]
    assert client.get(f"/api/cases/{other.json()['number']}",
                      headers=agent).json()["transcript"] == []

    # Words only said on the call find the case; traditional characters are folded.
    for q in ("井盖", "井蓋", "三号楼 井盖"):
        hits = client.get("/api/cases", params={"q": q}, headers=agent).json()
        assert [h["number"] for h in hits] == [number], q
        assert "transcript" in hits[0]["matched_in"]
    assert client.get("/api/cases", params={"q": "井盖 不存在的词"},
                      headers=agent).json() == []
    # Title and description search still work: both cases say 路面.
    both = client.get("/api/cases", params={"q": "路面"}, headers=agent).json()
    assert {h["number"] for h in both} == {number, other.json()["number"]}
    # LIKE wildcards are literal.
    assert client.get("/api/cases", params={"q": "%"}, headers=agent).json() == []

    # The case page shows the transcript.
    page = client.get(f"/cases/{number}", headers=agent)
    assert page.status_code == 200
    assert "在三号楼东侧" in page.text and 'id="case-view-transcript"' in page.text


def test_segments_after_filing_and_contacts_linked_later_belong_to_the_case(
        client: Any, services: Any) -> None:
    agent = bearer(client, "agent01")
    contact_id = _call_with_transcript(services, [("caller", "第一句")])
    number = client.post("/api/cases", json={**CASE, "contact_id": contact_id},
                         headers=agent).json()["number"]
    # Filed mid-call: the rest of the call is stored with the case id.
    store_segment(services.session_factory, contact_id, Segment(
        contact_id=str(contact_id), speaker="caller", text="第二句", final=True,
        start_ms=9000, end_ms=9500))
    # A second call about the same case, linked afterwards.
    later = _call_with_transcript(services, [("caller", "再次来电催办")])
    with services.session_factory() as s:
        case_id = client.get(f"/api/cases/{number}", headers=agent).json()["id"]
        row = s.get(Contact, later)
        assert row is not None
        row.case_id = case_id
        s.commit()
    texts = [t["text"] for t in client.get(f"/api/cases/{number}",
                                           headers=agent).json()["transcript"]]
    assert texts == ["第一句", "第二句", "再次来电催办"]
    assert [h["number"] for h in client.get("/api/cases", params={"q": "催办"},
                                            headers=agent).json()] == [number]


def test_department_staff_search_and_read_only_their_departments_transcripts(
        client: Any, services: Any) -> None:
    agent = bearer(client, "agent01")
    contact_id = _call_with_transcript(services, [("caller", "自来水管道破裂漏水")])
    number = client.post("/api/cases", json={**CASE, "contact_id": contact_id},
                         headers=agent).json()["number"]  # C-CITY-ROAD -> roads department
    roads, water = bearer(client, "dept-roads"), bearer(client, "dept-water")
    assert [h["number"] for h in client.get("/api/cases", params={"q": "漏水"},
                                            headers=roads).json()] == [number]
    assert client.get("/api/cases", params={"q": "漏水"}, headers=water).json() == []
    assert client.get(f"/api/cases/{number}", headers=water).status_code == 403
    assert client.get(f"/cases/{number}", headers=water).status_code in (403, 200)
    assert "自来水管道破裂漏水" not in client.get(f"/cases/{number}", headers=water).text
    assert client.get(f"/api/cases/{number}", headers=bearer(client, "kbeditor")
                      ).status_code == 403
    assert client.get("/api/cases", params={"q": "漏水"},
                      headers=bearer(client, "kbeditor")).status_code == 403
    # Bad input: a clear 422, nothing else happens.
    r = client.get("/api/cases", params={"q": ""}, headers=agent)
    assert r.status_code == 422
    assert client.get("/api/cases", params={"q": "x" * 201}, headers=agent).status_code == 422
