"""The FastAGI server: a supervisor process, pre-forked workers with session threads, one
spool replayer.

    supervisor (no threads, never touches the database)
      |- worker 1..P   each: T session threads; the main thread accept()s a connection
      |                whenever one of them is free and hands it over; one database engine
      |                per worker, built after the fork, shared by its threads
      `- replayer      applies the spool to the database when it is back (agi/spool.py)

An IVR session mostly waits for Asterisk (prompts, key presses): a thread per session is
enough, and a process per session is not affordable (at 200 calls/s about 300 sessions run
at once). The pool grows and shrinks by whole workers: the supervisor keeps `min_spare`
free session threads (up to `max_workers` sessions in all) and retires fully idle workers
beyond `max_spare` free threads. `max_workers` bounds the sessions (settings `ivr.agi_*`,
see `default_max_workers`); a burst beyond it waits in a listen backlog of the same size,
then Asterisk's connect fails (AGISTATUS FAILURE) and the dialplan sends the call to the
default queue: late, never stuck.

A call is served by a thread that already exists, with a warm database connection; no fork
per call. A worker's main thread blocks in accept() only while one of its threads is free
(the kernel wakes one worker per connection); it is stopped or retired with a signal that
interrupts only that wait; busy threads finish their calls first.
See docs/adr/0006-ivr-fastagi.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import io
import json
import logging
import multiprocessing
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agi import dialplan
from agi.callback import callback as ivr_callback
from agi.channel import AgiChannel, ChannelHangup, HotlineAgi
from agi.ivr import IvrDeps, ivr, survey
from agi.records import RecordStore
from agi.spool import Spool, run_replayer, spool_dir
from hotline.settings import Settings

log = logging.getLogger(__name__)

Script = Callable[[Any, IvrDeps], None]
SCRIPTS: dict[str, Script] = {dialplan.AGI_IVR: ivr, dialplan.AGI_SURVEY: survey}
SCRIPTS[dialplan.AGI_CALLBACK] = ivr_callback  # the automated 回访 (agi/callback.py)

IO_TIMEOUT_S = 120.0  # no single AGI command waits this long (prompts, 10 s digit timeouts)
SLOT_FREE = -1  # status[slot]: -1 no worker in the slot, else its busy session threads
MIN_WORKERS = 16  # sessions, not processes (the name predates session threads)
# Sessions mostly wait for Asterisk (prompts, digits): a thread each, many per core. 128
# processes of one session each already completed 1.00x the plain rate at 200 calls/s; the
# CPU a session needs, not the number of sessions, is what the cores limit.
WORKERS_PER_CORE = 256
THREADS_PER_WORKER = 32  # sessions per worker process (one GIL each: keep several workers)
SPAWN_PER_TICK = 2  # forks per 20 ms pool tick: a burst must not turn into a fork storm


def default_max_workers(settings: Settings, cpus: int | None = None) -> int:
    """The pool's cap: `ivr.agi_max_workers`, or the expected number of calls in the IVR at
    once (peak calls/s x seconds per AGI session, plus a quarter), at least MIN_WORKERS and
    at most WORKERS_PER_CORE per core."""
    ivr = settings.ivr
    if ivr.agi_max_workers:
        return ivr.agi_max_workers
    expected = ivr.agi_peak_calls_per_s * ivr.agi_mean_session_s * 1.25
    ceiling = WORKERS_PER_CORE * (cpus or os.cpu_count() or 1)
    return int(max(MIN_WORKERS, min(expected, ceiling)))


@dataclasses.dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 4573
    min_spare: int = 8  # free session threads kept ready
    max_spare: int = 128  # free session threads beyond which idle workers retire
    max_workers: int = 128  # sessions at once; use ServerConfig.from_settings for the cap
    initial_workers: int = 16  # sessions ready at start (rounded up to whole workers)
    threads_per_worker: int = THREADS_PER_WORKER
    max_calls_per_worker: int = 20000
    idle_retire_after_s: float = 30.0
    # One JSON line per AGI session (script, timings, outcome): for the benchmark and ops.
    stats_path: Path | None = None
    replayer: bool = True
    grace_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ServerConfig:
        """Host, port and pool cap from the settings; None overrides are ignored."""
        values: dict[str, Any] = {
            "host": settings.pbx.agi_host,
            "port": settings.pbx.agi_port,
            "max_workers": default_max_workers(settings),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = cls(**values)
        config.min_spare = min(config.min_spare, config.max_workers)
        config.initial_workers = min(config.initial_workers, config.max_workers)
        config.threads_per_worker = max(1, min(config.threads_per_worker, config.max_workers))
        return config

    @property
    def max_processes(self) -> int:
        return -(-self.max_workers // self.threads_per_worker)

    def threads_of(self, process_index: int) -> int:
        """Session threads of the worker in slot `process_index`: the last one takes the
        remainder, so the sessions add up to exactly `max_workers`."""
        left = self.max_workers - process_index * self.threads_per_worker
        return max(0, min(self.threads_per_worker, left))


def script_name(env: dict[str, str]) -> str:
    """`ivr` from agi_network_script (FastAGI) or agi_request (agi://host:port/ivr?x)."""
    name = env.get("agi_network_script") or env.get("agi_request", "").rsplit("/", 1)[-1]
    return name.split("?", 1)[0].strip("/")


# ============================================================================ one connection


def handle_connection(conn: socket.socket, deps: IvrDeps, stats: io.TextIOBase | None) -> None:
    """Serve one FastAGI session. Never raises: a bad session must not take a worker down."""
    started = time.monotonic()
    deps.store.db_s = 0.0
    script = ""
    outcome = "ok"
    channel: AgiChannel | None = None
    streams: list[io.TextIOWrapper] = []
    try:
        conn.settimeout(IO_TIMEOUT_S)
        reader = io.TextIOWrapper(conn.makefile("rb"), encoding="utf-8", errors="replace")
        writer = io.TextIOWrapper(conn.makefile("wb"), encoding="utf-8", errors="replace",
                                  write_through=True)
        streams += [reader, writer]
        agi = HotlineAgi(stdin=reader, stdout=writer)
        if agi.eof and not agi.env:
            outcome = "no_environment"
            log.info("FastAGI client closed the connection before sending its environment")
            return
        script = script_name(agi.env)
        handler = SCRIPTS.get(script)
        if handler is None:
            outcome = "unknown_script"
            log.warning("unknown AGI script %r requested by %s: the call goes on in the dialplan",
                        script[:60], agi.env.get("agi_channel", "?")[:80])
            return
        channel = AgiChannel(agi)
        handler(channel, deps)
    except ChannelHangup as exc:
        outcome = "hangup"
        log.info("AGI %s ended by hang-up: %s", script or "?", exc)
    except Exception:
        outcome = "error"
        log.exception("AGI script %r failed", script)
    finally:
        # The socket closes only when its makefile() streams are closed too: close them
        # explicitly, or Asterisk keeps waiting for the script to end.
        for stream in streams:
            with contextlib.suppress(OSError, ValueError):
                stream.close()
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            conn.close()
        if stats is not None:
            total = time.monotonic() - started
            media = channel.media_s if channel else 0.0
            line = {
                "script": script[:20],
                "outcome": outcome,
                "at": time.time(),
                "total_ms": round(total * 1000, 2),
                "handling_ms": round((total - media) * 1000, 2),
                "db_ms": round(deps.store.db_s * 1000, 2),
            }
            try:
                with _STATS_LOCK:  # one line per write, whole, whatever the threads do
                    stats.write(json.dumps(line) + "\n")
                    stats.flush()
            except OSError:
                pass


_STATS_LOCK = threading.Lock()


# ============================================================================ processes


class _Stop(Exception):
    pass


def _worker_main(
    sock: socket.socket,
    slot: int,
    status: Any,
    settings: Settings,
    config: ServerConfig,
    shared_store: RecordStore | None = None,
) -> None:
    """A worker: `threads` session threads; the main thread accepts a connection whenever
    one of them is free and hands it over. Runs in a forked child; never returns."""
    threads = config.threads_of(slot)
    state = {"accepting": False, "stop": False}

    def on_signal(signum: int, frame: Any) -> None:
        state["stop"] = True
        if state["accepting"]:
            raise _Stop

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's business
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGUSR1, on_signal)  # retire
    code = 0
    try:
        base = shared_store or RecordStore(settings)
        base.engine.dispose(close=False)  # the parent's pool is not ours to use
        stats = open(config.stats_path, "a", encoding="utf-8") if config.stats_path else None  # noqa: SIM115
        free = threading.Semaphore(threads)
        handoff: queue.SimpleQueue[socket.socket | None] = queue.SimpleQueue()
        busy_lock = threading.Lock()

        def count_busy(delta: int) -> None:
            with busy_lock:
                status[slot] += delta

        def session_thread() -> None:
            # Each thread its own store (per-call timings) over the worker's one engine.
            deps = IvrDeps(settings=settings, store=RecordStore(settings, engine=base.engine))
            while (conn := handoff.get()) is not None:
                try:
                    handle_connection(conn, deps, stats)
                finally:
                    count_busy(-1)
                    free.release()

        pool = [threading.Thread(target=session_thread, name=f"agi-{slot}-{i}", daemon=True)
                for i in range(threads)]
        for thread in pool:
            thread.start()
        parent = os.getppid()
        handled = 0
        while not state["stop"] and handled < config.max_calls_per_worker:
            conn: socket.socket | None = None
            got_thread = False
            state["accepting"] = True
            try:
                if state["stop"]:
                    break
                free.acquire()
                got_thread = True
                conn, _ = sock.accept()
            except _Stop:
                pass
            except OSError as exc:
                log.error("accept failed: %s", exc)
                time.sleep(0.1)
            state["accepting"] = False
            if conn is None:
                if got_thread:
                    free.release()
                if os.getppid() != parent:
                    break
                continue
            count_busy(+1)
            handoff.put(conn)
            handled += 1
        # Busy threads finish their calls; idle ones take the stop mark and end.
        for _ in pool:
            handoff.put(None)
        for thread in pool:
            thread.join()
        base.close()
    except BaseException:
        log.exception("FastAGI worker crashed")
        code = 1
    finally:
        os._exit(code)


def unrecorded_log(settings: Settings) -> Path:
    """Where the PBX of these settings (the dev Asterisk's instance) writes the calls the
    IVR never saw: its spool directory (asterisk/extensions.conf.j2, hotline-unrecorded)."""
    from hotline.asterisk_chroot import DevPbx

    return DevPbx(settings).inst_dir / "spool" / dialplan.UNRECORDED_LOG


def _replayer_main(settings: Settings) -> None:
    stop = {"flag": False}

    def on_term(signum: int, frame: Any) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, on_term)
    code = 0
    try:
        store = RecordStore(settings)
        run_replayer(Spool(spool_dir(settings)), store.write_transaction,
                     should_stop=lambda: stop["flag"], unrecorded_log=unrecorded_log(settings))
    except BaseException:
        log.exception("spool replayer crashed")
        code = 1
    finally:
        os._exit(code)


class AgiServer:
    def __init__(self, settings: Settings, config: ServerConfig) -> None:
        self.settings = settings
        self.config = config
        self.sock: socket.socket | None = None
        # Per worker slot: SLOT_FREE, or how many of its session threads are busy.
        self.status: Any = multiprocessing.RawArray("i", [SLOT_FREE] * config.max_processes)
        self.workers: dict[int, int] = {}  # pid -> slot
        self.replayer_pid: int | None = None
        self._stopping = False
        self._idle_since: float | None = None
        self.store: RecordStore | None = None

    def warm_up(self) -> None:
        """Build the workers' record store once, here, and run each query once: workers
        inherit the mapped classes and the compiled statements instead of each paying for
        them on its first call (a noticeable wait under load)."""
        from cases.models import utcnow

        store = RecordStore(self.settings)
        try:
            store.lookup_caller("13800000000", now=utcnow(), uniqueid="warm-up")
            store.find_case("2026010100001")
        except Exception as exc:  # the database may be away at start: workers cope
            log.warning("warm-up skipped: %s", exc)
        store.engine.dispose()  # no connection crosses the fork
        self.store = store

    # ------------------------------------------------------------------ lifecycle

    def bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        # As many waiting connections as workers: a burst waits about one session at most;
        # beyond that the kernel drops the SYN, Asterisk's connect times out (2 s) and the
        # dialplan's default-queue path takes the call.
        sock.listen(max(MIN_WORKERS, self.config.max_workers))
        self.sock = sock
        return sock

    def serve_forever(self, ready: Callable[[], None] | None = None) -> None:
        if self.sock is None:
            self.bind()
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        if self.config.stats_path:
            self.config.stats_path.parent.mkdir(parents=True, exist_ok=True)
        spool_dir(self.settings).mkdir(parents=True, exist_ok=True)
        self.warm_up()
        # Everything allocated so far is shared with the workers: keep the collector off
        # those pages, or each worker copies them on its first collection.
        gc.freeze()
        if self.config.replayer:
            self._spawn_replayer()
        while self._capacity() < min(self.config.initial_workers, self.config.max_workers):
            if not self._spawn_worker():
                break
        log.info("FastAGI listening on %s:%d (%d workers, %d session threads; up to %d)",
                 self.config.host, self.config.port, len(self.workers), self._capacity(),
                 self.config.max_workers)
        if ready:
            ready()
        try:
            while not self._stopping:
                self._reap()
                self._adjust_pool()
                time.sleep(0.02)
        finally:
            self._shutdown()

    def _on_stop(self, signum: int, frame: Any) -> None:
        self._stopping = True

    def _shutdown(self) -> None:
        log.info("FastAGI stopping: %d worker(s) finish their calls", len(self.workers))
        if self.sock is not None:
            self.sock.close()
        pids = [*self.workers, *([self.replayer_pid] if self.replayer_pid else [])]
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.grace_s
        while time.monotonic() < deadline and (self.workers or self.replayer_pid):
            self._reap()
            time.sleep(0.05)
        for pid in [*self.workers, *([self.replayer_pid] if self.replayer_pid else [])]:
            log.warning("FastAGI process %d did not stop in time: killed", pid)
            _signal(pid, signal.SIGKILL)
        while self.workers or self.replayer_pid:
            if not self._reap(block=True):
                break

    # ------------------------------------------------------------------ pool

    def _spawn_worker(self) -> bool:
        assert self.sock is not None
        try:
            slot = next(i for i in range(self.config.max_processes)
                        if self.status[i] == SLOT_FREE)
        except StopIteration:
            return False
        self.status[slot] = 0
        pid = os.fork()
        if pid == 0:
            _worker_main(self.sock, slot, self.status, self.settings, self.config, self.store)
        self.workers[pid] = slot
        return True

    def _capacity(self) -> int:
        return sum(self.config.threads_of(slot) for slot in self.workers.values())

    def _spawn_replayer(self) -> None:
        pid = os.fork()
        if pid == 0:
            if self.sock is not None:
                self.sock.close()
            _replayer_main(self.settings)
        self.replayer_pid = pid

    def _reap(self, block: bool = False) -> bool:
        reaped = False
        while True:
            try:
                pid, code = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()
                self.replayer_pid = None
                return reaped
            if pid == 0:
                return reaped
            reaped = True
            if pid == self.replayer_pid:
                self.replayer_pid = None
                if not self._stopping:
                    log.error("spool replayer exited (%d): restarting it", code)
                    self._spawn_replayer()
            elif pid in self.workers:
                slot = self.workers.pop(pid)
                self.status[slot] = SLOT_FREE
                if code != 0 and not self._stopping:
                    log.error("FastAGI worker %d exited with status %d", pid, code)
            if block:
                return reaped

    def _adjust_pool(self) -> None:
        busy = {pid: max(0, self.status[slot]) for pid, slot in self.workers.items()}
        spare = self._capacity() - sum(busy.values())
        for _ in range(SPAWN_PER_TICK):
            if spare >= self.config.min_spare or not self._spawn_worker():
                break
            spare = self._capacity() - sum(busy.values())
        idle = [pid for pid, n in busy.items() if n == 0]
        retire = []
        for pid in idle:
            threads = self.config.threads_of(self.workers[pid])
            if spare - threads < self.config.max_spare:
                break
            retire.append(pid)
            spare -= threads
        if retire:
            now = time.monotonic()
            if self._idle_since is None:
                self._idle_since = now
            elif now - self._idle_since > self.config.idle_retire_after_s:
                for pid in retire:
                    _signal(pid, signal.SIGUSR1)
                self._idle_since = None
        else:
            self._idle_since = None

    def counts(self) -> dict[str, int]:
        """Worker processes, their session threads, and the sessions running now."""
        busy = sum(max(0, self.status[slot]) for slot in self.workers.values())
        return {"workers": len(self.workers), "threads": self._capacity(), "busy": busy}


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def run_server(settings: Settings, config: ServerConfig | None = None) -> None:
    """`hotline agi`: serve until SIGTERM / Ctrl-C."""
    config = config or ServerConfig.from_settings(settings)
    # Import everything a call touches before forking, so workers share it copy-on-write.
    import cases.ivr_records
    import cases.models

    del cases

    AgiServer(settings, config).serve_forever()
