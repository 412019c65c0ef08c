"""The queue brain against the real Asterisk 22 with sipp callers and agents."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from sqlalchemy import func, select

from cases.models import Contact, QueueCall
from tests.pbx import sipp
from tests.queue.conftest import Desk
from tests.waiting import wait_for

pytestmark = pytest.mark.pbx
Q = "consultation"


def _members(desk: Desk) -> dict[str, tuple[bool, str]]:
    """Asterisk's own view (QueueStatus via the CLI): interface -> (paused, reason)."""
    out = desk.pbx.cli(f"queue show {Q}")
    found = {}
    for line in out.splitlines():
        m = re.search(r"\((PJSIP/\d+)[ )]", line)
        if m:
            reason = re.search(r"\(paused:([^ )]*)", line)
            found[m.group(1)] = ("paused" in line, reason.group(1) if reason else "")
    return found


def _waiting_in_asterisk(desk: Desk) -> set[str]:
    out = desk.pbx.cli(f"queue show {Q}")
    return set(re.findall(r"^\s+\d+\.\s+(\S+)\s+\(wait", out, re.M))


def _waiting_in_brain(desk: Desk) -> set[str]:
    snap = desk.get("/api/wallboard").json()
    queue = next(q for q in snap["queues"] if q["name"] == Q)
    chans = {c.data.uniqueid: c.channel for c in list(desk.brain.calls.values())}
    return {chans.get(c["uniqueid"], "?") for c in queue["callers"]}


def test_scripted_scenario_every_kpi_exact(desk: Desk):
    """4 callers, one agent with 5 s automatic wrap-up, T = 5 s:
    A answered after ~1 s ringing; B abandons after ~2 s (short); C abandons after ~7 s
    (agent busy then wrapping up); D is answered once the wrap-up ends (~8.5 s wait)."""
    r = desk.post("/api/agents/me/login", user="agent01", json={"queues": [Q]})
    assert r.status_code == 200, r.text
    assert r.json()["state"] in ("available", "unavailable")
    agent = sipp.start_agent(desk.settings, "8001", answer_ms=1000, talk_ms=3000, calls=2)
    wait_for("8001 available", lambda: desk.brain.agent_state("8001")[0] == "available")
    calls = []
    try:
        calls.append(sipp.citizen_call(desk.settings, caller="13900000001", ending="pbx"))
        time.sleep(0.5)
        calls.append(sipp.citizen_call(desk.settings, caller="13900000002",
                                       steps=[sipp.pause(2000)]))
        time.sleep(0.5)
        calls.append(sipp.citizen_call(desk.settings, caller="13900000003",
                                       steps=[sipp.pause(7000)]))
        time.sleep(0.5)
        calls.append(sipp.citizen_call(desk.settings, caller="13900000004", ending="pbx"))
        results = [c.wait(60) for c in calls]
        agent_result = agent.wait(60)
    finally:
        agent.stop()
    for res in [*results, agent_result]:
        assert res.ok, res.describe()
    wait_for("both calls completed", lambda: desk.brain.snapshot()["total"]["kpis"]["handled"]
             == 2, 10)
    live = desk.get("/api/wallboard").json()
    k = live["total"]["kpis"]
    assert (k["offered"], k["answered"], k["abandoned"], k["short_abandoned"],
            k["timeouts"], k["unknown"], k["waiting"]) == (4, 2, 1, 1, 0, 0, 0), k
    assert k["answered_within_sl"] == 1
    assert k["service_level"] == 0.5
    assert k["service_level_app_queue"] == 0.5  # A and B within 5 s out of 2 + 2
    assert k["abandon_rate"] == pytest.approx(1 / 3, abs=1e-4)
    with desk.brain.services.session_factory() as s:
        rows = {r.caller: r for r in s.scalars(select(QueueCall))}
        assert s.scalar(select(func.count()).select_from(Contact)) == 4
    a, b, c, d = (rows[f"1390000000{i}"] for i in range(1, 5))
    assert [r.outcome.value for r in (a, b, c, d)] == [
        "answered", "abandoned", "abandoned", "answered"]
    # Waits are measured from the queue entry; sipp pauses start at the answer (IVR first).
    assert 0.9 <= a.wait_s <= 1.6 and 1.0 <= b.wait_s <= 2.6 and 6.0 <= c.wait_s <= 7.6
    # D: busy agent, then 5 s wrap-up, then app_queue retries every 3 s (queues.conf retry).
    assert 7.0 <= d.wait_s <= 17.0
    assert 2.9 <= a.talk_s <= 3.5 and 2.9 <= d.talk_s <= 3.5
    assert a.agent_extension == d.agent_extension == "8001" and a.hangup_side == "agent"
    assert a.wrapup_s == d.wrapup_s == 5.0
    assert k["asa_s"] == pytest.approx((a.wait_s + d.wait_s) / 2, abs=1e-3)
    assert k["aht_s"] == pytest.approx((a.talk_s + d.talk_s) / 2 + 5.0, abs=1e-3)
    # The same figures for the period from the database.
    start = min(r.entered_at for r in rows.values()).replace(microsecond=0).isoformat()
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    r = desk.get("/api/wallboard/report", params={"start": start, "end": end})
    assert r.status_code == 200, r.text
    rep = r.json()
    for key in ("offered", "answered", "abandoned", "short_abandoned", "service_level",
                "service_level_app_queue", "asa_s", "aht_s"):
        assert rep["total"][key] == pytest.approx(k[key], abs=1e-3), key
    # app_queue's own counters agree.
    out = desk.pbx.cli(f"queue show {Q}")
    assert re.search(r"C:2, A:2", out), out
    occupancy = rep["agents"]["8001"]["occupancy"]
    assert occupancy is not None and 0 < occupancy <= 1


def test_ami_cut_mid_scenario_resyncs_without_losing_calls(desk: Desk):
    desk.post("/api/agents/8002/login", json={"queues": [Q]})
    agent = sipp.start_agent(desk.settings, "8002", answer_ms=500, talk_ms=6000, calls=1)
    wait_for("8002 available", lambda: desk.brain.agent_state("8002")[0] == "available")
    connects = desk.brain.client.connects
    calls = []
    try:
        calls.append(sipp.citizen_call(desk.settings, caller="13700000001", ending="pbx"))
        time.sleep(1.5)
        calls.append(sipp.citizen_call(desk.settings, caller="13700000002",
                                       steps=[sipp.pause(12000)]))
        time.sleep(1.0)
        out = desk.pbx.cli("manager show connected")
        # Username, IP address, start, elapsed, file descriptor.
        user = desk.settings.pbx.ami_username
        fds = re.findall(rf"^\s*{user}\s+127\.0\.0\.1\s+\d+\s+\d+\s+(\d+)", out, re.M)
        assert fds, out
        # Stay away long enough for the third caller to join unseen.
        desk.settings.pbx.ami_reconnect_min_s = 4.0
        for fd in fds:
            desk.pbx.cli(f"manager kick session {fd}")
        # While the bridge is away a third caller arrives.
        calls.append(sipp.citizen_call(desk.settings, caller="13700000003",
                                       steps=[sipp.pause(8000)]))
        wait_for("the reconnect", lambda: desk.brain.client.connects > connects
                 and desk.brain.client.connected, 15)
        desk.settings.pbx.ami_reconnect_min_s = 0.3
        health = desk.client.get("/healthz").json()["checks"]["ami"]
        assert health["connected"] and health["reconnects"] >= 1
        time.sleep(1.5)
        wait_for("brain == QueueStatus",
                 lambda: _waiting_in_brain(desk) == _waiting_in_asterisk(desk), 5)
        assert len(_waiting_in_asterisk(desk)) >= 1
        assert _members(desk).keys() == {"PJSIP/8002"}, desk.pbx.cli(f"queue show {Q}")
        assert {i for (q, i) in desk.brain.members if q == Q} == {"PJSIP/8002"}
        results = [c.wait(60) for c in calls]
        agent.wait(60)
    finally:
        agent.stop()
    for res in results:
        assert res.ok, res.describe()
    wait_for("all stays settled", lambda: not desk.brain.calls, 15)
    time.sleep(0.5)
    with desk.brain.services.session_factory() as s:
        rows = s.scalars(select(QueueCall)).all()
        callers = sorted(r.caller for r in rows)
        assert callers == ["13700000001", "13700000002", "13700000003"], callers
        assert s.scalar(select(func.count()).select_from(Contact)) == 3
        first = next(r for r in rows if r.caller == "13700000001")
        assert first.outcome.value == "answered" and first.agent_extension == "8002"
        assert {r.outcome.value for r in rows} <= {"answered", "abandoned", "unknown"}


def test_listen_whisper_barge_create_a_real_spy_channel(desk: Desk):
    desk.post("/api/agents/8003/login", json={"queues": [Q]})
    agent = sipp.start_agent(desk.settings, "8003", answer_ms=300, talk_ms=15000)
    wait_for("8003 available", lambda: desk.brain.agent_state("8003")[0] == "available")
    call = sipp.citizen_call(desk.settings, caller="13600000001", ending="pbx")
    supervisor = None
    try:
        wait_for("8003 on the call", lambda: desk.brain.agent_state("8003")[0] == "on_call")
        # Agents may not spy.
        assert desk.post("/api/agents/8003/listen", user="agent01").status_code == 403
        for mode, opts in (("listen", "q"), ("whisper", "qw"), ("barge", "qB")):
            supervisor = sipp.start_agent(desk.settings, "8010", answer_ms=200, talk_ms=1500)
            r = desk.post(f"/api/agents/8003/{mode}", json={"supervisor_extension": "8010"})
            assert r.status_code == 200, r.text
            assert r.json()["spied_channel"].startswith("PJSIP/8003-")
            shown = wait_for(
                f"a ChanSpy channel ({mode})",
                lambda o=opts: [ln for ln in desk.pbx.cli("core show channels verbose").splitlines()
                                if "ChanSpy" in ln and "PJSIP/8010" in ln and f",{o} " in ln],
                5,
            )
            assert shown
            res = supervisor.wait(20)
            assert res.ok, res.describe()
        # Not on a call: a clear refusal.
        assert desk.post("/api/agents/8005/listen",
                         json={"supervisor_extension": "8010"}).status_code == 409
    finally:
        if supervisor is not None:
            supervisor.stop()
        agent.stop()
        call.stop()


def test_agent_logged_in_with_an_unregistered_phone_is_unavailable(desk: Desk):
    r = desk.post("/api/agents/8006/login", json={"queues": [Q]})
    assert r.status_code == 200, r.text
    wait_for("8006 unavailable", lambda: desk.brain.agent_state("8006")[0] == "unavailable")
    snap = desk.get("/api/wallboard").json()
    assert next(q for q in snap["queues"] if q["name"] == Q)["agents"]["unavailable"] >= 1
    phone = sipp.start_agent(desk.settings, "8006", answer_ms=200, talk_ms=500)
    try:
        wait_for("8006 available once registered",
                 lambda: desk.brain.agent_state("8006")[0] == "available")
        r = desk.post("/api/agents/8006/pause", json={"reason": "training"})
        assert r.json()["state"] == "paused" and r.json()["reason"] == "training"
        assert _members(desk)["PJSIP/8006"] == (True, "training")
        r = desk.post("/api/agents/8006/unpause")
        assert r.json()["state"] == "available"
        r = desk.post("/api/agents/8006/logout")
        assert r.json()["state"] == "logged_out"
    finally:
        phone.stop()
