"""Running the app as it is deployed: uvicorn's settings, a guarded HTTP protocol, and for
several workers a supervisor.

The supervisor starts one process per worker, each with its own listening socket on the shared
port (SO_REUSEPORT: the kernel spreads connections evenly; with uvicorn's one inherited socket,
whichever process woke first took 39 of a burst of 50). A worker that dies is started again
(a crash loop ends the server with one line); a worker whose supervisor dies follows it at once,
so nothing is left holding the port. SIGTERM or Ctrl+C first answers the connections the
kernel has already accepted (`Draining`), then stops accepting, answers what is in flight (up
to DRAIN seconds), and exits 0.
"""

import contextlib
import ctypes
import ipaddress
import multiprocessing
import os
import secrets
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from mnist_cnn.errors import MnistCnnError

HEADER_TIMEOUT = 10.0  # seconds for a request's headers to arrive: then the connection closes
DRAIN = 20.0  # seconds a stopping server goes on answering the requests it has
QUEUE_DRAIN = 2.0  # seconds a stopping server goes on taking connections already queued
IDLE_GRACE = 1.0  # a stopping server's idle keep-alive connection may still send one request
CLIENT_CONNECTIONS = 64  # open connections one address may hold in one worker (0: no cap)
CRASHES = 5  # worker deaths within CRASH_WINDOW seconds that end the server
CRASH_WINDOW = 60.0
UVICORN = {
    "log_level": "warning",
    "access_log": False,
    "timeout_keep_alive": 5,  # an idle connection closes after 5 s
    "h11_max_incomplete_event_size": 16 * 1024,  # headers larger than 16 KB are refused
    "limit_concurrency": 1000,  # more connections at once get 503 instead of memory
    "timeout_graceful_shutdown": DRAIN,
}


def serve(
    workers: int = 1,
    host: str = "127.0.0.1",
    port: int = 8000,
    proxies: str = "",
    **app: Any,
) -> None:
    """Serve `serve.create_app(**app)` until SIGTERM or Ctrl+C: in this process for one worker,
    else under a supervisor. Each worker's runtime gets cores / workers threads.

    proxies: addresses of reverse proxies whose X-Forwarded-For names the real client (comma
    separated, as uvicorn's forwarded_allow_ips); they are also spared the per-client cap.
    Listening beyond loopback, corrections need a token: `feedback_token`, else
    $MNIST_CNN_FEEDBACK_TOKEN, else a new one, printed in the page's address."""
    app = {**app, "feedback_token": app.get("feedback_token") or _token_env()}
    if app.get("feedback", True) and not _loopback(host) and not app["feedback_token"]:
        app["feedback_token"] = secrets.token_urlsafe(16)
        shown = f"[{host}]" if ":" in host else host
        print(
            f"corrections need a token: open http://{shown}:{port}/?token={app['feedback_token']}"
        )
    settings = (host, port, proxies)
    if workers == 1:
        _run(settings, app, threads=0)
        return
    model = app.get("model")
    if model is not None and not Path(model).exists():
        raise MnistCnnError(f"no model at {model}: give a .keras file, a run folder or an export")
    _free_port(host, port)
    threads = max(1, (os.cpu_count() or 1) // workers)
    Supervisor(workers, (settings, app, threads)).run()


def _token_env() -> str | None:
    return os.environ.get("MNIST_CNN_FEEDBACK_TOKEN") or None


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _run(
    settings: tuple,
    app: dict,
    threads: int,
    sock: socket.socket | None = None,
    started: Any = None,
) -> None:
    """uvicorn with our settings, on `sock` or on (host, port); `started` is set once the app
    is made."""
    import uvicorn

    from mnist_cnn import serve as api

    host, port, proxies = settings
    trusted = [p.strip() for p in proxies.split(",") if p.strip()]
    made = api.create_app(**app, threads=threads)
    if started is not None:
        started.set()
    config = uvicorn.Config(
        made,
        host=host,
        port=port,
        http=http_protocol(frozenset(trusted)),
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        **UVICORN,
    )
    server_class()(config).run(sockets=None if sock is None else [sock])


def server_class() -> type:
    """uvicorn's Server, draining its listening sockets' queues before it closes them.

    A connection the kernel has accepted waits in the listening socket's queue until the
    server takes it; closing the socket resets every one still there (3-17 of 3,500 requests,
    with 20 clients each opening a connection per request). So on stopping, the backlog is set
    to 0 (the kernel then queues at most one more and drops further SYNs, which the client
    retries into a refusal once the socket is closed; kernels before the 2025 change that lets
    a zero backlog take a connection answer them with SYN cookies and log "Possible SYN
    flooding" once), and the server keeps taking connections, serving each with `Connection:
    close`, until its queue is empty. What is still queued after QUEUE_DRAIN seconds is reset
    when the socket closes."""
    import uvicorn

    class Draining(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            listening = [s for server in self.servers for s in server.sockets]
            self.server_state.draining = True  # (read by http_protocol's connections)
            await drain_queues(listening, QUEUE_DRAIN, lambda: self.force_exit)
            await super().shutdown(sockets)  # closes them within this step: nothing can queue

    return Draining


async def drain_queues(listening: list, within: float, hurry: Any = lambda: False) -> None:
    """Take the connections waiting in `listening`'s queues, and let no more than one queue
    meanwhile, for up to `within` seconds or until `hurry()` (a second Ctrl+C); the event
    loop's accepting goes on as before. Only Linux TCP sockets can be read so; where a socket
    cannot (a Unix socket, no file descriptor left), the stop goes on as uvicorn's own."""
    import asyncio

    if sys.platform != "linux":  # tcp_info's layout, and the queue in it, are Linux's
        return
    views: list[socket.socket] = []
    try:
        for s in listening:
            if s.family in (socket.AF_INET, socket.AF_INET6) and s.type == socket.SOCK_STREAM:
                views.append(socket.socket(fileno=os.dup(s.fileno())))
        for view in views:
            view.listen(0)
        deadline = time.monotonic() + within
        while any(_queued(v) for v in views) and time.monotonic() < deadline and not hurry():
            await asyncio.sleep(0.005)
    except OSError as err:
        print(f"mnist-cnn: stopping without draining the queue: {err}", file=sys.stderr)
    finally:
        for view in views:
            view.close()  # a duplicate: the socket itself stays open


def _queued(listening: socket.socket) -> int:
    """Connections in a listening socket's accept queue: Linux's tcp_info `tcpi_unacked`."""
    info = listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return struct.unpack_from("I", info, 24)[0]


class Supervisor:
    """Keeps `workers` processes running `_worker(*args)`; stops them all on SIGTERM/SIGINT."""

    def __init__(self, workers: int, args: tuple):
        self.args, self.stopping = args, False
        self.spawn = multiprocessing.get_context("spawn")  # fresh interpreters: no forked TF
        self.procs = [self._start() for _ in range(workers)]
        self.crashes: deque[float] = deque(maxlen=CRASHES)

    def _start(self) -> multiprocessing.process.BaseProcess:
        started = self.spawn.Event()  # set once its app is made: the model loaded
        proc = self.spawn.Process(target=_worker, args=(os.getpid(), started, *self.args))
        proc.started = started
        proc.start()
        return proc

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def run(self) -> None:
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not self.stopping:
                wait([p.sentinel for p in self.procs], timeout=0.5)
                for i, proc in enumerate(self.procs):
                    if not proc.is_alive() and not self.stopping:
                        self.procs[i] = self._replace(proc)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self._stop_all()

    def _replace(self, dead: multiprocessing.process.BaseProcess) -> Any:
        """A new worker for one that died, unless it could not start (exit 2: its message is
        above) or workers keep dying."""
        self.crashes.append(time.monotonic())
        if not dead.started.is_set():  # a bad model, say: starting it again will not help
            raise MnistCnnError(
                f"a server process could not start (exit code {dead.exitcode}); see its "
                "message above"
            )
        if len(self.crashes) == CRASHES and self.crashes[-1] - self.crashes[0] < CRASH_WINDOW:
            raise MnistCnnError(
                f"server processes died {CRASHES} times within {CRASH_WINDOW:.0f} s (the last "
                f"with code {dead.exitcode}); see the messages above"
            )
        print(
            f"mnist-cnn: a server process exited with code {dead.exitcode}; starting another",
            file=sys.stderr,
            flush=True,
        )
        return self._start()

    def _stop_all(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()  # uvicorn answers what it has (DRAIN), then exits
        for proc in self.procs:
            proc.join(DRAIN + 5)
            if proc.is_alive():
                proc.kill()


def _worker(parent: int, started: Any, settings: tuple, app: dict, threads: int) -> None:
    """One server process with its own listening socket on the shared port."""
    _die_with(parent)
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))  # before TensorFlow loads
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    host, port, _ = settings
    sock = socket.socket(_family(host))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    try:
        _run(settings, app, threads, sock, started)
    except MnistCnnError as err:  # e.g. no int8 twin beside the model: one line, no traceback
        print(f"mnist-cnn: error: {err}", file=sys.stderr)
        sys.exit(2)


def _die_with(parent: int) -> None:
    """End this process when `parent` is gone (killed with SIGKILL, say): Linux's parent-death
    signal where there is one, else a thread that looks every second, as gunicorn's do."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0:  # 1: PR_SET_PDEATHSIG
            if os.getppid() != parent:  # it died before the signal was asked for
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _free_port(host: str, port: int) -> None:
    """Refuse a port another program listens on (SO_REUSEPORT would otherwise share it).

    SO_REUSEADDR, as servers set it: connections of a stopped server left in TIME_WAIT do not
    hold the port."""
    with socket.socket(_family(host)) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise MnistCnnError(
                f"cannot listen on {host}:{port}: {err.strerror}; choose another --port"
            ) from None


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def http_protocol(exempt: frozenset[str] = frozenset()) -> type:
    """uvicorn's HTTP protocol, guarded: a connection whose request headers do not arrive within
    HEADER_TIMEOUT closes (uvicorn times out idle connections only after a first response); one
    address holds at most CLIENT_CONNECTIONS connections, so one client's half-open ones cannot
    fill `limit_concurrency` for everyone; a stopping server answers a request that was already
    on its way on an idle keep-alive connection, instead of resetting it."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class Guarded(HttpToolsProtocol):
        per_client: dict[str, int] = {}  # noqa: RUF012 (one table per process, on purpose)

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.heads, self.stopping = 0, False
            self.peer = (transport.get_extra_info("peername") or ("?",))[0]
            held = self.per_client.get(self.peer, 0) + 1
            self.per_client[self.peer] = held
            self.arm(HEADER_TIMEOUT)
            if CLIENT_CONNECTIONS and held > CLIENT_CONNECTIONS and self.peer not in exempt:
                transport.close()

        def arm(self, seconds: float) -> None:
            self.deadline = self.loop.call_later(seconds, self.expire, self.heads)

        def expire(self, heads_then: int) -> None:
            busy = self.cycle is not None and not self.cycle.response_complete
            if self.heads == heads_then and not busy:
                self.transport.close()  # no new request head in time, and none in progress
            elif not self.transport.is_closing():
                self.arm(HEADER_TIMEOUT)

        def on_headers_complete(self) -> None:
            self.heads += 1
            super().on_headers_complete()
            stopping = self.stopping or getattr(self.server_state, "draining", False)
            if stopping and self.cycle is not None:
                self.cycle.keep_alive = False  # answered with "Connection: close", then closed

        def shutdown(self) -> None:
            self.stopping = True
            if self.cycle is None or self.cycle.response_complete:
                self.deadline.cancel()  # idle: a request already sent still gets its answer
                self.arm(IDLE_GRACE)
            else:
                super().shutdown()

        def connection_lost(self, exc: Exception | None) -> None:
            self.deadline.cancel()
            left = self.per_client.pop(self.peer, 1) - 1
            if left:
                self.per_client[self.peer] = left
            super().connection_lost(exc)

    return Guarded
