"""API and service schemas, split Create / Public as the house style asks."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cases.models import CaseType as CaseTypeEnum
from cases.models import Channel, ContactOutcome, Direction, Priority, Satisfaction
from cases.phones import normalise_phone
from cases.state_machine import CaseStatus


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CitizenCreate(_Strict):
    name: str | None = Field(default=None, max_length=100)
    address: str | None = Field(default=None, max_length=300)
    phones: list[str] = Field(min_length=1, max_length=5)
    tags: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("phones")
    @classmethod
    def _valid_phones(cls, phones: list[str]) -> list[str]:
        return list(dict.fromkeys(normalise_phone(p) for p in phones))


class CitizenPublic(BaseModel):
    id: int
    name: str | None
    address: str | None
    phones: list[str]  # masked unless the reader may see numbers
    tags: list[str]


class CaseCreate(_Strict):
    type: CaseTypeEnum
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=10000)
    category_code: str | None = Field(default=None, max_length=32)
    department_code: str | None = Field(default=None, max_length=32)
    location_text: str | None = Field(default=None, max_length=300)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    priority: Priority | None = None
    channel: Channel = Channel.PHONE
    citizen_id: int | None = None
    citizen_phone: str | None = Field(default=None, max_length=40)
    contact_id: int | None = None

    @field_validator("citizen_phone")
    @classmethod
    def _valid_phone(cls, phone: str | None) -> str | None:
        return normalise_phone(phone) if phone else None


class CasePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    number: str
    type: CaseTypeEnum
    title: str
    description: str
    status: CaseStatus
    priority: Priority
    channel: Channel
    category_id: int | None
    department_id: int | None
    citizen_id: int | None
    location_text: str | None
    sign_by: dt.datetime | None
    handle_by: dt.datetime | None
    satisfaction: Satisfaction | None
    answered_directly: bool
    created_at: dt.datetime


class ContactPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    channel: Channel
    direction: Direction
    from_address: str | None
    started_at: dt.datetime
    answered_at: dt.datetime | None
    ended_at: dt.datetime | None
    queue: str | None
    agent_extension: str | None
    ivr_path: list[Any]
    outcome: ContactOutcome
    case_id: int | None
