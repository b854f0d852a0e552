"""The classic architecture stays exactly the Keras example's; the others are as designed."""

import keras
import numpy as np
import pytest
from helpers import blobs

from mnist_cnn import models
from mnist_cnn.errors import MnistCnnError

CLASSIC_SHAPES = [
    ("scale", (28, 28, 1), 0),
    ("conv1", (26, 26, 32), 320),
    ("pool1", (13, 13, 32), 0),
    ("conv2", (11, 11, 64), 18_496),
    ("pool2", (5, 5, 64), 0),
    ("flatten", (1600,), 0),
    ("dense", (128,), 204_928),
    ("probabilities", (10,), 1_290),
]


def test_seed_layers_shapes_and_parameters():
    model = models.build("classic")
    got = [
        (layer.name, tuple(layer.output.shape[1:]), layer.count_params()) for layer in model.layers
    ]
    assert got == CLASSIC_SHAPES
    assert model.count_params() == 225_034


def test_seed_takes_raw_pixels_and_outputs_probabilities():
    model = models.build("classic")
    x = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1)).astype("float32")
    probs = np.asarray(model.predict(x, verbose=0))
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(MnistCnnError, match="unknown model 'nope'"):
        models.build("nope")


def test_load_rejects_missing_wrong_and_corrupt_files(tmp_path):
    with pytest.raises(MnistCnnError, match="no model at"):
        models.load(tmp_path / "missing.keras")
    (tmp_path / "model.h5").write_bytes(b"x")
    with pytest.raises(MnistCnnError, match=r"not a \.keras file"):
        models.load(tmp_path / "model.h5")
    (tmp_path / "bad.keras").write_bytes(b"this is not a zip file")
    with pytest.raises(MnistCnnError, match="not a Keras model file"):
        models.load(tmp_path / "bad.keras")
    with pytest.raises(MnistCnnError, match="no model at"):
        models.load(tmp_path)  # a folder without model.keras


def test_saved_model_round_trips(tmp_path):
    model = models.build("classic")
    model.save(tmp_path / "m.keras")
    x = np.random.default_rng(1).integers(0, 256, (3, 28, 28, 1)).astype("float32")
    again = models.load(tmp_path / "m.keras")
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))


def test_flops_per_image_counts_conv_and_dense_multiply_adds():
    # conv1 26*26*32*9*1, conv2 11*11*64*9*32, dense 1600*128, out 128*10; x2 for mul+add
    expected = 2 * (26 * 26 * 32 * 9 + 11 * 11 * 64 * 9 * 32 + 1600 * 128 + 128 * 10)
    assert models.flops_per_image(models.build("classic")) == expected == 5_262_080


def test_fast_model_is_smaller_and_standardises_inside():
    model = models.build("fast")
    assert model.count_params() == 108_874
    assert models.flops_per_image(model) < models.flops_per_image(models.build("classic")) / 2
    scale = model.get_layer("scale")
    out = np.asarray(scale(np.array([[0.0, 255.0]], dtype="float32")))
    np.testing.assert_allclose(out, [[-0.1307 / 0.3081, (1 - 0.1307) / 0.3081]], rtol=1e-5)


def test_deep_model_has_no_randomness_at_inference(tmp_path):
    model = models.build("deep")
    assert model.count_params() == 326_826
    x = blobs(8)
    a, b = np.asarray(model(x)), np.asarray(model(x))
    assert np.array_equal(a, b)  # dropout off, batch-norm on its moving statistics
    assert np.allclose(a.sum(1), 1, atol=1e-5)
    assert not np.array_equal(np.asarray(model(x, training=True)), a)


def test_residual_model_keeps_full_resolution_and_adds_back_its_input():
    model = models.build("residual")
    assert model.count_params() == 299_402
    assert tuple(model.get_layer("res1").output.shape[1:]) == (28, 28, 32)  # padded, no crop
    assert tuple(model.get_layer("res4").output.shape[1:]) == (4, 4, 128)
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == 4
    x = blobs(8)
    a, b = np.asarray(model(x)), np.asarray(model(x))
    assert np.array_equal(a, b) and np.allclose(a.sum(1), 1, atol=1e-5)
