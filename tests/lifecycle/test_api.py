"""The lifecycle, department-portal and report APIs and pages over HTTP: roles, department
isolation (403), masked numbers, clear 409s, no stored XSS, CSV export."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agent_ui.app import create_app
from cases.models import Case, Contact
from cases.schemas import CaseCreate
from cases.service import Actor, file_case
from tests.factories import PASSWORD, make_org

XSS_TITLE = '<script>alert("t")</script>井盖'
XSS_DESC = '路口<img src=x onerror="alert(1)">井盖丢失</textarea><script>alert(2)</script>'


@pytest.fixture
def org(session):
    return make_org(session)


@pytest.fixture
def client(settings, services, org):
    app = create_app(settings, services)
    with TestClient(app) as c:
        c.app_ref = app
        yield c


def bearer(client, username):
    r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def new_case(services, org, **kw):
    data = {"type": "complaint", "title": XSS_TITLE, "description": XSS_DESC,
            "category_code": "C-CITY-ROAD", "citizen_phone": "13800138000",
            "location_text": "文昌路12号", **kw}
    with services.transaction() as s:
        return file_case(s, CaseCreate(**data), Actor.of(org.agent),
                         tz=services.settings.tz).number


def test_dispatch_sign_reply_callback_over_http(client, services, org):
    agent, roads = bearer(client, "agent01"), bearer(client, "dept-roads")
    number = new_case(services, org)
    r = client.post(f"/api/cases/{number}/dispatch", headers=agent,
                    json={"department_code": "D-ROADS", "comment": "转住建局"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "dispatched" and r.json()["handle_by"]
    page = client.get("/api/department/cases", headers=roads, params={"queue": "to_sign"})
    assert page.status_code == 200
    assert [c["number"] for c in page.json()["cases"]] == [number]
    assert page.json()["counts"]["to_sign"] == 1
    version = page.json()["cases"][0]["version"]
    r = client.post(f"/api/department/cases/{number}/sign", headers=roads,
                    json={"version": version})
    assert r.status_code == 200, r.text
    # The same (now stale) version again: 409, not a second sign.
    r = client.post(f"/api/department/cases/{number}/sign", headers=roads,
                    json={"version": version})
    assert r.status_code == 409
    r = client.post(f"/api/department/cases/{number}/sign", headers=roads, json={})
    assert r.status_code == 409 and "not allowed" in r.json()["detail"]
    r = client.post(f"/api/department/cases/{number}/reply", headers=roads,
                    json={"result": "已修复", "attachments": [{"name": "a.jpg", "size": 10}]})
    assert r.status_code == 200
    tasks = client.get("/api/callback-tasks", headers=agent).json()
    assert tasks[0]["case_number"] == number and tasks[0]["citizen_phone"] == "13800138000"
    r = client.post(f"/api/cases/{number}/callback", headers=agent,
                    json={"reached": True, "rating": 3, "note": "不满意"})
    assert r.json()["status"] == "under_review"
    sup = bearer(client, "banzhang")
    assert [c["number"] for c in client.get("/api/supervision/review", headers=sup).json()] \
        == [number]
    assert client.post(f"/api/cases/{number}/review", headers=agent,
                       json={"decision": "reopen", "reason": "x"}).status_code == 403
    r = client.post(f"/api/cases/{number}/review", headers=sup,
                    json={"decision": "reopen", "reason": "未实际修复"})
    assert r.json()["status"] == "reopened"
    events = client.get(f"/api/cases/{number}/events", headers=roads).json()
    assert [e["action"] for e in events] == [
        "file", "dispatch", "sign", "reply", "rate_dissatisfied", "reopen"]
    assert events[3]["data"]["attachments"] == [{"name": "a.jpg", "size": 10}]


def test_department_staff_see_only_their_department_with_masked_numbers(client, services,
                                                                         org):
    agent, roads, water = (bearer(client, u) for u in ("agent01", "dept-roads", "dept-water"))
    number = new_case(services, org)
    client.post(f"/api/cases/{number}/dispatch", headers=agent,
                json={"department_code": "D-ROADS"})
    assert client.get(f"/api/department/cases/{number}", headers=water).status_code == 403
    assert client.post(f"/api/department/cases/{number}/sign", headers=water,
                       json={}).status_code == 403
    assert client.get("/api/department/cases", headers=water,
                      params={"department_code": "D-ROADS"}).status_code == 403
    assert client.get(f"/api/cases/{number}/events", headers=water).status_code == 403
    assert client.get("/api/department/cases", headers=water).json()["cases"] == []
    detail = client.get(f"/api/department/cases/{number}", headers=roads).json()
    assert detail["citizen_phone"] != "13800138000" and "*" in detail["citizen_phone"]
    assert detail["description"] == XSS_DESC  # JSON carries the text as it was given
    # Hotline roles may look at any department by code; kb editors may not.
    assert client.get("/api/department/cases", headers=agent,
                      params={"department_code": "D-ROADS", "queue": "to_sign"}
                      ).json()["counts"]["to_sign"] == 1
    assert client.get("/api/department/cases",
                      headers=bearer(client, "kbeditor")).status_code == 403
    # Department staff cannot dispatch, coordinate or approve.
    assert client.post(f"/api/cases/{number}/dispatch", headers=roads,
                       json={"department_code": "D-ROADS"}).status_code == 403


def test_return_needs_a_reason_and_first_signer_stays_responsible(client, services, org):
    agent, water = bearer(client, "agent01"), bearer(client, "dept-water")
    number = new_case(services, org)
    client.post(f"/api/cases/{number}/dispatch", headers=agent,
                json={"department_code": "D-WATER"})
    r = client.post(f"/api/department/cases/{number}/return", headers=water,
                    json={"reason": ""})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"
    r = client.post(f"/api/department/cases/{number}/return", headers=water,
                    json={"reason": "道路属住建局", "basis": "三定方案",
                          "suggested_department_code": "D-ROADS"})
    assert r.status_code == 200 and r.json()["return_count"] == 1
    client.post(f"/api/cases/{number}/dispatch", headers=agent,
                json={"department_code": "D-ROADS"})
    roads = bearer(client, "dept-roads")
    client.post(f"/api/department/cases/{number}/sign", headers=roads, json={})
    r = client.post(f"/api/department/cases/{number}/return", headers=roads,
                    json={"reason": "不归我们"})
    assert r.status_code == 409 and "首接负责" in r.json()["detail"]


def test_extension_request_and_approval(client, services, org):
    agent, roads, sup = (bearer(client, u) for u in ("agent01", "dept-roads", "banzhang"))
    number = new_case(services, org)
    client.post(f"/api/cases/{number}/dispatch", headers=agent,
                json={"department_code": "D-ROADS"})
    client.post(f"/api/department/cases/{number}/sign", headers=roads, json={})
    before = client.get(f"/api/department/cases/{number}", headers=roads).json()["handle_by"]
    r = client.post(f"/api/department/cases/{number}/extension", headers=roads,
                    json={"days": 3, "reason": "需协调管线单位"})
    assert r.json()["status"] == "extension_requested"
    r = client.post(f"/api/cases/{number}/extension-decision", headers=sup,
                    json={"decision": "approve"})
    assert r.status_code == 200 and r.json()["handle_by"] > before


def test_disputed_cases_and_coordination(client, services, org):
    agent, sup = bearer(client, "agent01"), bearer(client, "banzhang")
    number = new_case(services, org)
    for code, user in (("D-WATER", "dept-water"), ("D-ROADS", "dept-roads")):
        client.post(f"/api/cases/{number}/dispatch", headers=agent,
                    json={"department_code": code})
        client.post(f"/api/department/cases/{number}/return", headers=bearer(client, user),
                    json={"reason": "非本单位职责"})
    assert [c["number"] for c in client.get("/api/supervision/disputed", headers=sup).json()
            ] == [number]
    r = client.post(f"/api/cases/{number}/coordinate", headers=sup,
                    json={"department_code": "D-ROADS", "reason": "协调会议定由住建局办理"})
    assert r.status_code == 200 and r.json()["responsibility_fixed"] is True


def test_duplicates_check_and_merge_keeps_both_trails(client, services, org, session):
    agent = bearer(client, "agent01")
    first = new_case(services, org, title="文昌路井盖丢失", description="文昌路12号门口井盖丢失")
    second = new_case(services, org, title="井盖没了", description="文昌路12号门口井盖丢失很危险",
                      citizen_phone="13900139000")
    r = client.post("/api/duplicates/check", headers=agent,
                    json={"description": "文昌路12号井盖丢失", "location_text": "文昌路12号"})
    assert {d["number"] for d in r.json()} == {first, second}
    with services.transaction() as s:
        case2 = s.scalar(select(Case).where(Case.number == second))
        s.add(Contact(channel="phone", case_id=case2.id, from_address="13900139000"))
    dups = client.get(f"/api/cases/{second}/duplicates", headers=agent).json()
    assert dups[0]["number"] == first and "nearby" in dups[0]["reasons"]
    r = client.post(f"/api/cases/{second}/merge", headers=agent, json={"into": first})
    assert r.status_code == 200 and r.json()["status"] == "merged"
    trail1 = [e["action"] for e in client.get(f"/api/cases/{first}/events", headers=agent).json()]
    trail2 = [e["action"] for e in client.get(f"/api/cases/{second}/events",
                                              headers=agent).json()]
    assert trail1 == ["file", "merge_in"] and trail2 == ["file", "merge"]
    head_id = session.scalar(select(Case.id).where(Case.number == first))
    assert session.scalar(select(Contact.case_id).where(Contact.from_address == "13900139000")
                          ) == head_id
    assert client.post(f"/api/cases/{first}/merge", headers=agent,
                       json={"into": second}).status_code == 422


def test_portal_page_escapes_citizens_text(client, services, org):
    agent = bearer(client, "agent01")
    number = new_case(services, org)
    client.post(f"/api/cases/{number}/dispatch", headers=agent,
                json={"department_code": "D-ROADS"})
    bearer(client, "dept-roads")  # the login sets the session cookie for pages
    page = client.get("/portal/department")
    assert page.status_code == 200 and "待签收" in page.text
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    detail = client.get(f"/portal/department/cases/{number}")
    assert detail.status_code == 200
    assert "<img src=x" not in detail.text and "&lt;img src=x onerror=" in detail.text
    assert "</textarea><script>" not in detail.text
    assert "138****8000" in detail.text or "13800138000" not in detail.text
    english = client.get("/portal/department?lang=en")
    assert "To sign" in english.text
    assert "To sign" in client.get("/portal/department").text  # remembered in a cookie
    bearer(client, "dept-water")
    assert client.get(f"/portal/department/cases/{number}").status_code == 403


def test_monthly_report_json_csv_and_page(client, services, org):
    agent, sup = bearer(client, "agent01"), bearer(client, "banzhang")
    number = new_case(services, org)
    client.post(f"/api/cases/{number}/dispatch", headers=agent,
                json={"department_code": "D-ROADS"})
    r = client.get("/api/reports/monthly", headers=sup)
    assert r.status_code == 200
    body = r.json()
    assert body["city"]["filed"] == 1 and body["city"]["dispatched"] == 1
    assert body["departments"][0]["department"] == "市住房和城乡建设局"
    csv = client.get("/api/reports/monthly.csv", headers=sup)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "市住房和城乡建设局" in csv.text and csv.text.startswith("\ufeffrank,")
    assert client.get("/api/reports/monthly", headers=sup,
                      params={"month": "2026-13"}).status_code == 422
    assert client.get("/api/reports/monthly", headers=bearer(client, "kbeditor")
                      ).status_code == 403
    bearer(client, "banzhang")  # the cookie of the last sign-in is the page's session
    page = client.get("/reports/monthly")
    assert page.status_code == 200 and "chart-4.6.1" in page.text
    assert client.get("/static/vendor/chart-4.6.1.umd.min.js").status_code == 200


def test_calendar_and_policy_administration(client, services, org):
    sup, roads = bearer(client, "banzhang"), bearer(client, "dept-roads")
    r = client.get("/api/calendar", headers=roads, params={"year": 2027})
    assert r.json()["covered"] is False
    r = client.post("/api/calendar/import", headers={**sup, "Content-Type": "text/plain"},
                    content="date,is_working,note\n2027-01-01,0,元旦\n2027-02-20,1,调休\n")
    assert r.status_code == 200 and r.json() == {"imported": 2}
    assert client.get("/api/calendar", headers=roads, params={"year": 2027}).json()["covered"]
    assert client.post("/api/calendar/import", headers={**roads, "Content-Type": "text/plain"},
                       content="date,is_working\n2027-01-02,0\n").status_code == 403
    r = client.post("/api/calendar/import", headers={**sup, "Content-Type": "text/plain"},
                    content="date,is_working\nnot-a-date,0\n")
    assert r.status_code == 422 and "row 1" in r.json()["detail"]
    assert client.put("/api/calendar/2026-12-31", headers=sup,
                      json={"is_working": False, "note": "test"}).status_code == 204
    r = client.post("/api/policies", headers=sup,
                    json={"category_code": "C-CITY-ROAD", "handle_limit_working_days": 2})
    assert r.status_code == 201
    assert client.post("/api/policies", headers=sup,
                       json={"category_code": "C-CITY-ROAD", "handle_limit_working_days": 3}
                       ).status_code == 422
    assert client.get("/api/policies", headers=roads).json()[0]["handle_limit_working_days"] == 2


def replied_case(services, org):
    """A case the department has replied to: its callback task is open."""
    from cases import lifecycle as lc

    number = new_case(services, org)
    with services.transaction() as s:
        case = lc.load_case(s, number)
        lc.dispatch(s, case, org.roads, Actor.of(org.agent))
        lc.sign(s, case, Actor.of(org.roads_staff))
        lc.reply(s, case, Actor.of(org.roads_staff), "已修复")
    return number


def test_callback_call_uses_the_originator(client, services, org):
    from cases.models import CaseCallback, CaseEvent

    agent = bearer(client, "agent01")
    filed = new_case(services, org)
    number = replied_case(services, org)
    # pbx.ami_enabled with no Asterisk listening: the real originator is registered but AMI
    # is down. A clear 503, and the callback task is untouched.
    from hotline.ami import CallOriginator
    assert isinstance(client.app_ref.state.call_originator, CallOriginator)
    r = client.post(f"/api/cases/{number}/callback/call", headers=agent)
    assert r.status_code == 503 and "unchanged" in r.json()["detail"]
    with services.transaction() as s:
        task = s.scalar(select(CaseCallback))
        assert task.status.value == "open" and task.attempts == 0

    class FakeOriginator:
        calls = []

        async def originate(self, agent_extension, number_, variables):
            self.calls.append((agent_extension, number_, variables))
            return "hotline-ref-1"

    fake = FakeOriginator()
    client.app_ref.state.call_originator = fake
    # Only a case waiting for its callback is called.
    assert client.post(f"/api/cases/{filed}/callback/call", headers=agent).status_code == 422
    r = client.post(f"/api/cases/{number}/callback/call", headers=agent)
    assert r.status_code == 200 and r.json()["reference"] == "hotline-ref-1"
    assert fake.calls == [("8001", "13800138000",
                           {"HOTLINE_CASE": number, "HOTLINE_PURPOSE": "callback",
                            "HOTLINE_USER_ID": str(org.agent.id)})]
    with services.transaction() as s:
        placed = s.scalar(select(CaseEvent).where(CaseEvent.action == "callback_call"))
        assert placed.data == {"purpose": "callback", "reference": "hotline-ref-1"}
