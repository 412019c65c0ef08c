"""Event -> wallboard latency with 200 websockets connected.

    .venv/bin/python -m bench.wallboard_latency [--sockets 200] [--samples 200]

The web app (create_app, AMI off) runs under uvicorn in a thread with its own event loop.
`--sockets` clients, in a separate process, connect to /ws/wallboard with a bearer token. Each sample injects an AMI
QueueCallerJoin (a new uniqueid) into the app's QueueBrain on the server loop, exactly as the
AMI connection would deliver it, and every client notes when the first snapshot naming that
caller arrives; then the caller abandons. Latency = arrival - injection, over every client
and sample. Target: p99 <= 100 ms. Per-message deflate is off by default here (compressing
the same snapshot 200 times costs more than sending it on a LAN); --deflate turns it on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import re
import socket
import threading
import time
from typing import Any

import uvicorn
import websockets
from panoramisk.message import Message

from agent_ui.app import create_app
from agent_ui.auth import open_session
from bench.common import fresh_database, percentile
from cases.models import Role, User
from cases.passwords import hash_password

TARGET_P99_MS = 100.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _event(name: str, **fields: str) -> Message:
    return Message({"Event": name, "Timestamp": f"{time.time():.6f}", **fields})


_MARK = re.compile(r"bench-(\d+)-(\d+)")


async def _client(url: str, token: str, latencies: list[float], counter: list[int]) -> None:
    seen: set[str] = set()
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                                  max_size=None) as ws:
        await ws.recv()
        counter[0] += 1
        while True:
            text = await ws.recv()
            now = time.perf_counter_ns()
            for m in _MARK.finditer(text):
                if m.group(1) not in seen:
                    seen.add(m.group(1))
                    latencies.append((now - int(m.group(2))) / 1e6)


def _clients_process(url: str, token: str, sockets: int, seconds: float, conn: Any) -> None:
    """Runs in its own process (no GIL shared with the server): connect, listen, report."""

    async def go() -> None:
        latencies: list[float] = []
        counter = [0]
        tasks = []
        for _ in range(sockets):
            tasks.append(asyncio.create_task(_client(url, token, latencies, counter)))
            await asyncio.sleep(0.002)
        while counter[0] < sockets:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        conn.send("ready")
        await asyncio.to_thread(conn.recv)  # the injector is done
        await asyncio.sleep(0.5)
        for t in tasks:
            t.cancel()
        conn.send(latencies)

    asyncio.run(go())


async def run(sockets: int, samples: int, deflate: bool = False) -> dict[str, object]:
    with fresh_database("sqlite") as services:
        settings = services.settings
        settings.pbx.ami_enabled = False
        with services.transaction() as s:
            user = User(username="wall", display_name="wall", password_hash=hash_password("x" * 12),
                        role=Role.SUPERVISOR)
            s.add(user)
            s.flush()
            token, _ = open_session(s, user)
        app = create_app(settings, services)
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning", ws="websockets",
                                               ws_per_message_deflate=deflate))
        server_loop = asyncio.new_event_loop()
        thread = threading.Thread(target=server_loop.run_until_complete, args=(server.serve(),),
                                  daemon=True)
        thread.start()
        while not server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        brain = app.state.queue_brain
        url = f"ws://127.0.0.1:{port}/ws/wallboard"
        parent, child = mp.Pipe()
        proc = mp.get_context("spawn").Process(
            target=_clients_process, args=(url, token, sockets, 0, child), daemon=True)
        proc.start()
        await asyncio.to_thread(parent.recv)  # all sockets connected
        for i in range(samples):
            # The injection time travels inside the uniqueid (CLOCK_MONOTONIC is shared by
            # every process on the machine).
            uid = f"bench-{i}-{time.perf_counter_ns()}"
            join = _event("QueueCallerJoin", Queue="consultation", Uniqueid=uid,
                          Linkedid=uid, Channel=f"PJSIP/citizens-{i:08x}",
                          CallerIDNum="13800000000", Position="1", Count="1")
            server_loop.call_soon_threadsafe(brain.handle, join)
            await asyncio.sleep(0.15)  # one change at a time: every socket gets every join
            server_loop.call_soon_threadsafe(brain.handle, _event(
                "QueueCallerAbandon", Queue="consultation", Uniqueid=uid, Position="1",
                OriginalPosition="1", HoldTime="0"))
            await asyncio.sleep(0.1)
        parent.send("done")
        lat = await asyncio.to_thread(parent.recv)
        proc.join(10)
        server.should_exit = True
        thread.join(10)
    expected = sockets * samples
    return {
        "bench": "wallboard_latency",
        "sockets": sockets,
        "per_message_deflate": deflate,
        "samples": samples,
        "deliveries": len(lat),
        "deliveries_expected": expected,
        "p50_ms": round(percentile(lat, 50), 2),
        "p99_ms": round(percentile(lat, 99), 2),
        "max_ms": round(max(lat), 2) if lat else None,
        "target_p99_ms": TARGET_P99_MS,
        "target_met": bool(lat) and percentile(lat, 99) <= TARGET_P99_MS
        and len(lat) == expected,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--deflate", action="store_true",
                        help="websocket per-message deflate on (uvicorn's default)")
    args = parser.parse_args()
    result = asyncio.run(run(args.sockets, args.samples, args.deflate))
    for key, value in result.items():
        print(f"{key}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
