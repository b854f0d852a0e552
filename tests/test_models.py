"""The seed architecture must stay exactly the seed's."""

import numpy as np
import pytest

from mnist_cnn import cli, models
from mnist_cnn.errors import MnistCnnError

SEED_SHAPES = [
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
    model = models.build("seed")
    got = [
        (layer.name, tuple(layer.output.shape[1:]), layer.count_params()) for layer in model.layers
    ]
    assert got == SEED_SHAPES
    assert model.count_params() == 225_034


def test_seed_takes_raw_pixels_and_outputs_probabilities():
    model = models.build("seed")
    x = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1)).astype("float32")
    probs = np.asarray(model.predict(x, verbose=0))
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_summary_command_prints_the_table(capsys):
    assert cli.main(["summary", "--model", "seed"]) == 0
    out = capsys.readouterr().out
    for name, shape, _ in SEED_SHAPES[1:]:
        assert name in out and ", ".join(map(str, shape)) in out
    assert "225,034" in out


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
    with pytest.raises(MnistCnnError, match="cannot load model"):
        models.load(tmp_path / "bad.keras")
    with pytest.raises(MnistCnnError, match="no model at"):
        models.load(tmp_path)  # a folder without model.keras


def test_saved_model_round_trips(tmp_path):
    model = models.build("seed")
    model.save(tmp_path / "m.keras")
    x = np.random.default_rng(1).integers(0, 256, (3, 28, 28, 1)).astype("float32")
    again = models.load(tmp_path / "m.keras")
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))


def test_flops_per_image_counts_conv_and_dense_multiply_adds():
    # conv1 26*26*32*9*1, conv2 11*11*64*9*32, dense 1600*128, out 128*10; x2 for mul+add
    expected = 2 * (26 * 26 * 32 * 9 + 11 * 11 * 64 * 9 * 32 + 1600 * 128 + 128 * 10)
    assert models.flops_per_image(models.build("seed")) == expected == 5_262_080


def test_fast_model_is_smaller_and_standardises_inside():
    model = models.build("fast")
    assert model.count_params() == 108_874
    assert models.flops_per_image(model) < models.flops_per_image(models.build("seed")) / 2
    scale = model.get_layer("scale")
    out = np.asarray(scale(np.array([[0.0, 255.0]], dtype="float32")))
    np.testing.assert_allclose(out, [[-0.1307 / 0.3081, (1 - 0.1307) / 0.3081]], rtol=1e-5)
