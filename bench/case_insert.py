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

from sqlalchemy import insert

from bench.common import fresh_database
from cases.models import Case
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

        def worker() -> None:
            for _ in range(per_thread):
                with services.transaction() as s:
                    file_case(s, data, SYSTEM, tz=tz)

        file_case_warm = services.session_factory()
        file_case(file_case_warm, data, SYSTEM, tz=tz)
        file_case_warm.commit()
        file_case_warm.close()
        t0 = time.perf_counter()
        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        service_rate = per_thread * threads / (time.perf_counter() - t0)

        # Baseline: the same row, bare INSERT, one transaction each.
        row = {"number": "", "type": "complaint", "title": data.title,
               "description": data.description, "status": "filed", "priority": "normal",
               "channel": "phone", "answered_directly": False, "version": 1}
        t0 = time.perf_counter()
        for i in range(per_thread * threads):
            with services.engine.begin() as conn:
                conn.execute(insert(Case), [{**row, "number": f"B{i:09d}"}])
        bare_rate = per_thread * threads / (time.perf_counter() - t0)
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
