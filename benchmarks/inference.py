"""Inference speed and accuracy of one model on each engine: Keras, ONNX Runtime, int8 ONNX.

    python benchmarks/inference.py [--model M] [--out inference.json]

For the packaged model unless --model. Each engine (as `predict --engine` and `serve --engine`
build it) answers the 10,000 MNIST test digits, then is timed on batches of 1, 32 and 64 with
1 and 2 threads (ONNX Runtime's intra-op threads; TensorFlow's are set once per process, so
Keras runs in a child process per thread count). Medians of --repeats calls. Prints JSON and a
table: milliseconds per batch, microseconds per image, test accuracy.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # for helpers.py

BATCHES = (1, 32, 64)


def measure(model: str | None, engine: str, threads: int, repeats: int) -> dict:
    """One engine at one thread count, in this process."""
    from helpers import predict_batched

    from mnist_cnn import data, engines

    ds = data.load(val_size=0)
    classify = engines.classifier(model, engine, threads)
    accuracy = float((predict_batched(classify, ds.x_test).argmax(1) == ds.y_test).mean())
    timings = {}
    for batch in BATCHES:
        x = ds.x_test[:batch]
        classify(x)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            classify(x)
            seconds.append(time.perf_counter() - start)
        timings[batch] = float(np.median(seconds))
    return {"engine": engine, "threads": threads, "test_accuracy": accuracy, "seconds": timings}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="a .keras model (default: the packaged one)")
    p.add_argument("--engines", nargs="+", default=["keras", "onnx", "onnx-int8"])
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--out", default="benchmarks/results/inference.json")
    p.add_argument("--child", nargs=2, metavar=("ENGINE", "THREADS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        engine, threads = args.child[0], int(args.child[1])
        print(json.dumps(measure(args.model, engine, threads, args.repeats)))
        return

    rows = []
    for engine in args.engines:
        for threads in (1, 2):
            env = {**os.environ, "TF_NUM_INTRAOP_THREADS": str(threads)}
            command = [sys.executable, __file__, "--child", engine, str(threads)]
            command += ["--repeats", str(args.repeats)]
            command += ["--model", args.model] if args.model else []
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{engine}, {threads} threads: {rows[-1]}", file=sys.stderr, flush=True)
    report = {
        "date": date.today().isoformat(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "model": args.model or "packaged",
        "repeats": args.repeats,
        "results": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    head = " | ".join(f"batch {b}: ms (us/image)" for b in BATCHES)
    print(f"| engine | threads | {head} | test accuracy |")
    print("| --- | --- |" + " --- |" * len(BATCHES) + " --- |")
    for r in rows:
        seconds = {int(b): s for b, s in r["seconds"].items()}  # JSON keys are strings
        cells = " | ".join(f"{seconds[b] * 1e3:.2f} ({seconds[b] / b * 1e6:.0f})" for b in BATCHES)
        print(f"| {r['engine']} | {r['threads']} | {cells} | {r['test_accuracy']:.2%} |")


if __name__ == "__main__":
    main()
