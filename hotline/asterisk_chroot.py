"""The dev Asterisk 22: a cached Debian-sid chroot, our configuration, generated prompts.

Debian 12 has no Asterisk package; sid has Asterisk 22. `DevPbx` builds (once, cached) a sid
chroot with mmdebstrap, renders the templates in `asterisk/` into an *instance* directory
inside it (`<chroot>/srv/hotline/<instance>`), generates the Mandarin prompts from
`asterisk/prompts/catalogue.toml`, and runs Asterisk as a daemon. Several instances (dev,
each test session) share one chroot; each has its own configuration, sockets, logs and
ports. See docs/adr/0003-dev-asterisk-chroot.md.

    pbx = DevPbx(settings)
    pbx.up()                      # provision if needed, render, start, wait until booted
    pbx.cli("queue show")         # `asterisk -rx`
    pbx.status().registered       # ["8001", ...]
    pbx.down()

Everything raises `PbxError` (one line a person can act on) for expected failures.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from agi import dialplan
from hotline.settings import Settings

log = logging.getLogger(__name__)

MARKER = "etc/hotline-chroot.json"  # written last into a complete chroot
ASTERISK_BIN = "/usr/sbin/asterisk"
SOUNDS_DIR = "usr/share/asterisk/sounds"
MOH_DIR = "usr/share/asterisk/moh-hotline"
INSTANCES_DIR = "srv/hotline"
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PROMPT_RATE = 8000
# 8 kHz mono 16-bit signed linear: what format_wav plays without transcoding to slin.
SOX_FORMAT = ("-r", str(PROMPT_RATE), "-c", "1", "-b", "16", "-e", "signed-integer")


class PbxError(Exception):
    """An expected failure, worded so that the person running the command can act on it."""


# --------------------------------------------------------------------------------------
# secrets
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PbxSecrets:
    """Per-install credentials: generated once, kept in var_dir/pbx-secrets.json (0600)."""

    ami_secret: str
    agent_passwords: dict[str, str]


def secrets_path(settings: Settings) -> Path:
    return settings.var_dir / "pbx-secrets.json"


def agent_extensions(settings: Settings) -> list[str]:
    first, last = settings.pbx.agent_extensions
    return [str(n) for n in range(first, last + 1)]


def load_secrets(settings: Settings) -> PbxSecrets:
    """Read the per-install secrets, generating whatever is missing. Never logs them."""
    path = secrets_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(path.with_name(path.name + ".lock")):
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise PbxError(f"{path} is unreadable ({exc}); delete it to regenerate") from exc
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
        changed = False
        if not data.get("ami_secret"):
            data["ami_secret"] = secrets.token_urlsafe(24)
            changed = True
        agents = data.setdefault("agents", {})
        for ext in agent_extensions(settings):
            if not agents.get(ext):
                agents[ext] = secrets.token_urlsafe(12)
                changed = True
        if changed:
            _write_private(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    configured = settings.pbx.ami_secret.get_secret_value()
    return PbxSecrets(
        ami_secret=configured or data["ami_secret"],
        agent_passwords={ext: agents[ext] for ext in agent_extensions(settings)},
    )


def ami_secret(settings: Settings) -> str:
    """The AMI secret the rendered manager.conf uses (for panoramisk clients)."""
    return load_secrets(settings).ami_secret


# --------------------------------------------------------------------------------------
# prompts
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptCatalogue:
    voice: str
    speed_wpm: int
    pitch: int
    prompts: dict[str, str]  # id -> text, played as hotline/zh/<id>
    asterisk_sounds: dict[str, str]  # Asterisk sound name -> text, under sounds/zh/

    def files(self) -> dict[str, str]:
        """Relative path under the sounds dir (no extension) -> text."""
        out = {f"{dialplan.PROMPT_DIR}/{pid}": text for pid, text in self.prompts.items()}
        out.update({f"zh/{name}": text for name, text in self.asterisk_sounds.items()})
        return out


def load_prompt_catalogue(config_dir: Path) -> PromptCatalogue:
    path = config_dir / "prompts" / "catalogue.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PbxError(f"cannot read the prompt catalogue {path}: {exc}") from exc
    voice = data.get("voice", {})
    prompts = {str(k): str(v) for k, v in data.get("prompts", {}).items()}
    for pid in prompts:
        if not re.fullmatch(r"[a-z0-9_]+", pid):
            raise PbxError(f"{path}: prompt id {pid!r} must be lower-case letters, digits, _")
    return PromptCatalogue(
        voice=str(voice.get("espeak_voice", "cmn")),
        speed_wpm=int(voice.get("speed_wpm", 150)),
        pitch=int(voice.get("pitch", 50)),
        prompts=prompts,
        asterisk_sounds={str(k): str(v) for k, v in data.get("asterisk_sounds", {}).items()},
    )


# --------------------------------------------------------------------------------------
# status
# --------------------------------------------------------------------------------------


@dataclass
class EndpointStatus:
    name: str
    state: str  # Asterisk's device state: "Not in use", "Unavailable", "In use", ...
    contacts: list[str] = field(default_factory=list)  # registered contact URIs


@dataclass
class PbxStatus:
    instance: str
    running: bool
    pid: int | None = None
    version: str = ""
    uptime: str = ""
    endpoints: list[EndpointStatus] = field(default_factory=list)

    @property
    def registered(self) -> list[str]:
        """Endpoints with at least one registered contact (agents' softphones)."""
        return [e.name for e in self.endpoints if e.contacts]


# --------------------------------------------------------------------------------------
# the PBX
# --------------------------------------------------------------------------------------


class DevPbx:
    """One Asterisk instance in the shared cached chroot, configured from `settings`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pbx = settings.pbx
        self.root = Path(os.path.expanduser(self.pbx.chroot_dir)).absolute()
        self.instance = self.pbx.instance
        # Paths as Asterisk sees them (inside the chroot) and as we see them (host).
        self.inst_in_chroot = f"/{INSTANCES_DIR}/{self.instance}"
        self.inst_dir = self.root / INSTANCES_DIR / self.instance
        self.asterisk_conf = f"{self.inst_in_chroot}/etc/asterisk.conf"

    # ---- public API ------------------------------------------------------------------

    def up(self, timeout: float = 60.0) -> PbxStatus:
        """Provision if needed, render the configuration, start Asterisk, wait until booted.

        Idempotent: when this instance already runs, the configuration is re-rendered and
        reloaded instead of restarting (calls in progress survive).
        """
        self.provision()
        self.render_config()
        self._prepare_runtime()
        if self.is_running():
            log.info("Asterisk instance %s already running; reloading config", self.instance)
            self.cli("core reload")
        else:
            self._start(timeout)
        return self.status()

    def down(self, timeout: float = 20.0) -> bool:
        """Stop this instance cleanly (hanging up its calls). False if it was not running."""
        _require_root()
        pid = self.pid()
        if pid is None:
            self._maybe_unmount_proc()
            return False
        with contextlib.suppress(PbxError):
            self._asterisk_rx("core stop now", timeout=10)
        if not _wait_gone(pid, timeout):
            log.warning("Asterisk (pid %s) ignored 'core stop now'; sending SIGTERM", pid)
            _kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, 5):
                _kill(pid, signal.SIGKILL)
                _wait_gone(pid, 5)
        for leftover in ("asterisk.pid", "asterisk.ctl"):
            with contextlib.suppress(FileNotFoundError):
                (self.inst_dir / "run" / leftover).unlink()
        self._maybe_unmount_proc()
        return True

    def remove_instance(self) -> None:
        """Delete this instance's directory (config, logs). Tests call it after down()."""
        if self.is_running():
            raise PbxError(f"instance {self.instance} is running; stop it first")
        shutil.rmtree(self.inst_dir, ignore_errors=True)

    def is_running(self) -> bool:
        return self.pid() is not None

    def pid(self) -> int | None:
        """The pid of this instance's Asterisk, if it is alive and really runs in our chroot."""
        try:
            pid = int((self.inst_dir / "run" / "asterisk.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive_in_root(pid, self.root) else None

    def cli(self, command: str, timeout: float = 30.0) -> str:
        """Run one Asterisk CLI command (`asterisk -rx`) and return its output."""
        _require_root()
        if not self.is_running():
            raise PbxError(
                f"Asterisk (instance {self.instance}) is not running: run `hotline pbx up`"
            )
        return self._asterisk_rx(command, timeout=timeout)

    def status(self) -> PbxStatus:
        _require_root()
        pid = self.pid()
        st = PbxStatus(instance=self.instance, running=pid is not None, pid=pid)
        if pid is None:
            return st
        version = self.cli("core show version").strip()
        st.version = version.split(" built by ")[0]
        uptime = self.cli("core show uptime")
        m = re.search(r"System uptime:\s*(.+)", uptime)
        st.uptime = m.group(1).strip() if m else ""
        st.endpoints = parse_endpoints(self.cli("pjsip show endpoints"))
        contacts = parse_contacts(self.cli("pjsip show contacts"))
        for ep in st.endpoints:
            ep.contacts = contacts.get(ep.name, [])
        return st

    def log_path(self, name: str = "full.log") -> Path:
        """Host path of one of this instance's log files."""
        return self.inst_dir / "log" / name

    # ---- provisioning ----------------------------------------------------------------

    def provision(self) -> None:
        """Make sure the chroot exists (build it if not) and the prompts are current."""
        _require_root()
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.root.parent / f".{self.root.name}.lock"):
            if not self.chroot_ready():
                self._build_chroot()
            self._write_hosts()
            self.generate_prompts()

    def chroot_ready(self) -> bool:
        return (self.root / MARKER).is_file() and (self.root / ASTERISK_BIN[1:]).is_file()

    def _build_chroot(self) -> None:
        if shutil.which("mmdebstrap") is None:
            raise PbxError(
                f"no Asterisk chroot at {self.root} and mmdebstrap is missing: "
                "apt-get install mmdebstrap (or run .ci/install-pbx.sh)"
            )
        parent, name = self.root.parent, self.root.name
        for stale in [*parent.glob(f".{name}.build-*"), *parent.glob(f".{name}.stale-*")]:
            _remove_tree(stale)
        if self.root.exists():  # half-built or foreign: never reuse it
            aside = parent / f".{name}.stale-{os.getpid()}"
            self.root.rename(aside)
            _remove_tree(aside)
        mirror = self.pbx.debian_mirror or detect_debian_mirror()
        build = parent / f".{name}.build-{os.getpid()}"
        build_log = parent / f"{name}.build.log"
        cmd = [
            "mmdebstrap",
            "--variant=apt",
            "--aptopt=Acquire::Check-Valid-Until false",
            "--include=asterisk,asterisk-modules",
            "sid",
            str(build),
            mirror,
        ]
        log.info("building the Asterisk chroot at %s from %s (about a minute)", self.root, mirror)
        started = time.monotonic()
        with build_log.open("w") as out:
            rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        if rc != 0 or not (build / ASTERISK_BIN[1:]).is_file():
            _remove_tree(build)
            raise PbxError(f"mmdebstrap failed (exit {rc}); see {build_log}")
        version = subprocess.run(  # noqa: S603
            ["chroot", str(build), ASTERISK_BIN, "-V"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
            env=CHROOT_ENV,
        ).stdout.strip()
        marker = {
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "mirror": mirror,
            "asterisk": version,
            "build_seconds": round(time.monotonic() - started, 1),
        }
        (build / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        build.rename(self.root)  # atomic: a half-built chroot is never at self.root
        log.info("chroot ready: %s in %.0f s", version, marker["build_seconds"])

    def _write_hosts(self) -> None:
        # Without this every call triggers failing DNS look-ups and calls fail under load.
        hosts = f"127.0.0.1\tlocalhost {socket.gethostname()}\n::1\tlocalhost ip6-localhost\n"
        path = self.root / "etc" / "hosts"
        if not path.exists() or path.read_text() != hosts:
            path.write_text(hosts)

    def generate_prompts(self) -> int:
        """Speak every catalogue entry missing or changed since last time; return how many."""
        catalogue = load_prompt_catalogue(self.pbx.config_dir)
        sounds = self.root / SOUNDS_DIR
        manifest_path = sounds / dialplan.PROMPT_DIR / ".manifest.json"
        try:
            manifest: dict[str, str] = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            manifest = {}
        recorded_dir = self.pbx.config_dir / "prompts" / "recorded"
        todo: list[tuple[str, str, str, Path | None]] = []
        for rel, text in catalogue.files().items():
            recorded = recorded_dir / f"{Path(rel).name}.wav"
            source: Path | None = recorded if rel.startswith(dialplan.PROMPT_DIR) else None
            if source is not None and source.is_file():
                digest = "rec:" + hashlib.sha256(source.read_bytes()).hexdigest()
            else:
                source = None
                key = f"{catalogue.voice}|{catalogue.speed_wpm}|{catalogue.pitch}|{text}"
                digest = hashlib.sha256(key.encode()).hexdigest()
            if manifest.get(rel) != digest or not (sounds / f"{rel}.wav").is_file():
                todo.append((rel, text, digest, source))
        moh = self.root / MOH_DIR / "hotline-hold.wav"
        if todo or not moh.is_file():
            _require_tools(["espeak-ng", "sox"], "to generate the prompts")
        if not moh.is_file():
            _make_hold_music(moh)
        if not todo:
            return 0
        log.info("generating %d prompts with espeak-ng -v %s", len(todo), catalogue.voice)

        def make(item: tuple[str, str, str, Path | None]) -> tuple[str, str]:
            rel, text, digest, source = item
            dest = sounds / f"{rel}.wav"
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source is not None:
                _sox(source, dest)
            else:
                _speak(text, dest, catalogue)
            return rel, digest

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            for rel, digest in pool.map(make, todo):
                manifest[rel] = digest
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        return len(todo)

    # ---- configuration ---------------------------------------------------------------

    def render_config(self) -> list[Path]:
        """Render asterisk/*.conf.j2 into the instance's etc dir (mode 0600)."""
        _require_root()
        config_dir = self.pbx.config_dir
        templates = sorted(config_dir.glob("*.conf.j2"))
        if not templates:
            raise PbxError(f"no Asterisk config templates (*.conf.j2) in {config_dir}")
        env = jinja2.Environment(  # noqa: S701 - these are not HTML
            loader=jinja2.FileSystemLoader(str(config_dir)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        context = self.template_context()
        etc = self.inst_dir / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        etc.chmod(0o700)
        written = []
        for tpl in templates:
            name = tpl.name.removesuffix(".j2")
            try:
                text = env.get_template(tpl.name).render(**context)
            except jinja2.TemplateError as exc:
                raise PbxError(f"cannot render {tpl}: {exc}") from exc
            _write_private(etc / name, text)
            written.append(etc / name)
        return written

    def template_context(self) -> dict[str, Any]:
        pbx = self.pbx
        if not pbx.rtp_start < pbx.rtp_end:
            raise PbxError(f"pbx.rtp_start ({pbx.rtp_start}) must be below pbx.rtp_end")
        creds = load_secrets(self.settings)
        agents = [{"extension": ext, "password": pw} for ext, pw in creds.agent_passwords.items()]
        static = [str(a) for a in pbx.static_agents if str(a) in creds.agent_passwords]
        queue_info = {
            dialplan.QUEUE_CONSULTATION: ("咨询 consultation", 0),
            dialplan.QUEUE_COMPLAINT: ("投诉/举报/求助 complaint, report, request for help", 0),
            dialplan.QUEUE_PRIORITY: ("优先 repeat callers and urgent matters", 10),
        }
        queues = [
            {"name": name, "description": desc, "weight": weight, "static_members": static}
            for name, (desc, weight) in queue_info.items()
        ]
        default_queue = self.settings.ivr.default_queue
        if default_queue not in dialplan.QUEUES:
            raise PbxError(
                f"ivr.default_queue {default_queue!r} is not one of {', '.join(dialplan.QUEUES)}"
            )
        return {
            "d": dialplan,
            "pbx": pbx,
            "instance": self.instance,
            "inst": self.inst_in_chroot,
            "ami_secret": creds.ami_secret,
            "agents": agents,
            "queues": queues,
            "default_queue": default_queue,
            "hotline_number": self.settings.ivr.hotline_number,
            "trunk_endpoint": dialplan.TRUNK_ENDPOINT,
            "max_calls": 2000,
        }

    # ---- running ---------------------------------------------------------------------

    def _prepare_runtime(self) -> None:
        for sub in ("run", "log", "spool", "lib", "cache"):
            (self.inst_dir / sub).mkdir(parents=True, exist_ok=True)
        self._write_hosts()
        proc = self.root / "proc"
        if not _is_mountpoint(proc):
            subprocess.run(  # noqa: S603
                ["mount", "-t", "proc", "proc", str(proc)],  # noqa: S607
                check=True,
                capture_output=True,
            )

    def _start(self, timeout: float) -> None:
        self._check_ports_free()
        start_log = self.inst_dir / "log" / "startup.log"
        with start_log.open("w") as out:
            rc = subprocess.call(  # noqa: S603
                ["chroot", str(self.root), ASTERISK_BIN, "-C", self.asterisk_conf],  # noqa: S607
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=CHROOT_ENV,
                start_new_session=True,
            )
        if rc != 0:
            raise PbxError(f"Asterisk failed to start (exit {rc}); see {start_log}")
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            if (self.inst_dir / "run" / "asterisk.ctl").exists():
                try:
                    out_text = self._asterisk_rx(
                        "core waitfullybooted", timeout=deadline - time.monotonic()
                    )
                    if "fully booted" in out_text:
                        log.info("Asterisk instance %s is up", self.instance)
                        return
                except PbxError as exc:
                    last_error = str(exc)
            time.sleep(0.1)
        raise PbxError(
            f"Asterisk did not finish booting within {timeout:.0f} s ({last_error or 'no socket'});"
            f" see {self.log_path('messages.log')}"
        )

    def _check_ports_free(self) -> None:
        pbx = self.pbx
        for kind, port in (("udp", pbx.sip_port), ("tcp", pbx.sip_port), ("tcp", pbx.ami_port)):
            if not _port_free(kind, port):
                raise PbxError(
                    f"127.0.0.1:{port}/{kind} is already in use (another Asterisk or SIP "
                    f"program?); stop it or set HOTLINE_PBX__"
                    f"{'AMI_PORT' if port == pbx.ami_port else 'SIP_PORT'}"
                )

    def _asterisk_rx(self, command: str, timeout: float = 30.0) -> str:
        # -n: no ANSI colours in the output we parse.
        argv = [
            *("chroot", str(self.root), ASTERISK_BIN, "-C", self.asterisk_conf),
            *("-n", "-rx", command),
        ]
        try:
            proc = subprocess.run(  # noqa: S603
                argv,
                capture_output=True,
                text=True,
                timeout=max(timeout, 1.0),
                env=CHROOT_ENV,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PbxError(f"`asterisk -rx {command!r}` timed out after {timeout:.0f} s") from exc
        if proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise PbxError(
                f"`asterisk -rx {command!r}` failed: {msg[-1] if msg else proc.returncode}"
            )
        return _ANSI_RE.sub("", proc.stdout)

    def _maybe_unmount_proc(self) -> None:
        """Unmount the chroot's /proc once no instance runs in it any more."""
        for pidfile in (self.root / INSTANCES_DIR).glob("*/run/asterisk.pid"):
            try:
                if _alive_in_root(int(pidfile.read_text().strip()), self.root):
                    return
            except (OSError, ValueError):
                continue
        proc = self.root / "proc"
        if _is_mountpoint(proc):
            subprocess.run(["umount", str(proc)], check=False, capture_output=True)  # noqa: S603,S607


# --------------------------------------------------------------------------------------
# CLI output parsing
# --------------------------------------------------------------------------------------

_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_ENDPOINT_RE = re.compile(r"^\s*Endpoint:\s+(?P<name>[^\s/]+)(?:/\S+)?\s+(?P<state>\S.*?)\s{2,}\d")
_CONTACT_RE = re.compile(r"^\s*Contact:\s+(?P<aor>[^/\s]+)/(?P<uri>\S+)")


def parse_endpoints(text: str) -> list[EndpointStatus]:
    """Parse `pjsip show endpoints`."""
    out = []
    for line in text.splitlines():
        m = _ENDPOINT_RE.match(line)
        if m and m.group("name") != "<Endpoint/CID.....................................>":
            out.append(EndpointStatus(name=m.group("name"), state=m.group("state").strip()))
    return out


def parse_contacts(text: str) -> dict[str, list[str]]:
    """Parse `pjsip show contacts` into AOR -> contact URIs."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = _CONTACT_RE.match(line)
        if m and not m.group("aor").startswith("<"):
            out.setdefault(m.group("aor"), []).append(m.group("uri"))
    return out


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def detect_debian_mirror() -> str:
    """The Debian mirror apt already uses on this machine (deb822 or one-line format)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for block in sources.read_text().split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", block, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", block, re.M)
            if uris and suites and "security" not in suites.group(1):
                return uris.group(1)
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in line:
                return next(p for p in parts[1:] if "://" in p)
    return DEFAULT_MIRROR


def _require_root() -> None:
    if os.geteuid() != 0:
        raise PbxError(
            "the dev PBX needs root (it uses chroot and mounts /proc): run this as root, "
            "e.g. `sudo .venv/bin/hotline pbx up`"
        )


def _require_tools(tools: list[str], why: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise PbxError(
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} needed {why} "
            f"but missing: apt-get install {' '.join(missing)} (or run .ci/install-pbx.sh)"
        )


def _speak(text: str, dest: Path, cat: PromptCatalogue) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        voice = ["-v", cat.voice, "-s", str(cat.speed_wpm), "-p", str(cat.pitch)]
        subprocess.run(  # noqa: S603
            ["espeak-ng", *voice, "-w", str(raw), text],  # noqa: S607
            check=True,
            capture_output=True,
        )
        _sox(raw, dest)


def _sox(src: Path, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.tmp.wav")
    subprocess.run(  # noqa: S603
        ["sox", str(src), *SOX_FORMAT, str(tmp), "norm", "-3"],  # noqa: S607
        check=True,
        capture_output=True,
    )
    tmp.replace(dest)


def _make_hold_music(dest: Path) -> None:
    """A quiet, repeating eight-note phrase: Debian's asterisk ships no hold music."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    notes = [523.25, 659.25, 783.99, 659.25, 587.33, 698.46, 880.0, 698.46]
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for i, freq in enumerate(notes):
            part = Path(tmp) / f"n{i}.wav"
            tone = ["synth", "0.45", "sine", str(freq), "fade", "0.02", "0.45", "0.1", "vol", "0.2"]
            subprocess.run(  # noqa: S603
                ["sox", "-n", *SOX_FORMAT, str(part), *tone],  # noqa: S607
                check=True,
                capture_output=True,
            )
            parts.append(str(part))
        tmp_dest = dest.with_name(f".{dest.name}.tmp.wav")
        subprocess.run(  # noqa: S603
            ["sox", *parts, str(tmp_dest), "repeat", "3"],  # noqa: S607
            check=True,
            capture_output=True,
        )
        tmp_dest.replace(dest)


def _write_private(path: Path, text: str) -> None:
    """Write atomically with mode 0600 (rendered configs and the secrets file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _mounts() -> list[str]:
    with open("/proc/self/mounts") as fh:
        return [line.split()[1] for line in fh if len(line.split()) > 1]


def _is_mountpoint(path: Path) -> bool:
    return str(path.resolve()) in _mounts()


def _remove_tree(path: Path) -> None:
    """Remove a (possibly half-built) chroot, unmounting anything mounted inside first."""
    real = str(path.resolve())
    for mnt in sorted(
        (m for m in _mounts() if m == real or m.startswith(real + "/")), reverse=True
    ):
        subprocess.run(["umount", "-l", mnt], check=False, capture_output=True)  # noqa: S603,S607
    shutil.rmtree(path, ignore_errors=True)


def _alive_in_root(pid: int, root: Path) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
        return os.readlink(f"/proc/{pid}/root") == str(root.resolve())
    except (OSError, IndexError):
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except (OSError, IndexError):
            return True
        time.sleep(0.1)
    return False


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _port_free(kind: str, port: int) -> bool:
    sock_type = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, sock_type) as s:
        if kind == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
