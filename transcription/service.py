"""The transcription service: AudioSocket server + recognizer + bus + storage.

    svc = TranscriptionService(settings, bus, session_factory)
    await svc.start()        # never raises for a missing model: transcription is just off
    svc.health()             # {"ok": ..., "state": "running"|"off", "reason": ...}
    await svc.stop()

Each connected tap is transcribed; every segment is published as `transcript_segment`,
finals are stored (TranscriptSegment) with the contact; `transcription_status` "running" is
published when a tap starts ("interrupted" comes from the TapController, "off" from here when
there is no model).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hotline.events import InProcessBus, make_event
from hotline.settings import Settings
from transcription.audiosocket import AudioSocketServer, TapRegistry, TapStream
from transcription.models import model_problem, resolve_model_dir
from transcription.recognizer import DecoderBackend, GatedRecognizer
from transcription.types import Segment

log = logging.getLogger(__name__)


class TranscriptionService:
    def __init__(self, settings: Settings, bus: InProcessBus, session_factory: Any = None,
                 backend: DecoderBackend | None = None) -> None:
        self.settings = settings
        self.bus = bus
        self.session_factory = session_factory
        self.backend = backend
        self.registry = TapRegistry()
        self.server: AudioSocketServer | None = None
        self.recognizer: GatedRecognizer | None = None
        self.state = "starting"
        self.reason = ""
        self.active_streams = 0
        self._unsubscribe: list[Any] = []

    async def start(self) -> None:
        t = self.settings.transcription
        if not t.enabled:
            await self._off("transcription disabled in settings (HOTLINE_TRANSCRIPTION__ENABLED)")
            return
        if self.backend is None:
            if t.remote_endpoints:
                from transcription.remote import RemoteBackend

                self.backend = RemoteBackend(t.remote_endpoints, t.remote_streams_per_endpoint)
            else:
                model_dir = resolve_model_dir(t)
                problem = model_problem(model_dir)
                if problem:
                    await self._off(f"{problem}; set HOTLINE_TRANSCRIPTION__MODEL_DIR")
                    return
                assert model_dir is not None
                from transcription.vosk_engine import VoskBackend

                try:
                    self.backend = await asyncio.to_thread(
                        VoskBackend, model_dir, t.workers, t.streams_per_worker)
                except Exception as exc:
                    await self._off(f"cannot load the Vosk model in {model_dir}: {exc}")
                    return
        self.recognizer = GatedRecognizer(
            self.backend, threshold_dbfs=t.vad_threshold_dbfs, preroll_ms=t.vad_preroll_ms,
            hangover_ms=t.vad_hangover_ms, partial_interval_ms=t.partial_interval_ms)
        # Subscribe before listening: the TapController takes an open port to mean "the
        # service is back" and announces taps at once.
        self._unsubscribe = [
            self.bus.subscribe("transcription_tap", self._on_tap),
            self.bus.subscribe("transcription_tap_stop", self._on_tap_stop),
        ]
        self.server = AudioSocketServer(self.registry, self._transcribe_stream,
                                        t.audiosocket_host, t.audiosocket_port)
        await self.server.start()
        self.state, self.reason = "running", ""
        log.info("transcription running (%s) on AudioSocket %s:%d", self.backend.name,
                 t.audiosocket_host, self.server.port)

    async def _off(self, reason: str) -> None:
        self.state, self.reason = "off", reason
        log.error("transcription is OFF: %s", reason)
        await self.bus.publish(make_event("transcription_status", contact_id=None, state="off",
                                          reason=reason))

    async def stop(self) -> None:
        for unsub in self._unsubscribe:
            unsub()
        if self.server is not None:
            await self.server.stop()
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.state == "running", "state": self.state}
        if self.reason:
            out["reason"] = self.reason
        if self.backend is not None and self.state == "running":
            out.update(self.backend.health())
            out["active_streams"] = self.active_streams
        return out

    def _on_tap(self, ev: dict[str, Any]) -> None:
        try:
            offset_ms = max(0, int(ev.get("offset_ms") or 0))
        except (TypeError, ValueError):
            offset_ms = 0
        self.registry.register(ev["tap_id"], str(ev["contact_id"]), ev["speaker"], offset_ms)

    def _on_tap_stop(self, ev: dict[str, Any]) -> None:
        contact_id = str(ev["contact_id"])
        self.registry.forget_contact(contact_id)
        if self.server is not None:
            self.server.drop_contact(contact_id)

    async def _transcribe_stream(self, stream: TapStream) -> None:
        assert self.recognizer is not None
        meta = stream.meta
        self.active_streams += 1
        try:
            await self.bus.publish(make_event("transcription_status", contact_id=meta.contact_id,
                                              state="running", reason="", speaker=meta.speaker))
            async for seg in self.recognizer.transcribe(meta, stream.chunks()):
                if meta.offset_ms:  # times from the call's start, across taps
                    seg.start_ms += meta.offset_ms
                    seg.end_ms += meta.offset_ms
                await self.bus.publish(make_event("transcript_segment", **seg.event_payload()))
                if seg.final and self.settings.transcription.store_finals:
                    await self._store(seg)
            # chan_audiosocket closes the connection without a hang-up frame when the tap
            # ends, so a closed connection is a normal end here. Taps lost mid-call are told
            # apart by the TapController, which knows whether the party is still on the call.
        finally:
            self.active_streams -= 1
            self.registry.forget(meta.tap_id)

    async def _store(self, seg: Segment) -> None:
        if self.session_factory is None:
            return
        try:
            contact_id = int(seg.contact_id)
        except ValueError:
            return  # not a stored contact (tests, benches)
        try:
            await asyncio.to_thread(store_segment, self.session_factory, contact_id, seg)
        except Exception as exc:  # the live transcript still reaches the desk
            log.warning("transcript segment not stored for contact %s: %s", contact_id, exc)


def store_segment(session_factory: Any, contact_id: int, seg: Segment) -> None:
    from cases.models import Contact, TranscriptSegment

    with session_factory() as session:
        contact = session.get(Contact, contact_id)
        if contact is None:
            return
        session.add(TranscriptSegment(
            contact_id=contact_id, case_id=contact.case_id, speaker=seg.speaker, text=seg.text,
            start_ms=seg.start_ms, end_ms=seg.end_ms, final=seg.final, delayed=seg.delayed))
        session.commit()
