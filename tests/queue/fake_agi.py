"""A minimal FastAGI server for queue tests: the IVR answers at once and routes the caller.

The real IVR (agi/) plays menus; queue tests need callers to reach a queue immediately and
deterministically. `routes` maps a caller number to a queue (default: consultation). The
survey script just returns.
"""

from __future__ import annotations

import socketserver
import threading
from types import TracebackType

from agi import dialplan


class FakeAgi(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int, routes: dict[str, str] | None = None) -> None:
        self.routes = dict(routes or {})
        self.requests: list[dict[str, str]] = []
        super().__init__(("127.0.0.1", port), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self) -> FakeAgi:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()
        self.server_close()


class _Handler(socketserver.StreamRequestHandler):
    server: FakeAgi

    def handle(self) -> None:
        env: dict[str, str] = {}
        for raw in iter(self.rfile.readline, b""):
            line = raw.decode().strip()
            if not line:
                break
            key, _, value = line.partition(": ")
            env[key] = value
        if env.get("agi_network_script") == dialplan.AGI_IVR:
            queue = self.server.routes.get(env.get("agi_callerid", ""),
                                           dialplan.QUEUE_CONSULTATION)
            self.command(f'SET VARIABLE {dialplan.VAR_QUEUE} "{queue}"')
        self.server.requests.append(env)

    def command(self, cmd: str) -> str:
        self.wfile.write(cmd.encode() + b"\n")
        return self.rfile.readline().decode().strip()
