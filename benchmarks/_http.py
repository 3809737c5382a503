"""A local static HTTP server (127.0.0.1 only) that answers every request after a delay.

Used to measure opening a store over a slow network: each request waits ``delay`` seconds
before it is answered (a round trip's latency), requests are served concurrently (one thread
each, HTTP/1.1 keep-alive), and every request is counted by method and status.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DelayedHTTPServer

    def _delayed(self, method: str) -> None:
        start = time.perf_counter()
        self._status = 0
        time.sleep(self.server.delay)
        handler = getattr(super(), f"do_{method}")
        try:
            handler()
        finally:
            self.server.count(method, self._status, self.path, start, time.perf_counter())

    def do_GET(self) -> None:  # noqa: N802
        self._delayed("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._delayed("HEAD")

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return None


class DelayedHTTPServer(ThreadingHTTPServer):
    """Serve ``root`` on 127.0.0.1 with ``delay`` seconds per request; count requests."""

    daemon_threads = True
    #: a large listen backlog: a client opening a hundred connections at once must not see
    #: refused connections retried after a second (the default backlog is 5)
    request_queue_size = 1024

    def __init__(self, root: Path, delay: float) -> None:
        super().__init__(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
        self.delay = delay
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.paths: list[str] = []
        self.timeline: list[tuple[float, float, str, int, str]] = []
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def count(self, method: str, status: int, path: str, start: float, end: float) -> None:
        with self._lock:
            self.counts[f"{method} {status}"] += 1
            self.paths.append(f"{method} {status} {path}")
            self.timeline.append((start, end, method, status, path))

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.paths.clear()
            self.timeline.clear()

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "total": sum(self.counts.values()),
                "by_kind": dict(self.counts),
                "paths": list(self.paths),
                "waves": waves(self.timeline),
            }

    def __enter__(self) -> DelayedHTTPServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def waves(timeline: list[tuple[float, float, str, int, str]]) -> int:
    """Sequential round trips: a new wave starts when a request begins after every earlier
    request has been answered (requests issued together count once)."""
    count, busy_until = 0, float("-inf")
    for start, end, *_ in sorted(timeline):
        if start >= busy_until:
            count += 1
        busy_until = max(busy_until, end) if start < busy_until else end
    return count
