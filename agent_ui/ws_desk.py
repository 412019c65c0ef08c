"""The agent desk's websocket (`/ws/desk`): screen pops, live transcript, KB changes.

Authenticated by the session cookie (the same one the pages use), and only from this site's
own origin: a browser sends cookies on cross-site websocket handshakes, so without the Origin
check any page the agent visits could open the socket (cross-site websocket hijacking).
The protocol is documented, with its version, in docs/ws.md.

Bus events consumed: `agent_called` (the agent's phone rings) and `agent_connected` (answered)
→ a `screen_pop` to that agent's desks; `transcript_segment` → `transcript` and refreshed
`suggestions` to the desk showing that contact; `transcription_status` → the same type
(running / interrupted for that contact, off for every desk); `kb_published` /
`kb_retired` → `kb_update` to every desk; the queue brain's `agent_state_changed`,
`agent_completed`, ... for an extension → `agent_event` to that agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect
from sqlalchemy import select

from agent_ui.auth import SESSION_COOKIE, _hash_token, may_see_phone_numbers
from agent_ui.screen_pop import PROTOCOL_VERSION, CallInfo, build_pop, suggestions
from cases.models import AuthSession, Role, utcnow
from hotline.events import Event
from hotline.services import Services

log = logging.getLogger(__name__)

POP_EVENTS = ("agent_called", "agent_ringing", "agent_connected")
KB_EVENTS = ("kb_published", "kb_retired")
TRANSCRIPT_EVENT = "transcript_segment"
STATUS_EVENT = "transcription_status"  # running / interrupted / off
# The queue brain's (hotline/queue_brain.py) events about one agent, forwarded to their desk.
AGENT_EVENTS = ("agent_state_changed", "agent_completed", "agent_ring_no_answer",
                "agent_paused", "agent_unpaused")
MAX_CLIENT_MESSAGE = 4096
INDEX_CHECK_S = 5.0
MAX_REMEMBERED_STATUSES = 1000


@dataclass(eq=False)
class DeskConnection:
    websocket: WebSocket
    user_id: int
    username: str
    role: Role
    extension: str | None
    show_numbers: bool
    contact_id: int | None = None  # the call currently popped on this desk
    transcript: list[str] = field(default_factory=list)

    async def send(self, message: dict[str, Any]) -> bool:
        try:
            await self.websocket.send_text(json.dumps(message, ensure_ascii=False))
            return True
        except Exception:  # the browser went away; the receive loop cleans up
            return False


class DeskHub:
    """Every open desk in this process, by extension; subscribes to the bus once."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.connections: set[DeskConnection] = set()
        self.by_extension: dict[str, set[DeskConnection]] = {}
        self.pops_sent = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._index_checked = 0.0
        self._statuses: dict[str, dict[str, Any]] = {}  # contact id -> last status

    def subscribe(self) -> None:
        bus = self.services.bus
        for name in POP_EVENTS:
            bus.subscribe(name, self.on_call_event)
        for name in KB_EVENTS:
            bus.subscribe(name, self.on_kb_event)
        bus.subscribe(TRANSCRIPT_EVENT, self.on_transcript)
        bus.subscribe(STATUS_EVENT, self.on_transcription_status)
        for name in AGENT_EVENTS:
            bus.subscribe(name, self.on_agent_event)

    def add(self, conn: DeskConnection) -> None:
        self.connections.add(conn)
        if conn.extension:
            self.by_extension.setdefault(conn.extension, set()).add(conn)

    def remove(self, conn: DeskConnection) -> None:
        self.connections.discard(conn)
        if conn.extension and conn.extension in self.by_extension:
            self.by_extension[conn.extension].discard(conn)
            if not self.by_extension[conn.extension]:
                del self.by_extension[conn.extension]

    # ------------------------------------------------------------------ bus handlers

    async def on_call_event(self, event: Event) -> None:
        call = CallInfo.from_event(event)
        if call is None:
            return
        targets = list(self.by_extension.get(call.extension, ()))
        if not targets:
            return  # nobody at that desk in this process: no database work
        # Build and send in a task of its own: the bus delivers events one after the other,
        # and one pop's database work must not delay the next call's pop.
        task = asyncio.create_task(self._pop(call, targets))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pop(self, call: CallInfo, targets: list[DeskConnection]) -> None:
        show = all(t.show_numbers for t in targets)
        pop = await asyncio.to_thread(self._build_pop, call, show)
        for conn in targets:
            conn.contact_id = pop["call"]["contact_id"]
            conn.transcript = []
            await conn.send(pop)
        self.pops_sent += 1
        # Taps start as the agent answers, often before this pop is built: the status
        # that came first is sent now.
        status = self._statuses.get(str(pop["call"]["contact_id"]))
        if status is not None:
            for conn in targets:
                await conn.send({**status, "contact_id": conn.contact_id})

    def _build_pop(self, call: CallInfo, show_numbers: bool) -> dict[str, Any]:
        # The index catches up with the KB revision at most every few seconds here (and at
        # once on a kb_published event), not with one more query on every pop.
        now = time.monotonic()
        refresh = now - self._index_checked > INDEX_CHECK_S
        if refresh:
            self._index_checked = now
        with self.services.session_factory() as session:
            return build_pop(session, self.services.kb_index, call, show_numbers=show_numbers,
                             refresh_index=refresh)

    async def on_kb_event(self, event: Event) -> None:
        self._index_checked = 0.0  # the next pop (or search) loads the change
        message = {
            "v": PROTOCOL_VERSION,
            "type": "kb_update",
            "action": "retired" if event.get("type") == "kb_retired" else "published",
            "external_id": event.get("external_id"),
            "title": event.get("title"),
            "version_no": event.get("version_no"),
            "at": event.get("at"),
        }
        await asyncio.gather(*(c.send(message) for c in list(self.connections)))

    def _showing(self, contact_id: Any) -> list[DeskConnection]:
        """The desks showing this contact. Transcription events carry the contact id as a
        string (it crosses processes as a tap's label); pops carry it as an int."""
        if contact_id is None or contact_id == "":
            return []
        key = str(contact_id)
        return [c for c in self.connections
                if c.contact_id is not None and str(c.contact_id) == key]

    async def on_transcription_status(self, event: Event) -> None:
        state = event.get("state")
        if event.get("contact_id") is not None:
            self._statuses[str(event["contact_id"])] = {
                "v": PROTOCOL_VERSION, "type": "transcription_status", "state": state,
                "reason": str(event.get("reason") or "")[:200]}
            while len(self._statuses) > MAX_REMEMBERED_STATUSES:
                self._statuses.pop(next(iter(self._statuses)))
        if event.get("contact_id") is None:  # service-wide: "off" (no model)
            targets = list(self.connections)
        else:
            targets = self._showing(event.get("contact_id"))
        message = {
            "v": PROTOCOL_VERSION, "type": "transcription_status",
            "contact_id": targets[0].contact_id if targets and event.get("contact_id") else None,
            "state": state, "reason": str(event.get("reason") or "")[:200],
        }
        for conn in targets:
            await conn.send(message)

    async def on_transcript(self, event: Event) -> None:
        text = str(event.get("text") or "")
        targets = self._showing(event.get("contact_id"))
        if not targets or not text:
            return
        contact_id = targets[0].contact_id
        final = bool(event.get("final"))
        speaker = event.get("speaker")
        segment = {
            "v": PROTOCOL_VERSION, "type": "transcript", "contact_id": contact_id,
            "speaker": speaker if speaker in ("caller", "agent") else None, "text": text,
            "final": final, "start": event.get("start"), "end": event.get("end"),
            "delayed": bool(event.get("delayed")),
        }
        for conn in targets:
            await conn.send(segment)
        if not final:
            return
        conn0 = targets[0]
        conn0.transcript.append(text)
        query = " ".join(conn0.transcript)[-300:]
        index = self.services.kb_index
        found = await asyncio.to_thread(suggestions, index, query)
        message = {
            "v": PROTOCOL_VERSION, "type": "suggestions", "contact_id": contact_id,
            "query": query, "suggestions": found,
        }
        for conn in targets:
            if conn is not conn0:
                conn.transcript = list(conn0.transcript)
            await conn.send(message)

    async def on_agent_event(self, event: Event) -> None:
        call = CallInfo.from_event(event)
        if call is None:
            return
        message = {"v": PROTOCOL_VERSION, "type": "agent_event", "event": event}
        for conn in list(self.by_extension.get(call.extension, ())):
            await conn.send(message)


def _origin_allowed(websocket: WebSocket) -> bool:
    """Same-origin only: the Origin's host:port must be the Host the browser connected to."""
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host")
    if not origin or not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == host


def _authenticate(services: Services, token: str) -> DeskConnection | None:
    if not token:
        return None
    with services.session_factory() as session:
        auth = session.scalar(
            select(AuthSession).where(AuthSession.token_hash == _hash_token(token))
        )
        if auth is None or auth.expires_at <= utcnow() or not auth.user.is_active:
            return None
        user = auth.user
        return DeskConnection(
            websocket=None,  # type: ignore[arg-type]  # set by the caller
            user_id=user.id,
            username=user.username,
            role=user.role,
            extension=user.extension,
            show_numbers=may_see_phone_numbers(user),
        )


router = APIRouter()


@router.websocket("/ws/desk")
async def desk_socket(websocket: WebSocket) -> None:
    hub: DeskHub = websocket.app.state.desk_hub
    if not _origin_allowed(websocket):
        await websocket.close(code=1008, reason="origin not allowed")
        return
    token = websocket.cookies.get(SESSION_COOKIE, "")
    conn = await asyncio.to_thread(_authenticate, hub.services, token)
    if conn is None:
        await websocket.close(code=1008, reason="sign in first")
        return
    conn.websocket = websocket
    await websocket.accept()
    hub.add(conn)
    try:
        await conn.send({
            "v": PROTOCOL_VERSION, "type": "hello", "user": conn.username,
            "role": conn.role.value, "extension": conn.extension,
        })
        while True:
            raw = await websocket.receive_text()
            if len(raw) > MAX_CLIENT_MESSAGE:
                await websocket.close(code=1009, reason="message too big")
                return
            try:
                message = json.loads(raw)
            except ValueError:
                await conn.send({"v": PROTOCOL_VERSION, "type": "error",
                                 "detail": "messages are JSON objects"})
                continue
            if isinstance(message, dict) and message.get("type") == "ping":
                await conn.send({"v": PROTOCOL_VERSION, "type": "pong"})
    except WebSocketDisconnect:
        pass
    finally:
        hub.remove(conn)
        with contextlib.suppress(Exception):
            await websocket.close()


def install(app: FastAPI, services: Services) -> DeskHub:
    """Add the desk socket to `app` and subscribe its hub to the bus (one call in create_app)."""
    hub = DeskHub(services)
    hub.subscribe()
    app.state.desk_hub = hub
    app.include_router(router)
    return hub
