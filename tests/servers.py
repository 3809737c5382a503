"""Real servers on 127.0.0.1 for tests and benchmarks: a static HTTP server and moto's S3.

Both are context managers that start a server in a thread on a free port and stop it on exit:

>>> with http_server(tmp_path, delay=0.02) as server:        # doctest: +SKIP
...     xr.open_datatree(f"{server.url}/image.ome.zarr", engine="ome-zarr")
...     server.requests                                       # what was asked, in order

The HTTP server answers ``GET`` and ``HEAD`` for files under a directory, honours single
``Range: bytes=a-b`` requests (so fsspec can read parts of a file, e.g. a ``.ozx`` zip), can
wait ``delay`` seconds before every answer (to simulate network latency) and records every
request. Nothing here imports ``xarray_ome_zarr``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = [
    "HttpServer",
    "Request",
    "S3Server",
    "closed_port",
    "free_port",
    "http_server",
    "s3_server",
    "upload_tree",
]

HOST = "127.0.0.1"
METADATA_NAMES = ("zarr.json", ".zattrs", ".zarray", ".zgroup", ".zmetadata")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A port on 127.0.0.1 that refuses connections (for "unreachable" tests)."""
    return free_port()


@dataclass(frozen=True)
class Request:
    """One request the HTTP server answered."""

    method: str
    path: str
    status: int
    range: str | None = None
    at: float = 0.0  #: ``time.monotonic()`` when the request arrived
    #: The request's headers, names lower-cased (signatures, tokens, ranges).
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def is_metadata(self) -> bool:
        """Whether the request asked for a zarr metadata document."""
        return self.path.rsplit("/", 1)[-1] in METADATA_NAMES

    @property
    def is_chunk(self) -> bool:
        """Whether the request was a GET of anything but metadata (a chunk or shard)."""
        return self.method == "GET" and not self.is_metadata


@dataclass
class HttpServer:
    """A running static HTTP server: its URL, its root directory and what it was asked."""

    url: str
    root: Path
    delay: float = 0.0
    requests: list[Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, request: Request) -> None:
        """Append one request to the log (thread-safe)."""
        with self._lock:
            self.requests.append(request)

    def clear(self) -> None:
        """Forget the requests recorded so far."""
        with self._lock:
            self.requests.clear()

    def paths(self, *, method: str = "GET") -> list[str]:
        """The paths of the recorded requests of one method, in order."""
        with self._lock:
            return [r.path for r in self.requests if r.method == method]

    def chunk_requests(self) -> list[Request]:
        """The recorded GETs of chunks or shards (anything but metadata documents)."""
        with self._lock:
            return [r for r in self.requests if r.is_chunk]

    def rounds(self, gap: float | None = None) -> list[list[Request]]:
        """The recorded requests grouped into sequential round trips.

        A request that arrives more than ``gap`` seconds (default: half the delay) after the
        previous one starts a new round: the client waited for an answer before asking. Use
        with a delay well above the client's own processing time (e.g. 0.1 s).
        """
        gap = self.delay / 2 if gap is None else gap
        with self._lock:
            ordered = sorted(self.requests, key=lambda r: r.at)
        out: list[list[Request]] = []
        for request in ordered:
            if out and request.at - out[-1][-1].at <= gap:
                out[-1].append(request)
            else:
                out.append([request])
        return out

    @contextlib.contextmanager
    def latency(self, seconds: float) -> Iterator[HttpServer]:
        """Answer every request after ``seconds`` inside the ``with`` block."""
        before, self.delay = self.delay, seconds
        try:
            yield self
        finally:
            self.delay = before


class _Handler(SimpleHTTPRequestHandler):
    """Static files with latency, single byte ranges and a request log."""

    server_info: HttpServer  # set on the subclass made per server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, the client's delayed
    # ACK would add ~40 ms to every keep-alive answer, far above the latency we simulate.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return None

    def _wait(self) -> None:
        if self.server_info.delay:
            time.sleep(self.server_info.delay)

    def _answer(self, head_only: bool) -> None:
        arrived = time.monotonic()
        self._wait()
        requested = self.headers.get("Range")
        headers = tuple((k.lower(), v) for k, v in self.headers.items())
        path = Path(self.translate_path(self.path))
        url_path = self.path.split("?", 1)[0]
        if not path.is_file():
            self.server_info.record(
                Request(self.command, url_path, HTTPStatus.NOT_FOUND, requested, arrived, headers)
            )
            self.send_response(HTTPStatus.NOT_FOUND)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = path.stat().st_size
        start, stop = 0, size
        status = HTTPStatus.OK
        if requested:
            match = _RANGE.match(requested.strip())
            if match and (match.group(1) or match.group(2)):
                first, last = match.group(1), match.group(2)
                if first:
                    start = int(first)
                    stop = min(int(last) + 1, size) if last else size
                else:  # a suffix: the last N bytes
                    start = max(size - int(last), 0)
                if start >= size:
                    self.server_info.record(
                        Request(
                            self.command,
                            url_path,
                            HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                            requested,
                            arrived,
                            headers,
                        )
                    )
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = HTTPStatus.PARTIAL_CONTENT
        self.server_info.record(
            Request(self.command, url_path, status, requested, arrived, headers)
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(stop - start))
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.end_headers()
        if head_only:
            return
        with open(path, "rb") as fh:
            fh.seek(start)
            self.wfile.write(fh.read(stop - start))

    def do_GET(self) -> None:  # noqa: N802
        self._answer(head_only=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(head_only=True)


class _BackloggedServer(ThreadingHTTPServer):
    """A large listen backlog: a client opening a hundred connections at once (a plate's
    fields) must not see connections refused and retried a second later (default: 5)."""

    request_queue_size = 1024


@contextlib.contextmanager
def http_server(root: str | os.PathLike[str], *, delay: float = 0.0) -> Iterator[HttpServer]:
    """Serve the files under ``root`` at ``http://127.0.0.1:<port>`` until the block ends.

    Parameters
    ----------
    root
        The directory whose files are served (``GET`` / ``HEAD``, byte ranges honoured).
    delay
        Seconds to wait before answering each request; change it later with
        :meth:`HttpServer.latency` or by setting ``server.delay``.
    """
    root = Path(root)
    server = _BackloggedServer((HOST, 0), _Handler)
    server.daemon_threads = True
    info = HttpServer(url=f"http://{HOST}:{server.server_address[1]}", root=root, delay=delay)
    handler = type(
        "Handler",
        (_Handler,),
        {"server_info": info},
    )

    def make(request: Any, address: Any, srv: Any) -> _Handler:
        return handler(request, address, srv, directory=os.fspath(root))

    server.RequestHandlerClass = make  # type: ignore[assignment]
    thread = threading.Thread(target=server.serve_forever, name="test-http-server", daemon=True)
    thread.start()
    try:
        yield info
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---- S3 through moto's server mode ---------------------------------------------------------
@dataclass
class S3Server:
    """A running moto S3 server: its endpoint and the fsspec options that reach it."""

    endpoint_url: str
    key: str = "testing"
    secret: str = "testing"

    @property
    def storage_options(self) -> dict[str, Any]:
        """``storage_options`` for fsspec / s3fs: this endpoint and the test credentials."""
        return {"endpoint_url": self.endpoint_url, "key": self.key, "secret": self.secret}

    def filesystem(self, **kwargs: Any) -> Any:
        """A fresh (uncached) ``s3fs.S3FileSystem`` talking to this server."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options, **kwargs)

    def make_bucket(self, name: str) -> str:
        """Create bucket ``name`` (if missing) and return ``s3://name``."""
        fs = self.filesystem()
        if not fs.exists(name):
            fs.mkdir(name)
        return f"s3://{name}"


#: Environment of the S3 fixture: test credentials, a region, and no look-ups elsewhere
#: (no instance metadata service, no user credential or config files).
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_CONFIG_FILE": os.devnull,
}


@contextlib.contextmanager
def cluster_client(n_workers: int, threads_per_worker: int) -> Iterator[Any]:
    """A ``dask.distributed`` client of a quiet LocalCluster of worker processes, closed after."""
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@contextlib.contextmanager
def patched_env(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or, for ``None``, remove) environment variables inside the block only."""
    before = {name: os.environ.get(name) for name in values}
    try:
        _set_env(values)
        yield
    finally:
        _set_env(before)


def _set_env(values: dict[str, str | None]) -> None:
    """Set each variable, or remove it where the value is ``None``."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """Run moto's S3 server on 127.0.0.1 (a free port) with test credentials in the env."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on stderr
    with patched_env(S3_ENV):
        port = free_port()
        server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
        server.start()
        try:
            _wait_for_port(port)
            yield S3Server(endpoint_url=f"http://{HOST}:{port}")
        finally:
            server.stop()


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((HOST, port)) == 0:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout} s")
        time.sleep(0.02)


def upload_tree(fs: Any, source: str | os.PathLike[str], target: str) -> None:
    """Copy the directory ``source`` to ``target`` (``bucket/prefix``) on filesystem ``fs``."""
    source = Path(source)
    files = {
        f"{target}/{path.relative_to(source).as_posix()}": path.read_bytes()
        for path in sorted(source.rglob("*"))
        if path.is_file()
    }
    fs.pipe(files)  # concurrent for async filesystems such as s3fs


def copy_tree(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Copy a local directory tree (replacing ``target``)."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
