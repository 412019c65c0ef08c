"""The IVR's way to the case system: reads from the database, writes through the journal.

One engine per worker process (built after the fork), one `RecordStore` per session thread
over it (the per-call timings are the thread's). Its engine is tuned for a call
that must not wait: a short connect timeout on PostgreSQL, a short busy timeout on SQLite,
and `BEGIN IMMEDIATE` for SQLite write transactions (a deferred transaction that reads and
then writes fails at once with SQLITE_BUSY_SNAPSHOT when another process wrote in between,
which with hundreds of calls a second is the rule, not the exception).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from agi.spool import KIND_CALLBACK, KIND_CONTACT, KIND_SURVEY, Spool, spool_dir
from cases.db import make_engine
from cases.ivr_records import (
    CallbackRecord,
    CallerInfo,
    CaseProgress,
    ContactSnapshot,
    SurveyResult,
    find_case_progress,
    lookup_caller,
)
from hotline.settings import Settings

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 5000
PG_CONNECT_TIMEOUT_S = 3
# Connections per worker process, shared by its session threads: reads are short (a caller
# look-up, a case look-up), so a few serve dozens of sessions. A call that cannot get one
# within POOL_TIMEOUT_S goes on without the database (DatabaseDown), it is never held up.
POOL_SIZE = 4
POOL_OVERFLOW = 4
POOL_TIMEOUT_S = 3


class DatabaseDown(Exception):
    """The record store cannot reach the database for this call."""


def make_ivr_engine(settings: Settings) -> Engine:
    pool = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW, "pool_timeout": POOL_TIMEOUT_S}
    if settings.sqlalchemy_url.startswith("sqlite"):
        engine = make_engine(settings, **pool)

        @event.listens_for(engine, "connect")
        def _ivr_sqlite(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.close()
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            immediate = conn.get_execution_options().get("sqlite_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    # At most POOL_SIZE + POOL_OVERFLOW connections per worker process (ADR 0006).
    return make_engine(settings, **pool, connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S})


class RecordStore:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_ivr_engine(settings)
        self._reads = sessionmaker(self.engine, expire_on_commit=False)
        self._writes = sessionmaker(
            self.engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )
        self.spool = Spool(spool_dir(settings))
        self.db_s = 0.0  # time spent in the database during the current call (stats)
        self.journal_s = 0.0  # time spent journaling records during the current call

    def close(self) -> None:
        """Close the engine's connections (the owner of the engine only)."""
        self.engine.dispose()

    @contextmanager
    def _session(self, factory: sessionmaker[Session]) -> Iterator[Session]:
        started = time.monotonic()
        session = factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
            self.db_s += time.monotonic() - started

    def write_transaction(self) -> Any:
        return self._session(self._writes)

    # ------------------------------------------------------------------ reads

    def lookup_caller(
        self, raw_caller_id: str, *, now: dt.datetime, uniqueid: str
    ) -> CallerInfo:
        try:
            with self._session(self._reads) as session:
                return lookup_caller(
                    session,
                    raw_caller_id,
                    now=now,
                    repeat_window=dt.timedelta(hours=self.settings.ivr.repeat_caller_window_h),
                    exclude_uniqueid=uniqueid,
                )
        except SQLAlchemyError as exc:
            log.warning("caller look-up failed, database unavailable: %s", _one_line(exc))
            raise DatabaseDown(str(exc)) from exc

    def find_case(self, entered: str) -> CaseProgress | None:
        try:
            with self._session(self._reads) as session:
                return find_case_progress(session, entered)
        except SQLAlchemyError as exc:
            log.warning("case look-up failed, database unavailable: %s", _one_line(exc))
            raise DatabaseDown(str(exc)) from exc

    # ------------------------------------------------------------------ writes

    def _write(self, kind: str, uniqueid: str, payload: dict[str, Any]) -> None:
        """Journal the record; the server's writer process applies it (agi/spool.py).

        A call never waits for a database write: hundreds of worker processes writing to
        one database contend for its write lock (SQLite) or its connections (PostgreSQL),
        and a database that is away would hold every call up. Appending a small file is
        quick and never blocks on another call; the writer applies records in order, in
        batches, and keeps them while the database is away.
        """
        started = time.monotonic()
        self.spool.put(kind, uniqueid, payload)
        self.journal_s += time.monotonic() - started

    def save_contact(self, snap: ContactSnapshot) -> None:
        self._write(KIND_CONTACT, snap.uniqueid, snap.to_json())

    def save_survey(self, result: SurveyResult) -> None:
        self._write(KIND_SURVEY, result.uniqueid, result.to_json())

    def save_callback(self, record: CallbackRecord) -> None:
        self._write(KIND_CALLBACK, record.uniqueid, record.to_json())


def _one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return (str(orig or exc).strip().splitlines() or [type(exc).__name__])[0][:200]
