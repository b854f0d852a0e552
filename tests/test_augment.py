"""Training-time augmentation: moves, warps, pens and scans, seeded and shape-keeping."""

import keras
import numpy as np
from helpers import blobs
from scipy import ndimage

from mnist_cnn import augment, evaluate


def test_no_augmentation_changes_nothing():
    x = blobs()
    assert not augment.Augment()
    assert augment.apply(x, augment.Augment()) is x
    layer = augment.Augmentation(augment.Augment(rotate=20))
    assert np.array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)  # predict
    layer.enabled = False  # a closing clean epoch
    assert np.array_equal(keras.ops.convert_to_numpy(layer(x, training=True)), x)


def test_a_tiny_warp_returns_the_image():
    x = blobs()
    out = augment.apply(x, augment.Augment(rotate=1e-9))
    assert np.allclose(out, x, atol=1e-3)
    out = augment.apply(x, augment.Augment(elastic=1e-9))
    assert np.allclose(out, x, atol=1e-3)


def test_augmentation_moves_ink_but_keeps_shape_range_and_mass():
    x = blobs(64)
    aug = augment.Augment(shift=2.5, rotate=10, zoom=0.1, shear=10)
    out = augment.apply(x, aug, seed=1)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255.01
    assert np.mean(np.abs(out - x) > 1) > 0.01  # it did move
    ratio = out.sum((1, 2, 3)) / x.sum((1, 2, 3))  # ink stays within zoom and resampling
    assert np.all((ratio > 0.7) & (ratio < 1.35))
    assert np.array_equal(out, augment.apply(x, aug, seed=1))  # seeded: repeatable
    assert not np.array_equal(out, augment.apply(x, aug, seed=2))


def test_bilinear_sampling_matches_scipy():
    x = blobs(8)[..., 0]
    rows, cols = np.random.default_rng(0).uniform(-3, 30, (2, 8, 28, 28)).astype("float32")
    mine = keras.ops.convert_to_numpy(augment._bilinear(x, rows, cols))
    scipy_way = [ndimage.map_coordinates(x[i], [rows[i], cols[i]], order=1) for i in range(8)]
    assert np.allclose(mine, scipy_way, atol=1e-3)


def test_elastic_warp_wobbles_ink_without_erasing_it():
    x = blobs(32)
    wobbly = augment.apply(x, augment.Augment(elastic=34), seed=5)
    assert wobbly.shape == x.shape and wobbly.min() >= 0 and wobbly.max() <= 255.01
    assert np.mean(np.abs(wobbly - x) > 1) > 0.01
    ratio = wobbly.sum((1, 2, 3)) / x.sum((1, 2, 3))  # a wobble stretches, never erases
    assert np.all((ratio > 0.3) & (ratio < 3.0)) and 0.8 < np.median(ratio) < 1.2


def test_restyle_changes_pen_blur_and_noise_but_not_where_the_digit_is():
    x = blobs(200)
    x[:, 10:12, 8:20] = 255  # a thin bar: thinning must not erase it
    mass = x.sum((1, 2, 3))
    bold = augment.apply(x, augment.Augment(thickness=1.0), seed=3)
    ratio = bold.sum((1, 2, 3)) / mass
    assert np.sum(ratio > 1.1) > 60 and np.sum(ratio < 0.9) > 60  # bolder and finer pens
    assert ratio.min() >= 0.4  # never erased
    aug = augment.Augment(thickness=0.5, blur=1.0, noise=20)
    out = augment.apply(x, aug, seed=4)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255.01
    assert np.array_equal(out, augment.apply(x, aug, seed=4))  # seeded
    centre = [np.argwhere(im[..., 0] > 128).mean(0) for im in (x[0], out[0])]
    assert np.abs(centre[0] - centre[1]).max() < 1.5  # no warp: the ink stays put
    soft = augment.apply(x, augment.Augment(blur=1.0), seed=6)
    blurred = (soft != x).any(axis=(1, 2, 3))
    assert 0.3 < blurred.mean() < 0.7  # half the images
    assert np.allclose(soft.max((1, 2, 3)), 255, atol=0.01)  # the ink keeps its peak
    grainy = augment.apply(x, augment.Augment(noise=20), seed=5)
    assert np.mean(np.any(grainy[:, :3] > 0, axis=(1, 2, 3))) > 0.3  # noise reaches the paper


def test_whole_pixel_shift_is_exact_and_reaches_every_offset():
    x = blobs(64)
    out = augment.apply(x, augment.Augment(shift=2), seed=2)
    offsets = set()
    for a, b in zip(x, out, strict=True):  # some shift in [-2, 2]^2 reproduces it exactly
        found = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(evaluate.shift(a[None], dy, dx)[0], b)
        ]
        assert found
        offsets.add(found[0][0])
    assert offsets == {-2, -1, 0, 1, 2}


def test_scans_are_blocky_and_few_levelled():
    x = np.zeros((64, 28, 28, 1), np.float32)
    x[:, 6:22, 12:16] = 255.0
    x[:, 8:10, 8:20] = 128.0
    out = augment.apply(x, augment.Augment(scan=1.0), seed=0)
    assert np.array_equal(out, augment.apply(x, augment.Augment(scan=1.0), seed=0))
    ratio = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert np.all((ratio > 0.5) & (ratio < 3.0))  # survives; binarising makes grey ink full
    levels = [len(np.unique(np.round(im))) for im in out]
    assert np.median(levels) <= 6  # binarised or a few grey levels, scaled up by nearest...
    assert max(levels) > 6  # ... or bilinear
    partly = augment.apply(x, augment.Augment(scan=0.3), seed=1)
    assert 0.1 < np.mean((partly != x).any(axis=(1, 2, 3))) < 0.5


def test_the_layer_runs_inside_a_compiled_train_step():
    x, y = blobs(64), np.arange(64) % 10
    layers = [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    inner = keras.Sequential(layers)
    aug = augment.Augment(2.5, 10, 0.1, 10, elastic=20, thickness=0.5, blur=1, noise=9, scan=0.3)
    layer = augment.Augmentation(aug, seed=0)
    images = keras.Input((28, 28, 1))
    trainer = keras.Model(images, inner(layer(images)))
    trainer.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    trainer.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert inner.count_params() == trainer.count_params()  # the layer adds no weights to save


def test_reseeding_by_epoch_repeats_that_epochs_draws():
    """What a resumed run relies on: epoch e's augmentation depends on (seed, e) alone."""
    x = blobs(16)
    layer = augment.Augmentation(augment.Augment(rotate=20, noise=10), seed=0)

    def epoch(seed, e):
        layer.reseed(seed, e)
        return keras.ops.convert_to_numpy(layer(x, training=True))

    third = epoch(7, 3)
    epoch(7, 1), epoch(7, 2)
    assert np.array_equal(epoch(7, 3), third)
    assert not np.array_equal(epoch(7, 4), third) and not np.array_equal(epoch(8, 3), third)
