"""The engines that run a model: Keras, ONNX Runtime, and the int8 twin."""

import shutil

import numpy as np
import pytest
from helpers import predict_batched

from mnist_cnn import cli, data, engines
from mnist_cnn.errors import MnistCnnError


def test_packaged_int8_model_answers_like_the_packaged_model(mnist_dir):
    """The shipped int8 ONNX (engine int8) is the packaged model: same answers, same accuracy."""

    ds = data.load(mnist_dir, val_size=0)
    full = predict_batched(engines.classifier(engine="keras"), ds.x_test).argmax(1)
    int8 = predict_batched(engines.classifier(engine="onnx-int8", threads=1), ds.x_test).argmax(1)
    assert (full == int8).mean() >= 0.999
    assert (int8 == ds.y_test).mean() >= 0.995  # measured 99.57% (float: 99.59%), 2026-11-26


def test_engine_int8_runs_the_twin_export_wrote_and_never_loads_mnist(
    small_run, test_digits, tmp_path, monkeypatch, capsys
):
    x, _ = test_digits
    run = tmp_path / "run"
    shutil.copytree(small_run[0], run)
    with pytest.raises(MnistCnnError, match=r"export --model .* --format onnx-int8"):
        engines.classifier(run, engine="onnx-int8")  # no twin yet: says how to make one
    assert cli.main(["export", "--model", str(run), "--format", "onnx-int8"]) == 0
    assert (run / engines.INT8_NAME).exists()
    monkeypatch.setattr(data, "load", lambda *a, **k: pytest.fail("int8 serving loaded MNIST"))
    keras_way = engines.classifier(run, engine="keras")(x[..., None]).argmax(1)
    int8_way = engines.classifier(run / "model.keras", engine="onnx-int8")(x[..., None])
    assert (keras_way == int8_way.argmax(1)).mean() >= 0.99


def test_engine_onnx_runs_a_keras_model_on_onnx_runtime(small_run, test_digits):
    x, _ = test_digits
    keras_way = engines.classifier(small_run[0])(x[:50, ..., None])
    onnx_way = engines.classifier(small_run[0], engine="onnx")(x[:50, ..., None])
    assert np.abs(keras_way - onnx_way).max() < 1e-4
    with pytest.raises(MnistCnnError, match="unknown engine"):
        engines.classifier(small_run[0], engine="tpu")


@pytest.mark.parametrize("name", ["garbage.onnx", "garbage.tflite", "garbage.keras"])
def test_a_garbage_model_file_is_one_clear_line(name, tmp_path, capsys):
    bad = tmp_path / name
    bad.write_bytes(b"\x00not a model at all" * 10)
    page = tmp_path / "p.png"
    page.write_bytes(b"whatever")
    assert cli.main(["predict", "--model", str(bad), str(page)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and str(bad) in err
    assert "not found" not in err.lower()  # the file is there; it is just not a model
