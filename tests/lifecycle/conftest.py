"""Lifecycle fixtures: the small org, a clock the test moves, helpers in the city's zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from cases.lifecycle import Context
from cases.schemas import CaseCreate
from cases.service import Actor, file_case
from tests.factories import make_org

TZ = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> dt.datetime:
    """A moment given in Beijing time, as aware UTC (what the database stores)."""
    return dt.datetime(*args, tzinfo=TZ).astimezone(dt.UTC)


class Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, *args: int) -> dt.datetime:
        self.now = local(*args)
        return self.now

    def advance(self, **kwargs: float) -> dt.datetime:
        self.now += dt.timedelta(**kwargs)
        return self.now


@pytest.fixture
def org(session):
    return make_org(session)


@pytest.fixture
def clock():
    return Clock(local(2026, 9, 18, 16, 0))


@pytest.fixture
def ctx_for(services, clock):
    def make() -> Context:
        return Context(tz=services.settings.tz, settings=services.settings.lifecycle,
                       now=clock.now)
    return make


def file(services, org, clock, *, title="文昌路路面塌陷", description="文昌路与人民路交叉口路面塌陷，有安全隐患",
         category_code="C-CITY-ROAD", type_="complaint", **extra):
    with services.transaction() as s:
        case = file_case(
            s, CaseCreate(type=type_, title=title, description=description,
                          category_code=category_code, **extra),
            Actor.of(org.agent), tz=services.settings.tz, now=clock.now,
        )
        return case.number
