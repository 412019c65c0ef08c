"""The energy gate: silence and line noise cost nothing, speech opens and closes utterances."""

from __future__ import annotations

from tests.transcription.audio import silence, tone
from transcription.vad import EnergyGate, frame_dbfs


def _events(gate: EnergyGate, pcm: bytes, chunk: int = 320) -> list[tuple[str, int, int]]:
    out = []
    for i in range(0, len(pcm), chunk):
        out += [(e.kind, e.at_ms, len(e.pcm)) for e in gate.feed(pcm[i : i + chunk])]
    return out + [(e.kind, e.at_ms, 0) for e in gate.flush()]


def test_levels() -> None:
    assert frame_dbfs(silence(20)) < -100
    assert -20 < frame_dbfs(tone(20, amp=8000)) < -5
    assert frame_dbfs(silence(20, level=50)) < -50  # comfort noise


def test_silence_and_line_noise_open_nothing() -> None:
    gate = EnergyGate()
    assert _events(gate, silence(3000)) == []
    assert _events(EnergyGate(), silence(3000, level=60)) == []


def test_speech_opens_and_closes_an_utterance_with_stream_times() -> None:
    gate = EnergyGate(preroll_ms=200, hangover_ms=300)
    events = _events(gate, silence(1000) + tone(500) + silence(1000) + tone(400) + silence(200))
    kinds = [k for k, _, _ in events if k != "speech"]
    assert kinds == ["start", "end", "start", "end"]
    starts = [at for k, at, _ in events if k == "start"]
    ends = [at for k, at, _ in events if k == "end"]
    assert starts[0] == 800  # 200 ms of pre-roll before the onset at 1000 ms
    assert ends[0] == 1500
    assert starts[1] == 2300 and ends[1] == 2900  # the last one closed by flush()


def test_short_pause_inside_an_utterance_does_not_split_it() -> None:
    gate = EnergyGate(hangover_ms=300)
    events = _events(gate, tone(400) + silence(200) + tone(400) + silence(600))
    assert [k for k, _, _ in events if k != "speech"] == ["start", "end"]


def test_a_click_is_not_speech() -> None:
    gate = EnergyGate(min_speech_ms=60)
    assert _events(gate, silence(500) + tone(20) + silence(500)) == []
