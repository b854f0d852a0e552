"""Data-parallel training: one machine's devices on tf.distribute, or several hosts on JAX.

`--strategy mirrored` copies the model onto every local GPU (every logical CPU device when there
is no GPU) under tf.distribute.MirroredStrategy and averages their gradients each step; it
needs the TensorFlow backend. `--strategy multiworker` spans processes, usually one per host.
TensorFlow's MultiWorkerMirroredStrategy fails inside Keras 3's `fit` (keras-team/keras#20585),
so it runs on the Keras 3 distribution API with JAX instead: keras.distribution.DataParallel
over every device of every process. Each process reads its own shard of the training set.
In both, the batch size stays the global one: each of N replicas computes 1/N of every batch.
"""

import contextlib
import os
from typing import Any

import keras
import numpy as np

from mnist_cnn.errors import MnistCnnError
from mnist_cnn.recipes import STRATEGIES

CLUSTER_VARIABLES = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)


def strategy(name: str) -> Any:
    """The strategy (or Keras distribution) for `name`; None for one device."""
    if name == "none":
        return None
    if name not in STRATEGIES:
        raise MnistCnnError(f"unknown strategy {name!r}: use {', '.join(STRATEGIES)}")
    backend = keras.backend.backend()
    if name == "mirrored":
        if backend != "tensorflow":
            raise MnistCnnError(
                f"--strategy mirrored is tf.distribute's and needs the TensorFlow backend, not "
                f"{backend}: unset KERAS_BACKEND or set it to tensorflow"
            )
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return _multiworker(backend)


def _multiworker(backend: str) -> Any:
    if backend != "jax":
        raise MnistCnnError(
            "--strategy multiworker runs on the Keras distribution API with JAX: set "
            "KERAS_BACKEND=jax (TensorFlow's MultiWorkerMirroredStrategy fails inside Keras 3)"
        )
    missing = [v for v in CLUSTER_VARIABLES if not os.environ.get(v)]
    if missing:
        raise MnistCnnError(
            f"--strategy multiworker needs {', '.join(missing)}: on every process set "
            "KERAS_DISTRIBUTION_JOB_ADDRESSES=host0:port (the coordinator, process 0), "
            "KERAS_DISTRIBUTION_NUM_PROCESSES=N and KERAS_DISTRIBUTION_PROCESS_ID=0..N-1"
        )
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU hosts talk via gloo
    if not jax.distributed.is_initialized():
        keras.distribution.initialize()  # reads the three variables above
    devices = keras.distribution.list_devices()
    # each process feeds its own shard (see `shard`), so Keras must not shard again
    distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    keras.distribution.set_distribution(distribution)
    return distribution


def scope(active: Any) -> contextlib.AbstractContextManager:
    """Where the model and optimizer must be made so that their variables are distributed."""
    return active.scope() if active is not None else contextlib.nullcontext()


def replicas(active: Any) -> int:
    """How many copies of the model train in step."""
    if active is None:
        return 1
    if isinstance(active, keras.distribution.DataParallel):
        return len(active.device_mesh.devices.flatten())
    return int(active.num_replicas_in_sync)


def processes() -> tuple[int, int]:
    """(this process's index, the number of processes) under multiworker; (0, 1) otherwise."""
    if keras.backend.backend() == "jax":
        import jax

        if jax.distributed.is_initialized():
            return jax.process_index(), jax.process_count()
    return 0, 1


def shard(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """This process's equal share of (x, y): every process must run the same number of steps."""
    index, count = processes()
    if count == 1:
        return x, y
    size = len(y) // count
    return x[index * size : (index + 1) * size], y[index * size : (index + 1) * size]


def finish(active: Any) -> None:
    """Leave distributed mode, so what follows (calibration, scoring) runs on this process."""
    if isinstance(active, keras.distribution.DataParallel):
        keras.distribution.set_distribution(None)
