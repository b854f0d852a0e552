"""How a model reads digits by writers MNIST never had: held-out fonts and writing styles.

    python benchmarks/other_writers.py --reader [--model READER] [--count 1000]   # the reader
    python benchmarks/other_writers.py [--model M] [--engine int8] [--count 1000]  # a classifier

The evaluation sets come from `mnist_cnn.synth` (held-out font families and stroke styles,
as pictures and as low-resolution binarised scans; never used in training). With --reader each
picture is read as `mnist-cnn predict` reads a file; else each digit's 28x28 MNIST form
(`reading.crops.from_picture`) is read by a classifier. For each set and each digit: top-1
(right answers over all digits), the share answered "unsure" at the threshold, and the
accuracy among answered. The same
model's MNIST test accuracy and its "unsure" share on 1,000 Fashion-MNIST images (things that are
not digits) are reported beside them. Prints a table and writes JSON.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # for fashion.py

GOALS = {"top1": 0.98, "worst_digit_top1": 0.95, "unsure": 0.03, "answered_accuracy": 0.995}


def fashion_images(folder: str | None, count: int = 1000) -> np.ndarray:
    """Fashion-MNIST test images from `folder`, else found as MNIST is (tests/fashion.py)."""
    import os

    from fashion import load_fashion

    from mnist_cnn import data

    if folder:
        os.environ["FASHION_MNIST_DATA_DIR"] = folder
    try:
        return load_fashion("test", limit=count)[..., 0]
    except data.DataError as err:
        sys.exit(f"other_writers: {err}")


def report_set(probs: np.ndarray, y: np.ndarray, source: np.ndarray, t: float) -> dict:
    from mnist_cnn.evaluate import answered

    row = answered(probs, y, t)
    row["count"] = len(y)
    row["per_digit"] = {str(d): answered(probs[y == d], y[y == d], t) for d in range(10)}
    row["per_source"] = {
        str(s): answered(probs[source == s], y[source == s], t) for s in np.unique(source)
    }
    row["worst_digit_top1"] = min(r["top1"] for r in row["per_digit"].values())
    return row


def reader_classifier(model: str | None):
    """Pictures in, each one's 10 probabilities out, read by the reader as `predict` reads a
    file (zeros where it finds no digit)."""
    from mnist_cnn.errors import ImageError
    from mnist_cnn.reading.predictor import Reader

    reader = Reader(model, min_confidence=0.0)

    def read(pictures) -> np.ndarray:
        out = []
        for picture in pictures:
            try:
                out.append(reader.read_digit(np.asarray(picture, np.float32)).probabilities)
            except ImageError:
                out.append([0.0] * 10)
        return np.asarray(out)

    return read


def main() -> None:
    from mnist_cnn import engines

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help=".keras file, run folder, .onnx (default: the packaged model)")
    p.add_argument("--engine", default="auto", choices=engines.ENGINES)
    p.add_argument("--count", type=int, default=1000, help="digits per set (1000)")
    p.add_argument("--min-confidence", type=float, help="threshold (default: the package's)")
    p.add_argument(
        "--fashion-dir", help="Fashion-MNIST (default: found as tests/fashion.py finds it)"
    )
    p.add_argument(
        "--reader",
        action="store_true",
        help="read each digit's picture with the reader (--model: a reader), as `mnist-cnn "
        "predict` reads a file, not its 28x28 with a classifier",
    )
    p.add_argument("--out", default="benchmarks/results/other-writers.json")
    args = p.parse_args()

    from mnist_cnn import data, synth
    from mnist_cnn.reading.results import MIN_CONFIDENCE

    t = MIN_CONFIDENCE if args.min_confidence is None else args.min_confidence
    model = args.model
    if args.reader:
        classify = reader_classifier(model)
    else:
        if model and Path(model).is_dir():
            model = str(Path(model) / "model.keras")
        classify = engines.classifier(model, args.engine)
    started = time.perf_counter()
    sets = synth.held_out_sets(args.count, pictures=args.reader)
    print(f"made {len(sets)} sets in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    report: dict = {"command": " ".join(["python benchmarks/other_writers.py", *sys.argv[1:]])}
    report.update(model=model or "packaged", reader=args.reader, min_confidence=t, sets={})
    all_p, all_y, all_s = [], [], []
    for name, digits in sets.items():
        probs = classify(list(digits.x) if args.reader else digits.x[..., None])
        report["sets"][name] = report_set(probs, digits.y, digits.source, t)
        all_p.append(probs), all_y.append(digits.y), all_s.append(digits.source)
    report["held_out"] = report_set(
        np.concatenate(all_p), np.concatenate(all_y), np.concatenate(all_s), t
    )
    ds = data.load(val_size=0)
    test = list(ds.x_test[..., 0]) if args.reader else ds.x_test
    report["mnist_test_accuracy"] = float((classify(test).argmax(1) == ds.y_test).mean())
    clothes = fashion_images(args.fashion_dir)
    fashion = classify(list(clothes) if args.reader else clothes[..., None])
    report["fashion_unsure"] = float((fashion.max(1) < t).mean())
    held = report["held_out"]
    report["goals_met"] = {
        "top1": held["top1"] >= GOALS["top1"],
        "worst_digit_top1": held["worst_digit_top1"] >= GOALS["worst_digit_top1"],
        "unsure": held["unsure"] <= GOALS["unsure"],
        "answered_accuracy": held["answered_accuracy"] >= GOALS["answered_accuracy"],
        "mnist_test_accuracy": report["mnist_test_accuracy"] >= 0.996,
        "fashion_unsure": report["fashion_unsure"] >= 0.60,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: report[k]
                for k in (
                    "model",
                    "reader",
                    "min_confidence",
                    "mnist_test_accuracy",
                    "fashion_unsure",
                    "goals_met",
                )
            }
        )
    )
    print(
        f"\nthreshold {t}; MNIST test {100 * report['mnist_test_accuracy']:.2f}%, "
        f"Fashion-MNIST unsure {100 * report['fashion_unsure']:.1f}%\n"
    )
    print("| set | top-1 | unsure | accuracy among answered | worst digit (top-1) |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in [*report["sets"].items(), ("all held-out", held)]:
        worst = min(r["per_digit"], key=lambda d: r["per_digit"][d]["top1"])
        worst_top1 = r["per_digit"][worst]["top1"]
        print(
            f"| {name} | {100 * r['top1']:.1f}% | {100 * r['unsure']:.1f}% | "
            f"{100 * r['answered_accuracy']:.2f}% | {worst}: {100 * worst_top1:.1f}% |"
        )
    print("\n| digit | " + " | ".join(str(d) for d in range(10)) + " |\n|" + " --- |" * 11)
    for key in ("top1", "unsure"):
        print(
            f"| {key} | "
            + " | ".join(f"{100 * held['per_digit'][str(d)][key]:.1f}" for d in range(10))
            + " |"
        )


if __name__ == "__main__":
    main()
