"""Data-parallel training on tf.distribute: one machine's devices, or several machines.

`--strategy mirrored` copies the model onto every local GPU (every logical CPU device when there
is no GPU) and averages their gradients each step. `--strategy multiworker` does the same across
processes, usually one per host, that find each other through the TF_CONFIG environment
variable. Both are TensorFlow's, so both need the TensorFlow backend. The batch size stays the
global one: each of N replicas computes 1/N of every batch.
"""

import contextlib
import json
import os
from typing import Any

import keras

from mnist_cnn.errors import MnistCnnError

STRATEGIES = ("none", "mirrored", "multiworker")


def strategy(name: str) -> Any:
    """The tf.distribute strategy for `name`, or None for plain single-device training."""
    if name == "none":
        return None
    if name not in STRATEGIES:
        raise MnistCnnError(f"unknown strategy {name!r}: use {', '.join(STRATEGIES)}")
    if keras.backend.backend() != "tensorflow":
        raise MnistCnnError(
            f"--strategy {name} is tf.distribute's and needs the TensorFlow backend, "
            f"not {keras.backend.backend()}: unset KERAS_BACKEND or set it to tensorflow"
        )
    import tensorflow as tf

    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if "TF_CONFIG" not in os.environ:
        raise MnistCnnError(
            "--strategy multiworker reads the cluster from TF_CONFIG, which is not set: "
            'set it on every worker, e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", '
            '"host2:12345"]}, "task": {"type": "worker", "index": 0}}\''
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def worker() -> tuple[int, int]:
    """(this worker's index, the number of workers), from TF_CONFIG; (0, 1) without it."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    workers = config.get("cluster", {}).get("worker", [])
    return int(config.get("task", {}).get("index", 0)), max(1, len(workers))


def scope(active: Any) -> contextlib.AbstractContextManager:
    """Where the model and optimizer must be made so that their variables are mirrored."""
    return active.scope() if active is not None else contextlib.nullcontext()
