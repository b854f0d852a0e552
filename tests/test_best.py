"""The accuracy recipe's parts: augmentation, the best net, ensembles and test-time augmentation."""

import json

import keras
import numpy as np
import pytest

from mnist_cnn import augment, cli, data, evaluate, models, train


def digits(n: int = 32, seed: int = 0) -> np.ndarray:
    """Blobs of 'ink' well inside a 28x28 frame: enough to see what a warp does."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28, 1), "float32")
    for i in range(n):
        r, c = rng.integers(8, 16, 2)
        x[i, r : r + 6, c : c + 4] = 255
    return x


def test_no_augmentation_changes_nothing():
    x = digits()
    assert not augment.Augment()
    assert augment.apply(x, np.random.default_rng(0), augment.Augment()) is x


def test_identity_affine_map_returns_the_image():
    x = digits()
    m = augment.affine_matrices(len(x), np.random.default_rng(0), augment.Augment())
    assert np.allclose(m, [1, 0, 0, 0, 1, 0, 0, 0])
    out = augment.affine_batch(x, np.random.default_rng(0), augment.Augment(rotate=1e-9))
    assert np.allclose(out, x, atol=1e-3)


def test_augmentation_moves_ink_but_keeps_shape_range_and_mass():
    x = digits(64)
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
    x = digits(32)
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
    x = digits(200)
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
    x = digits(16)
    out = augment.apply(x, np.random.default_rng(2), augment.Augment(shift=2))
    for a, b in zip(x, out, strict=True):  # some shift in [-2, 2]^2 reproduces it exactly
        assert any(
            np.array_equal(evaluate.shift(a[None], dy, dx)[0], b)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
        )


def test_batches_keep_labels_with_their_images():
    x = np.arange(300, dtype="float32")[:, None, None, None] * np.ones((1, 28, 28, 1), "float32")
    y = np.arange(300)
    batches = train.Batches(x, y, 64, augment.Augment(shift=2), seed=5)
    assert len(batches) == 5
    seen = []
    for i in range(len(batches)):
        bx, by = batches[i]
        assert bx.shape[1:] == (28, 28, 1) and len(bx) == len(by)
        centre = bx[:, 14, 14, 0]  # the constant image value survives a 2-pixel shift
        assert np.array_equal(centre, by.astype("float32"))
        seen += list(by)
    assert sorted(seen) == list(range(300))  # every image once per epoch
    first = batches[0][1].copy()
    batches.set_epoch(1)
    assert not np.array_equal(first, batches[0][1])  # reshuffled


def test_closing_clean_epochs_see_the_images_as_they_are():
    x = np.random.default_rng(0).uniform(0, 255, (100, 28, 28, 1)).astype("float32")
    batches = train.Batches(x, np.arange(100), 50, augment.Augment(rotate=20), 1, clean_from=2)
    for epoch, clean in [(0, False), (1, False), (2, True), (3, True)]:
        batches.set_epoch(epoch)
        bx, by = batches[0]
        assert np.array_equal(bx, x[by]) == clean


def test_fit_fetches_each_epoch_after_the_batches_know_it(tmp_path):
    """Keras must not fetch a batch of epoch e before EpochSync says e starts (no stale
    prefetch), or clean epochs and resumed runs would start with the wrong images."""
    fetched = []

    class Recording(train.Batches):
        def __getitem__(self, i):
            fetched.append(self.epoch)
            return super().__getitem__(i)

    x = np.zeros((64, 28, 28, 1), "float32")
    y = keras.utils.to_categorical(np.arange(64) % 10, 10)
    batches = Recording(x, y, 16, augment.Augment(shift=1), seed=0, clean_from=2)
    logged = []

    class Log(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            logged.append(batches.epoch)

    model = models.build("fast")
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(batches, epochs=3, verbose=0, callbacks=[train.EpochSync(batches), Log()])
    assert logged == [0] * 4 + [1] * 4 + [2] * 4
    # Keras peeks at a batch or two before training, to learn their shapes; then each epoch's
    # four batches are fetched while that epoch runs
    assert fetched[-12:] == [0] * 4 + [1] * 4 + [2] * 4 and set(fetched[:-12]) <= {0}


def test_deep_model_has_no_randomness_at_inference(tmp_path):
    model = models.build("deep")
    assert model.count_params() == 326_826
    x = digits(8)
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
    x = digits(8)
    a, b = np.asarray(model(x)), np.asarray(model(x))
    assert np.array_equal(a, b) and np.allclose(a.sum(1), 1, atol=1e-5)


def test_best_is_best_deep_on_the_residual_network():
    from mnist_cnn.recipes import RECIPES

    assert RECIPES["best"] == {**RECIPES["best-deep"], "architecture": "residual"}
    assert RECIPES["best-deep"]["architecture"] == "deep" and RECIPES["best"]["clean_epochs"] == 2


def test_tta_shift_moves_pixels():
    x = digits(2)
    moved = evaluate.shift(x, 1, -1)
    assert np.array_equal(moved[:, 1:, :-1], x[:, :-1, 1:])
    assert not moved[:, 0].any() and not moved[:, :, -1].any()


def short_run(recipe: str, mnist_dir, tmp_path_factory):
    """`recipe` on 4,000 images: one augmented epoch, one on the digits as they are."""
    out = tmp_path_factory.mktemp(recipe) / "run"
    cfg = train.make_config(
        recipe,
        seed=1,
        data_dir=str(mnist_dir),
        out=str(out),
        train_limit=4000,
        test_limit=1000,
        val_size=500,
        epochs=2,
        clean_epochs=1,
    )
    return out, train.train(cfg, verbose=0)


@pytest.fixture(scope="module")
def best_run(mnist_dir, tmp_path_factory):
    return short_run("best", mnist_dir, tmp_path_factory)


def test_a_short_best_run_learns(best_run):
    out, metrics = best_run
    assert metrics["params"] == 299_402 and metrics["model"] == "best"
    assert metrics["test_accuracy"] > 0.9, metrics["test_accuracy"]  # 4,000 images, 2 epochs
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "residual"
    assert config["rotate"] == 10 and config["label_smoothing"] == 0.1
    history = json.loads((out / "history.json").read_text())
    assert history["loss"][-1] < history["loss"][0]


@pytest.fixture(scope="module")
def deep_run(mnist_dir, tmp_path_factory):
    return short_run("best-deep", mnist_dir, tmp_path_factory)


def test_a_short_best_deep_run_learns(deep_run):
    out, metrics = deep_run
    assert metrics["params"] == 326_826 and metrics["model"] == "best-deep"
    assert metrics["test_accuracy"] > 0.9, metrics["test_accuracy"]  # 4,000 images, 2 epochs
    assert json.loads((out / "config.json").read_text())["architecture"] == "deep"


def test_ensemble_is_the_mean_of_its_members(
    best_run, deep_run, small_run, mnist_dir, tmp_path, capsys
):
    runs = [best_run[0], deep_run[0], small_run[0]]  # three architectures
    out = tmp_path / "ens"
    code = cli.main(["ensemble", *map(str, runs), "--out", str(out), "--test-limit", "500"])
    assert code == 0
    x = data.load(mnist_dir, val_size=0, test_limit=500).x_test
    mean = np.mean([evaluate.predict_proba(models.load(r), x) for r in runs], axis=0)
    ens = models.load(out)  # saved and loaded like any model
    assert np.allclose(evaluate.predict_proba(ens, x), mean, atol=1e-6)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_size"] == 500 and len(metrics["member_test_accuracy"]) == 3
    assert (out / "misclassified.png").exists() and (out / "confusion.png").exists()
    assert "members:" in capsys.readouterr().out
    # the ensemble evaluates through the ordinary command, with and without TTA
    assert cli.main(["evaluate", str(out), "--test-limit", "300", "--tta"]) == 0
    scored = json.loads((out / "eval" / "metrics.json").read_text())
    assert scored["tta"] is True and 0 < scored["test_accuracy_without_tta"] <= 1


def test_bad_augmentation_values_are_refused(tmp_path, capsys):
    for flag, value in (("--label-smoothing", "1.5"), ("--zoom", "2")):
        assert cli.main(["train", flag, value, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "label_smoothing must be" in err and "zoom must be" in err
    assert not (tmp_path / "x").exists()  # refused before anything was written
    with pytest.raises(SystemExit):
        cli.main(["train", "--rotate", "-3"])
    assert "-3.0 is too small" in capsys.readouterr().err
