"""Temperature scaling: it finds the right temperature, keeps every answer, lowers the ECE."""

import numpy as np
import pytest
from helpers import overconfident

from mnist_cnn import calibrate, data, evaluate, models


def test_fit_recovers_the_temperature_and_lowers_the_ece():
    probs, y = overconfident()
    t = calibrate.fit_temperature(probs, y)
    assert t == pytest.approx(2.5, rel=0.1)
    fixed = calibrate.scaled(probs, t)
    assert evaluate.ece(fixed, y) < evaluate.ece(probs, y) / 3
    assert np.array_equal(fixed.argmax(1), probs.argmax(1))  # no answer changes


def test_folding_the_temperature_into_the_model_scales_its_logits():
    model = models.build("fast")
    x = np.random.default_rng(1).uniform(0, 255, (16, 28, 28, 1)).astype("float32")
    before = np.asarray(model(x), dtype=np.float64)
    calibrate.fold_into(model, 0.5)
    after = np.asarray(model(x), dtype=np.float64)
    assert np.allclose(after, calibrate.scaled(before, 0.5), atol=1e-5)
    assert np.array_equal(after.argmax(1), before.argmax(1))
    with pytest.raises(ValueError, match="softmax Dense"):
        calibrate.fold_into(models.ensemble([models.build("fast"), models.build("fast")]), 2.0)


def test_training_calibrates_on_validation_and_records_it(small_run, mnist_dir):
    _, metrics = small_run
    c = metrics["calibration"]
    assert 0.05 <= c["temperature"] <= 20
    assert c["val_loss_after"] <= c["val_loss_before"] + 1e-9
    assert c["val_ece_after"] < c["val_ece_before"]
    # and it carries over to the test set: undo the temperature to see the ECE before
    ds = data.load(mnist_dir, val_size=0, test_limit=metrics["test_size"])
    after = evaluate.predict_proba(models.load(small_run[0]), ds.x_test)
    before = calibrate.scaled(after, 1 / c["temperature"])
    assert evaluate.ece(after, ds.y_test) < evaluate.ece(before, ds.y_test)


def test_an_ensemble_is_calibrated_through_each_member():
    """One T for all members, fit on the mean of their scaled answers, folded into each: the
    ensemble's answers are then that mean, and no answer's order changes."""
    members = [models.build("fast"), models.build("fast")]
    for m in members:
        calibrate.fold_into(m, 0.3)  # overconfident, so that T has something to fix
    ensemble = models.ensemble(members)
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 255, (200, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, 200)
    each = [evaluate.predict_proba(m, x) for m in members]
    found = calibrate.calibrate(ensemble, x, y)
    t = found["temperature"]
    assert t > 1 and found["val_loss_after"] < found["val_loss_before"]
    expected = np.mean([calibrate.scaled(p, t) for p in each], axis=0)
    assert np.allclose(evaluate.predict_proba(ensemble, x), expected, atol=1e-4)
