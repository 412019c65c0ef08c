"""The HTTP API: JSON errors with field-level messages, auth, roles, isolation, masking."""

import pytest
from fastapi.testclient import TestClient

from agent_ui.app import create_app
from cases.kb_import import import_kb_lines
from cases.models import Contact
from tests.factories import PASSWORD, make_org


@pytest.fixture
def org(session):
    return make_org(session)


@pytest.fixture
def client(settings, services, org):
    with TestClient(create_app(settings, services)) as c:
        yield c


def login(client, username):
    r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()


def bearer(client, username):
    return {"Authorization": f"Bearer {login(client, username)['token']}"}


def test_healthz_checks_the_database(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["checks"]["database"]["ok"] is True


def test_healthz_reports_database_down(settings):
    from hotline.settings import Settings
    broken = Settings(env="test", var_dir=settings.var_dir,
                      database_url="postgresql://nobody@127.0.0.1:1/none")
    with TestClient(create_app(broken)) as c:
        r = c.get("/healthz")
    assert r.status_code == 503
    assert r.json()["checks"]["database"]["ok"] is False


def test_openapi_docs_are_served(client):
    assert client.get("/docs").status_code == 200
    assert "/api/kb/search" in client.get("/openapi.json").json()["paths"]


def test_api_requires_sign_in(client):
    assert client.get("/api/kb/search", params={"q": "停水"}).status_code == 401


def test_kb_search_endpoint(client, session):
    import_kb_lines(session, ['{"id": "kb-1", "title": "停水查询", "question": "停水了怎么办",'
                              ' "answer": "拨打自来水公司热线查询。"}'])
    session.commit()
    r = client.get("/api/kb/search", params={"q": "喂你好家里没水了", "limit": 3},
                   headers=bearer(client, "agent01"))
    assert r.status_code == 200
    items = r.json()
    assert items[0]["id"] == "kb-1" and set(items[0]) >= {"title", "score", "snippet"}


@pytest.mark.parametrize("params", [{"q": ""}, {"q": "x" * 501}, {"q": "停水", "limit": 0},
                                    {"q": "停水", "limit": "many"}])
def test_kb_search_rejects_bad_parameters_with_field_names(client, params):
    r = client.get("/api/kb/search", params=params, headers=bearer(client, "agent01"))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] in ("q", "limit")


CASE = {"type": "complaint", "title": "道路塌陷", "description": "文昌路与解放路交叉口路面塌陷",
        "category_code": "C-CITY-ROAD", "citizen_phone": "13800138000"}


def test_file_case_and_read_it(client, org):
    h = bearer(client, "agent01")
    r = client.post("/api/cases", json=CASE, headers=h)
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["status"] == "filed" and case["department_id"] == org.roads.id
    assert client.get(f"/api/cases/{case['number']}", headers=h).json()["id"] == case["id"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"title": ""}, "title"),
        ({"description": "长" * 10001}, "description"),
        ({"citizen_phone": "12ab"}, "citizen_phone"),
        ({"category_code": "C-NOPE"}, "category_code"),
        ({"department_code": "D-NOPE"}, "department_code"),
        ({"type": "rumour"}, "type"),
    ],
)
def test_bad_case_input_is_a_422_naming_the_field(client, patch, field):
    r = client.post("/api/cases", json={**CASE, **patch}, headers=bearer(client, "agent01"))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["errors"][0]["field"] == field
    assert body["detail"].startswith(field)


def test_malformed_json_body(client):
    r = client.post("/api/cases", content=b"{not json",
                    headers={**bearer(client, "agent01"), "Content-Type": "application/json"})
    assert r.status_code == 422


def test_cookie_session_needs_csrf_token_for_writes(client):
    csrf = login(client, "agent01")["csrf_token"]  # the client now holds the session cookie
    assert client.get("/api/auth/me").status_code == 200
    assert client.post("/api/cases", json=CASE).status_code == 403
    assert client.post("/api/cases", json=CASE, headers={"X-CSRF-Token": "wrong"}
                       ).status_code == 403
    assert client.post("/api/cases", json=CASE, headers={"X-CSRF-Token": csrf}
                       ).status_code == 201


def test_session_cookie_is_httponly_and_samesite(client):
    r = client.post("/api/auth/login", json={"username": "agent01", "password": PASSWORD})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_logout_ends_the_session(client):
    h = bearer(client, "agent01")
    assert client.post("/api/auth/logout", headers=h).status_code == 204
    assert client.get("/api/auth/me", headers=h).status_code == 401


def test_lockout_after_repeated_failures(client, services):
    for _ in range(services.settings.security.login_max_failures):
        r = client.post("/api/auth/login", json={"username": "agent01", "password": "wrong!"})
        assert r.status_code == 401
    r = client.post("/api/auth/login", json={"username": "agent01", "password": PASSWORD})
    assert r.status_code == 429


def test_department_staff_see_only_their_department(client, org):
    number = client.post("/api/cases", json=CASE, headers=bearer(client, "agent01")).json()[
        "number"]
    assert client.get(f"/api/cases/{number}", headers=bearer(client, "dept-roads")
                      ).status_code == 200
    assert client.get(f"/api/cases/{number}", headers=bearer(client, "dept-water")
                      ).status_code == 403


def test_department_staff_cannot_file_cases_or_read_citizen_history(client):
    h = bearer(client, "dept-water")
    assert client.post("/api/cases", json=CASE, headers=h).status_code == 403
    assert client.get("/api/citizens/13800138000/history", headers=h).status_code == 403


def test_history_newest_first_with_ivr_path(client, session, org):
    import datetime as dt
    t0 = dt.datetime(2026, 11, 1, 2, 0, tzinfo=dt.UTC)
    for i, queue in enumerate(["consultation", "complaint"]):
        session.add(Contact(channel="phone", citizen_id=org.citizen.id,
                            from_address="13800138000", started_at=t0 + dt.timedelta(days=i),
                            queue=queue, ivr_path=[{"step": "menu", "digit": str(i + 1)}]))
    session.commit()
    h = bearer(client, "agent01")
    client.post("/api/cases", json=CASE, headers=h)
    r = client.get("/api/citizens/+86 138 0013 8000/history", headers=h)
    assert r.status_code == 200
    body = r.json()
    assert body["citizen"]["name"] == "王秀英"
    assert body["citizen"]["phones"] == ["13800138000"]
    assert [c["queue"] for c in body["contacts"]] == ["complaint", "consultation"]
    assert body["contacts"][0]["ivr_path"] == [{"step": "menu", "digit": "2"}]
    assert len(body["cases"]) == 1
    assert client.get("/api/citizens/abc/history", headers=h).status_code == 422


def test_roles_that_need_no_numbers_see_them_masked(org):
    from agent_ui.api_citizens import citizen_public
    assert citizen_public(org.citizen, org.water_staff).phones == ["138****8000"]
    assert citizen_public(org.citizen, org.kb_editor).phones == ["138****8000"]
    assert citizen_public(org.citizen, org.agent).phones == ["13800138000"]


def test_create_citizen_validates_phone_and_duplicates(client):
    h = bearer(client, "agent01")
    r = client.post("/api/citizens", json={"phones": ["555"]}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("phones")
    r = client.post("/api/citizens", json={"phones": ["13800138000"]}, headers=h)
    assert r.status_code == 422 and "already belongs" in r.json()["detail"]
