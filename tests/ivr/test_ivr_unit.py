"""The IVR logic and the FastAGI session handling without Asterisk: recorded exchanges from
Asterisk 22 replayed over a socket, a fake record store, and the journal on disk."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import logging
import socket
from pathlib import Path

import pytest
from sqlalchemy import select

from agi.channel import HotlineAgi
from agi.ivr import IvrDeps
from agi.records import RecordStore
from agi.server import handle_connection
from agi.spool import (
    KIND_UNRECORDED,
    Spool,
    collect_unrecorded,
    parse_unrecorded_line,
    replay_once,
    spool_dir,
)
from cases.ivr_records import (
    CallerInfo,
    ContactSnapshot,
    SurveyResult,
    apply_contact_snapshot,
    apply_survey,
    clean_caller_id,
    lookup_caller,
    parse_case_number,
)
from cases.models import Citizen, CitizenPhone, Contact, ContactOutcome, Satisfaction
from hotline.services import Services
from hotline.settings import Settings
from tests.factories import make_org
from tests.ivr.fake_channel import ReplayingAsterisk, env_block, load


class FakeStore:
    """RecordStore's interface, in memory."""

    def __init__(self, info: CallerInfo | None = None) -> None:
        self.info = info or CallerInfo(number=None)
        self.contacts: list[dict] = []
        self.surveys: list[dict] = []
        self.db_s = 0.0
        self.journal_s = 0.0

    def lookup_caller(self, raw: str, *, now: dt.datetime, uniqueid: str) -> CallerInfo:
        return self.info

    def find_case(self, entered: str) -> None:
        return None

    def save_contact(self, snap: ContactSnapshot) -> None:
        self.contacts.append(json.loads(json.dumps(snap.to_json())))

    def save_survey(self, result: SurveyResult) -> None:
        self.surveys.append(result.to_json())

    def save_callback(self, record: object) -> None:
        raise AssertionError("no callback expected")


def serve(exchange: list[tuple[str, str]], store: FakeStore, settings: Settings,
          **kw: object) -> ReplayingAsterisk:
    asterisk = ReplayingAsterisk(exchange, **kw)  # type: ignore[arg-type]
    deps = IvrDeps(settings=settings, store=store)  # type: ignore[arg-type]
    asterisk.run_against(lambda conn: handle_connection(conn, deps, None))
    return asterisk


def test_recorded_session_caller_hangs_up_during_the_callback_offer(tmp_path: Path) -> None:
    """Replays Asterisk 22: the caller pressed 1 in the welcome, nobody was logged in to
    the consultation queue, the IVR offered a callback and the caller hung up (result=-1,
    then HANGUP): the record says so, and nothing raises."""
    store = FakeStore(CallerInfo(number="13800000077"))
    asterisk = serve(load("asterisk22_ivr_press_1.agi"), store, Settings(var_dir=tmp_path))
    assert asterisk.mismatch is None, asterisk.mismatch
    final = store.contacts[-1]
    assert final["uniqueid"] == "hotline-ivrdbg-1795826501.11"
    assert final["linkedid"] == "hotline-ivrdbg-1795826501.11"
    assert (final["from_address"], final["to_address"]) == ("13800000077", "12345")
    assert [s["step"] for s in final["ivr_path"]] == [
        "caller_lookup", "menu", "route", "callback_offer", "caller_hung_up"]
    assert final["ivr_path"][2]["no_agents"] is True
    assert final["outcome"] == "abandoned" and final["ended_at"]
    assert len(store.contacts) == 2  # at the start, and the final state


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("", None),
        ("anonymous", "anonymous"),
        ("unknown", "unknown"),
        ("1" * 80, "1" * 40),
        ('13800138000" <evil>', "13800138000 evil"),
        ("+86 138-0013-8000", "13800138000"),
    ],
)
def test_garbage_caller_ids_are_cleaned_and_the_menu_still_runs(
    tmp_path: Path, raw: str, stored: str | None
) -> None:
    exchange = [
        *env_block(agi_callerid=raw),
        (">", 'GET FULL VARIABLE "${SET(HOTLINE_IVR=${CHANNEL(linkedid)})}"'),
        ("<", "200 result=1 (1.1)"),
        (">", 'STREAM FILE hotline/zh/welcome "0123456789*#"'),
        ("<", "200 result=50 endpos=100"),  # "2"
        (">", 'GET FULL VARIABLE "${QUEUE_WAITING_COUNT(complaint)},'
              '${QUEUE_MEMBER(complaint,logged)},${QUEUE_MEMBER(complaint,free)}"'),
        ("<", "200 result=1 (0,1,1)"),
        (">", 'SET VARIABLE HOTLINE_QUEUE "complaint"'),
        ("<", "200 result=1"),
        (">", 'STREAM FILE hotline/zh/transfer_complaint ""'),
        ("<", "200 result=0 endpos=9000"),
    ]
    store = FakeStore()
    asterisk = serve(exchange, store, Settings(var_dir=tmp_path))
    assert asterisk.mismatch is None, asterisk.mismatch
    assert store.contacts[-1]["from_address"] == stored
    assert store.contacts[-1]["queue"] == "complaint"


def test_caller_id_with_newline_cannot_inject_agi_lines() -> None:
    assert clean_caller_id('138\n0013"8000\r\x00') == "13800138000"
    assert clean_caller_id("SET VARIABLE X\n1") == "SET VARIABLE X1"


def test_unknown_script_is_logged_and_the_connection_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FakeStore()
    with caplog.at_level(logging.WARNING):
        asterisk = serve([*env_block(agi_network_script="rm-rf", agi_request="agi://x/rm-rf"),
                          (">", "")],
                         store, Settings(var_dir=tmp_path))
    assert asterisk.received == [""]  # no command, just the close
    assert "unknown AGI script 'rm-rf'" in caplog.text
    assert store.contacts == []


@pytest.mark.parametrize("close_after", [0, 5, 24, 25, 26])
def test_client_disconnecting_at_any_point_never_raises(tmp_path: Path, close_after: int) -> None:
    """Asterisk (or anything) closing the socket mid-environment or mid-command."""
    store = FakeStore(CallerInfo(number="13800000077"))
    serve(load("asterisk22_ivr_press_1.agi"), store, Settings(var_dir=tmp_path),
          close_after=close_after)
    if store.contacts:  # once the IVR started, the call is recorded as abandoned
        assert store.contacts[-1]["outcome"] == "abandoned"


def test_agi_parser_reads_hangup_and_dead_channel_as_hangup() -> None:
    ours, theirs = socket.socketpair()
    import io

    from asterisk.agi import AGIHangup

    theirs.sendall(b"agi_network_script: ivr\n\n511 Command Not Permitted on a dead channel\n")
    agi = HotlineAgi(io.TextIOWrapper(ours.makefile("rb")),  # type: ignore[arg-type]
                     io.TextIOWrapper(ours.makefile("wb"), write_through=True))  # type: ignore[arg-type]
    assert agi.env == {"agi_network_script": "ivr"}
    with pytest.raises(AGIHangup):
        agi.execute("ANSWER")
    ours.close()
    theirs.close()


def test_case_numbers_as_typed_on_a_keypad() -> None:
    assert parse_case_number("2026112700042") == "20261127-00042"
    assert parse_case_number("20261127*00042#") == "20261127-00042"
    assert parse_case_number("123") is None
    assert parse_case_number("") is None


# ---- the record store against the database: journal, writer, idempotence -------------


def test_journal_is_applied_in_order_idempotently_and_survives_a_missing_database(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    with services.session_factory() as s:
        org = make_org(s)
        agent_id, citizen_id = org.agent.id, org.citizen.id
    store = RecordStore(settings)
    now = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC)
    snap = ContactSnapshot(uniqueid="1.1", started_at=now, from_address="13800138000",
                           to_address="12345")
    store.save_contact(snap)
    snap.ivr_path.append({"step": "menu", "digit": "2"})
    snap.queue = "complaint"
    store.save_contact(snap)
    store.save_survey(SurveyResult(uniqueid="1.1", at=now, rating=Satisfaction.SATISFIED,
                                   agent_extension="8001"))
    spool = Spool(spool_dir(settings))
    assert len(spool.pending()) == 3
    # The database is away: nothing is lost, nothing applied.
    broken = Services.build(Settings(env="test", var_dir=tmp_path,
                                     database_url="postgresql://nobody@127.0.0.1:1/none"))  # type: ignore[arg-type]
    result = replay_once(spool, broken.transaction)
    assert result.unavailable and result.applied == 0 and len(spool.pending()) == 3
    # Back: applied in order, in one batch.
    result = replay_once(spool, store.write_transaction)
    assert (result.applied, result.failed, spool.pending()) == (3, 0, [])
    with services.session_factory() as s:
        contact = s.scalars(select(Contact)).one()
        assert contact.citizen_id == citizen_id  # resolved from the number on replay
        assert contact.queue == "complaint"
        assert contact.survey_rating == Satisfaction.SATISFIED
        assert contact.agent_id == agent_id
        assert contact.outcome == ContactOutcome.ANSWERED
    # A late IVR snapshot never takes the survey's outcome back.
    with store.write_transaction() as s:
        apply_contact_snapshot(s, snap)
        apply_survey(s, SurveyResult(uniqueid="1.1", at=now, rating=None))
    with services.session_factory() as s:
        assert s.scalars(select(Contact)).one().outcome == ContactOutcome.ANSWERED
    store.close()
    broken.close()


def test_repeat_and_blocked_callers(services: Services) -> None:
    now = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC)
    with services.transaction() as s:
        s.add(Citizen(name="x", tags=["blocked"], phones=[CitizenPhone(number="13900000666")]))
        s.add(Contact(channel="phone", from_address="13900000001",
                      started_at=now - dt.timedelta(hours=3), ivr_path=[]))
        s.add(Contact(channel="phone", from_address="13900000002",
                      started_at=now - dt.timedelta(hours=30), ivr_path=[]))
    with services.session_factory() as s:
        window = dt.timedelta(hours=24)
        assert lookup_caller(s, "13900000666", now=now, repeat_window=window).blocked
        assert lookup_caller(s, "13900000001", now=now, repeat_window=window).repeat
        assert not lookup_caller(s, "13900000002", now=now, repeat_window=window).repeat
        assert lookup_caller(s, "anonymous", now=now, repeat_window=window).number is None


# ---- calls the IVR never saw: Asterisk's hang-up record (agi/spool.py) -----------------


def _line(uniqueid: str = "1795835981.42", caller: str = "13800138000", **extra: str) -> str:
    fields = {
        "v": "1", "uniqueid": uniqueid, "linkedid": uniqueid, "caller": caller,
        "dialled": "12345", "started": "1795835981.250", "ended": "1795835984.500",
        "agistatus": "FAILURE", "queue": "consultation", "agent": "", "cause": "16",
    }
    fields.update(extra)
    for text in ("uniqueid", "linkedid", "caller", "dialled", "queue", "agent"):
        fields[text] = base64.b64encode(f"x{fields[text]}".encode()).decode()
    return " ".join(f"{k}={v}" for k, v in fields.items())


def test_unrecorded_line_becomes_a_contact_saying_the_ivr_never_ran() -> None:
    snap = parse_unrecorded_line(_line())
    assert snap is not None
    assert (snap.uniqueid, snap.linkedid) == ("1795835981.42", "1795835981.42")
    assert (snap.from_address, snap.to_address) == ("13800138000", "12345")
    assert snap.started_at == dt.datetime(2026, 11, 28, 3, 19, 41, 250000, tzinfo=dt.UTC)
    assert snap.ended_at is not None and (snap.ended_at - snap.started_at).total_seconds() == 3.25
    assert snap.outcome == ContactOutcome.FAILED
    assert snap.outcome_reason == "IVR never ran (AGISTATUS=FAILURE)"
    assert [s["step"] for s in snap.ivr_path] == ["ivr_not_run", "route", "hangup"]
    assert snap.queue == "consultation"
    answered = parse_unrecorded_line(_line(agent="PJSIP/8001"))
    assert answered is not None and answered.outcome == ContactOutcome.ANSWERED
    assert answered.outcome_reason == "IVR never ran (AGISTATUS=FAILURE); answered by 8001"


@pytest.mark.parametrize("line", [
    "", "garbage", _line(uniqueid=""), _line(v="2"), _line(started="x", ended="y"),
    "v=1 uniqueid=%%% started=1 ended=2", "v=1 uniqueid=MTIz started=1 ended=2",
])
def test_unusable_unrecorded_lines_are_skipped(line: str) -> None:
    assert parse_unrecorded_line(line) is None


def test_unrecorded_line_values_are_never_trusted() -> None:
    snap = parse_unrecorded_line(_line(caller='"><script>\n13800138000', queue="../etc",
                                       agistatus="x", started="1e300", dialled=""))
    assert snap is not None
    assert snap.from_address == "script13800138000"  # cleaned like any caller ID
    assert snap.queue is None and snap.to_address is None
    assert snap.started_at == snap.ended_at  # an impossible start: the end stands in
    assert snap.ivr_path[0]["agi_status"] == "UNKNOWN"
    early = parse_unrecorded_line(_line(agistatus=""))
    assert early is not None and early.ivr_path[0]["agi_status"] == "NOT_REACHED"


def test_unrecorded_log_is_taken_over_journaled_once_and_deduplicated(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    log_path = tmp_path / "pbx-spool" / "hotline-unrecorded.log"
    log_path.parent.mkdir()
    spool = Spool(spool_dir(settings))
    log_path.write_text(_line("1.1") + "\n" + _line("1.2") + "\nnot a record\n")
    assert collect_unrecorded(log_path, spool) == 0  # renamed; read once it settled
    assert not log_path.exists()
    log_path.write_text(_line("1.3") + "\n")  # Asterisk's next line starts a new file
    assert collect_unrecorded(log_path, spool, settle_s=0) == 2
    assert collect_unrecorded(log_path, spool, settle_s=0) == 1
    assert collect_unrecorded(log_path, spool, settle_s=0) == 0
    assert list(log_path.parent.iterdir()) == []
    # Call 1.1 also has the IVR's own record, call 1.2's arrives after Asterisk's: either
    # way one contact per call, and the IVR's record wins.
    store = RecordStore(settings)
    ivr_snap = ContactSnapshot(uniqueid="1.1", started_at=dt.datetime.now(dt.UTC),
                               from_address="13800138000", queue="complaint")
    with store.write_transaction() as s:
        apply_contact_snapshot(s, ivr_snap)
    assert replay_once(spool, store.write_transaction).applied == 3
    store.save_contact(dataclasses.replace(ivr_snap, uniqueid="1.2"))
    spool.put(KIND_UNRECORDED, "1.3", parse_unrecorded_line(_line("1.3")).to_json())  # type: ignore[union-attr]
    assert replay_once(spool, store.write_transaction).applied == 2
    with services.session_factory() as s:
        rows = {c.asterisk_uniqueid: c for c in s.scalars(select(Contact))}
    assert sorted(rows) == ["1.1", "1.2", "1.3"]
    assert rows["1.1"].queue == "complaint" and rows["1.1"].outcome == ContactOutcome.IN_PROGRESS
    assert rows["1.2"].queue == "complaint" and rows["1.2"].ivr_path == []
    assert rows["1.3"].outcome == ContactOutcome.FAILED
    assert rows["1.3"].ivr_path[0]["step"] == "ivr_not_run"
    store.close()
