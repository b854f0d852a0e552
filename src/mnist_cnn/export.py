"""Export a trained model for runtimes that know nothing of this package or of Keras.

Every format takes what the .keras model takes, raw pixels (N, 28, 28, 1) float32 in 0-255, and
returns the 10 probabilities, because the scaling is a layer inside the model. Keras does the
conversion (`model.export`); this module picks the format and writes it atomically.
`engines.load_exported` runs the result.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mnist_cnn import artifacts
from mnist_cnn.data import SIZE
from mnist_cnn.errors import MnistCnnError, install_hint

if TYPE_CHECKING:  # Keras loads only when a model is exported, not for `mnist-cnn --help`
    import keras

FORMATS = {"onnx": ".onnx", "onnx-int8": ".onnx", "tflite": ".tflite", "saved_model": ""}
CALIBRATION_SIZE = 1000  # training images that set the int8 ranges of every activation
_KERAS_FORMAT = {"onnx": "onnx", "tflite": "litert", "saved_model": "tf_saved_model"}


def export(
    model: "keras.Model", fmt: str, out: str | Path, calibration: np.ndarray | None = None
) -> Path:
    """Write `model` as ONNX, int8 ONNX, TFLite or a SavedModel folder at `out`; return the path.

    onnx-int8 needs `calibration`: raw training images (about CALIBRATION_SIZE) whose
    activations set the int8 ranges.
    """
    if fmt not in FORMATS:
        raise MnistCnnError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    _on_tensorflow()
    out = Path(out)
    artifacts.prepare_dir(out.parent if str(out.parent) else ".")
    if fmt == "onnx-int8":
        if calibration is None or not len(calibration):
            raise MnistCnnError("onnx-int8 needs calibration images (raw training digits)")
        with tempfile.TemporaryDirectory(prefix="mnist-cnn-int8-") as tmp:
            float_model = export(model, "onnx", Path(tmp) / "model.onnx")
            return artifacts.write_with(out, lambda t: quantize(float_model, t, calibration))
    model(np.zeros((1, SIZE, SIZE, 1), "float32"))  # export needs a model that has been called

    def write(tmp: Path) -> None:
        model.export(str(tmp), format=_KERAS_FORMAT[fmt], verbose=False)

    try:
        return (_replace_dir if fmt == "saved_model" else artifacts.write_with)(out, write)
    except ImportError as err:
        raise MnistCnnError(
            f"export to {fmt} needs {err.name or err}: {install_hint('export')}"
        ) from None


def export_reader(model: "keras.Model", out: str | Path, saved: Path | None = None) -> Path:
    """The reader's network as ONNX, any page size: raw pixels (1, H, W, 1) in, with H and W
    multiples of 16; its cells out (`reading.detector.decode` reads them).

    The export is TensorFlow's (tf2onnx, as tested): a network trained on JAX or PyTorch is
    exported from `saved`, its .keras file, by a TensorFlow process of its own, so a reader's
    run on any backend ends with the export it reads through."""
    import keras

    if keras.backend.backend() != "tensorflow" and saved is not None:
        return _reader_on_tensorflow(saved, Path(out))
    _on_tensorflow()
    model(np.zeros((1, 64, 64, 1), "float32"))  # export needs a model that has been called

    def write(tmp: Path) -> None:
        model.export(str(tmp), format="onnx", verbose=False)

    try:
        return artifacts.write_with(out, write)
    except ImportError as err:
        raise MnistCnnError(
            f"export to onnx needs {err.name or err}: {install_hint('export')}"
        ) from None


def _on_tensorflow() -> None:
    """Every format is exported as tested, by TensorFlow (tf2onnx, LiteRT, SavedModel); on JAX
    Keras asks for jax2onnx and on PyTorch its exporter fails in a page of tensors."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise MnistCnnError(
            f"export runs on TensorFlow, not {keras.backend.backend()}: run it with "
            "KERAS_BACKEND=tensorflow (a .keras file moves freely between backends)"
        )


def _reader_on_tensorflow(saved: Path, out: Path) -> Path:
    code = (
        "import sys\nfrom mnist_cnn import errors, export, models\n"
        "try:\n    export.export_reader(models.load(sys.argv[1]), sys.argv[2])\n"
        "except errors.MnistCnnError as err:\n    sys.exit(str(err))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(saved), str(out)], env=env, capture_output=True, text=True
    )
    if done.returncode:
        lines = done.stderr.strip().splitlines() or ["no message"]
        raise MnistCnnError(
            f"the reader's ONNX export runs on TensorFlow, and failed there ({lines[-1][:200]}): "
            f"{install_hint('export')}; then --resume the run"
        )
    return out


def quantize(onnx_model: Path, out: Path, calibration: np.ndarray, batch: int = 50) -> None:
    """Static int8 quantization on ONNX Runtime of the convolutions (nearly all the work):
    weights per channel, activations with ranges measured on `calibration`. On a CPU with VNNI
    it runs 2x faster at the same accuracy. The classifier and softmax stay in float, so the
    probabilities stay smooth rather than falling into 256 steps."""
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as err:
        raise MnistCnnError(
            f"export to onnx-int8 needs {err.name}: {install_hint('export')}"
        ) from None

    prepared = onnx_model.with_name("prepared.onnx")
    quant_pre_process(str(onnx_model), str(prepared))  # fold, infer shapes: better int8 graph
    name = ort.InferenceSession(str(prepared)).get_inputs()[0].name
    x = np.asarray(calibration, "float32")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(x[i : i + batch] for i in range(0, len(x), batch))

        def get_next(self) -> dict[str, np.ndarray] | None:
            part = next(self.batches, None)
            return None if part is None else {name: part}

    quantize_static(
        str(prepared),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv"],
        reduce_range=True,
    )


def calibration_images(data_dir: str | None = None, seed: int = 0) -> np.ndarray:
    """CALIBRATION_SIZE training digits, drawn at random (seeded), for onnx-int8."""
    from mnist_cnn import data

    x = data.load(data_dir, val_size=0, test_limit=1).x_train
    pick = np.random.default_rng(seed).choice(len(x), CALIBRATION_SIZE, replace=False)
    return x[np.sort(pick)]


def _replace_dir(out: Path, writer: Callable[[Path], object]) -> Path:
    """Build a folder beside `out`, then swap it into place so no reader sees half of it."""
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        writer(tmp / "model")
        old = None
        if out.exists():
            if not out.is_dir():
                raise MnistCnnError(f"{out} exists and is not a folder: choose another --out")
            old = tmp / "old"
            os.replace(out, old)
        os.replace(tmp / "model", out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
