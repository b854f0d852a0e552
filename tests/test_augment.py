"""Training-time augmentation: moves, warps, pens and scans, seeded and shape-keeping."""

import numpy as np
from helpers import blobs

from mnist_cnn import augment, evaluate


def test_no_augmentation_changes_nothing():
    x = blobs()
    assert not augment.Augment()
    assert augment.apply(x, np.random.default_rng(0), augment.Augment()) is x


def test_identity_affine_map_returns_the_image():
    x = blobs()
    m = augment.affine_matrices(len(x), np.random.default_rng(0), augment.Augment())
    assert np.allclose(m, [1, 0, 0, 0, 1, 0, 0, 0])
    out = augment.affine_batch(x, np.random.default_rng(0), augment.Augment(rotate=1e-9))
    assert np.allclose(out, x, atol=1e-3)


def test_augmentation_moves_ink_but_keeps_shape_range_and_mass():
    x = blobs(64)
    aug = augment.Augment(shift=2.5, rotate=10, zoom=0.1, shear=10)
    out = augment.apply(x, np.random.default_rng(1), aug)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255.01
    assert np.mean(np.abs(out - x) > 1) > 0.01  # it did move
    ratio = out.sum((1, 2, 3)) / x.sum((1, 2, 3))  # ink stays within zoom and resampling
    assert np.all((ratio > 0.7) & (ratio < 1.35))
    again = augment.apply(x, np.random.default_rng(1), aug)
    assert np.array_equal(out, again)  # seeded: repeatable


def test_elastic_warp_wobbles_ink_and_its_affine_part_matches_keras():
    x = blobs(32)
    aug = augment.Augment(shift=2.5, rotate=10, zoom=0.1, shear=10)
    keras_way = augment.affine_batch(x, np.random.default_rng(5), aug)
    tiny = augment.Augment(2.5, 10, 0.1, 10, elastic=1e-9)
    assert np.allclose(augment.warp_batch(x, np.random.default_rng(5), tiny), keras_way, atol=1e-3)
    wobbly = augment.apply(x, np.random.default_rng(5), augment.Augment(elastic=34))
    assert wobbly.shape == x.shape and wobbly.min() >= 0 and wobbly.max() <= 255.01
    assert np.mean(np.abs(wobbly - x) > 1) > 0.01
    ratio = wobbly.sum((1, 2, 3)) / x.sum((1, 2, 3))  # a wobble stretches, never erases
    assert np.all((ratio > 0.3) & (ratio < 3.0)) and 0.8 < np.median(ratio) < 1.2


def test_restyle_changes_pen_blur_and_noise_but_not_where_the_digit_is():
    x = blobs(200)
    x[:, 10:12, 8:20] = 255  # a thin bar: thinning must not erase it
    mass = x.sum((1, 2, 3))
    bold = augment.apply(x, np.random.default_rng(3), augment.Augment(thickness=1.0))
    ratio = bold.sum((1, 2, 3)) / mass
    assert np.sum(ratio > 1.1) > 60 and np.sum(ratio < 0.9) > 60  # bolder and finer pens
    assert ratio.min() >= 0.4  # never erased
    aug = augment.Augment(thickness=0.5, blur=1.0, noise=20)
    out = augment.apply(x, np.random.default_rng(4), aug)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    assert np.array_equal(out, augment.apply(x, np.random.default_rng(4), aug))  # seeded
    centre = [np.argwhere(im[..., 0] > 128).mean(0) for im in (x[0], out[0])]
    assert np.abs(centre[0] - centre[1]).max() < 1.5  # no warp: the ink stays put
    grainy = augment.apply(x, np.random.default_rng(5), augment.Augment(noise=20))
    assert np.mean(np.any(grainy[:, :3] > 0, axis=(1, 2, 3))) > 0.3  # noise reaches the paper


def test_whole_pixel_shift_is_exact():
    x = blobs(16)
    out = augment.apply(x, np.random.default_rng(2), augment.Augment(shift=2))
    for a, b in zip(x, out, strict=True):  # some shift in [-2, 2]^2 reproduces it exactly
        assert any(
            np.array_equal(evaluate.shift(a[None], dy, dx)[0], b)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
        )
