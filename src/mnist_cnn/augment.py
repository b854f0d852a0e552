"""Training-time augmentation: each epoch sees every digit moved a little differently.

Only the training batches are touched; the model itself holds no augmentation, so prediction,
evaluation and exported models see the image as it is. Every draw comes from a numpy Generator
seeded by (run seed, epoch, batch), so a run repeats exactly and a resumed run continues the
same sequence.
"""

from dataclasses import dataclass

import keras
import numpy as np

from mnist_cnn.data import SIZE

CENTRE = (SIZE - 1) / 2  # the middle of the image, in pixel coordinates


@dataclass(frozen=True)
class Augment:
    """How far each training image may move: plain values, saved in config.json."""

    shift: float = 0.0  # pixels, each way
    rotate: float = 0.0  # degrees, each way
    zoom: float = 0.0  # fraction, each way, independently along x and y
    shear: float = 0.0  # degrees, each way
    elastic: float = 0.0  # elastic distortion strength (Simard et al. 2003: 34), 0 = off
    thickness: float = 0.0  # chance of a stroke one pixel thicker or thinner (other pens)
    blur: float = 0.0  # Gaussian blur, largest sigma in pixels (out-of-focus photos), half the time
    noise: float = 0.0  # Gaussian noise, largest std (0-255 scale: paper, sensor), half the time
    scan: float = 0.0  # chance of a low-resolution binarised scan, scaled back up (forms)

    @property
    def affine(self) -> bool:
        """Needs resampling: any rotation, zoom or shear, or a shift by part of a pixel."""
        return bool(self.rotate or self.zoom or self.shear or self.shift % 1 or self.elastic)

    @property
    def appearance(self) -> bool:
        return bool(self.thickness or self.blur or self.noise or self.scan)

    def __bool__(self) -> bool:
        return bool(self.shift or self.affine or self.appearance)


def shift_batch(x: np.ndarray, rng: np.random.Generator, shift: int) -> np.ndarray:
    """Move each image by a whole number of pixels (up to `shift`), filling with black."""
    s = int(shift)
    padded = np.pad(x, ((0, 0), (s, s), (s, s), (0, 0)))
    dy, dx = rng.integers(0, 2 * s + 1, size=(2, len(x)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (SIZE, SIZE), axis=(1, 2))
    return windows[np.arange(len(x)), dy, dx].transpose(0, 2, 3, 1)


def affine_matrices(n: int, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    """n random maps from output to input pixel coordinates, in Keras' 8-number form.

    Rotation, shear and zoom about the image centre, then a shift; the map is drawn directly
    as the inverse transform (its distribution is symmetric), which is what resampling needs.
    """
    theta = np.radians(rng.uniform(-aug.rotate, aug.rotate, n))
    shear = np.radians(rng.uniform(-aug.shear, aug.shear, n))
    zx, zy = 1 + rng.uniform(-aug.zoom, aug.zoom, (2, n))
    tx, ty = rng.uniform(-aug.shift, aug.shift, (2, n))
    cos, sin, tan = np.cos(theta), np.sin(theta), np.tan(shear)
    # M = rotation @ shear @ diag(zx, zy), acting on (x, y) = (column, row)
    a0, a1 = cos * zx, (cos * tan - sin) * zy
    b0, b1 = sin * zx, (sin * tan + cos) * zy
    a2 = CENTRE - a0 * CENTRE - a1 * CENTRE + tx
    b2 = CENTRE - b0 * CENTRE - b1 * CENTRE + ty
    zeros = np.zeros(n)
    return np.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1).astype("float32")


def affine_batch(x: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    """Warp each image by its own random affine map, one bilinear resampling per image."""
    out = keras.ops.image.affine_transform(
        x, affine_matrices(len(x), rng, aug), interpolation="bilinear", fill_value=0
    )
    return keras.ops.convert_to_numpy(out)


ELASTIC_SIGMA = 4.0  # pixels: how smooth the displacement field is (Simard et al.)


def warp_batch(x: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    """Affine map plus an elastic displacement field per image, in one bilinear resampling.

    The field is uniform noise in [-1, 1] smoothed by a Gaussian (sigma 4 px) and scaled by
    `aug.elastic`: the way Simard et al. made MNIST digits wobble like another hand's.
    """
    from scipy import ndimage

    m = affine_matrices(len(x), rng, aug)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    out = np.empty_like(x)
    for i in range(len(x)):
        a0, a1, a2, b0, b1, b2 = m[i, :6]
        src_c, src_r = a0 * cols + a1 * rows + a2, b0 * cols + b1 * rows + b2
        field = rng.uniform(-1, 1, (2, SIZE, SIZE))
        dr, dc = (aug.elastic * ndimage.gaussian_filter(f, ELASTIC_SIGMA) for f in field)
        coords = np.stack([src_r + dr, src_c + dc])
        out[i, ..., 0] = ndimage.map_coordinates(x[i, ..., 0], coords, order=1, cval=0.0)
    return out


def restyle_batch(x: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    """Other pens and cameras: strokes a pixel thicker or thinner, blur, noise, per image.

    What real scans and photos do to a digit that the MNIST-style normalisation cannot undo.
    Thinning that would erase most of a digit is skipped for that image.
    """
    from scipy import ndimage

    x = x.copy()
    n = len(x)
    pen, blurred, noisy = rng.random((3, n))
    if aug.thickness:
        footprint = (1, 2, 2, 1)  # one pixel more or less of stroke width
        thick = pen < aug.thickness / 2
        thin = (pen >= aug.thickness / 2) & (pen < aug.thickness)
        if thick.any():
            x[thick] = ndimage.grey_dilation(x[thick], size=footprint)
        if thin.any():
            eroded = ndimage.grey_erosion(x[thin], size=footprint)
            kept = eroded.sum(axis=(1, 2, 3)) >= 0.4 * x[thin].sum(axis=(1, 2, 3))
            x[np.flatnonzero(thin)[kept]] = eroded[kept]
    if aug.blur:
        sigmas = rng.uniform(0, aug.blur, n)
        for i in np.flatnonzero(blurred < 0.5):
            peak = x[i].max()
            x[i, ..., 0] = ndimage.gaussian_filter(x[i, ..., 0], sigmas[i])
            x[i] *= peak / max(float(x[i].max()), 1e-6)  # blur dims the ink; keep its peak
    if aug.scan:
        for i in np.flatnonzero(rng.random(n) < aug.scan):
            x[i, ..., 0] = scan_image(x[i, ..., 0], rng)
    if aug.noise:
        stds = np.where(noisy < 0.5, rng.uniform(0, aug.noise, n), 0)[:, None, None, None]
        x = np.clip(x + rng.normal(size=x.shape).astype(np.float32) * stds, 0, 255)
    return x.astype(np.float32)


def scan_image(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 digit as a form scanner keeps it: its 20 px box at 8-16 px, binarised (or a few
    grey levels), then scaled back up, so the model meets blocky, hard-edged strokes."""
    from PIL import Image

    side = int(rng.integers(8, 17))
    small = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BOX))
    top = max(float(small.max()), 1.0)
    if rng.random() < 0.7:
        small = np.where(small > top * rng.uniform(0.2, 0.45), 255.0, 0.0)
    else:
        levels = int(rng.integers(3, 6))
        small = np.round(small / top * (levels - 1)) * 255 / (levels - 1)
    resample = Image.Resampling.NEAREST if rng.random() < 0.5 else Image.Resampling.BILINEAR
    big = Image.fromarray(small.astype(np.float32)).resize(digit.shape[::-1], resample)
    return np.asarray(big, np.float32)


def apply(x: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    """The augmentation `aug` asks for: a warp (or whole-pixel shifts), then a restyle."""
    if aug.elastic:
        x = warp_batch(x, rng, aug)
    elif aug.affine:
        x = affine_batch(x, rng, aug)
    elif aug.shift:
        x = shift_batch(x, rng, int(aug.shift))
    if aug.appearance:
        x = restyle_batch(x, rng, aug)
    return x
