"""The supervision scheduler: reminders, overdue marking, escalation after N working days,
circulars; each notice exactly once, with two schedulers (two Services, one database)."""

import threading

from sqlalchemy import func, select

from cases import lifecycle as lc
from cases.models import Case, CaseEvent, Circular, SupervisionNotice
from cases.service import Actor
from cases.supervision import (
    ESCALATION,
    HANDLE_REMINDER,
    OVERDUE,
    SIGN_OVERDUE,
    SIGN_REMINDER,
    SupervisionScheduler,
)
from hotline.services import Services
from tests.lifecycle.conftest import file, local
from tests.lifecycle.test_scenarios import act


def kinds(services):
    with services.session_factory() as s:
        return sorted(s.scalars(select(SupervisionNotice.kind)).all())


def test_reminders_overdue_and_escalation_across_the_national_day_holiday(
        services, org, clock, ctx_for):
    clock.set(2026, 9, 29, 10, 0)  # Tuesday before 国庆
    number = file(services, org, clock)
    act(services, number, lc.dispatch, org.roads, Actor.of(org.agent), ctx=ctx_for())
    # sign by Wed 09-30 10:00; handle by 5 working days: 09-30, 10-08, 09, 10 (Sat), 12.
    with services.session_factory() as s:
        case = s.scalar(select(Case).where(Case.number == number))
        assert case.handle_by == local(2026, 10, 12, 10, 0)
    sched = SupervisionScheduler(services, clock=clock)
    assert sched.tick().notices == []
    clock.set(2026, 9, 30, 6, 0)  # 20 h of the 24 h sign window gone
    assert [n["kind"] for n in sched.tick().notices] == [SIGN_REMINDER]
    assert sched.tick().notices == []  # not twice
    clock.set(2026, 9, 30, 10, 1)
    assert [n["kind"] for n in sched.tick().notices] == [SIGN_OVERDUE]
    act(services, number, lc.sign, Actor.of(org.roads_staff), ctx=ctx_for())
    # 80 % of the handling window (13 calendar days) gone: 10-10 evening.
    clock.set(2026, 10, 10, 12, 0)
    assert [n["kind"] for n in sched.tick().notices] == [HANDLE_REMINDER]
    clock.set(2026, 10, 12, 10, 1)
    result = sched.tick()
    assert [n["kind"] for n in result.notices] == [OVERDUE]
    # Escalation after 2 working days overdue: Wed 10-14 10:00 (not counting the weekend).
    clock.set(2026, 10, 14, 9, 59)
    assert sched.tick().notices == []
    clock.set(2026, 10, 14, 10, 0)
    esc = sched.tick().notices
    assert [(n["kind"], n["audience"]) for n in esc] == [
        (ESCALATION, "department_head,supervision")]
    clock.set(2026, 10, 19, 10, 0)  # 5 working days: level 2
    assert [n["threshold"][-3:] for n in sched.tick().notices] == ["/L2"]
    assert sched.tick().notices == []
    with services.session_factory() as s:
        case = s.scalar(select(Case).where(Case.number == number))
        trail = [e.action for e in s.scalars(select(CaseEvent).where(
            CaseEvent.case_id == case.id).order_by(CaseEvent.id))]
    assert trail == ["file", "dispatch", "sign_reminder", "sign_overdue", "sign",
                     "handle_reminder", "mark_overdue", "escalate", "escalate"]


def test_extension_gives_new_deadline_new_notices(services, org, clock, ctx_for):
    number = file(services, org, clock)
    act(services, number, lc.dispatch, org.roads, Actor.of(org.agent), ctx=ctx_for())
    act(services, number, lc.sign, Actor.of(org.roads_staff), ctx=ctx_for())
    sched = SupervisionScheduler(services, clock=clock)
    clock.set(2026, 9, 24, 10, 0)
    assert [n["kind"] for n in sched.tick().notices] == [HANDLE_REMINDER]
    act(services, number, lc.request_extension, Actor.of(org.roads_staff), 3, "需要协调",
        ctx=ctx_for())
    act(services, number, lc.approve_extension, Actor.of(org.supervisor), ctx=ctx_for())
    clock.set(2026, 9, 30, 12, 0)
    assert [n["kind"] for n in sched.tick().notices] == [HANDLE_REMINDER]


def test_circular_once_per_month(services, org, clock, ctx_for):
    number = file(services, org, clock)
    act(services, number, lc.dispatch, org.roads, Actor.of(org.agent), ctx=ctx_for())
    sched = SupervisionScheduler(services, clock=clock)
    clock.set(2026, 9, 28, 12, 0)
    sched.tick()
    clock.set(2026, 10, 1, 0, 5)
    result = sched.tick()
    assert "2026-09" in result.circulars
    assert SupervisionScheduler(services, clock=clock).tick(use_lease=False).circulars == []
    with services.session_factory() as s:
        circular = s.scalar(select(Circular).where(Circular.period == "2026-09"))
    assert "住房和城乡建设局" in circular.body
    assert circular.summary["totals"]["open_overdue"] == 1


def test_two_schedulers_on_one_database_send_each_notice_once(services, settings, org, clock,
                                                              ctx_for):
    numbers = [file(services, org, clock) for _ in range(6)]
    for number in numbers:
        act(services, number, lc.dispatch, org.roads, Actor.of(org.agent), ctx=ctx_for())
    other = Services.build(settings)  # a second process's services: own engine and pool
    try:
        a = SupervisionScheduler(services, clock=clock, holder="a")
        b = SupervisionScheduler(other, clock=clock, holder="b")
        clock.set(2026, 9, 30, 12, 0)  # every case overdue, 2 working days past handle_by
        # Without the lease (as if it had expired mid-tick), both do the work at once:
        # the unique key still lets each notice through once.
        barrier = threading.Barrier(2)
        results = {}

        def run(name, sched):
            barrier.wait()
            results[name] = sched.tick(use_lease=False)

        threads = [threading.Thread(target=run, args=(n, s)) for n, s in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent = results["a"].notices + results["b"].notices
        assert len(sent) == len({(n["case_id"], n["kind"], n["threshold"]) for n in sent})
        with services.session_factory() as s:
            per_case = s.execute(select(SupervisionNotice.case_id, SupervisionNotice.kind,
                                        func.count()).group_by(SupervisionNotice.case_id,
                                                               SupervisionNotice.kind)).all()
            marks = s.scalar(select(func.count()).select_from(CaseEvent)
                             .where(CaseEvent.action == "mark_overdue"))
        assert {n for *_, n in per_case} == {1}
        assert len(per_case) == 6 * 3  # sign_overdue, overdue, escalation L1
        assert marks == 6  # one overdue mark per case in the trail
        # With the lease: the second scheduler skips its tick while the first holds it.
        clock.advance(days=3)
        assert a.tick().ran is True
        assert b.tick().ran is False
        clock.advance(minutes=5)  # a died; its lease expires; b takes over
        assert b.tick().ran is True
    finally:
        other.close()
