"""Whole lifecycles with a controllable clock across weekends and the 2026 National Day
holiday, on SQLite and (HOTLINE_TEST_DATABASE_URL) PostgreSQL."""

import pytest
from sqlalchemy import select

from cases import lifecycle as lc
from cases.lifecycle import Attachment, LifecycleRefused, NotYourDepartment
from cases.models import CallbackTaskStatus, Case, CaseCallback, CaseEvent, Satisfaction
from cases.service import Actor, CaseInputError
from cases.state_machine import CaseStatus, IllegalTransition
from tests.lifecycle.conftest import file, local


def act(services, number, fn, *args, **kwargs):
    """Run one lifecycle action in its own transaction, as the API does."""
    with services.transaction() as s:
        case = s.scalar(select(Case).where(Case.number == number))
        fn(s, case, *args, **kwargs)


def get(services, number):
    with services.session_factory() as s:
        case = s.scalar(select(Case).where(Case.number == number))
        events = s.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                           .order_by(CaseEvent.id)).all()
        s.expunge_all()
        return case, events


def test_dispatch_sign_reply_callback_close_over_a_make_up_weekend(services, org, clock, ctx_for):
    number = file(services, org, clock)  # Friday 2026-09-18 16:00
    with services.transaction() as s:
        case = s.scalar(select(Case).where(Case.number == number))
        lc.dispatch(s, case, s.merge(org.roads), Actor.of(org.agent), comment="转住建局",
                    ctx=ctx_for())
    case, _ = get(services, number)
    assert case.status == CaseStatus.DISPATCHED
    # 1 working day to sign: Sunday 09-20 is a make-up working day.
    assert case.sign_by == local(2026, 9, 20, 16, 0)
    # 5 working days: 09-20, 21, 22, 23, 24.
    assert case.handle_by == local(2026, 9, 24, 16, 0)

    clock.set(2026, 9, 21, 9, 0)
    act(services, number, lc.sign, Actor.of(org.roads_staff),
        acting_department_id=org.roads.id, ctx=ctx_for())
    clock.set(2026, 9, 23, 15, 0)
    act(services, number, lc.reply, Actor.of(org.roads_staff), "已修复路面。",
        acting_department_id=org.roads.id, ctx=ctx_for(),
        attachments=[Attachment("after.jpg", 204800, "image/jpeg", "ab" * 32)])
    case, _ = get(services, number)
    assert case.status == CaseStatus.REPLIED and case.first_signed_department_id == org.roads.id
    with services.session_factory() as s:
        task = s.scalar(select(CaseCallback).where(CaseCallback.case_id == case.id))
        assert task.status == CallbackTaskStatus.OPEN
        assert task.due_at == local(2026, 9, 24, 15, 0)

    clock.set(2026, 9, 24, 10, 0)
    act(services, number, lc.record_callback, Actor.of(org.agent), reached=False, ctx=ctx_for())
    act(services, number, lc.record_callback, Actor.of(org.agent), reached=True,
        satisfaction=Satisfaction.BASICALLY_SATISFIED, note="市民表示基本满意", ctx=ctx_for())
    case, events = get(services, number)
    assert case.status == CaseStatus.CLOSED
    assert case.satisfaction == Satisfaction.BASICALLY_SATISFIED
    assert [e.action for e in events] == [
        "file", "dispatch", "sign", "reply", "callback_attempt", "close"]
    reply_event = events[3]
    assert reply_event.actor_label == "dept-roads"
    assert reply_event.at == local(2026, 9, 23, 15, 0)
    assert reply_event.data["attachments"][0]["name"] == "after.jpg"
    assert events[1].data["handle_by"] == local(2026, 9, 24, 16, 0).isoformat()


def test_return_needs_a_reason_and_redispatch_resets_the_clocks(services, org, clock, ctx_for):
    number = file(services, org, clock)
    act(services, number, lc.dispatch, org.water, Actor.of(org.agent), ctx=ctx_for())
    with pytest.raises(CaseInputError, match="reason"):
        act(services, number, lc.return_case, Actor.of(org.water_staff), "  ",
            acting_department_id=org.water.id, ctx=ctx_for())
    with pytest.raises(NotYourDepartment):
        act(services, number, lc.return_case, Actor.of(org.roads_staff), "不是我们的",
            acting_department_id=org.roads.id, ctx=ctx_for())
    clock.advance(hours=1)
    act(services, number, lc.return_case, Actor.of(org.water_staff), "道路破损属住建局职责",
        acting_department_id=org.water.id, basis="《市政设施管理条例》第十二条",
        suggested_department_id=org.roads.id, ctx=ctx_for())
    case, events = get(services, number)
    assert case.status == CaseStatus.RETURNED and case.return_count == 1
    assert case.handle_by is None
    assert events[-1].data["basis"].startswith("《市政")
    clock.set(2026, 9, 30, 10, 0)  # re-dispatched just before 国庆
    act(services, number, lc.dispatch, org.roads, Actor.of(org.supervisor), ctx=ctx_for())
    case, _ = get(services, number)
    assert case.department_id == org.roads.id
    assert case.handle_by == local(2026, 10, 13, 10, 0)
    assert case.sign_by == local(2026, 10, 8, 10, 0)


def test_first_department_to_sign_stays_responsible(services, org, clock, ctx_for):
    number = file(services, org, clock)
    act(services, number, lc.dispatch, org.roads, Actor.of(org.agent), ctx=ctx_for())
    act(services, number, lc.sign, Actor.of(org.roads_staff), acting_department_id=org.roads.id,
        ctx=ctx_for())
    with pytest.raises(LifecycleRefused, match="首接负责"):
        act(services, number, lc.return_case, Actor.of(org.roads_staff), "其实不归我们",
            acting_department_id=org.roads.id, ctx=ctx_for())


def test_extension_moves_the_deadline_by_working_days(services, org, clock, ctx_for):
    number = file(services, org, clock)
    act(services, number, lc.dispatch, org.roads, Actor.of(org.agent), ctx=ctx_for())
    act(services, number, lc.sign, Actor.of(org.roads_staff), acting_department_id=org.roads.id,
        ctx=ctx_for())
    clock.set(2026, 9, 22, 11, 0)
    act(services, number, lc.request_extension, Actor.of(org.roads_staff), 3, "需协调燃气管线迁改",
        acting_department_id=org.roads.id, ctx=ctx_for())
    act(services, number, lc.approve_extension, Actor.of(org.supervisor), ctx=ctx_for())
    case, events = get(services, number)
    # 09-24 16:00 + 3 working days: 25-27 中秋 holiday, 28, 29, 30.
    assert case.handle_by == local(2026, 9, 30, 16, 0)
    assert case.status == CaseStatus.SIGNED
    assert events[-1].data["handle_by_before"] == local(2026, 9, 24, 16, 0).isoformat()
    # A second request after the deadline is refused.
    clock.set(2026, 10, 8, 9, 0)
    with pytest.raises(LifecycleRefused, match="before"):
        act(services, number, lc.request_extension, Actor.of(org.roads_staff), 2, "再延",
            acting_department_id=org.roads.id, ctx=ctx_for())


def test_refused_extension_keeps_the_deadline(services, org, clock, ctx_for):
    number = file(services, org, clock)
    act(services, number, lc.dispatch, org.roads, Actor.of(org.agent), ctx=ctx_for())
    act(services, number, lc.sign, Actor.of(org.roads_staff), acting_department_id=org.roads.id,
        ctx=ctx_for())
    act(services, number, lc.request_extension, Actor.of(org.roads_staff), 5, "材料未到",
        acting_department_id=org.roads.id, ctx=ctx_for())
    act(services, number, lc.refuse_extension, Actor.of(org.supervisor), "理由不充分",
        ctx=ctx_for())
    case, _ = get(services, number)
    assert case.status == CaseStatus.SIGNED and case.handle_by == local(2026, 9, 24, 16, 0)


def test_dissatisfied_callback_goes_to_review_then_reopen_or_close(services, org, clock, ctx_for):
    numbers = [file(services, org, clock) for _ in range(2)]
    for number in numbers:
        act(services, number, lc.dispatch, org.roads, Actor.of(org.agent), ctx=ctx_for())
        act(services, number, lc.sign, Actor.of(org.roads_staff),
            acting_department_id=org.roads.id, ctx=ctx_for())
        act(services, number, lc.reply, Actor.of(org.roads_staff), "已处理",
            acting_department_id=org.roads.id, ctx=ctx_for())
        act(services, number, lc.record_callback, Actor.of(org.agent), reached=True,
            satisfaction=Satisfaction.DISSATISFIED, note="路面仍有坑洼", ctx=ctx_for())
        assert get(services, number)[0].status == CaseStatus.UNDER_REVIEW
    reopened, closed = numbers
    with pytest.raises(CaseInputError):
        act(services, reopened, lc.review_reopen, Actor.of(org.supervisor), "", ctx=ctx_for())
    act(services, reopened, lc.review_reopen, Actor.of(org.supervisor), "承办单位未实际修复",
        ctx=ctx_for())
    clock.set(2026, 9, 21, 9, 0)
    act(services, reopened, lc.dispatch, org.roads, Actor.of(org.supervisor), ctx=ctx_for())
    case, _ = get(services, reopened)
    # 5 working days from Monday 09-21: 22, 23, 24, (25-27 中秋), 28, 29.
    assert case.status == CaseStatus.DISPATCHED and case.handle_by == local(2026, 9, 29, 9, 0)
    act(services, closed, lc.review_close, Actor.of(org.supervisor),
        "诉求超出政策规定，已解释", ctx=ctx_for())
    case, events = get(services, closed)
    assert case.status == CaseStatus.CLOSED and events[-1].action == "close_after_review"


def test_unreachable_citizen_closes_after_the_configured_attempts(services, org, clock, ctx_for):
    number = file(services, org, clock)
    act(services, number, lc.dispatch, org.roads, Actor.of(org.agent), ctx=ctx_for())
    act(services, number, lc.sign, Actor.of(org.roads_staff), ctx=ctx_for())
    act(services, number, lc.reply, Actor.of(org.roads_staff), "已处理", ctx=ctx_for())
    for _ in range(3):
        act(services, number, lc.record_callback, Actor.of(org.agent), reached=False,
            ctx=ctx_for())
    case, events = get(services, number)
    assert case.status == CaseStatus.CLOSED and case.satisfaction is None
    assert events[-1].data == {"reached": False, "attempts": 3}


def test_illegal_actions_are_refused_with_the_allowed_ones(services, org, clock, ctx_for):
    number = file(services, org, clock)
    with pytest.raises(IllegalTransition, match="'sign' is not allowed"):
        act(services, number, lc.sign, Actor.of(org.roads_staff), ctx=ctx_for())
    with pytest.raises(IllegalTransition):
        act(services, number, lc.reply, Actor.of(org.roads_staff), "x", ctx=ctx_for())


def test_coordination_fixes_the_responsible_department(services, org, clock, ctx_for):
    number = file(services, org, clock)
    for dept, staff in ((org.water, org.water_staff), (org.roads, org.roads_staff)):
        act(services, number, lc.dispatch, dept, Actor.of(org.agent), ctx=ctx_for())
        act(services, number, lc.return_case, Actor.of(staff), "不属于本单位职责",
            acting_department_id=dept.id, ctx=ctx_for())
    from cases.supervision import disputed_cases
    with services.session_factory() as s:
        assert [c.number for c in disputed_cases(s)] == [number]
    act(services, number, lc.coordinate, org.roads, Actor.of(org.supervisor),
        "经协调会议商定由住建局牵头办理", ctx=ctx_for())
    case, _ = get(services, number)
    assert case.responsibility_fixed and case.status == CaseStatus.DISPATCHED
    with services.session_factory() as s:
        assert disputed_cases(s) == []
    with pytest.raises(LifecycleRefused, match="fixed"):
        act(services, number, lc.return_case, Actor.of(org.roads_staff), "还是不归我们",
            acting_department_id=org.roads.id, ctx=ctx_for())
    with pytest.raises(LifecycleRefused):
        act(services, number, lc.dispatch, org.water, Actor.of(org.agent), ctx=ctx_for())
