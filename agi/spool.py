"""The journal (spool): every call record is a small JSON file first, then a database row.

Workers never write to the database during a call: they put the record here and the call
goes on. The AGI server's writer process applies the records in the order they were
written, in batches, and deletes each after its transaction commits; while the database is
away it keeps them and retries with backoff. Records are idempotent by the call's uniqueid
(cases/ivr_records.py), so a crash between commit and delete only applies a record twice. A
record the database refuses for a reason other than being away moves to `failed/` with the
error next to it, for a person to look at.

Layout: <var_dir>/spool/agi/<time_ns>-<pid>-<seq>-<kind>-<uniqueid>.json
"""

from __future__ import annotations

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

from cases.ivr_records import (
    CallbackRecord,
    ContactSnapshot,
    SurveyResult,
    add_callback_request,
    apply_contact_snapshot,
    apply_survey,
)
from hotline.settings import Settings

log = logging.getLogger(__name__)

KIND_CONTACT = "contact"
KIND_SURVEY = "survey"
KIND_CALLBACK = "callback"
KIND_CASE_CALLBACK = "case_callback"
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
) -> None:
    """Replay forever: poll every `idle_s`, back off (doubling) while the database is away."""
    backoff = 0.5
    while not should_stop():
        try:
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
