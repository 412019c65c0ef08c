"""The FastAGI pool's cap: bounded, derived from the expected load (agi/server.py)."""

from __future__ import annotations

from agi.server import MIN_WORKERS, WORKERS_PER_CORE, ServerConfig, default_max_workers
from hotline.settings import IvrSettings, Settings


def _settings(**ivr: float) -> Settings:
    return Settings(env="test", ivr=IvrSettings(**ivr))  # type: ignore[arg-type]


def test_cap_is_littles_law_plus_a_quarter() -> None:
    assert default_max_workers(_settings(agi_peak_calls_per_s=4, agi_mean_session_s=10),
                               cpus=4) == 50


def test_cap_never_exceeds_the_cores_share_nor_falls_below_the_minimum() -> None:
    busy = _settings(agi_peak_calls_per_s=200, agi_mean_session_s=30)
    assert default_max_workers(busy, cpus=2) == 2 * WORKERS_PER_CORE
    quiet = _settings(agi_peak_calls_per_s=0.1, agi_mean_session_s=1)
    assert default_max_workers(quiet, cpus=2) == MIN_WORKERS


def test_an_explicit_cap_wins_and_config_stays_consistent() -> None:
    settings = _settings(agi_max_workers=10)
    config = ServerConfig.from_settings(settings, port=None, min_spare=None)
    assert config.max_workers == 10
    assert config.port == settings.pbx.agi_port
    assert config.min_spare <= 10 and config.initial_workers <= 10
    assert ServerConfig.from_settings(settings, max_workers=300).max_workers == 300
