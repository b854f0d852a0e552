"""The training loop: config in, run folder out (model, history, metrics, plots, logs)."""

import dataclasses
import importlib.util
import json
import math
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mnist_cnn import (
    artifacts,
    augment,
    data,
    distribute,
    evaluate,
    fitting,
    models,
    runs,
    synth,
)
from mnist_cnn.data import MIN_CONFIDENCE, NUM_CLASSES
from mnist_cnn.errors import MnistCnnError
from mnist_cnn.recipes import TrainConfig, make_config  # noqa: F401  (train.make_config)


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


SYNTHETIC_POOL = 20_000  # synthetic digits made per run (1-2 minutes); batches draw from them


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def compile_cache() -> Path | None:
    """On JAX, keep compiled XLA programs on disk ($XDG_CACHE_HOME/mnist-cnn/jax), so that a
    later `train` of the same recipe skips the compile that dominates a short run. TensorFlow
    and PyTorch keep nothing between processes; for them this does nothing."""
    if keras.backend.backend() != "jax":
        return None
    import jax

    folder = data.cache_dir().parent / "jax"
    jax.config.update("jax_compilation_cache_dir", str(folder))
    return folder


def environment() -> dict[str, str]:
    return {
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.system()}",
    }


@dataclass
class Compiled:
    """A trainer as built and compiled for one program, and what a later run resets in it."""

    trainer: fitting.Trainer
    model: keras.Model  # the network inside, which runs save
    augmentation: augment.Augmentation | None
    pool: fitting.Pool
    start: list[np.ndarray]  # the optimizer's variables before its first step


_LAST: dict[str, Compiled] = {}  # the last program this process compiled (at most one)
NOT_THE_PROGRAM = ("seed", "out", "data_dir", "test_limit")  # settings that change no graph


def _taught(
    cfg: TrainConfig, teacher: keras.Model, targets: np.ndarray, images: np.ndarray
) -> np.ndarray:
    """Targets that are partly the teacher's answers (distillation): where an ensemble is
    unsure of a digit, or sees two, one network learns that too, and reads as the ensemble
    does at a fraction of the cost. The teacher reads each training image once, undistorted;
    softened by its temperature, its answers say which digits an image resembles even where
    it is sure (Hinton et al. 2015)."""
    answers = evaluate.predict_proba(teacher, images) ** (1 / cfg.teacher_temperature)
    answers /= answers.sum(axis=1, keepdims=True)
    return (1 - cfg.teacher_share) * targets + cfg.teacher_share * answers.astype(np.float32)


def _steps_per_call(cfg: TrainConfig) -> int:
    """cfg.steps_per_execution where Keras runs it: not on PyTorch (Keras refuses), nor under
    a distribution strategy (TensorFlow's multi-step loop fails there in Keras 3.15)."""
    if keras.backend.backend() == "torch" or cfg.strategy != "none":
        return 1
    return cfg.steps_per_execution


def _compiled(cfg: TrainConfig, images: np.ndarray, steps: int) -> Compiled:
    """The trainer for cfg with the Pool holding `images`, ready to fit from the first step.

    When this process last compiled the same program (a notebook's second run, a benchmark's
    warm runs), that trainer comes back with the seed's initial weights, a fresh optimizer and
    these images, so the run skips tracing and compiling its step again and trains exactly as a
    new one would. It stays in memory with its images until another program replaces it.
    """
    program = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_THE_PROGRAM}
    key = json.dumps([keras.backend.backend(), images.shape, steps, program], sort_keys=True)
    model = models.build(cfg.architecture, cfg.precision)  # the seed's initial weights
    if key in _LAST:
        kept = _LAST[key]
        for old, new in zip(kept.model.variables, model.variables, strict=True):
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
    # there, then the model; only `model` is saved
    aug = augment.Augment.from_config(cfg)
    augmentation = augment.Augmentation(aug, cfg.seed) if aug else None
    indices = keras.Input((), dtype="int32")
    pool = fitting.Pool(images)
    taken = pool(indices)
    if augmentation is not None:
        taken = augmentation(taken)
    trainer = fitting.Trainer(indices, model(taken), epoch_steps=steps, name="trainer")
    trainer.compile(
        optimizer=make_optimizer(cfg, steps),
        loss=loss,
        metrics=[accuracy],
        steps_per_execution=steps if trainer.scans_epochs() else _steps_per_call(cfg),
    )
    trainer.optimizer.build(trainer.trainable_variables)
    start = [keras.ops.convert_to_numpy(v) for v in trainer.optimizer.variables]
    compiled = Compiled(trainer, model, augmentation, pool, start)
    _LAST.clear()
    if cfg.strategy == "none":
        _LAST[key] = compiled
    return compiled


def train(
    cfg: TrainConfig,
    resume: bool = False,
    verbose: int | str = "auto",
    dataset: data.Dataset | None = None,
    probe: fitting.Probe | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    overwrite: bool = False,
) -> runs.Result:
    """Train, save and evaluate one model into the run folder cfg.out.

    With resume=True the run folder's config.json is trusted and training continues from the
    last finished epoch (Keras' BackupAndRestore checkpoint, written after every epoch).
    overwrite=True replaces a run already in the folder (a notebook cell run twice); without
    it an existing run is never touched. `callbacks` go to Keras' fit after this package's.
    `dataset` skips loading (it must match cfg's split); `probe` is passed to EpochLog.
    """
    dist = distribute.strategy(cfg.strategy)  # first: collective ops must be set up early
    with runs.claim(cfg.out, resume, overwrite) as run:
        result = _train(cfg, run, dist, resume, verbose, dataset, probe, callbacks or [])
        shutil.rmtree(run / "checkpoint", ignore_errors=True)  # finished: nothing to resume
    return result


def _train(
    cfg: TrainConfig,
    run: Path,
    dist: Any,
    resume: bool,
    verbose: int | str,
    dataset: data.Dataset | None,
    probe: fitting.Probe | None,
    extra_callbacks: list[keras.callbacks.Callback],
) -> runs.Result:
    """train(), in a run folder this process holds. Every kill point leaves the run either
    finished (metrics.json) or resumable: the checkpoint of the last finished epoch stays
    until metrics.json is written, and a run with no finished epoch resumes from the start."""
    # what "auto" means on this machine, saved as such: a resumed run computes as it began
    cfg = dataclasses.replace(cfg, precision=models.resolve_precision(cfg.precision))
    if cfg.teacher:  # found again from wherever the run is resumed
        cfg = dataclasses.replace(cfg, teacher=str(Path(cfg.teacher).resolve()))
    keras.utils.set_random_seed(cfg.seed)
    compile_cache()
    started = time.perf_counter()
    ds = dataset or data.load(cfg.data_dir, cfg.val_size, cfg.train_limit, cfg.test_limit)
    extra = None
    if cfg.synthetic:  # digits by other writers, from the training fonts and styles only
        extra = synth.training_digits(SYNTHETIC_POOL, cfg.seed)
    teacher = models.load(cfg.teacher) if cfg.teacher else None
    load_seconds = time.perf_counter() - started
    # only now, so that a run stopped by bad data or missing fonts can simply be started again
    artifacts.write_json(run / runs.CONFIG, dataclasses.asdict(cfg))
    pool = _pooled(cfg, ds, extra, teacher)
    del teacher
    with distribute.scope(dist):  # variables made here are mirrored on every replica
        compiled = _compiled(cfg, pool.images, pool.steps)
    pool.images = None
    _fit(cfg, run, compiled, pool, probe, extra_callbacks, verbose)
    distribute.finish(dist)
    return _finish(cfg, run, ds, compiled.model, dist, load_seconds)


@dataclass
class Pooled:
    """The Pool's images and what indexes them: this process's training and validation
    indices and targets, the synthetic digits' (indices, targets), the batch and its steps."""

    images: np.ndarray | None
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    extra: tuple[np.ndarray, np.ndarray] | None
    batch_size: int
    steps: int


def _pooled(cfg: TrainConfig, ds: data.Dataset, extra: Any, teacher: Any) -> Pooled:
    """The Pool's images, the same in every process: MNIST's training digits, the synthetic
    ones, validation's. Under multiworker each process trains on its own shard of the
    indices, with its share of each batch. Targets are one-hot where the loss smooths them
    or a teacher's answers join them."""
    pooled = [ds.x_train] + ([extra.x[..., None]] if extra is not None else []) + [ds.x_val]
    starts = np.cumsum([0] + [len(x) for x in pooled])
    train_index, y_train = distribute.shard(np.arange(starts[0], starts[1]), ds.y_train)
    val_index, y_val = distribute.shard(np.arange(starts[-2], starts[-1]), ds.y_val)
    if extra is not None:
        extra = (np.arange(starts[1], starts[2]), extra.y)
    batch_size = cfg.batch_size // distribute.processes()[1]
    steps = math.ceil(len(y_train) / (batch_size - round(cfg.synthetic * batch_size)))
    if cfg.label_smoothing or cfg.teacher:  # Keras smooths one-hot targets only
        y_train, y_val = (keras.utils.to_categorical(y, NUM_CLASSES) for y in (y_train, y_val))
        if extra is not None:
            extra = (extra[0], keras.utils.to_categorical(extra[1], NUM_CLASSES))
    images = np.concatenate(pooled)
    if teacher is not None:
        y_train = _taught(cfg, teacher, y_train, images[train_index])
        if extra is not None:
            extra = (extra[0], _taught(cfg, teacher, extra[1], images[extra[0]]))
    return Pooled(images, (train_index, y_train), (val_index, y_val), extra, batch_size, steps)


def _fit(
    cfg: TrainConfig,
    run: Path,
    compiled: Compiled,
    pool: Pooled,
    probe: fitting.Probe | None,
    extra_callbacks: list,
    verbose: int | str,
) -> None:
    """Keras' fit over the pooled indices, with this package's callbacks first."""
    trainer, model, augmentation = compiled.trainer, compiled.model, compiled.augmentation
    callbacks = [
        fitting.EpochLog(run / runs.HISTORY, probe, model),
        fitting.DiskGuard(run, model),  # before the checkpoint: a full disk must not crash it
        keras.callbacks.BackupAndRestore(
            str(run / "checkpoint"), double_checkpoint=True, delete_checkpoint=False
        ),
    ]
    if _have("tensorflow"):
        callbacks.append(keras.callbacks.TensorBoard(str(run / "tensorboard"), write_graph=False))
    elif verbose:
        print("no TensorBoard logs: Keras writes them with TensorFlow, which is not installed")
    (train_index, y_train), (val_index, y_val) = pool.train, pool.val
    validation = (val_index.astype(np.int32), y_val) if len(y_val) else None
    if augmentation is not None or pool.extra is not None:
        clean_from = cfg.epochs - cfg.clean_epochs if cfg.clean_epochs else None
        batches = fitting.Batches(
            train_index, y_train, pool.batch_size, cfg.seed, pool.extra, cfg.synthetic
        )
        inputs = {"x": batches}
        callbacks.append(fitting.EpochSync(batches, augmentation, clean_from))
    else:  # Keras shuffles, as it would the images themselves
        inputs = {"x": train_index.astype(np.int32), "y": y_train, "batch_size": pool.batch_size}
    trainer.fit(
        **inputs,
        epochs=cfg.epochs,
        validation_data=validation,
        callbacks=callbacks + extra_callbacks + ([fitting.Progress()] if verbose else []),
        verbose=verbose,
    )


def _finish(
    cfg: TrainConfig,
    run: Path,
    ds: data.Dataset,
    model: keras.Model,
    dist: Any,
    load_seconds: float,
) -> runs.Result:
    """A float32 model, on this process alone, and what the run's history says of it, through
    the one way a run ends (`runs.finish`: calibrated on validation, saved, scored)."""
    if cfg.precision != "float32" or cfg.strategy == "multiworker":
        # save and score a plain float32 model, on this process alone, with the same weights
        trained, model = model, models.build(cfg.architecture)
        model.set_weights([np.asarray(w) for w in trained.get_weights()])
    past = runs.history(run)
    best = int(np.argmax(past["val_accuracy"])) + 1 if "val_accuracy" in past else None
    facts = {
        "model": cfg.model,
        "seed": cfg.seed,
        "epochs": len(past["loss"]),
        "train_seconds": round(sum(past["epoch_seconds"]), 3),
        "val_seconds": round(sum(past.get("val_seconds", [])), 3),
        "load_seconds": round(load_seconds, 3),
        "val_accuracy": past["val_accuracy"][-1] if best else None,
        "best_val_epoch": best,
        "train_size": len(ds.y_train),
        "flops_per_image": models.flops_per_image(model),
        "replicas": distribute.replicas(dist),
        **environment(),
    }
    return runs.finish(run, model, ds, facts, calibrate_on=(ds.x_val, ds.y_val))


class Corrections(keras.utils.PyDataset):
    """Fine-tuning batches: an eighth users' corrections (moved a little, afresh each time),
    the rest MNIST training digits replayed so that the model keeps what it knew."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        replay: data.Dataset,
        steps: int,
        batch_size: int,
        seed: int,
    ):
        super().__init__()
        self.x, self.y, self.replay, self.steps = x, y, replay, steps
        self.batch_size, self.seed = batch_size, seed
        self.augmentation = augment.Augmentation(
            augment.Augment(shift=2, rotate=8, zoom=0.08, shear=8), seed
        )

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng((self.seed, i))
        mine = self.batch_size // 8
        pick = rng.integers(0, len(self.y), mine)
        old = rng.integers(0, len(self.replay.y_train), self.batch_size - mine)
        moved = keras.ops.convert_to_numpy(self.augmentation(self.x[pick], training=True))
        x = np.concatenate([moved, self.replay.x_train[old]])
        y = np.concatenate([self.y[pick], self.replay.y_train[old]])
        return x, keras.utils.to_categorical(y, NUM_CLASSES)


def finetune(
    model_path: str | Path,
    feedback_db: str | Path | None,
    out: str | Path,
    steps: int = 200,
    lr: float = 3e-4,
    batch_size: int = 128,
    holdout: float = 0.25,
    seed: int = 0,
    data_dir: str | None = None,
    verbose: int | str = 0,
) -> runs.Result:
    """Teach a trained model the corrections a person kept (`mnist-cnn feedback review`), into
    a normal run folder. A share `holdout` is set aside: half of it, with MNIST's validation
    digits, recalibrates the model after training (label smoothing would leave it less sure:
    more "unsure"), the other half scores it before and after. The rest are an eighth of every
    batch, replayed MNIST the rest, so MNIST accuracy holds (benchmarks/feedback.py)."""
    started = time.perf_counter()
    store, (x, y, ids) = _kept_corrections(feedback_db)
    with runs.claim(out, resumable=False) as run:
        keras.utils.set_random_seed(seed)
        order = np.random.default_rng(seed).permutation(len(y))
        kept = max(1, round(holdout * len(y)))  # corrections set aside
        calib, held, used = order[: kept // 2], order[kept // 2 : kept], order[kept:]
        ds = data.load(data_dir)
        model = models.load(model_path)
        before = _correction_scores(model, x[held], y[held], ds)
        config = {
            "model": "finetune",
            "source_model": str(Path(model_path).resolve()),
            "feedback_db": str(store.path.resolve()),
            "corrections": len(y),
            "held_out_ids": sorted(int(i) for i in ids[held]),
            "calibration_ids": sorted(int(i) for i in ids[calib]),
            **dict(steps=steps, lr=lr, batch_size=batch_size, holdout=holdout, seed=seed),
        }
        artifacts.write_json(run / runs.CONFIG, config)
        batches = Corrections(x[used][..., None], y[used], ds, steps, batch_size, seed)
        history = _fit_corrections(model, batches, lr, verbose)
        artifacts.write_json(run / runs.HISTORY, history)
        facts = {
            **config,
            "before": before,
            "train_seconds": round(history["epoch_seconds"][0], 3),
            **environment(),
        }
        x_cal = np.concatenate([ds.x_val, x[calib][..., None]])
        return runs.finish(
            run,
            model,
            ds,
            facts,
            calibrate_on=(x_cal, np.concatenate([ds.y_val, y[calib]])),
            scored=lambda saved: {
                "after": _correction_scores(saved, x[held], y[held], ds),
                "finetune_seconds": round(time.perf_counter() - started, 3),
            },
        )


def _kept_corrections(feedback_db: str | Path | None) -> tuple[Any, tuple]:
    """The store and its kept corrections (images, labels, ids); fewer than 10 is an error."""
    from mnist_cnn import feedback

    store = feedback.FeedbackStore(feedback_db)  # None: the user data dir's
    found = store.arrays("kept")
    if len(found[1]) < 10:
        pending = store.stats()["pending"]
        raise MnistCnnError(
            f"{store.path} holds {len(found[1])} kept corrections ({pending} wait for review): "
            "fine-tuning needs 10; review them with `mnist-cnn feedback review`"
        )
    return store, found


def _correction_scores(
    model: keras.Model, x: np.ndarray, y: np.ndarray, ds: data.Dataset
) -> dict[str, float]:
    """The held-out corrections' accuracy and unsure share, and MNIST test accuracy."""
    p = evaluate.predict_proba(model, x[..., None])
    return {
        "corrections_held_out_accuracy": float((p.argmax(1) == y).mean()),
        "corrections_held_out_unsure": float((p.max(1) < MIN_CONFIDENCE).mean()),
        "mnist_test_accuracy": float(
            (evaluate.predict_proba(model, ds.x_test).argmax(1) == ds.y_test).mean()
        ),
    }


def _fit_corrections(
    model: keras.Model, batches: "Corrections", lr: float, verbose: int | str
) -> dict[str, list[float]]:
    """One pass over the batches with label smoothing, as the recipes that ship models train."""
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    started = time.perf_counter()
    fitted = model.fit(batches, epochs=1, verbose=verbose)
    history = {k: [float(v) for v in vs] for k, vs in fitted.history.items()}
    history["epoch_seconds"] = [time.perf_counter() - started]
    return history
