"""What hostile uploads cost a running `mnist-cnn serve`, and whether /healthz keeps answering.

    python benchmarks/serve_hostile.py [--engine onnx-int8] [--out FILE.json]

Starts the server (the packaged model), then sends each hostile request of issue 16 five times:
a 7000x7000 1-bit PNG, a 35-byte GIF declaring a 7000x7000 screen, a 16-megapixel photo-sized
PNG, 1,000 dots in stacked pairs to /api/read-number, a 2-pixel bar and a 4x4960 strip. For each:
the status codes, the server's RSS growth (peak over the runs, from /proc) and CPU seconds per
request. Then 4 of the heaviest uploads at once while /healthz is polled: its worst latency.
Prints JSON and a table; all traffic stays on 127.0.0.1.
"""

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


def payloads() -> dict[str, tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    big = np.ones((7000, 7000), bool)
    big[3000:3300, 3000:3100] = False
    gif = (
        b"GIF89a" + (7000).to_bytes(2, "little") * 2 + b"\x00\x00\x00"
        b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    )
    photo = np.full((4000, 4000), 230, np.uint8)
    photo[1500:2500, 1900:2100] = 20
    dots = np.full((200, 2000), 255, np.uint8)
    for r, c in zip(rng.integers(5, 190, 1000), rng.integers(5, 1990, 1000), strict=True):
        dots[r : r + 2, c : c + 2] = 0
        dots[r + 4 : r + 6, c : c + 2] = 0
    bar = np.full((42, 340), 255, np.uint8)
    bar[20:22, 20:320] = 0
    strip = np.full((44, 5000), 255, np.uint8)
    strip[20:24, 20:4980] = 0
    return {
        "7000x7000 1-bit PNG": ("/api/predict", png(big)),
        "35-byte GIF, 7000x7000 screen": ("/api/predict", gif),
        "4000x4000 photo-sized PNG": ("/api/predict", png(photo)),
        "1,000 dots in stacked pairs": ("/api/read-number", png(dots)),
        "2 px bar": ("/api/read-number", png(bar)),
        "4x4960 strip": ("/api/read-number", png(strip)),
    }


def post(port: int, route: str, data: bytes) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{route}", data=data, headers={"content-type": "image/png"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def proc_stats(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds) of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss / 1024, (int(fields[11]) + int(fields[12])) / ticks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--engine", default="onnx-int8")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="benchmarks/results/serve-hostile.json")
    args = p.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mnist_cnn",
            "serve",
            "--port",
            str(port),
            "--engine",
            args.engine,
            "--workers",
            "1",
        ]  # one process, whose RSS and CPU /proc shows
    )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        rows = []
        for name, (route, data) in payloads().items():
            rss0, cpu0 = proc_stats(server.pid)
            statuses, peak = [], 0.0
            for _ in range(args.repeats):
                statuses.append(post(port, route, data))
                peak = max(peak, proc_stats(server.pid)[0] - rss0)
            cpu = (proc_stats(server.pid)[1] - cpu0) / args.repeats
            rows.append(
                {
                    "request": name,
                    "route": route,
                    "bytes": len(data),
                    "statuses": sorted(set(statuses)),
                    "rss_growth_mb": round(peak, 1),
                    "cpu_s_per_request": round(cpu, 3),
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
        route, heavy = payloads()["4000x4000 photo-sized PNG"]
        uploads = [threading.Thread(target=post, args=(port, route, heavy)) for _ in range(4)]
        for t in uploads:
            t.start()
        latencies = []
        while any(t.is_alive() for t in uploads):
            started = time.perf_counter()
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read()
            latencies.append(time.perf_counter() - started)
            time.sleep(0.01)
        for t in uploads:
            t.join()
        report = {
            "date": date.today().isoformat(),
            "engine": args.engine,
            "requests": rows,
            "healthz_during_4_uploads_ms": {
                "polls": len(latencies),
                "max": round(1000 * max(latencies), 1) if latencies else None,
                "median": round(1000 * float(np.median(latencies)), 1) if latencies else None,
            },
        }
    finally:
        server.terminate()
        server.wait(30)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["healthz_during_4_uploads_ms"]))
    print("| request | statuses | RSS growth (peak) | CPU per request |\n| --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['request']} | {r['statuses']} | {r['rss_growth_mb']} MB | "
            f"{r['cpu_s_per_request']} s |"
        )


if __name__ == "__main__":
    main()
