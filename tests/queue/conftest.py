"""Queue brain tests. Unit tests replay AMI traces recorded from the real Asterisk 22
(tests/queue/traces/, made by tests/queue/record_trace.py); tests marked `pbx` run the
bridge against a real Asterisk with sipp callers and agents."""

from __future__ import annotations

from pathlib import Path

TRACES = Path(__file__).resolve().parent / "traces"
