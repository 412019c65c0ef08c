"""Agent state over AMI: log in to queues, log out, pause with a reason code, resume; and the
supervisor's listen / whisper / barge on an agent's live call (AMI Originate of ChanSpy).

    GET  /api/agents/me                 my state (extension, state, reason, queues)
    POST /api/agents/me/login           {"queues": [...]}  (default: every queue)
    POST /api/agents/me/logout
    POST /api/agents/me/pause           {"reason": "meal"}  (settings.queue.pause_reasons)
    POST /api/agents/me/unpause
    GET  /api/agents                    every agent's state               (supervisor)
    POST /api/agents/{ext}/login|logout|pause|unpause                     (supervisor)
    POST /api/agents/{ext}/listen|whisper|barge {"supervisor_extension": "8010"} (supervisor)

Login is `QueueAdd` with the agent's PJSIP endpoint as interface and state interface, so
app_queue follows the softphone's device state (an unregistered phone shows "unavailable").
The live state comes back through AMI events into the queue brain; the POSTs wait briefly
for it so they can answer with the new state.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from agent_ui.api_wallboard import BrainDep
from agent_ui.auth import require_roles
from agent_ui.deps import ServicesDep
from cases import queue_kpis as kpis
from cases.models import Role, User
from hotline.ami import AmiError
from hotline.queue_brain import QueueBrain

router = APIRouter(prefix="/api/agents", tags=["agents"])
Supervisor = Annotated[User, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))]
HotlineUser = Annotated[User, Depends(require_roles(Role.AGENT, Role.SUPERVISOR, Role.ADMIN))]
_EXT = re.compile(r"^\d{2,10}$")
# ChanSpy options: q = no beep; w = whisper to the spied channel; B = barge (both parties).
SPY_OPTIONS = {"listen": "q", "whisper": "qw", "barge": "qB"}
SETTLE_S = 2.0
SPY_LABELS = {"listen": "监听", "whisper": "耳语", "barge": "强插"}


class LoginBody(BaseModel):
    queues: list[str] | None = None


class PauseBody(BaseModel):
    reason: str = Field(default="other", max_length=40)


class SpyBody(BaseModel):
    supervisor_extension: str | None = Field(default=None, max_length=10)


def _state(brain: QueueBrain, ext: str) -> dict[str, Any]:
    state, reason = brain.agent_state(ext)
    a = brain.agents.get(ext)
    return {
        "extension": ext,
        "state": state,
        "reason": reason,
        "since": a.since.isoformat() if a is not None and state != kpis.LOGGED_OUT else None,
        "queues": sorted(m.queue for m in brain.members.values() if m.agent == ext),
        "paused_queues": sorted(
            m.queue for m in brain.members.values() if m.agent == ext and m.paused
        ),
        "on_call": a.call_uniqueid is not None if a is not None else False,
        "pause_reasons": list(brain.settings.queue.pause_reasons),
    }


def _my_extension(user: User) -> str:
    if not user.extension:
        raise HTTPException(409, "your account has no phone extension")
    return user.extension


def _check_ext(brain: QueueBrain, ext: str) -> str:
    first, last = brain.settings.pbx.agent_extensions
    if not _EXT.match(ext) or not first <= int(ext) <= last:
        raise HTTPException(404, f"no agent extension {ext}")
    return ext


async def _ami(brain: QueueBrain, action: dict[str, Any]) -> Any:
    if brain.client is None:
        raise HTTPException(503, "no AMI connection in this process")
    try:
        return await brain.client.action(action)
    except AmiError as exc:
        raise HTTPException(503 if "connected" in str(exc) else 409, str(exc)) from exc


async def _settle(brain: QueueBrain, ext: str, done: Any) -> None:
    """Wait (up to SETTLE_S) until the AMI events of an action reached the brain."""
    changed = asyncio.Event()
    unsubscribe = brain.on_change(changed.set)
    try:
        deadline = time.monotonic() + SETTLE_S
        while not done(brain, ext) and (left := deadline - time.monotonic()) > 0:
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)
    finally:
        unsubscribe()


async def do_login(brain: QueueBrain, ext: str, queues: list[str] | None) -> dict[str, Any]:
    known = sorted(brain.queues)
    wanted = queues or known
    unknown = [q for q in wanted if q not in known]
    if unknown:
        raise HTTPException(422, f"unknown queue(s): {', '.join(unknown)}")
    interface = f"PJSIP/{ext}"
    for queue in wanted:
        if (queue, interface) in brain.members:
            continue
        await _ami(brain, {"Action": "QueueAdd", "Queue": queue, "Interface": interface,
                           "MemberName": ext, "StateInterface": interface, "Paused": "false"})
    await _settle(brain, ext, lambda b, e: all((q, interface) in b.members for q in wanted))
    return _state(brain, ext)


async def do_logout(brain: QueueBrain, ext: str) -> dict[str, Any]:
    interface = f"PJSIP/{ext}"
    for queue, iface in list(brain.members):
        if iface == interface:
            await _ami(brain, {"Action": "QueueRemove", "Queue": queue, "Interface": interface})
    await _settle(brain, ext, lambda b, e: b.agent_state(e)[0] == kpis.LOGGED_OUT)
    return _state(brain, ext)


async def do_pause(brain: QueueBrain, ext: str, paused: bool, reason: str) -> dict[str, Any]:
    if paused and reason not in brain.settings.queue.pause_reasons:
        raise HTTPException(
            422, f"reason must be one of: {', '.join(brain.settings.queue.pause_reasons)}"
        )
    if not any(m.agent == ext for m in brain.members.values()):
        raise HTTPException(409, "log in to a queue first")
    action = {"Action": "QueuePause", "Interface": f"PJSIP/{ext}",
              "Paused": "true" if paused else "false"}
    if paused:
        action["Reason"] = reason
    await _ami(brain, action)
    await _settle(brain, ext, lambda b, e: all(
        m.paused == paused for m in b.members.values() if m.agent == e))
    return _state(brain, ext)


# ---- the agent themself ----------------------------------------------------------------


@router.get("/me")
def my_state(brain: BrainDep, user: HotlineUser) -> dict[str, Any]:
    return _state(brain, _my_extension(user))


@router.post("/me/login")
async def my_login(brain: BrainDep, user: HotlineUser, body: LoginBody | None = None
                   ) -> dict[str, Any]:
    return await do_login(brain, _my_extension(user), body.queues if body else None)


@router.post("/me/logout")
async def my_logout(brain: BrainDep, user: HotlineUser) -> dict[str, Any]:
    return await do_logout(brain, _my_extension(user))


@router.post("/me/pause")
async def my_pause(brain: BrainDep, user: HotlineUser, body: PauseBody | None = None
                   ) -> dict[str, Any]:
    return await do_pause(brain, _my_extension(user), True, (body or PauseBody()).reason)


@router.post("/me/unpause")
async def my_unpause(brain: BrainDep, user: HotlineUser) -> dict[str, Any]:
    return await do_pause(brain, _my_extension(user), False, "")


# ---- supervisors ---------------------------------------------------------------------------


@router.get("")
def all_agents(brain: BrainDep, _user: Supervisor) -> list[dict[str, Any]]:
    exts = sorted({m.agent for m in brain.members.values()} | set(brain.agents))
    return [_state(brain, ext) for ext in exts]


@router.post("/{extension}/{action}")
async def agent_action(
    extension: str,
    action: Literal["login", "logout", "pause", "unpause", "listen", "whisper", "barge"],
    brain: BrainDep,
    user: Supervisor,
    services: ServicesDep,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    ext = _check_ext(brain, extension)
    body = body or {}
    if action == "login":
        return await do_login(brain, ext, LoginBody.model_validate(body).queues)
    if action == "logout":
        return await do_logout(brain, ext)
    if action in ("pause", "unpause"):
        return await do_pause(brain, ext, action == "pause", PauseBody.model_validate(body).reason)
    return await supervise(brain, user, ext, action, SpyBody.model_validate(body))


async def supervise(
    brain: QueueBrain, user: User, ext: str, mode: str, body: SpyBody
) -> dict[str, Any]:
    """Ring the supervisor's phone; when answered it runs ChanSpy on the agent's channel."""
    sup = body.supervisor_extension or user.extension
    if not sup:
        raise HTTPException(422, "give supervisor_extension: your account has no extension")
    _check_ext(brain, sup)
    if sup == ext:
        raise HTTPException(422, "a supervisor cannot spy on their own extension")
    a = brain.agents.get(ext)
    channel = a.channel if a is not None else None
    if not channel:
        raise HTTPException(409, f"agent {ext} is not on a queue call")
    options = SPY_OPTIONS[mode]
    await _ami(brain, {
        "Action": "Originate",
        "Channel": f"PJSIP/{sup}",
        "Application": "ChanSpy",
        "Data": f"{channel},{options}",
        "CallerID": f'"{SPY_LABELS[mode]} {ext}" <{ext}>',
        "Timeout": "30000",
        "Async": "true",
    })
    return {"mode": mode, "agent": ext, "supervisor_extension": sup, "spied_channel": channel,
            "options": options}
