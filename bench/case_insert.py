"""Cases filed per second through the service layer (number allocation, case row, audit
event, one transaction per case, as an agent's "save" does), on SQLite and PostgreSQL.

Run: .venv/bin/python -m bench.case_insert [--cases N] [--threads T[,T...]] [--rounds R]

Baselines measured in the same run, under the same load, interleaved round by round with
the service (each figure is the median of R rounds):
- `steps`: the previous filing path, one statement per step (category, citizen, number,
  case, audit event); on SQLite it is the service's path itself, so it is measured on
  PostgreSQL only;
- `bare insert`: the same case row inserted alone (no look-ups, no number, no audit event).
The machine is shared, so the load average before and after is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections.abc import Callable

from sqlalchemy import insert

from bench.common import fresh_database
from cases.models import Case, utcnow
from cases.schemas import CaseCreate
from cases.service import SYSTEM, _file_case_in_steps, file_case
from tests.factories import make_org

TARGET_POSTGRESQL_CASES_PER_S = 1000


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _bench_one(kind: str, n: int, threads: int, rounds: int) -> dict[str, float]:
    with fresh_database(kind) as services:
        with services.session_factory() as session:
            make_org(session)
        tz = services.settings.tz
        data = CaseCreate(type="complaint", title="小区路灯不亮", description="幸福小区东门路灯连续三晚不亮",
                          category_code="C-CITY-ROAD", citizen_phone="13800138000")
        per_thread = n // threads

        def rate(one: Callable[[int], None]) -> float:
            """Calls per second of `one`, spread over `threads` threads like web workers."""

            def worker(offset: int) -> None:
                for i in range(per_thread):
                    one(offset + i)

            pool = [threading.Thread(target=worker, args=(t * per_thread,))
                    for t in range(threads)]
            t0 = time.perf_counter()
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            return per_thread * threads / (time.perf_counter() - t0)

        def file_one(_i: int) -> None:
            with services.transaction() as s:
                file_case(s, data, SYSTEM, tz=tz)

        def file_in_steps(_i: int) -> None:
            with services.transaction() as s:
                _file_case_in_steps(s, data, SYSTEM, tz=tz, now=utcnow())

        row = {"number": "", "type": "complaint", "title": data.title,
               "description": data.description, "status": "filed", "priority": "normal",
               "channel": "phone", "answered_directly": False, "version": 1,
               "created_at": utcnow(), "updated_at": utcnow()}
        bare_count = iter(range(10**9))

        def insert_one(_i: int) -> None:
            with services.engine.begin() as conn:
                conn.execute(insert(Case), [{**row, "number": f"B{next(bare_count):09d}"}])

        variants: dict[str, Callable[[int], None]] = {"cases_per_s": file_one}
        if kind == "postgresql":
            variants["steps_per_s"] = file_in_steps
        variants["bare_insert_per_s"] = insert_one
        for one in variants.values():  # warm up: day sequence, prepared statements, pool
            for i in range(20):
                one(i)
        samples: dict[str, list[float]] = {name: [] for name in variants}
        load_before = _load()
        for _round in range(rounds):
            for name, one in variants.items():
                samples[name].append(rate(one))
        load_after = _load()
    figures = {name: round(statistics.median(values), 1) for name, values in samples.items()}
    figures["ratio_to_bare"] = round(figures["cases_per_s"] / figures["bare_insert_per_s"], 3)
    if "steps_per_s" in figures:
        figures["ratio_to_steps"] = round(figures["cases_per_s"] / figures["steps_per_s"], 3)
    figures["load_before"] = load_before
    figures["load_after"] = load_after
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=3000, help="cases per round")
    parser.add_argument("--threads", default="4",
                        help="filing threads; a comma list measures each on PostgreSQL")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    result: dict[str, object] = {"bench": "case_insert", "cases": args.cases,
                                 "threads": thread_counts[0], "rounds": args.rounds,
                                 "cpus": os.cpu_count()}
    runs = [("sqlite", thread_counts[0])] + [("postgresql", t) for t in thread_counts]
    for kind, threads in runs:
        figures = _bench_one(kind, args.cases, threads, args.rounds)
        steps = (f", steps {figures['steps_per_s']:.1f}/s ratio {figures['ratio_to_steps']:.2f}"
                 if "steps_per_s" in figures else "")
        print(f"{kind:10s} {threads:2d} threads {figures['cases_per_s']:8.1f} cases/s through "
              f"the service (bare insert {figures['bare_insert_per_s']:.1f}/s ratio "
              f"{figures['ratio_to_bare']:.2f}{steps}; load {figures['load_before']} → "
              f"{figures['load_after']})", flush=True)
        key = kind if threads == thread_counts[0] else f"{kind}_{threads}_threads"
        result[key] = figures
    postgresql = [figures for key, figures in result.items() if key.startswith("postgresql")]
    rates = [f["cases_per_s"] for f in postgresql if isinstance(f, dict)]
    result["target_postgresql_cases_per_s"] = TARGET_POSTGRESQL_CASES_PER_S
    result["meets_target"] = rates[0] >= TARGET_POSTGRESQL_CASES_PER_S
    result["best_postgresql_cases_per_s"] = max(rates)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
