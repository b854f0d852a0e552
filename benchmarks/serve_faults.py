"""`mnist-cnn serve` as it is deployed and attacked: killed, stopped under load, flooded.

    python benchmarks/serve_faults.py [--workers 2] [--out FILE.json]

Each case starts the real server (the packaged model, 2 workers, 127.0.0.1) and measures:
- SIGTERM while 20 clients send JSON predicts on keep-alive connections, and (5 runs) while
  20 clients open a new connection per request: requests answered, requests lost (their
  connection taken in by the kernel, then a reset or closed unanswered), the exit code, how
  long it took.
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
import json
import os
import sys
import tempfile
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from serving import (  # the cases, shared with tests/test_launch.py
    flooded,
    free_port,
    kill_worker,
    sigkill_main,
    sigterm_under_load,
    start,
    stop,
)


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
        **{
            f"sigterm_fresh_{k}": lambda server, port: sigterm_under_load(server, port, 20, 5, True)
            for k in range(1, FRESH_RUNS + 1)
        },
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
    runs = [report.pop(f"sigterm_fresh_{k}") for k in range(1, FRESH_RUNS + 1)]
    report["sigterm_connection_per_request"] = {
        "runs": runs,
        "answered": sum(r.get("answered", 0) for r in runs),
        "lost": sum(r.get("lost", 0) for r in runs) if all("lost" in r for r in runs) else None,
        "exit_codes": [r.get("exit_code") for r in runs],
    }
    report["goals_met"] = goals(report)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    print(table(report))


FRESH_RUNS = 5


def goals(r: dict) -> dict[str, bool]:
    t, k, w = r["sigterm_under_load"], r["sigkill_main"], r["kill_one_worker"]
    h, u, f = r["half_open"], r["stalled_uploads"], r["sigterm_connection_per_request"]
    return {
        "sigterm: 0 lost, exit 0": t.get("lost") == 0 and t.get("exit_code") == 0,
        "sigterm, a connection per request: 0 lost, exit 0, 5 runs": f["lost"] == 0
        and f["exit_codes"] == [0] * FRESH_RUNS,
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
                f"20 clients on keep-alive connections: {t['answered']} answered, "
                f"{t['lost']} lost, exit {t['exit_code']} in {t['stop_seconds']} s"
            ),
        ),
        row(
            "sigterm_connection_per_request",
            lambda f: (
                f"20 clients, a new connection per request, {FRESH_RUNS} runs: "
                f"{f['answered']} answered, {f['lost']} lost, exit codes {f['exit_codes']}"
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
