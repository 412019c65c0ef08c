"""Screen-pop latency: from the AgentConnect-equivalent bus event reaching the web service to
the complete `screen_pop` message (history + KB suggestions) arriving on the agent's
websocket, with many agent desks connected; plus server memory per connected socket.

Run: .venv/bin/python -m bench.screen_pop [--agents 500] [--rate 20] [--seconds 30]
     [--db sqlite|postgresql]

The web app (create_app, uvicorn) runs in this process; the agents' websockets run in a
child process (so the server's memory is measured alone). Events are published on the
service's bus at `--rate` per second for random connected agents, each for a caller with a
history (contacts on several channels, open and closed cases) and an IVR-recorded contact.
Times come from CLOCK_MONOTONIC, which both processes share. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import subprocess
import sys
import threading
import time
from typing import Any

import uvicorn

from agent_ui.app import create_app
from agent_ui.auth import open_session
from bench.common import fresh_database, percentile
from cases.kb import ArticleContent, publish_content
from cases.kb_text import shared_analyzer
from cases.models import (
    Case,
    CaseType,
    Channel,
    Citizen,
    CitizenPhone,
    Contact,
    ContactOutcome,
    Role,
    User,
    utcnow,
)
from cases.state_machine import CaseStatus
from hotline.events import make_event
from hotline.services import Services
from tests.factories import make_org

# Not an argon2 hash: nobody can sign in with it; the bench makes sessions directly.
NO_PASSWORD = "!"  # noqa: S105
TOPICS = ["道路破损积水", "小区停水", "噪音扰民", "社保卡补办", "违章停车", "垃圾清运不及时",
          "路灯不亮", "燃气费缴纳", "公交线路调整", "占道经营", "医保报销", "油烟扰民"]


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def seed(services: Services, agents: int, citizens: int) -> tuple[list[str], list[dict[str, Any]]]:
    """Agents with sessions (tokens), citizens with history; returns (tokens, calls)."""
    rng = random.Random(7)
    now = utcnow()
    with services.session_factory() as s:
        org = make_org(s)
        analyzer = shared_analyzer()
        for i, topic in enumerate(TOPICS * 10):
            publish_content(s, ArticleContent(
                title=f"{topic}怎么办（{i}）", question=f"{topic}向哪里反映",
                answer=f"{topic}可拨打12345，由相关部门在规定时限内处理。第{i}条。",
                tags=[topic[:2]]), analyzer, external_id=f"bench-{i}")
        s.commit()
        users = [User(username=f"agent{i:04d}", display_name=f"坐席{i}", password_hash=NO_PASSWORD,
                      role=Role.AGENT, extension=f"9{i:04d}") for i in range(agents)]
        s.add_all(users)
        s.flush()
        tokens = [open_session(s, u)[0] for u in users]
        calls = []
        for c in range(citizens):
            phone = f"139{c:08d}"
            citizen = Citizen(name=f"市民{c}", tags=["repeat_caller"] if c % 7 == 0 else [])
            citizen.phones = [CitizenPhone(number=phone)]
            s.add(citizen)
            s.flush()
            for k in range(6):
                s.add(Contact(channel=rng.choice(list(Channel)), citizen_id=citizen.id,
                              from_address=phone, started_at=now - dt.timedelta(days=k + 1),
                              outcome=ContactOutcome.ANSWERED, queue="complaint"))
            for k in range(4):
                topic = rng.choice(TOPICS)
                s.add(Case(number=f"2026{c:06d}-{k:03d}", type=CaseType.COMPLAINT,
                           title=f"{topic}", description=f"{topic}，请尽快处理。",
                           status=CaseStatus.DISPATCHED if k < 2 else CaseStatus.CLOSED,
                           channel=Channel.PHONE, citizen_id=citizen.id,
                           category_id=org.pothole.id, department_id=org.roads.id,
                           handle_by=now + dt.timedelta(days=3),
                           created_at=now - dt.timedelta(days=k)))
            contact = Contact(channel=Channel.PHONE, citizen_id=citizen.id, from_address=phone,
                              started_at=now, queue="complaint",
                              asterisk_uniqueid=f"bench.{c}",
                              ivr_path=[{"step": "menu", "digit": "2"},
                                        {"step": "route", "queue": "complaint"}])
            s.add(contact)
            s.flush()
            calls.append({"caller": phone, "contact_id": contact.id, "uniqueid": f"bench.{c}"})
        s.commit()
    return tokens, calls


# ---- the agents' side (child process) -----------------------------------------------------


async def _clients(url: str, tokens: list[str], expect: int, wait_s: float) -> None:
    import websockets

    host = url.split("//", 1)[1]
    received: list[tuple[str, str, float]] = []
    done = asyncio.Event()

    async def one(token: str) -> None:
        async with websockets.connect(
            f"ws://{host}/ws/desk", origin=f"http://{host}",  # type: ignore[arg-type]
            additional_headers={"Cookie": f"hotline_session={token}"}, max_size=2**22,
        ) as ws:
            await ws.recv()  # hello
            ready.append(1)
            if len(ready) == len(tokens):
                print("READY", flush=True)
            async for raw in ws:
                t = time.monotonic()
                msg = json.loads(raw)
                if msg.get("type") == "screen_pop":
                    complete = bool(msg.get("citizen")) and bool(msg.get("suggestions"))
                    received.append((msg["call"]["uniqueid"], "ok" if complete else "partial", t))
                    if len(received) >= expect:
                        done.set()

    ready: list[int] = []
    tasks = []
    for i, token in enumerate(tokens):
        tasks.append(asyncio.create_task(one(token)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # do not storm the accept queue
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), wait_s)
    print(json.dumps({"received": received}), flush=True)
    for task in tasks:
        task.cancel()


def client_main() -> None:
    spec = json.loads(sys.stdin.readline())
    asyncio.run(_clients(spec["url"], spec["tokens"], spec["expect"], spec["timeout"]))


# ---- the service's side -------------------------------------------------------------------


def run(agents: int, rate: float, seconds: float, db: str, citizens: int) -> dict[str, Any]:
    with fresh_database(db) as services:
        t_seed = time.perf_counter()
        tokens, calls = seed(services, agents, citizens)
        seed_s = time.perf_counter() - t_seed
        app = create_app(services.settings, services)
        from tests.pbx.sipp import free_port

        port = free_port("tcp")
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning", ws_max_size=65536,
                                               backlog=2048))
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=lambda: loop.run_until_complete(server.serve()),
                                  daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        with services.session_factory() as s:
            services.kb_index.refresh(s)
        rss_before = _rss_kib()
        n_pops = int(rate * seconds)
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.screen_pop", "--client"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert child.stdin and child.stdout
        child.stdin.write(json.dumps({"url": f"http://127.0.0.1:{port}", "tokens": tokens,
                                      "expect": n_pops, "timeout": seconds + 60}) + "\n")
        child.stdin.flush()
        line = child.stdout.readline()
        assert line.strip() == "READY", line
        hub = app.state.desk_hub
        deadline = time.monotonic() + 30
        while len(hub.connections) < agents and time.monotonic() < deadline:
            time.sleep(0.1)
        connected = len(hub.connections)
        time.sleep(1.0)
        rss_after = _rss_kib()

        rng = random.Random(11)
        sent: dict[str, float] = {}
        extensions = [f"9{i:04d}" for i in range(agents)]
        start = time.monotonic()
        for i in range(n_pops):
            at = start + i / rate
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            call = rng.choice(calls)
            uid = f"{call['uniqueid']}#{i}"
            event = make_event("agent_connected", extension=rng.choice(extensions),
                               caller=call["caller"], contact_id=call["contact_id"],
                               uniqueid=uid, queue="complaint")
            sent[uid] = time.monotonic()
            asyncio.run_coroutine_threadsafe(services.bus.publish(event), loop)
        out, _ = child.communicate(timeout=seconds + 90)
        received = json.loads(out.strip().splitlines()[-1])["received"]
        server.should_exit = True
        thread.join(10)
    latencies = [(t - sent[uid]) * 1000 for uid, _, t in received if uid in sent]
    complete = sum(1 for _, kind, _ in received if kind == "ok")
    return {
        "bench": "screen_pop",
        "db": db,
        "agents_connected": connected,
        "rate_per_s": rate,
        "pops_sent": n_pops,
        "pops_received": len(latencies),
        "pops_complete": complete,
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2) if latencies else None,
        "server_rss_per_socket_kib": round((rss_after - rss_before) / max(connected, 1), 1),
        "citizens": citizens,
        "seed_s": round(seed_s, 1),
        "target_p99_ms": 50,
        "met": bool(latencies) and percentile(latencies, 99) <= 50 and len(latencies) == n_pops,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--citizens", type=int, default=2000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main()
        return
    os.environ.setdefault("PYTHONHASHSEED", "0")
    result = run(args.agents, args.rate, args.seconds, args.db, args.citizens)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
