"""Speed and accuracy of every recipe, side by side, in one invocation.

    python benchmarks/bench.py                       # every recipe, 1-5 seeds each (~30 min)
    python benchmarks/bench.py --recipes fast --seeds 5 --out bench.json
    python benchmarks/bench.py --quick               # one seed each; classic-peer 2, best 1 epoch
    python benchmarks/bench.py --recipes fast --seeds 1 --warm 5   # also 5 warm runs, in-process

Each (recipe, seed) trains in a child process of its own (a fresh interpreter, as a user runs
it), so peak RSS is that run's alone. Runs go one after another, never two at once. The
child logs test accuracy after every epoch with the clock stopped, which gives the time to
99%; the classic peer stops at the first epoch that reaches 99% (or after 8), as the Keras
example does.
With --warm N the child then trains N more times in the same process (seeds seed+1 ...), as a
notebook user or the speedrun anchor's %%timeit does: imports done, data loaded, one run already
made, its compiled step kept; each warm run starts from its own seed's fresh weights. Their
median is reported beside the cold run. Prints a table and writes the figures as JSON.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # for helpers.py

INFERENCE = (
    "batch_images_per_s",
    "keras_predict_default_batch_images_per_s",
    "single_latency_ms",
    "onnx_batch_images_per_s",
    "onnx_single_latency_ms",
)
DEFAULT_SEEDS = {"classic-peer": 3, "classic": 3, "compact": 3, "fast": 5, "best": 1}
TARGET = 0.99


def child(
    recipe: str, seed: int, out: Path, max_epochs: int | None, warm: int = 0, infer: bool = True
) -> None:
    """Train one recipe with one seed and measure its inference; write result.json."""
    import keras
    import numpy as np
    from helpers import predict_batched

    from mnist_cnn import data, engines, evaluate, export, models, train

    started = time.perf_counter()
    ds = data.load()
    load_seconds = time.perf_counter() - started
    stop_at_target = recipe == "classic-peer"

    def probe(model: keras.Model) -> dict[str, float]:
        acc = float((evaluate.predict_proba(model, ds.x_test).argmax(1) == ds.y_test).mean())
        return {"test_accuracy": acc}

    class StopAtTarget(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if (logs or {}).get("test_accuracy", 0) >= TARGET:  # the probe's, just logged
                self.model.stop_training = True

    cfg = train.make_config(recipe, seed=seed, out=str(out / "run"), epochs=max_epochs)
    stop = [StopAtTarget()] if stop_at_target else []
    reuse = train.Reuse()  # the warm runs below skip compiling the step again
    metrics = train.train(
        cfg, verbose=0, dataset=ds, probe=probe, callbacks=stop, reuse=reuse
    ).metrics
    history = json.loads((out / "run" / "history.json").read_text())
    elapsed, time_to_target = 0.0, None
    for secs, acc in zip(history["epoch_seconds"], history["test_accuracy"], strict=True):
        elapsed += secs
        if acc >= TARGET:
            time_to_target = elapsed
            break

    warm_runs = []
    for i in range(1, warm + 1):
        run = str(out / f"warm{i}")
        again = train.make_config(recipe, seed=seed + i, out=run, epochs=max_epochs)
        m = train.train(again, verbose=0, dataset=ds, reuse=reuse).metrics
        warm_runs.append({"train_seconds": m["train_seconds"], "test_accuracy": m["test_accuracy"]})

    speeds = dict.fromkeys(INFERENCE)
    if infer:
        model = models.load(out / "run")
        x = ds.x_test
        onnx_run = engines.load_exported(export.export(model, "onnx", out / "model.onnx"))
        speeds = {
            "batch_images_per_s": _throughput(
                lambda a: evaluate.predict_proba(model, a, batch_size=1000), x
            ),
            "keras_predict_default_batch_images_per_s": _throughput(  # batch 32, as the seed
                lambda a: model.predict(a, verbose=0), x
            ),
            "single_latency_ms": _latency(lambda a: np.asarray(model(a, training=False)), x),
            "onnx_batch_images_per_s": _throughput(lambda a: predict_batched(onnx_run, a), x),
            "onnx_single_latency_ms": _latency(onnx_run, x),
        }
    result = {
        "recipe": recipe,
        "seed": seed,
        "params": metrics["params"],
        "flops_per_image": metrics["flops_per_image"],
        "epochs": metrics["epochs"],
        "train_seconds": metrics["train_seconds"],
        "load_seconds": load_seconds,
        "time_to_99": time_to_target,
        "test_accuracy": metrics["test_accuracy"],
        **speeds,
        "warm_runs": warm_runs,
    }
    (out / "result.json").write_text(json.dumps(result))


def _throughput(predict: Callable, x: Any, repeats: int = 3) -> float:
    """Median images/s of predicting all of x, after one warm-up batch."""
    predict(x[:1000])
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        predict(x)
        runs.append(len(x) / (time.perf_counter() - t))
    return statistics.median(runs)


def _latency(predict: Callable, x: Any, n: int = 200) -> float:
    """Median milliseconds to answer for one image, as a server would."""
    predict(x[:1])
    times = []
    for i in range(n):
        t = time.perf_counter()
        predict(x[i : i + 1])
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_one(
    recipe: str, seed: int, max_epochs: int | None, warm: int = 0, infer: bool = True
) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        cmd = [sys.executable, __file__, "--child", recipe, str(seed), tmp, "--warm", str(warm)]
        if not infer:
            cmd.append("--train-only")
        if max_epochs:
            cmd += ["--max-epochs", str(max_epochs)]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{recipe} seed {seed} failed:\n{stderr[-3000:]}")
        result = json.loads((Path(tmp) / "result.json").read_text())
    result["process_seconds"] = wall
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return result


def summarise(runs: list[dict]) -> dict:
    accs = [r["test_accuracy"] for r in runs]
    reached = [r["time_to_99"] for r in runs if r["time_to_99"] is not None]
    first = runs[0]
    warm = [w for r in runs for w in r.get("warm_runs", [])]
    warm_figures = (
        {
            "warm_train_seconds_median": statistics.median(w["train_seconds"] for w in warm),
            "warm_train_seconds_all": [round(w["train_seconds"], 2) for w in warm],
            "warm_test_accuracy_mean": statistics.mean(w["test_accuracy"] for w in warm),
        }
        if warm
        else {}
    )
    return {
        "recipe": first["recipe"],
        "seeds": [r["seed"] for r in runs],
        "params": first["params"],
        "flops_per_image": first["flops_per_image"],
        "epochs": statistics.median(r["epochs"] for r in runs),
        "train_seconds_median": statistics.median(r["train_seconds"] for r in runs),
        "train_seconds_all": [round(r["train_seconds"], 2) for r in runs],
        "time_to_99_median": statistics.median(reached) if reached else None,
        "reached_99": f"{len(reached)}/{len(runs)}",
        "test_accuracy_mean": statistics.mean(accs),
        "test_accuracy_std": statistics.pstdev(accs),
        "test_accuracy_min": min(accs),
        "test_accuracy_all": accs,
        **{
            key: None if first[key] is None else statistics.median(r[key] for r in runs)
            for key in INFERENCE
        },
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "load_seconds_median": statistics.median(r["load_seconds"] for r in runs),
        "process_seconds_median": statistics.median(r["process_seconds"] for r in runs),
        **warm_figures,
    }


def _cell(row: dict, key: str, fmt: str) -> str:
    return "-" if row[key] is None else format(row[key], fmt)


def table(rows: list[dict]) -> str:
    head = (
        "| recipe | params | MFLOP/img | epochs | train s (median) | warm train s | "
        "time to 99% s | test acc mean ± std (min) | speed-up | batch img/s Keras / ONNX RT | "
        "1-image ms Keras / ONNX RT | peak RSS MB |"
    )
    lines = [head, "|" + " --- |" * 12]
    for r in rows:
        t99 = (
            f"{r['time_to_99_median']:.1f} ({r['reached_99']})"
            if r["time_to_99_median"]
            else (f"- ({r['reached_99']})")
        )
        speed = f"{r['speedup_vs_seed_peer']:.1f}x" if r.get("speedup_vs_seed_peer") else "-"
        warm = r.get("warm_train_seconds_median")
        warm_cell = (
            f"{warm:.2f} ({100 * r['warm_test_accuracy_mean']:.2f}%)" if warm is not None else "-"
        )
        lines.append(
            f"| {r['recipe']} | {r['params']:,} | {r['flops_per_image'] / 1e6:.2f} | "
            f"{r['epochs']:g} | {r['train_seconds_median']:.1f} | {warm_cell} | {t99} | "
            f"{100 * r['test_accuracy_mean']:.2f}% ± {100 * r['test_accuracy_std']:.2f} "
            f"({100 * r['test_accuracy_min']:.2f}%) | {speed} | "
            f"{_cell(r, 'batch_images_per_s', ',.0f')} / "
            f"{_cell(r, 'onnx_batch_images_per_s', ',.0f')} | "
            f"{_cell(r, 'single_latency_ms', '.2f')} / "
            f"{_cell(r, 'onnx_single_latency_ms', '.3f')} | "
            f"{r['peak_rss_mb']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipes", nargs="+", default=list(DEFAULT_SEEDS))
    p.add_argument("--seeds", type=int, help="seeds per recipe (default: fast 5, best 1, others 3)")
    p.add_argument("--quick", action="store_true", help="one seed each; peer 2, best 1 epoch")
    p.add_argument("--warm", type=int, default=0, help="in-process runs after the first (0)")
    p.add_argument("--train-only", action="store_true", help="skip the inference timings")
    p.add_argument("--out", default="benchmarks/results/bench.json", help="JSON results")
    p.add_argument("--child", nargs=3, metavar=("RECIPE", "SEED", "DIR"), help=argparse.SUPPRESS)
    p.add_argument("--max-epochs", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        recipe, seed, out = args.child
        return child(recipe, int(seed), Path(out), args.max_epochs, args.warm, not args.train_only)
    if not os.environ.get("MNIST_DATA_DIR"):
        print("note: MNIST_DATA_DIR unset; using the user cache or a download", file=sys.stderr)

    load_at_start = os.getloadavg()
    rows = []
    for recipe in args.recipes:
        n = 1 if args.quick else (args.seeds or DEFAULT_SEEDS.get(recipe, 3))
        max_epochs = {"classic-peer": 2, "best": 1}.get(recipe) if args.quick else None
        runs = []
        for seed in range(n):
            r = run_one(recipe, seed, max_epochs, args.warm, not args.train_only)
            print(
                f"{recipe} seed {seed}: test {r['test_accuracy']:.4f}  train "
                f"{r['train_seconds']:.2f} s  time to 99% {r['time_to_99']}",
                file=sys.stderr,
                flush=True,
            )
            runs.append(r)
        rows.append({**summarise(runs), "runs": runs})
    peer = next((r for r in rows if r["recipe"] == "classic-peer"), None)
    # the peer's median time to 99%, or its whole run when it never got there (a lower bound)
    peer_time = peer and (peer["time_to_99_median"] or peer["train_seconds_median"])
    for r in rows:
        if peer_time and r["time_to_99_median"]:
            r["speedup_vs_seed_peer"] = peer_time / r["time_to_99_median"]
    report = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {_cpu_name()}",
        "load_average_at_start": load_at_start,
        "python": platform.python_version(),
        "speed-up": "seed peer's median time to 99% (its whole run if it never reached 99%) / "
        "this recipe's median time to 99%",
        "results": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "results"}))
    print(table(rows))


if __name__ == "__main__":
    main()
