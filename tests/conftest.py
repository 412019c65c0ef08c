"""Shared fixtures. The database under test is SQLite unless HOTLINE_TEST_DATABASE_URL names a
PostgreSQL server (CI runs the suite once each way: see the Makefile's `test` target)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, make_url, text
from sqlalchemy.orm import Session

from cases.migrate import upgrade
from cases.models import Base
from cases.service import forget_day_sequences
from hotline.services import Services
from hotline.settings import Settings

TEST_DB_URL_ENV = "HOTLINE_TEST_DATABASE_URL"


def _test_db_url() -> str:
    return os.environ.get(TEST_DB_URL_ENV, "").strip()


def is_postgres() -> bool:
    return _test_db_url().startswith("postgres")


class _PostgresDatabase:
    """One throwaway database per test session on the configured server, emptied per test."""

    def __init__(self, server_url: str) -> None:
        url = make_url(server_url)
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        self.name = f"hotline_test_{uuid.uuid4().hex[:10]}"
        self.admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = url.set(database=self.name).render_as_string(hide_password=False)
        engine = create_engine(self.url)
        upgrade(engine)
        self.tables = [
            t for t in inspect(engine).get_table_names() if t not in ("alembic_version",)
        ]
        engine.dispose()

    def reset(self, engine: Engine) -> None:
        # TRUNCATE does not fire the audit trail's row triggers, so the append-only rule holds.
        with engine.begin() as conn:
            conn.execute(
                text("TRUNCATE " + ", ".join(f'"{t}"' for t in self.tables)
                     + " RESTART IDENTITY CASCADE")
            )
            conn.execute(text("INSERT INTO kb_revision (id, revision) VALUES (1, 0)"))
            for (name,) in conn.execute(text(
                "SELECT relname FROM pg_class WHERE relkind = 'S' "
                "AND relname LIKE 'case\\_number\\_seq\\_%'"
            )):
                conn.execute(text(f'DROP SEQUENCE "{name}"'))
        forget_day_sequences()

    def drop(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def _postgres() -> Iterator[_PostgresDatabase | None]:
    if not is_postgres():
        yield None
        return
    db = _PostgresDatabase(_test_db_url())
    yield db
    db.drop()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test copies it (much faster than migrating again)."""
    path = tmp_path_factory.mktemp("template") / "hotline.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def settings(
    tmp_path: Path, _postgres: _PostgresDatabase | None, _sqlite_template: Path
) -> Settings:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    if _postgres is not None:
        url = _postgres.url
    else:
        shutil.copy(_sqlite_template, var_dir / "hotline.sqlite3")
        url = f"sqlite:///{var_dir / 'hotline.sqlite3'}"
    return Settings(env="test", var_dir=var_dir, database_url=url)  # type: ignore[arg-type]


@pytest.fixture
def services(settings: Settings, _postgres: _PostgresDatabase | None) -> Iterator[Services]:
    services = Services.build(settings)
    if _postgres is not None:
        _postgres.reset(services.engine)
    yield services
    services.close()


@pytest.fixture
def session(services: Services) -> Iterator[Session]:
    with services.session_factory() as session:
        yield session


__all__ = ["Base", "is_postgres"]
