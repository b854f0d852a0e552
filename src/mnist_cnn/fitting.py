"""What Keras' fit is given when this package trains: where the images live (`Pool`), the
model fit trains (`Trainer`: indices in, images from the Pool, augmentation, the network), its
batches (`Batches`) and the callbacks that keep a run resumable and its history on disk.

`Trainer.make_train_function`, `Trainer.from_the_start` and `Pool`'s empty checkpoint are the
only places that reach into Keras' internals, and each says why: nothing else does.
"""

import dataclasses
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mnist_cnn import artifacts, augment
from mnist_cnn.recipes import TrainConfig


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
    step, which is what bounded short runs on a GPU. A last, smaller batch runs as one step of
    its own. `whole_epochs=None` does this on accelerators only: on the CPU, XLA runs the
    scanned epoch about 4x slower than step by step (`fast`: 76-77 s against 16-19 s); True
    forces it (tests). Elsewhere it is a plain functional model.
    """

    def __init__(
        self,
        inputs: Any,
        outputs: Any,
        epoch_steps: int = 1,
        whole_epochs: bool | None = None,
        **kwargs: Any,
    ):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.epoch_steps, self.whole_epochs = epoch_steps, whole_epochs

    def from_the_start(self) -> None:
        """Forget the epoch a resumed run's checkpoint had fit start from: Keras keeps it on the
        model (a private attribute), and a later run of this trainer would start there too."""
        self._initial_epoch = None

    def scans_epochs(self) -> bool:
        if self.epoch_steps < 2 or keras.backend.backend() != "jax" or self.whole_epochs is False:
            return False
        import jax

        on_device = self.whole_epochs or jax.default_backend() != "cpu"
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

    `index` holds the Pool indices of the MNIST digits to train on (labels `y`). Each of
    `extras` (Pool indices, labels, share: the synthetic digits of other writers, a user's
    corrections) fills that share of every batch, drawn at random; the rest is MNIST, and an
    epoch goes through every MNIST digit once, or stops after `steps` batches.
    """

    def __init__(
        self,
        index: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        seed: int,
        extras: list[tuple[np.ndarray, np.ndarray, float]] = (),
        steps: int | None = None,
    ):
        super().__init__()
        self.index, self.y, self.batch_size, self.seed = index, y, batch_size, seed
        self.extras = [(i, t, round(share * batch_size)) for i, t, share in extras]
        self.taken = batch_size - sum(drawn for *_, drawn in self.extras)  # MNIST per batch
        self.steps = steps
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Shuffle as epoch `epoch` does (also after a resume)."""
        self.epoch = epoch
        self.order = np.random.default_rng((self.seed, epoch)).permutation(len(self.y))

    def __len__(self) -> int:
        return min(math.ceil(len(self.y) / self.taken), self.steps or math.inf)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        at = self.order[i * self.taken : (i + 1) * self.taken]
        index, y = [self.index[at]], [self.y[at]]
        rng = np.random.default_rng((self.seed, self.epoch, i))
        for extra_index, extra_y, drawn in self.extras:
            pick = rng.integers(0, len(extra_y), drawn)
            index.append(extra_index[pick])
            y.append(extra_y[pick])
        return np.concatenate(index).astype(np.int32), np.concatenate(y)


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


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "constant":
        lr: Any = cfg.lr
    else:  # cosine
        warmup = int(cfg.warmup * total)
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=cfg.lr * 0.1 if warmup else cfg.lr,
            decay_steps=max(1, total - warmup),
            alpha=0.01,
            warmup_target=cfg.lr if warmup else None,
            warmup_steps=warmup,
        )
    betas = {"beta_1": cfg.beta_1, "beta_2": cfg.beta_2}
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay, **betas)
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(lr, **betas)
    return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)


def compile_cache(folder: Path) -> Path | None:
    """On JAX, keep compiled XLA programs in `folder`, so that a later `train` of the same
    recipe skips the compile that dominates a short run. TensorFlow and PyTorch keep nothing
    between processes; for them this does nothing."""
    if keras.backend.backend() != "jax":
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    return folder


@dataclass
class Compiled:
    """A trainer as built and compiled for one program, and what a later run resets in it."""

    trainer: Trainer
    model: keras.Model  # the network inside, which runs save
    augmentation: augment.Augmentation | None
    pool: Pool
    start: list[np.ndarray]  # the optimizer's variables before its first step


class Reuse:
    """The last trainer compiled through it, for a later run of the same program (a
    benchmark's warm runs, a notebook's second run) to skip tracing and compiling its step.
    It holds that run's images too, so it lives only as long as its caller keeps it."""

    NOT_THE_PROGRAM = ("seed", "out", "data_dir", "test_limit")  # settings that change no graph

    def __init__(self) -> None:
        self.key: str | None = None
        self.compiled: Compiled | None = None

    def program(self, cfg: TrainConfig, images: np.ndarray, steps: int) -> str:
        values = dataclasses.asdict(cfg)
        program = {k: v for k, v in values.items() if k not in self.NOT_THE_PROGRAM}
        return json.dumps([keras.backend.backend(), images.shape, steps, program], sort_keys=True)


def _steps_per_call(cfg: TrainConfig) -> int:
    """cfg.steps_per_execution where Keras runs it: not on PyTorch (Keras refuses), nor under
    a distribution strategy (TensorFlow's multi-step loop fails there in Keras 3.15)."""
    if keras.backend.backend() == "torch" or cfg.strategy != "none":
        return 1
    return cfg.steps_per_execution


def compiled(
    cfg: TrainConfig,
    network: keras.Model,
    images: np.ndarray,
    steps: int,
    reuse: Reuse | None = None,
) -> Compiled:
    """The trainer for cfg, training `network` on the Pool holding `images`, ready to fit from
    the first step. Where `reuse` last compiled the same program, that trainer comes back with
    `network`'s weights, a fresh optimizer and these images: it trains exactly as a new one."""
    key = reuse.program(cfg, images, steps) if reuse else None
    if reuse and reuse.key == key:
        kept = reuse.compiled
        for old, new in zip(kept.model.variables, network.variables, strict=True):
            old.assign(new)  # weights, and the seed generators of dropout layers
        for variable, value in zip(kept.trainer.optimizer.variables, kept.start, strict=True):
            variable.assign(value)
        kept.pool.images.assign(images)
        kept.trainer.from_the_start()
        return kept
    if cfg.label_smoothing or cfg.teacher:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
        accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    # what fit trains: indices in, the images taken from the Pool on the device, augmented
    # there, then the network; only the network is saved
    aug = augment.Augment.from_config(cfg)
    augmentation = augment.Augmentation(aug, cfg.seed) if aug else None
    indices = keras.Input((), dtype="int32")
    pool = Pool(images)
    taken = augmentation(pool(indices)) if augmentation is not None else pool(indices)
    trainer = Trainer(indices, network(taken), epoch_steps=steps, name="trainer")
    trainer.compile(
        optimizer=make_optimizer(cfg, steps),
        loss=loss,
        metrics=[accuracy],
        steps_per_execution=steps if trainer.scans_epochs() else _steps_per_call(cfg),
    )
    trainer.optimizer.build(trainer.trainable_variables)
    start = [keras.ops.convert_to_numpy(v) for v in trainer.optimizer.variables]
    made = Compiled(trainer, network, augmentation, pool, start)
    if reuse is not None and cfg.strategy == "none":
        reuse.key, reuse.compiled = key, made
    return made
