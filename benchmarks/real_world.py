"""How the reader reads MNIST test digits dressed up as photos and scans, as `predict` does.

    python benchmarks/real_world.py [--model M] [--count 2000] [--out F]

Each test digit is rendered large on a bigger page, the way a user's picture arrives: dark ink
on light paper at a random place, white on black, thicker and thinner pens, blurred, and on
noisy grey paper saved as JPEG. Every variant is then read as `mnist-cnn predict` reads a
file (the packaged reader, or --model). Then 4-digit numbers made of test digits, apart,
close and touching, are read as `predict --number` reads them; a number counts only when all
four digits are right. Prints a table and writes JSON: accuracy per variant against the
model's accuracy on the raw 28x28 digits.
"""

import argparse
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # for fashion.py

PAGE = (300, 260)


def render(digit: np.ndarray, variant: str, rng: np.random.Generator) -> np.ndarray:
    """One 28x28 MNIST digit as a page of the given kind (grayscale 0-255, float32)."""
    side = int(rng.integers(120, 200))
    img = Image.fromarray(digit.astype(np.uint8)).resize((side, side), Image.Resampling.BICUBIC)
    if variant == "thick pen":
        img = img.filter(ImageFilter.MaxFilter(9))
    elif variant == "thin pen":
        img = img.filter(ImageFilter.MinFilter(7))
    elif variant == "blurred":
        img = img.filter(ImageFilter.GaussianBlur(4))
    elif variant == "slanted 20 degrees":
        shear = np.tan(np.radians(20))
        shape = (1, shear, -shear * side / 2, 0, 1, 0)
        img = img.transform(img.size, Image.Transform.AFFINE, shape)
    elif variant == "narrow (70% width)":
        narrow = Image.new("L", img.size)
        narrow.paste(img.resize((round(0.7 * side), side)), (round(0.15 * side), 0))
        img = narrow
    ink = np.asarray(img, np.float32)
    page = np.zeros(PAGE, np.float32)
    top, left = rng.integers(0, PAGE[0] - side), rng.integers(0, PAGE[1] - side)
    page[top : top + side, left : left + side] = ink
    if variant == "white on black":
        return page
    page = 255 - page  # dark ink on light paper
    if variant == "noisy grey paper, JPEG":
        page = np.clip(0.75 * page + 40 + rng.normal(0, 10, PAGE), 0, 255)
        buf = io.BytesIO()
        Image.fromarray(page.astype(np.uint8)).save(buf, "JPEG", quality=75)
        page = np.asarray(Image.open(buf), np.float32)
    return page


def number_page(digits: list[np.ndarray], gap: int, scale: int = 4) -> np.ndarray:
    """Digits written in a row on white paper, `gap` pixels of paper between their ink
    (negative: they overlap and touch)."""
    side = 28 * scale
    tiles = []
    for d in digits:
        big = Image.fromarray(d.astype(np.uint8)).resize((side, side), Image.Resampling.BICUBIC)
        tile = np.asarray(big, np.float32)
        tiles.append(tile[:, tile.any(0)])  # ink columns only, so `gap` is between the ink
    page = np.zeros((side + 60, sum(t.shape[1] for t in tiles) + gap * len(tiles) + 80))
    col = 40
    for tile in tiles:
        area = page[30 : 30 + side, col : col + tile.shape[1]]
        np.maximum(area, tile, out=area)
        col += tile.shape[1] + gap
    return (255 - page).astype(np.float32)


GAPS = {"4 digits, apart (20 px)": 20, "4 digits, close (4 px)": 4, "4 digits, touching": -4}

VARIANTS = [
    "ink on paper",
    "white on black",
    "thick pen",
    "thin pen",
    "blurred",
    "slanted 20 degrees",
    "narrow (70% width)",
    "noisy grey paper, JPEG",
]

THRESHOLDS = [0.5, 0.7, 0.8, 0.9, 0.95, 0.99]


def read_all(reader, pictures) -> tuple[np.ndarray, np.ndarray]:
    """Each picture read as one digit: the 10 probabilities (zeros where it was refused, "no
    digit found": an item that fills its frame looks like paper), and which were refused."""
    from mnist_cnn.errors import ImageError

    probs, refused = [], []
    for picture in pictures:
        try:
            probs.append(reader.read_digit(picture).probabilities)
            refused.append(False)
        except ImageError:
            probs.append([0.0] * 10)
            refused.append(True)
    return np.asarray(probs), np.array(refused)


def unsure_rates(sets: dict, labels: dict) -> list:
    """For each threshold: the share of each set answered "unsure" (or refused outright), and
    the accuracy of the answers given."""
    rows = []
    for t in THRESHOLDS:
        row = {"threshold": t}
        for name, (p, refused) in sets.items():
            sure = (p.max(1) >= t) & ~refused
            row[f"{name} unsure"] = float(1 - sure.mean())
            if name in labels:
                right = p.argmax(1) == labels[name]
                row[f"{name} accuracy when answered"] = float(right[sure].mean())
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="a reader, or a classifier (default: the packaged reader)")
    p.add_argument("--count", type=int, default=2000, help="test digits per variant (2000)")
    p.add_argument("--numbers", type=int, default=200, help="4-digit numbers per spacing (200)")
    p.add_argument(
        "--fashion-dir", help="Fashion-MNIST (default: found as tests/fashion.py finds it)"
    )
    p.add_argument("--out", default="benchmarks/results/real-world.json")
    args = p.parse_args()

    from fashion import load_fashion

    from mnist_cnn import data
    from mnist_cnn.reading import predictor

    ds = data.load(val_size=0, test_limit=args.count)
    x, y = ds.x_test[..., 0], ds.y_test
    reader = predictor.reader_for(args.model, min_confidence=0.0)
    raw, _ = read_all(reader, x)
    rows = [{"variant": "raw MNIST 28x28", "accuracy": float((raw.argmax(1) == y).mean())}]
    for variant in VARIANTS:
        rng = np.random.default_rng(0)
        probs, _ = read_all(reader, [render(d, variant, rng) for d in x])
        acc = float((probs.argmax(1) == y).mean())
        rows.append({"variant": variant, "accuracy": acc})
        print(f"{variant}: {acc:.4f}", file=sys.stderr, flush=True)
    numbers = []
    for name, gap in GAPS.items():
        rng = np.random.default_rng(1)
        right = 0
        for _ in range(args.numbers):
            idx = rng.integers(0, len(y), 4)
            try:
                text = reader.read_number(number_page(list(x[idx]), gap)).text
            except Exception:  # the reader's one-line error: a miss
                text = ""
            right += text == "".join(map(str, y[idx]))
        numbers.append({"variant": name, "accuracy": right / args.numbers})
        print(f"{name}: {right}/{args.numbers}", file=sys.stderr, flush=True)
    # "unsure": real digits (test digits as photos) against 1,000 clothes
    if args.fashion_dir:
        os.environ["FASHION_MNIST_DATA_DIR"] = args.fashion_dir
    try:
        fashion = load_fashion("test", limit=1000)[..., 0]
    except data.DataError as err:
        sys.exit(f"real_world: {err}")
    rng = np.random.default_rng(2)
    sets = {
        "MNIST test as photos": read_all(
            reader, [render(d, "ink on paper", rng) for d in x[:1000]]
        ),
        "Fashion-MNIST as photos": read_all(
            reader, [render(d, "ink on paper", rng) for d in fashion]
        ),
    }
    labels = {"MNIST test as photos": y[:1000]}
    unsure = unsure_rates(sets, labels)
    from mnist_cnn.reading.results import MIN_CONFIDENCE

    report = {
        "command": " ".join(["python benchmarks/real_world.py", *sys.argv[1:]]),
        "model": args.model or "packaged reader",
        "digits": len(y),
        "results": rows,
        "numbers": numbers,
        "unsure": unsure,
        "default_min_confidence": MIN_CONFIDENCE,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("results", "numbers")}))
    print("| input | accuracy |\n| --- | --- |")
    for r in rows + numbers:
        print(f"| {r['variant']} | {100 * r['accuracy']:.2f}% |")
    names = [k for k in unsure[0] if k != "threshold"]
    print("\n| threshold | " + " | ".join(names) + " |\n|" + " --- |" * (len(names) + 1))
    for r in unsure:
        print(f"| {r['threshold']} | " + " | ".join(f"{100 * r[k]:.1f}%" for k in names) + " |")


if __name__ == "__main__":
    main()
