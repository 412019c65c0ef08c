"""The web app runs the supervision scheduler in its lifespan when enabled."""

import datetime as dt
import time

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from agent_ui.app import create_app
from cases import lifecycle as lc
from cases.models import SupervisionNotice, utcnow
from cases.service import Actor
from hotline.services import Services
from tests.lifecycle.conftest import Clock, file
from tests.lifecycle.test_scenarios import act


def test_app_lifespan_runs_the_scheduler(settings, services, org):
    clock = Clock(utcnow() - dt.timedelta(days=20))
    number = file(services, org, clock)
    act(services, number, lc.dispatch, org.roads, Actor.of(org.agent),
        ctx=lc.Context(now=clock.now))  # long overdue by now
    settings.lifecycle.scheduler_enabled = True
    settings.lifecycle.scheduler_interval_s = 0.2
    app_services = Services.build(settings)
    try:
        with TestClient(create_app(settings, app_services)):
            deadline = time.monotonic() + 10
            count = 0
            while time.monotonic() < deadline:
                with services.session_factory() as s:
                    count = s.scalar(select(func.count()).select_from(SupervisionNotice))
                if count >= 2:
                    break
                time.sleep(0.1)
        assert count >= 2  # sign_overdue and overdue at least
    finally:
        app_services.close()
