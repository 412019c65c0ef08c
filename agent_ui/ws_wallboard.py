"""The wallboard websocket (`/ws/wallboard`): the live snapshot, pushed on every change.

The queue brain calls the hub after each change; the hub builds the snapshot JSON once and
hands it to every connection, each of which sends only the newest one (a slow screen skips
intermediate states instead of queueing them). A tick every few seconds keeps waiting times
moving when nothing happens. Authentication: the session cookie (same-origin only, against
cross-site websocket hijacking) or an `Authorization: Bearer` header (kiosks, benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy import select

from agent_ui.auth import SESSION_COOKIE, _hash_token
from cases.models import AuthSession, Role, utcnow
from hotline.queue_brain import QueueBrain
from hotline.services import Services

log = logging.getLogger(__name__)
TICK_S = 5.0
VIEWER_ROLES = frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMIN})


class _Conn:
    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.latest: str | None = None
        self.ready = asyncio.Event()

    async def run(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            text, self.latest = self.latest, None
            if text is not None:
                await self.websocket.send_text(text)

    def offer(self, text: str) -> None:
        self.latest = text
        self.ready.set()


class WallboardHub:
    def __init__(self, brain: QueueBrain) -> None:
        self.brain = brain
        self.conns: set[_Conn] = set()
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe = brain.on_change(self._dirty.set)
        self.last_text: str | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="wallboard-hub")

    async def stop(self) -> None:
        self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def render(self) -> str:
        text = json.dumps({"type": "wallboard", "data": self.brain.snapshot()},
                          ensure_ascii=False)
        self.last_text = text
        return text

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), TICK_S)
            self._dirty.clear()
            if not self.conns:
                continue
            try:
                text = self.render()
            except Exception:
                log.exception("wallboard snapshot failed")
                continue
            for conn in list(self.conns):
                conn.offer(text)


def _origin_ok(websocket: WebSocket) -> bool:
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host")
    if not origin or not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == host


def _authenticated(services: Services, token: str) -> bool:
    if not token:
        return False
    with services.session_factory() as session:
        auth = session.scalar(
            select(AuthSession).where(AuthSession.token_hash == _hash_token(token))
        )
        return bool(
            auth is not None
            and auth.expires_at > utcnow()
            and auth.user.is_active
            and auth.user.role in VIEWER_ROLES
        )


router = APIRouter()


@router.websocket("/ws/wallboard")
async def wallboard_socket(websocket: WebSocket) -> None:
    hub: WallboardHub | None = getattr(websocket.app.state, "wallboard_hub", None)
    services: Services = websocket.app.state.services
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
        origin_ok = websocket.headers.get("origin") is None or _origin_ok(websocket)
    else:
        token = websocket.cookies.get(SESSION_COOKIE, "")
        origin_ok = _origin_ok(websocket)
    if hub is None or not origin_ok:
        await websocket.close(code=1008, reason="not available")
        return
    if not await asyncio.to_thread(_authenticated, services, token):
        await websocket.close(code=1008, reason="sign in first")
        return
    await websocket.accept()
    conn = _Conn(websocket)
    conn.offer(hub.render())
    hub.conns.add(conn)
    sender = asyncio.create_task(conn.run())
    try:
        while True:  # the client only pings; anything else is ignored
            receive = asyncio.create_task(websocket.receive_text())
            done, _ = await asyncio.wait({receive, sender}, return_when=asyncio.FIRST_COMPLETED)
            if sender in done:
                receive.cancel()
                break
            receive.result()
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.conns.discard(conn)
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender
        with contextlib.suppress(Exception):
            await websocket.close()
