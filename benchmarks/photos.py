"""Phone-style photos of handwritten numbers, and how well `predict` reads them.

    python benchmarks/photos.py [--count 100] [--source mnist|writers|both] [--out F]
    python benchmarks/photos.py --folder my-photos/      # your own photos: 0472.jpg, 12_a.png

Each photo is composed from digits training never sees (MNIST *test* digits, or digits of the
held-out synthetic writers), written in a row on a sheet under one condition: plain white paper,
uneven light, lined or squared paper, printed form boxes, pencil, a hard-edged shadow, the sheet
lying on a table, a tilted camera, motion blur, dim light, a sticky note, marker on a
whiteboard, a chequered tablecloth. The photo is saved as a JPEG and read back as
`mnist-cnn predict --number` reads it (`Reader.read_number`; and, one digit per photo, as plain
`predict` reads a file, `Reader.read_digit`). This generator is not the one the reader learns
from (`reading/pages.py`): its photos are new to the reader. Scores per condition: numbers
read (every digit right, none unsure), right count of digits, per-digit top-1 (digits of
numbers with the right count), unsure share; for single digits, digits read (right and not
unsure). Prints a table and writes JSON.

With --folder, each image's label is the leading digits of its file name (`0472-kitchen.jpg`
is 0472); the same scores are given for that folder alone.
"""

import argparse
import io
import itertools
import json
import re
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CONDITIONS = (
    "white paper",
    "uneven light",
    "lined paper",
    "squared paper",
    "form boxes",
    "pencil",
    "shadow",
    "on a table",
    "tilted camera",
    "motion blur",
    "dim light",
    "sticky note",
    "whiteboard marker",
    "chequered tablecloth",
)
INKS = {"black": (25, 25, 30), "blue": (25, 45, 150), "red": (170, 25, 30)}


# ---------------------------------------------------------------- the digits


def mnist_inks(images: np.ndarray, height: int) -> list[np.ndarray]:
    """MNIST digits (white on black, 28x28) as ink masks 0-1 whose ink is `height` px tall."""
    out = []
    for image in images:
        rows = np.flatnonzero(image.max(1) > 0)
        tall = max(1, rows[-1] - rows[0] + 1) if len(rows) else 20
        side = max(8, round(28 * height / tall))
        big = Image.fromarray(image.astype(np.uint8)).resize((side, side), Image.BICUBIC)
        ink = np.asarray(big, np.float32) / 255
        out.append(_tight(np.clip(ink, 0, 1)))
    return out


def _tight(ink: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(ink.max(1) > 0.1), np.flatnonzero(ink.max(0) > 0.1)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def writer_inks(labels: list[int], height: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Digits of the held-out stroke styles (no font needed): ink masks 0-1."""
    from mnist_cnn import synth

    inks = []
    for d in labels:
        styles = [s for s in synth.HELD_OUT_STYLES if s.startswith(f"{d}-")]
        styles += [s for s in synth.STYLES if s.startswith(f"{d}-")]
        ink = synth.draw_style(styles[int(rng.integers(len(styles)))], rng, height)
        inks.append(_tight(ink / max(float(ink.max()), 1.0)))
    return inks


# ---------------------------------------------------------------- the sheet


def _paper(shape: tuple[int, int], rng: np.random.Generator, tint=None) -> np.ndarray:
    base = np.array(tint if tint is not None else rng.uniform(225, 250, 3), np.float32)
    grain = rng.normal(0, 3, (shape[0], shape[1], 1)).astype(np.float32)
    return np.clip(base + grain, 0, 255)


def _rule(sheet: np.ndarray, condition: str, rows: tuple[int, int], rng) -> None:
    """Printed lines: ruled lines (one under the digits), a grid, or nothing."""
    img = Image.fromarray(sheet.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    h, w = sheet.shape[:2]
    colour = tuple(int(c) for c in rng.choice([[120, 150, 210], [150, 150, 160], [90, 130, 200]]))
    width = int(rng.integers(1, 4))
    if condition == "lined paper":
        gap = round((rows[1] - rows[0]) * rng.uniform(1.1, 1.5))
        for y in range((rows[1] + int(rng.integers(-4, 8))) % gap, h, gap):
            draw.line([(0, y), (w, y)], fill=colour, width=width)
        x = int(w * rng.uniform(0.05, 0.12))
        draw.line([(x, 0), (x, h)], fill=(200, 60, 60), width=width)
    elif condition == "squared paper":
        gap = round((rows[1] - rows[0]) * rng.uniform(0.35, 0.6))
        off = int(rng.integers(0, gap))
        for y in range(off, h, gap):
            draw.line([(0, y), (w, y)], fill=colour, width=max(1, width - 1))
        for x in range(off, w, gap):
            draw.line([(x, 0), (x, h)], fill=colour, width=max(1, width - 1))
    sheet[:] = np.asarray(img, np.float32)


def _boxes(sheet: np.ndarray, places: list[tuple[int, int, int, int]], rng) -> None:
    """A printed form: one box round each digit, boxes side by side."""
    img = Image.fromarray(sheet.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    top = min(p[1] for p in places)
    bottom = max(p[1] + p[3] for p in places)
    pad = round((bottom - top) * rng.uniform(0.12, 0.3))
    colour = tuple(int(c) for c in rng.choice([[40, 40, 40], [110, 110, 120], [60, 90, 170]]))
    width = int(rng.integers(1, 4))
    edges = [places[0][0] - pad]
    for (x0, _, w0, _), (x1, _, _, _) in itertools.pairwise(places):
        edges.append((x0 + w0 + x1) // 2)
    edges.append(places[-1][0] + places[-1][2] + pad)
    for a, b in itertools.pairwise(edges):
        draw.rectangle([a, top - pad, b, bottom + pad], outline=colour, width=width)
    sheet[:] = np.asarray(img, np.float32)


def _layout(
    inks: list[np.ndarray], sheet_hw: tuple[int, int], rng, boxed: bool, drops=None
) -> list:
    """Where each digit goes on the sheet: (x, y, w, h), a row roughly in the middle; each
    ink's bottom on the baseline, or `drops[i]` of the row's height below it (a comma's
    tail; a minus sign rises: a negative drop)."""
    h = max(i.shape[0] for i in inks)
    gaps = [int(rng.uniform(0.25, 0.6) * h) if boxed else int(rng.uniform(0.08, 0.45) * h)]
    gaps = gaps * len(inks)
    total = sum(i.shape[1] for i in inks) + sum(gaps[:-1])
    x = int((sheet_hw[1] - total) * rng.uniform(0.3, 0.7))
    y0 = int((sheet_hw[0] - h) * rng.uniform(0.35, 0.65))
    places = []
    for k, (ink, gap) in enumerate(zip(inks, gaps, strict=True)):
        y = y0 + (h - ink.shape[0]) + int(rng.integers(-h // 12, h // 12 + 1))
        y += round((drops[k] if drops else 0) * h)
        places.append((x, y, ink.shape[1], ink.shape[0]))
        x += ink.shape[1] + gap
    return places


def _write(sheet: np.ndarray, inks, places, colour, pencil: bool, rng) -> None:
    """Ink laid on the sheet (multiplied, as ink on paper); pencil is grey and grainy."""
    for ink, (x, y, w, h) in zip(inks, places, strict=True):
        a = ink[..., None]
        if pencil:
            a = a * rng.uniform(0.35, 0.6) * np.clip(rng.normal(1, 0.25, a.shape), 0.3, 1.4)
        area = sheet[y : y + h, x : x + w]
        area[:] = area * (1 - a) + np.asarray(colour, np.float32) * a


# ---------------------------------------------------------------- light and camera


def _light(img: np.ndarray, condition: str, rng) -> np.ndarray:
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if condition in ("uneven light", "dim light", "whiteboard marker"):
        a, b = rng.uniform(-1, 1, 2)
        ramp = (a * xx / w + b * yy / h) - min(0, a) - min(0, b)
        light = 1 - rng.uniform(0.25, 0.45) * ramp / max(ramp.max(), 1e-6)
        if condition == "dim light":
            light = light * rng.uniform(0.3, 0.45)
        img = img * light[..., None]
    if condition == "whiteboard marker":  # a glare spot
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.15, 0.3) * w
        glare = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
        img = img + 80 * glare[..., None]
    if condition == "shadow":
        img = img * _shadow(h, w, rng)[..., None]
    return img


def _shadow(h: int, w: int, rng) -> np.ndarray:
    """A hard-edged shadow (a phone or a hand) over part of the page: a polygon, edge blurred
    by a few pixels."""
    side = int(rng.integers(4))
    t = rng.uniform(0.2, 0.8, 2)
    pts = {
        0: [(0, t[0] * h), (w, t[1] * h), (w, h), (0, h)],
        1: [(t[0] * w, 0), (t[1] * w, h), (w, h), (w, 0)],
        2: [(0, 0), (t[0] * w, 0), (t[1] * w * 0.6, h), (0, h)],
        3: [(0, t[0] * h), (t[1] * w, 0), (w, 0), (w, h * 0.3), (t[1] * w * 0.5, h)],
    }[side]
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).polygon(pts, fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 3)))
    return 1 - rng.uniform(0.35, 0.55) * np.asarray(mask, np.float32) / 255


def _table(shape: tuple[int, int], rng, chequered: bool) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if chequered:
        cell = rng.uniform(30, 70)
        on = ((xx // cell + yy // cell) % 2).astype(bool)
        a = np.array(rng.choice([[200, 40, 40], [40, 70, 160], [40, 120, 60]]), np.float32)
        table = np.where(on[..., None], a, np.array([235, 235, 230], np.float32))
    else:
        base = np.array(rng.choice([[120, 80, 50], [90, 60, 40], [70, 70, 75], [150, 110, 70]]))
        grain = np.sin(yy / rng.uniform(3, 9) + 2 * np.sin(xx / rng.uniform(40, 120)))
        table = base * (0.85 + 0.15 * grain[..., None])
    return np.clip(table + rng.normal(0, 4, (h, w, 1)), 0, 255).astype(np.float32)


def _on_table(sheet: np.ndarray, out_hw: tuple[int, int], rng, chequered: bool) -> np.ndarray:
    """The sheet lying on a table, photographed from above and a little aside."""
    import cv2

    h, w = out_hw
    sh, sw = sheet.shape[:2]
    cover = rng.uniform(0.55, 0.8)
    scale = min(cover * w / sw, cover * h / sh)
    cx, cy = w / 2 + rng.uniform(-0.08, 0.08) * w, h / 2 + rng.uniform(-0.08, 0.08) * h
    hw, hh = sw * scale / 2, sh * scale / 2
    corners = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
    theta = np.radians(rng.uniform(-12, 12))
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    corners = corners @ rot.T + [cx, cy] + rng.normal(0, 0.025 * w, (4, 2))
    src = np.float32([[0, 0], [sw, 0], [sw, sh], [0, sh]])
    m = cv2.getPerspectiveTransform(src, np.float32(corners))
    flat = cv2.warpPerspective(sheet, m, (w, h), flags=cv2.INTER_LINEAR)
    cover_mask = cv2.warpPerspective(np.ones((sh, sw), np.float32), m, (w, h))[..., None]
    table = _table(out_hw, rng, chequered)
    return table * (1 - cover_mask) + flat * cover_mask


def _tilt(img: np.ndarray, rng) -> np.ndarray:
    """A camera not square to the page: a keystone, the sheet still filling the frame."""
    import cv2

    h, w = img.shape[:2]
    d = rng.uniform(0.06, 0.14) * w
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + np.float32([[d, 0], [-d, 0], [0, 0], [0, 0]]) * float(rng.choice([1, -1]))
    dst = (dst + rng.normal(0, 0.01 * w, (4, 2))).astype(np.float32)
    m = cv2.getPerspectiveTransform(dst, src)  # what the camera sees: the page stretched out
    return cv2.warpPerspective(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def _camera(img: np.ndarray, condition: str, rng) -> bytes:
    """Blur, sensor noise (more in the dark) and JPEG, as a phone saves it."""
    import cv2

    if condition == "motion blur":
        k = int(rng.integers(9, 17))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1 / k
        rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1)
        kernel = cv2.warpAffine(kernel, rot, (k, k))
        img = cv2.filter2D(img, -1, kernel / kernel.sum())
    else:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.2))
    noise = 9 if condition == "dim light" else 3
    img = img + rng.normal(0, noise, (*img.shape[:2], 1))
    buf = io.BytesIO()
    quality = int(rng.integers(70, 92))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# ---------------------------------------------------------------- one photo


def compose(inks: list[np.ndarray], condition: str, rng: np.random.Generator, drops=None) -> bytes:
    """A JPEG photo of the digits (ink masks 0-1, in order) written under `condition`;
    `drops` as for `_layout`."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; one of {CONDITIONS}")
    sticky = condition == "sticky note"
    table = condition in ("on a table", "chequered tablecloth")
    out_hw = (768, 1024)
    sheet_hw = (int(out_hw[0] * 0.75), int(out_hw[1] * 0.75)) if table else out_hw
    if sticky:
        sheet_hw = (int(rng.integers(330, 420)),) * 2
    fit = min(0.8 * sheet_hw[1] / sum(i.shape[1] * 1.4 for i in inks), 1.0)
    fit = min(fit, 0.5 * sheet_hw[0] / max(i.shape[0] for i in inks))
    tall = max(i.shape[0] for i in inks)  # the widest the row can be, its gaps at most 0.45 h
    fit = min(fit, 0.95 * sheet_hw[1] / (sum(i.shape[1] for i in inks) + 0.45 * tall * len(inks)))
    inks = [_resize(i, fit) for i in inks] if fit < 1 else inks
    tint = rng.choice([[250, 235, 120], [250, 190, 200], [170, 230, 250]]) if sticky else None
    if condition == "whiteboard marker":
        tint = [238, 240, 242]
        size = 3 + 2 * int(rng.integers(1, 3))  # one marker: every stroke and dot as wide
        inks = [_thicken(i, size) for i in inks]
    sheet = _paper(sheet_hw, rng, tint)
    places = _layout(inks, sheet_hw, rng, condition == "form boxes", drops)
    rows = (min(p[1] for p in places), max(p[1] + p[3] for p in places))
    _rule(sheet, condition, rows, rng)
    if condition == "form boxes":
        _boxes(sheet, places, rng)
    pencil = condition == "pencil"
    colour = (70, 70, 75) if pencil else INKS[str(rng.choice(list(INKS)))]
    if condition == "whiteboard marker":
        colour = INKS[str(rng.choice(["black", "blue", "red"]))]
    _write(sheet, inks, places, colour, pencil, rng)
    if table:
        img = _on_table(sheet, out_hw, rng, condition == "chequered tablecloth")
    elif sticky:
        img = _sticky_on_page(sheet, out_hw, rng)
    else:
        img = sheet
    if condition == "tilted camera":
        img = _tilt(img, rng)
    img = _light(img, condition, rng)
    return _camera(img.astype(np.float32), condition, rng)


def _resize(ink: np.ndarray, f: float) -> np.ndarray:
    h, w = ink.shape
    size = (max(2, round(w * f)), max(2, round(h * f)))
    return np.asarray(Image.fromarray(ink).resize(size, Image.BILINEAR))


def _thicken(ink: np.ndarray, size: int) -> np.ndarray:
    return (
        np.asarray(
            Image.fromarray((ink * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(size)),
            np.float32,
        )
        / 255
    )


def _sticky_on_page(note: np.ndarray, out_hw: tuple[int, int], rng) -> np.ndarray:
    """A sticky note on a desk or a white page, with a soft shadow under it."""
    import cv2

    h, w = out_hw
    bg = _table(out_hw, rng, False) if rng.random() < 0.5 else _paper(out_hw, rng)
    nh, nw = note.shape[:2]
    y, x = int(rng.integers(40, h - nh - 40)), int(rng.integers(60, w - nw - 60))
    shade = np.zeros((h, w), np.float32)
    shade[y + 6 : y + nh + 6, x + 6 : x + nw + 6] = 1
    shade = cv2.GaussianBlur(shade, (0, 0), 6)
    bg = bg * (1 - 0.3 * shade[..., None])
    bg[y : y + nh, x : x + nw] = note
    return bg


# ---------------------------------------------------------------- scoring


def read_photo(jpeg: bytes, reader, times: list | None = None) -> list:
    """The digits `predict --number` reads in the photo: (digit or None, top-1) each. `times`
    collects the seconds of reading it, every stage (decoding, paper, network, layout)."""
    from mnist_cnn.errors import ImageError

    start = time.perf_counter()
    try:
        number = reader.read_number(jpeg)
    except ImageError:
        return []
    finally:
        if times is not None:
            times.append(time.perf_counter() - start)
    return [(d.digit, d.top3[0][0]) for d in number.digits]


def read_single(jpeg: bytes, reader) -> tuple:
    """The one digit plain `predict` reads in the photo: (digit or None, top-1)."""
    from mnist_cnn.errors import ImageError

    try:
        found = reader.read_digit(jpeg)
    except ImageError:
        return (None, -1)
    return (found.digit, found.top3[0][0])


def score(truths: list[list[int]], readings: list[list]) -> dict:
    """numbers read, right count, per-digit top-1 and unsure over numbers and their digits."""
    read = count = right = unsure = total = 0
    for truth, got in zip(truths, readings, strict=True):
        total += len(truth)
        if len(got) != len(truth):
            continue
        count += 1
        right += sum(top == t for (_, top), t in zip(got, truth, strict=True))
        unsure += sum(d is None for d, _ in got)
        read += all(d == t for (d, _), t in zip(got, truth, strict=True))
    n = max(len(truths), 1)
    return {
        "numbers": len(truths),
        "numbers_read": read / n,
        "right_count": count / n,
        "digit_top1": right / max(total, 1),
        "unsure": unsure / max(total, 1),
    }


def digit_pool(source: str, count: int, rng):
    """(labels, ink maker) for `count` numbers of 2-6 digits from MNIST test or writers."""
    if source == "mnist":
        from mnist_cnn import data

        ds = data.load(val_size=0)
        x, y = ds.x_test[..., 0], ds.y_test

        def make(n: int):
            idx = rng.choice(len(y), n, replace=False)
            return [int(v) for v in y[idx]], lambda h: mnist_inks(x[idx], h)

        return make
    return lambda n: (
        labels := [int(v) for v in rng.integers(0, 10, n)],
        lambda h: writer_inks(labels, h, rng),
    )


def run_condition(condition, make, count, reader, rng) -> dict:
    truths, readings, singles, times = [], [], [], []
    for _ in range(count):
        labels, inks = make(int(rng.integers(2, 7)))
        jpeg = compose(inks(int(rng.integers(60, 150))), condition, rng)
        truths.append(labels)
        readings.append(read_photo(jpeg, reader, times))
        label1, ink1 = make(1)
        single = read_single(compose(ink1(int(rng.integers(80, 220))), condition, rng), reader)
        singles.append((label1[0], single))
    row = score(truths, readings)
    row["stage_ms_median"] = round(1000 * float(np.median(times)), 1) if times else None
    row["single_read"] = float(np.mean([d == lab for lab, (d, _) in singles]))
    row["single_top1"] = float(np.mean([top == lab for lab, (_, top) in singles]))
    return row


def score_folder(folder: Path, reader) -> dict:
    truths, readings, files = [], [], []
    for path in sorted(folder.iterdir()):
        m = re.match(r"(\d+)", path.stem)
        if not m or not path.is_file():
            continue
        truths.append([int(c) for c in m.group(1)])
        readings.append(read_photo(path.read_bytes(), reader))
        files.append(
            {
                "file": path.name,
                "read": "".join("?" if d is None else str(d) for d, _ in readings[-1]),
            }
        )
    if not truths:
        sys.exit(f"no image in {folder} is named after its number (e.g. 0472.jpg)")
    return {**score(truths, readings), "files": files}


def main() -> None:
    from mnist_cnn import engines
    from mnist_cnn.reading import predictor

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="a reader, or a classifier (default: the packaged reader)")
    p.add_argument("--engine", default="auto", choices=engines.ENGINES)
    p.add_argument("--count", type=int, default=100, help="numbers per condition and source (100)")
    p.add_argument("--source", default="both", choices=["mnist", "writers", "both"])
    p.add_argument("--conditions", nargs="*", default=list(CONDITIONS), metavar="C")
    p.add_argument("--folder", type=Path, help="score your own photos (label: the file name)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/photos.json")
    args = p.parse_args()

    import cv2

    cv2.setNumThreads(1)  # the cost goal is for one core
    reader = predictor.reader_for(args.model, args.engine, threads=1)
    t = reader.min_confidence
    if args.folder:
        print(json.dumps(score_folder(args.folder, reader), indent=1))
        return
    report = {
        "date": str(date.today()),
        "stage_ms_median": "reading a photo, every stage, one core",
        "model": args.model or "packaged",
        "threshold": t,
        "count": args.count,
        "seed": args.seed,
        "results": {},
    }
    sources = ["mnist", "writers"] if args.source == "both" else [args.source]
    print(
        f"{'condition':22} {'source':8} {'read':>6} {'count':>6} {'top1':>6} {'unsure':>6}"
        f" {'1 read':>6} {'ms':>6}"
    )
    for source in sources:
        for condition in args.conditions:
            rng = np.random.default_rng([args.seed, CONDITIONS.index(condition), len(source)])
            start = time.perf_counter()
            row = run_condition(
                condition, digit_pool(source, args.count, rng), args.count, reader, rng
            )
            row["seconds"] = round(time.perf_counter() - start, 1)
            report["results"][f"{condition} / {source}"] = row
            print(
                f"{condition:22} {source:8} {row['numbers_read']:6.1%} {row['right_count']:6.1%}"
                f" {row['digit_top1']:6.1%} {row['unsure']:6.1%} {row['single_read']:6.1%}"
                f" {row['stage_ms_median']:6.1f}",
                flush=True,
            )
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
