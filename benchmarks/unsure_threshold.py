"""Choose the "unsure" threshold on a validation mix of MNIST and other writers' digits.

    python benchmarks/unsure_threshold.py [--model M] [--plot docs/unsure-threshold.png]

Real digits should rarely be unsure and things that are not digits mostly should. The mix is
MNIST's validation split (the 5,000 training images held out of training) and 5,000 synthetic
digits of the *training* fonts and styles drawn from a seed training never used (as pictures
and scans, half each); the held-out fonts and styles stay for the other-writers benchmark.
Non-digits are 1,000 Fashion-MNIST *training* images (its test images are kept for the
benchmark). The rule: the lowest threshold on the grid that still leaves at least 65% of the
non-digits unsure (a margin over the goal of 60%), since every step up costs real digits an
answer. Prints the curve as a table, writes it as JSON and plots it.
"""

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # for fashion.py

GRID = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995]
MIN_NON_DIGITS_UNSURE = 0.65  # of Fashion-MNIST training images
VAL_SEED = 500_009  # synthetic validation digits: a seed of their own, apart from training's


def main() -> None:
    from mnist_cnn import engines

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help=".keras file or run folder (default: the packaged model)")
    p.add_argument("--engine", default="auto", choices=engines.ENGINES)
    p.add_argument(
        "--fashion-dir", help="Fashion-MNIST (default: found as tests/fashion.py finds it)"
    )
    p.add_argument("--plot", default="docs/unsure-threshold.png")
    p.add_argument("--out", default="benchmarks/results/unsure-threshold.json")
    args = p.parse_args()

    from fashion import load_fashion

    from mnist_cnn import data, evaluate, synth

    model = args.model
    if model and Path(model).is_dir():
        model = str(Path(model) / "model.keras")
    classify = engines.classifier(model, args.engine)
    ds = data.load(val_size=5000, test_limit=1)
    made = synth.training_digits(5000, VAL_SEED)
    if args.fashion_dir:
        os.environ["FASHION_MNIST_DATA_DIR"] = args.fashion_dir
    try:
        fashion = load_fashion("train", limit=1000)
    except data.DataError as err:
        sys.exit(f"unsure_threshold: {err}")
    probs = {
        "MNIST validation": (classify(ds.x_val), ds.y_val),
        "other writers (training styles, unseen draws)": (classify(made.x[..., None]), made.y),
    }
    p_fashion = classify(fashion)
    rows = []
    for t in GRID:
        row = {"threshold": t}
        for name, (pr, y) in probs.items():
            got = evaluate.answered(pr, y, t)
            row[f"{name} unsure"] = got["unsure"]
            row[f"{name} accuracy among answered"] = got["answered_accuracy"]
        row["Fashion-MNIST unsure"] = float((p_fashion.max(1) < t).mean())
        rows.append(row)
    ok = [r["threshold"] for r in rows if r["Fashion-MNIST unsure"] >= MIN_NON_DIGITS_UNSURE]
    chosen = min(ok) if ok else GRID[-1]
    report = {
        "date": date.today().isoformat(),
        "model": model or "packaged",
        "rule": f"lowest threshold with >= {MIN_NON_DIGITS_UNSURE:.0%} of non-digits unsure",
        "chosen": chosen,
        "curve": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    names = [k for k in rows[0] if k != "threshold"]
    print("| threshold | " + " | ".join(names) + " |\n|" + " --- |" * (len(names) + 1))
    for r in rows:
        mark = "**" if r["threshold"] == chosen else ""
        cells = " | ".join(f"{100 * r[k]:.2f}%" for k in names)
        print(f"| {mark}{r['threshold']}{mark} | {cells} |")
    print(f"\nchosen threshold: {chosen}")
    if args.plot:
        plot(rows, list(probs), chosen, args.plot)
        print(f"wrote {args.plot}")


def plot(rows: list, names: list, chosen: float, path: str) -> None:
    from matplotlib.figure import Figure

    t = [r["threshold"] for r in rows]
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    for name, style in zip(names, ("o-", "s-"), strict=True):
        left.plot(t, [100 * r[f"{name} unsure"] for r in rows], style, label=f"{name}")
        right.plot(t, [100 * r[f"{name} accuracy among answered"] for r in rows], style, label=name)
    left.plot(
        t, [100 * r["Fashion-MNIST unsure"] for r in rows], "^-", label="Fashion-MNIST (not digits)"
    )
    left.axhline(100 * MIN_NON_DIGITS_UNSURE, color="grey", lw=0.8, ls=":")
    for ax in (left, right):
        ax.axvline(chosen, color="black", lw=0.8, ls="--")
        ax.set_xlabel("unsure threshold (top probability)")
        ax.grid(alpha=0.3)
    left.set_yscale("symlog", linthresh=1)
    left.set_ylabel("% answered unsure")
    left.set_title(f"Unsure share (chosen {chosen})")
    left.legend(fontsize=8)
    right.set_ylabel("% right among answered")
    right.set_title("Accuracy of the answers given")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
