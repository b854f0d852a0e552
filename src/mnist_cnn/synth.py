"""Digits by writers MNIST never had: handwriting fonts and pen strokes, seen as users' pictures.

MNIST's writers rarely put a foot on a 1, a bar through a 7 or a hook on a 9, and never sent a
binarised scan. This module draws such digits two ways: every digit of a set of handwriting
fonts shipped with the package, and pen trajectories of named writing styles ("1-flag-foot",
"7-crossed", "9-hooked", ...) with jittered control points, random slant, width and pen. Each
one lands on a page as a user's picture does (dark ink on light paper, off-centre, sometimes a
low-resolution binarised scan scaled back up). `generate` makes them 28x28 MNIST digits for a
classifier (`reading.crops.from_picture`); the reader's pages draw them large
(`reading.pages`). Fonts and styles are split once, by name: the HELD_OUT ones are for
evaluation only and never reach training.

Everything is drawn from a numpy Generator, so a seed gives the same digits and labels again.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mnist_cnn.data import SIZE
from mnist_cnn.errors import MnistCnnError

FONT_DIR = Path(__file__).parent / "fonts"

# Each family is a folder of FONT_DIR holding its font files (.ttf, .otf) and its licence;
# fonts/README.md says where each came from. Outline, sketch and swash fonts (Femkeklaver, Cabin
# Sketch, Joscelyn) are left out: nobody writes so.
FONTS = (
    "comic-neue",
    "because-we-build",
    "because-we-connect",
    "because-we-create",
    "because-we-learn",
    "because-we-mentor",
    "because-we-organize",
    "dancing-script",
    "havana",
    "kaushan-script",
    "lobster",
    "breip",
    "ecolier",
    "kiloji",
    "leckerli-one",
    "seto",
    "tomson-talks",
    "yusei-magic",
    "delphine",
    "steve-hand",
    "dkg",
    "kristi",
    "rufscript",
    "klee",
    "humor-sans",
)


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float) -> list:
    """Points along an ellipse from angle a0 to a1 (degrees; y points down, so 90 is the bottom)."""
    t = np.radians(np.linspace(a0, a1, max(4, int(abs(a1 - a0) / 12))))
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t), strict=True))


# Writing styles as pen strokes in a box 1 high and about 0.6 wide (x right, y down). Each
# style is a list of strokes; each stroke a polyline (arcs are dense, corners stay sharp).
STYLES: dict[str, list[list]] = {
    "0-oval": [_arc(0.5, 0.5, 0.3, 0.48, -95, 275)],
    "0-overlap": [_arc(0.5, 0.52, 0.28, 0.46, -60, 320)],
    "0-narrow": [_arc(0.5, 0.5, 0.17, 0.49, -120, 250)],
    "1-bar": [[(0.5, 0.0), (0.5, 1.0)]],
    "1-flag": [[(0.32, 0.22), (0.52, 0.0), (0.52, 1.0)]],
    "1-flag-foot": [[(0.3, 0.2), (0.52, 0.0), (0.52, 1.0)], [(0.3, 1.0), (0.74, 1.0)]],
    "1-long-flag-foot": [[(0.18, 0.42), (0.52, 0.0), (0.52, 1.0)], [(0.24, 1.0), (0.8, 1.0)]],
    "2-plain": [[*_arc(0.5, 0.3, 0.3, 0.28, 190, 380), (0.2, 1.0), (0.82, 1.0)]],
    "2-loop": [
        [
            *_arc(0.5, 0.3, 0.3, 0.28, 190, 380),
            (0.28, 0.88),
            *_arc(0.3, 0.9, 0.1, 0.1, -20, 300),
            (0.85, 0.98),
        ]
    ],
    "2-angular": [[*_arc(0.5, 0.28, 0.28, 0.26, 200, 350), (0.78, 0.34), (0.2, 1.0), (0.85, 1.0)]],
    "3-round": [_arc(0.48, 0.26, 0.27, 0.25, 200, 450) + _arc(0.48, 0.74, 0.3, 0.26, -90, 150)],
    "3-flat-top": [
        [(0.22, 0.02), (0.78, 0.02), (0.45, 0.42), *_arc(0.48, 0.7, 0.3, 0.28, -80, 150)]
    ],
    "3-small-top": [_arc(0.5, 0.2, 0.2, 0.19, 200, 450) + _arc(0.48, 0.68, 0.32, 0.31, -90, 150)],
    "4-closed": [[(0.66, 1.0), (0.66, 0.0), (0.12, 0.68), (0.88, 0.68)]],
    "4-open": [[(0.2, 0.0), (0.14, 0.6), (0.88, 0.6)], [(0.68, 0.18), (0.68, 1.0)]],
    "4-open-one-stroke": [[(0.22, 0.0), (0.18, 0.58), (0.7, 0.58), (0.72, 0.05), (0.7, 1.0)]],
    "4-open-long-bar": [[(0.25, 0.0), (0.08, 0.62), (1.0, 0.6)], [(0.62, 0.2), (0.6, 1.0)]],
    "5-plain": [[(0.8, 0.0), (0.28, 0.0), (0.24, 0.45), *_arc(0.48, 0.68, 0.3, 0.3, -120, 150)]],
    "5-round-belly": [
        [(0.3, 0.0), (0.24, 0.44), *_arc(0.5, 0.7, 0.3, 0.3, -130, 160)],
        [(0.3, 0.0), (0.8, 0.02)],
    ],
    "5-flag-last": [
        [(0.32, 0.02), (0.26, 0.42), *_arc(0.5, 0.7, 0.27, 0.29, -140, 170)],
        [(0.34, 0.0), (0.86, -0.06)],
    ],
    "6-loop": [[(0.72, 0.0), *_arc(0.52, 0.72, 0.3, 0.28, 190, 540)]],
    "6-open": [_arc(0.9, 0.6, 0.6, 0.6, 240, 180) + _arc(0.52, 0.74, 0.26, 0.24, 180, 470)],
    "6-straight": [[(0.68, 0.0), (0.26, 0.72), *_arc(0.5, 0.76, 0.25, 0.23, 170, 530)]],
    "7-plain": [[(0.15, 0.0), (0.85, 0.0), (0.38, 1.0)]],
    "7-crossed": [[(0.15, 0.0), (0.85, 0.0), (0.38, 1.0)], [(0.38, 0.52), (0.84, 0.5)]],
    "7-serif-crossed": [
        [(0.14, 0.14), (0.16, 0.0), (0.86, 0.0), (0.4, 1.0)],
        [(0.3, 0.5), (0.8, 0.5)],
    ],
    "8-one-stroke": [
        _arc(0.5, 0.25, 0.24, 0.24, -30, -270)
        + _arc(0.5, 0.74, 0.29, 0.26, -90, 270)
        + _arc(0.5, 0.25, 0.24, 0.24, 90, 30)
    ],
    "8-two-circles": [_arc(0.5, 0.25, 0.23, 0.24, 0, 360), _arc(0.5, 0.74, 0.28, 0.26, -90, 270)],
    "8-lopsided": [_arc(0.56, 0.2, 0.16, 0.18, 90, -270) + _arc(0.48, 0.68, 0.32, 0.3, -90, 270)],
    "9-straight": [[*_arc(0.48, 0.3, 0.28, 0.28, 0, -360), (0.76, 0.3), (0.74, 1.0)]],
    "9-hooked": [
        [
            *_arc(0.48, 0.3, 0.28, 0.28, 0, -360),
            (0.76, 0.3),
            (0.74, 0.85),
            *_arc(0.5, 0.82, 0.24, 0.18, 0, 160),
        ]
    ],
    # Forms common outside the US, which MNIST's writers rarely used: a 1 begun far down with a
    # long upstroke, a 2 on a wavy base, a 4 whose bar rises into a tick, a 7 whose bar and
    # stem curve, a 9 whose tail runs down and back to the left.
    "1-long-upstroke": [[(0.02, 0.62), (0.58, 0.0), (0.5, 1.0)]],
    "1-curved-flag": [[(0.1, 0.5), (0.27, 0.24), (0.52, 0.0), (0.5, 1.0)]],
    "2-wavy-base": [[*_arc(0.5, 0.3, 0.3, 0.28, 190, 380), (0.2, 0.98), (0.5, 0.9), (0.88, 1.0)]],
    "4-rising-bar": [
        [(0.25, 0.0), (0.1, 0.58), (0.5, 0.62), (0.85, 0.45)],
        [(0.62, 0.18), (0.58, 1.0)],
    ],
    "7-curved-crossed": [
        [(0.12, 0.08), (0.5, 0.0), (0.88, 0.02), (0.6, 0.4), (0.42, 1.0)],
        [(0.3, 0.52), (0.82, 0.48)],
    ],
    "9-tail-back": [
        [
            *_arc(0.5, 0.28, 0.27, 0.26, 10, -350),
            (0.76, 0.32),
            (0.62, 0.8),
            (0.42, 0.98),
            (0.18, 0.9),
        ]
    ],
    # Cursive forms, as amounts are written fast: a 0 looped like an e, a 1 with a loop, a 2
    # curled at its foot, a 7 with a hooked top and a bar, a 9 whose big loop leans on a short
    # tail curling back (the `e`-like 9).
    "0-looped": [[(0.35, 0.95), *_arc(0.5, 0.5, 0.28, 0.47, 120, -220), (0.62, 0.92), (0.9, 0.85)]],
    "1-looped": [[(0.08, 0.85), (0.5, 0.22), (0.58, 0.04), (0.46, 0.02), (0.4, 0.2), (0.42, 1.0)]],
    "2-curled": [
        [
            *_arc(0.5, 0.28, 0.28, 0.26, 190, 380),
            (0.3, 0.78),
            *_arc(0.28, 0.88, 0.1, 0.1, -60, 260),
            (0.85, 0.95),
        ]
    ],
    "7-hooked-crossed": [
        [(0.1, 0.2), (0.18, 0.02), (0.86, 0.0), (0.62, 0.45), (0.5, 1.0)],
        [(0.3, 0.55), (0.82, 0.5)],
    ],
    "9-big-loop": [
        [
            *_arc(0.48, 0.36, 0.3, 0.34, 5, -355),
            (0.76, 0.45),
            (0.68, 0.82),
            (0.45, 1.0),
            (0.22, 0.9),
        ]
    ],
    "9-curled": [
        [
            *_arc(0.48, 0.3, 0.28, 0.28, 0, -360),
            (0.76, 0.3),
            (0.7, 0.9),
            *_arc(0.6, 0.9, 0.1, 0.1, 0, 200),
            (0.58, 0.78),
        ]
    ],
}

# Evaluation only: whole font families and whole writing styles that training never sees.
HELD_OUT_FONTS = (
    "dkg",
    "kristi",
    "rufscript",
    "klee",
    "humor-sans",
    "because-we-mentor",
    "because-we-organize",
)
HELD_OUT_STYLES = (
    "0-narrow",
    "1-long-flag-foot",
    "2-angular",
    "3-small-top",
    "4-open-long-bar",
    "5-flag-last",
    "6-straight",
    "7-serif-crossed",
    "8-lopsided",
    "9-curled",
)
TRAIN_FONTS = tuple(f for f in FONTS if f not in HELD_OUT_FONTS)
TRAIN_STYLES = tuple(s for s in STYLES if s not in HELD_OUT_STYLES)
SPLITS = {"train": (TRAIN_FONTS, TRAIN_STYLES), "held_out": (HELD_OUT_FONTS, HELD_OUT_STYLES)}


def font_files(families: tuple[str, ...]) -> dict[str, list[Path]]:
    """Each family's font files; a family with none means a broken install, said in one line."""
    found = {f: sorted((FONT_DIR / f).glob("*.[ot]tf")) for f in families}
    missing = sorted(f for f, files in found.items() if not files)
    if missing:
        raise MnistCnnError(
            f"handwriting fonts are missing from {FONT_DIR} ({', '.join(missing)}): "
            "reinstall mnist-cnn (pip install --force-reinstall mnist-cnn, or pip install -e . "
            "in a clone)"
        )
    return found


def _jitter(points: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Wobble a polyline smoothly: noise on each point, averaged over its neighbours."""
    noise = rng.normal(0, amount, points.shape)
    if len(points) > 4:
        kernel = np.ones(5) / 5
        noise = np.stack(
            [np.convolve(np.pad(n, 2, mode="edge"), kernel, "valid") for n in noise.T], 1
        )
    return points + noise


# How far a drawn digit may lean (x moves by slant * height) and how narrow it may be. Training
# draws lean and narrow further than the evaluation sets: real hands slant more than most fonts.
GEOMETRY = {
    "train": {"font_slant": 0.4, "style_slant": 0.5, "narrowest": 0.5},
    "held_out": {"font_slant": 0.25, "style_slant": 0.4, "narrowest": 0.65},
}


def _shape(rng: np.random.Generator, slant: float, narrowest: float) -> np.ndarray:
    """A random 2x2 map of the writing: width, slant (up to `slant`) and a small rotation."""
    width = rng.uniform(narrowest, 1.45)
    slant = rng.uniform(-slant, slant)  # x moves by slant * height, rightwards at the top
    theta = np.radians(rng.uniform(-12, 12))
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return rot @ np.array([[width, -slant], [0.0, 1.0]])


def draw_style(
    style: str, rng: np.random.Generator, height: int = 96, split: str = "held_out"
) -> np.ndarray:
    """One digit in a writing style: bright ink on black, about `height` px tall, anti-aliased."""
    shape = GEOMETRY[split]
    m = _shape(rng, shape["style_slant"], shape["narrowest"])
    pen = height * rng.uniform(0.05, 0.14)
    wobble = rng.uniform(0.01, 0.04)  # how unsteady the hand is
    strokes = [
        (_jitter(np.asarray(s, float), rng, wobble) + rng.normal(0, wobble, 2) - 0.5) @ m.T
        for s in STYLES[style]  # each stroke also lands a little off where it was meant
    ]
    low = np.min([s.min(0) for s in strokes], 0)
    high = np.max([s.max(0) for s in strokes], 0)
    scale = 2 * height / max(high[1] - low[1], 1e-3)  # drawn at twice the size, then halved
    margin = pen + 4
    size = np.ceil((high - low) * scale + 2 * margin).astype(int)
    canvas = Image.new("L", (int(size[0]), int(size[1])), 0)
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(2 * pen))
    for s in strokes:
        xy = [tuple(p) for p in (s - low) * scale + margin]
        draw.line(xy, fill=255, width=width, joint="curve")
        for x, y in (xy[0], xy[-1]):  # round pen ends
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=255)
    return np.asarray(canvas.reduce(2), np.float32)


def draw_font(
    path: Path, digit: int, rng: np.random.Generator, height: int = 96, split: str = "held_out"
) -> np.ndarray:
    """One digit of a font: bright ink on black, about `height` px tall, slanted and re-penned."""
    font = ImageFont.truetype(str(path), size=2 * height)
    canvas = Image.new("L", (4 * height, 4 * height), 0)
    ImageDraw.Draw(canvas).text((height, height // 2), str(digit), font=font, fill=255)
    canvas = canvas.crop(canvas.getbbox())
    shape = GEOMETRY[split]
    m = _shape(rng, shape["font_slant"], shape["narrowest"])  # less than a pen's: fonts lean
    scale = height / canvas.height
    w, h = canvas.size
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], float) * scale @ m.T
    low, high = corners.min(0), corners.max(0)
    size = np.ceil(high - low).astype(int) + 2
    inverse = np.linalg.inv(m * scale)  # output pixel -> font pixel, for Image.transform
    offset = inverse @ low
    coeffs = (*inverse[0], offset[0], *inverse[1], offset[1])
    ink = canvas.transform(tuple(size), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
    pen = rng.random()
    if pen < 0.25:
        ink = ink.filter(ImageFilter.MaxFilter(3 + 2 * int(rng.integers(0, 2))))
    elif pen < 0.4:
        ink = ink.filter(ImageFilter.MinFilter(3))
    return np.asarray(ink, np.float32)


def photograph(ink: np.ndarray, rng: np.random.Generator, scanned: bool) -> np.ndarray:
    """The digit as a user's file: dark ink on light paper, off-centre; or a form's scan.

    A scan is the digit at a low resolution (10-24 px tall; half the time stretched towards a
    square box, as form readers store digits), binarised or reduced to a few grey levels, then
    scaled back up the way such images get posted (nearest or bilinear).
    """
    ink = ink / max(float(ink.max()), 1.0)
    if scanned:
        side = int(rng.integers(10, 25))
        h, w = ink.shape
        width = w * side / h  # as written, or stretched towards the box (at most 2x wider)
        width = min(side, 2 * width) if rng.random() < 0.5 else width
        size = (max(2, round(width)), side)
        ink = np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.BOX))
        if rng.random() < 0.7:  # binarised, at a level that keeps a thin pen's strokes
            ink = (ink > rng.uniform(0.2, 0.45) * ink.max()).astype(np.float32)
        else:
            levels = int(rng.integers(3, 6))
            ink = np.round(ink * (levels - 1)) / (levels - 1)
    h, w = ink.shape
    top, bottom, left, right = (int(h * rng.uniform(0.05, 0.9)) for _ in range(4))
    page = np.zeros((h + top + bottom, w + left + right), np.float32)
    page[top : top + h, left : left + w] = ink
    paper, dark = rng.uniform(190, 250), rng.uniform(0, 70)
    page = paper - (paper - dark) * page
    if not scanned:
        return np.clip(page + rng.normal(0, rng.uniform(0, 6), page.shape), 0, 255)
    up = int(rng.integers(4, 9))
    resample = Image.Resampling.NEAREST if rng.random() < 0.5 else Image.Resampling.BILINEAR
    image = Image.fromarray(page)
    return np.asarray(image.resize((page.shape[1] * up, page.shape[0] * up), resample))


@dataclass(frozen=True, eq=False)
class Digits:
    """Synthetic digits as the model sees them: x (N, 28, 28) float32 0-255, labels y, and
    where each came from (a font family or a style name) and whether it was scanned."""

    x: np.ndarray
    y: np.ndarray
    source: np.ndarray
    scanned: np.ndarray


def _draw(
    split: str, kind: str, rng: np.random.Generator, only: tuple[str, ...] | None = None
) -> Iterator[tuple[int, str, np.ndarray]]:
    """Endless (digit, source, ink) of one split and kind, digits 0-9 in turn."""
    families, styles = SPLITS[split]
    if only is not None:  # one writer: some of the split's families, or all its styles
        families = tuple(f for f in families if f in only)
        if kind == "fonts" and not families:
            raise ValueError(f"{only} holds no font family of the {split} split")
    files = font_files(families) if kind == "fonts" else {}
    by_digit = {d: [s for s in styles if s.startswith(f"{d}-")] for d in range(10)}
    digit = 0
    while True:
        height = int(rng.integers(40, 140))
        if kind == "fonts":
            family = families[int(rng.integers(len(families)))]
            path = files[family][int(rng.integers(len(files[family])))]
            yield digit, family, draw_font(path, digit, rng, height, split)
        else:
            choices = by_digit[digit]
            style = choices[int(rng.integers(len(choices)))]
            yield digit, style, draw_style(style, rng, height, split)
        digit = (digit + 1) % 10


def generate(
    n: int,
    split: str,
    kind: str,
    scanned: float,
    seed: int,
    only: tuple[str, ...] | None = None,
    pictures: bool = False,
) -> Digits:
    """n digits (0-9 in equal shares) of `split` ('train' or 'held_out') drawn from `kind`
    ('fonts' or 'styles'); a share `scanned` of them as scans; as 28x28 MNIST digits, or with
    `pictures` as the pictures a user would hand the reader (x then holds arrays of any size).
    `only` keeps some font families of the split (one simulated writer, say)."""
    from mnist_cnn.errors import ImageError
    from mnist_cnn.reading.crops import from_picture

    if split not in SPLITS or kind not in ("fonts", "styles"):
        raise ValueError(f"unknown split {split!r} or kind {kind!r}")
    rng = np.random.default_rng(seed)
    xs, ys, sources, scans = [], [], [], []
    for digit, source, ink in _draw(split, kind, rng, only):
        if len(ys) == n:
            break
        scan = bool(rng.random() < scanned)
        picture = photograph(ink, rng, scan)
        try:
            seen = from_picture(picture)
        except ImageError:  # a scan so coarse that nothing is left: draw that digit again
            continue
        xs.append(picture if pictures else seen)
        ys.append(digit), sources.append(source), scans.append(scan)
    if pictures:
        x = np.empty(len(xs), object)
        x[:] = xs
    else:
        x = np.stack(xs) if xs else np.zeros((0, SIZE, SIZE), np.float32)
    return Digits(x, np.array(ys, np.int64), np.array(sources), np.array(scans))


def _join(parts: list[Digits], rng: np.random.Generator) -> Digits:
    order = rng.permutation(sum(len(p.y) for p in parts))
    fields = ("x", "y", "source", "scanned")
    return Digits(*(np.concatenate([getattr(p, f) for p in parts])[order] for f in fields))


def training_digits(n: int, seed: int, scanned: float = 0.5) -> Digits:
    """n digits of the training fonts and styles (half each), a share `scanned` as scans."""
    rng = np.random.default_rng(seed)
    kinds = [generate(n // 2, "train", "fonts", scanned, seed + 1)]
    kinds.append(generate(n - n // 2, "train", "styles", scanned, seed + 2))
    return _join(kinds, rng)


EVAL_SEED = 1_000_003  # evaluation digits come from seeds of their own, far from training's


def held_out_sets(
    n: int = 1000, seed: int = EVAL_SEED, pictures: bool = False
) -> dict[str, Digits]:
    """The evaluation sets: held-out fonts and held-out styles, as pictures and as scans (28x28,
    or with `pictures` as the pictures themselves)."""
    return {
        f"held-out {kind}{', scanned' if scan else ''}": generate(
            n, "held_out", kind, float(scan), seed + 2 * i + scan, pictures=pictures
        )
        for i, kind in enumerate(("fonts", "styles"))
        for scan in (0, 1)
    }
