"""The wallboard's figures (`GET /api/wallboard`), past-period reports, and the queue brain's
place in the web app's lifespan (`start` / `stop`, one line each in create_app).

The live figures come from the in-process QueueBrain (hotline/queue_brain.py), the same
object that pushes them over `/ws/wallboard`; reports for any period are computed from the
database with the same formulas (cases/queue_kpis.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from html import escape
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from agent_ui.auth import require_roles
from agent_ui.deps import ServicesDep, SessionDep
from cases.models import Role, User
from cases.queue_kpis import period_report
from hotline.queue_brain import QueueBrain
from hotline.services import Services

log = logging.getLogger(__name__)
_TEMPLATE = Path(__file__).resolve().parent / "templates" / "wallboard.html"

WallboardViewer = Annotated[
    User, Depends(require_roles(Role.AGENT, Role.SUPERVISOR, Role.ADMIN))
]
Supervisor = Annotated[User, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))]

router = APIRouter(tags=["wallboard"])


def get_brain(request: Request) -> QueueBrain:
    brain: QueueBrain | None = getattr(request.app.state, "queue_brain", None)
    if brain is None:
        raise HTTPException(503, "the queue brain is not running in this process")
    return brain


BrainDep = Annotated[QueueBrain, Depends(get_brain)]


@router.get("/api/wallboard")
def wallboard(brain: BrainDep, _user: WallboardViewer) -> dict[str, Any]:
    """Live queue figures: today's KPIs per queue and in total, callers waiting, agents by
    state, trend buckets, AMI health (the same JSON the websocket pushes)."""
    return brain.snapshot()


@router.get("/wallboard", include_in_schema=False)
def wallboard_page(request: Request, session: SessionDep) -> Response:
    """The big-screen page (figures arrive over /ws/wallboard)."""
    from agent_ui.auth import _session_from_request
    from agent_ui.pages import SECURITY_HEADERS

    try:
        auth, _ = _session_from_request(request, session)
    except HTTPException:
        return RedirectResponse("/login?next=/wallboard", status_code=303)
    if auth.user.role not in (Role.AGENT, Role.SUPERVISOR, Role.ADMIN):
        raise HTTPException(403, "your role may not do this")
    html = _TEMPLATE.read_text(encoding="utf-8")
    html = html.replace("{{ csrf }}", escape(auth.csrf_token)).replace(
        "{{ 'yes' if can_supervise else 'no' }}",
        "yes" if auth.user.role in (Role.SUPERVISOR, Role.ADMIN) else "no",
    )
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("/api/wallboard/report")
def report(
    services: ServicesDep,
    session: SessionDep,
    _user: Supervisor,
    start: Annotated[dt.datetime, Query(description="ISO 8601; no zone = city time")],
    end: Annotated[dt.datetime, Query(description="ISO 8601, exclusive")],
    queue: Annotated[list[str] | None, Query()] = None,
    service_level_s: Annotated[int | None, Query(ge=1, le=3600)] = None,
) -> dict[str, Any]:
    """KPIs for any past period from the stored queue timelines and agent state intervals."""
    tz = services.settings.tz
    start = start if start.tzinfo else start.replace(tzinfo=tz)
    end = end if end.tzinfo else end.replace(tzinfo=tz)
    if end <= start:
        raise HTTPException(422, "end must be after start")
    if end - start > dt.timedelta(days=366):
        raise HTTPException(422, "at most one year per report")
    q = services.settings.queue
    return period_report(
        session,
        start.astimezone(dt.UTC),
        end.astimezone(dt.UTC),
        service_level_s=service_level_s or q.service_level_s,
        short_abandon_s=q.short_abandon_s,
        queues=queue,
    )


# ---------------------------------------------------------------------------- lifespan


async def start(app: FastAPI, services: Services) -> QueueBrain:
    """Build the brain from the database, start its outbox, and (when pbx.ami_enabled)
    the AMI connection that feeds it."""
    from agent_ui.ws_wallboard import WallboardHub

    settings = services.settings
    brain = QueueBrain(settings, services)
    try:
        await asyncio.to_thread(brain.load)
    except Exception as exc:  # the database is away: start empty, the outbox retries
        log.warning("queue brain: could not load state (%s)", str(exc).splitlines()[0])
    await brain.start()
    if settings.pbx.ami_enabled:
        from hotline.ami import AmiClient
        from hotline.asterisk_chroot import ami_secret

        client = AmiClient(
            settings, secret=ami_secret(settings), on_event=brain.handle,
            on_connected=brain.resync,
        )
        brain.client = client
        await client.start()
        # Live transcription: taps follow the brain's call events (transcription/wiring.py).
        from transcription.wiring import start_call_taps

        app.state.call_tapper = await start_call_taps(settings, services.bus)
    hub = WallboardHub(brain)
    await hub.start()
    app.state.queue_brain = brain
    app.state.wallboard_hub = hub
    return brain


async def stop(app: FastAPI) -> None:
    hub = getattr(app.state, "wallboard_hub", None)
    brain: QueueBrain | None = getattr(app.state, "queue_brain", None)
    if hub is not None:
        await hub.stop()
    tapper = getattr(app.state, "call_tapper", None)
    if tapper is not None:
        await tapper.stop()
    if brain is not None:
        if brain.client is not None:
            await brain.client.stop()
        await brain.stop()


def ami_health(app: FastAPI) -> dict[str, Any] | None:
    """The AMI link's health for /healthz (None when this process runs no AMI bridge)."""
    brain: QueueBrain | None = getattr(app.state, "queue_brain", None)
    if brain is None or brain.client is None:
        return None
    health: dict[str, Any] = brain.client.health()
    health["backlog"] = brain.backlog
    return health
