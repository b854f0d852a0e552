"""mnist-cnn: read handwritten digits and numbers; train, evaluate, serve and export models.

    import mnist_cnn
    mnist_cnn.read_digit("photo.jpg")      # Digit(digit=7, confidence=0.99, top3=..., box=...)
    mnist_cnn.read_number("price.png").value   # 12.5, from "12.50"
    mnist_cnn.read_numbers("column.jpg").table()  # [["12.50"], ["-3"], ...], a row a line

Reading runs the packaged reader on ONNX Runtime: no TensorFlow, no Keras.
`mnist_cnn.Reader(model=...)` reads with another reader (a run folder or an .onnx file).
"""

from functools import lru_cache
from typing import Any

__version__ = "0.1.0"
__all__ = ["Reader", "read_digit", "read_number", "read_numbers"]


@lru_cache(maxsize=4)
def _reader(model: str | None) -> Any:
    from mnist_cnn.reading.predictor import Reader

    return Reader(model)


def read_digit(image: Any, model: str | None = None) -> Any:
    """The digit in a picture (a path, bytes, a PIL image or an array): a `Digit`."""
    return _reader(None if model is None else str(model)).read_digit(image)


def read_number(image: Any, model: str | None = None) -> Any:
    """The number written in a row in a picture: a `Number` (text, value, digits, marks)."""
    return _reader(None if model is None else str(model)).read_number(image)


def read_numbers(image: Any, model: str | None = None) -> Any:
    """Every number on a page in a picture: a `Page` (lines of numbers, a table)."""
    return _reader(None if model is None else str(model)).read_numbers(image)


def __getattr__(name: str) -> Any:
    if name == "Reader":  # loaded on first use: `import mnist_cnn` stays instant
        from mnist_cnn.reading.predictor import Reader

        return Reader
    raise AttributeError(f"module 'mnist_cnn' has no attribute {name!r}")
