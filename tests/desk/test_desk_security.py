"""Security of the desk's APIs, pages and websocket (no browser needed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from agent_ui.app import create_app
from hotline.services import Services
from hotline.settings import Settings
from tests.desk.conftest import XSS_DESCRIPTION, XSS_TITLE, seed_kb
from tests.factories import PASSWORD, Org


@pytest.fixture
def client(settings: Settings, services: Services, org: Org) -> Iterator[TestClient]:
    with TestClient(create_app(settings, services)) as c:
        yield c


def login(client: TestClient, username: str) -> str:
    """Sign in with the cookie; returns the CSRF token."""
    r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


def file_case(client: TestClient, csrf: str, **case: object) -> dict[str, object]:
    body = {"type": "complaint", "title": "路灯不亮", "description": "小区路灯坏了",
            "citizen_phone": "13800138000", **case}
    r = client.post("/api/desk/cases", json={"case": body, "resolution": "dispatch"},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    return dict(r.json()["case"])


def test_department_staff_get_403_on_another_departments_case_api_and_page(
    client: TestClient,
) -> None:
    csrf = login(client, "agent01")
    water_case = file_case(client, csrf, category_code="C-UTIL-OUT")
    roads_case = file_case(client, csrf, category_code="C-CITY-ROAD")
    client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
    login(client, "dept-roads")
    assert client.get(f"/api/cases/{water_case['number']}").status_code == 403
    assert client.get(f"/cases/{water_case['number']}").status_code == 403
    assert client.get(f"/api/cases/{roads_case['number']}").status_code == 200
    assert client.get(f"/cases/{roads_case['number']}").status_code == 200
    listed = client.get("/api/desk/department-cases?department=D-WATER").json()
    assert [c["number"] for c in listed] == [roads_case["number"]]  # own department only
    page = client.get("/department").text
    assert roads_case["number"] in page and water_case["number"] not in page
    # Department staff neither file cases nor read citizens' histories.
    r = client.post("/api/desk/cases", json={"case": {}, "resolution": "dispatch"})
    assert r.status_code in (403, 422)
    assert client.get("/api/citizens/13800138000/history").status_code == 403
    assert client.get("/citizens/1").status_code == 403


def test_agent_cannot_reach_admin_or_editor_endpoints(client: TestClient) -> None:
    csrf = login(client, "agent01")
    h = {"X-CSRF-Token": csrf}
    assert client.get("/api/kb/articles").status_code == 403
    assert client.post("/api/kb/articles", json={"title": "x", "answer": "y"},
                       headers=h).status_code == 403
    assert client.post("/api/kb/articles/kb-1/versions/1/publish", headers=h).status_code == 403
    assert client.post("/api/kb/articles/kb-1/retire", headers=h).status_code == 403
    assert client.get("/kb").status_code == 403


def test_kb_editor_cannot_file_cases(client: TestClient) -> None:
    csrf = login(client, "kbeditor")
    r = client.post("/api/desk/cases", headers={"X-CSRF-Token": csrf}, json={
        "case": {"type": "complaint", "title": "t", "description": "d"}, "resolution": "dispatch",
    })
    assert r.status_code == 403


def test_missing_or_wrong_csrf_token_is_refused(client: TestClient, org: Org) -> None:
    csrf = login(client, "agent01")
    body = {"case": {"type": "complaint", "title": "t", "description": "d",
                     "category_code": "C-CITY-ROAD"}, "resolution": "dispatch"}
    assert client.post("/api/desk/cases", json=body).status_code == 403
    assert client.post("/api/desk/cases", json=body,
                       headers={"X-CSRF-Token": "forged"}).status_code == 403
    merge = {"keep_id": org.citizen.id, "merge_id": org.citizen.id}
    assert client.post("/api/citizens/merge", json=merge).status_code == 403
    assert client.post("/api/desk/cases", json=body,
                       headers={"X-CSRF-Token": csrf}).status_code == 201


def test_login_is_rate_limited(client: TestClient, settings: Settings) -> None:
    for _ in range(settings.security.login_max_failures):
        r = client.post("/api/auth/login", json={"username": "agent01", "password": "nope"})
        assert r.status_code == 401
    r = client.post("/api/auth/login", json={"username": "agent01", "password": PASSWORD})
    assert r.status_code == 429  # locked out, even with the right password


def test_pages_escape_user_text(client: TestClient, org: Org) -> None:
    csrf = login(client, "agent01")
    case = file_case(client, csrf, title=XSS_TITLE, description=XSS_DESCRIPTION,
                     category_code="C-CITY-ROAD")
    for url in (f"/cases/{case['number']}", f"/citizens/{org.citizen.id}",
                "/department?code=D-ROADS"):
        html = client.get(url).text
        assert "<script>alert" not in html and "<img src=x" not in html, url
        assert "&lt;script&gt;alert(" in html and "&lt;img src=x onerror=" in html, url


def test_login_next_parameter_only_redirects_locally(client: TestClient) -> None:
    html = client.get("/login?next=//evil.example/x").text
    assert 'data-next="/desk"' in html


def test_desk_socket_needs_a_session_and_this_sites_origin(client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect), client.websocket_connect(
        "/ws/desk", headers={"origin": "http://testserver"}
    ) as ws:
        ws.receive_json()
    login(client, "agent01")
    with pytest.raises(WebSocketDisconnect), client.websocket_connect(
        "/ws/desk", headers={"origin": "http://evil.example"}
    ) as ws:
        ws.receive_json()
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/ws/desk") as ws:
        ws.receive_json()  # no Origin at all
    with client.websocket_connect("/ws/desk", headers={"origin": "http://testserver"}) as ws:
        hello = ws.receive_json()
        assert (hello["type"], hello["v"], hello["extension"]) == ("hello", 1, "8001")
        ws.send_text("not json")
        assert ws.receive_json()["type"] == "error"
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"


def test_merge_two_citizen_records(client: TestClient, org: Org, services: Services) -> None:
    csrf = login(client, "agent01")
    h = {"X-CSRF-Token": csrf}
    dup = client.post("/api/citizens", json={"name": "王秀英", "phones": ["0791-8888 1234"],
                                             "tags": ["repeat_caller"]}, headers=h).json()
    case = file_case(client, csrf, citizen_phone="079188881234", category_code="C-CITY-ROAD")
    assert case["citizen_id"] == dup["id"]
    r = client.post("/api/citizens/merge", json={"keep_id": org.citizen.id,
                                                 "merge_id": dup["id"]}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["phones"] == 2
    history = client.get("/api/citizens/079188881234/history").json()
    assert history["citizen"]["id"] == org.citizen.id
    assert set(history["citizen"]["tags"]) == {"elderly", "repeat_caller"}
    assert case["number"] in [c["number"] for c in history["cases"]]
    page = client.get(f"/citizens/{org.citizen.id}").text
    assert case["number"] in page
    assert client.get(f"/citizens/{dup['id']}", follow_redirects=False).status_code == 303
    again = client.post("/api/citizens/merge", json={"keep_id": org.citizen.id,
                                                     "merge_id": dup["id"]}, headers=h)
    assert again.status_code == 422
    itself = client.post("/api/citizens/merge", json={"keep_id": org.citizen.id,
                                                      "merge_id": org.citizen.id}, headers=h)
    assert itself.status_code == 422


def test_answered_directly_only_for_consultations(client: TestClient) -> None:
    csrf = login(client, "agent01")
    r = client.post("/api/desk/cases", headers={"X-CSRF-Token": csrf}, json={
        "case": {"type": "complaint", "title": "t", "description": "d"},
        "resolution": "answered_directly",
    })
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "resolution"


def test_kb_versions_draft_publish_retire(client: TestClient, services: Services) -> None:
    with services.session_factory() as s:
        seed_kb(s)
        s.commit()
    csrf = login(client, "kbeditor")
    h = {"X-CSRF-Token": csrf}
    r = client.post("/api/kb/articles", headers=h, json={
        "external_id": "kb-water-1", "title": "停水了怎么办", "answer": "新的答复：拨打96345。"})
    assert r.status_code == 201 and r.json()["version"]["version_no"] == 2
    # The draft is not live yet.
    assert "96345" not in client.get("/api/kb/articles/kb-water-1").json()["answer"]
    r = client.post("/api/kb/articles/kb-water-1/versions/2/publish", headers=h)
    art = r.json()
    assert art["published_version_no"] == 2 and "96345" in art["answer"]
    assert [(v["version_no"], v["status"]) for v in art["versions"]] == [
        (2, "published"), (1, "retired")]
    hits = client.get("/api/kb/search?q=96345").json()
    assert hits and hits[0]["id"] == "kb-water-1"
    assert client.post("/api/kb/articles/kb-water-1/retire", headers=h).status_code == 200
    assert client.get("/api/kb/search?q=96345").json() == []
    assert client.post("/api/kb/articles/kb-water-1/retire", headers=h).status_code == 422
    assert client.post("/api/kb/articles/kb-water-1/versions/9/publish",
                       headers=h).status_code == 404
    bad = client.post("/api/kb/articles", headers=h, json={"external_id": "../x", "title": "t",
                                                          "answer": "a"})
    assert bad.status_code == 422


def test_category_search(client: TestClient) -> None:
    login(client, "agent01")
    found = client.get("/api/categories?q=停水").json()
    assert [(c["code"], c["department_code"]) for c in found] == [("C-UTIL-OUT", "D-WATER")]
    by_parent = client.get("/api/categories?q=水电").json()
    assert {c["code"] for c in by_parent} == {"C-UTIL-LEAK", "C-UTIL-OUT"}
    assert client.get("/api/categories?q=%25").status_code == 200


def test_pages_send_a_strict_content_security_policy(client: TestClient) -> None:
    login(client, "agent01")
    for url in ("/login", "/desk"):
        headers = client.get(url).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
