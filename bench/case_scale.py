"""The case lifecycle at a big city's scale, on PostgreSQL.

Generates N cases (default 1,000,000: about a year of a large 12345 centre) with one
INSERT ... SELECT generate_series, in a realistic mix of statuses over 365 days and 70
departments, then measures:
- lifecycle transitions per second through the service layer (sign, then reply: policy,
  calendar, optimistic locking, audit event, callback task; one transaction each), with
  1 and 4 threads;
- p50/p99 of the department queue page query (a queue's first 50 cases plus the four
  queue counts, as /api/department/cases runs it), over random departments and queues;
- p50/p99 of the monthly KPI query (every counter for every department, one statement).
Target: department queue p99 <= 100 ms at 1M cases. The last line is one JSON object.

Run: .venv/bin/python -m bench.case_scale [--cases N] [--transitions N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import threading
import time

from sqlalchemy import select, text

from agent_ui.api_department import Queue, department_queue, queue_counts
from bench.common import fresh_database, percentile
from cases import lifecycle as lc
from cases.models import Case, Role, User
from cases.reports import case_kpis, month_bounds
from cases.service import Actor
from cases.state_machine import CaseStatus

DEPARTMENTS = 70

# One statement; status mix (per 1000): 880 closed, 30 signed, 15 dispatched, 5 extension,
# 10 replied, 10 answered directly (consultations), 5 returned, 5 filed, 40 merged/other
# closed. Times relative to a "now" of 2026-11-27 12:00 Beijing time.
GENERATE = """
INSERT INTO cases (number, type, category_id, title, description, location_text, priority,
    status, department_id, first_signed_department_id, sign_by, handle_by, dispatched_at,
    signed_at, replied_at, closed_at, channel, citizen_id, answered_directly, satisfaction,
    version, return_count, responsibility_fixed, created_at, updated_at)
SELECT
    'B' || lpad(g::text, 9, '0'),
    (ARRAY['complaint','help','consultation','report','suggestion','praise'])[1 + g % 6],
    :category_id,
    '路灯不亮 ' || g, '文昌街道幸福小区东门路灯连续三晚不亮，影响出行安全。', '幸福小区' || (g % 500),
    CASE WHEN g % 50 = 0 THEN 'urgent' ELSE 'normal' END,
    s.status,
    CASE WHEN s.status IN ('filed', 'answered_directly') THEN NULL ELSE :first_dept + g % :depts END,
    CASE WHEN s.status IN ('signed','extension_requested','replied','closed') THEN :first_dept + g % :depts END,
    t.created + interval '1 day',
    t.created + interval '5 days' + (g % 7) * interval '1 day',
    CASE WHEN s.status IN ('filed', 'answered_directly') THEN NULL ELSE t.created + interval '30 minutes' END,
    CASE WHEN s.status IN ('signed','extension_requested','replied','closed')
         THEN t.created + (g % 30) * interval '1 hour' END,
    CASE WHEN s.status IN ('replied','closed') THEN t.created + (g % 9) * interval '1 day' END,
    CASE WHEN s.status = 'closed' THEN t.created + (g % 9) * interval '1 day' + interval '5 hours' END,
    'phone', NULL, s.status = 'answered_directly',
    CASE WHEN s.status = 'closed' AND g % 7 <> 0
         THEN (ARRAY['satisfied','satisfied','satisfied','basically_satisfied','dissatisfied'])[1 + g % 5] END,
    1, 0, false, t.created, t.created
FROM generate_series(1, :n) AS g
CROSS JOIN LATERAL (SELECT timestamptz '2026-11-27 04:00+00'
    - ((g::bigint * 7919) % (365 * 86400)) * interval '1 second' AS created) AS t
CROSS JOIN LATERAL (SELECT CASE
    WHEN g % 1000 < 880 THEN 'closed'
    WHEN g % 1000 < 910 THEN 'signed'
    WHEN g % 1000 < 925 THEN 'dispatched'
    WHEN g % 1000 < 930 THEN 'extension_requested'
    WHEN g % 1000 < 940 THEN 'replied'
    WHEN g % 1000 < 950 THEN 'answered_directly'
    WHEN g % 1000 < 955 THEN 'returned'
    WHEN g % 1000 < 960 THEN 'filed'
    ELSE 'closed' END AS status) AS s
"""


def _setup(services, n: int) -> dict[str, float]:
    with services.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO departments (code, name, is_active, created_at, updated_at) "
            "SELECT 'D' || lpad(g::text, 3, '0'), '部门' || g, true, now(), now() "
            "FROM generate_series(1, :d) g"), {"d": DEPARTMENTS})
        first_dept = conn.execute(text("SELECT min(id) FROM departments")).scalar_one()
        conn.execute(text("INSERT INTO categories (code, name, default_priority, keywords) "
                          "VALUES ('C01', '城市管理', 'normal', '[]')"))
        parent = conn.execute(text("SELECT id FROM categories WHERE code = 'C01'")).scalar_one()
        conn.execute(text(
            "INSERT INTO categories (code, name, parent_id, default_department_id, "
            "default_priority, handle_limit_working_days, keywords) "
            "VALUES ('C0104', '路灯故障', :p, :d, 'normal', 3, '[]')"), {"p": parent, "d": first_dept})
        category = conn.execute(text("SELECT id FROM categories WHERE code = 'C0104'")).scalar_one()
        conn.execute(text(
            "INSERT INTO users (username, display_name, password_hash, role, department_id, "
            "is_active, failed_logins, created_at, updated_at) SELECT 'dept' || id, "
            "'部门用户' || id, 'x', 'department_staff', id, true, 0, now(), now() FROM departments"))
    t0 = time.perf_counter()
    with services.engine.begin() as conn:
        conn.execute(text(GENERATE), {"n": n, "category_id": category, "first_dept": first_dept,
                                      "depts": DEPARTMENTS})
    generate_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with services.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE cases"))
    return {"generate_s": round(generate_s, 1), "analyze_s": round(time.perf_counter() - t0, 1),
            "first_dept": first_dept}


def _transitions(services, count: int, threads: int, now: dt.datetime) -> float:
    """sign + reply on `count` dispatched cases; returns transitions per second."""
    with services.session_factory() as s:
        rows = s.execute(
            select(Case.number, Case.department_id).where(Case.status == CaseStatus.DISPATCHED)
            .order_by(Case.id).limit(count)).all()
        staff = {u.department_id: Actor.of(u) for u in s.scalars(
            select(User).where(User.role == Role.DEPARTMENT_STAFF))}
    chunks = [rows[i::threads] for i in range(threads)]
    settings = services.settings

    def work(chunk) -> None:
        for number, dept in chunk:
            for action in ("sign", "reply"):
                with services.transaction() as session:
                    ctx = lc.Context(tz=settings.tz, settings=settings.lifecycle, now=now)
                    case = lc.load_case(session, number)
                    if action == "sign":
                        lc.sign(session, case, staff[dept], acting_department_id=dept, ctx=ctx)
                    else:
                        lc.reply(session, case, staff[dept], "已处理。",
                                 acting_department_id=dept, ctx=ctx)

    t0 = time.perf_counter()
    pool = [threading.Thread(target=work, args=(c,)) for c in chunks]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return 2 * len(rows) / (time.perf_counter() - t0)


def _queue_times(services, first_dept: int, samples: int, now: dt.datetime) -> list[float]:
    rng = random.Random(7)
    due_soon = dt.timedelta(hours=24)
    out = []
    with services.session_factory() as s:
        for _ in range(samples):
            dept = first_dept + rng.randrange(DEPARTMENTS)
            queue = rng.choice(list(Queue))
            t0 = time.perf_counter()
            department_queue(s, dept, queue, now, due_soon, limit=50)
            queue_counts(s, dept, now, due_soon)
            out.append((time.perf_counter() - t0) * 1000)
            s.rollback()
    return out


def _kpi_times(services, samples: int, now: dt.datetime) -> list[float]:
    tz = services.settings.tz
    months = [(2025, 12), *[(2026, m) for m in range(1, 12)]]
    out = []
    with services.session_factory() as s:
        for i in range(samples):
            year, month = months[i % len(months)]
            start, end = month_bounds(year, month, tz)
            t0 = time.perf_counter()
            case_kpis(s, start, end, now)
            out.append((time.perf_counter() - t0) * 1000)
            s.rollback()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--transitions", type=int, default=2000,
                        help="cases taken through sign + reply (two transitions each)")
    parser.add_argument("--samples", type=int, default=400)
    args = parser.parse_args()
    now = dt.datetime(2026, 11, 27, 4, 0, tzinfo=dt.UTC)
    with fresh_database("postgresql") as services:
        setup = _setup(services, args.cases)
        print(f"generated {args.cases} cases in {setup['generate_s']} s "
              f"(analyze {setup['analyze_s']} s)", flush=True)
        queue = _queue_times(services, int(setup["first_dept"]), args.samples, now)
        print(f"department queue page: p50 {percentile(queue, 50):.1f} ms, "
              f"p99 {percentile(queue, 99):.1f} ms", flush=True)
        kpi = _kpi_times(services, max(24, args.samples // 10), now)
        print(f"monthly KPI query: p50 {percentile(kpi, 50):.1f} ms, "
              f"p99 {percentile(kpi, 99):.1f} ms", flush=True)
        half = args.transitions // 2
        t1 = _transitions(services, half, 1, now)
        t4 = _transitions(services, args.transitions - half, 4, now)
        print(f"transitions/s: {t1:.0f} (1 thread), {t4:.0f} (4 threads)", flush=True)
        with services.engine.connect() as conn:
            size = conn.execute(text("SELECT pg_size_pretty(pg_total_relation_size('cases'))")
                                ).scalar_one()
    print(json.dumps({
        "bench": "case_scale", "database": "postgresql", "cases": args.cases,
        "generate_s": setup["generate_s"], "cases_table_size": size,
        "transitions_per_s_1_thread": round(t1), "transitions_per_s_4_threads": round(t4),
        "dept_queue_p50_ms": round(percentile(queue, 50), 2),
        "dept_queue_p99_ms": round(percentile(queue, 99), 2),
        "dept_queue_target_p99_ms": 100,
        "dept_queue_target_met": percentile(queue, 99) <= 100,
        "monthly_kpi_p50_ms": round(percentile(kpi, 50), 1),
        "monthly_kpi_p99_ms": round(percentile(kpi, 99), 1),
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
