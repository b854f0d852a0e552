"""Data-parallel training on tf.distribute, over one machine's devices.

`--strategy mirrored` copies the model onto every local GPU (every logical CPU device when there
is no GPU) and averages their gradients each step. It is TensorFlow's, so it needs the
TensorFlow backend. The batch size stays the global one: each of N replicas computes 1/N of
every batch. (Several hosts, MultiWorkerMirroredStrategy, fail inside Keras 3's `fit`: see
the README.)
"""

import contextlib
from typing import Any

import keras

from mnist_cnn.errors import MnistCnnError

STRATEGIES = ("none", "mirrored")


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

    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def scope(active: Any) -> contextlib.AbstractContextManager:
    """Where the model and optimizer must be made so that their variables are mirrored."""
    return active.scope() if active is not None else contextlib.nullcontext()
