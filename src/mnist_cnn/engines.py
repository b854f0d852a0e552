"""The engines that run a model: raw 28x28x1 pixel batches in, probabilities out.

One callable type, `Classifier`, whatever runs it: Keras for a .keras model, ONNX Runtime for
an .onnx file (float or int8), LiteRT for .tflite, TensorFlow for a SavedModel folder. The
packaged model ships with its int8 ONNX twin, so reading digits with it needs no training data.
"""

import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

from mnist_cnn.errors import MnistCnnError, install_hint

Classifier = Callable[[np.ndarray], np.ndarray]
ENGINES = ("auto", "keras", "onnx", "onnx-int8")
INT8_NAME = "model-int8.onnx"  # an int8 twin sits beside its .keras model under this name


def packaged_model() -> Path:
    """The model that ships inside the package: what predict and serve use unless told."""
    return Path(str(resources.files("mnist_cnn") / "default" / "model.keras"))


def _exported(path: Path) -> bool:
    return path.suffix in (".onnx", ".tflite") or (path / "saved_model.pb").exists()


def _twin(path: Path) -> Path:
    """Where a .keras model's (or run folder's) int8 twin sits."""
    return (path if path.is_dir() else path.parent) / INT8_NAME


def resolve(path: Path, engine: str) -> str:
    """The engine `auto` stands for with this model: its int8 twin if it has one, else Keras."""
    if engine != "auto":
        return engine
    if _exported(path):
        return path.suffix.lstrip(".") or "saved_model"
    return "onnx-int8" if _twin(path).exists() else "keras"


def classifier(
    model_path: str | Path | None = None, engine: str = "auto", threads: int = 0
) -> Classifier:
    """A Classifier for a .keras model (on `engine`), or for an exported model on its runtime.

    engine="auto" (the default) runs the model's int8 twin where one sits beside it (the
    packaged model has one: 2-3x faster, the same answers on 99.9% of MNIST test), else Keras.
    engine="onnx" exports a .keras model once, to a temporary file, when the classifier is
    made. engine="onnx-int8" runs the int8 twin written beside the model by `mnist-cnn export
    --format onnx-int8` (the packaged model ships with one): quantizing needs MNIST training
    images, which a reader of digits should not have to load. `threads` caps ONNX Runtime's
    and LiteRT's threads (0: theirs to choose); Keras on TensorFlow takes
    TF_NUM_INTRAOP_THREADS from the environment instead.
    """
    path = Path(model_path) if model_path is not None else packaged_model()
    if engine not in ENGINES:
        raise MnistCnnError(f"unknown engine {engine!r}: use {', '.join(ENGINES)}")
    if _exported(path):
        return load_exported(path, threads)
    twin = _twin(path)
    engine = resolve(path, engine)
    if engine == "onnx-int8":
        if not twin.exists():
            raise MnistCnnError(
                f"no int8 twin of {path} (looked for {twin}): write it once with "
                f"`mnist-cnn export --model {path} --format onnx-int8`"
            )
        return load_exported(twin, threads)
    from mnist_cnn import models

    model = models.load(path)
    if engine == "onnx":
        from mnist_cnn import export

        out = Path(tempfile.mkdtemp(prefix="mnist-cnn-onnx-")) / "model.onnx"
        return load_exported(export.export(model, "onnx", out), threads)
    # the compiled predict step: 3-8x faster than calling the model eagerly on small batches
    return lambda x: np.asarray(model.predict_on_batch(np.asarray(x, np.float32)))


def load_exported(path: str | Path, threads: int = 0) -> Classifier:
    """A function from raw pixels to probabilities that runs an exported model in its own runtime.

    `.onnx` runs on ONNX Runtime, `.tflite` on LiteRT, a folder on TensorFlow's SavedModel
    loader. `threads=0` lets the runtime choose. ONNX Runtime's threads sleep when idle rather
    than spin, leaving the cores to the rest of the process (a server's event loop).
    """
    path = Path(path)
    if not path.exists():
        raise MnistCnnError(f"no exported model at {path}")
    try:
        if path.suffix == ".onnx":
            return _onnx(path, threads)
        if path.suffix == ".tflite":
            return _tflite(path, threads)
        if path.is_dir() and (path / "saved_model.pb").exists():
            return _saved_model(path)
    except ImportError as err:
        raise MnistCnnError(
            f"running {path.name} needs {err.name}: {install_hint('export')}"
        ) from None
    except Exception as err:  # a runtime's own error on a damaged or foreign file
        why = f"{type(err).__name__}: {err}".splitlines()[0][:160]
        raise MnistCnnError(f"cannot load {path} as a model ({why})") from None
    raise MnistCnnError(f"{path} is not an exported model (.onnx, .tflite or a SavedModel folder)")


def _onnx(path: Path, threads: int) -> Classifier:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: np.asarray(x, "float32")})[0]


def _tflite(path: Path, threads: int) -> Classifier:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads or None)
    inp = interpreter.get_input_details()[0]["index"]
    outp = interpreter.get_output_details()[0]["index"]

    def run(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, "float32")
        interpreter.resize_tensor_input(inp, list(x.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp, x)
        interpreter.invoke()
        return interpreter.get_tensor(outp).copy()

    return run


def _saved_model(path: Path) -> Classifier:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # keep it: its functions hold only weak references

    def run(x: np.ndarray) -> np.ndarray:
        return loaded.serve(tf.constant(np.asarray(x, "float32"))).numpy()

    return run
