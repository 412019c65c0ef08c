"""Callback requests left in the IVR ("press 1 to be called back"): agents' task list."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from agent_ui.auth import may_see_phone_numbers, require_roles
from agent_ui.deps import SessionDep
from cases.ivr_records import list_callbacks
from cases.models import CallbackStatus, Role, User
from cases.phones import mask_phone

router = APIRouter(prefix="/api/callbacks", tags=["callbacks"])

CallbackStaff = Annotated[User, Depends(require_roles(Role.AGENT, Role.SUPERVISOR))]


class CallbackPublic(BaseModel):
    id: int
    number: str
    queue: str
    status: CallbackStatus
    requested_at: dt.datetime
    estimated_wait_s: int | None
    contact_id: int | None
    citizen_id: int | None


@router.get("")
def get_callbacks(
    session: SessionDep,
    user: CallbackStaff,
    status: Annotated[CallbackStatus | None, Query()] = CallbackStatus.OPEN,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[CallbackPublic]:
    """Callback tasks, the longest-waiting first (open ones unless `status` says otherwise)."""
    show = may_see_phone_numbers(user)
    return [
        CallbackPublic(
            id=r.id,
            number=r.number if show else mask_phone(r.number),
            queue=r.queue,
            status=r.status,
            requested_at=r.requested_at,
            estimated_wait_s=r.estimated_wait_s,
            contact_id=r.contact_id,
            citizen_id=r.citizen_id,
        )
        for r in list_callbacks(session, status, limit)
    ]
