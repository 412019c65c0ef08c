"""The queue brain driven by an AMI trace recorded from Asterisk 22 (real parsing path)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select

from cases.models import AgentStateInterval, Contact, ContactOutcome, QueueCall
from cases.queue_kpis import period_report
from hotline.ami import replay_trace
from hotline.events import ALL
from hotline.queue_brain import QueueBrain, brain_events
from tests.queue.conftest import TRACES

TRACE = (TRACES / "queue_scenario.ami").read_bytes()
ANSWERED = "hotline-amirec-1795825192.0"
ABANDONED = "hotline-amirec-1795825192.1"


def _replay(brain: QueueBrain, data: bytes = TRACE) -> int:
    n = replay_trace(data, brain.handle)
    brain.settle_pending()
    return n


def test_events_become_domain_events_in_order():
    brain = QueueBrain(_settings())
    assert _replay(brain) > 200
    types = [e["type"] for e in brain_events(brain)]
    for expected in ("queue_member_added", "call_queued", "agent_called", "agent_connected",
                     "call_abandoned", "agent_completed", "agent_paused",
                     "queue_member_removed", "channel_hangup", "bridge_enter"):
        assert expected in types, expected
    assert types.index("call_queued") < types.index("agent_called") < types.index(
        "agent_connected") < types.index("agent_completed")
    abandon = next(e for e in brain_events(brain) if e["type"] == "call_abandoned")
    assert abandon["uniqueid"] == ABANDONED and abandon["short"] is True
    completed = next(e for e in brain_events(brain) if e["type"] == "agent_completed")
    assert completed["agent"] == "8001" and completed["hangup_side"] == "agent"
    assert 2.9 < completed["talk_s"] < 3.2
    states = [(e["state"], e["reason"]) for e in brain_events(brain)
              if e["type"] == "agent_state_changed"]
    assert states[:3] == [("available", None), ("ringing", None), ("on_call", None)]
    assert ("paused", "meal") in states and states[-1] == ("logged_out", None)
    assert brain.stats["malformed"] == 0


def test_kpis_from_the_trace():
    brain = QueueBrain(_settings())
    _replay(brain)
    total = brain.snapshot()["total"]["kpis"]
    assert total["offered"] == 2
    assert total["answered"] == 1 and total["answered_within_sl"] == 1
    assert total["short_abandoned"] == 1 and total["abandoned"] == 0
    assert total["service_level"] == 1.0
    assert total["aht_s"] == pytest.approx(total["avg_talk_s"] + 5.0, abs=1e-3)


def test_malformed_and_unknown_events_are_logged_and_skipped(caplog):
    brain = QueueBrain(_settings())
    junk = (
        b"Asterisk Call Manager/11.0.0\r\n"
        b"Event: QueueCallerJoin\r\nQueue: consultation\r\n\r\n"  # no Uniqueid
        b"Event: AgentConnect\r\nUniqueid: x\r\n\r\n"  # no Queue
        b"Event: QueueMemberStatus\r\nQueue: consultation\r\n\r\n"  # no Interface
        b"Event: SomethingNew\r\nFoo: bar\r\n\r\n"
        b"garbage line without colon\r\n\r\n"
        b"Event: QueueCallerJoin\r\nQueue: consultation\r\nUniqueid: ok-1\r\n"
        b"Timestamp: not-a-number\r\nPosition: x\r\n\r\n"
    )
    replay_trace(junk, brain.handle)
    assert brain.stats["malformed"] == 3
    assert brain.stats["ignored"] == 1
    assert "malformed" in caplog.text
    assert ("ok-1", "consultation") in brain.calls  # the good one still counts


async def test_timeline_persisted_once_even_when_replayed_twice(services):
    seen = []
    services.bus.subscribe(ALL, seen.append)
    brain = QueueBrain(services.settings, services)
    _replay(brain)
    await brain.flush()
    # A reconnect replays part of the stream again (same uniqueids): no duplicates.
    brain2 = QueueBrain(services.settings, services)
    await asyncio.to_thread(brain2.load)
    _replay(brain2)
    await brain2.flush()
    with services.session_factory() as s:
        rows = s.scalars(select(QueueCall).order_by(QueueCall.entered_at)).all()
        assert [(r.asterisk_uniqueid, r.outcome.value) for r in rows] == [
            (ANSWERED, "answered"), (ABANDONED, "abandoned")]
        answered, abandoned = rows
        assert answered.agent_extension == "8001" and answered.hangup_side == "agent"
        assert answered.agents_rung[0]["result"] == "connected"
        assert 0.9 < answered.wait_s < 1.2 and 2.9 < answered.talk_s < 3.2
        assert answered.wrapup_s == 5.0
        assert 2.4 < abandoned.wait_s < 2.7 and abandoned.position == 2
        # Each call got exactly one contact (the IVR did not write one here).
        contacts = s.scalars(select(Contact).order_by(Contact.asterisk_uniqueid)).all()
        assert [c.asterisk_uniqueid for c in contacts] == [ANSWERED, ABANDONED]
        assert contacts[0].outcome == ContactOutcome.ANSWERED
        assert contacts[0].agent_extension == "8001" and contacts[0].answered_at is not None
        assert contacts[1].outcome == ContactOutcome.ABANDONED
        assert answered.contact_id == contacts[0].id
        states = s.execute(select(AgentStateInterval.state, AgentStateInterval.reason)
                           .order_by(AgentStateInterval.id)).all()
        assert ("paused", "meal") in [tuple(r) for r in states]
        assert s.scalar(select(func.count()).select_from(AgentStateInterval)
                        .where(AgentStateInterval.ended_at.is_(None))) == 0
        start = rows[0].entered_at - dt.timedelta(hours=1)
        report = period_report(s, start, start + dt.timedelta(hours=2), service_level_s=20,
                               short_abandon_s=5)
    assert report["total"]["offered"] == 2 and report["total"]["answered"] == 1
    assert report["queues"]["consultation"]["short_abandoned"] == 1
    assert "8001" in report["agents"]
    assert any(e["type"] == "agent_connected" and e["contact_id"] for e in seen)


async def test_contact_written_by_the_ivr_is_linked_not_duplicated(services):
    with services.transaction() as s:
        s.add(Contact(channel="phone", asterisk_uniqueid=ANSWERED, from_address="13800000001",
                      ivr_path=[{"step": "menu", "digit": "1"}]))
    brain = QueueBrain(services.settings, services)
    _replay(brain)
    await brain.flush()
    with services.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 2
        c = s.scalar(select(Contact).where(Contact.asterisk_uniqueid == ANSWERED))
        assert c.ivr_path == [{"step": "menu", "digit": "1"}]
        assert c.outcome == ContactOutcome.ANSWERED and c.queue == "consultation"


def _settings():
    from hotline.settings import Settings

    return Settings(env="test")
