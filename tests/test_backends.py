"""The JAX and PyTorch backends: train, evaluate and predict end to end, and load a model
trained on TensorFlow with the same answers.

Keras picks its backend once, at import, from KERAS_BACKEND, so each case runs in a fresh
process; on JAX, as if TensorFlow were not installed. The jax and torch packages come with the
`jax` and `torch` extras (which `dev` includes).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mnist_cnn import data, evaluate, models

QUICK = ["--train-limit", "4096", "--test-limit", "500", "--val-size", "256", "--epochs", "2"]

# Keras and a backend take seconds to start: what follows training runs in one process.
AFTER_TRAINING = """
import numpy as np
from mnist_cnn import cli, evaluate, models

run, data_dir, image, x_file, prefix, other = sys.argv[1:]
assert cli.main(["evaluate", run, "--data-dir", data_dir, "--test-limit", "500"]) == 0
print("PREDICT", flush=True)
assert cli.main(["predict", "--model", run, image, "--json"]) == 0
for i, model in enumerate([run, other]):
    np.save(f"{prefix}-{i}.npy", evaluate.predict_proba(models.load(model), np.load(x_file)))
"""

# On JAX every process runs as if TensorFlow were not installed (it is optional there).
BLOCK_TENSORFLOW = """
import importlib.abc, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):  # as if it were not installed
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoTensorFlow())
"""

RUN_CLI = """
import runpy
sys.argv = ["mnist-cnn", *sys.argv[1:]]
runpy.run_module("mnist_cnn", run_name="__main__")
"""


def mnist_cnn(backend: str, *args: str, code: str = RUN_CLI, **env_vars: str) -> str:
    """`mnist-cnn args` (or `code` with args) in a fresh process on `backend`."""
    prelude = BLOCK_TENSORFLOW if backend == "jax" else "import sys\n"
    env = {**os.environ, "KERAS_BACKEND": backend, **env_vars}
    proc = subprocess.run(
        [sys.executable, "-c", prelude + code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_train_evaluate_predict_on_backend(backend, mnist_dir, small_run, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ("train", "--data-dir", str(mnist_dir), "--out", str(out), *QUICK)
    log = mnist_cnn(backend, *args, XDG_CACHE_HOME=str(cache))
    assert ("no TensorBoard logs" in log) == (backend == "jax")  # one line, not a traceback
    assert (out / "tensorboard").exists() == (backend != "jax")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"] == backend
    # JAX keeps its compiled train step on disk for the next run; the others keep nothing
    kept = list((cache / "mnist-cnn" / "jax").glob("*train_step*"))
    assert bool(kept) == (backend == "jax"), kept
    assert metrics["test_accuracy"] > 0.85, metrics["test_accuracy"]
    for name in ("model.keras", "curves.png", "confusion.png", "misclassified.png"):
        assert (out / name).exists(), name

    ds = data.load(mnist_dir, val_size=0, test_limit=100)
    image = tmp_path / "digit.png"
    Image.fromarray(ds.x_test[0, ..., 0].astype(np.uint8)).save(image)
    np.save(tmp_path / "x.npy", ds.x_test)
    files = (out, mnist_dir, image, tmp_path / "x.npy", tmp_path / "p", small_run[0])
    log = mnist_cnn(backend, *map(str, files), code=AFTER_TRAINING)

    # evaluate reproduces the training score on the same backend
    scored = json.loads((out / "eval" / "metrics.json").read_text())
    assert scored["test_accuracy"] == metrics["test_accuracy"]
    # predict reads an image file
    answer = json.loads(log.split("PREDICT", 1)[1])
    assert answer[0]["error"] is None and len(answer[0]["top3"]) == 3
    # a model trained on TensorFlow predicts the same on this backend, and vice versa
    for i, model_dir in enumerate((out, small_run[0])):
        there = np.load(tmp_path / f"p-{i}.npy")
        here = evaluate.predict_proba(models.load(model_dir), ds.x_test)  # TensorFlow
        assert np.abs(there - here).max() < 1e-4
        assert np.array_equal(there.argmax(1), here.argmax(1))


AUGMENT = """
import keras, numpy as np
from mnist_cnn import augment
x = np.zeros((64, 28, 28, 1), "float32")
x[:, 8:20, 12:16] = 255
aug = augment.Augment(2.5, 10, 0.1, 10, elastic=20, thickness=0.5, blur=1, noise=9, scan=0.3)
out = augment.apply(x, aug, seed=3)
assert out.shape == x.shape and out.min() >= 0 and out.max() <= 255.01
assert np.array_equal(out, augment.apply(x, aug, seed=3)) and (out != x).any()
inner = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
images = keras.Input((28, 28, 1))
trainer = keras.Model(images, inner(augment.Augmentation(aug, 0)(images)))
trainer.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
trainer.fit(x, np.arange(64) % 10, batch_size=16, epochs=1, verbose=0)
print("ok", float(out.sum() / x.sum()))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_augmentation_runs_in_the_train_step_on_backend(backend):
    assert mnist_cnn(backend, code=AUGMENT).startswith("ok")


SCAN = """
import keras, numpy as np
from mnist_cnn import augment, fitting
x = np.random.default_rng(0).uniform(0, 255, (100, 28, 28, 1)).astype("float32")
y = np.arange(100) % 10
weights, executions = [], []


def tiny():  # any model shows it; XLA compiles a small one sooner (38 -> 31 s for this test)
    layers = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)), layers.Rescaling(1 / 255), layers.Conv2D(8, 3, strides=2),
        layers.Flatten(), layers.Dense(10, activation="softmax"),
    ])


class Count(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        executions[-1] += 1


for steps in (1, 7):  # step by step, then an epoch (6 batches of 16, one of 4) per call
    keras.utils.set_random_seed(0)
    executions.append(0)
    aug = augment.Augmentation(augment.Augment(shift=2, rotate=10), 0)
    net = tiny()
    indices = keras.Input((), dtype="int32")
    outputs = net(aug(fitting.Pool(x)(indices)))
    # whole_epochs: on the CPU too
    trainer = fitting.Trainer(indices, outputs, epoch_steps=steps, whole_epochs=True)
    trainer.compile("adam", "sparse_categorical_crossentropy", steps_per_execution=steps)
    assert trainer.scans_epochs() == (steps > 1)
    batches = fitting.Batches(np.arange(100), y, 16, seed=0)
    sync = fitting.EpochSync(batches, aug, clean_from=2)  # the last epoch re-traced, unaugmented
    trainer.fit(batches, epochs=3, verbose=0, callbacks=[sync, Count()])
    weights.append(net.get_weights())
assert executions == [21, 3], executions
gap = max(float(np.abs(a - b).max()) for a, b in zip(*weights))
assert gap < 1e-4, gap

arrays = []  # index arrays handed to fit, as recipes without augmentation train
for steps in (1, 7):
    keras.utils.set_random_seed(0)
    net = tiny()
    indices = keras.Input((), dtype="int32")
    taken = net(fitting.Pool(x)(indices))
    trainer = fitting.Trainer(indices, taken, epoch_steps=steps, whole_epochs=True)
    trainer.compile("adam", "sparse_categorical_crossentropy", steps_per_execution=steps)
    assert trainer.scans_epochs() == (steps > 1)
    trainer.fit(np.arange(100, dtype="int32"), y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    arrays.append(net.get_weights())
assert max(float(np.abs(a - b).max()) for a, b in zip(*arrays)) < 1e-4
print("ok", gap)
"""


def test_jax_runs_each_epoch_as_one_scan_with_the_same_result():
    """The scanned epoch is Keras' own train step, so it ends on the step-by-step weights."""
    assert mnist_cnn("jax", code=SCAN).startswith("ok")


EXPORT_READER = """
from pathlib import Path
import numpy as np
from mnist_cnn import errors, export
from mnist_cnn.reading import network, predictor

out = Path(sys.argv[1])
model = network.build()
model.save(out / "model.keras")
try:  # a classifier's export on JAX: one line saying to export on TensorFlow
    export.export(model, "onnx", out / "classifier.onnx")
    raise AssertionError("exported on JAX")
except errors.MnistCnnError as err:
    print("ERROR", err)
export.export_reader(model, out / "reader.onnx", saved=out / "model.keras")
page = np.random.default_rng(0).uniform(0, 255, (1, 64, 96, 1)).astype("float32")
np.save(out / "keras.npy", np.asarray(model.predict_on_batch(page)))
np.save(out / "onnx.npy", predictor.load(out / "reader.onnx")(page))
"""


def test_a_reader_trained_on_jax_is_exported_to_onnx_by_tensorflow(tmp_path):
    """A reader's run ends with its ONNX export, which is TensorFlow's: on JAX (TensorFlow
    hidden from that process) a TensorFlow process of its own exports the saved network."""
    log = mnist_cnn("jax", str(tmp_path), code=EXPORT_READER)
    assert "run it with KERAS_BACKEND=tensorflow" in log.split("ERROR", 1)[1]
    assert not (tmp_path / "classifier.onnx").exists()
    keras_cells, onnx_cells = np.load(tmp_path / "keras.npy"), np.load(tmp_path / "onnx.npy")
    assert keras_cells.shape == onnx_cells.shape == (1, 16, 24, 18)
    assert np.abs(keras_cells - onnx_cells).max() < 1e-3
