"""FastAPI dependencies, as `Annotated` aliases (SessionDep, ServicesDep, KbIndexDep)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from cases.kb_search import KbSearchIndex
from hotline.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    session = services.session_factory()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def get_kb_index(services: ServicesDep) -> KbSearchIndex:
    return services.kb_index


KbIndexDep = Annotated[KbSearchIndex, Depends(get_kb_index)]
