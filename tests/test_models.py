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


def test_fast_model_pools_before_its_relus_and_computes_what_relu_then_pool_does():
    model = models.build("fast")
    assert [layer.name for layer in model.layers][1:4] == ["conv1", "pool1", "relu1"]
    keras.utils.set_random_seed(3)
    reference = keras.Sequential(  # the order of the classic net: ReLU inside the conv
        [
            keras.Input(models.INPUT_SHAPE),
            models.standardise(),
            keras.layers.Conv2D(16, 5, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    reference.set_weights(model.get_weights())
    x = np.random.default_rng(4).integers(0, 256, (16, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(reference(x)), atol=1e-6)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bfloat16_only_where_the_processor_computes_it(native, monkeypatch):
    monkeypatch.setattr(models, "_cpu_has_bfloat16", lambda: native)  # TensorFlow, no GPU
    expected = "mixed_bfloat16" if native else "float32"
    assert models.resolve_precision("auto") == expected
    assert models.resolve_precision("float32") == "float32"  # a named one is kept as it is
    model = models.build("fast", "auto")
    assert model.get_layer("conv1").compute_dtype == expected.removeprefix("mixed_")
    assert model.get_layer("conv1").variable_dtype == "float32"
    with pytest.raises(MnistCnnError, match="unknown precision 'float8'"):
        models.resolve_precision("float8")


@pytest.mark.parametrize(
    "flags, native",
    [("fpu avx2 avx512f", False), ("avx512f avx512_bf16", True), ("amx_bf16", True)],
)
def test_the_cpu_flags_name_bfloat16_arithmetic(flags, native, monkeypatch):
    from pathlib import Path

    monkeypatch.setattr(Path, "read_text", lambda self, *a: f"flags\t: {flags}\n")
    assert models._cpu_has_bfloat16() is native


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
