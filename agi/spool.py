"""The journal (spool): every call record is a small JSON file first, then a database row.

Workers never write to the database during a call: they put the record here and the call
goes on. The AGI server's writer process applies the records in the order they were
written, in batches, and deletes each after its transaction commits; while the database is
away it keeps them and retries with backoff. Records are idempotent by the call's uniqueid
(cases/ivr_records.py), so a crash between commit and delete only applies a record twice. A
record the database refuses for a reason other than being away moves to `failed/` with the
error next to it, for a person to look at.

Layout: <var_dir>/spool/agi/<time_ns>-<pid>-<seq>-<kind>-<uniqueid>.json

Calls the IVR never saw (FastAGI down or too slow, the caller gone before it answered) are
recorded by Asterisk itself: its hang-up handler appends a line to UNRECORDED_LOG in its own
spool (asterisk/extensions.conf.j2). `collect_unrecorded` takes that file over (rename, let
a write in flight settle, read) and journals each line as an `unrecorded` contact, which the
database gets only if the call has no contact yet (de-duplicated by uniqueid).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from agi import dialplan
from cases.ivr_records import (
    CallbackRecord,
    ContactSnapshot,
    SurveyResult,
    add_callback_request,
    apply_contact_snapshot,
    apply_survey,
    clean_caller_id,
)
from cases.models import ContactOutcome
from hotline.settings import Settings

log = logging.getLogger(__name__)

KIND_CONTACT = "contact"
KIND_SURVEY = "survey"
KIND_CALLBACK = "callback"
KIND_CASE_CALLBACK = "case_callback"
KIND_UNRECORDED = "unrecorded"  # a contact Asterisk recorded because the IVR never ran
_SAFE = re.compile(r"[^A-Za-z0-9._]")
_seq = itertools.count()


def spool_dir(settings: Settings) -> Path:
    return settings.var_dir / "spool" / "agi"


def is_unavailable(exc: BaseException) -> bool:
    """The database is away (retry later), as opposed to refusing this record."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def apply_record(session: Session, kind: str, data: dict[str, Any]) -> None:
    if kind == KIND_CONTACT:
        apply_contact_snapshot(session, ContactSnapshot.from_json(data))
    elif kind == KIND_SURVEY:
        apply_survey(session, SurveyResult.from_json(data))
    elif kind == KIND_CALLBACK:
        add_callback_request(session, CallbackRecord.from_json(data))
    elif kind == KIND_CASE_CALLBACK:  # the automated 回访 (agi/callback.py)
        from agi.callback import apply_case_callback

        apply_case_callback(session, data)
    elif kind == KIND_UNRECORDED:
        apply_contact_snapshot(session, ContactSnapshot.from_json(data), only_if_absent=True)
    else:
        raise ValueError(f"unknown spooled record kind {kind!r}")


class Spool:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.failed_dir = directory / "failed"

    def put(self, kind: str, uniqueid: str, data: dict[str, Any]) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        safe_id = _SAFE.sub("_", uniqueid)[:64]
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(_seq):06d}-{kind}-{safe_id}"
        tmp = self.dir / f".{name}.tmp"
        body = json.dumps({"kind": kind, "uniqueid": uniqueid, "data": data}, ensure_ascii=False)
        # No fsync: the file survives the process (the page cache outlives it); only a crash
        # of the whole machine could lose the last records (ADR 0006).
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(body)
        final = self.dir / f"{name}.json"
        os.replace(tmp, final)
        return final

    def pending(self) -> list[Path]:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return [self.dir / n for n in sorted(names) if n.endswith(".json")]

    def has_pending(self, uniqueid: str) -> bool:
        suffix = f"-{_SAFE.sub('_', uniqueid)[:64]}.json"
        try:
            return any(n.endswith(suffix) for n in os.listdir(self.dir))
        except FileNotFoundError:
            return False

    def fail(self, path: Path, error: str) -> None:
        self.failed_dir.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.failed_dir / path.name)
        (self.failed_dir / f"{path.name}.error.txt").write_text(error, encoding="utf-8")


@dataclass
class ReplayResult:
    applied: int = 0
    failed: int = 0
    unavailable: bool = False


def _load(spool: Spool, path: Path, out: ReplayResult) -> tuple[str, dict[str, Any]] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return str(record["kind"]), dict(record["data"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        log.error("spooled record %s is unreadable (%s): moved to failed/", path.name, exc)
        spool.fail(path, f"unreadable: {exc}")
        out.failed += 1
        return None


def replay_once(
    spool: Spool, transaction: Callable[[], Any], batch_size: int = 500
) -> ReplayResult:
    """Apply pending records in order, a batch per transaction; stop if the database is away.

    Of several snapshots of one call's contact in a batch only the newest is applied (each
    is the whole state). A batch the database refuses for another reason than being away is
    applied again record by record, so one bad record moves to failed/ alone.
    """
    out = ReplayResult()
    pending = spool.pending()
    for start in range(0, len(pending), batch_size):
        batch = []
        for path in pending[start:start + batch_size]:
            loaded = _load(spool, path, out)
            if loaded is not None:
                batch.append((path, *loaded))
        # Each contact snapshot is the call's whole state: apply the newest one, at the place
        # of the first (so a callback or survey record later in the batch finds the row).
        newest = {data.get("uniqueid"): data for _p, kind, data in batch if kind == KIND_CONTACT}
        todo, seen = [], set()
        for path, kind, data in batch:
            if kind == KIND_CONTACT:
                uid = data.get("uniqueid")
                if uid in seen:
                    continue
                seen.add(uid)
                data = newest[uid]
            todo.append((path, kind, data))
        try:
            with transaction() as session:
                for _path, kind, data in todo:
                    apply_record(session, kind, data)
        except Exception as exc:
            if is_unavailable(exc):
                out.unavailable = True
                log.info("database unavailable; %d record(s) wait in the spool",
                         len(pending) - start)
                return out
            log.warning("a batch of spooled records was refused (%s): one by one", exc)
            for path, kind, data in todo:
                try:
                    with transaction() as session:
                        apply_record(session, kind, data)
                except Exception as one_exc:
                    if is_unavailable(one_exc):
                        out.unavailable = True
                        return out
                    log.error("spooled record %s refused (%s): moved to failed/", path.name,
                              one_exc)
                    spool.fail(path, repr(one_exc))
                    out.failed += 1
                    batch = [b for b in batch if b[0] != path]
        for path, _kind, _data in batch:
            path.unlink(missing_ok=True)
            out.applied += 1
    return out


def run_replayer(
    spool: Spool,
    transaction: Callable[[], Any],
    *,
    should_stop: Callable[[], bool],
    idle_s: float = 0.1,
    max_backoff_s: float = 8.0,
    unrecorded_log: Path | None = None,
) -> None:
    """Replay forever: poll every `idle_s`, back off (doubling) while the database is away.
    With `unrecorded_log`, first journal the calls Asterisk recorded there."""
    backoff = 0.5
    while not should_stop():
        try:
            if unrecorded_log is not None:
                collect_unrecorded(unrecorded_log, spool)
            result = replay_once(spool, transaction)
        except Exception:  # never let the replayer die on a surprise; try again later
            log.exception("spool replay failed")
            result = ReplayResult(unavailable=True)
        if result.unavailable:
            time.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_s)
        else:
            backoff = 0.5
            time.sleep(idle_s)


# ---------------------------------------------------------------------------- calls the IVR
# never saw (Asterisk's hang-up handler, asterisk/extensions.conf.j2)

UNRECORDED_SETTLE_S = 1.0  # a taken file is read this long after the rename
_TAKEN = ".taken-"


def _epoch(value: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _b64(value: str) -> str:
    """A text field of the line: base64 of "x" + the value (extensions.conf.j2)."""
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""
    return text[1:] if text.startswith("x") else ""


def parse_unrecorded_line(line: str) -> ContactSnapshot | None:
    """One line of Asterisk's hang-up record (key=value pairs) as a contact; None if it has
    no usable uniqueid. Unknown keys are ignored, bad values dropped, never trusted."""
    fields = dict(part.partition("=")[::2] for part in line.split() if "=" in part)
    uniqueid = clean_caller_id(_b64(fields.get("uniqueid", "")))
    if not uniqueid or fields.get("v") != "1":
        return None
    ended = _epoch(fields.get("ended", ""))
    started = _epoch(fields.get("started", "")) or ended
    if started is None:
        return None
    # Asterisk's AGISTATUS values; empty: the call ended before the dialplan reached AGI().
    agi_status = fields.get("agistatus", "") or "NOT_REACHED"
    if agi_status not in ("SUCCESS", "FAILURE", "NOTFOUND", "HANGUP", "NOT_REACHED"):
        agi_status = "UNKNOWN"
    queue: str | None = _b64(fields.get("queue", ""))
    if queue not in dialplan.QUEUES:
        queue = None
    agent = clean_caller_id(_b64(fields.get("agent", "")).rsplit("/", 1)[-1])[:16] or None
    cause = clean_caller_id(fields.get("cause", ""))[:8] or None
    path: list[dict[str, Any]] = [{
        "step": "ivr_not_run", "agi_status": agi_status, "at": started.isoformat(),
    }]
    if queue:
        path.append({"step": "route", "queue": queue, "reason": "ivr_not_run",
                     "at": started.isoformat()})
    if agent:
        path.append({"step": "answered", "agent": agent, "at": (ended or started).isoformat()})
    path.append({"step": "hangup", "cause": cause, "at": (ended or started).isoformat()})
    reason = f"IVR never ran (AGISTATUS={agi_status})"
    return ContactSnapshot(
        uniqueid=uniqueid,
        started_at=started,
        linkedid=clean_caller_id(_b64(fields.get("linkedid", ""))) or None,
        from_address=clean_caller_id(_b64(fields.get("caller", ""))) or None,
        to_address=clean_caller_id(_b64(fields.get("dialled", ""))) or None,
        queue=queue,
        queued_at=started if queue else None,
        ended_at=ended,
        ivr_path=path,
        # Answered by an agent: that is what happened; otherwise the call failed to get
        # service (the queue brain turns FAILED into ABANDONED once it knows of the stay).
        outcome=ContactOutcome.ANSWERED if agent else ContactOutcome.FAILED,
        outcome_reason=f"{reason}; answered by {agent}" if agent else reason,
    )


def collect_unrecorded(
    log_path: Path, spool: Spool, *, settle_s: float = UNRECORDED_SETTLE_S
) -> int:
    """Journal the calls Asterisk recorded in `log_path`; the number of records journaled.

    Asterisk opens the file for each line it appends, so renaming it is safe: the next line
    starts a new file. A taken file is read once `settle_s` has passed (a write in flight
    ends in the renamed file) and deleted once its lines are in the journal; after a crash
    in between its lines are journaled again, which the uniqueid makes harmless.
    """
    journaled = 0
    now_ns = time.time_ns()
    try:
        names = os.listdir(log_path.parent)
    except FileNotFoundError:
        return 0
    for name in sorted(names):
        if not name.startswith(log_path.name + _TAKEN):
            continue
        try:
            taken_ns = int(name.rsplit("-", 1)[-1])
        except ValueError:
            taken_ns = 0
        if now_ns - taken_ns < settle_s * 1e9:
            continue
        taken = log_path.parent / name
        lines = taken.read_text(encoding="utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, 1):
            snap = parse_unrecorded_line(line)
            if snap is None:
                if line.strip():  # not the line itself: it holds a caller's number
                    log.warning("unusable line %d in %s (%d characters): skipped", number,
                                name, len(line))
                continue
            spool.put(KIND_UNRECORDED, snap.uniqueid, snap.to_json())
            journaled += 1
        taken.unlink()
    with contextlib.suppress(FileNotFoundError):
        if log_path.stat().st_size > 0:
            os.replace(log_path, log_path.parent / f"{log_path.name}{_TAKEN}{now_ns}")
    return journaled
