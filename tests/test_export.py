"""Exported models (ONNX, TFLite, SavedModel) answer like the Keras model on all of MNIST test."""

import numpy as np
import pytest
from helpers import predict_batched

from mnist_cnn import cli, data, engines, evaluate, export, models
from mnist_cnn.errors import MnistCnnError


@pytest.fixture(scope="module")
def reference(small_run, mnist_dir):
    out, _ = small_run
    x = data.load(mnist_dir, val_size=0).x_test
    return out, x, evaluate.predict_proba(models.load(out), x)


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "saved_model"])
def test_export_agrees_with_keras_on_the_full_test_set(fmt, reference, tmp_path, capsys):
    run_dir, x, keras_proba = reference
    target = tmp_path / f"model{export.FORMATS[fmt]}"
    assert cli.main(["export", "--model", str(run_dir), "--format", fmt, "--out", str(target)]) == 0
    assert str(target) in capsys.readouterr().out
    proba = predict_batched(engines.load_exported(target), x)  # raw 0-255 pixels in
    assert proba.shape == (10_000, 10)
    assert (proba.argmax(1) == keras_proba.argmax(1)).mean() >= 0.999
    assert np.abs(proba - keras_proba).max() < 1e-3
    assert np.allclose(proba.sum(1), 1, atol=1e-4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_int8_export_keeps_the_answers(reference, mnist_dir, tmp_path, capsys):
    run_dir, x, keras_proba = reference
    target = tmp_path / "model-int8.onnx"
    args = ["export", "--model", str(run_dir), "--format", "onnx-int8", "--out", str(target)]
    assert cli.main([*args, "--data-dir", str(mnist_dir)]) == 0
    assert str(target) in capsys.readouterr().out
    import onnx

    graph = onnx.load(str(target)).graph
    int8 = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.INT8}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert len(convs) == 2 and len(int8) >= 2  # both conv kernels stored as 8-bit integers
    proba = predict_batched(engines.load_exported(target), x)
    assert (proba.argmax(1) == keras_proba.argmax(1)).mean() >= 0.995
    assert np.allclose(proba.sum(1), 1, atol=1e-4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(MnistCnnError, match="calibration"):
        export.export(models.load(run_dir), "onnx-int8", tmp_path / "x.onnx")


def test_saved_model_export_replaces_an_old_one_whole(small_run, tmp_path):
    model = models.load(small_run[0])
    target = tmp_path / "sm"
    export.export(model, "saved_model", target)
    (target / "stale.txt").write_text("from an earlier export")
    export.export(model, "saved_model", target)
    assert (target / "saved_model.pb").exists() and not (target / "stale.txt").exists()


def test_export_default_path_is_beside_the_model(small_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(small_run[0], run)
    assert cli.main(["export", "--model", str(run), "--format", "onnx"]) == 0
    assert (run / "model.onnx").stat().st_size > 100_000


def test_export_errors_are_one_clear_message(small_run, tmp_path, capsys):
    model = models.load(small_run[0])
    with pytest.raises(MnistCnnError, match="unknown format"):
        export.export(model, "pickle", tmp_path / "m.pkl")
    with pytest.raises(MnistCnnError, match="no exported model"):
        engines.load_exported(tmp_path / "missing.onnx")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(MnistCnnError, match="not an exported model"):
        engines.load_exported(tmp_path / "notes.txt")
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = cli.main(
        [
            "export",
            "--model",
            str(small_run[0]),
            "--format",
            "onnx",
            "--out",
            str(blocker / "m.onnx"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("mnist-cnn: error: ") and "Traceback" not in err
    assert cli.main(["export", "--model", str(tmp_path / "nope"), "--format", "onnx"]) == 2


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "saved_model"])
def test_the_residual_net_exports_too(fmt, tmp_path):
    """`best`'s network (skip connections, global pooling) answers the same once exported."""
    model = models.build("residual")
    x = np.random.default_rng(0).integers(0, 256, (64, 28, 28, 1)).astype("float32")
    target = export.export(model, fmt, tmp_path / f"model{export.FORMATS[fmt]}")
    proba = predict_batched(engines.load_exported(target), x)
    assert np.abs(proba - evaluate.predict_proba(model, x)).max() < 1e-4


def test_a_reader_export_that_fails_on_tensorflow_says_so_in_one_line(monkeypatch, tmp_path):
    """Off TensorFlow, a reader's network is exported by a TensorFlow process of its own
    (tests/test_backends.py); where that process fails, one line says so and to --resume."""
    import subprocess

    import keras

    failed = subprocess.CompletedProcess(
        [], 1, "", "Traceback (most recent call last):\n...\nValueError: no model\n"
    )
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    monkeypatch.setattr(export.subprocess, "run", lambda *args, **kwargs: failed)
    with pytest.raises(MnistCnnError) as caught:
        export.export_reader(None, tmp_path / "reader.onnx", saved=tmp_path / "model.keras")
    message = str(caught.value)
    assert "runs on TensorFlow, and failed there (ValueError: no model)" in message
    assert "--resume" in message and "\n" not in message
    assert not (tmp_path / "reader.onnx").exists()
