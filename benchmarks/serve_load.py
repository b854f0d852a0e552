"""Load on `mnist-cnn serve`: 50 concurrent clients for 30 s on 127.0.0.1, measured by wrk.

    python benchmarks/serve_load.py [--engines keras onnx] [--model M] [--out serve-load.json]

Starts the server for each engine (the packaged model unless --model), waits for /healthz,
then points wrk (Debian package `wrk`) at POST /api/predict: once with JSON pixels of an MNIST
test digit, once with a PNG upload (a 200x200 photo-like page, normalised by the server).
wrk runs one thread so the server keeps the other core. Prints JSON and a table: requests/s,
p50/p90/p99 latency, errors (non-2xx answers and socket errors).
"""

import argparse
import io
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "{content_type}"
local f = io.open("{body}", "rb")
wrk.body = f:read("*all")
f:close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bodies(folder: Path) -> dict[str, tuple[str, Path]]:
    """The two request kinds: JSON pixels, and a multipart PNG upload (dark ink on paper)."""
    from mnist_cnn import data

    digit = data.load(val_size=0, test_limit=1).x_test[0, ..., 0]
    (folder / "pixels.json").write_text(json.dumps({"pixels": digit.astype(int).tolist()}))
    big = Image.fromarray(digit.astype(np.uint8)).resize((140, 140))
    page = np.full((200, 200), 255, np.uint8)
    page[30:170, 30:170] = 255 - np.asarray(big)
    png = io.BytesIO()
    Image.fromarray(page).save(png, "PNG")
    boundary = "mnistcnnboundary"
    multipart = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png.getvalue()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    (folder / "upload.bin").write_bytes(multipart)
    return {
        "JSON pixels": ("application/json", folder / "pixels.json"),
        "PNG upload": (f"multipart/form-data; boundary={boundary}", folder / "upload.bin"),
    }


KIND = {"JSON pixels": "json", "PNG upload": "png"}


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    sys.exit("the server did not answer /healthz in time")


def seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def run_wrk(url: str, script: Path, connections: int, duration: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    latency = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)$", out, re.M))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
        out,
    )
    return {
        "requests": requests,
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": 1000 * seconds(latency["50"]),
        "p90_ms": 1000 * seconds(latency["90"]),
        "p99_ms": 1000 * seconds(latency["99"]),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(map(int, socket_errors.groups())) if socket_errors else 0,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="model to serve (default: the packaged one)")
    p.add_argument("--engines", nargs="+", default=["keras", "onnx"])
    p.add_argument("--workers", type=int, default=1, help="server processes (serve --workers)")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--duration", type=int, default=30, help="seconds per measurement")
    p.add_argument("--repeats", type=int, default=3, help="runs per case; the median is quoted")
    p.add_argument("--requests", nargs="+", choices=["json", "png"], default=["json", "png"])
    p.add_argument("--out", default="benchmarks/results/serve-load.json")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")

    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = {k: v for k, v in bodies(Path(tmp)).items() if KIND[k] in args.requests}
        for engine in args.engines:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            command = [sys.executable, "-m", "mnist_cnn", "serve", "--port", str(port)]
            command += ["--engine", engine, "--workers", str(args.workers)]
            command += ["--model", args.model] if args.model else []
            server = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=os.environ.copy())
            try:
                wait_healthy(url, server)
                for case, (content_type, body) in cases.items():
                    script = Path(tmp) / "post.lua"
                    script.write_text(LUA.format(content_type=content_type, body=body))
                    run_wrk(url + "/api/predict", script, args.connections, 3)  # warm-up
                    runs = [
                        run_wrk(url + "/api/predict", script, args.connections, args.duration)
                        for _ in range(args.repeats)
                    ]
                    median = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
                    rows.append({"engine": engine, "request": case, **median, "runs": runs})
                    print(f"{engine}, {case}: {median}", file=sys.stderr, flush=True)
            finally:
                server.terminate()
                server.wait(30)
    report = {
        "date": date.today().isoformat(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_avg_before": load_before,
        "connections": args.connections,
        "workers": args.workers,
        "duration_s": args.duration,
        "repeats": args.repeats,
        "model": args.model or "packaged",
        "results": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print("| engine | request | requests/s | p50 ms | p90 ms | p99 ms | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        errors = int(r["non_2xx"] + r["socket_errors"])
        print(
            f"| {r['engine']} | {r['request']} | {r['requests_per_s']:.0f} | {r['p50_ms']:.1f} "
            f"| {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {errors} |"
        )


if __name__ == "__main__":
    main()
