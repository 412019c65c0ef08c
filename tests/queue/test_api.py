"""Wallboard and agent API without a PBX: figures, roles, bad input."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from agent_ui.app import create_app
from hotline.ami import replay_trace
from tests.factories import PASSWORD, make_org
from tests.queue.conftest import TRACES


@pytest.fixture
def client(settings, services, session):
    make_org(session)
    settings.pbx.ami_enabled = False
    with TestClient(create_app(settings, services)) as c:
        yield c


def bearer(client, username):
    r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.cookies.clear()  # bearer only: the cookie would authenticate later requests
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_wallboard_json_has_the_live_figures(client):
    brain = client.app.state.queue_brain
    replay_trace((TRACES / "queue_scenario.ami").read_bytes(), brain.handle)
    brain.settle_pending()
    r = client.get("/api/wallboard", headers=bearer(client, "banzhang"))
    assert r.status_code == 200
    body = r.json()
    assert body["total"]["kpis"]["offered"] == 2
    assert [q["name"] for q in body["queues"]] == ["complaint", "consultation", "priority"]
    assert body["settings"]["service_level_s"] == 20
    assert client.get("/api/wallboard").status_code == 401
    assert client.get("/api/wallboard", headers=bearer(client, "dept-water")).status_code == 403


def test_report_for_a_past_period(client):
    h = bearer(client, "banzhang")
    r = client.get("/api/wallboard/report", headers=h,
                   params={"start": "2026-01-01T00:00", "end": "2026-01-02T00:00"})
    assert r.status_code == 200, r.text
    assert r.json()["total"]["offered"] == 0
    bad = client.get("/api/wallboard/report", headers=h,
                     params={"start": "2026-01-02T00:00", "end": "2026-01-01T00:00"})
    assert bad.status_code == 422
    assert client.get("/api/wallboard/report", headers=bearer(client, "agent01"),
                      params={"start": "2026-01-01", "end": "2026-01-02"}).status_code == 403


def test_supervisor_actions_are_for_supervisors_only(client):
    agent = bearer(client, "agent01")
    for mode in ("listen", "whisper", "barge"):
        r = client.post(f"/api/agents/8002/{mode}", headers=agent, json={})
        assert r.status_code == 403, r.text
    sup = bearer(client, "banzhang")
    # No AMI in this process: a clear 409/503, never a stack trace.
    r = client.post("/api/agents/8002/listen", headers=sup, json={"supervisor_extension": "8010"})
    assert r.status_code == 409 and "not on a queue call" in r.json()["detail"]
    assert client.post("/api/agents/9999/listen", headers=sup, json={}).status_code == 404
    assert client.post("/api/agents/8002/dance", headers=sup, json={}).status_code == 422


def test_agent_state_api_without_ami(client):
    h = bearer(client, "agent01")
    r = client.get("/api/agents/me", headers=h)
    assert r.status_code == 200 and r.json()["state"] == "logged_out"
    assert client.post("/api/agents/me/pause", headers=h, json={"reason": "nap"}).status_code == 422
    r = client.post("/api/agents/me/login", headers=h, json={"queues": ["nope"]})
    assert r.status_code == 422
    r = client.post("/api/agents/me/login", headers=h, json={})
    assert r.status_code == 503  # no AMI connection in this process
    assert client.get("/api/agents/me", headers=bearer(client, "banzhang")).status_code == 409


def test_healthz_without_ami_bridge(client):
    assert "ami" not in client.get("/healthz").json()["checks"]


def test_wallboard_websocket_pushes_snapshots(client):
    h = bearer(client, "banzhang")
    with client.websocket_connect("/ws/wallboard", headers=h) as ws:
        first = ws.receive_json()
        assert first["type"] == "wallboard"
        brain = client.app.state.queue_brain
        client.portal.call(_feed, brain)
        for _ in range(20):
            msg = ws.receive_json()
            if msg["data"]["total"]["kpis"]["offered"] == 2:
                break
        else:
            raise AssertionError("no snapshot with the replayed calls")
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/ws/wallboard") as ws:
        ws.receive_json()


async def _feed(brain):
    replay_trace((TRACES / "queue_scenario.ami").read_bytes(), brain.handle)
    brain.settle_pending()


def test_wallboard_page(client):
    r = client.get("/wallboard", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    r = client.post("/api/auth/login", json={"username": "banzhang", "password": PASSWORD})
    csrf = r.json()["csrf_token"]
    page = client.get("/wallboard")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert f'content="{csrf}"' in page.text and 'content="yes"' in page.text
    assert "/static/wallboard.js" in page.text and "chart-4.6.1" in page.text
    assert client.get("/static/wallboard.js").status_code == 200
