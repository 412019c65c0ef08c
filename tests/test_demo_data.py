"""The demo data files are complete and consistent, and seed_demo is deterministic."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import opencc
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from cases.demo.seed import (
    CATEGORIES_FILE,
    DEPARTMENTS_FILE,
    KB_FILE,
    DemoDataError,
    add_working_days,
    seed_demo,
)
from cases.models import (
    Base,
    Case,
    CaseEvent,
    CaseNumberCounter,
    CaseType,
    Category,
    Channel,
    Citizen,
    CitizenPhone,
    Contact,
    Department,
    KbArticle,
    Role,
    Satisfaction,
    User,
)
from cases.passwords import verify_password
from cases.phones import normalise_phone
from cases.state_machine import CaseStatus

QUERIES_FILE = Path(__file__).parent / "data" / "kb_queries.jsonl"
TODAY = dt.date(2026, 11, 27)
TZ = ZoneInfo("Asia/Shanghai")
PASSWORD = "demo-pass-123"
NUMBER_RE = re.compile(r"^(\d{8})-(\d{5})$")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# ----------------------------------------------------------------------------- data files


def test_departments_file():
    deps = json.loads(DEPARTMENTS_FILE.read_text(encoding="utf-8"))
    assert len(deps) >= 70
    codes = [d["code"] for d in deps]
    assert len(set(codes)) == len(codes)
    assert len({d["name"] for d in deps}) == len(deps)
    for d in deps:
        assert d["parent"] is None or d["parent"] in codes
        assert d["name"] and d["short_name"] and d["contact_person"]
        assert re.fullmatch(r"0794-\d{7}", d["contact_phone"])
    names = " ".join(d["name"] for d in deps)
    for utility in ("供电公司", "自来水", "燃气", "中国移动", "中国电信"):
        assert utility in names


def test_categories_file():
    cats = json.loads(CATEGORIES_FILE.read_text(encoding="utf-8"))
    dep_codes = {d["code"] for d in json.loads(DEPARTMENTS_FILE.read_text(encoding="utf-8"))}
    tops = {c["code"] for c in cats if c["parent"] is None}
    subs = [c for c in cats if c["parent"] is not None]
    assert len(tops) >= 12
    assert len(subs) >= 40
    assert len({c["code"] for c in cats}) == len(cats)
    for c in subs:
        assert c["parent"] in tops
        assert c["default_department"] in dep_codes, c["code"]
        assert c["handle_limit_working_days"] in (1, 3, 5, 15)
        assert c["keywords"]
        expected_sign = {"critical": 15, "urgent": 30, "normal": None}[c["default_priority"]]
        assert c["sign_limit_minutes"] == expected_sign, c["code"]
    by_name = {c["name"]: c for c in subs}
    assert by_name["燃气泄漏"]["default_priority"] == "critical"
    assert by_name["停水"]["default_priority"] == "urgent"


def test_kb_articles_file():
    arts = _jsonl(KB_FILE)
    dep_codes = {d["code"] for d in json.loads(DEPARTMENTS_FILE.read_text(encoding="utf-8"))}
    assert len(arts) >= 150
    ids = [a["id"] for a in arts]
    assert len(set(ids)) == len(ids)
    for a in arts:
        assert set(a) <= {"id", "title", "question", "answer", "department", "tags"}
        assert re.fullmatch(r"kb-\d{4}", a["id"])
        assert a["title"] and a["question"] and len(a["answer"]) >= 80, a["id"]
        assert a["tags"] and all(isinstance(t, str) and t for t in a["tags"])
        if "department" in a:
            assert a["department"] in dep_codes
    assert len({a.get("department") for a in arts}) >= 30  # spread over many departments


def test_kb_queries_file():
    queries = _jsonl(QUERIES_FILE)
    arts = {a["id"]: a for a in _jsonl(KB_FILE)}
    assert len(queries) >= 40
    for q in queries:
        assert set(q) == {"query", "expected", "note"}
        assert q["expected"] in arts, q
        assert q["query"] != arts[q["expected"]]["title"]
    t2s = opencc.OpenCC("t2s")
    traditional = [q for q in queries if t2s.convert(q["query"]) != q["query"]]
    assert len(traditional) >= 6


def test_add_working_days_skips_weekends():
    friday = dt.datetime(2026, 11, 27, 10, 0, tzinfo=TZ)
    assert add_working_days(friday, 1).date() == dt.date(2026, 11, 30)
    assert add_working_days(friday, 5).date() == dt.date(2026, 12, 4)


# ----------------------------------------------------------------------------- seeding


def _seed(import_kb: bool) -> tuple[Session, dict[str, int]]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    session = Session(engine)
    counts = seed_demo(session, today=TODAY, demo_password=PASSWORD, import_kb=import_kb)
    session.commit()
    return session, counts


@pytest.fixture(scope="module")
def seeded():
    session, counts = _seed(import_kb=True)
    yield session, counts
    session.close()


def test_seed_counts(seeded):
    session, counts = seeded
    assert counts["departments"] == session.scalar(select(func.count()).select_from(Department))
    assert counts["citizens"] >= 500
    assert counts["cases"] >= 2000
    assert session.scalar(select(func.count()).select_from(Case)) == counts["cases"]
    assert session.scalar(select(func.count()).select_from(Contact)) >= counts["cases"] + 1000
    assert session.scalar(select(func.count()).select_from(Category)) == counts["categories"]
    assert session.scalar(select(func.count()).select_from(KbArticle)) == counts["kb_articles"]
    assert counts["kb_articles"] >= 150


def test_users(seeded):
    session, _ = seeded
    users = {u.username: u for u in session.scalars(select(User))}
    assert users["admin"].role == Role.ADMIN
    assert users["kbeditor"].role == Role.KB_EDITOR
    assert {users[f"banzhang{i}"].role for i in (1, 2)} == {Role.SUPERVISOR}
    agents = [users[f"agent{i:02d}"] for i in range(1, 21)]
    assert [a.extension for a in agents] == [str(8000 + i) for i in range(1, 21)]
    assert all(a.role == Role.AGENT for a in agents)
    n_deps = session.scalar(select(func.count()).select_from(Department))
    staff = [u for u in users.values() if u.role == Role.DEPARTMENT_STAFF]
    assert len(staff) == n_deps
    assert all(u.department_id is not None for u in staff)
    assert "dept-d052" in users
    assert len({u.password_hash for u in users.values()}) == 1  # hashed once
    assert verify_password(users["agent01"].password_hash, PASSWORD)


def test_citizens(seeded):
    session, _ = seeded
    phones = session.scalars(select(CitizenPhone.number)).all()
    assert all(normalise_phone(p) == p for p in phones)
    assert any(p.startswith("0794") for p in phones)
    tags = Counter(t for c in session.scalars(select(Citizen)) for t in c.tags)
    assert tags["elderly"] > 30 and tags["repeat_caller"] > 10 and 1 <= tags["blocked"] <= 10


def test_cases_span_the_year_and_mixes(seeded):
    session, _ = seeded
    cases = session.scalars(select(Case)).all()
    first = min(c.created_at for c in cases).astimezone(TZ).date()
    last = max(c.created_at for c in cases).astimezone(TZ).date()
    assert first >= TODAY - dt.timedelta(days=366)
    assert last < TODAY
    months = {c.created_at.astimezone(TZ).strftime("%Y-%m") for c in cases}
    assert len(months) >= 12
    n = len(cases)
    types = Counter(c.type for c in cases)
    assert 0.20 <= types[CaseType.CONSULTATION] / n <= 0.35
    assert 0.20 <= types[CaseType.COMPLAINT] / n <= 0.45
    assert 0 < types[CaseType.PRAISE] / n <= 0.08
    channels = Counter(c.channel for c in cases)
    assert 0.60 <= channels[Channel.PHONE] / n <= 0.80
    assert all(channels[ch] > 0 for ch in Channel)
    statuses = Counter(c.status for c in cases)
    assert statuses[CaseStatus.CLOSED] / n > 0.6
    for st in (CaseStatus.ANSWERED_DIRECTLY, CaseStatus.MERGED, CaseStatus.SIGNED,
               CaseStatus.REPLIED):
        assert statuses[st] > 0, st
    rated = [c.satisfaction for c in cases if c.satisfaction is not None]
    good = sum(s != Satisfaction.DISSATISFIED for s in rated)
    assert len(rated) > 1000 and good / len(rated) >= 0.9


def test_case_numbers(seeded):
    session, _ = seeded
    rows = session.execute(select(Case.number, Case.created_at)).all()
    numbers = [r.number for r in rows]
    assert len(set(numbers)) == len(numbers)
    per_day: dict[str, list[int]] = defaultdict(list)
    for number, created in rows:
        m = NUMBER_RE.match(number)
        assert m, number
        assert m.group(1) == created.astimezone(TZ).strftime("%Y%m%d")
        per_day[m.group(1)].append(int(m.group(2)))
    for seqs in per_day.values():
        assert sorted(seqs) == list(range(1, len(seqs) + 1))
    counters = {c.day.strftime("%Y%m%d"): c.last_seq
                for c in session.scalars(select(CaseNumberCounter))}
    assert counters == {day: len(seqs) for day, seqs in per_day.items()}


def test_every_case_has_a_consistent_audit_trail(seeded):
    session, _ = seeded
    events: dict[int, list[CaseEvent]] = defaultdict(list)
    for e in session.scalars(select(CaseEvent).order_by(CaseEvent.id)):
        events[e.case_id].append(e)
    cases = session.scalars(select(Case)).all()
    for case in cases:
        trail = events[case.id]
        assert trail, case.number
        assert trail[0].action == "file" and trail[0].to_status == CaseStatus.FILED
        assert trail[-1].to_status == case.status, case.number
        for before, after in pairwise(trail):
            assert after.from_status == before.to_status, case.number
            assert after.at >= before.at, case.number
        assert all(e.actor_label for e in trail)
        for text in (case.title, case.description, case.reply_text or ""):
            assert "{" not in text and "}" not in text, case.number  # no unfilled template
        if case.status == CaseStatus.CLOSED:
            assert case.closed_at is not None and case.replied_at is not None
        if case.dispatched_at is not None:
            assert case.sign_by is not None and case.handle_by is not None
            assert case.handle_by > case.dispatched_at
    merged = [c for c in cases if c.status == CaseStatus.MERGED]
    assert merged and all(c.merged_into_id is not None for c in merged)


def test_contacts(seeded):
    session, _ = seeded
    contacts = session.scalars(select(Contact)).all()
    uids = [c.asterisk_uniqueid for c in contacts if c.asterisk_uniqueid]
    assert len(uids) == len(set(uids))
    assert all(re.fullmatch(r"\d{10}\.\d+", u) for u in uids)
    phone = [c for c in contacts if c.channel == Channel.PHONE and c.case_id is not None]
    assert phone and all(c.ivr_path and c.ivr_path[0]["step"] == "welcome" for c in phone)
    assert all(c.agent_id is not None and c.answered_at is not None for c in phone)
    for c in contacts:
        steps = [s["at"] for s in c.ivr_path if "at" in s]
        assert steps == sorted(steps), c.ivr_path
        if c.answered_at is not None:
            assert c.started_at <= c.answered_at <= c.ended_at
    outcomes = Counter(c.outcome.value for c in contacts if c.case_id is None)
    for outcome in ("answered", "abandoned", "self_service", "blocked"):
        assert outcomes[outcome] > 0, outcome
    linked = {c.case_id for c in contacts if c.case_id is not None}
    assert len(linked) == session.scalar(select(func.count()).select_from(Case))


def test_seed_is_deterministic(seeded):
    session, counts = seeded
    other, other_counts = _seed(import_kb=False)
    try:
        first = session.execute(select(Case.number, Case.title, Case.status).order_by(Case.id))
        second = other.execute(select(Case.number, Case.title, Case.status).order_by(Case.id))
        assert first.all() == second.all()
        counts = {k: v for k, v in counts.items() if k != "kb_articles"}
        assert counts == other_counts
    finally:
        other.close()


def test_refuses_a_database_that_is_not_empty(seeded):
    session, _ = seeded
    with pytest.raises(DemoDataError, match="empty database"):
        seed_demo(session, today=TODAY, demo_password=PASSWORD)


def test_lifecycle_counters_agree_with_the_trail(seeded):
    """return_count, responsibility_fixed, satisfaction and callback tasks as the lifecycle
    code would have left them, so the supervisors' lists and KPIs mean something."""
    from cases.models import CallbackTaskStatus, CaseCallback
    from cases.supervision import disputed_cases, review_cases

    session, counts = seeded
    events: dict[int, list[CaseEvent]] = defaultdict(list)
    for e in session.scalars(select(CaseEvent).order_by(CaseEvent.id)):
        events[e.case_id].append(e)
    cases = session.scalars(select(Case)).all()
    for case in cases:
        trail = events[case.id]
        assert case.return_count == sum(e.action == "return" for e in trail), case.number
        assert case.responsibility_fixed == any(e.action == "coordinate" for e in trail)
        if case.status == CaseStatus.UNDER_REVIEW:
            assert case.satisfaction == Satisfaction.DISSATISFIED
            assert trail[-1].action == "rate_dissatisfied"
        for e in trail:
            if e.action == "reopen":  # a reopen follows a dissatisfied callback's review
                assert e.from_status == CaseStatus.UNDER_REVIEW, case.number
    disputed = disputed_cases(session, limit=1000)
    assert len(disputed) >= 3
    assert all(c.return_count >= 2 and c.status == CaseStatus.RETURNED for c in disputed)
    assert sum(c.responsibility_fixed for c in cases) >= 3
    review = review_cases(session, limit=1000)
    assert len(review) >= 3
    tasks = {t.case_id: t for t in session.scalars(select(CaseCallback))}
    assert counts["case_callbacks"] == len(tasks)
    replied = [c for c in cases if c.status == CaseStatus.REPLIED]
    assert replied and all(tasks[c.id].status == CallbackTaskStatus.OPEN for c in replied)
    assert all(tasks[c.id].satisfaction == Satisfaction.DISSATISFIED for c in review)
    assert set(tasks) == {c.id for c in replied} | {c.id for c in review}
