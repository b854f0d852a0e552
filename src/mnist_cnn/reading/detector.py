"""The reader's network at work: a page's ink in, every digit and mark on it out, each with a
box, the probability of each class, and how sure the network is that something is there.

The network (`network.build`, trained by `mnist-cnn train --recipe reader`) reads a page at one
scale, and reads digits best about TYPICAL px tall. A picture's writing may be any size, so
the page is first read small (its longer side SCOUT px), which finds the writing whatever its
size, then again at the scale that makes the digits found TYPICAL px tall. It runs on ONNX
Runtime: reading needs neither TensorFlow nor Keras.
"""

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from mnist_cnn.errors import ImageError
from mnist_cnn.reading.geometry import Box

CLASSES = "0123456789.,-"
DIGITS = 10  # the first ten of CLASSES
STRIDE = 4  # px of page per cell of the network
TYPICAL = 34.0  # px: the digit height the network reads best (its training pages' usual)
SCOUT = 320  # px: the longer side a page is first read at, to find how large its writing is
ALREADY = (0.7, 1.45)  # digits within these shares of TYPICAL are read where they were found
MAX_SIDE = 1600  # px: a page is read at most this large (tiny writing on a big sheet)
SMALLEST = 64  # px: a picture is read at least this tall (a 28x28 digit is scaled up)
MULTIPLE = 16  # the network halves the page four times
MARGIN = 8  # px of paper round the page: writing up to its edge is read whole
MAX_FOUND = 1000  # digits and marks on one page: more is noise or an attack, and is refused

FOUND = 0.4  # a cell whose heat is at least this, and the most in its 3x3, holds a centre
ONE_DIGIT = 0.1  # the heat enough where a picture is known to hold one digit (read_digit)


@dataclass(frozen=True)
class Detection:
    """One digit or mark the network found: its box, and the probability of each of CLASSES."""

    box: Box
    found: float  # the heat at its centre: how sure the network is that something is there
    probabilities: np.ndarray

    @property
    def is_digit(self) -> bool:
        """Whether it is likelier a digit (any of the ten) than a mark."""
        return float(self.probabilities[:DIGITS].sum()) >= 0.5

    @property
    def kind(self) -> str:
        """What it is: the likeliest digit, or where it is no digit, the likeliest mark."""
        if self.is_digit:
            return CLASSES[int(np.argmax(self.probabilities[:DIGITS]))]
        return CLASSES[DIGITS + int(np.argmax(self.probabilities[DIGITS:]))]


def decode(cells: np.ndarray, found: float = FOUND) -> list[Detection]:
    """The detections in one page's cells (H/4, W/4, outputs), boxes in page pixels."""
    heat = cells[..., 0]
    peaks = (heat >= found) & (heat == ndimage.maximum_filter(heat, size=3, mode="constant"))
    if peaks.sum() > MAX_FOUND:
        raise ImageError(f"{peaks.sum()} marks: too many to read (at most {MAX_FOUND})")
    out = []
    for i, j in zip(*np.nonzero(peaks), strict=True):
        logits = cells[i, j, 1 : 1 + len(CLASSES)].astype(np.float64)
        p = np.exp(logits - logits.max())
        dx, dy, lw, lh = cells[i, j, 1 + len(CLASSES) :]
        cx, cy = (j + dx) * STRIDE, (i + dy) * STRIDE
        w, h = np.exp(lw) * STRIDE, np.exp(lh) * STRIDE
        box = Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        out.append(Detection(box, float(heat[i, j]), p / p.sum()))
    return out


Cells = Callable[[np.ndarray], np.ndarray]  # (1, H, W, 1) raw pixels -> (1, H/4, W/4, outputs)


def cells_at(run: Cells, ink: np.ndarray, scale: float, found: float = FOUND) -> list[Detection]:
    """The detections on `ink` (0-1) read at `scale`, boxes in `ink`'s pixels."""
    h, w = ink.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = ink if scale == 1 else cv2.resize(ink, size, interpolation=_resampling(scale))
    bottom = (-(small.shape[0] + 2 * MARGIN)) % MULTIPLE + MARGIN
    right = (-(small.shape[1] + 2 * MARGIN)) % MULTIPLE + MARGIN
    page = np.pad(small * 255, ((MARGIN, bottom), (MARGIN, right)))[None, ..., None]
    seen = decode(run(page.astype(np.float32))[0], found)
    shift = Box(MARGIN, MARGIN, MARGIN, MARGIN)
    sx, sy = size[0] / w, size[1] / h
    return [
        Detection(
            Box(
                (d.box.x0 - shift.x0) / sx,
                (d.box.y0 - shift.y0) / sy,
                (d.box.x1 - shift.x0) / sx,
                (d.box.y1 - shift.y0) / sy,
            ),
            d.found,
            d.probabilities,
        )
        for d in seen
    ]


def _resampling(scale: float) -> int:
    return cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR


def find(run: Cells, ink: np.ndarray, least: float = FOUND) -> list[Detection]:
    """Every digit and mark on a page's ink (0-1), boxes in its pixels: read once to see how
    large the writing is, then, where that is far from TYPICAL, again at the scale that makes
    it so. `least`: the heat a centre needs (FOUND)."""
    h, w = ink.shape
    most = MAX_SIDE / max(h, w)  # a strip of a picture is not blown up past MAX_SIDE
    scale = min(max(min(SCOUT / max(h, w), 1.0), SMALLEST / h), most)
    found = cells_at(run, ink, scale, least)
    if not found and scale < 1:  # writing too small to see at the scout's size
        scale = min(1.0, most)
        found = cells_at(run, ink, scale, least)
    tall = [d.box.height * scale for d in found if d.is_digit]
    if not tall:
        return found
    size = float(np.median(tall))
    if ALREADY[0] * TYPICAL <= size <= ALREADY[1] * TYPICAL:
        return found
    better = min(max(min(scale * TYPICAL / size, 4.0), SMALLEST / h), most)
    if abs(better / scale - 1) < 0.15:
        return found
    return cells_at(run, ink, better, least)
