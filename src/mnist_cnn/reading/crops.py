"""A found digit as MNIST has its digits: 28x28, white ink on black, the ink's longer side
20 px, centred by its mass. What a correction stores, what `--show-input` draws, and what an
MNIST classifier reads.
"""

import cv2
import numpy as np

from mnist_cnn.reading.geometry import Box

SIZE = 28  # MNIST's side
INNER = 20  # MNIST's digits fit a 20x20 box inside it
FAINT = 0.15  # ink fainter than this (0-1) is left out of the crop's extent
# the crop's darkest fifth, as a share of its strongest ink, becomes black: MNIST's digits lie
# on pure black, where a real field's thin grey strokes lie on a grey guilloche or ruled paper
# (ORAND fields read 44.2 -> 46.6% exact; docs/log.md, 2026-12-07)
BACKGROUND = 0.2


def from_picture(gray: np.ndarray) -> np.ndarray:
    """A picture of one digit, alone on its paper (0-255, either polarity), as a 28x28 MNIST
    digit: its paper evened, cropped to its ink. What a classifier's synthetic training digits
    are made by; reading a user's picture goes through the reader instead."""
    from mnist_cnn.errors import ImageError
    from mnist_cnn.reading import paper

    ink = paper.even(gray)
    if ink.max() < 0.5:
        raise ImageError("no ink found: the picture is blank")
    return as_mnist(ink, Box(0, 0, ink.shape[1], ink.shape[0]))


def as_mnist(ink: np.ndarray, box: Box) -> np.ndarray:
    """The ink (0-1) inside `box` as a 28x28 MNIST digit, float32 0-255."""
    h, w = ink.shape
    x0, y0, x1, y1 = box.clipped(w, h).pixels()
    crop = ink[y0:y1, x0:x1]
    out = np.zeros((SIZE, SIZE), np.float32)
    if not crop.size:  # a box off the picture
        return out
    rows, cols = np.flatnonzero(crop.max(1) > FAINT), np.flatnonzero(crop.max(0) > FAINT)
    if not rows.size:
        return out
    crop = crop[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = INNER / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    small = np.clip((small / max(float(small.max()), 1e-6) - BACKGROUND) / (1 - BACKGROUND), 0, 1)
    small *= 255
    mass = small.sum()  # > 0: the strongest ink is 1 after the stretch
    cy = float((small.sum(1) * np.arange(small.shape[0])).sum() / mass)
    cx = float((small.sum(0) * np.arange(small.shape[1])).sum() / mass)
    top = int(np.clip(round(SIZE / 2 - 0.5 - cy), 0, SIZE - small.shape[0]))
    left = int(np.clip(round(SIZE / 2 - 0.5 - cx), 0, SIZE - small.shape[1]))
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return out
