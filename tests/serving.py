"""The faults `mnist-cnn serve` meets as deployed, as functions: start the real server, kill
it, stop it under load, flood it. tests/test_launch.py asserts on them;
benchmarks/serve_faults.py measures with them."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PIXELS = json.dumps({"pixels": [[0] * 28] * 28}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port: int, log: Path, *extra: str, workers: int = 2) -> subprocess.Popen:
    """`mnist-cnn serve` with the packaged model, once every worker is listening and ready."""
    command = [sys.executable, "-m", "mnist_cnn", "serve", "--port", str(port)]
    with open(log, "a") as err:
        server = subprocess.Popen([*command, "--workers", str(workers), *extra], stderr=err)
    deadline = time.monotonic() + 120
    while not (ready(port) and len(workers_of(server.pid)) == workers):
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError("no answer from the server in 120 s")
        time.sleep(0.2)
    return server


def stop(server: subprocess.Popen) -> int:
    server.send_signal(signal.SIGTERM)
    return server.wait(60)


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            return json.loads(r.read()) == {"status": "ready"}
    except (OSError, ValueError):
        return False


def predict(port: int, timeout: float = 10) -> int:
    """One JSON predict on a new connection: its status, 0 when none came."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/predict", PIXELS, {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def sigterm_under_load(
    server: subprocess.Popen, port: int, clients: int, seconds: float, fresh: bool = False
) -> dict:
    """Clients sending JSON predicts, each on its keep-alive connection or (`fresh`) on a new
    connection per request, then SIGTERM. A request is lost when it got no answer though the
    kernel had taken its connection in: a reset, or a connection closed unanswered. One that
    meets a socket no longer listening is refused, never taken in: that client stops."""
    lost, answered, refused = [], [], [0]

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            try:
                conn.request("POST", "/api/predict", PIXELS, {"content-type": "application/json"})
                response = conn.getresponse()
                response.read()
                answered.append(response.status)
            except ConnectionRefusedError:
                refused[0] += 1
                return
            except (OSError, http.client.HTTPException) as err:
                lost.append(repr(err))
                conn.close()  # the next request opens a new connection
            if fresh:
                conn.close()  # (a keep-alive one the server closed reopens by itself)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    signalled = time.monotonic()
    code = stop(server)
    took = time.monotonic() - signalled
    for t in threads:
        t.join(60)
    return {
        "answered": len(answered),
        "not_200": sum(s != 200 for s in answered),
        "lost": len(lost),
        "lost_examples": sorted(set(lost))[:3],
        "refused": refused[0],
        "exit_code": code,
        "stop_seconds": round(took, 2),
    }


def sigkill_main(server: subprocess.Popen, port: int, log: Path) -> tuple[dict, subprocess.Popen]:
    workers = workers_of(server.pid)
    killed = time.monotonic()
    server.kill()
    server.wait(10)
    while [pid for pid in workers if alive(pid)] and time.monotonic() - killed < 30:
        time.sleep(0.02)
    orphans_gone = time.monotonic() - killed
    left = [pid for pid in workers if alive(pid)]
    again = start(port, log)
    return {
        "workers_gone_seconds": round(orphans_gone, 2),
        "workers_left": len(left),
        "new_server_ready_seconds": round(time.monotonic() - killed, 2),
    }, again


def kill_worker(server: subprocess.Popen, port: int, seconds: float = 10) -> dict:
    victim = workers_of(server.pid)[0]
    os.kill(victim, signal.SIGKILL)
    killed, statuses, back = time.monotonic(), [], None
    while time.monotonic() - killed < seconds:
        statuses.append(predict(port))
        if (
            back is None
            and len(workers_of(server.pid)) == 2
            and victim not in workers_of(server.pid)
        ):
            back = time.monotonic() - killed
        time.sleep(0.02)
    return {
        "answered_share": round(statuses.count(200) / len(statuses), 4),
        "requests": len(statuses),
        "worker_back_seconds": None if back is None else round(back, 2),
        "server_alive": server.poll() is None,
    }


def half_open(source: str, port: int, count: int) -> list[socket.socket]:
    """`count` connections from `source` that send half their headers, held open."""
    held = []
    for _ in range(count):
        s = socket.socket()
        s.bind((source, 0))
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            pass  # refused or closed at once: the cap at work
        held.append(s)
    return held


def stalled_uploads(source: str, port: int, count: int) -> list[socket.socket]:
    """`count` uploads from `source` that send all but the last kilobyte of 1 MiB, then wait."""
    size = 1024 * 1024 - 1000
    head = (
        "POST /api/predict HTTP/1.1\r\nHost: x\r\ncontent-type: image/png\r\n"
        f"content-length: {size}\r\n\r\n"
    ).encode()
    body = b"\0" * (size - 1024)

    def upload(_: int) -> socket.socket:
        s = socket.socket()
        s.bind((source, 0))
        s.settimeout(10)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(head + body)
        except OSError:
            pass  # refused, answered 503 and closed, or no longer read: held all the same
        return s

    with ThreadPoolExecutor(50) as pool:  # all at once, as an attacker would send them
        return list(pool.map(upload, range(count)))


def well_behaved(port: int, requests: int) -> dict:
    statuses, seconds = [], []
    for _ in range(requests):
        started = time.perf_counter()
        statuses.append(predict(port))
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    return {
        "ok_share": round(sum(200 <= s < 300 for s in statuses) / len(statuses), 4),
        "status_503": statuses.count(503),
        "median_ms": round(1000 * seconds[len(seconds) // 2], 1),
    }


def flooded(server: subprocess.Popen, port: int, attack: str, count: int, requests: int) -> dict:
    workers = workers_of(server.pid)
    base = sum(rss_mb(pid) for pid in workers)
    peak, stop_watch = [base], threading.Event()

    def watch() -> None:
        while not stop_watch.is_set():
            peak.append(sum(rss_mb(pid) for pid in workers))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    held = (half_open if attack == "half-open" else stalled_uploads)(
        "127.0.0.2" if attack == "half-open" else "127.0.0.3", port, count
    )
    client = well_behaved(port, requests)
    for s in held:
        s.close()
    time.sleep(3)
    stop_watch.set()
    watcher.join()
    return {
        **client,
        "attack": f"{count} {attack}",
        "workers_rss_mb_before": round(base),
        "workers_rss_mb_peak_added": round(max(peak) - base),
        "workers_rss_mb_after_added": round(sum(rss_mb(pid) for pid in workers) - base),
    }


def workers_of(pid: int) -> list[int]:
    """Processes whose parent is `pid` and that listen (spawn adds a resource tracker that
    holds no socket)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            kids.append(int(stat.parent.name))
    return sorted(k for k in kids if listening_inodes(k))


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def tcp_rows() -> list[list[str]]:
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if Path(table).exists():
            rows += [line.split() for line in Path(table).read_text().splitlines()[1:]]
    return rows


def listening_inodes(pid: int) -> set[str]:
    try:
        inodes = socket_inodes(pid)
    except OSError:
        return set()
    return {row[9] for row in tcp_rows() if row[3] == "0A" and row[9] in inodes}  # 0A: LISTEN


def connections(pid: int, port: int) -> int:
    """Established connections to `port` that process `pid` holds."""
    inodes = socket_inodes(pid)
    local = f":{port:04X}"
    return sum(row[3] == "01" and row[1].endswith(local) and row[9] in inodes for row in tcp_rows())
