"""The event bus: producers publish domain events, consumers subscribe by name.

One interface, two transports. `InProcessBus` (the default) delivers within one process.
`RedisBus` fans events out to every process through Redis pub/sub, so a wallboard served by
one web worker sees calls handled by the AMI bridge in another. Events are small JSON
objects: ``{"type": "call_queued", "at": "...", ...}``. Delivery is at-most-once and
best-effort by design: anything that must not be lost is written to the database by its
producer first; the bus only makes screens live.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

Event = dict[str, Any]
Handler = Callable[[Event], Awaitable[None] | None]
ALL = "*"


def make_event(type_: str, **payload: Any) -> Event:
    return {"type": type_, "at": dt.datetime.now(dt.UTC).isoformat(), **payload}


class EventBus(Protocol):
    async def publish(self, event: Event) -> None: ...

    def subscribe(self, event_type: str, handler: Handler) -> Callable[[], None]:
        """Call `handler` for each event of that type (or ALL); returns an unsubscribe."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class InProcessBus:
    _handlers: dict[str, list[Handler]] = field(default_factory=dict)

    async def publish(self, event: Event) -> None:
        await self._deliver(event)

    async def _deliver(self, event: Event) -> None:
        for handler in (*self._handlers.get(event.get("type", ""), ()),
                        *self._handlers.get(ALL, ())):
            try:
                result = handler(event)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # one broken consumer must not starve the others
                log.exception("event handler failed for %s", event.get("type"))

    def subscribe(self, event_type: str, handler: Handler) -> Callable[[], None]:
        self._handlers.setdefault(event_type, []).append(handler)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._handlers[event_type].remove(handler)

        return unsubscribe

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class RedisBus(InProcessBus):
    """Publishes to a Redis channel; a listener task delivers every event (including this
    process's own) to local subscribers, so all processes see the same stream."""

    def __init__(self, url: str, channel: str = "hotline:events") -> None:
        super().__init__()
        self._url = url
        self._channel = channel
        self._redis: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(self._url)
        self._task = asyncio.create_task(self._listen(), name="redis-event-listener")

    async def _listen(self) -> None:
        backoff = 0.5
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(self._channel)
                backoff = 0.5
                async for message in self._messages(pubsub):
                    await self._deliver(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarted or unreachable: retry with backoff
                log.warning("event bus: Redis unavailable (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    @staticmethod
    async def _messages(pubsub: Any) -> AsyncIterator[Event]:
        async for raw in pubsub.listen():
            if raw.get("type") != "message":
                continue
            try:
                yield json.loads(raw["data"])
            except (ValueError, TypeError):
                log.warning("event bus: dropped a malformed message")

    async def publish(self, event: Event) -> None:
        try:
            await self._redis.publish(self._channel, json.dumps(event, ensure_ascii=False))
        except Exception as exc:
            # Live screens miss one update; the database still has the truth.
            log.warning("event bus: publish failed (%s); delivering locally only", exc)
            await self._deliver(event)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._redis is not None:
            await self._redis.aclose()


def make_bus(redis_url: str) -> InProcessBus:
    """Redis when a URL is configured (several processes), in-process otherwise."""
    return RedisBus(redis_url) if redis_url else InProcessBus()
