"""Helpers shared by the benchmarks: throwaway databases and percentiles."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from cases.migrate import upgrade
from hotline.services import Services
from hotline.settings import Settings

PG_SERVER_URL = os.environ.get("HOTLINE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


@contextmanager
def fresh_database(kind: str) -> Iterator[Services]:
    """A migrated, empty database ("sqlite" file or "postgresql"), dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(env="test", var_dir=Path(tmp))
            services = Services.build(settings)
            upgrade(services.engine)
            try:
                yield services
            finally:
                services.close()
        return
    server = make_url(PG_SERVER_URL).set(drivername="postgresql+psycopg")
    name = f"hotline_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    services = Services.build(Settings(env="test", database_url=url))  # type: ignore[arg-type]
    upgrade(services.engine)
    try:
        yield services
    finally:
        services.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
