"""Learning a user's own fields, measured as ORAND's competition measured readers: fine-tune
the packaged reader on four fifths of the ORAND-CAR-A fields, read the other fifth.

    python benchmarks/fields.py [--data ../shared/data/real] [--seed 0] [--epochs 4]

The fields are split at random by `--seed` (the same split every run). The training fifths go
to `mnist-cnn finetune --fields` as a user's folder would (a labels.json with each field's
digits and boxes, the pictures linked, not copied) into a run folder under runs/ that is
never committed (ORAND's terms). The held-out fifth is read by the packaged reader and by the
fine-tuned one: digits exact, as written (the 1 in 10 fields whose marks are transcribed),
digit accuracy. Prints a table and writes JSON (benchmarks/results/fields.json).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import real


def split(labels: dict, seed: int) -> tuple[list[str], list[str]]:
    names = sorted(labels)
    order = np.random.default_rng(seed).permutation(len(names))
    test = sorted(names[i] for i in order[: len(names) // 5])
    return sorted(set(names) - set(test)), test


def scores(reader, folder: Path, names: list[str], labels: dict) -> dict:
    exact, written, known, accuracy = 0, 0, 0, []
    seconds = []
    for name in names:
        start = time.perf_counter()
        try:
            text = reader.read_number(folder / name).text
        except Exception:  # the reader's one-line error: a miss
            text = ""
        seconds.append(time.perf_counter() - start)
        got, want = real._digits(text), labels[name]["digits"]
        exact += got == want
        accuracy.append(max(0.0, 1 - real.edit_distance(got, want) / len(want)))
        if "text" in labels[name]:
            known += 1
            written += real._as_written(text) == real._as_written(labels[name]["text"])
    return {
        "fields": len(names),
        "digits_exact": round(exact / len(names), 4),
        "as_written": round(written / max(known, 1), 4),
        "as_written_fields": known,
        "digit_accuracy": round(float(np.mean(accuracy)), 4),
        "ms_median": round(1000 * float(np.median(seconds)), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data", type=Path, default=Path(os.environ.get("REAL_DATA_DIR", real.DEFAULT_DATA))
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="passes (default: the fields recipe's)")
    p.add_argument("--out", type=Path, default=real.HERE / "results" / "fields.json")
    p.add_argument("--run", type=Path, default=Path("runs/orand-fields"))
    args = p.parse_args()

    from mnist_cnn import recipes, train
    from mnist_cnn.reading import predictor

    folder = args.data / "orand-train"
    labels = real.labels(args.data, "orand-train")
    learn, test = split(labels, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        fields = Path(tmp)
        for name in learn:
            (fields / name).symlink_to((folder / name).resolve())
        mine = {n: {k: labels[n][k] for k in ("digits", "boxes")} for n in learn}
        (fields / "labels.json").write_text(json.dumps(mine))
        cfg = recipes.make_config(
            "fields",
            init_from=str(predictor.packaged_network()),
            fields=str(fields),
            out=str(args.run),
            seed=args.seed,
            epochs=args.epochs,
        )
        started = time.perf_counter()
        result = train.train(cfg, overwrite=True, verbose=2)
        minutes = (time.perf_counter() - started) / 60
    before = scores(predictor.Reader(), folder, test, labels)
    after = scores(predictor.Reader(args.run), folder, test, labels)
    report = {
        "command": " ".join(["python benchmarks/fields.py", *sys.argv[1:]]),
        "learnt_fields": len(learn),
        "fields_left_out": result.metrics["fields_left_out"],
        "minutes": round(minutes, 1),
        "packaged": before,
        "fine_tuned": after,
        "held_out_pages_after": result.metrics["held_out"],
    }
    print(
        f"{'reader':12}"
        + "".join(f"{k:>16}" for k in ("digits_exact", "as_written", "digit_accuracy", "ms_median"))
    )
    for name, row in (("packaged", before), ("fine-tuned", after)):
        cells = [f"{row[k]:.1%}" for k in ("digits_exact", "as_written", "digit_accuracy")]
        print(f"{name:12}" + "".join(f"{c:>16}" for c in [*cells, f"{row['ms_median']} ms"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
