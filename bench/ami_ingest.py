"""AMI ingest: events per second through the real parsing path and the queue brain.

    .venv/bin/python -m bench.ami_ingest [--copies 400] [--database sqlite|postgresql|none]

The AMI trace recorded from Asterisk 22 (tests/queue/traces/queue_scenario.ami: a queue
scenario with every event Asterisk sends, VarSet and Newexten included) is repeated
`--copies` times with distinct uniqueids, and fed as one byte stream in 4 KiB chunks to
panoramisk's AMIProtocol (the parser the live connection uses), whose dispatch calls
QueueBrain.handle: live state, KPI totals, outbox. Reported: events/s for parse + handle,
and (unless --database none) events/s including writing the timelines and agent states to a
fresh database and publishing the domain events. Target: >= 5,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from bench.common import fresh_database
from hotline.ami import replay_trace
from hotline.queue_brain import QueueBrain
from hotline.settings import Settings

TRACE = Path(__file__).resolve().parent.parent / "tests/queue/traces/queue_scenario.ami"
TARGET = 5000


def build_stream(copies: int) -> bytes:
    raw = TRACE.read_bytes()
    banner, _, body = raw.partition(b"\r\n")
    parts = [banner + b"\r\n"]
    for i in range(copies):
        parts.append(body.replace(b"hotline-amirec-", f"b{i}-".encode()))
    return b"".join(parts)


def run(copies: int, database: str) -> dict[str, object]:
    stream = build_stream(copies)
    brain = QueueBrain(Settings(env="test"))
    started = time.perf_counter()
    events = replay_trace(stream, brain.handle)
    brain.settle_pending()
    parse_s = time.perf_counter() - started
    out: dict[str, object] = {
        "bench": "ami_ingest",
        "copies": copies,
        "bytes": len(stream),
        "events": events,
        "queue_events_handled": events - brain.stats["ignored"],
        "parse_handle_events_per_s": round(events / parse_s),
        "target_events_per_s": TARGET,
        "malformed": brain.stats["malformed"],
    }
    if database != "none":
        with fresh_database(database) as services:
            brain = QueueBrain(services.settings, services)

            async def ingest() -> float:
                t0 = time.perf_counter()
                replay_trace(stream, brain.handle)
                brain.settle_pending()
                await brain.flush()
                return time.perf_counter() - t0

            total_s = asyncio.run(ingest())
        out["database"] = database
        out["with_persistence_events_per_s"] = round(events / total_s)
        out["rows_written"] = brain.stats["written"]
    # The target is for the parsing path; persistence runs beside it in a worker thread.
    out["target_met"] = out["parse_handle_events_per_s"] >= TARGET  # type: ignore[operator]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=400)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "none"], default="sqlite")
    args = parser.parse_args()
    result = run(args.copies, args.database)
    for key, value in result.items():
        print(f"{key}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
