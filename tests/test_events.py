import asyncio
import uuid

from hotline.events import ALL, InProcessBus, RedisBus, make_event


async def test_in_process_delivery_by_type_and_all():
    bus = InProcessBus()
    seen, everything = [], []
    bus.subscribe("call_queued", seen.append)
    unsubscribe = bus.subscribe(ALL, everything.append)
    await bus.publish(make_event("call_queued", queue="complaint"))
    await bus.publish(make_event("case_filed", number="20261127-00001"))
    unsubscribe()
    await bus.publish(make_event("case_filed", number="20261127-00002"))
    assert [e["queue"] for e in seen] == ["complaint"]
    assert [e["type"] for e in everything] == ["call_queued", "case_filed"]


async def test_a_failing_handler_does_not_stop_others():
    bus = InProcessBus()
    got = []

    def broken(_event):
        raise RuntimeError("boom")

    bus.subscribe("x", broken)
    bus.subscribe("x", got.append)
    await bus.publish(make_event("x"))
    assert len(got) == 1


async def test_redis_bus_fans_out_between_two_processes_worth_of_buses():
    channel = f"hotline:test:{uuid.uuid4().hex}"
    a, b = RedisBus("redis://127.0.0.1:6379/0", channel), RedisBus("redis://127.0.0.1:6379/0", channel)
    await a.start()
    await b.start()
    got = asyncio.Queue()
    b.subscribe("agent_connected", got.put_nowait)
    await asyncio.sleep(0.3)  # let both subscriptions settle
    await a.publish(make_event("agent_connected", agent="8001"))
    event = await asyncio.wait_for(got.get(), 5)
    assert event["agent"] == "8001"
    await a.stop()
    await b.stop()
