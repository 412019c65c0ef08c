"""Cases filed per second through the service layer (number allocation, case row, audit
event, one transaction per case, as an agent's "save" does), on SQLite and PostgreSQL.

Run: .venv/bin/python -m bench.case_insert [--cases N] [--threads T]
Baseline in the same run: a bare INSERT of the same case row without the service layer
(no number allocation, no audit event), to show what the service costs.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable

from sqlalchemy import insert

from bench.common import fresh_database
from cases.models import Case, utcnow
from cases.schemas import CaseCreate
from cases.service import SYSTEM, file_case
from tests.factories import make_org


def _bench_one(kind: str, n: int, threads: int) -> dict[str, float]:
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

        # Baseline: the same case row, bare INSERT, one transaction each, same threads.
        row = {"number": "", "type": "complaint", "title": data.title,
               "description": data.description, "status": "filed", "priority": "normal",
               "channel": "phone", "answered_directly": False, "version": 1,
               "created_at": utcnow(), "updated_at": utcnow()}

        def insert_one(i: int) -> None:
            with services.engine.begin() as conn:
                conn.execute(insert(Case), [{**row, "number": f"B{i:09d}"}])

        file_one(-1)  # warm up: creates the day's number sequence
        service_rate = rate(file_one)
        bare_rate = rate(insert_one)
    return {"cases_per_s": round(service_rate, 1), "bare_insert_per_s": round(bare_rate, 1),
            "ratio_to_bare": round(service_rate / bare_rate, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    result: dict[str, object] = {"bench": "case_insert", "cases": args.cases,
                                 "threads": args.threads}
    for kind in ("sqlite", "postgresql"):
        figures = _bench_one(kind, args.cases, args.threads)
        print(f"{kind:10s} {figures['cases_per_s']:8.1f} cases/s through the service "
              f"(bare insert {figures['bare_insert_per_s']:.1f}/s, "
              f"ratio {figures['ratio_to_bare']:.2f})")
        result[kind] = figures
    result["target_postgresql_cases_per_s"] = 1000
    result["meets_target"] = result["postgresql"]["cases_per_s"] >= 1000  # type: ignore[index]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
