import pytest

from cases.state_machine import (
    OPEN_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    CaseAction,
    CaseStatus,
    IllegalTransition,
    allowed_actions,
    next_status,
)


def test_main_path_filed_to_closed():
    status = CaseStatus.FILED
    for action in (CaseAction.DISPATCH, CaseAction.SIGN, CaseAction.REPLY, CaseAction.CLOSE):
        status = next_status(status, action)
    assert status == CaseStatus.CLOSED


def test_return_and_redispatch_and_reopen():
    assert next_status(CaseStatus.SIGNED, CaseAction.RETURN) == CaseStatus.RETURNED
    assert next_status(CaseStatus.RETURNED, CaseAction.DISPATCH) == CaseStatus.DISPATCHED
    assert next_status(CaseStatus.CLOSED, CaseAction.REOPEN) == CaseStatus.REOPENED
    assert next_status(CaseStatus.REOPENED, CaseAction.DISPATCH) == CaseStatus.DISPATCHED


def test_illegal_transition_names_allowed_actions():
    with pytest.raises(IllegalTransition) as err:
        next_status(CaseStatus.FILED, CaseAction.SIGN)
    assert "'sign' is not allowed" in str(err.value)
    assert "dispatch" in str(err.value)


def test_terminal_statuses_allow_nothing_but_reopen_of_closed():
    for status in TERMINAL_STATUSES:
        actions = allowed_actions(status)
        assert actions == ([CaseAction.REOPEN] if status == CaseStatus.CLOSED else [])


def test_every_status_is_reachable_and_classified():
    reachable = {CaseStatus.FILED} | {t.target for t in TRANSITIONS.values()}
    assert reachable == set(CaseStatus)
    assert OPEN_STATUSES.isdisjoint(TERMINAL_STATUSES)


def test_return_needs_a_basis():
    assert TRANSITIONS[CaseAction.RETURN].comment_required
    assert not TRANSITIONS[CaseAction.SIGN].comment_required
