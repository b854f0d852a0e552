"""What a training run is made of: every setting, declared once, and named recipes of values.

`TrainConfig` holds each setting with its default (the `classic` recipe's value), the help text
of its command-line flag and its valid values; `mnist-cnn train` makes its flags from it. A
recipe names the values that differ from those defaults. `--recipe NAME` picks a recipe and any
flag given overrides it. This module imports nothing heavy, so `mnist-cnn --help` stays quick.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mnist_cnn.data import VAL_SIZE
from mnist_cnn.errors import MnistCnnError

# Keras dtype policies, and "auto": mixed_bfloat16 where the processor computes in bfloat16
# natively (models.bfloat16_native), float32 elsewhere, where bfloat16 is emulated and slower
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("none", "mirrored", "multiworker")  # see distribute.py
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "constant")


def setting(
    default: Any,
    help: str,
    low: float | None = None,
    high: float | None = None,
    choices: tuple | None = None,
    flag: bool = True,
    augment: bool = False,
) -> Any:
    """A TrainConfig field: default, help text, and the range [low, high) or choices it takes.

    flag=False: set by recipes only, not on the command line. augment=True: one of the moves
    and looks of training-time augmentation (`augment.Augment` is made of these, 0 = off).
    """
    meta = {"help": help, "low": low, "high": high, "choices": choices, "flag": flag}
    meta["augment"] = augment
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything that decides a run; saved as config.json so the run can be repeated."""

    recipe: str = setting("classic", "recipe", flag=False)
    architecture: str = setting("classic", "network (models.ARCHITECTURES)", flag=False)
    epochs: int = setting(8, "epochs", low=1)
    batch_size: int = setting(128, "batch size", low=1)
    lr: float = setting(3e-3, "peak learning rate", low=1e-12)
    optimizer: str = setting("adamw", "optimizer", choices=OPTIMIZERS)
    beta_1: float = setting(0.9, "Adam's beta_1", low=0, high=1)
    beta_2: float = setting(0.999, "Adam's beta_2", low=0, high=1)
    weight_decay: float = setting(5e-4, "AdamW's weight decay", low=0)
    schedule: str = setting("cosine", "learning-rate schedule", choices=SCHEDULES)
    warmup: float = setting(0.1, "share of the steps spent warming up", low=0, high=1)
    shift: float = setting(2.0, "random shift, pixels (0: off)", low=0, high=14, augment=True)
    rotate: float = setting(0.0, "random rotation, degrees", low=0, high=180, augment=True)
    zoom: float = setting(0.0, "random zoom, fraction (0.1: ±10%%)", low=0, high=1, augment=True)
    shear: float = setting(0.0, "random shear, degrees", low=0, high=60, augment=True)
    elastic: float = setting(0.0, "elastic distortion strength (e.g. 34)", low=0, augment=True)
    thickness: float = setting(
        0.0, "chance of a bolder or finer pen", low=0, high=1.01, augment=True
    )
    blur: float = setting(0.0, "largest random blur sigma, pixels", low=0, augment=True)
    noise: float = setting(0.0, "largest random noise std (0-255)", low=0, augment=True)
    scan: float = setting(
        0.0, "chance of a binarised low-resolution scan", low=0, high=1.01, augment=True
    )
    synthetic: float = setting(
        0.0, "share of each batch drawn from synthetic digits of other writers", low=0, high=0.9
    )
    clean_epochs: int = setting(0, "last N epochs without augmentation", low=0)
    label_smoothing: float = setting(0.0, "label smoothing, e.g. 0.1 (0: off)", low=0, high=1)
    teacher: str | None = setting(
        None, "a trained model (.keras or run folder) whose answers the network learns too"
    )
    teacher_share: float = setting(
        0.5, "share of each training target that is the teacher's answer", low=0, high=1
    )
    teacher_temperature: float = setting(
        2.0, "softens the teacher's answers (p ** (1 / T), renormalised)", low=0.1
    )
    init_from: str | None = setting(
        None, "start from this trained model (.keras or run folder), not new weights: fine-tuning"
    )
    feedback_db: str | None = setting(
        None, "learn the kept corrections of this database too (mnist-cnn feedback)"
    )
    correction_share: float = setting(
        0.125, "share of each batch drawn from the corrections", low=0, high=0.9
    )
    holdout: float = setting(
        0.25,
        "share of the corrections set aside: half recalibrates the model, half scores it",
        low=0,
        high=1,
    )
    pages: int = setting(0, "generated pages a reader trains on (the reader recipes)", low=0)
    val_pages: int = setting(1000, "generated pages (held-out writers) that score a reader", low=0)
    fields: str | None = setting(
        None, "a folder of your own labelled pictures (labels.json) a reader learns too"
    )
    fields_share: float = setting(0.5, "share of each batch drawn from --fields", low=0, high=1)
    steps_per_epoch: int | None = setting(
        None, "batches an epoch at most (None: one pass over MNIST's training digits)", low=1
    )
    precision: str = setting(
        "float32",
        "compute precision while training (auto: mixed_bfloat16 where the processor has "
        "bfloat16 arithmetic, else float32); saved models are float32",
        choices=PRECISIONS,
    )
    strategy: str = setting(
        "none",
        "data-parallel training: all local GPUs on tf.distribute (mirrored), or "
        "several processes/hosts on JAX (multiworker; see docs/scaling.md)",
        choices=STRATEGIES,
    )
    steps_per_execution: int = setting(
        64,
        "training steps per call into the compiled step (Keras' steps_per_execution): fewer "
        "calls from Python, a progress bar that moves once a call; 1 on PyTorch and with "
        "--strategy",
        low=1,
    )
    seed: int = setting(0, "seeds every random source")
    val_size: int = setting(VAL_SIZE, "validation images carved from the training set", low=0)
    train_limit: int | None = setting(None, "train on the first N images only", low=1)
    test_limit: int | None = setting(None, "evaluate on the first N test images only", low=1)
    data_dir: str | None = setting(None, "folder with the four MNIST files (or MNIST_DATA_DIR)")
    out: str = setting("runs/classic", "run folder", flag=False)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check(f, getattr(self, f.name))


def kind_of(f: dataclasses.Field) -> type:
    """The type a setting's values have (int for `int | None`)."""
    args = [a for a in getattr(f.type, "__args__", (f.type,)) if a is not type(None)]
    return args[0]


def check(f: dataclasses.Field, value: Any) -> None:
    """One clear error for a value of the wrong type or outside what setting `f` takes."""
    kind = kind_of(f)
    if value is None and f.default is None:
        return
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MnistCnnError(f"{f.name} must be {kind.__name__}, not {value!r}")
    meta = f.metadata
    if meta["choices"] and value not in meta["choices"]:
        raise MnistCnnError(f"{f.name} must be one of {', '.join(meta['choices'])}, not {value!r}")
    if meta["low"] is not None and value < meta["low"]:
        raise MnistCnnError(f"{f.name} must be at least {meta['low']}, not {value}")
    if meta["high"] is not None and value >= meta["high"]:
        raise MnistCnnError(f"{f.name} must be below {meta['high']}, not {value}")


RECIPES: dict[str, dict[str, Any]] = {
    # The classic Keras MNIST CNN, trained well: AdamW, warm-up then cosine decay, and small
    # random shifts of the training images: TrainConfig's defaults.
    "classic": {},
    # The classic net trained exactly as the Keras example does: what the benchmark compares to.
    "classic-peer": {
        "batch_size": 64,
        "lr": 1e-3,
        "optimizer": "adam",
        "weight_decay": 0.0,
        "schedule": "constant",
        "warmup": 0.0,
        "shift": 0.0,
        "steps_per_execution": 1,  # fit's default, which the example keeps
    },
    # The fastest way found to 99% on a 2-core CPU: a half-width net, one epoch, batch 256,
    # Adam with tuomaso/train_mnist_fast's betas, 20% warm-up then cosine decay.
    "fast": {
        "architecture": "fast",
        "epochs": 1,
        "batch_size": 256,
        "lr": 0.015,
        "optimizer": "adam",
        "beta_1": 0.7,
        "beta_2": 0.9,
        "weight_decay": 0.0,
        "warmup": 0.2,
        "shift": 0.0,
        "precision": "auto",
    },
}

# The fast architecture trained the classic way: 99.4% at a third of the classic net's FLOPs,
# for when inference speed matters (batch prediction, serving).
RECIPES["compact"] = {"architecture": "fast"}

# Built for accuracy: a 7-conv batch-norm net, every image rotated, zoomed, sheared and
# shifted afresh each epoch, label smoothing.
RECIPES["deep"] = {
    "architecture": "deep",
    "epochs": 15,
    "shift": 2.5,
    "rotate": 10.0,
    "zoom": 0.1,
    "shear": 10.0,
    "label_smoothing": 0.1,
}

# `deep` plus what other pens and cameras do to a digit (strokes a pixel bolder or finer,
# blur, noise), trained with bfloat16 compute where the processor has it, to save a quarter
# of the time.
RECIPES["robust"] = {
    **RECIPES["deep"],
    "thickness": 0.5,
    "blur": 1.0,
    "noise": 20.0,
    "precision": "auto",
}

# The packaged model's recipe: `robust` that also reads writers MNIST never had.
# A quarter of every batch (32 of 128 images) is synthetic: digits of 18 handwriting font
# families and 22 stroke styles (flag-and-foot 1s, crossed 7s, open 4s, hooked 9s, ...) drawn
# as users' pictures and form scans, then normalised as `predict` does (mnist_cnn.synth).
# Enough to teach those shapes while three in four images stay MNIST, and each epoch still
# sees every MNIST digit once. A fifth of the MNIST digits also become low-resolution binarised
# scans. The last 2 epochs are unaugmented (the synthetic share stays).
RECIPES["writers"] = {**RECIPES["robust"], "synthetic": 0.25, "scan": 0.2, "clean_epochs": 2}

# `robust` whose last 2 of 15 epochs train on the digits as they are, fitting the model to
# undistorted digits at the end of the decay.
RECIPES["best-deep"] = {**RECIPES["robust"], "clean_epochs": 2}

# The most accurate single model: `best-deep`'s training on the residual net, which scored
# higher on the validation split (99.5-99.6% against 99.4-99.5%) and trains faster.
RECIPES["best"] = {**RECIPES["best-deep"], "architecture": "residual"}

# Teach a trained model (--init-from) the corrections a person kept (--feedback-db): 200
# batches of 128, an eighth of each the corrections (moved a little, afresh each time), the
# rest MNIST replayed so that the model keeps what it knew; label smoothing, as the recipes
# that ship models train; a gentle constant rate (benchmarks/feedback.py). `mnist-cnn
# finetune` runs it on the packaged model and the user's database.
RECIPES["finetune"] = {
    "epochs": 1,
    "steps_per_epoch": 200,
    "lr": 3e-4,
    "optimizer": "adam",
    "weight_decay": 0.0,
    "schedule": "constant",
    "warmup": 0.0,
    "rotate": 8.0,
    "zoom": 0.08,
    "shear": 8.0,
    "label_smoothing": 0.1,
}
# The reader: a one-stage detector of digits and marks (reading/network.py), trained on pages
# generated from MNIST's training digits and the synthetic writers' training fonts and styles
# (reading/pages.py), 100,000 pages made once per run, 3 passes over them; about an hour on
# 2 CPU cores. `make default-reader` packages it.
RECIPES["reader"] = {
    "architecture": "reader",
    "pages": 100_000,
    "epochs": 3,
    "batch_size": 32,
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "warmup": 0.03,
    "shift": 0.0,
    "precision": "auto",  # bfloat16 compute where the processor has it: a fifth faster
}

# Teach a reader (--init-from, the packaged one by default) a user's own labelled pictures
# (--fields: a folder with labels.json), as a bank would its cheques: half of each batch the
# fields, half generated pages, so that it keeps reading everything else.
RECIPES["fields"] = {
    **RECIPES["reader"],
    "precision": "float32",  # a fine-tuned network trains as it was saved
    "pages": 10_000,
    "epochs": 2,
    "lr": 5e-4,
    "warmup": 0.0,
    "schedule": "cosine",
}
NEEDS = {
    "finetune": ("init_from", "feedback_db"),
    "fields": ("init_from", "fields"),
}  # what a recipe cannot train without

RENAMED = {"seed": "classic", "seed-peer": "classic-peer"}  # earlier names, still understood


def _renamed(name: str) -> MnistCnnError:
    return MnistCnnError(
        f"the recipe and network {name!r} are now called {RENAMED[name]!r} (--seed N is only "
        f"the random seed): use --recipe {RENAMED[name]}"
    )


AUGMENT = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["augment"])


def make_config(recipe: str = "classic", **overrides: Any) -> TrainConfig:
    """A recipe's values, with any override that is not None taking precedence."""
    if "model" in overrides:  # the recipe's earlier name
        raise MnistCnnError("make_config takes the recipe as `recipe` (it was `model`)")
    if recipe in RENAMED:
        raise _renamed(recipe)
    if recipe not in RECIPES:
        raise MnistCnnError(f"unknown recipe {recipe!r}: choose one of {', '.join(RECIPES)}")
    values = {**RECIPES[recipe], **{k: v for k, v in overrides.items() if v is not None}}
    missing = [name for name in NEEDS.get(recipe, ()) if not values.get(name)]
    if missing:
        flags = " and ".join(f"--{name.replace('_', '-')}" for name in missing)
        hint = {"finetune": "mnist-cnn finetune", "fields": "mnist-cnn finetune --fields DIR"}
        also = f" (or run `{hint[recipe]}`)" if recipe in hint else ""
        raise MnistCnnError(f"the {recipe} recipe needs {flags}{also}")
    return TrainConfig(recipe=recipe, **values)


def config_from(values: Any, where: str = "config.json") -> TrainConfig:
    """A TrainConfig from a run's saved values, with one clear error for anything wrong."""
    if not isinstance(values, dict):
        raise MnistCnnError(f"{where} does not hold a JSON object of settings")
    legacy = "model" in values and "recipe" not in values  # saved before it was "recipe"
    if legacy:
        values = {("recipe" if k == "model" else k): v for k, v in values.items()}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise MnistCnnError(f"{where} has unknown settings: {', '.join(unknown)}")
    for key in ("recipe", "architecture"):
        if values.get(key) in RENAMED:
            raise MnistCnnError(
                f"{where} was written when {values[key]!r} was a name; replace its "
                f"{'model' if legacy and key == 'recipe' else key} {values[key]!r} by "
                f"{RENAMED[values[key]]!r}"
            )
    return TrainConfig(**values)
