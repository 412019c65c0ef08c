"""The web service: `create_app(settings)` builds it; nothing happens at import time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse

import transcription
from agent_ui import (  # the queue brain (issue 4)
    api_agents,
    api_callbacks,
    api_cases,
    api_citizens,
    api_department,
    api_desk,
    api_kb,
    api_kb_admin,
    api_lifecycle,
    api_reports,
    api_wallboard,
    auth,
    callouts,
    pages,
    pages_department,
    pages_supervision,
    ws_desk,
    ws_wallboard,
)
from agent_ui.errors import install_error_handlers
from cases.db import DatabaseUnavailable, check_database
from hotline.services import Services
from hotline.settings import Settings


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    owned = services is None
    services = services or Services.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.bus.start()
        await api_wallboard.start(app, services)
        await callouts.start(app, services)  # the AMI CallOriginator (callbacks)
        warm_up = asyncio.create_task(asyncio.to_thread(services.warm_up_kb_index))
        try:
            yield
        finally:
            await callouts.stop(app)
            await api_wallboard.stop(app)
            await warm_up
            await services.bus.stop()
            if owned:
                services.close()

    app = FastAPI(
        title="12345 Hotline",
        version="0.1.0",
        description="Citizen-service hotline: IVR, queues, agent desk, cases.",
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    app.include_router(auth.router)
    app.include_router(api_kb.router)
    app.include_router(api_cases.router)
    app.include_router(api_citizens.router)
    app.include_router(api_callbacks.router)
    app.include_router(api_kb_admin.router)
    app.include_router(api_desk.router)
    app.include_router(api_lifecycle.router)  # also runs the supervision scheduler
    app.include_router(api_department.router)
    app.include_router(api_reports.router)
    app.include_router(pages_department.router)
    app.include_router(pages_supervision.router)
    ws_desk.install(app, services)
    pages.install(app)

    app.include_router(api_wallboard.router)
    app.include_router(ws_wallboard.router)
    app.include_router(api_agents.router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        checks: dict[str, Any] = {}
        ok = True
        try:
            check_database(services.engine)
            checks["database"] = {"ok": True}
        except DatabaseUnavailable as exc:
            ok = False
            checks["database"] = {"ok": False, "error": str(exc)}
        # Reported, not counted against "ok": calls and cases work without it.
        checks["transcription"] = transcription.health(settings)
        if (ami := api_wallboard.ami_health(app)) is not None:
            checks["ami"] = ami  # reported; the web app serves on while Asterisk is away
        return JSONResponse(
            {"status": "ok" if ok else "degraded", "checks": checks},
            status_code=200 if ok else 503,
        )

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/desk")  # the desk sends strangers to /login

    return app
