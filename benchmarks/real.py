"""How the reader does on real handwriting nobody on this project wrote (`../shared/data/real`).

    python benchmarks/real.py                               # the reader of this checkout
    python benchmarks/real.py --previous /tmp/prev/src      # ... beside an earlier checkout's
    python benchmarks/real.py --folders orand-train --limit 200 --out /tmp/real.json

Each folder has a labels.json (see its README): `single` files are read as one digit
(`mnist_cnn.read_digit`), `number` files as one number (`read_number`), `page` files as every
number on a page (`read_numbers`). Scored per folder and kind:

- digits exact: the digits read, in order, are the label's (an unsure digit counts as wrong);
- guessed exact: the same, each unsure digit read as its likeliest (single digits: the top
  digit right, unsure or not);
- as written: the text read is the label's `text` (numbers apart by one space, lines by " | "),
  the marks a writer puts after an amount so nothing can be added (`.-`, `=`, a last `-` or
  `.`) read or left out;
- digit accuracy: 1 - edit distance / the label's digits;
- "no ink found": files answered so, though each holds digits;
- milliseconds per file (median), reading only, on one core (the reader is made before).

`cut-out digits` reads each ORAND digit alone, cut out by its box with a margin of paper round
it (a quarter of the box's longer side), as `mnist-cnn predict` reads a file.

`--previous SRC` reads the same files with the `mnist_cnn` package found in SRC (an earlier
checkout's `src`, made with `git worktree add /tmp/prev COMMIT`), in a process of its own, and
prints both side by side; its readings are scored by this checkout's rules. Prints a table and
writes the figures as JSON (`--out`, by default benchmarks/results/real.json); `--files` writes
each file's reading apart, for looking (keep it out of the repository, as the files are).
"""

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "real"
FOLDERS = ("orand-train", "photos", "drawn", "nist-hsf")
END_MARKS = re.compile(r"[.\-=]+$")  # what a writer puts after an amount
MARGIN = 0.25  # of a cut-out digit's longer side, paper added round it


def labels(data: Path, folder: str) -> dict[str, dict]:
    path = data / folder / "labels.json"
    if not path.is_file():
        raise SystemExit(f"no {path}: point --data at the real-handwriting folder (its README)")
    return json.loads(path.read_text())


# ------------------------------------------------------------------ reading (any checkout)


def read_all(
    data: Path, folders: list[str], limit: int | None, model: str | None = None
) -> dict[str, dict]:
    """Every file read by the `mnist_cnn` this process imports: {folder/file: reading}. The
    reader runs on one core (an earlier checkout's reader, on what its API allows)."""
    import cv2

    import mnist_cnn

    cv2.setNumThreads(1)  # this process only reads: one core, as the speed goals say
    if hasattr(mnist_cnn, "Reader"):  # one thread for the network too
        mnist_cnn = _OneCore(mnist_cnn.Reader(model, threads=1))
    kw = {"model": model} if model and not isinstance(mnist_cnn, _OneCore) else {}
    blank = np.full((64, 64), 255, np.float32)
    with contextlib.suppress(Exception):  # the reader is made before the clock runs
        mnist_cnn.read_digit(blank, **kw)
    out = {}
    for folder in folders:
        found = labels(data, folder)
        for name in sorted(found)[:limit]:
            path = data / folder / name
            out[f"{folder}/{name}"] = _read(mnist_cnn, path, found[name]["kind"], kw)
        if folder == "orand-train":
            for name in sorted(found)[:limit]:
                for k, crop in enumerate(_cut_out(data / folder / name, found[name]["boxes"])):
                    out[f"cut-out/{name}#{k}"] = _read(mnist_cnn, crop, "single", kw)
    return out


class _OneCore:
    """A Reader's methods under the module functions' names."""

    def __init__(self, reader) -> None:
        self.read_digit = reader.read_digit
        self.read_number = reader.read_number
        self.read_numbers = reader.read_numbers


def _read(mnist_cnn, source, kind: str, kw: dict) -> dict:
    """One file's reading: text ('?' for an unsure digit), the top digit of a single one,
    error, seconds."""
    start = time.perf_counter()
    top = None
    try:
        if kind == "single":
            d = mnist_cnn.read_digit(source, **kw)
            text = "?" if d.digit is None else str(d.digit)
            top = str(d.top3[0][0])
        elif kind == "number":
            number = mnist_cnn.read_number(source, **kw)
            text, top = number.text, _guessed([number])
        else:
            page = mnist_cnn.read_numbers(source, **kw)
            text = " | ".join(" ".join(n.text for n in line) for line in page.lines)
            top = _guessed([n for line in page.lines for n in line])
        error = None
    except Exception as err:  # the reader's one-line error, scored as a miss
        text, error = "", str(err).splitlines()[0][:200]
    seconds = time.perf_counter() - start
    return {"text": text, "top": top, "error": error, "seconds": round(seconds, 4)}


def _guessed(numbers: list) -> str:
    """The numbers' digits with each unsure one read as its likeliest."""
    return "".join(str(d.top3[0][0]) for n in numbers for d in n.digits)


def _cut_out(path: Path, boxes: list) -> list[np.ndarray]:
    """Each digit of an ORAND field cut out by its box, on a margin of the field's paper."""
    from PIL import Image

    gray = np.asarray(Image.open(path).convert("L"), np.float32)
    paper = float(np.percentile(gray, 90))
    crops = []
    for x, y, w, h, _ in boxes:
        pad = round(MARGIN * max(w, h))
        canvas = np.full((h + 2 * pad, w + 2 * pad), paper, np.float32)
        part = gray[max(y, 0) : y + h, max(x, 0) : x + w]
        canvas[pad : pad + part.shape[0], pad : pad + part.shape[1]] = part
        crops.append(canvas)
    return crops


def read_elsewhere(src: Path, data: Path, folders: list[str], limit: int | None) -> dict:
    """read_all in a process that imports `mnist_cnn` from `src` (an earlier checkout's)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "readings.json"
        command = [sys.executable, __file__, "--read-only", str(out), "--data", str(data)]
        command += ["--folders", *folders] + (["--limit", str(limit)] if limit else [])
        env = {**os.environ, "PYTHONPATH": str(src.resolve())}
        subprocess.run(command, check=True, env=env, cwd=tmp)
        return json.loads(out.read_text())


# ------------------------------------------------------------------ scoring


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit() or c == "?")


def _as_written(text: str) -> str:
    parts = [END_MARKS.sub("", p.strip()) for p in text.split("|")]
    return " | ".join(" ".join(p.split()) for p in parts)


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        last, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            last, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, last + (ca != cb))
    return row[-1]


def score(readings: dict, data: Path) -> dict:
    """Per folder and kind: files, digits exact, guessed exact, as written, digit accuracy,
    no ink, milliseconds; and each file's verdict."""
    groups: dict[str, list] = {}
    files = {}
    for key, reading in readings.items():
        folder, name = key.split("/", 1)
        if folder == "cut-out":
            field, k = name.split("#")
            label = labels(data, "orand-train")[field]["digits"][int(k)]
            kind, written = "single", None
        else:
            truth = labels(data, folder)[name]
            kind, written = truth["kind"], truth.get("text")
            label = truth.get("digits") or _digits(written)
        got = _digits(reading["text"])
        same = None if written is None else _as_written(reading["text"]) == _as_written(written)
        verdict = {
            "read": reading["text"],
            "exact": got == label,
            "as_written": same,
            "digit_accuracy": max(0.0, 1 - edit_distance(got, label) / len(label)),
            "guessed_exact": reading.get("top") == label,
            "no_ink": bool(reading["error"] and "no ink" in reading["error"]),
            "error": reading["error"],
            "seconds": reading["seconds"],
        }
        files[key] = verdict
        groups.setdefault(f"{folder} {kind}", []).append(verdict)
    return {"groups": {g: _summary(v) for g, v in sorted(groups.items())}, "files": files}


def _summary(verdicts: list[dict]) -> dict:
    def share(key: str) -> float | None:
        known = [v[key] for v in verdicts if v[key] is not None]
        return round(float(np.mean(known)), 4) if known else None

    return {
        "files": len(verdicts),
        "digits_exact": share("exact"),
        "as_written": share("as_written"),
        "as_written_files": sum(v["as_written"] is not None for v in verdicts),
        "digit_accuracy": share("digit_accuracy"),
        "guessed_exact": share("guessed_exact"),
        "no_ink": sum(v["no_ink"] for v in verdicts),
        "ms_median": round(1000 * float(np.median([v["seconds"] for v in verdicts])), 1),
    }


COLUMNS = ("digits_exact", "guessed_exact", "as_written", "digit_accuracy", "no_ink", "ms_median")


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if isinstance(value, float) and value <= 1 else f"{value}"


def print_table(now: dict, before: dict | None) -> None:
    """One row per folder and kind; with a previous reader, `before > now` in each cell."""
    print(f"{'folder kind':22}{'files':>6}" + "".join(f"{c:>19}" for c in COLUMNS))
    for group, row in now["groups"].items():
        was = before["groups"].get(group, {}) if before else {}
        cells = [
            f"{_cell(was.get(c))} > {_cell(row[c])}" if before else _cell(row[c]) for c in COLUMNS
        ]
        print(f"{group:22}{row['files']:>6}" + "".join(f"{c:>19}" for c in cells))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(os.environ.get("REAL_DATA_DIR", DEFAULT_DATA))
    ap.add_argument("--data", type=Path, default=here, help="the real-handwriting folder")
    ap.add_argument("--folders", nargs="+", default=list(FOLDERS), choices=FOLDERS)
    ap.add_argument("--limit", type=int, help="the first N files of each folder")
    ap.add_argument("--model", help="a reader's run folder or .onnx (default: the packaged one)")
    ap.add_argument("--previous", type=Path, help="an earlier checkout's src, read beside")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "real.json")
    ap.add_argument(
        "--files",
        type=Path,
        help="also write each file's reading and verdict here (not --out: "
        "what the reader read of the real files stays out of the repository, as they do)",
    )
    ap.add_argument("--read-only", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.read_only:
        readings = read_all(args.data, args.folders, args.limit)
        args.read_only.write_text(json.dumps(readings))
        return
    now = score(read_all(args.data, args.folders, args.limit, args.model), args.data)
    before = None
    if args.previous:
        before = score(
            read_elsewhere(args.previous, args.data, args.folders, args.limit), args.data
        )
    print_table(now, before)
    report = {
        "command": " ".join(["python benchmarks/real.py", *(argv or sys.argv[1:])]),
        "reader": now["groups"],
        "previous": before and before["groups"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    if args.files:
        files = {"reader": now["files"], "previous": before and before["files"]}
        args.files.write_text(json.dumps(files, indent=1))
        print(f"wrote {args.files}")


if __name__ == "__main__":
    main()
