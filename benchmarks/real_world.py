"""How a model reads MNIST test digits dressed up as photos and scans, through `predict`.

    python benchmarks/real_world.py --model runs/s1 [--count 2000] [--out real_world.json]

Each test digit is rendered large on a bigger page, the way a user's picture arrives: dark ink
on light paper at a random place, white on black, thicker and thinner pens, blurred, and on
noisy grey paper saved as JPEG. Every variant then goes through `predict.normalise` (the same
path as `mnist-cnn predict`) and the model. Then 4-digit numbers made of test digits, apart,
close and touching, are read as `predict --number` reads them; a number counts only when all
four digits are right. Prints a table and writes JSON: accuracy per variant against the
model's accuracy on the raw 28x28 digits.
"""

import argparse
import io
import json
import sys
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

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
    "noisy grey paper, JPEG",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help=".keras file, run folder, .onnx or .tflite")
    p.add_argument("--count", type=int, default=2000, help="test digits per variant (2000)")
    p.add_argument("--numbers", type=int, default=200, help="4-digit numbers per spacing (200)")
    p.add_argument("--out", default="real_world.json")
    args = p.parse_args()

    from mnist_cnn import data, predict

    ds = data.load(val_size=0, test_limit=args.count)
    x, y = ds.x_test[..., 0], ds.y_test
    classify = predict.classifier(args.model)
    rows = [
        {
            "variant": "raw MNIST 28x28",
            "accuracy": float((classify(x[..., None]).argmax(1) == y).mean()),
        }
    ]
    for variant in VARIANTS:
        rng = np.random.default_rng(0)
        seen = np.stack([predict.normalise(render(d, variant, rng)) for d in x])
        acc = float((classify(seen[..., None]).argmax(1) == y).mean())
        rows.append({"variant": variant, "accuracy": acc})
        print(f"{variant}: {acc:.4f}", file=sys.stderr, flush=True)
    numbers = []
    for name, gap in GAPS.items():
        rng = np.random.default_rng(1)
        right = 0
        for _ in range(args.numbers):
            idx = rng.integers(0, len(y), 4)
            text, _ = predict.read_number(number_page(list(x[idx]), gap), classify)
            right += text == "".join(map(str, y[idx]))
        numbers.append({"variant": name, "accuracy": right / args.numbers})
        print(f"{name}: {right}/{args.numbers}", file=sys.stderr, flush=True)
    report = {
        "date": date.today().isoformat(),
        "model": args.model,
        "digits": len(y),
        "results": rows,
        "numbers": numbers,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("results", "numbers")}))
    print("| input | accuracy |\n| --- | --- |")
    for r in rows + numbers:
        print(f"| {r['variant']} | {100 * r['accuracy']:.2f}% |")


if __name__ == "__main__":
    main()
