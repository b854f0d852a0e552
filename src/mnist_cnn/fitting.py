"""What Keras' fit is given when this package trains: where the images live (`Pool`), the
model fit trains (`Trainer`: indices in, images from the Pool, augmentation, the network), its
batches (`Batches`) and the callbacks that keep a run resumable and its history on disk.

`Trainer.make_train_function`, `Trainer.from_the_start` and `Pool`'s empty checkpoint are the
only places that reach into Keras' internals, and each says why: nothing else does.
"""

import itertools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mnist_cnn import artifacts, augment


class Pool(keras.layers.Layer):
    """The training images, kept where the model computes (a GPU's memory, or the CPU's).

    Training moves them there once (MNIST's 60,000 digits take 188 MB as float32); its train
    step is then given a batch of indices and takes the images from here, so no image crosses
    from the host while training. A weight that checkpoints and saved models skip: it is data,
    not something learned.
    """

    def __init__(self, images: np.ndarray, **kwargs):
        super().__init__(dtype="float32", trainable=False, **kwargs)
        pixels = np.asarray(images, np.float32)
        self.images = self.add_weight(
            shape=pixels.shape,
            initializer=lambda shape, dtype: pixels,
            dtype="float32",
            trainable=False,
            name="images",
        )

    def call(self, indices: object) -> object:
        return keras.ops.take(self.images, indices, axis=0)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape, *self.images.shape[1:])

    def save_own_variables(self, store: Any) -> None:
        pass  # rebuilt from the data set on resume

    def load_own_variables(self, store: Any) -> None:
        pass


class Trainer(keras.Model):
    """What fit trains (indices in, the Pool's images, augmentation, the network); on a GPU
    with JAX it runs each epoch as one compiled program.

    With `epoch_steps` on JAX (without a multi-process distribution) a call of the train
    function gets a whole epoch's batches of indices, stacks them and runs Keras' own train
    step over them with `jax.lax.scan`: the host dispatches once an epoch instead of once a
    step, which is what bounded short runs on a GPU. A last, smaller batch runs as
    one step of its own. `scan=None` does this on accelerators only: on the CPU, XLA runs the
    scanned epoch about 4x slower than step by step (`fast`: 76-77 s against 16-19
    s); True forces it (tests). Elsewhere it is a plain functional model.
    """

    def __init__(
        self,
        inputs: Any,
        outputs: Any,
        epoch_steps: int = 1,
        scan: bool | None = None,
        **kwargs: Any,
    ):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.epoch_steps, self.scan = epoch_steps, scan

    def from_the_start(self) -> None:
        """Forget the epoch a resumed run's checkpoint had fit start from: Keras keeps it on the
        model (a private attribute), and a later run of this trainer would start there too."""
        self._initial_epoch = None

    def scans_epochs(self) -> bool:
        if self.epoch_steps < 2 or keras.backend.backend() != "jax" or self.scan is False:
            return False
        import jax

        on_device = self.scan or jax.default_backend() != "cpu"
        return on_device and keras.distribution.distribution() is None and not self.run_eagerly

    def make_train_function(self, force: bool = False) -> Any:
        if not self.scans_epochs():
            return super().make_train_function(force)
        if self.train_function is not None and not force:
            return self.train_function
        import jax

        def train_epoch(state: Any, stacked: Any) -> Any:
            def body(state: Any, batch: Any) -> Any:
                logs, state = self.train_step(state, batch)
                return state, logs

            state, logs = jax.lax.scan(body, state, stacked)
            return jax.tree.map(lambda v: v[-1], logs), state

        many = jax.jit(train_epoch, donate_argnums=0)
        one = jax.jit(self.train_step, donate_argnums=0)

        def train_function(state: Any, iterator: Any) -> Any:
            batches = list(itertools.islice(iterator, self.steps_per_execution))
            if not batches:
                raise StopIteration
            shapes = lambda b: [np.shape(v) for v in jax.tree.leaves(b)]  # noqa: E731
            for _, run in itertools.groupby(batches, key=shapes):  # full batches, then the rest
                run = list(run)
                if len(run) == 1:
                    logs, state = one(state, run[0])
                else:
                    stacked = jax.tree.map(lambda *v: jax.numpy.stack(v), *run)
                    logs, state = many(state, stacked)
            return logs, state

        self.train_function = train_function
        return train_function


class Batches(keras.utils.PyDataset):
    """Each training batch as the indices of its images in the Pool, and their labels; a new
    order every epoch, seeded by (run seed, epoch), so a resumed run sees what it would have.
    Images are taken and augmented later, inside the train step.

    `index` holds the Pool indices of the MNIST digits to train on (labels `y`). With `extra`
    (Pool indices and labels of the synthetic digits of other writers) and a `share` of it,
    that share of every batch is drawn from them at random and the rest is MNIST; an epoch
    still goes through every MNIST digit once, so it has 1 / (1 - share) times the batches.
    """

    def __init__(
        self,
        index: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        seed: int,
        extra: tuple[np.ndarray, np.ndarray] | None = None,
        share: float = 0.0,
    ):
        super().__init__()
        self.index, self.y, self.batch_size, self.seed = index, y, batch_size, seed
        self.extra = extra
        self.drawn = round(share * batch_size) if extra is not None else 0
        self.taken = batch_size - self.drawn  # MNIST images per batch
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Shuffle as epoch `epoch` does (also after a resume)."""
        self.epoch = epoch
        self.order = np.random.default_rng((self.seed, epoch)).permutation(len(self.y))

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.taken)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        at = self.order[i * self.taken : (i + 1) * self.taken]
        index, y = self.index[at], self.y[at]
        if self.drawn:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            pick = rng.integers(0, len(self.extra[1]), self.drawn)
            index = np.concatenate([index, self.extra[0][pick]])
            y = np.concatenate([y, self.extra[1][pick]])
        return index.astype(np.int32), y


class EpochSync(keras.callbacks.Callback):
    """Tells the batches and the augmentation which epoch is starting, so that a resumed run
    goes on where it stopped: the batches' order, the augmentation's random stream (seeded by
    run seed and epoch), and from epoch `clean_from` on (0-based) no augmentation at all, the
    closing epochs on undistorted digits that fit the model to digits as the test set has them.
    """

    def __init__(
        self,
        batches: Batches,
        augmentation: augment.Augmentation | None = None,
        clean_from: int | None = None,
    ):
        super().__init__()
        self.batches, self.augmentation, self.clean_from = batches, augmentation, clean_from

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.batches.set_epoch(epoch)
        if self.augmentation is None:
            return
        self.augmentation.reseed(self.batches.seed, epoch)
        enabled = self.clean_from is None or epoch < self.clean_from
        if enabled != self.augmentation.enabled:
            self.augmentation.enabled = enabled
            self.model.make_train_function(force=True)  # trace the step anew, without it


Probe = Callable[[keras.Model], dict[str, float]]


class Progress(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, ending at the epoch's true step count: with several steps per call
    Keras reports each call's last step number, past the end in an epoch's last call (448/430)."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        super().on_train_batch_end(min(batch, self.target - 1) if self.target else batch, logs)


class EpochLog(keras.callbacks.Callback):
    """history.json rewritten after every epoch, so a killed run keeps what it learned.

    epoch_seconds is time spent training; the validation pass Keras runs at the end of each
    epoch is timed apart (val_seconds), so train_seconds measures training alone.

    `probe(network)`, if given, adds values to each epoch's row after the epoch's clock has
    stopped, and to the epoch's logs that later callbacks see (the benchmark logs test accuracy
    per epoch this way, untimed, and stops at a target). `network` is the model being trained
    (images in, probabilities out), which fit may be training behind the Pool and augmentation.
    """

    def __init__(self, path: Path, probe: Probe | None = None, network: keras.Model | None = None):
        super().__init__()
        self.path = path
        self.probe = probe
        self.network = network
        self.history: dict[str, list[float]] | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.history is None:  # first epoch of this process: pick up a resumed run's past
            old = artifacts.read_json(self.path) if self.path.exists() else {}
            self.history = {k: v[:epoch] for k, v in old.items()}
        self.started = time.perf_counter()
        self.val_seconds = 0.0

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.val_started = time.perf_counter()

    def on_test_end(self, logs: dict | None = None) -> None:
        self.val_seconds += time.perf_counter() - self.val_started

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self.started - self.val_seconds
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row = {**{k: float(v) for k, v in (logs or {}).items()}, "epoch_seconds": seconds, "lr": lr}
        row["val_seconds"] = self.val_seconds
        if self.probe is not None:
            probed = self.probe(self.network or self.model)
            row.update(probed)
            if logs is not None:
                logs.update(probed)
        for key, value in row.items():
            self.history.setdefault(key, []).append(value)
        artifacts.write_json(self.path, self.history)


class DiskGuard(keras.callbacks.Callback):
    """Stops training with one clear error when the disk cannot take the next checkpoint
    (h5py crashes the process on a full disk); the last checkpoint stays, so --resume works."""

    def __init__(self, run: Path, model: keras.Model):
        super().__init__()
        self.run = run
        self.needed = 3 * 4 * model.count_params() + 8_000_000  # two copies, optimizer, slack

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        artifacts.check_room(self.run, self.needed)
