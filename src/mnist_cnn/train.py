"""The training loop: config in, run folder out (model, history, metrics, plots, logs).

Every kind of training runs through `train`: the recipes, distillation from a teacher, and
fine-tuning a trained model on users' corrections (the `finetune` recipe: `init_from` and
`feedback_db`). It reads top to bottom: settings resolved, data and the network prepared,
Keras' fit (fitting.py), and the one way a run ends (runs.finish).
"""

import dataclasses
import importlib.util
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
    data,
    distribute,
    evaluate,
    feedback,
    fitting,
    models,
    runs,
    synth,
)
from mnist_cnn.data import NUM_CLASSES
from mnist_cnn.errors import MnistCnnError
from mnist_cnn.reading.results import MIN_CONFIDENCE
from mnist_cnn.recipes import TrainConfig, make_config  # noqa: F401  (train.make_config)

READER = "reader"  # the architecture that reads pages, not 28x28 digits
VAL_OFFSET = 1_000_003  # the held-out pages' seed, far from the training pages'
SYNTHETIC_POOL = 20_000  # synthetic digits made per run (1-2 minutes); batches draw from them
Reuse = fitting.Reuse  # pass one to train() to keep a compiled trainer for the next run


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def environment() -> dict[str, str]:
    return {
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.system()}",
    }


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


def train(
    cfg: TrainConfig,
    resume: bool = False,
    verbose: int | str = "auto",
    dataset: data.Dataset | None = None,
    probe: fitting.Probe | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    overwrite: bool = False,
    reuse: fitting.Reuse | None = None,
) -> runs.Result:
    """Train, save and evaluate one model into the run folder cfg.out.

    With resume=True the run folder's config.json is trusted and training continues from the
    last finished epoch (Keras' BackupAndRestore checkpoint, written after every epoch).
    overwrite=True replaces a run already in the folder (a notebook cell run twice); without
    it an existing run is never touched. `callbacks` go to Keras' fit after this package's.
    `dataset` skips loading (it must match cfg's split); `probe` is passed to EpochLog;
    `reuse` keeps the compiled trainer for a later run of the same program (fitting.Reuse).
    """
    dist = distribute.strategy(cfg.strategy)  # first: collective ops must be set up early
    with runs.claim(cfg.out, resume, overwrite) as run:
        if cfg.architecture == READER:
            result = _train_reader(cfg, run, verbose, callbacks or [])
        else:
            result = _train(cfg, run, dist, verbose, dataset, probe, callbacks or [], reuse)
        shutil.rmtree(run / "checkpoint", ignore_errors=True)  # finished: nothing to resume
    return result


def _train_reader(
    cfg: TrainConfig, run: Path, verbose: int | str, extra_callbacks: list
) -> runs.Result:
    """train() for the reader: generated pages (and a user's fields) in, a detector of digits
    and marks out, exported to ONNX and scored on pages of writers it never saw."""
    from mnist_cnn.reading import network, training

    if cfg.strategy != "none":
        raise MnistCnnError("the reader trains in one process: drop --strategy")
    cfg = _resolved(cfg)
    keras.utils.set_random_seed(cfg.seed)
    started = time.perf_counter()
    fields, skipped = _users_fields(cfg)  # first: a wrong folder should be an error at once
    made = training.generate(cfg.pages, cfg.seed, "train", cfg.data_dir)
    held = training.generate(cfg.val_pages, cfg.seed + VAL_OFFSET, "held_out", cfg.data_dir)
    model = models.load(cfg.init_from) if cfg.init_from else models.build(READER, cfg.precision)
    artifacts.write_json(run / runs.CONFIG, dataclasses.asdict(cfg))
    batches = training.Batches(
        made, cfg.batch_size, cfg.seed, fields, cfg.fields_share, cfg.steps_per_epoch
    )
    model.compile(optimizer=fitting.make_optimizer(cfg, len(batches)), loss=network.loss)
    validation = training.Batches(held, cfg.batch_size, cfg.seed) if len(held) else None
    callbacks = _reader_callbacks(run, model, batches)
    load_seconds = time.perf_counter() - started
    model.fit(
        batches,
        epochs=cfg.epochs,
        validation_data=validation,
        callbacks=callbacks + extra_callbacks,
        verbose=verbose,
    )
    if cfg.precision != "float32":  # save and export a plain float32 network, same weights
        trained, model = model, network.build()
        model.set_weights([np.asarray(w) for w in trained.get_weights()])
    past = runs.history(run)
    facts = {
        "recipe": cfg.recipe,
        "seed": cfg.seed,
        "epochs": len(past.get("loss", [])),
        "train_seconds": round(sum(past.get("epoch_seconds", [])), 3),
        "load_seconds": round(load_seconds, 3),
        "pages": len(made),
        "fields": len(fields) if fields is not None else 0,
        "fields_left_out": skipped,
        **environment(),
    }
    return runs.finish_reader(run, model, held, facts)


def pool_again(reader: str | Path | None = None, data_dir: str | None = None) -> dict[str, Any]:
    """Fit a reader's pool (reading/pooling.py) again, with the packaged classifier as it is
    now, on the held-out pages its run scored itself on: after `make default-model` retrains
    that classifier. `reader`: a run folder (None: the packaged reader)."""
    from mnist_cnn.reading import predictor, training

    path = predictor.reader_path(reader)
    cfg = artifacts.read_json(
        path.with_name("reader-config.json" if reader is None else "config.json")
    )
    if cfg.get("fields"):
        raise MnistCnnError(f"{path} learnt a user's fields, and reads with its network alone")
    held = training.generate(cfg["val_pages"], cfg["seed"] + VAL_OFFSET, "held_out", data_dir)
    pooled = training.save_pool(predictor.load(reader), held, path.parent)
    if not pooled:
        raise MnistCnnError(f"{path} finds no digit on its held-out pages: nothing to pool")
    return pooled


def _users_fields(cfg: TrainConfig) -> tuple:
    """The user's fields (--fields) as pages, boxed by their labels or by the reader being
    fine-tuned, and how many were left out; (None, 0) without --fields."""
    from mnist_cnn.reading import predictor, training

    if not cfg.fields:
        return None, 0
    reader = (
        predictor.Reader(predictor.exported(cfg.init_from), pool=False) if cfg.init_from else None
    )
    fields, skipped = training.fields(cfg.fields, reader)
    if not len(fields):
        raise MnistCnnError(f"none of the fields in {cfg.fields} could be boxed: see above")
    return fields, skipped


def _reader_callbacks(run: Path, model: keras.Model, batches) -> list:
    from mnist_cnn.reading import training

    return [
        fitting.EpochLog(run / runs.HISTORY),
        fitting.DiskGuard(run, model),
        keras.callbacks.BackupAndRestore(
            str(run / "checkpoint"), double_checkpoint=True, delete_checkpoint=False
        ),
        training.EpochSync(batches),
        # the network as it stands after each epoch, to read with while the run goes on
        keras.callbacks.ModelCheckpoint(str(run / "checkpoint" / "last.keras")),
    ]


def _train(
    cfg: TrainConfig,
    run: Path,
    dist: Any,
    verbose: int | str,
    dataset: data.Dataset | None,
    probe: fitting.Probe | None,
    extra_callbacks: list[keras.callbacks.Callback],
    reuse: fitting.Reuse | None,
) -> runs.Result:
    """train(), in a run folder this process holds. Every kill point leaves the run either
    finished (metrics.json) or resumable: the checkpoint of the last finished epoch stays
    until metrics.json is written, and a run with no finished epoch resumes from the start."""
    cfg = _resolved(cfg)
    keras.utils.set_random_seed(cfg.seed)
    fitting.compile_cache(data.cache_dir().parent / "jax")
    started = time.perf_counter()
    extras, corrections = _extras(cfg)
    ds = dataset or data.load(cfg.data_dir, cfg.val_size, cfg.train_limit, cfg.test_limit)
    teacher = models.load(cfg.teacher) if cfg.teacher else None
    with distribute.scope(dist):  # variables made here are mirrored on every replica
        network = (
            models.load(cfg.init_from)
            if cfg.init_from
            else models.build(cfg.architecture, cfg.precision)
        )
        cfg = dataclasses.replace(cfg, architecture=network.name)  # a trained one's own
        before = _correction_scores(network, corrections, ds) if corrections else None
        load_seconds = time.perf_counter() - started
        # only now, so that a run stopped by bad data or missing fonts can simply be started again
        artifacts.write_json(run / runs.CONFIG, dataclasses.asdict(cfg))
        pool = _pooled(cfg, ds, extras, teacher)
        del teacher
        compiled = fitting.compiled(cfg, network, pool.images, pool.steps, reuse)
    pool.images = None
    _fit(cfg, run, compiled, pool, probe, extra_callbacks, verbose)
    distribute.finish(dist)
    return _finish(cfg, run, ds, compiled.model, dist, load_seconds, corrections, before)


def _resolved(cfg: TrainConfig) -> TrainConfig:
    """cfg as saved: "auto" precision as this machine computes it (a resumed run computes as
    it began) and paths absolute, so the run finds its teacher, model and corrections again
    from wherever it is resumed. A fine-tuned model trains in float32, as it was saved."""
    paths = {
        name: str(Path(getattr(cfg, name)).resolve())
        for name in ("teacher", "init_from", "feedback_db")
        if getattr(cfg, name)
    }
    if cfg.init_from and cfg.strategy == "multiworker":
        raise MnistCnnError("fine-tuning (init_from) runs in one process: drop --strategy")
    precision = "float32" if cfg.init_from else models.resolve_precision(cfg.precision)
    return dataclasses.replace(cfg, precision=precision, **paths)


def _extras(cfg: TrainConfig) -> tuple[list, feedback.Corrections | None]:
    """What joins MNIST in every batch, as (images, labels, share of a batch): synthetic
    digits by other writers (from the training fonts and styles only), a user's corrections."""
    extras, corrections = [], None
    if cfg.feedback_db:  # first: too few corrections is an error that should come at once
        corrections = feedback.corrections(cfg.feedback_db, cfg.holdout, cfg.seed)
    if cfg.synthetic:
        made = synth.training_digits(SYNTHETIC_POOL, cfg.seed)
        extras.append((made.x[..., None], made.y, cfg.synthetic))
    if corrections is not None:
        learnt = corrections.learnt
        extras.append((corrections.x[learnt], corrections.y[learnt], cfg.correction_share))
    if sum(share for *_, share in extras) >= 0.95:
        raise MnistCnnError("synthetic and correction_share leave no room for MNIST in a batch")
    return extras, corrections


@dataclass
class Pooled:
    """The Pool's images and what indexes them: this process's training and validation
    indices and targets, each extra's (indices, targets, share), the batch and its steps."""

    images: np.ndarray | None
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    extras: list[tuple[np.ndarray, np.ndarray, float]]
    batch_size: int
    steps: int


def _pooled(cfg: TrainConfig, ds: data.Dataset, extras: list, teacher: Any) -> Pooled:
    """The Pool's images, the same in every process: MNIST's training digits, the extras',
    validation's. Under multiworker each process trains on its own shard of the indices,
    with its share of each batch. Targets are one-hot where the loss smooths them or a
    teacher's answers join them."""
    pooled = [ds.x_train] + [x for x, _, _ in extras] + [ds.x_val]
    starts = np.cumsum([0] + [len(x) for x in pooled])
    train_index, y_train = distribute.shard(np.arange(starts[0], starts[1]), ds.y_train)
    val_index, y_val = distribute.shard(np.arange(starts[-2], starts[-1]), ds.y_val)
    sources = [
        (np.arange(starts[k + 1], starts[k + 2]), y, share)
        for k, (_, y, share) in enumerate(extras)
    ]
    batch_size = cfg.batch_size // distribute.processes()[1]
    drawn = sum(round(share * batch_size) for *_, share in sources)
    steps = math.ceil(len(y_train) / (batch_size - drawn))
    steps = min(steps, cfg.steps_per_epoch or steps)
    images = np.concatenate(pooled)
    if cfg.label_smoothing or cfg.teacher:  # Keras smooths one-hot targets only
        hot = lambda y: keras.utils.to_categorical(y, NUM_CLASSES)  # noqa: E731
        y_train, y_val = hot(y_train), hot(y_val)
        sources = [(index, hot(y), share) for index, y, share in sources]
    if teacher is not None:
        y_train = _taught(cfg, teacher, y_train, images[train_index])
        sources = [(i, _taught(cfg, teacher, y, images[i]), s) for i, y, s in sources]
    return Pooled(images, (train_index, y_train), (val_index, y_val), sources, batch_size, steps)


def _fit(
    cfg: TrainConfig,
    run: Path,
    compiled: fitting.Compiled,
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
    if augmentation is not None or pool.extras or cfg.steps_per_epoch:
        clean_from = cfg.epochs - cfg.clean_epochs if cfg.clean_epochs else None
        batches = fitting.Batches(
            train_index, y_train, pool.batch_size, cfg.seed, pool.extras, cfg.steps_per_epoch
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
    corrections: feedback.Corrections | None = None,
    before: dict[str, float] | None = None,
) -> runs.Result:
    """A float32 model, on this process alone, and what the run's history says of it, through
    the one way a run ends (`runs.finish`: calibrated on validation and the corrections set
    aside for it, saved, scored; the held-out corrections before and after)."""
    if cfg.precision != "float32" or cfg.strategy == "multiworker":
        # save and score a plain float32 model, on this process alone, with the same weights
        trained, model = model, models.build(cfg.architecture)
        model.set_weights([np.asarray(w) for w in trained.get_weights()])
    past = runs.history(run)
    best = int(np.argmax(past["val_accuracy"])) + 1 if "val_accuracy" in past else None
    facts = {
        "recipe": cfg.recipe,
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
    calibrate_on, scored = (ds.x_val, ds.y_val), None
    if corrections is not None:
        c = corrections
        facts["corrections"] = len(c.y)
        facts["held_out_ids"] = sorted(int(i) for i in c.ids[c.held_out])
        facts["calibration_ids"] = sorted(int(i) for i in c.ids[c.calibration])
        facts["before"] = before
        calibrate_on = (
            np.concatenate([ds.x_val, c.x[c.calibration]]),
            np.concatenate([ds.y_val, c.y[c.calibration]]),
        )
        scored = lambda saved: {"after": _correction_scores(saved, c, ds)}  # noqa: E731
    return runs.finish(run, model, ds, facts, calibrate_on, scored)


def _correction_scores(
    model: keras.Model, c: feedback.Corrections, ds: data.Dataset
) -> dict[str, float]:
    """The held-out corrections' accuracy and unsure share, and MNIST test accuracy."""
    p = evaluate.predict_proba(model, c.x[c.held_out])
    return {
        "corrections_held_out_accuracy": float((p.argmax(1) == c.y[c.held_out]).mean()),
        "corrections_held_out_unsure": float((p.max(1) < MIN_CONFIDENCE).mean()),
        "mnist_test_accuracy": float(
            (evaluate.predict_proba(model, ds.x_test).argmax(1) == ds.y_test).mean()
        ),
    }
