"""A loopback HTTP proxy in front of a real server that injects faults on a fixed schedule."""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultProxy:
    """Modes per request number: ok, 500, 429, slow (past the client's timeout), garbage
    (200 with a body that is not JSON), echo401 (an error that echoes the Authorization),
    drop (the connection closes with no response), truncated (the real answer cut in half
    under its full Content-Length) and die (the endpoint goes away: this request and every
    later connection are refused, as when the server is killed; a new proxy on the same
    ``port`` is the server coming back)."""

    def __init__(
        self,
        upstream: str,
        plan: Callable[[int], str],
        slow_seconds: float = 3.0,
        port: int = 0,
    ):
        self.upstream = upstream.rstrip("/")
        self.plan = plan
        self.slow_seconds = slow_seconds
        self.seen: Counter[str] = Counter()
        self._n = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self, body: bytes | None) -> None:
                req = urllib.request.Request(
                    proxy.upstream + self.path,
                    data=body,
                    method=self.command,
                    headers={"Content-Type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(req, timeout=120) as resp:
                        self._send(resp.status, resp.read())
                except urllib.error.HTTPError as err:
                    self._send(err.code, err.read())

            def _truncated(self, body: bytes) -> None:
                req = urllib.request.Request(
                    proxy.upstream + self.path,
                    data=body,
                    method="POST",
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(req, timeout=120) as resp:
                    full = resp.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(full)))
                self.end_headers()
                self.wfile.write(full[: len(full) // 2])
                self.close_connection = True

            def do_GET(self):
                self._forward(None)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy._lock:
                    n = proxy._n
                    proxy._n += 1
                mode = proxy.plan(n)
                proxy.seen[mode] += 1
                if mode == "500":
                    self._send(500, b'{"error": {"message": "injected"}}')
                elif mode == "429":
                    self._send(429, b'{"error": {"message": "slow down"}}')
                elif mode == "garbage":
                    self._send(200, b"<html>this is not json{", "application/json")
                elif mode == "echo401":
                    auth = self.headers.get("Authorization", "")
                    self._send(401, f'{{"error": {{"message": "bad key {auth}"}}}}'.encode())
                elif mode == "drop":
                    self.close_connection = True  # no status line, no body
                elif mode == "truncated":
                    self._truncated(body)
                elif mode == "die":
                    self.close_connection = True
                    threading.Thread(target=proxy.stop, daemon=True).start()
                elif mode == "slow":
                    time.sleep(proxy.slow_seconds)
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        self._forward(body)
                else:
                    self._forward(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._stopped = False
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def requests(self) -> int:
        return sum(self.seen.values())

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting: later connections are refused (idempotent)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self.server.shutdown()
        self.server.server_close()

    def __exit__(self, *exc: object) -> None:
        self.stop()
