"""`mnist-cnn serve` as it is deployed and attacked: killed, stopped under load, flooded.

    python benchmarks/serve_faults.py [--workers 2] [--out FILE.json]

Each case starts the real server (the packaged model, 2 workers, 127.0.0.1) and measures:
- SIGTERM while 20 clients send JSON predicts on keep-alive connections: requests answered,
  requests lost (sent before the signal or on an accepted connection, then a reset or a
  closed connection), new connections after the signal that a closing socket reset, the exit
  code, how long it took.
- SIGKILL of the main process: how long until no worker is left, and until a new server on the
  same port answers.
- kill -9 of one worker: the share of requests answered in the next 10 s, and how long until
  the worker is back.
- one client (127.0.0.2) holding 2,500 connections that sent half their headers, and one
  (127.0.0.3) stalling 300 uploads just under 1 MiB: the share of a well-behaved client's
  requests answered 2xx meanwhile, its median latency, the workers' memory at the peak and
  after the burst.
Prints JSON and a table. tests/test_launch.py runs the same cases, smaller, and asserts.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import date
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


def sigterm_under_load(server: subprocess.Popen, port: int, clients: int, seconds: float) -> dict:
    """Clients on keep-alive connections, then SIGTERM. A request is lost when it was sent
    before the signal, or on a connection the server had already accepted, and got no answer.
    One sent after the signal on a new connection may meet a closed door: refused, or reset
    from the kernel's queue of a listening socket that closed (`late`), as with any server
    whose socket closes; it was never taken in, and a client retries it elsewhere."""
    lost, late, answered, signalled = [], [], [], [float("inf")]

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            fresh, started = conn.sock is None, time.monotonic()
            try:
                conn.request("POST", "/api/predict", PIXELS, {"content-type": "application/json"})
                response = conn.getresponse()
                response.read()
                answered.append(response.status)
            except ConnectionRefusedError:  # not listening any more: nothing was sent
                return
            except (OSError, http.client.HTTPException) as err:
                (late if fresh and started > signalled[0] else lost).append(repr(err))
                conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    signalled[0] = time.monotonic()
    code = stop(server)
    took = time.monotonic() - signalled[0]
    for t in threads:
        t.join(60)
    return {
        "answered": len(answered),
        "not_200": sum(s != 200 for s in answered),
        "lost": len(lost),
        "lost_examples": sorted(set(lost))[:3],
        "late_new_connections_reset": len(late),
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results/serve-faults.json")
    args = p.parse_args()
    # corrections go to a folder of the benchmark's own, never the user's database
    os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="mnist-cnn-faults-")
    log = Path(os.environ["XDG_DATA_HOME"]) / "serve.log"  # the servers' messages
    report: dict = {"date": date.today().isoformat(), "cpus": os.cpu_count()}
    cases = {  # each on a server of its own, so that one failure does not spoil the next
        "kill_one_worker": kill_worker,
        "half_open": lambda server, port: flooded(server, port, "half-open", 2500, 200),
        "stalled_uploads": lambda server, port: flooded(server, port, "stalled uploads", 300, 200),
        "sigkill_main": lambda server, port: sigkill_main(server, port, log),
        "sigterm_under_load": lambda server, port: sigterm_under_load(server, port, 20, 5),
    }
    for name, case in cases.items():
        port = free_port()
        server = start(port, log)
        try:
            found = case(server, port)
            if name == "sigkill_main":
                found, server = found
        except RuntimeError as err:  # e.g. the new server could not start: that is the figure
            found = {"failed": str(err).splitlines()[-1]}
        report[name] = found
        print(name, found, file=sys.stderr, flush=True)
        if server.poll() is None:
            stop(server)
    report["goals_met"] = goals(report)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    print(table(report))


def goals(r: dict) -> dict[str, bool]:
    t, k, w = r["sigterm_under_load"], r["sigkill_main"], r["kill_one_worker"]
    h, u = r["half_open"], r["stalled_uploads"]
    return {
        "sigterm: 0 lost, exit 0": t.get("lost") == 0 and t.get("exit_code") == 0,
        "sigkill: workers gone <= 2 s, port free": k.get("workers_gone_seconds", 99) <= 2
        and "failed" not in k,
        "kill -9 worker: >= 95% answered, back <= 10 s": w.get("answered_share", 0) >= 0.95
        and (w.get("worker_back_seconds") or 99) <= 10,
        "half-open: >= 99% 2xx": h.get("ok_share", 0) >= 0.99,
        "stalled: >= 99% 2xx": u.get("ok_share", 0) >= 0.99,
        "stalled: peak < 200 MB": u.get("workers_rss_mb_peak_added", 999) < 200,
    }


def table(r: dict) -> str:
    def row(case: str, text) -> str:
        found = r[case]
        figure = found["failed"] if "failed" in found else text(found)
        return f"| {case.replace('_', ' ')} | {figure} |"

    rows = [
        "| case | figure |",
        "| --- | --- |",
        row(
            "sigterm_under_load",
            lambda t: (
                f"20 clients: {t['answered']} answered, {t['lost']} lost, exit "
                f"{t['exit_code']} in {t['stop_seconds']} s; new connections after the "
                f"signal reset: {t.get('late_new_connections_reset', '-')}"
            ),
        ),
        row(
            "sigkill_main",
            lambda k: (
                f"workers gone in {k['workers_gone_seconds']} s, a new server ready in "
                f"{k['new_server_ready_seconds']} s"
            ),
        ),
        row(
            "kill_one_worker",
            lambda w: (
                f"{100 * w['answered_share']:.1f}% of {w['requests']} answered in 10 s, "
                f"worker back in {w['worker_back_seconds']} s"
            ),
        ),
    ]
    for case in ("half_open", "stalled_uploads"):
        rows.append(
            row(
                case,
                lambda c: (
                    f"{c['attack']} from one client: {100 * c['ok_share']:.1f}% 2xx to "
                    f"another ({c['status_503']} 503), median {c['median_ms']} ms; workers "
                    f"+{c['workers_rss_mb_peak_added']} MB at the peak, "
                    f"+{c['workers_rss_mb_after_added']} MB after"
                ),
            )
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
