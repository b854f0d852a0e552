"""Training-time augmentation: each epoch sees every digit moved a little differently.

`Augmentation` is a Keras layer that training puts in front of the model, so the moves, warps,
pens, blurs, scans and noise run inside the compiled train step (with `keras.ops`, on
TensorFlow, JAX and PyTorch alike), on whatever device trains, instead of in a Python input
pipeline. The saved model holds none of it: prediction, evaluation and exported models see the
image as it is. Its draws come from a Keras SeedGenerator seeded by the run's seed, whose state
is part of the training checkpoint, so a run repeats and a resumed run goes on from there.
"""

from dataclasses import fields, make_dataclass

import keras
import numpy as np
from keras import ops

from mnist_cnn.data import SIZE
from mnist_cnn.recipes import AUGMENT

CENTRE = (SIZE - 1) / 2  # the middle of the image, in pixel coordinates
ELASTIC_SIGMA = 4.0  # pixels: how smooth the displacement field is (Simard et al.)
SCAN_SIDES = (8, 16)  # a scanned digit's whole image is 8-16 px square before it is scaled up


class _Moves:
    """What an Augment says as a whole: whether it moves, restyles, or does anything."""

    @property
    def warp(self) -> bool:
        return bool(self.shift or self.rotate or self.zoom or self.shear or self.elastic)

    @property
    def appearance(self) -> bool:
        return bool(self.thickness or self.blur or self.noise or self.scan)

    def __bool__(self) -> bool:
        return self.warp or self.appearance

    @classmethod
    def from_config(cls, cfg: object) -> "Augment":
        """The augmentation a training config (recipes.TrainConfig) asks for."""
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls)})


# How far each training image may move and how its look may change: TrainConfig's settings
# marked `augment` (their units and ranges are there), each 0 (off) unless given.
Augment = make_dataclass(
    "Augment", [(name, float, 0.0) for name in AUGMENT], bases=(_Moves,), frozen=True
)
Augment.__module__ = __name__  # (made, not written: pickle finds it here)


def _gaussian_matrix(sigma: float) -> np.ndarray:
    """SIZE x SIZE matrix M with M @ v = scipy's gaussian_filter1d(v, sigma) (reflect mode)."""
    from scipy import ndimage

    return ndimage.gaussian_filter1d(np.eye(SIZE), sigma, axis=0).astype("float32")


def _sandwich(m: object, x: object) -> object:
    """Per image b: m[b] @ x[b] @ m[b]^T, a separable linear map of each image."""
    return ops.einsum("bij,bjk,blk->bil", m, x, m)


def _bilinear(x: object, row: object, col: object) -> object:
    """Image b sampled at (row[b], col[b]), bilinear, black outside (scipy's map_coordinates
    with order=1; written out because Keras' needs the batch size known when it is traced)."""
    x, row, col = (ops.convert_to_tensor(a, "float32") for a in (x, row, col))
    first = ops.cumsum(ops.ones_like(row[:, :1, :1]), axis=0) - 1  # each image's index
    flat = ops.reshape(x, (-1,))
    r0, c0 = ops.floor(row), ops.floor(col)
    out = 0.0
    for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):
        r, c = r0 + dr, c0 + dc
        weight = (1 - ops.abs(row - r)) * (1 - ops.abs(col - c))
        inside = (r >= 0) & (r <= SIZE - 1) & (c >= 0) & (c <= SIZE - 1)
        at = (first * SIZE + ops.clip(r, 0, SIZE - 1)) * SIZE + ops.clip(c, 0, SIZE - 1)
        out = out + ops.where(inside, weight * ops.take(flat, ops.cast(at, "int32")), 0.0)
    return out


class Augmentation(keras.layers.Layer):
    """The augmentation `aug` asks for, on a batch of (N, 28, 28, 1) images, in training only.

    `enabled` False makes it pass images through: training sets it for the closing clean
    epochs and has Keras trace its train step again, so those epochs pay nothing for it.
    """

    def __init__(self, aug: Augment, seed: int = 0, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.aug = aug
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.enabled = True
        self.smooth = _gaussian_matrix(ELASTIC_SIGMA) if aug.elastic else None

    def call(self, x: object, training: bool = False) -> object:
        return self.transform(x) if training and self.enabled and self.aug else x

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def reseed(self, seed: int, epoch: int) -> None:
        """Start epoch `epoch`'s own random stream: the same in a run resumed there."""
        state = self.seed_generator.state  # (seed, count of draws so far)
        state.assign(ops.convert_to_tensor([seed % 2**31, epoch * 2**20], state.dtype))

    def uniform(self, shape: tuple, low: float = 0.0, high: float = 1.0) -> object:
        return keras.random.uniform(shape, low, high, seed=self.seed_generator)

    def transform(self, x: object) -> object:
        """A warp (affine, plus an elastic field if asked), then pen, blur, scan and noise."""
        if self.aug.warp:
            x = self.warp(x)
        x = x[..., 0]
        n = ops.shape(x)[0]
        if self.aug.thickness:
            x = self.pen(x, n)
        if self.aug.blur:
            x = self.blurred(x, n)
        if self.aug.scan:
            x = self.scanned(x, n)
        if self.aug.noise:
            std = self.uniform((n, 1, 1), 0, self.aug.noise)
            std = ops.where(self.uniform((n, 1, 1)) < 0.5, std, 0.0)
            noise = keras.random.normal(ops.shape(x), seed=self.seed_generator)
            x = ops.clip(x + noise * std, 0.0, 255.0)
        return x[..., None]

    def affine(self, n: object) -> list:
        """Per image, the map from output to input pixel coordinates (x = column, y = row):
        rotation, shear and zoom about the centre, then a shift (whole pixels for a whole
        `shift` and nothing else, so plain shifts stay exact)."""
        aug = self.aug
        theta = self.uniform((n,), -aug.rotate, aug.rotate) * (np.pi / 180)
        shear = self.uniform((n,), -aug.shear, aug.shear) * (np.pi / 180)
        zx = 1 + self.uniform((n,), -aug.zoom, aug.zoom)
        zy = 1 + self.uniform((n,), -aug.zoom, aug.zoom)
        if aug.shift % 1 == 0 and not (aug.rotate or aug.zoom or aug.shear or aug.elastic):
            # whole pixels, each of -shift..shift as likely: exact moves, no resampling blur
            tx, ty = (ops.floor(self.uniform((n,), -aug.shift, aug.shift + 1)) for _ in "xy")
        else:
            tx, ty = (self.uniform((n,), -aug.shift, aug.shift) for _ in "xy")
        cos, sin, tan = ops.cos(theta), ops.sin(theta), ops.tan(shear)
        a0, a1 = cos * zx, (cos * tan - sin) * zy
        b0, b1 = sin * zx, (sin * tan + cos) * zy
        a2 = CENTRE - (a0 + a1) * CENTRE + tx
        b2 = CENTRE - (b0 + b1) * CENTRE + ty
        return [a0, a1, a2, b0, b1, b2]

    def warp(self, x: object) -> object:
        n = ops.shape(x)[0]
        a0, a1, a2, b0, b1, b2 = self.affine(n)
        if not self.aug.elastic:
            zero = ops.zeros_like(a0)
            m = ops.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=1)
            return ops.image.affine_transform(x, m, interpolation="bilinear", fill_value=0)
        # the affine map plus a smooth random displacement field, in one bilinear resampling
        grid = ops.arange(SIZE, dtype="float32")
        rows, cols = grid[None, :, None], grid[None, None, :]
        col = a0[:, None, None] * cols + a1[:, None, None] * rows + a2[:, None, None]
        row = b0[:, None, None] * cols + b1[:, None, None] * rows + b2[:, None, None]
        g = ops.convert_to_tensor(self.smooth)  # uniform noise, Gaussian-smoothed both ways
        dr, dc = (
            self.aug.elastic
            * ops.einsum("ij,bjk,lk->bil", g, self.uniform((n, SIZE, SIZE), -1, 1), g)
            for _ in range(2)
        )
        return _bilinear(x[..., 0], row + dr, col + dc)[..., None]

    def pen(self, x: object, n: object) -> object:
        """Strokes a pixel bolder or finer; a thinning that would erase most ink is skipped."""
        draw = self.uniform((n, 1, 1))
        bold = ops.max_pool(x[..., None], 2, strides=1, padding="same")[..., 0]
        fine = -ops.max_pool(-x[..., None], 2, strides=1, padding="same")[..., 0]
        kept = ops.sum(fine, axis=(1, 2), keepdims=True) >= 0.4 * ops.sum(x, (1, 2), keepdims=True)
        half = self.aug.thickness / 2
        x = ops.where(draw < half, bold, x)
        return ops.where((draw >= half) & (draw < self.aug.thickness) & kept, fine, x)

    def blurred(self, x: object, n: object) -> object:
        """Half the images out of focus: a Gaussian of sigma up to `blur`, ink peak kept."""
        sigma = ops.maximum(self.uniform((n, 1, 1), 0, self.aug.blur), 1e-3)
        grid = ops.arange(SIZE, dtype="float32")
        kernel = ops.exp(-ops.square(grid[:, None] - grid[None, :])[None] / (2 * sigma**2))
        kernel = kernel / ops.sum(kernel, axis=2, keepdims=True)
        soft = _sandwich(kernel, x)
        peak = ops.max(x, axis=(1, 2), keepdims=True)
        soft = soft * peak / ops.maximum(ops.max(soft, axis=(1, 2), keepdims=True), 1e-6)
        return ops.where(self.uniform((n, 1, 1)) < 0.5, soft, x)

    def scanned(self, x: object, n: object) -> object:
        """A share `scan` of the images as a form scanner keeps them: the whole image at 8-16 px
        (box filter), binarised (or a few grey levels), scaled back up, nearest or bilinear."""
        low, high = SCAN_SIDES
        side = ops.floor(self.uniform((n, 1, 1), low, high + 1))
        i = ops.arange(high, dtype="float32")[None, :, None]  # small pixel
        j = ops.arange(SIZE, dtype="float32")[None, None, :]  # 28 px pixel
        step = SIZE / side
        overlap = ops.minimum(j + 1, (i + 1) * step) - ops.maximum(j, i * step)
        down = ops.where(i < side, ops.maximum(overlap, 0.0) / step, 0.0)  # (n, 16, 28)
        small = _sandwich(down, x)
        top = ops.maximum(ops.max(small, axis=(1, 2), keepdims=True), 1.0)
        level = self.uniform((n, 1, 1), 0.2, 0.45)
        binary = ops.where(small > top * level, 255.0, 0.0)
        steps = ops.floor(self.uniform((n, 1, 1), 3, 6)) - 1
        grey = ops.round(small / top * steps) * 255 / steps
        small = ops.where(self.uniform((n, 1, 1)) < 0.7, binary, grey)
        centre = (ops.transpose(j, (0, 2, 1)) + 0.5) * side / SIZE  # (n, 28, 1)
        nearest = ops.cast(ops.floor(centre) == ops.transpose(i, (0, 2, 1)), "float32")
        at = ops.clip(centre - 0.5, 0.0, side - 1)
        linear = ops.maximum(1 - ops.abs(at - ops.transpose(i, (0, 2, 1))), 0.0)
        up = ops.where(self.uniform((n, 1, 1)) < 0.5, nearest, linear)  # (n, 28, 16)
        return ops.where(self.uniform((n, 1, 1)) < self.aug.scan, _sandwich(up, small), x)


def apply(x: np.ndarray, aug: Augment, seed: int = 0) -> np.ndarray:
    """`aug` applied once to a numpy batch, outside any model (tests, fine-tuning, plots)."""
    if not aug:
        return x
    out = Augmentation(aug, seed)(x.astype("float32"), training=True)
    return keras.ops.convert_to_numpy(out)
