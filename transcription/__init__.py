"""Live transcription: AudioSocket taps in, Vosk segments out (see docs/adr/0009)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hotline.settings import Settings
    from transcription.service import TranscriptionService

_current: TranscriptionService | None = None


def set_current(service: TranscriptionService | None) -> None:
    """The service running in this process (health() reports it)."""
    global _current
    _current = service


def health(settings: Settings) -> dict[str, Any]:
    """For /healthz. The running service's own view when it runs in this process; otherwise
    whether a model is there and whether the AudioSocket port answers (`hotline transcribe`
    running elsewhere on this host)."""
    if _current is not None:
        return _current.health()
    from transcription.models import model_problem, resolve_model_dir

    t = settings.transcription
    if not t.enabled:
        return {"ok": False, "state": "off", "reason": "disabled in settings"}
    if not t.remote_endpoints:
        problem = model_problem(resolve_model_dir(t))
        if problem:
            return {"ok": False, "state": "off", "reason": problem}
    try:
        with socket.create_connection((t.audiosocket_host, t.audiosocket_port), timeout=0.3):
            pass
    except OSError:
        return {"ok": False, "state": "down",
                "reason": f"no transcription service on {t.audiosocket_host}:"
                          f"{t.audiosocket_port}"}
    return {"ok": True, "state": "running"}
