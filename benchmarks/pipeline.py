"""Training speed of this tree against an earlier commit, recipe by recipe, side by side.

    python benchmarks/pipeline.py --before 5cb96bd                  # classic, best, writers
    python benchmarks/pipeline.py --before 5cb96bd --recipes classic --full --repeats 3

Written to check that moving augmentation into the train step, then the training images onto
the device (both 2026-11-27), made no recipe slower on the CPU. Each run is `mnist-cnn train`
in a fresh process with PYTHONPATH at one tree's src/ (the earlier commit is checked out into
a temporary git worktree), the two trees taking turns so that the machine's drift hits both
alike. Short runs (--train-limit images,
--epochs epochs, no clean epochs) report the median seconds of an augmented epoch after the
first, which also traces the step; --full trains the recipe as it is, on all of MNIST, and
reports train_seconds and test accuracy. Prints a table and writes JSON.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(src: Path, recipe: str, seed: int, args: argparse.Namespace, out: Path) -> dict:
    command = [sys.executable, "-m", "mnist_cnn", "train", "--recipe", recipe, "--seed", str(seed)]
    command += ["--out", str(out)]
    if not args.full:
        command += ["--epochs", str(args.epochs), "--clean-epochs", "0"]
        command += ["--train-limit", str(args.train_limit), "--val-size", "1000"]
        command += ["--test-limit", "2000"]
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{recipe} failed under {src}:\n{proc.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    epochs = json.loads((out / "history.json").read_text())["epoch_seconds"]
    return {
        "train_seconds": metrics["train_seconds"],
        "test_accuracy": metrics["test_accuracy"],
        "first_epoch_seconds": epochs[0],
        "epoch_seconds": statistics.median(epochs[1:]) if len(epochs) > 1 else epochs[0],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", required=True, help="the commit to compare with")
    p.add_argument("--recipes", nargs="+", default=["classic", "best", "writers"])
    p.add_argument("--repeats", type=int, default=2, help="runs per recipe and tree (2)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of a short run (3)")
    p.add_argument("--train-limit", type=int, default=20000, help="images of a short run")
    p.add_argument("--full", action="store_true", help="whole recipes on all of MNIST")
    p.add_argument("--out", default="benchmarks/results/pipeline.json")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(old), args.before],
            check=True,
        )
        try:
            trees = {"before": old / "src", "after": ROOT / "src"}
            rows: dict = {r: {side: [] for side in trees} for r in args.recipes}
            for i in range(args.repeats):
                for recipe in args.recipes:
                    for side, src in trees.items():
                        out = Path(tmp) / f"{recipe}-{side}-{i}"
                        rows[recipe][side].append(run(src, recipe, i, args, out))
                        print(recipe, side, i, rows[recipe][side][-1], file=sys.stderr)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)])

    report = {"date": date.today().isoformat(), "before": args.before, "full": args.full}
    report.update(epochs=args.epochs, train_limit=args.train_limit, runs=rows, median={})
    key = "train_seconds" if args.full else "epoch_seconds"
    print(f"\n| recipe | {key} before | after | after / before | accuracy before | after |")
    print("| --- | --- | --- | --- | --- | --- |")
    for recipe, sides in rows.items():
        med = {
            side: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            for side, runs in sides.items()
        }
        report["median"][recipe] = med
        b, a = med["before"], med["after"]
        print(
            f"| {recipe} | {b[key]:.2f} | {a[key]:.2f} | {a[key] / b[key]:.2f} | "
            f"{100 * b['test_accuracy']:.2f}% | {100 * a['test_accuracy']:.2f}% |"
        )
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
