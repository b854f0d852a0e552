"""Model architectures, by name. Each takes raw pixels (0-255) and scales them itself.

Keeping the scaling inside the model means a saved or exported model needs nothing from this
package to be used: feed it the image as it is.
"""

from collections.abc import Callable
from pathlib import Path

import keras
from keras import layers

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def seed() -> keras.Model:
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
            layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities"),
        ],
        name="seed",
    )


def fast() -> keras.Model:
    """Built for time to 99%: half the seed's conv width, 5x5 first layer, inputs standardised.

    Standardising (MNIST's mean 0.1307 and std 0.3081 after /255) instead of plain /255 lets
    a high learning rate work from the first step, which is what one-epoch training needs.
    """
    mean, std = 0.1307, 0.3081
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE, name="pixels"),
            layers.Rescaling(1.0 / (255 * std), offset=-mean / std, name="scale"),
            layers.Conv2D(16, 5, activation="relu", name="conv1"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Conv2D(32, 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="dense"),
            layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities"),
        ],
        name="fast",
    )


ARCHITECTURES: dict[str, Callable[[], keras.Model]] = {"seed": seed, "fast": fast}


def flops_per_image(model: keras.Model) -> int:
    """Multiply-adds x 2 of one forward pass through the conv and dense layers (the bulk)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            h, w, c_out = layer.output.shape[1:]
            c_in = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            total += 2 * h * w * c_out * kh * kw * c_in
        elif isinstance(layer, layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def build(name: str) -> keras.Model:
    """Build a fresh, untrained model by architecture name."""
    from mnist_cnn.errors import MnistCnnError

    try:
        return ARCHITECTURES[name]()
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise MnistCnnError(f"unknown model {name!r}: choose one of {known}") from None


def load(path: str | Path) -> keras.Model:
    """Load a saved .keras model (or a run folder's model.keras) with Keras' safe_mode on."""
    from mnist_cnn.errors import MnistCnnError

    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.exists():
        raise MnistCnnError(f"no model at {path}: give a .keras file or a run folder holding one")
    if path.suffix != ".keras":
        raise MnistCnnError(f"{path} is not a .keras file: give a model saved by mnist-cnn")
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as err:
        raise MnistCnnError(f"cannot load model {path}: {err}") from None
