"""Training end to end on real MNIST: artifacts, re-evaluation, kill-and-resume, accuracy."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from conftest import SMALL
from PIL import Image

from mnist_cnn import cli, data, models, runs, train
from mnist_cnn.errors import MnistCnnError


def test_run_folder_holds_every_artifact(small_run):
    out, metrics = small_run
    for name in ("model.keras", "config.json", "history.json", "metrics.json"):
        assert (out / name).stat().st_size > 0, name
    for name in ("curves.png", "confusion.png", "misclassified.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.size[0] > 300, name
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert not (out / "checkpoint").exists()  # removed once training finished
    hidden = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert hidden == [".lock"]  # no temp files left; the lock that kept the folder to one run

    saved = json.loads((out / "metrics.json").read_text())
    assert saved == metrics
    assert saved["params"] == 225_034
    assert saved["epochs"] == 2 and saved["train_size"] == 3000 and saved["test_size"] == 1000
    assert saved["train_seconds"] > 0 and saved["val_seconds"] > 0
    assert 0.85 < saved["test_accuracy"] <= 1.0  # 3,000 images, 2 epochs: it learned
    cm = np.array(saved["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 1000
    assert np.trace(cm) == round(saved["test_accuracy"] * 1000)
    assert set(saved["per_class"]) == {str(d) for d in range(10)}
    assert all(0 <= v["f1"] <= 1 for v in saved["per_class"].values())

    history = json.loads((out / "history.json").read_text())
    for key in (
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "epoch_seconds",
        "val_seconds",
        "lr",
    ):
        assert len(history[key]) == 2, key
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 3 and config["train_limit"] == 3000


def test_evaluate_reproduces_training_accuracy_exactly(small_run, mnist_dir, tmp_path):
    out, metrics = small_run
    code = cli.main(
        [
            "evaluate",
            str(out),
            "--data-dir",
            str(mnist_dir),
            "--test-limit",
            "1000",
            "--out",
            str(tmp_path / "eval"),
        ]
    )
    assert code == 0
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert again["test_accuracy"] == metrics["test_accuracy"]
    assert again["test_loss"] == metrics["test_loss"]
    assert again["confusion_matrix"] == metrics["confusion_matrix"]
    assert (tmp_path / "eval" / "confusion.png").exists()
    assert (tmp_path / "eval" / "misclassified.png").exists()


def test_same_seed_same_result(small_run, mnist_dir, tmp_path):
    _out, metrics = small_run
    cfg = train.make_config(
        "classic", seed=3, data_dir=str(mnist_dir), out=str(tmp_path / "again"), **SMALL
    )
    assert train.train(cfg, verbose=0).metrics["test_accuracy"] == metrics["test_accuracy"]


def test_refuses_to_overwrite_a_run(small_run, mnist_dir):
    out, _ = small_run
    cfg = train.make_config("classic", data_dir=str(mnist_dir), out=str(out), **SMALL)
    with pytest.raises(MnistCnnError, match=r"already holds a finished run.*another --out"):
        train.train(cfg, verbose=0)
    with pytest.raises(MnistCnnError, match=r"already holds a finished run.*nothing to resume"):
        train.train(cfg, resume=True, verbose=0)


def test_bad_data_stops_before_the_run_exists_so_a_retry_works(tmp_path, mnist_dir):
    out = tmp_path / "run"
    cfg = train.make_config("classic", data_dir=str(tmp_path / "nowhere"), out=str(out), **SMALL)
    with pytest.raises(MnistCnnError, match="does not exist"):
        train.train(cfg, verbose=0)
    assert not (out / "config.json").exists()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mnist_cnn", *args]


def test_killed_run_resumes_from_its_last_finished_epoch(mnist_dir, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [
        "train",
        "--data-dir",
        str(mnist_dir),
        "--out",
        str(out),
        "--epochs",
        "5",
        "--train-limit",
        "2000",
        "--test-limit",
        "500",
        "--val-size",
        "500",
        "--seed",
        "1",
    ]
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(_cli(*args), env=env, stdout=log, stderr=subprocess.STDOUT)
    history = out / "history.json"
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            meta = out / "checkpoint" / "training_metadata.json"
            if meta.exists() and json.loads(meta.read_text() or "{}").get("epoch", 0) >= 2:
                break
            time.sleep(0.05)
        ended = "training ended before it could be killed: "
        assert proc.poll() is None, ended + (tmp_path / "first.log").read_text()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    before = json.loads(history.read_text())
    done = len(before["loss"])
    assert 2 <= done < 5 and not (out / "metrics.json").exists()

    resumed = subprocess.run(
        _cli("train", "--resume", str(out)), env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Epoch 1/5" not in resumed.stdout  # it did not start over
    assert f"Epoch {done + 1}/5" in resumed.stdout or f"Epoch {done}/5" in resumed.stdout
    after = json.loads(history.read_text())
    assert len(after["loss"]) == 5
    # epochs the checkpoint held are kept as they were (the last may be redone if the kill
    # fell between history.json and the checkpoint being written)
    assert after["loss"][: done - 1] == before["loss"][: done - 1]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 5 and metrics["test_accuracy"] > 0.9


@pytest.mark.slow
def test_default_recipe_learns_the_whole_training_set(mnist_dir, tmp_path):
    """`make train`'s recipe on all of MNIST, one epoch of its eight: 99% after eight is
    `make bench`'s figure (README), too slow for every test run on a 2-core machine."""
    cfg = train.make_config(
        "classic", data_dir=str(mnist_dir), out=str(tmp_path / "default"), epochs=1
    )
    metrics = train.train(cfg, verbose=2).metrics
    print(json.dumps({k: metrics[k] for k in ("test_accuracy", "train_seconds", "epochs")}))
    assert metrics["test_accuracy"] >= 0.985
    assert metrics["test_size"] == 10_000 and metrics["train_size"] == 55_000
    assert metrics["params"] == 225_034


@pytest.mark.slow
def test_fast_recipe_reaches_98_8_percent_on_real_mnist(mnist_dir, tmp_path):
    cfg = train.make_config("fast", data_dir=str(mnist_dir), out=str(tmp_path / "fast"))
    metrics = train.train(cfg, verbose=0).metrics
    print(json.dumps({k: metrics[k] for k in ("test_accuracy", "train_seconds", "epochs")}))
    assert metrics["epochs"] == 1 and metrics["params"] == 108_874
    assert metrics["test_accuracy"] >= 0.988


@pytest.mark.xdist_group("short-best-runs")  # with test_evaluate's ensemble, which uses them
def test_a_short_best_run_learns(best_run):
    out, metrics = best_run
    assert metrics["params"] == 299_402 and metrics["recipe"] == "best"
    assert metrics["test_accuracy"] > 0.9, metrics["test_accuracy"]  # 4,000 images, 2 epochs
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "residual"
    assert config["rotate"] == 10 and config["label_smoothing"] == 0.1
    history = json.loads((out / "history.json").read_text())
    assert history["loss"][-1] < history["loss"][0]


@pytest.mark.xdist_group("short-best-runs")
def test_a_short_best_deep_run_learns(deep_run):
    out, metrics = deep_run
    assert metrics["params"] == 326_826 and metrics["recipe"] == "best-deep"
    assert metrics["test_accuracy"] > 0.9, metrics["test_accuracy"]  # 4,000 images, 2 epochs
    assert json.loads((out / "config.json").read_text())["architecture"] == "deep"


# ------------------------------------------------ a run is always resumable or finished


TINY = {"train_limit": 600, "test_limit": 200, "val_size": 200, "epochs": 2}


def tiny_config(mnist_dir, out, **extra):
    return train.make_config("fast", seed=2, data_dir=str(mnist_dir), out=str(out), **TINY, **extra)


def test_a_run_killed_after_training_but_before_its_metrics_resumes_and_finishes(
    mnist_dir, tmp_path, monkeypatch
):
    from mnist_cnn import calibrate

    cfg = tiny_config(mnist_dir, tmp_path / "run")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # stands for SIGKILL between fit() and metrics.json

    monkeypatch.setattr(calibrate, "calibrate", killed)
    with pytest.raises(KeyboardInterrupt):
        train.train(cfg, verbose=0)
    run = tmp_path / "run"
    assert (run / "checkpoint").exists() and not (run / "metrics.json").exists()
    monkeypatch.undo()
    with pytest.raises(MnistCnnError, match="pass --resume"):
        train.train(cfg, verbose=0)  # the same --out without --resume says what to do
    # no epoch is trained again: all were done before the "kill"
    metrics = train.train(cfg, resume=True, verbose=0).metrics
    assert metrics["epochs"] == 2 and (run / "metrics.json").exists()
    assert not (run / "checkpoint").exists()
    with pytest.raises(MnistCnnError, match="already holds a finished run"):
        train.train(cfg, resume=True, verbose=0)


def test_a_run_killed_in_its_first_epoch_resumes_from_the_start(mnist_dir, tmp_path):
    cfg = tiny_config(mnist_dir, tmp_path / "run")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
    metrics = train.train(cfg, resume=True, verbose=0).metrics  # no checkpoint: starts at epoch 1
    assert metrics["epochs"] == 2


def test_one_folder_holds_one_run_at_a_time(mnist_dir, tmp_path):
    from mnist_cnn import artifacts

    cfg = tiny_config(mnist_dir, tmp_path / "run")
    busy = pytest.raises(MnistCnnError, match="another mnist-cnn process is writing")
    with artifacts.claim(tmp_path / "run"), busy:  # another process is training there
        train.train(cfg, verbose=0)
    assert not (tmp_path / "run" / "config.json").exists()  # nothing of the second run


def test_a_full_disk_stops_training_in_one_line_and_leaves_it_resumable(
    mnist_dir, tmp_path, monkeypatch
):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    cfg = tiny_config(mnist_dir, tmp_path / "run")
    with pytest.raises(MnistCnnError, match="the disk is full"):
        train.train(cfg, verbose=0)
    monkeypatch.setattr(shutil, "disk_usage", real)
    assert train.train(cfg, resume=True, verbose=0).metrics["epochs"] == 2


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_saved_as_what_it_was_on_this_machine(
    native, mnist_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr(models, "_cpu_has_bfloat16", lambda: native)
    cfg = tiny_config(mnist_dir, tmp_path / "run")
    assert cfg.precision == "auto"  # the `fast` recipe's
    metrics = train.train(cfg, verbose=0).metrics
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["precision"] == ("mixed_bfloat16" if native else "float32")
    assert metrics["test_accuracy"] > 0.5
    assert models.load(tmp_path / "run").get_layer("conv1").compute_dtype == "float32"


def test_a_second_run_of_the_same_program_reuses_the_compiled_step_and_trains_the_same(
    mnist_dir, tmp_path
):
    """A notebook's second run (a benchmark's warm run) skips tracing and compiling, and ends
    exactly where a fresh process with its seed would."""
    ds = data.load(str(mnist_dir), 200, 600, 200)

    # the first run trains on other images (same shapes): the warm one must swap them out
    other = dataclasses.replace(ds, x_train=ds.x_train[::-1].copy(), y_train=ds.y_train[::-1])

    def run(name, seed, dataset=ds):
        cfg = train.make_config(  # classic: shifts, so the augmentation is reseeded too
            "classic", seed=seed, out=str(tmp_path / name), **TINY, data_dir=str(mnist_dir)
        )
        result = train.train(cfg, verbose=0, dataset=dataset, reuse=reuse)
        kept = reuse.compiled
        return result, kept.trainer, kept.trainer.train_function

    reuse = train.Reuse()
    _, trainer, step = run("first", seed=1, dataset=other)
    warm, again, warm_step = run("warm", seed=2)
    assert again is trainer and warm_step is step  # nothing traced anew
    reuse = train.Reuse()
    cold, fresh, _ = run("cold", seed=2)
    assert fresh is not trainer
    assert warm.metrics["test_accuracy"] == cold.metrics["test_accuracy"]
    assert_trained_alike(warm, cold)


def assert_trained_alike(a: runs.Result, b: runs.Result) -> None:
    """The same losses epoch by epoch and the same weights, up to float rounding."""
    assert np.allclose(a.history["loss"], b.history["loss"], rtol=1e-5)
    for x, y in zip(a.model.get_weights(), b.model.get_weights(), strict=True):
        assert np.allclose(x, y, atol=1e-5)


def test_several_steps_per_call_train_exactly_as_one_step_per_call(mnist_dir, tmp_path):
    """steps_per_execution only changes how often Python calls the compiled step: 600 images
    at batch 128 are 5 steps an epoch, run as calls of 3 and 2, the last batch short."""

    def run(name, steps):
        cfg = train.make_config(  # classic: shifts, so the augmentation's stream must match
            "classic",
            seed=4,
            out=str(tmp_path / name),
            **TINY,
            data_dir=str(mnist_dir),
            steps_per_execution=steps,
        )
        return train.train(cfg, verbose=0, reuse=reuse)

    reuse = train.Reuse()
    one, three = run("one", 1), run("three", 3)
    assert reuse.compiled.trainer.steps_per_execution == 3
    saved = json.loads((tmp_path / "three" / "config.json").read_text())
    assert saved["steps_per_execution"] == 3
    assert_trained_alike(one, three)


def test_a_missing_teacher_stops_before_the_run_exists(tmp_path, mnist_dir):
    out = tmp_path / "run"
    cfg = train.make_config(
        "classic", teacher=str(tmp_path / "none"), data_dir=str(mnist_dir), out=str(out), **SMALL
    )
    with pytest.raises(MnistCnnError, match="no model at"):
        train.train(cfg, verbose=0)
    assert not (out / "config.json").exists()


def test_a_teachers_answers_are_part_of_the_targets(small_run, test_digits):
    """Distillation: each target is (1 - share) of the label and share of the teacher's
    answer, softened by its temperature; the label still leads."""
    x, y = test_digits
    teacher = models.load(small_run[0])
    cfg = train.make_config("classic", teacher="t", teacher_share=0.4, teacher_temperature=2.0)
    labels = keras.utils.to_categorical(y[:50], 10)
    taught = train._taught(cfg, teacher, labels, x[:50])
    p = teacher.predict(x[:50], verbose=0) ** 0.5
    p /= p.sum(1, keepdims=True)
    assert np.allclose(taught, 0.6 * labels + 0.4 * p, atol=1e-5)
    assert np.allclose(taught.sum(1), 1, atol=1e-5) and (taught.argmax(1) == y[:50]).all()
