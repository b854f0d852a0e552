"""Numbers as people write them: decimal points, commas and minus signs, in phone-style photos.

    python benchmarks/as_written.py [--count 20] [--source mnist|writers|both] [--out F]

Each photo holds one number written in a row, composed as `benchmarks/photos.py` composes its
photos (the same conditions, digits training never sees: MNIST *test* digits or the held-out
stroke styles), with the marks drawn by several pens: a decimal point (a round dot, a blot or a
short tick, one to two strokes wide), a comma (a dot with a tail, or a tail alone, reaching
below the baseline), a minus sign (a short bar, a little tilted, at mid-height). Four kinds of
number, `--count` of each per condition and source: plain (2-5 digits; half of them with
specks of dirt beside the digits, the size of a pen's grain), decimal (`12.5`), comma (`3,14`),
negative (`-47`, `-3.5`). Each photo is read as `mnist-cnn predict --number` reads it (the packaged
reader, its threshold); scores per kind: the exact text, the value, the marks found and missed, and
false marks (a mark reported that was not written). Then `--pages` pages of numbers on lines
under each condition (a column of 2-10 numbers, or a table of 2-5 lines of 2-3), read as
`predict --numbers` reads them: lines found with the right count of numbers, numbers read exactly,
columns and pages whose CSV is exactly what was written. Prints a table and writes JSON.
"""

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).parent))
import photos  # the photo conditions, shared

KINDS = ("plain", "decimal", "comma", "negative")
DOUBT = 0.9  # a decimal mark read with less confidence is counted as doubtful
CONDITIONS = tuple(c for c in photos.CONDITIONS if c != "form boxes")  # one digit a box


def stroke_width(inks: list[np.ndarray]) -> float:
    """The digits' pen width, px: a stroke's area over half its outline."""
    widths = []
    for ink in inks:
        mask = ink > 0.5
        inner = np.zeros_like(mask)
        inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1]
        inner[1:-1, 1:-1] &= mask[1:-1, :-2] & mask[1:-1, 2:]
        widths.append(2 * mask.sum() / max((mask & ~inner).sum(), 1))
    return float(np.median(widths))


def _canvas(w: int, h: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("L", (max(2, w), max(2, h)), 0)
    return img, ImageDraw.Draw(img)


def _mask(img: Image.Image) -> np.ndarray:
    return photos._tight(np.asarray(img, np.float32) / 255)


def mark_ink(kind: str, height: int, pen: float, rng) -> tuple[np.ndarray, float]:
    """A mark as an ink mask 0-1 and its drop below the baseline (share of the height)."""
    pen = max(2.0, pen)
    if kind == ".":
        style = rng.choice(["dot", "blot", "tick"])
        d = pen * (rng.uniform(1.0, 1.4) if style == "dot" else rng.uniform(1.4, 2.0))
        img, draw = _canvas(int(3 * d), int(3 * d))
        if style == "tick":
            a = rng.uniform(0.3, 1.2)
            draw.line([(d, 2 * d), (d + d * np.cos(a), 2 * d - d * np.sin(a))], 255, round(pen))
        else:
            draw.ellipse([d, d, d + d * rng.uniform(0.85, 1.15), 2 * d], fill=255)
        return _mask(img), rng.uniform(-0.04, 0.04)
    if kind == ",":
        tall = height * rng.uniform(0.22, 0.4)
        img, draw = _canvas(int(tall + 4 * pen), int(tall + 4 * pen))
        x, y = 2 * pen + tall * 0.4, 2 * pen
        if rng.random() < 0.6:  # a dot with a tail
            draw.ellipse([x - pen * 0.7, y, x + pen * 0.7, y + 1.4 * pen], fill=255)
        tip = (x - tall * rng.uniform(0.15, 0.4), y + tall)
        draw.line(
            [(x + pen * 0.4, y + pen), ((x + tip[0]) / 2 + pen * 0.3, y + tall * 0.6), tip],
            255,
            round(pen),
            joint="curve",
        )
        return _mask(img), rng.uniform(0.12, 0.28)
    if kind == "-":
        w = height * rng.uniform(0.3, 0.7)
        img, draw = _canvas(int(w + 4 * pen), int(w + 4 * pen))
        tilt = np.tan(np.radians(rng.uniform(-7, 7))) * w
        y = (w + 4 * pen) / 2
        draw.line([(2 * pen, y + tilt / 2), (2 * pen + w, y - tilt / 2)], 255, round(pen * 1.1))
        ink = _mask(img)
        return ink, -rng.uniform(0.38, 0.55) + ink.shape[0] / (2 * height)
    raise ValueError(kind)


def written(kind: str, rng) -> str:
    """A number of `kind` as text: plain 472, decimal 12.5, comma 3,14, negative -47 / -3.5."""
    digits = lambda n: "".join(str(v) for v in rng.integers(0, 10, n))  # noqa: E731
    if kind == "plain":
        return digits(int(rng.integers(2, 6)))
    if kind in ("decimal", "comma"):
        mark = "." if kind == "decimal" else ","
        return digits(int(rng.integers(1, 4))) + mark + digits(int(rng.integers(1, 3)))
    body = digits(int(rng.integers(1, 4)))
    return "-" + (body if rng.random() < 0.6 else body + "." + digits(1))


def dirt(inks: list, drops: list, pen: float, rng) -> tuple[list, list]:
    """Specks of dirt between and around the digits: grains under half a pen wide."""
    inks, drops = list(inks), list(drops)
    for _ in range(int(rng.integers(1, 4))):
        d = max(1.0, pen * rng.uniform(0.2, 0.5))
        img, draw = _canvas(int(3 * d) + 2, int(3 * d) + 2)
        draw.ellipse([d, d, 2 * d, 2 * d], fill=int(rng.integers(120, 256)))
        at = int(rng.integers(0, len(inks) + 1))
        inks.insert(at, _mask(img))
        drops.insert(at, -rng.uniform(0.0, 0.9))
    return inks, drops


def photo_of(text: str, make, condition: str, rng, specks: bool) -> bytes:
    """The JPEG of `text` written under `condition`, digits from `make`."""
    height = int(rng.integers(60, 150))
    inks, drops = number_inks(text, make, height, rng)
    if specks:
        inks, drops = dirt(inks, drops, stroke_width(inks[:1]), rng)
    return photos.compose(inks, condition, rng, drops)


def page_ink(rows: list[list[str]], make, rng) -> np.ndarray:
    """One ink mask 0-1 of numbers on lines (`rows`: the text of each number of each line),
    the numbers of a line in columns a few digits apart, the lines 1.5-2.2 heights apart."""
    height = int(rng.integers(50, 90))
    columns = max(len(r) for r in rows)
    width = [max(len(r[c]) if c < len(r) else 0 for r in rows) for c in range(columns)]
    left = np.cumsum([0] + [int((w * 0.9 + rng.uniform(1.5, 3)) * height) for w in width])
    pitch = int(height * rng.uniform(1.5, 2.2))
    page = np.zeros((pitch * len(rows) + 3 * height, int(left[-1]) + 3 * height), np.float32)
    for k, row in enumerate(rows):
        for c, text in enumerate(row):
            inks, drops = number_inks(text, make, height, rng)
            x = int(left[c])
            base = pitch * k + 2 * height + int(rng.integers(-height // 10, height // 10 + 1))
            for ink, drop in zip(inks, drops, strict=True):
                y = base - ink.shape[0] + round(drop * height)
                area = page[y : y + ink.shape[0], x : x + ink.shape[1]]
                np.maximum(area, ink[: area.shape[0], : area.shape[1]], out=area)
                x += ink.shape[1] + int(rng.uniform(0.08, 0.4) * height)
    return photos._tight(page)


def number_inks(text: str, make, height: int, rng) -> tuple[list, list]:
    """The ink masks of `text`'s digits and marks, and each one's drop below the baseline."""
    numerals = [int(c) for c in text if c.isdigit()]
    digit_inks = make(numerals)[1](height)
    pen = stroke_width(digit_inks)
    inks, drops, k = [], [], 0
    for c in text:
        if c.isdigit():
            inks.append(digit_inks[k])
            drops.append(0.0)
            k += 1
        else:
            ink, drop = mark_ink(c, height, pen, rng)
            inks.append(ink)
            drops.append(drop)
    return inks, drops


def digit_source(source: str, rng):
    """make(labels) -> (labels, ink maker), from MNIST test digits or the held-out writers."""
    if source == "mnist":
        from mnist_cnn import data

        ds = data.load(val_size=0)
        x, y = ds.x_test[..., 0], ds.y_test
        by = [np.flatnonzero(y == d) for d in range(10)]

        def make(labels):
            idx = np.array([rng.choice(by[d]) for d in labels])
            return labels, lambda h: photos.mnist_inks(x[idx], h)

        return make
    return lambda labels: (labels, lambda h: photos.writer_inks(labels, h, rng))


def score(rows: list[dict]) -> dict:
    """Exact text, value, marks found / missed / false, over the rows of one kind."""
    marks = sum(sum(c in ".,-" for c in r["truth"]) for r in rows)
    found = missed = false = 0
    for r in rows:
        truth = [c for c in r["truth"] if c in ".,-"]
        said = [c for c in r["read"] if c in ".,-"]
        hits = sum(min(truth.count(c), said.count(c)) for c in ".,-")
        found, missed, false = found + hits, missed + len(truth) - hits, false + len(said) - hits
    n = max(len(rows), 1)
    by_digits = _tally((str(len(_digits(r["truth"]))), 1, r["read"] == r["truth"]) for r in rows)
    return {
        "numbers": len(rows),
        "exact": sum(r["read"] == r["truth"] for r in rows) / n,
        "by_digits": by_digits,
        "digits_exact": sum(_digits(r["read"]) == _digits(r["truth"]) for r in rows) / n,
        "value_exact": sum(_same_value(r) for r in rows) / n,
        "marks_written": marks,
        "marks_found": found,
        "marks_missed": missed,
        "false_marks": false,
        "numbers_without_false_marks": sum(_false(r) == 0 for r in rows) / n,
        **_doubt(rows),
    }


def _doubt(rows: list[dict]) -> dict:
    """How well a decimal mark's confidence tells a right kind from a wrong one: of the
    numbers with one decimal mark written and one read, those read with confidence under
    DOUBT and at least DOUBT, and how many of each were the kind written."""
    out = dict.fromkeys(("doubtful_marks", "doubtful_right", "sure_marks", "sure_right"), 0)
    for r in rows:
        truth = [c for c in r["truth"] if c in ".,"]
        read = [c for c in r["read"] if c in ".,"]
        if len(truth) == len(read) == len(r["sure"]) == 1:
            key = "doubtful" if r["sure"][0] < DOUBT else "sure"
            out[f"{key}_marks"] += 1
            out[f"{key}_right"] += read == truth
    return out


def _same_value(row: dict) -> bool:
    """The value read is the value written (a point read as a comma before one or two
    digits still gives it: the default reading of a comma)."""
    from mnist_cnn.reading.layout import value

    read = value(row["read"])
    return read is not None and read == value(row["truth"])


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit() or c == "?")


def _false(row: dict) -> int:
    said = [c for c in row["read"] if c in ".,-"]
    truth = [c for c in row["truth"] if c in ".,-"]
    return sum(max(0, said.count(c) - truth.count(c)) for c in ".,-")


def run(condition: str, make, count: int, reader, rng, kinds=KINDS) -> dict:
    from mnist_cnn.errors import ImageError

    out, seconds = {}, []
    for kind in KINDS:
        rows = []
        for i in range(count):
            text = written(kind, rng)
            jpeg = photo_of(text, make, condition, rng, specks=kind == "plain" and i % 2 == 1)
            if kind not in kinds:  # composed all the same: the others see the same photos
                continue
            start = time.perf_counter()
            try:
                number = reader.read_number(jpeg)
                read, sure = number.text, [m.confidence for m in number.marks if m.kind in ".,"]
            except ImageError:
                read, sure = "", []
            seconds.append(time.perf_counter() - start)
            rows.append({"truth": text, "read": read.replace(" ", ""), "sure": sure})
        if kind not in kinds:
            continue
        misread = [{k: r[k] for k in ("truth", "read")} for r in rows if r["read"] != r["truth"]]
        out[kind] = score(rows) | {"misread": misread[:8]}
    out["ms_median"] = round(1000 * float(np.median(seconds)), 1)
    return out


def written_page(rng) -> list[list[str]]:
    """A column of 2-10 numbers, or (one page in three) a table of 2-5 lines of 2-3."""
    kind = lambda: str(rng.choice(KINDS, p=[0.4, 0.2, 0.2, 0.2]))  # noqa: E731
    if rng.random() < 2 / 3:
        return [[written(kind(), rng)] for _ in range(int(rng.integers(2, 11)))]
    columns = int(rng.integers(2, 4))
    return [[written(kind(), rng) for _ in range(columns)] for _ in range(int(rng.integers(2, 6)))]


def run_pages(condition: str, make, count: int, reader, rng) -> dict:
    """Pages of numbers on lines: lines found with the right count of numbers, numbers read
    exactly, pages whose CSV (`Page.table`) is exactly what was written."""
    from mnist_cnn.errors import ImageError

    lines = right_lines = numbers = exact = pages_exact = columns = columns_exact = 0
    misread, seconds = [], []
    for _ in range(count):
        truth = written_page(rng)
        jpeg = photos.compose([page_ink(truth, make, rng)], condition, rng)
        start = time.perf_counter()
        try:
            page = reader.read_numbers(jpeg)
            table = [[c.replace(" ", "") for c in row] for row in page.table()]
            found = [[n.text.replace(" ", "") for n in line] for line in page.lines]
        except ImageError:
            table, found = [], []
        seconds.append(time.perf_counter() - start)
        lines += len(truth)
        right_lines += sum(len(a) == len(b) for a, b in zip(truth, found, strict=False))
        for a, b in zip(truth, found, strict=False):
            numbers += len(a)
            exact += sum(x == y for x, y in zip(a, b, strict=False))
        numbers += sum(len(a) for a in truth[len(found) :])
        pages_exact += table == truth
        if len(truth[0]) == 1:
            columns += 1
            columns_exact += table == truth
        if table != truth and len(misread) < 6:
            misread.append({"truth": truth, "read": table})
    return {
        "pages": count,
        "lines_right_count": right_lines / max(lines, 1),
        "numbers_exact": exact / max(numbers, 1),
        "pages_exact": pages_exact / max(count, 1),
        "columns": columns,
        "columns_exact": columns_exact / max(columns, 1),
        "ms_median": round(1000 * float(np.median(seconds)), 1),
        "misread": misread,
    }


def main() -> None:
    from mnist_cnn import engines
    from mnist_cnn.reading import predictor

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="a reader, or a classifier (default: the packaged reader)")
    p.add_argument("--engine", default="auto", choices=engines.ENGINES)
    p.add_argument("--count", type=int, default=20, help="numbers per kind, condition, source")
    p.add_argument("--source", default="both", choices=["mnist", "writers", "both"])
    p.add_argument("--conditions", nargs="*", default=list(CONDITIONS), metavar="C")
    p.add_argument("--pages", type=int, default=10, help="pages of numbers per condition")
    p.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS, help="(all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/as-written.json")
    args = p.parse_args()
    reader = predictor.reader_for(args.model, args.engine, threads=1)
    t = reader.min_confidence
    report = {"date": str(date.today()), "model": args.model or "packaged", "threshold": t}
    report |= {"count": args.count, "seed": args.seed, "results": {}}
    sources = ["mnist", "writers"] if args.source == "both" else [args.source]
    kinds = [k for k in KINDS if k in args.kinds]
    head = "".join(f"{k:>10}" for k in kinds)
    head += f" {'marks found':>12} {'false':>6} {'lines':>8} {'columns':>8} {'pages':>8}"
    print(f"{'condition':22} {'source':8}{head}")
    for source in sources:
        for condition in args.conditions:
            rng = np.random.default_rng(
                [args.seed, photos.CONDITIONS.index(condition), len(source)]
            )
            make = digit_source(source, rng)
            row = run(condition, make, args.count, reader, rng, kinds)
            if args.pages:
                row["pages"] = run_pages(condition, make, args.pages, reader, rng)
            report["results"][f"{condition} / {source}"] = row
            written_ = sum(row[k]["marks_written"] for k in kinds)
            found = sum(row[k]["marks_found"] for k in kinds)
            false = sum(row[k]["false_marks"] for k in kinds)
            cells = "".join(f"{row[k]['exact']:10.1%}" for k in kinds)
            cells += f" {found:5}/{written_:<6} {false:6}"
            if args.pages:
                pages = row["pages"]
                cells += f" {pages['lines_right_count']:8.1%}"
                cells += f" {pages['columns_exact']:8.1%} {pages['pages_exact']:8.1%}"
            print(f"{condition:22} {source:8}{cells}", flush=True)
    totals = {k: score_all(report, k) for k in kinds}
    for k in kinds:
        like = plain_like(totals, k) if k != "plain" else None
        if like is not None:
            totals[k]["plain_same_lengths_exact"] = like
    report["totals"] = totals
    print("all:", {k: f"{v['exact']:.1%}" for k, v in totals.items()})
    print(
        "plain numbers of the same lengths:",
        {
            k: f"{v['plain_same_lengths_exact']:.1%}"
            for k, v in totals.items()
            if "plain_same_lengths_exact" in v
        },
    )
    for k in ("decimal", "comma"):
        if k in totals:
            v = totals[k]
            print(
                f"{k} marks under {DOUBT} confidence: {v['doubtful_right']} of "
                f"{v['doubtful_marks']} the kind written; the others {v['sure_right']} of "
                f"{v['sure_marks']}"
            )
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


def score_all(report: dict, kind: str) -> dict:
    rows = [r[kind] for r in report["results"].values()]
    n = sum(r["numbers"] for r in rows)
    keys = ("exact", "digits_exact", "value_exact", "numbers_without_false_marks")
    total = {k: sum(r[k] * r["numbers"] for r in rows) / max(n, 1) for k in keys}
    counts = ("marks_written", "marks_found", "marks_missed", "false_marks")
    counts += ("doubtful_marks", "doubtful_right", "sure_marks", "sure_right")
    by_digits = _tally((k, *v) for r in rows for k, v in r["by_digits"].items())
    counted = {k: sum(r[k] for r in rows) for k in counts}
    return {"numbers": n, **total, **counted, "by_digits": by_digits}


def _tally(counts) -> dict[str, list[int]]:
    """(digits written, numbers, read exactly) summed by digits written."""
    out: dict[str, list[int]] = {}
    for length, numbers, exact in counts:
        tally = out.setdefault(length, [0, 0])
        tally[0], tally[1] = tally[0] + numbers, tally[1] + int(exact)
    return dict(sorted(out.items()))


def plain_like(totals: dict, kind: str) -> float | None:
    """How often plain numbers are read exactly, weighted to `kind`'s lengths (as many digits
    as its numbers have): the goal compares with plain numbers of the same length."""
    plain, own = totals.get("plain", {}).get("by_digits", {}), totals[kind]["by_digits"]
    shared = [n for n in own if plain.get(n, [0])[0]]
    if not shared:
        return None
    weight = sum(own[n][0] for n in shared)
    return sum(own[n][0] * plain[n][1] / plain[n][0] for n in shared) / weight


if __name__ == "__main__":
    main()
