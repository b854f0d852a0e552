"""Model architectures, by name. Each takes raw pixels (0-255) and scales them itself.

Keeping the scaling inside the model means a saved or exported model needs nothing from this
package to be used: feed it the image as it is.
"""

import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import keras
from keras import layers

from mnist_cnn.data import IMAGE_SHAPE, NUM_CLASSES
from mnist_cnn.errors import MnistCnnError
from mnist_cnn.recipes import PRECISIONS, RENAMED

INPUT_SHAPE = (*IMAGE_SHAPE, 1)
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the training pixels, after /255


def standardise() -> layers.Rescaling:
    """Raw 0-255 pixels to zero mean and unit variance over MNIST, inside the model."""
    return layers.Rescaling(1.0 / (255 * MNIST_STD), offset=-MNIST_MEAN / MNIST_STD, name="scale")


def classic() -> keras.Model:
    """The classic Keras MNIST CNN this project started from: 225,034 parameters, exactly."""
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE, name="pixels"),
            layers.Rescaling(1.0 / 255, name="scale"),
            layers.Conv2D(32, 3, activation="relu", name="conv1"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Conv2D(64, 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="dense"),
            layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities", dtype="float32"),
        ],
        name="classic",
    )


def fast() -> keras.Model:
    """Built for time to 99%: half the classic net's width, 5x5 first layer, inputs standardised.

    Standardising (MNIST's mean 0.1307 and std 0.3081 after /255) instead of plain /255 lets
    a high learning rate work from the first step, which is what one-epoch training needs.
    Each ReLU comes after its max-pool: the same function (both keep the largest of four,
    clipped at 0) on a quarter of the values, a training step ~8% quicker on a CPU.
    """
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE, name="pixels"),
            standardise(),
            layers.Conv2D(16, 5, name="conv1"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.ReLU(name="relu1"),
            layers.Conv2D(32, 3, name="conv2"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.ReLU(name="relu2"),
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="dense"),
            layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities", dtype="float32"),
        ],
        name="fast",
    )


def deep() -> keras.Model:
    """Built for accuracy: seven conv layers with batch-norm and dropout (Chris Deotte's design).

    Two blocks of 3x3, 3x3 and a strided 5x5 conv (32 then 64 filters) replace pooling with
    learned downsampling; a 4x4 conv of 128 filters ends on a 1x1 map before the classifier.
    """
    stack: list[layers.Layer] = [
        keras.Input(INPUT_SHAPE, name="pixels"),
        standardise(),
    ]

    def conv(name: str, filters: int, size: int, strides: int = 1, padding: str = "valid"):
        stack.append(layers.Conv2D(filters, size, strides, padding, use_bias=False, name=name))
        stack.append(layers.BatchNormalization(momentum=0.9, name=f"{name}_bn"))
        stack.append(layers.ReLU(name=f"{name}_relu"))

    for block, filters in enumerate((32, 64), start=1):
        conv(f"conv{block}a", filters, 3)
        conv(f"conv{block}b", filters, 3)
        conv(f"conv{block}c", filters, 5, strides=2, padding="same")
        stack.append(layers.Dropout(0.4, name=f"drop{block}"))
    conv("conv3", 128, 4)
    stack += [
        layers.Flatten(name="flatten"),
        layers.Dropout(0.4, name="drop3"),
        layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities", dtype="float32"),
    ]
    return keras.Sequential(stack, name="deep")


def residual() -> keras.Model:
    """A residual net after ttdoucet/mnist (99.82%), at a quarter of its width to fit a CPU.

    It makes other mistakes than `deep`, which an ensemble needs: padded convs keep the full 28x28
    to start with, max-pooling downsamples, and each stage adds a batch-normed 3x3 conv back
    onto its input; global average pooling feeds the classifier.
    """
    inputs = keras.Input(INPUT_SHAPE, name="pixels")
    x = standardise()(inputs)
    x = layers.Conv2D(32, 5, padding="same", activation="relu", name="stem")(x)

    def block(x, name: str):
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        y = layers.Conv2D(x.shape[-1], 3, padding="same", activation="relu", name=name)(x)
        return layers.Add(name=f"{name}_add")([x, y])

    x = block(x, "res1")
    x = layers.MaxPooling2D(name="pool1")(x)  # 14x14
    x = block(x, "res2")
    for stage, filters in ((3, 64), (4, 128)):
        x = layers.BatchNormalization(momentum=0.9, name=f"widen{stage}_bn")(x)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"widen{stage}")(x)
        x = layers.MaxPooling2D(padding="same", name=f"pool{stage - 1}")(x)  # 7x7, then 4x4
        x = block(x, f"res{stage}")
    x = layers.BatchNormalization(momentum=0.9, name="head_bn")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    probs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities", dtype="float32")
    return keras.Model(inputs, probs(x), name="residual")


def reader() -> keras.Model:
    """The reader's network: a page in, every digit and mark on it out (reading/network.py)."""
    from mnist_cnn.reading import network

    return network.build()


ARCHITECTURES: dict[str, Callable[[], keras.Model]] = {
    "classic": classic,
    "fast": fast,
    "deep": deep,
    "residual": residual,
    "reader": reader,
}


def ensemble(members: list[keras.Model]) -> keras.Model:
    """One model whose output is the mean of its members' probabilities.

    It saves, loads, evaluates and exports like any single model; averaging probabilities of
    differently seeded nets is the committee that takes MNIST past what one net reaches.
    """
    if not members:
        raise MnistCnnError("an ensemble needs at least one model")
    inputs = keras.Input(INPUT_SHAPE, name="pixels")
    outputs = []
    for i, member in enumerate(members):
        member.name = f"member{i}_{member.name}"  # names inside one model must be unique
        outputs.append(member(inputs))
    mean = layers.Average(name="probabilities")(outputs) if len(outputs) > 1 else outputs[0]
    return keras.Model(inputs, mean, name=f"ensemble{len(members)}")


def flops_per_image(model: keras.Model) -> int:
    """Multiply-adds x 2 of one forward pass through the conv and dense layers (the bulk)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):  # an ensemble's members
            total += flops_per_image(layer)
        elif isinstance(layer, layers.Conv2D):
            h, w, c_out = layer.output.shape[1:]
            c_in = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            total += 2 * h * w * c_out * kh * kw * c_in
        elif isinstance(layer, layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def bfloat16_native() -> bool:
    """Whether the device Keras computes on has bfloat16 arithmetic: a GPU from Ampere on
    (compute capability 8), a TPU, or on TensorFlow a CPU with AVX512-BF16 or AMX.

    Only there does mixed_bfloat16 train faster. Elsewhere it is emulated: `fast` took twice
    as long in bfloat16 as in float32 with oneDNN held to AVX-512 without BF16.
    The CPUs of JAX and PyTorch are left out: not measured, float32 is the safe side.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return tuple(details.get("compute_capability", (0, 0))) >= (8, 0)
        return _cpu_has_bfloat16()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "gpu":  # compute_capability: "9.0" on an H100
            major = re.search(r"\d+", str(getattr(device, "compute_capability", "")))
            return major is not None and int(major.group()) >= 8
        return device.platform == "tpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)
    return False


def _cpu_has_bfloat16() -> bool:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: not worth guessing
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", cpuinfo) is not None


def resolve_precision(precision: str) -> str:
    """A Keras dtype policy for a precision setting: "auto" becomes mixed_bfloat16 where
    bfloat16_native(), else float32; any other name is checked and kept."""
    if precision not in PRECISIONS:
        raise MnistCnnError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "mixed_bfloat16" if bfloat16_native() else "float32"
    return precision


def build(name: str, precision: str = "float32") -> keras.Model:
    """Build a fresh, untrained model by architecture name.

    A mixed precision computes in 16 bits but keeps float32 weights (and a float32 softmax,
    so the loss stays exact); the global Keras policy is left as it was.
    """
    if name in RENAMED:
        raise MnistCnnError(f"the network {name!r} is now called {RENAMED[name]!r}")
    if name not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise MnistCnnError(f"unknown model {name!r}: choose one of {known}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(resolve_precision(precision))
    try:
        return ARCHITECTURES[name]()
    finally:
        keras.config.set_dtype_policy(previous)


def load(path: str | Path) -> keras.Model:
    """Load a saved .keras model (or a run folder's model.keras) with Keras' safe_mode on."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.exists():
        raise MnistCnnError(f"no model at {path}: give a .keras file or a run folder holding one")
    if path.suffix != ".keras":
        raise MnistCnnError(f"{path} is not a .keras file: give a model saved by mnist-cnn")
    if not zipfile.is_zipfile(path):
        raise MnistCnnError(f"{path} is not a Keras model file (a .keras file is a zip archive)")
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as err:
        raise MnistCnnError(f"cannot load model {path}: {err}") from None
