"""Scoring: calibration error, test-time augmentation, ensembles."""

import json

import numpy as np
import pytest
from helpers import blobs

from mnist_cnn import cli, data, evaluate, models


def test_tta_shift_moves_pixels():
    x = blobs(2)
    moved = evaluate.shift(x, 1, -1)
    assert np.array_equal(moved[:, 1:, :-1], x[:, :-1, 1:])
    assert not moved[:, 0].any() and not moved[:, :, -1].any()


@pytest.mark.xdist_group("short-best-runs")  # the process that trains them once for all
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
    config = json.loads((out / "config.json").read_text())  # how each member was trained
    assert [m["config"]["seed"] for m in config["members"]] == [
        json.loads((r / "config.json").read_text())["seed"] for r in runs
    ]
    # the ensemble evaluates through the ordinary command, with and without TTA
    assert cli.main(["evaluate", str(out), "--test-limit", "300", "--tta"]) == 0
    scored = json.loads((out / "eval" / "metrics.json").read_text())
    assert scored["tta"] is True and 0 < scored["test_accuracy_without_tta"] <= 1


def test_an_unreadable_member_config_stops_the_ensemble_before_it_writes(
    small_run, mnist_dir, tmp_path, capsys
):
    member = tmp_path / "member"
    member.mkdir()
    (member / "model.keras").write_bytes((small_run[0] / "model.keras").read_bytes())
    (member / "config.json").write_text("{not json")
    out = tmp_path / "ens"
    code = cli.main(["ensemble", str(small_run[0]), str(member), "--out", str(out)])
    assert code != 0
    assert "config.json" in capsys.readouterr().err
    assert not (out / "model.keras").exists() and not (out / "config.json").exists()


def test_an_ensemble_never_writes_over_a_run(small_run, mnist_dir, tmp_path, capsys):
    """`--out` naming a folder that holds a run is one clear error, and the run is untouched."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(small_run[0], out)
    before = (out / "model.keras").read_bytes(), (out / "metrics.json").read_text()
    args = ["ensemble", str(small_run[0]), str(small_run[0]), "--out", str(out)]
    assert cli.main([*args, "--data-dir", str(mnist_dir), "--test-limit", "200"]) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert ((out / "model.keras").read_bytes(), (out / "metrics.json").read_text()) == before


def test_ece_is_zero_when_confidence_matches_accuracy():
    probs = np.tile([0.8] + [0.2 / 9] * 9, (1000, 1))
    y = np.r_[np.zeros(800, int), np.ones(200, int)]
    assert evaluate.ece(probs, y) < 1e-9
    assert evaluate.ece(probs, np.ones(1000, int)) == pytest.approx(0.8)
