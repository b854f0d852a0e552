"""Any picture of a digit in, the 28x28 an MNIST model expects out.

A model that scores 99% on MNIST is wrong on a phone photo because the photo is not MNIST:
dark ink on light paper, the digit anywhere and any size, grey paper, specks. `normalise`
redoes what MNIST's makers did to every digit: white ink on black, background removed, the
ink's bounding box scaled so its longer side is 20 px (anti-aliased, aspect kept), and pasted
into 28x28 with its centre of mass in the middle; a digit leaning further than MNIST's writers
lean is first sheared back to their range. `segment` cuts a written number into digits.
"""

import dataclasses
import io
import itertools
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from mnist_cnn import lines, marks, photo
from mnist_cnn.data import SIZE
from mnist_cnn.errors import ImageError
from mnist_cnn.photo import MIN_CONTRAST, otsu

BOX = 20  # MNIST's digits fit a 20x20 box, centred by mass in SIZE x SIZE
MAX_PIXELS = 16_000_000  # decoded at most (a 12-megapixel phone photo fits); more is refused
MAX_SIDE = 1024  # pictures are shrunk to this before any float work: a digit needs far less
MAX_MARKS = 300  # separate marks in a picture of a number: more is noise or an attack
MAX_DIGITS = 40  # digits in one written number
SPECK = 0.01  # a mark under this share of the largest one's area is no part of a number
STROKE = 2.2  # MNIST's typical stroke width in the 20 px box, pixels
MAX_SLANT = 0.6  # x moved per row down: 95% of MNIST's training digits lean less
SMALL = 0.45  # a mark lower than this share of the writing's height is no digit alone
WIDEST = 1.6  # pieces joined into one digit span at most this many writing heights
JOIN = 3  # pieces one digit may be joined from
WIDE_DIGIT = 1.4  # a digit of a number wider than this many heights is narrowed to it
SKIP = 0.5  # what leaving a small mark out of the number costs, as a probability


__all__ = ["ImageError", "normalise", "number_pieces", "read_image", "segment", "to_gray"]


def read_image(source: str | Path | bytes) -> np.ndarray:
    """A file (or its bytes) as grayscale float32 (0-255), alpha on white, EXIF rotation applied.

    Decoding is bounded: at most MAX_PIXELS are decoded (JPEGs at a reduced scale), and the
    picture is shrunk to MAX_SIDE before any float work, so a hostile file costs little memory.
    Whatever a decoder raises on a damaged or crafted file becomes an ImageError.
    """
    if isinstance(source, bytes):
        if not source:
            raise ImageError("empty file (0 bytes)")
        path: Path | io.BytesIO = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError("no such file")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow warns above this, errors above twice this
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            img.seek(0)  # the first frame of a GIF, TIFF or WebP animation
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"{img.width}x{img.height} is too large; resize it")
            img.draft("L", (MAX_SIDE, MAX_SIDE))  # a JPEG decodes at 1/2 to 1/8 scale
            return _gray(ImageOps.exif_transpose(img))
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError("too many pixels (a decompression bomb?); resize it") from None
    except UnidentifiedImageError:
        known = "PNG, JPEG, BMP, GIF, TIFF, WebP"
        raise ImageError(f"not an image Pillow can read ({known})") from None
    except MemoryError:
        raise ImageError("too large to decode; resize it") from None
    except Exception as err:  # any decoder's failure on a damaged or crafted file
        why = f"{type(err).__name__}: {err}"[:120]
        raise ImageError(f"damaged or truncated image ({why})") from None


def to_gray(image: "str | Path | bytes | Image.Image | np.ndarray") -> np.ndarray:
    """A path, the bytes of a file, a PIL image or an array, as grayscale float32 (0-255)."""
    if isinstance(image, str | Path | bytes):
        return read_image(image)
    if isinstance(image, Image.Image):
        try:
            return _gray(image)
        except Exception as err:
            raise ImageError(f"cannot read this PIL image ({type(err).__name__}: {err})") from None
    return as_gray_array(image)


def _gray(img: Image.Image) -> np.ndarray:
    """Any mode as grayscale 0-255, at most MAX_SIDE on a side: transparency on white paper,
    16-bit scaled by 1/257, 32-bit integer or float stretched to the full range."""
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if img.mode.startswith("I;16"):
        img = Image.fromarray(np.asarray(img, np.float32) / 257)
    elif img.mode in ("I", "F"):
        with np.errstate(invalid="ignore"):  # NaN and infinities in a float image: ink-free
            a = np.nan_to_num(np.asarray(img, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(a.min()), float(a.max())
        img = Image.fromarray(((a - lo) * (255 / (hi - lo) if hi > lo else 0)).astype(np.float32))
    elif img.mode != "L":
        img = img.convert("L")
    if max(img.size) > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BOX)
    return np.asarray(img, np.float32)


def ink_of(gray: np.ndarray) -> np.ndarray:
    """Bright ink on a black background from any picture: `photo.find_ink` finds it."""
    return photo.find_ink(gray).ink


def normalise(gray: np.ndarray) -> np.ndarray:
    """Any grayscale digit image in, the 28x28 (0-255, float32) an MNIST model expects out."""
    return _to_mnist(ink_of(as_gray_array(gray)))


def as_gray_array(gray: np.ndarray) -> np.ndarray:
    """A 2-D float32 image in 0-255 from any array a user may hold: (H, W) or (H, W, 1),
    0-1 floats scaled up, other ranges stretched; NaN, infinities and other shapes refused."""
    try:
        a = np.asarray(gray, dtype=np.float32)
    except (TypeError, ValueError):
        raise ImageError("not an image: expected a 2-D array of grey levels") from None
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2 or min(a.shape) < 1:
        raise ImageError(f"not an image: expected a 2-D array of grey levels, not {a.shape}")
    if not np.isfinite(a).all():
        raise ImageError("the image holds NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 255:
        a = (a - lo) * (255 / (hi - lo)) if hi > lo else np.zeros_like(a)
    elif hi <= 1.0:
        a = a * 255  # 0-1 floats
    return a


def _crop(ink: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def slant(ink: np.ndarray) -> float:
    """How far the ink leans: x moved per row down, from its second moments (0 upright,
    negative: leaning right)."""
    weight = ink.astype(np.float64) / max(float(ink.sum()), 1e-12)
    dy = np.arange(ink.shape[0]) - (weight.sum(1) @ np.arange(ink.shape[0]))
    dx = np.arange(ink.shape[1]) - (weight.sum(0) @ np.arange(ink.shape[1]))
    rows = float(weight.sum(1) @ dy**2)
    return float(dy @ weight @ dx) / rows if rows > 0.25 else 0.0  # a flat dash has no lean


def _upright(ink: np.ndarray) -> np.ndarray:
    """Shear a digit that leans further than MNIST's writers do back to the edge of their range.

    Steeply slanted hands squeeze loops and bars into shapes the model never saw (an 8 read as
    0); within MNIST's range the digit is left exactly as it is.
    """
    lean = slant(ink)
    shear = lean - float(np.clip(lean, -MAX_SLANT, MAX_SLANT))
    if shear == 0:
        return ink
    shear = float(np.clip(shear, -1, 1))  # the width grows by at most the height
    h, w = ink.shape
    pad = int(np.ceil(abs(shear) * h)) + 2
    centre = float(np.arange(h) @ ink.sum(1)) / float(ink.sum())
    moved = Image.fromarray(ink.astype(np.float32)).transform(
        (w + pad, h),
        Image.Transform.AFFINE,
        (1, shear, -pad / 2 - shear * centre, 0, 1, 0),
        Image.Resampling.BILINEAR,
    )
    moved = np.asarray(moved)
    return _crop(np.clip(moved, 0, None))


def _to_mnist(ink: np.ndarray, widest: float | None = None) -> np.ndarray:
    """Bright ink on black, any size: crop, stand upright, thicken thin pens, scale to 20 px,
    centre by mass. `widest`: a mark wider than that many times its height is first narrowed
    to it, so a digit of a number written wide (a long-tailed 2, a 7's long bar, more so
    under a tilted camera) reads as the digit, not as a flat line MNIST barely has."""
    ink = _upright(_crop(ink))
    if widest is not None and ink.shape[1] > widest * ink.shape[0] > 0:
        narrow = (round(widest * ink.shape[0]), ink.shape[0])
        ink = np.asarray(Image.fromarray(ink).resize(narrow, Image.Resampling.LANCZOS))
        ink = np.clip(ink, 0, None)
    scale = BOX / max(ink.shape)
    # thin pen on a big page would fade to nothing at 20 px: thicken it to MNIST's stroke first
    mask = ink > 0.5 * ink.max()
    edge = mask & ~ndimage.binary_erosion(mask)
    width = 2 * mask.sum() / max(edge.sum(), 1)  # a stroke's area over half its outline
    grow = round((STROKE / scale - width) / 2)
    if grow > 0:
        ink = ndimage.grey_dilation(ink, size=(2 * grow + 1, 2 * grow + 1))
    h, w = (max(1, round(n * scale)) for n in ink.shape)
    small = np.asarray(Image.fromarray(ink).resize((w, h), Image.Resampling.LANCZOS))
    small = np.clip(small, 0, None)
    small = np.clip(small * (255 / small.max()), 0, 255)
    cy, cx = ndimage.center_of_mass(small)
    top = int(np.clip(round(SIZE / 2 - cy), 0, SIZE - h))
    left = int(np.clip(round(SIZE / 2 - cx), 0, SIZE - w))
    out = np.zeros((SIZE, SIZE), np.float32)
    out[top : top + h, left : left + w] = small
    return out


def segment(
    ink: np.ndarray, classify: "Callable[[np.ndarray], np.ndarray] | None" = None
) -> list[tuple[slice, slice, np.ndarray]]:
    """The digits of a written number, left to right: (rows, cols, that digit's ink) each.

    Connected strokes are candidate digits. Pieces that sit above one another (a 5's loose
    cap, a broken 4) are merged; a blob much wider than the writing is tall is cut where the
    ink is thinnest, since that is where two digits touch. With `classify` (28x28x1 batches to
    probabilities), the model then has the last word: neighbouring pieces are joined again
    (a wide 2 cut in two, a 4 broken side by side) and small marks (a dot, a dash) left out,
    wherever that makes the digits likelier. The work is bounded: more than MAX_MARKS
    separate marks, or more than MAX_DIGITS pieces, is refused.
    """
    return segment_marks(ink, classify)[0]


def segment_marks(ink: np.ndarray, classify: Callable | None = None) -> tuple[list, list]:
    """`segment`'s digits, and the small marks it left out of them (a decimal point, a minus
    sign, a speck), each as (rows, cols, ink)."""
    mask = ink > max(otsu(ink), MIN_CONTRAST / 2)
    top, left = _origin(mask)  # the writing is a small part of a photo: label only that part
    mask, ink = mask[top:, left:], ink[top:, left:]
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n > MAX_MARKS:
        raise ImageError(f"{n} separate marks: too many to read as a number (at most {MAX_MARKS})")
    groups = _marks(mask, labels, n)
    groups = _stacked(groups, _writing_height([b[1] - b[0] for b, _ in groups]))
    height = _writing_height([b[1] - b[0] for b, _ in groups])
    pieces, mark = [], []  # mark: which group each piece was cut from
    for k, (box, group) in enumerate(groups):
        rows, cols = slice(box[0], box[1]), slice(box[2], box[3])
        digit_ink = np.where(np.isin(labels[rows, cols], group), ink[rows, cols], 0)
        parts = _split_touching(rows, cols, digit_ink, height)
        pieces += parts
        mark += [k] * len(parts)
        if len(pieces) > MAX_DIGITS:
            raise ImageError(f"more than {MAX_DIGITS} digits: not a number this reads")
    left_out: list = []
    if classify is not None and pieces:
        pieces, left_out = _likeliest(pieces, mark, height, classify)
    return _moved(pieces, top, left), _moved(left_out, top, left)


def _moved(pieces: list, top: int, left: int) -> list:
    return [
        (slice(r.start + top, r.stop + top), slice(c.start + left, c.stop + left), part)
        for r, c, part in pieces
    ]


def _origin(mask: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return (int(rows[0]), int(cols[0])) if rows.size else (0, 0)


def _marks(mask: np.ndarray, labels: np.ndarray, n: int) -> list:
    """Each mark but specks as ([row0, row1, col0, col1], [its label]), left to right."""
    found = ndimage.find_objects(labels)
    sizes = ndimage.sum_labels(mask, labels, np.arange(1, n + 1)) if n else np.zeros(0)
    speck = sizes < SPECK * sizes.max() if n else sizes  # a pixel or two of a stroke's rim
    return sorted(
        (
            ([b[0].start, b[0].stop, b[1].start, b[1].stop], [i + 1])
            for i, b in enumerate(found)
            if not speck[i]
        ),
        key=lambda g: g[0][2],
    )


def _stacked(groups: list, height: float) -> list:
    """Neighbours whose columns overlap by half the narrower one merged, until none do; but
    two marks each under SMALL of the writing's `height` stay apart (a point under a speck,
    a colon), unless together they are as tall as a digit of the writing."""
    while True:
        merged: list = []
        for box, group in groups:
            if merged:
                last, last_group = merged[-1]
                overlap = min(last[3], box[3]) - max(last[2], box[2])
                both_small = max(last[1] - last[0], box[1] - box[0]) < SMALL * height
                spans = max(last[1], box[1]) - min(last[0], box[0])
                if overlap >= 0.5 * min(last[3] - last[2], box[3] - box[2]) and not (
                    both_small and spans < 0.8 * height
                ):
                    last[:] = [
                        min(last[0], box[0]),
                        max(last[1], box[1]),
                        last[2],
                        max(last[3], box[3]),
                    ]
                    last_group += group
                    continue
            merged.append((list(box), list(group)))
        if len(merged) == len(groups):
            return merged
        groups = merged


def _writing_height(heights: list[int]) -> float:
    """How tall the digits are written: the median of the marks at least half the tallest
    (a dot or a dash among them would pull a plain median down)."""
    if not heights:
        return 0.0
    tall = [h for h in heights if h >= 0.5 * max(heights)]
    return float(np.median(tall))


def _likeliest(
    pieces: list, mark: list[int], height: float, classify: Callable
) -> tuple[list, list]:
    """The reading of the pieces the model finds likeliest, and the small marks it left out:
    each digit one piece or up to JOIN neighbours joined (no wider than WIDEST heights), a
    small mark (under SMALL of the height, or wholly in the writing's lower half, as a comma
    is) never a digit alone but joined to one or left out. Scored by the sum of each digit's
    log top probability; leaving a mark out costs log SKIP, and joining separate marks log
    SKIP for each one joined (parts cut from one mark join freely): two digits that each
    read well stay two. A small mark in the lower two thirds of the writing (where a decimal
    point, a comma or a minus sign sits; a 5's loose cap sits higher) costs log SKIP more to
    join, so that it joins a digit only where that digit reads far better with it."""
    n = len(pieces)
    tall = [p[0].start for p in pieces if p[0].stop - p[0].start >= 0.5 * height]
    top = float(np.median(tall)) if tall else 0.0
    small = [
        p[0].stop - p[0].start < SMALL * height or p[0].start > top + height / 2 for p in pieces
    ]
    low = [
        s and (p[0].start + p[0].stop) / 2 > top + height / 3
        for s, p in zip(small, pieces, strict=True)
    ]
    joined = {(i, i + 1): pieces[i] for i in range(n) if not small[i]}
    score = _scores(joined, {span: 0.0 for span in joined}, classify)
    # pieces joined score at most their joining cost: worth reading only where the pieces
    # read worse alone (a small one alone is left out, at log SKIP)
    alone = [score.get((i, i + 1), np.log(SKIP)) for i in range(n)]
    cost = {}
    for i in range(2, n + 1):
        for j in range(max(0, i - JOIN), i - 1):
            price = np.log(SKIP) * (len(set(mark[j:i])) - 1 + sum(low[j:i]))
            whole = len(set(mark[j:i])) == 1  # one mark cut in parts: it may be one digit
            if sum(alone[j:i]) < price and (whole or _could_be_digit(pieces[j:i], height)):
                cost[(j, i)] = price
    several = {span: _join(pieces[span[0] : span[1]]) for span in cost}
    score |= _scores(several, cost, classify)
    joined |= several
    best, back = [0.0] + [-np.inf] * n, [None] * (n + 1)
    for i in range(1, n + 1):
        if small[i - 1] and best[i - 1] + np.log(SKIP) > best[i]:
            best[i], back[i] = best[i - 1] + np.log(SKIP), (i - 1, None)
        for j in range(max(0, i - JOIN), i):
            if (j, i) in score and best[j] + score[(j, i)] > best[i]:
                best[i], back[i] = best[j] + score[(j, i)], (j, (j, i))
    if back[n] is None:
        return pieces, []
    chosen, left_out, i = [], [], n
    while i > 0:
        was, (i, span) = i, back[i]
        if span is not None:
            chosen.append(joined[span])
        else:
            left_out.append(pieces[was - 1])
    return chosen[::-1], left_out[::-1]


def _scores(spans: dict, cost: dict, classify: Callable) -> dict:
    """Each span's log top probability, read by the model, plus its cost."""
    if not spans:
        return {}
    seen = [_to_mnist(piece[2], WIDE_DIGIT) for piece in spans.values()]
    probs = classify(np.stack(seen)[..., None])
    top = np.log(np.max(probs, axis=1) + 1e-9)
    return {span: float(t) + cost[span] for span, t in zip(spans, top, strict=True)}


def _could_be_digit(pieces: list, height: float) -> bool:
    top = min(p[0].start for p in pieces)
    bottom = max(p[0].stop for p in pieces)
    left, right = pieces[0][1].start, max(p[1].stop for p in pieces)
    if bottom - top < SMALL * height:
        return False
    return len(pieces) == 1 or right - left <= WIDEST * height


def _join(pieces: list) -> tuple[slice, slice, np.ndarray]:
    """Pieces (rows, cols, ink) as one: the box round them all, their ink laid together."""
    if len(pieces) == 1:
        return pieces[0]
    top, bottom = min(p[0].start for p in pieces), max(p[0].stop for p in pieces)
    left, right = min(p[1].start for p in pieces), max(p[1].stop for p in pieces)
    ink = np.zeros((bottom - top, right - left), np.float32)
    for rows, cols, part in pieces:
        window = ink[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left]
        np.maximum(window, part, out=window)
    return slice(top, bottom), slice(left, right), ink


def _split_touching(rows: slice, cols: slice, ink: np.ndarray, height: float) -> list:
    """Cut a blob wider than ~1.2 digits into digit-wide parts, each cut at the thinnest
    column near where two digits would meet."""
    h, w = ink.shape
    size = max(height, h, 1)
    parts = max(1, round(w / (0.8 * size)))
    if parts == 1 or w < 1.2 * size:
        return [(rows, cols, ink)]
    if parts > MAX_DIGITS:
        raise ImageError(f"a mark {parts} digits wide: not a number this reads")
    profile = (ink > 0).sum(0)
    edges = [0]
    for k in range(1, parts):
        centre, half = k * w // parts, max(1, w // (3 * parts))
        lo, hi = max(edges[-1] + 1, centre - half), min(w - 1, centre + half)
        edges.append(lo + int(np.argmin(profile[lo:hi])) if hi > lo else max(centre, lo))
    edges.append(w)
    return [
        (rows, slice(cols.start + a, cols.start + b), ink[:, a:b])
        for a, b in itertools.pairwise(edges)
        if b > a and ink[:, a:b].any()
    ]


def number_pieces(
    gray: np.ndarray, classify: Callable | None = None
) -> list[tuple[slice, slice, np.ndarray]]:
    """Each digit of a number written in a row, left to right: (rows, cols, its 28x28), the
    rows and columns those of the picture. `classify` lets the model settle how the marks
    form digits (see `segment`)."""
    return locate_number(gray, classify)[1]


def locate_number(
    gray: np.ndarray, classify: Callable | None = None
) -> tuple[photo.Ink, list[tuple[slice, slice, np.ndarray]], list[marks.Mark]]:
    """What the photo stage saw (the sheet, if one was cut out), each digit of the number as
    (rows, cols, its 28x28), and the marks between them (`marks.find`), every box in the
    picture's own pixels."""
    found = photo.find_ink(np.asarray(gray, dtype=np.float32))
    pieces, left_out = segment_marks(found.ink, classify)
    return found, *_in_photo(found, pieces, left_out)


def locate_numbers(
    gray: np.ndarray, classify: Callable | None = None
) -> tuple[photo.Ink, list[list[tuple[list, list[marks.Mark]]]]]:
    """`locate_number` for a page of numbers: what the photo stage saw, and for each line of
    writing, top to bottom, its numbers, left to right, each as (digits, marks)."""
    found = photo.find_ink(np.asarray(gray, dtype=np.float32))
    page = []
    for x0, y0, x1, y1 in lines.find_lines(found.ink):
        pieces, left_out = segment_marks(found.ink[y0:y1, x0:x1], classify)
        pieces, left_out = _moved(pieces, y0, x0), _moved(left_out, y0, x0)
        split = lines.split_numbers([_box(p) for p in pieces], [_box(p) for p in left_out])
        page.append(
            [
                _in_photo(found, [pieces[k] for k in ds], [left_out[k] for k in ss])
                for ds, ss in split
            ]
        )
    return found, [line for line in page if line]


def _pen(inks: list[np.ndarray]) -> float | None:
    """The digits' stroke width, px: twice a stroke's area over its outline, the median of
    the digits (a pen's dot is at least about as wide; a speck of dirt is not)."""
    widths = []
    for ink in (i for i in inks if i.size):
        mask = ink > 0.5 * ink.max()
        rim = mask & ~ndimage.binary_erosion(mask)
        if rim.any():
            widths.append(2 * mask.sum() / rim.sum())
    return float(np.median(widths)) if widths else None


def _box(piece: tuple) -> tuple[int, int, int, int]:
    rows, cols = piece[0], piece[1]
    return cols.start, rows.start, cols.stop, rows.stop


def _in_photo(found: photo.Ink, pieces: list, left_out: list) -> tuple[list, list[marks.Mark]]:
    """A number's digits as (rows, cols, 28x28) and its marks, boxes in the photo's pixels."""
    fills = [float((p[2] > 0.5 * p[2].max()).mean()) if p[2].size else 1.0 for p in left_out]
    boxes = [_box(p) for p in pieces]
    written = marks.find(boxes, [_box(p) for p in left_out], fills, _pen([p[2] for p in pieces]))
    located = []
    for piece, box in zip(pieces, boxes, strict=True):
        x0, y0, x1, y1 = found.box_in_photo(box)
        located.append((slice(y0, y1), slice(x0, x1), _to_mnist(piece[2], WIDE_DIGIT)))
    return located, [dataclasses.replace(m, box=found.box_in_photo(m.box)) for m in written]
