"""The long-lived objects one process shares: built once from Settings, passed down.

The web app, the FastAGI server and the CLI all start from `Services.build(settings)`, so
there is one place that decides how to reach the database and which search index to use.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cases.db import make_engine, make_session_factory, session_scope
from cases.kb_search import KbSearchIndex
from hotline.events import InProcessBus, make_bus
from hotline.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    kb_index: KbSearchIndex = field(default_factory=KbSearchIndex)
    # Started by whoever runs an event loop (the web app's lifespan, the AMI bridge).
    bus: InProcessBus = field(default_factory=InProcessBus)

    @classmethod
    def build(cls, settings: Settings, engine: Engine | None = None) -> Services:
        engine = engine or make_engine(settings)
        return cls(
            settings=settings,
            engine=engine,
            session_factory=make_session_factory(engine),
            bus=make_bus(settings.redis_url),
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with session_scope(self.session_factory) as session:
            yield session

    def warm_up_kb_index(self) -> None:
        """Load the KB index now rather than on the first search (seconds at 20,000 articles).
        Runs in a worker thread at start-up; a database that is not there yet is not an error
        here: the first search loads the index instead."""
        try:
            with self.session_factory() as session:
                self.kb_index.refresh(session)
        except Exception as exc:
            log.warning("KB index warm-up skipped: %s", str(exc).splitlines()[0])

    def close(self) -> None:
        self.engine.dispose()
