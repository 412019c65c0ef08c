"""Record a raw AMI trace from the real Asterisk 22 while a small queue scenario runs.

    sudo .venv/bin/python -m tests.queue.record_trace tests/queue/traces/queue_scenario.ami

Brings up a throw-away PBX instance (like the tests), logs in to AMI with a plain socket and
writes every byte Asterisk sends (banner, responses, events) to the output file, while sipp
places calls: one caller answered by 8001, one who abandons while 8001 is busy, a pause
with a reason code, and the QueueStatus / CoreShowChannels replies a resync reads. The
trace drives the unit tests (tests/queue/test_trace_replay.py) and bench/ami_ingest.py.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import threading
import time
from pathlib import Path

from agi import dialplan
from hotline.asterisk_chroot import DevPbx, ami_secret
from tests.pbx import sipp
from tests.pbx.conftest import make_pbx_settings
from tests.queue.fake_agi import FakeAgi


class Recorder(threading.Thread):
    def __init__(self, port: int, username: str, secret: str, out: Path) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.out = out.open("wb")
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.sock.sendall(
            f"Action: Login\r\nUsername: {username}\r\nSecret: {secret}\r\n"
            "Events: on\r\n\r\n".encode()
        )

    def action(self, text: str) -> None:
        with self.lock:
            self.sock.sendall(text.encode())

    def run(self) -> None:
        self.sock.settimeout(0.5)
        while not self.stop_flag.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                break
            self.out.write(data)
        self.out.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    settings = make_pbx_settings(tempfile.mkdtemp(prefix="ami-rec-"))
    settings.pbx.instance = "amirec"
    pbx = DevPbx(settings)
    pbx.up()
    agi = FakeAgi(settings.pbx.agi_port).__enter__()
    try:
        rec = Recorder(settings.pbx.ami_port, settings.pbx.ami_username, ami_secret(settings),
                       args.out)
        rec.start()
        time.sleep(0.5)
        q = dialplan.QUEUE_CONSULTATION
        agent = sipp.start_agent(settings, "8001", answer_ms=1000, talk_ms=3000)
        rec.action(f"Action: QueueAdd\r\nQueue: {q}\r\nInterface: PJSIP/8001\r\n"
                   "MemberName: 8001\r\nStateInterface: PJSIP/8001\r\n\r\n")
        time.sleep(0.5)
        first = sipp.citizen_call(settings, caller="13800000001", ending="pbx",
                                  bye_timeout_ms=30000)
        time.sleep(0.5)
        # Arrives while 8001 rings/talks: waits about 3 s and hangs up (abandon).
        second = sipp.citizen_call(settings, caller="13800000002", steps=[sipp.pause(3000)])
        time.sleep(1.5)
        rec.action("Action: QueueStatus\r\nActionID: resync-1\r\n\r\n")
        rec.action("Action: CoreShowChannels\r\nActionID: resync-2\r\n\r\n")
        print(first.wait(40).ok, second.wait(40).ok, agent.wait(40).ok)
        time.sleep(1.0)
        rec.action(f"Action: QueuePause\r\nQueue: {q}\r\nInterface: PJSIP/8001\r\n"
                   "Paused: true\r\nReason: meal\r\n\r\n")
        time.sleep(0.5)
        rec.action(f"Action: QueuePause\r\nQueue: {q}\r\nInterface: PJSIP/8001\r\n"
                   "Paused: false\r\n\r\n")
        time.sleep(0.5)
        rec.action("Action: QueueStatus\r\nActionID: resync-3\r\n\r\n")
        time.sleep(0.5)
        rec.action(f"Action: QueueRemove\r\nQueue: {q}\r\nInterface: PJSIP/8001\r\n\r\n")
        time.sleep(1.0)
        rec.stop_flag.set()
        rec.join(5)
    finally:
        agi.__exit__(None, None, None)
        pbx.down()
        pbx.remove_instance()


if __name__ == "__main__":
    main()
