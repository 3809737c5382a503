"""Local servers (127.0.0.1 only) for the benchmarks' remote reads, with a delay per request.

- :class:`DelayedHTTPServer`: Python's threaded ``http.server`` in the benchmark's own
  process (a thread per connection, HTTP/1.1 keep-alive); every request waits ``delay``
  seconds (a round trip's latency) and is counted by method and status. The opening and plate
  benchmarks use it; so did the remote reads up to session 4. Since session 5 it sets
  ``TCP_NODELAY`` (before, each small response waited about 40 ms more, see below). With
  ``keep_alive_on_404`` (the plate benchmark, since session 6) a 404 keeps its connection,
  as real servers do: ``http.server`` closes it after every error response.
- :class:`HTTPServerProcess`: the same interface, served from a child process by aiohttp,
  which sends files with ``sendfile`` and ``TCP_NODELAY``, as a real static server or object
  store does. ``http.server`` writes a response's headers and body separately, so Nagle's
  algorithm holds a small body back until the client's delayed ACK (about 40 ms on Linux): an
  opening's waves of small metadata documents took 60 ms each instead of 20.
- :class:`S3ServerProcess`: moto's standalone S3 server in a child process.

Both child processes report the CPU time they used (``cpu()``), so a measurement can tell
the server's share of the machine from the client's.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm holds a
    # small body back until the client's delayed ACK (about 40 ms), as no real server does
    disable_nagle_algorithm = True
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

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A 404 keeps the connection open where the server says so, as real static servers
        and object stores do; ``http.server`` closes the connection after every error, so
        a client's next request must connect again (and the server start another thread)."""
        if code != 404 or not self.server.keep_alive_on_404:
            super().send_error(code, message, explain)
            return
        body = b"404 Not Found\n"
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return None


class DelayedHTTPServer(ThreadingHTTPServer):
    """Serve ``root`` on 127.0.0.1 with ``delay`` seconds per request; count requests."""

    daemon_threads = True
    #: a large listen backlog: a client opening a hundred connections at once must not see
    #: refused connections retried after a second (the default backlog is 5)
    request_queue_size = 1024

    def __init__(self, root: Path, delay: float, *, keep_alive_on_404: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
        self.delay = delay
        #: answer 404 without closing the connection (see ``_Handler.send_error``)
        self.keep_alive_on_404 = keep_alive_on_404
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


# ---- a server in its own process: asyncio, sendfile, no Nagle delay ----------------------
#: Paths that control the server process; answered at once and not counted.
_CONTROL = "/__bench__/"


def _serve(root: Path, delay: float) -> None:
    """Serve ``root`` with aiohttp until stdin closes; print the port first.

    Every request waits ``delay`` seconds, then a file is sent with ``sendfile`` (ranges
    too), as a real static server or object store does: the kernel copies the bytes, and the
    responses go out at once (aiohttp sets ``TCP_NODELAY``), so a small response is not held
    back 40 ms by Nagle's algorithm waiting for the client's delayed ACK, as with Python's
    ``http.server``, which writes the headers and the body separately.
    """
    import asyncio
    import sys

    from aiohttp import web

    timeline: list[tuple[float, float, str, int, str]] = []
    base = root.resolve()

    class Timed(web.FileResponse):
        """A file response that records its request once its body has been sent."""

        def __init__(self, path: Path, start: float) -> None:
            super().__init__(path, chunk_size=1 << 20)
            self.start = start

        async def prepare(self, request: web.BaseRequest) -> Any:
            if self.prepared:
                return None
            writer = await super().prepare(request)
            end = time.perf_counter()
            timeline.append((self.start, end, request.method, self.status, request.path))
            return writer

    async def files(request: web.Request) -> web.StreamResponse:
        start = time.perf_counter()
        await asyncio.sleep(delay)
        path = (base / request.match_info["tail"]).resolve()
        if path.is_file() and path.is_relative_to(base):
            return Timed(path, start)
        timeline.append((start, time.perf_counter(), request.method, 404, request.path))
        return web.Response(status=404)

    async def control(request: web.Request) -> web.Response:
        if request.match_info["what"] == "reset":
            timeline.clear()
            return web.json_response({})
        return web.json_response({"timeline": timeline})

    async def main() -> None:
        app = web.Application()
        app.router.add_get(_CONTROL + "{what}", control)
        app.router.add_route("GET", "/{tail:.*}", files)
        app.router.add_route("HEAD", "/{tail:.*}", files)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    asyncio.run(main())


class HTTPServerProcess:
    """:class:`DelayedHTTPServer`'s interface, served by :func:`_serve` in a child process.

    Its own process, so it shares no interpreter lock with the benchmark; :meth:`cpu` gives
    the CPU time it has used (to tell the server's share of a measurement from the client's).
    """

    def __init__(self, root: Path, delay: float) -> None:
        self.root, self.delay = Path(root), delay
        self._proc: Any = None
        self.url = ""

    def __enter__(self) -> HTTPServerProcess:
        import subprocess
        import sys

        self._proc = subprocess.Popen(
            [sys.executable, __file__, "serve", str(self.root), str(self.delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        port = int(self._proc.stdout.readline())
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except Exception:
            self._proc.kill()
            self._proc.wait()

    def _control(self, what: str) -> dict:
        import json
        import urllib.request

        with urllib.request.urlopen(f"{self.url}{_CONTROL}{what}", timeout=30) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._control("reset")

    def snapshot(self) -> dict:
        timeline = [tuple(t) for t in self._control("timeline")["timeline"]]
        counts = Counter(f"{method} {status}" for _, _, method, status, _ in timeline)
        return {
            "total": len(timeline),
            "by_kind": dict(counts),
            "paths": [f"{m} {s} {p}" for _, _, m, s, p in timeline],
            "waves": waves(timeline),  # type: ignore[arg-type]
        }

    def cpu(self) -> float:
        """Seconds of CPU the server process has used so far."""
        return process_cpu(self._proc.pid)


def process_cpu(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` (Linux ``/proc``; 0 elsewhere)."""
    import os

    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- moto's S3 server in its own process -------------------------------------------------
def _serve_moto(port: int) -> None:
    """moto's standalone server (werkzeug, a thread per request) with a backlog of 1024 and
    ``TCP_NODELAY``; it runs until it is terminated."""
    import werkzeug.serving
    from moto.server import main

    werkzeug.serving.BaseWSGIServer.request_queue_size = 1024
    werkzeug.serving.WSGIRequestHandler.disable_nagle_algorithm = True
    main(["-H", "127.0.0.1", "-p", str(port)])


class S3ServerProcess:
    """moto's S3 server in a child process; ``endpoint_url`` once entered, :meth:`cpu`."""

    def __init__(self) -> None:
        self._proc: Any = None
        self.endpoint_url = ""

    def __enter__(self) -> S3ServerProcess:
        import logging
        import socket
        import subprocess
        import sys

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "moto", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("moto's server did not start")
            time.sleep(0.05)
        self.endpoint_url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except Exception:
            self._proc.kill()
            self._proc.wait()

    def cpu(self) -> float:
        """Seconds of CPU the server process has used so far."""
        return process_cpu(self._proc.pid)


if __name__ == "__main__":
    import sys

    if sys.argv[1] == "serve":
        _serve(Path(sys.argv[2]), float(sys.argv[3]))
    elif sys.argv[1] == "moto":
        _serve_moto(int(sys.argv[2]))
