"""Knowledge-base search API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from agent_ui.auth import CurrentUser
from agent_ui.deps import KbIndexDep, ServicesDep, SessionDep

router = APIRouter(prefix="/api/kb", tags=["knowledge base"])


@router.get("/search")
def search_kb(
    q: Annotated[str, Query(min_length=1, max_length=500, description="What the caller said")],
    session: SessionDep,
    index: KbIndexDep,
    services: ServicesDep,
    _user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[dict[str, Any]]:
    """Best first; each item has the imported `id`, `title`, `score` and an HTML `snippet`
    (text escaped, matches in `<mark>`)."""
    limit = min(limit, services.settings.kb.max_limit)
    return [hit.as_dict() for hit in index.search(session, q, limit)]
