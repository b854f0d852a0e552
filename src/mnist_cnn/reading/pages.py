"""Generated pages of handwritten numbers, with a box and a class for every digit and mark:
what the reader's network learns from.

Everything drawn comes from what this package may ship: MNIST's training digits and the
synthetic writers of `mnist_cnn.synth` (handwriting fonts, pen-stroke styles), composed into
numbers as people write them (touching and overlapping digits, uneven spacing, slant, pens
from hairline to marker, decimal points, commas, minus signs, the marks that end a cheque's
amount), laid on paper as it comes (security guilloche, ruled and squared paper, form boxes,
a printed baseline, show-through from the back of the sheet, colour casts, pencil), then
photographed (albumentations: shadows, light, blur, noise, low resolution, JPEG). Strokes that
are no digit and no mark (letters, specks, scribbles, a `=`) are drawn too, unlabelled, so the
network learns to leave them out. The result goes through `paper.even`, as a user's picture
does before the network sees it.

`scene(rng, writers)` is one page; the same seed gives the same page.
"""

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from mnist_cnn import synth
from mnist_cnn.reading import paper
from mnist_cnn.reading.detector import CLASSES

SIZE = (128, 256)  # height, width of a training page: a line or a piece of a page
HEIGHTS = (12.0, 100.0)  # digit heights drawn, px: what the network learns to read at
TYPICAL = 34.0  # ... most near this (log-normal); the reader scales pages to it
DOT, COMMA, MINUS = (CLASSES.index(c) for c in ".,-")
NOT_LABELLED = -1  # a stroke that is neither digit nor mark: no box, background to learn
DISTRACTORS = "=/$#*xXaAeEoOsSrRtTnNuUcC+:()"  # drawn from the fonts, never labelled


@dataclass(frozen=True)
class Scene:
    """A generated page: the network's input (uint8, ink bright on black, as `paper.even`
    makes it), the photo it came from (RGB), and each digit's and mark's box and class."""

    image: np.ndarray
    photo: np.ndarray
    boxes: np.ndarray  # (N, 4) float32: x0, y0, x1, y1
    classes: np.ndarray  # (N,) int64, indices into CLASSES


# ------------------------------------------------------------------ glyphs


class Writers:
    """The digits a page is written with: MNIST's (a share `mnist`) and the synthetic
    writers' of one split (`synth.SPLITS`): pen-stroke styles (a share `style_share`), and
    handwriting fonts."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        split: str = "train",
        mnist: float = 0.4,
        style_share: float = 0.35,
    ) -> None:
        self.by_digit = [np.asarray(x[y == d]).reshape(-1, 28, 28) for d in range(10)]
        families, styles = synth.SPLITS[split]
        self.fonts = [p for files in synth.font_files(families).values() for p in files]
        self.styles = {d: [s for s in styles if s.startswith(f"{d}-")] for d in range(10)}
        self.split, self.mnist, self.style_share = split, mnist, style_share

    def digit(self, rng: np.random.Generator, d: int, height: int, pen: float) -> np.ndarray:
        """One digit's ink (0-1), `height` px tall, strokes about `pen` px wide, a little
        bent (an elastic distortion) half the time."""
        ink = self._digit(rng, d, height, pen)
        return _bent(ink, rng) if rng.random() < 0.5 else ink

    def _digit(self, rng: np.random.Generator, d: int, height: int, pen: float) -> np.ndarray:
        pick = rng.random()
        if pick < self.mnist:
            pool = self.by_digit[d]
            return _mnist(pool[rng.integers(len(pool))], height, pen, rng)
        big = max(24, height)
        if pick >= self.mnist + self.style_share:
            font = self.fonts[rng.integers(len(self.fonts))]
            ink = synth.draw_font(font, d, rng, big, self.split) / 255
        else:
            style = self.styles[d][rng.integers(len(self.styles[d]))]
            ink = synth.draw_style(style, rng, big, self.split) / 255
        return _repen(_fit_height(_crop(ink), height), pen, rng)

    def symbol(self, rng: np.random.Generator, height: int, pen: float) -> np.ndarray:
        """A letter or sign from a handwriting font: a stroke to leave out."""
        font = self.fonts[rng.integers(len(self.fonts))]
        char = DISTRACTORS[rng.integers(len(DISTRACTORS))]
        ink = _font_char(str(font), char, max(24, height))
        if not ink.any():
            return np.zeros((2, 2), np.float32)
        return _repen(_fit_height(_crop(ink), height), pen, rng)


@functools.lru_cache(maxsize=64)
def _font(path: str, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(path, size=size)


def _font_char(path: str, char: str, height: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    size = 2 * height
    canvas = Image.new("L", (3 * size, 2 * size), 0)
    ImageDraw.Draw(canvas).text((size // 2, size // 4), char, font=_font(path, size), fill=255)
    return np.asarray(canvas, np.float32) / 255


def _bent(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The glyph bent by a smooth random displacement (Simard et al. 2003's elastic
    distortion), up to about a twentieth of its height: no two writers' strokes run alike."""
    h, w = ink.shape
    pad = max(2, h // 10)
    ink = np.pad(ink, pad)
    h, w = ink.shape
    grid = (max(2, h // 12), max(2, w // 12))
    amount = h * rng.uniform(0.015, 0.05)
    dx, dy = (
        cv2.resize(
            rng.normal(0, amount, grid).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
        )
        for _ in range(2)
    )
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = cv2.remap(ink, xs + dx, ys + dy, cv2.INTER_LINEAR, borderValue=0.0)
    return _crop(out)


def _crop(ink: np.ndarray, level: float = 0.05) -> np.ndarray:
    rows, cols = np.flatnonzero(ink.max(1) > level), np.flatnonzero(ink.max(0) > level)
    if not rows.size:
        return np.zeros((2, 2), np.float32)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _fit_height(ink: np.ndarray, height: int) -> np.ndarray:
    h, w = ink.shape
    width = max(1, round(w * height / h))
    return cv2.resize(ink, (width, height), interpolation=cv2.INTER_AREA)


def _mnist(digit: np.ndarray, height: int, pen: float, rng: np.random.Generator) -> np.ndarray:
    """An MNIST digit drawn `height` tall: upscaled smoothly, then re-penned."""
    ink = _crop(np.asarray(digit, np.float32) / 255, 0.1)
    h, w = ink.shape
    width = max(1, round(w * height / h))
    big = cv2.resize(ink, (width, height), interpolation=cv2.INTER_CUBIC)
    return _repen(np.clip(big, 0, 1), pen, rng)


def _repen(ink: np.ndarray, pen: float, rng: np.random.Generator) -> np.ndarray:
    """The ink's strokes redrawn about `pen` px wide, with soft (anti-aliased) edges."""
    mask = (ink > 0.45).astype(np.uint8)
    if not mask.any():
        return ink
    edge = mask - cv2.erode(mask, np.ones((3, 3), np.uint8))
    width = 2 * mask.sum() / max(int(edge.sum()), 1)  # a stroke's area over half its outline
    inside = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 3)
    signed = np.where(mask > 0, inside, -outside)  # distance from the stroke's edge
    grow = (pen - width) / 2  # move the edge out (a broader pen) or in (a finer one)
    softness = rng.uniform(0.5, 1.2)
    out = np.clip((signed + grow) / softness + 0.5, 0, 1)
    pad = max(0, int(np.ceil(grow)) + 1)
    if pad:  # a broader pen needs room round the digit
        big = np.pad(mask, pad)
        outside = cv2.distanceTransform(1 - big, cv2.DIST_L2, 3)
        inside = cv2.distanceTransform(big, cv2.DIST_L2, 3)
        out = np.clip((np.where(big > 0, inside, -outside) + grow) / softness + 0.5, 0, 1)
    return _crop(out.astype(np.float32))


def _stroke(points: list, size: tuple[int, int], pen: float, scale: int = 4) -> np.ndarray:
    """A polyline drawn with a round pen, anti-aliased (drawn 4x and reduced)."""
    h, w = size
    canvas = np.zeros((h * scale, w * scale), np.uint8)
    pts = np.round(np.asarray(points) * scale).astype(np.int32)
    thick = max(1, round(pen * scale))
    cv2.polylines(canvas, [pts], False, 255, thick, cv2.LINE_AA)
    for x, y in pts[[0, -1]]:
        cv2.circle(canvas, (int(x), int(y)), thick // 2, 255, -1, cv2.LINE_AA)
    return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def mark(kind: str, rng: np.random.Generator, height: float, pen: float) -> np.ndarray:
    """A decimal point, a comma, a minus sign or an equals sign, as a hand writes it."""
    p = max(1.0, pen)
    if kind == ".":
        if rng.random() < 0.7:  # a dot
            d = max(2.0, p * rng.uniform(0.9, 2.0))
            size = int(np.ceil(d)) + 3
            return _stroke([(size / 2, size / 2), (size / 2 + 0.01, size / 2)], (size, size), d)
        length = p * rng.uniform(1.2, 3.0)  # a short tick
        angle = rng.uniform(-1.2, 0.3)
        dx, dy = length * np.cos(angle), -length * np.sin(angle)
        size = (int(abs(dy) + 2 * p + 3), int(abs(dx) + 2 * p + 3))
        x0, y0 = p + 1 + max(0, -dx), p + 1 + max(0, -dy)
        return _stroke([(x0, y0), (x0 + dx, y0 + dy)], size, p)
    if kind == ",":
        tail = height * rng.uniform(0.15, 0.4)
        bend = rng.uniform(-0.3, 0.5) * tail
        size = (int(tail + 2 * p + 4), int(abs(bend) + tail * 0.6 + 2 * p + 4))
        x0, y0 = size[1] - p - 2 - max(0, bend), p + 2
        pts = [(x0, y0), (x0 + bend * 0.3, y0 + tail * 0.5), (x0 - tail * 0.35, y0 + tail)]
        ink = _stroke(pts, size, p)
        if rng.random() < 0.5:  # a dot at its head
            d = p * rng.uniform(1.2, 2.0)
            ink = np.maximum(ink, _stroke([(x0, y0), (x0, y0 + 0.01)], size, d))
        return _crop(ink)
    length = height * rng.uniform(0.3, 0.7)
    tilt = np.tan(np.radians(rng.uniform(-12, 12))) * length
    size = (int(abs(tilt) + 2 * p + 4), int(length + 2 * p + 4))
    y0 = p + 2 + max(0, tilt)
    bars = [[(p + 2, y0), (p + 2 + length, y0 - tilt)]]
    if kind == "=":
        gap = height * rng.uniform(0.12, 0.25)
        size = (size[0] + int(gap), size[1])
        bars.append([(p + 2, y0 + gap), (p + 2 + length, y0 + gap - tilt)])
    ink = np.zeros(size, np.float32)
    for bar in bars:
        ink = np.maximum(ink, _stroke(bar, size, p))
    return _crop(ink)


# ------------------------------------------------------------------ numbers


def number_text(rng: np.random.Generator) -> str:
    """A number as people write them: plain, grouped in thousands, with decimals, negative,
    or with the marks that close a cheque's amount."""
    n = int(rng.choice([1, 2, 3, 4, 5, 6, 7, 8], p=[0.08, 0.12, 0.16, 0.2, 0.2, 0.12, 0.07, 0.05]))
    digits = "".join(str(d) for d in rng.integers(0, 10, n))
    style = rng.random()
    if style < 0.4:
        text = digits
    elif style < 0.6 and n >= 4:  # thousands grouped by a point, a comma or a space
        sep = str(rng.choice([".", ",", " "]))
        groups = [digits[max(0, i - 3) : i] for i in range(n, 0, -3)][::-1]
        text = sep.join(groups)
    elif style < 0.8 and n >= 2:  # decimals
        cut = n - int(rng.choice([1, 2, 2, 3]))
        text = digits[: max(cut, 1)] + str(rng.choice([".", ","])) + digits[max(cut, 1) :]
    else:
        text = digits
    if rng.random() < 0.12:
        text = "-" + text
    if rng.random() < 0.15:  # a cheque's amount closed so nothing can be added
        text += str(rng.choice([".-", "=", "-", ".", ",", "--", ".="]))
    return text


def write(
    text: str,
    writers: Writers,
    rng: np.random.Generator,
    height: int,
    pen: float,
    spacing: float | None = None,
) -> tuple[np.ndarray, list[tuple[np.ndarray, int]]]:
    """A number written in a row: its ink (0-1) and, for each glyph, the (x, y) of its ink
    pixels and its class (NOT_LABELLED for '=' and other strokes). `spacing`: the usual gap
    between digits, in heights (negative: they overlap), else the writer's own."""
    slant = rng.normal(0, 0.2)  # x moved per row up: most hands lean a little
    if spacing is None:
        spacing = rng.uniform(-0.12, 0.45)
    placed: list[tuple[np.ndarray, int, int, int]] = []  # ink, x, y (top), class
    x, base = 0, int(1.6 * height)
    for k, char in enumerate(text):
        if char == " ":
            x += int(height * rng.uniform(0.3, 0.7))
            continue
        if char.isdigit():
            h = max(4, int(height * rng.uniform(0.88, 1.08)))
            ink = _shear(writers.digit(rng, int(char), h, pen), slant, rng)
            top = base - ink.shape[0] + int(rng.normal(0, 0.04) * height)
            cls = int(char)
            gap = height * (spacing + rng.normal(0, 0.08))
        else:
            ink = mark(char, rng, height, pen)
            cls = CLASSES.index(char) if char in CLASSES else NOT_LABELLED
            if char in ".,":
                top = base - int(min(ink.shape[0], 2 * pen + 2) * rng.uniform(0.6, 1.2))
                top += int(rng.normal(0, 0.03) * height)
            else:  # a bar at about mid-height
                top = base - int(height * rng.uniform(0.4, 0.65)) - ink.shape[0] // 2
            gap = height * rng.uniform(0.04, 0.25)
        if k:
            x = max(0, x + int(gap)) if char.isdigit() else x + int(height * rng.uniform(0.04, 0.2))
        placed.append((ink, x, top, cls))
        x += ink.shape[1]
    canvas, glyphs = _compose(placed)
    if rng.random() < 0.25:  # a cursive hand joins its digits
        _join(canvas, glyphs, rng, pen)
    return canvas, glyphs


def _join(canvas: np.ndarray, glyphs: list, rng: np.random.Generator, pen: float) -> None:
    """A thin joining stroke from each digit's lower right to the next one's left side, as a
    hand writes `000` without lifting the pen. The strokes belong to no glyph."""
    digits = [p for p, c in glyphs if 0 <= c < 10 and len(p)]
    for a, b in itertools.pairwise(digits):
        (ax0, ay0), (ax1, ay1) = a.min(0), a.max(0)
        (bx0, by0), (bx1, by1) = b.min(0), b.max(0)
        if bx0 - ax1 > 0.6 * (ay1 - ay0):
            continue  # too far apart to be joined
        start = (ax1 - 0.1 * (ax1 - ax0), ay0 + rng.uniform(0.6, 0.9) * (ay1 - ay0))
        end = (bx0 + 0.1 * (bx1 - bx0), by0 + rng.uniform(0.25, 0.6) * (by1 - by0))
        middle = (
            (start[0] + end[0]) / 2,
            max(start[1], end[1]) + rng.uniform(0, 0.1) * (ay1 - ay0),
        )
        stroke = _stroke([start, middle, end], canvas.shape, max(1.0, pen * rng.uniform(0.5, 0.9)))
        np.maximum(canvas, stroke, out=canvas)


def _shear(ink: np.ndarray, slant: float, rng: np.random.Generator) -> np.ndarray:
    """A glyph leaned by `slant` (x per row up) and turned a little."""
    h, w = ink.shape
    angle = np.radians(rng.normal(0, 3))
    m = np.array([[np.cos(angle), np.sin(angle) + slant], [-np.sin(angle), np.cos(angle)]])
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], float) @ m.T
    low, high = corners.min(0), corners.max(0)
    affine = np.hstack([m, -low[:, None]]).astype(np.float32)
    size = (int(np.ceil(high[0] - low[0])) + 1, int(np.ceil(high[1] - low[1])) + 1)
    out = cv2.warpAffine(ink, affine, size, flags=cv2.INTER_LINEAR)
    return _crop(out)


def _compose(placed: list) -> tuple[np.ndarray, list[tuple[np.ndarray, int]]]:
    tops = [y for _, _, y, _ in placed]
    lo = min(tops)
    height = max(y + ink.shape[0] for ink, _, y, _ in placed) - lo
    width = max(x + ink.shape[1] for ink, x, _, _ in placed)
    canvas = np.zeros((height, width), np.float32)
    glyphs = []
    for ink, x, y, cls in placed:
        window = canvas[y - lo : y - lo + ink.shape[0], x : x + ink.shape[1]]
        np.maximum(window, ink, out=window)
        ys, xs = np.nonzero(ink > 0.35)
        glyphs.append((np.stack([xs + x, ys + y - lo], 1).astype(np.float32), cls))
    return canvas, glyphs


# ------------------------------------------------------------------ the page


@dataclass
class _Layout:
    """Where a page's numbers go: (text, digit height, left, top) each, in page pixels."""

    numbers: list[tuple[str, int, int, int]]


def _heights(rng: np.random.Generator, n: int, low: float, high: float) -> float:
    """A writing height, log-normal about TYPICAL, within (low, high)."""
    return float(np.clip(np.exp(rng.normal(np.log(TYPICAL), 0.45)), low, high))


def _layout(rng: np.random.Generator, size: tuple[int, int]) -> list[tuple[str, float]]:
    """What a page holds: one number (most pages, as a cheque's field or a line of a form), a
    few numbers, one or two large digits, or none."""
    pick = rng.random()
    if pick < 0.58:
        return [(number_text(rng), _heights(rng, 1, HEIGHTS[0], HEIGHTS[1] * 0.8))]
    if pick < 0.83:
        h = _heights(rng, 1, HEIGHTS[0], 40.0)
        return [(number_text(rng), h * rng.uniform(0.9, 1.1)) for _ in range(rng.integers(2, 6))]
    if pick < 0.93:
        digits = "".join(str(d) for d in rng.integers(0, 10, rng.integers(1, 3)))
        return [(digits, rng.uniform(50, HEIGHTS[1]))]
    return []


def scene(rng: np.random.Generator, writers: Writers, size: tuple[int, int] = SIZE) -> Scene:
    """One generated page: numbers written on paper and photographed, every digit and mark
    boxed and labelled."""
    h, w = size
    ink = np.zeros(size, np.float32)
    glyphs: list[tuple[np.ndarray, int]] = []
    taken = np.zeros(size, bool)
    pen_share = float(np.exp(rng.normal(np.log(0.09), 0.45)))  # pen width / height
    for text, height in _layout(rng, size):
        height = int(height)
        pen = float(np.clip(pen_share * height, 0.8, 0.3 * height))
        line, parts = write(text, writers, rng, height, pen)
        scale = min(1.0, 0.95 * (w - 4) / line.shape[1], 0.95 * (h - 4) / line.shape[0])
        if scale < 1:  # too long for the page: written smaller
            line = cv2.resize(line, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            parts = [(p * scale, c) for p, c in parts]
        spot = _free_spot(rng, taken, line.shape)
        if spot is None:
            continue
        y, x = spot
        window = ink[y : y + line.shape[0], x : x + line.shape[1]]
        np.maximum(window, line, out=window)
        taken[max(0, y - 4) : y + line.shape[0] + 4, max(0, x - 8) : x + line.shape[1] + 8] = True
        glyphs += [(p + np.float32([x, y]), c) for p, c in parts]
    distract = _distractors(rng, writers, taken, pen_share)
    matrix = _camera(rng, size, glyphs)
    if matrix is not None:
        ink = cv2.warpPerspective(ink, matrix, (w, h), flags=cv2.INTER_LINEAR)
        distract = cv2.warpPerspective(distract, matrix, (w, h), flags=cv2.INTER_LINEAR)
        glyphs = [(cv2.perspectiveTransform(p[None], matrix)[0], c) for p, c in glyphs if len(p)]
    boxes, classes = _boxes(glyphs, size)
    photo = _photograph(rng, ink, distract, boxes, classes)
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.float32)
    image = np.round(paper.even(gray) * 255).astype(np.uint8)
    return Scene(image, photo, boxes, classes)


def _free_spot(rng, taken: np.ndarray, shape: tuple[int, int]) -> tuple[int, int] | None:
    h, w = taken.shape
    if shape[0] > h - 2 or shape[1] > w - 2:
        return None
    for _ in range(12):
        y, x = int(rng.integers(1, h - shape[0])), int(rng.integers(1, w - shape[1]))
        if not taken[y : y + shape[0], x : x + shape[1]].any():
            return y, x
    return None


def _boxes(glyphs: list, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Each labelled glyph's box round its ink, kept where most of it is on the page."""
    h, w = size
    boxes, classes = [], []
    for points, cls in glyphs:
        if cls == NOT_LABELLED or not len(points):
            continue
        x0, y0 = points.min(0)
        x1, y1 = points.max(0) + 1
        inside = (min(x1, w) - max(x0, 0)) * (min(y1, h) - max(y0, 0))
        if inside < 0.5 * (x1 - x0) * (y1 - y0) or x1 <= 0 or y1 <= 0:
            continue
        boxes.append([max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)])
        classes.append(cls)
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64)


def _camera(rng: np.random.Generator, size: tuple[int, int], glyphs: list) -> np.ndarray | None:
    """A turn, and sometimes a tilted camera's perspective, about the writing's middle; None
    (most pages) for a straight shot."""
    points = np.concatenate([p for p, _ in glyphs] + [np.zeros((0, 2), np.float32)])
    if rng.random() < 0.45 or not len(points):
        return None
    h, w = size
    centre = points.mean(0)
    angle = rng.normal(0, 4) if rng.random() < 0.85 else rng.uniform(-45, 45)
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle), 1.0)
    matrix = np.vstack([m, [0, 0, 1]])
    if rng.random() < 0.3:
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = (src + rng.normal(0, 0.04, (4, 2)) * [w, h]).astype(np.float32)
        matrix = cv2.getPerspectiveTransform(src, dst) @ matrix
    moved = cv2.perspectiveTransform(points[None].astype(np.float64), matrix)[0]
    lo, hi = moved.min(0), moved.max(0)
    if (hi - lo)[0] > w - 2 or (hi - lo)[1] > h - 2:
        return None  # turned, it would not fit: a straight shot
    shift = np.clip(0, 1 - lo, [w - 1, h - 1] - hi)  # back inside the page
    return (np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1]]) @ matrix).astype(np.float64)


def _distractors(rng, writers: Writers, taken: np.ndarray, pen_share: float) -> np.ndarray:
    """Strokes that are neither digits nor marks, away from the numbers: letters and signs,
    specks, scribbles."""
    h, w = taken.shape
    out = np.zeros((h, w), np.float32)
    for _ in range(int(rng.poisson(0.8))):
        kind = rng.random()
        if kind < 0.5:
            height = int(_heights(rng, 1, HEIGHTS[0], 60))
            ink = writers.symbol(rng, height, max(1.0, pen_share * height))
        elif kind < 0.8:
            d = rng.uniform(1, 4)
            ink = _stroke([(3 + d, 3 + d), (3 + d + 0.01, 3 + d)], (int(2 * d + 7),) * 2, d)
        else:
            n, span = int(rng.integers(3, 8)), rng.uniform(15, 80)
            pts = np.cumsum(rng.normal(0, span / 4, (n, 2)), 0)
            pts -= pts.min(0) - 3
            size = tuple(int(v) + 6 for v in pts.max(0)[::-1])
            ink = _stroke(list(map(tuple, pts)), size, rng.uniform(1, 4))
        spot = _free_spot(rng, taken, ink.shape)
        if spot is not None:
            y, x = spot
            window = out[y : y + ink.shape[0], x : x + ink.shape[1]]
            np.maximum(window, ink, out=window)
    return out


# ------------------------------------------------------------------ paper and camera

INKS = (  # RGB 0-1: black, blue ballpoint, dark blue, red, green, pencil grey
    (0.08, 0.08, 0.1),
    (0.12, 0.18, 0.55),
    (0.05, 0.08, 0.3),
    (0.6, 0.1, 0.12),
    (0.1, 0.35, 0.15),
    (0.35, 0.35, 0.37),
)


def _photograph(
    rng: np.random.Generator, ink: np.ndarray, distract: np.ndarray, boxes, classes
) -> np.ndarray:
    """The page as a camera or scanner gives it: paper, its printing, the ink, the light."""
    h, w = ink.shape
    tint = np.clip(rng.normal(0.9, 0.06, 3), 0.55, 1.0)
    if rng.random() < 0.5:
        tint[:] = tint.mean()
    page = np.ones((h, w, 3), np.float32) * tint
    page *= 1 - _grain(rng, (h, w), rng.uniform(0, 0.08))[..., None]
    for printing in _printing(rng, (h, w), boxes, classes):
        colour, layer = printing
        page = page * (1 - layer[..., None]) + np.asarray(colour, np.float32) * layer[..., None]
    colour = np.asarray(INKS[rng.integers(len(INKS))], np.float32)
    colour = np.clip(colour + rng.normal(0, 0.04, 3), 0, 1)
    strength = rng.uniform(0.55, 1.0)
    if rng.random() < 0.15:  # pencil: grey, grainy
        colour[:] = rng.uniform(0.25, 0.5)
        strength *= 1 - _grain(rng, (h, w), 0.5)
    alpha = np.clip(ink * strength, 0, 1)[..., None]
    page = page * (1 - alpha) + colour * alpha
    if distract.any():
        other = np.asarray(INKS[rng.integers(len(INKS))], np.float32)
        beta = np.clip(distract * rng.uniform(0.5, 1), 0, 1)[..., None]
        page = page * (1 - beta) + other * beta
    photo = np.clip(page * 255, 0, 255).astype(np.uint8)
    effects = _camera_effects()
    effects.set_random_seed(int(rng.integers(2**31)))  # its own stream, drawn from the page's
    return effects(image=photo)["image"]


def _grain(rng: np.random.Generator, size: tuple[int, int], amount: float) -> np.ndarray:
    """Paper's uneven fibre: smooth noise, 0 to about `amount`."""
    h, w = size
    small = rng.random((max(2, h // 8), max(2, w // 8))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1) * amount


def _printing(rng: np.random.Generator, size: tuple[int, int], boxes, classes) -> list:
    """What is printed on the paper, each as (colour, 0-1 layer): a cheque's guilloche, ruled
    or squared lines, a baseline, form boxes, the mirrored writing of the sheet's back."""
    h, w = size
    layers = []
    colour = np.clip(rng.normal(0.55, 0.15, 3), 0.1, 0.95)
    digits = boxes[classes < 10] if len(boxes) else boxes
    height = float(np.median(digits[:, 3] - digits[:, 1])) if len(digits) else 30.0
    if rng.random() < 0.22:
        layers.append((colour, _guilloche(rng, size) * rng.uniform(0.2, 0.7)))
    pick = rng.random()
    if pick < 0.12:  # ruled
        layers.append((colour, _lines(rng, size, height, across=True) * rng.uniform(0.3, 0.9)))
    elif pick < 0.22:  # squared
        grid = np.maximum(_lines(rng, size, height, True), _lines(rng, size, height, False))
        layers.append((colour, grid * rng.uniform(0.2, 0.8)))
    elif pick < 0.34 and len(digits):  # a printed baseline under the writing, as on a cheque
        layer = np.zeros(size, np.float32)
        y = int(min(h - 2, digits[:, 3].max() + rng.uniform(-0.1, 0.4) * height))
        x0, x1 = int(rng.uniform(0, 0.3) * w), int(rng.uniform(0.7, 1.0) * w)
        cv2.line(layer, (x0, y), (x1, y), 1.0, int(rng.integers(1, 3)))
        layers.append((colour * 0.5, layer))
    elif pick < 0.42 and len(digits):  # a form's box round the number, or a box per digit
        layer = np.zeros(size, np.float32)
        pad = rng.uniform(0.1, 0.5) * height
        thick = int(rng.integers(1, 4))
        if rng.random() < 0.5:
            x0, y0 = digits[:, :2].min(0) - pad
            x1, y1 = digits[:, 2:].max(0) + pad
            cv2.rectangle(layer, (int(x0), int(y0)), (int(x1), int(y1)), 1.0, thick)
        else:
            for x0, y0, x1, y1 in digits:
                cv2.rectangle(
                    layer,
                    (int(x0 - pad / 2), int(y0 - pad)),
                    (int(x1 + pad / 2), int(y1 + pad)),
                    1.0,
                    thick,
                )
        layers.append((colour * 0.6, layer))
    if rng.random() < 0.08:  # show-through: the writing on the back, mirrored and faint
        back = cv2.GaussianBlur(_lines(rng, size, height * 2, True, wavy=True), (0, 0), 1.5)
        layers.append((np.full(3, 0.3), back[:, ::-1] * rng.uniform(0.1, 0.3)))
    return layers


def _lines(
    rng: np.random.Generator, size: tuple[int, int], height: float, across: bool, wavy: bool = False
) -> np.ndarray:
    h, w = size
    layer = np.zeros(size, np.float32)
    step = max(6.0, height * rng.uniform(0.6, 1.8))
    start = rng.uniform(0, step)
    thick = int(rng.integers(1, 3))
    for at in np.arange(start, h if across else w, step):
        if across:
            ys = at + (np.sin(np.arange(w) / rng.uniform(8, 30)) * 3 if wavy else 0) * np.ones(w)
            pts = np.stack([np.arange(w), ys], 1).astype(np.int32)
        else:
            pts = np.array([[int(at), 0], [int(at), h]], np.int32)
        cv2.polylines(layer, [pts], False, 1.0, thick, cv2.LINE_AA)
    return layer


def _guilloche(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A security print: families of fine wavy lines, as behind a cheque's amount."""
    h, w = size
    layer = np.zeros(size, np.float32)
    x = np.arange(w, dtype=np.float32)
    for _ in range(int(rng.integers(1, 3))):
        step, amp = rng.uniform(3, 9), rng.uniform(2, 14)
        period, tilt = rng.uniform(20, 120), rng.uniform(-0.4, 0.4)
        for k, y0 in enumerate(np.arange(-h, 2 * h, step)):
            ys = y0 + tilt * x + amp * np.sin(2 * np.pi * x / period + 0.3 * k)
            pts = np.stack([x, ys], 1).astype(np.int32)
            cv2.polylines(layer, [pts], False, 1.0, 1, cv2.LINE_AA)
    return layer


@functools.lru_cache(maxsize=1)
def _camera_effects() -> Callable:
    import albumentations as A

    return A.Compose(
        [
            A.OneOf(
                [
                    A.RandomShadow(shadow_roi=(0, 0, 1, 1), p=0.3),
                    A.Illumination(p=1),
                    A.PlasmaShadow(p=1),
                ],
                p=0.3,
            ),
            A.PlanckianJitter(p=0.3),
            A.RandomBrightnessContrast(brightness_limit=0.3, contrast_limit=(-0.6, 0.2), p=0.5),
            A.RandomGamma(p=0.3),
            A.OneOf(
                [
                    A.GaussianBlur(sigma_limit=(0.3, 1.6), p=1),
                    A.MotionBlur(blur_limit=(3, 7), p=1),
                    A.Defocus(radius=(1, 3), p=1),
                ],
                p=0.35,
            ),
            A.OneOf([A.GaussNoise(std_range=(0.01, 0.08), p=1), A.ISONoise(p=1)], p=0.4),
            A.Downscale(scale_range=(0.4, 0.9), p=0.2),
            A.ImageCompression(quality_range=(25, 95), p=0.4),
        ]
    )
