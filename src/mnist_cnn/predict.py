"""Reading digits and numbers from image files: normalise each one, then ask a Classifier.

Every file gets an answer or its own error, so one bad file never costs the rest of a batch.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_cnn import engines
from mnist_cnn.data import MIN_CONFIDENCE
from mnist_cnn.digits import locate_number, normalise, number_pieces, read_image, to_gray
from mnist_cnn.engines import Classifier
from mnist_cnn.errors import MnistCnnError


@dataclass
class Prediction:
    """One file's answer, as printed by `mnist-cnn predict --json`."""

    file: str
    digit: int | None = None
    confidence: float | None = None
    top3: list[list[float]] = field(default_factory=list)
    error: str | None = None


@dataclass
class NumberReading:
    """A whole written number, as printed by `mnist-cnn predict --number --json`."""

    file: str
    number: str | None = None  # "?" stands for a digit read with too little confidence
    digits: list[dict] = field(default_factory=list)  # digit, confidence, top3, box (x0 y0 x1 y1)
    sheet: list[list[float]] | None = None  # the sheet's corners when one was cut out of a photo
    error: str | None = None


def number_answer(
    pieces: list[tuple[slice, slice, np.ndarray]], probs: np.ndarray, min_confidence: float = 0.0
) -> tuple[str, list[dict]]:
    """The string and one answer per digit (digit, confidence, top3, box x0 y0 x1 y1)."""
    digits = []
    for p, (rows, cols, _) in zip(probs, pieces, strict=True):
        found = answer(p, min_confidence)
        digits.append(
            {
                "digit": found.digit,
                "confidence": found.confidence,
                "top3": found.top3,
                "box": [cols.start, rows.start, cols.stop, rows.stop],
            }
        )
    text = "".join(str(d["digit"]) if d["digit"] is not None else "?" for d in digits)
    return text, digits


def read_number(
    gray: np.ndarray, classify: Classifier, min_confidence: float = 0.0
) -> tuple[str, list[dict]]:
    """The digits of a number written in a row: (string, one answer per digit)."""
    pieces = number_pieces(gray, classify)
    probs = classify(np.stack([seen for _, _, seen in pieces])[..., None])
    return number_answer(pieces, probs, min_confidence)


def predict_files(
    paths: Iterable[str | Path],
    classify: Classifier,
    min_confidence: float = 0.0,
    show_input: str | Path | None = None,
) -> list[Prediction]:
    """Normalise and classify each file; a bad file gets its error and the rest go on.

    show_input: a folder for the 28x28 each file became, as STEM.png (STEM-2.png and so on
    when two files share a stem; long stems are shortened).
    """
    from mnist_cnn import artifacts

    folder = artifacts.prepare_dir(show_input) if show_input is not None else None
    results, batch, names = [], [], set()
    for path in paths:
        result = Prediction(file=str(path))
        results.append(result)
        try:
            digit = normalise(read_image(path))
        except Exception as err:  # one file's failure never costs the batch
            result.error = _reason(err)  # the path is in result.file
            continue
        batch.append((result, digit))
        if folder is not None:
            name = _unique(Path(path).stem[:100] or "image", names)
            try:
                image = Image.fromarray(digit.round().astype(np.uint8))
                artifacts.write_with(folder / f"{name}.png", lambda t, i=image: i.save(t, "PNG"))
            except Exception as err:
                result.error = f"read, but the 28x28 could not be saved: {_reason(err)}"
    if batch:
        probs = classify(np.stack([d for _, d in batch])[..., None])
        for (result, _), p in zip(batch, probs, strict=True):
            answer(p, min_confidence, result)
    return results


def _unique(name: str, taken: set[str]) -> str:
    base, k = name, 1
    while name in taken:
        k += 1
        name = f"{base}-{k}"
    taken.add(name)
    return name


def _reason(err: Exception) -> str:
    """An error as one line for a file's "error": ImageErrors say it all, others get a label."""
    if isinstance(err, MnistCnnError):
        return str(err)
    return f"could not read this image ({type(err).__name__}: {err})"[:200]


def answer(
    p: np.ndarray, min_confidence: float = 0.0, result: Prediction | None = None
) -> Prediction:
    """The top digit (None when its probability is below min_confidence) and the top 3."""
    result = result or Prediction(file="")
    order = np.argsort(p)[::-1][:3]
    result.confidence = round(float(p[order[0]]), 6)
    result.top3 = [[int(d), round(float(p[d]), 6)] for d in order]
    result.digit = int(order[0]) if result.confidence >= min_confidence else None
    return result


def read_number_files(
    paths: Iterable[str | Path],
    classify: Classifier,
    min_confidence: float = 0.0,
    show_input: str | Path | None = None,
) -> list[NumberReading]:
    """`read_number` for each file; a bad file gets its error and the rest go on.

    show_input: a folder for what the model saw: STEM-1.png, STEM-2.png ... (each digit's
    28x28) and STEM-boxes.png (the picture with the sheet's outline and each digit's box and
    reading drawn on it).
    """
    from mnist_cnn import artifacts

    folder = artifacts.prepare_dir(show_input) if show_input is not None else None
    results, names = [], set()
    for path in paths:
        result = NumberReading(file=str(path))
        results.append(result)
        try:
            gray = read_image(path)
            found, pieces = locate_number(gray, classify)
            probs = classify(np.stack([seen for _, _, seen in pieces])[..., None])
            result.number, result.digits = number_answer(pieces, probs, min_confidence)
            if found.sheet is not None:
                result.sheet = np.round(found.sheet, 1).tolist()
        except Exception as err:  # one file's failure never costs the batch
            result.error = _reason(err)  # the path is in result.file
            continue
        if folder is not None:
            name = _unique(Path(path).stem[:100] or "image", names)
            try:
                _show_number(folder, name, gray, pieces, result)
            except Exception as err:
                result.error = f"read, but what it saw could not be saved: {_reason(err)}"
    return results


def _show_number(folder: Path, name: str, gray: np.ndarray, pieces: list, result) -> None:
    """Each digit's 28x28, and the picture with the sheet and every digit's box drawn on it."""
    from PIL import ImageDraw

    from mnist_cnn import artifacts

    for k, (_, _, seen) in enumerate(pieces, 1):
        image = Image.fromarray(seen.round().astype(np.uint8))
        artifacts.write_with(folder / f"{name}-{k}.png", lambda t, i=image: i.save(t, "PNG"))
    picture = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(picture)
    width = max(2, round(max(picture.size) / 300))
    if result.sheet is not None:
        corners = [tuple(c) for c in result.sheet]
        draw.line([*corners, corners[0]], fill=(0, 160, 255), width=width)
    for d in result.digits:
        colour = (220, 0, 0) if d["digit"] is None else (0, 170, 0)
        draw.rectangle(d["box"], outline=colour, width=width)
        label = "?" if d["digit"] is None else str(d["digit"])
        draw.text(
            (d["box"][0], max(0, d["box"][1] - 12)), f"{label} {d['confidence']:.2f}", fill=colour
        )
    artifacts.write_with(folder / f"{name}-boxes.png", lambda t: picture.save(t, "PNG"))


# ------------------------------------------------------------------ the Python API


@dataclass(frozen=True)
class Digit:
    """One digit as read: `digit` is None when the model is unsure (confidence under the
    reader's threshold); `box` (x0, y0, x1, y1) locates it in a number's picture."""

    digit: int | None
    confidence: float
    top3: list[tuple[int, float]]
    unsure: bool
    box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class Number:
    """A written number as read: `text` has "?" for each unsure digit."""

    text: str
    digits: list[Digit]


class DigitReader:
    """Reads digits and numbers from pictures: a path, a file's bytes, a PIL image or an array.

    With no model it runs the packaged model's int8 ONNX twin on ONNX Runtime, importing
    neither TensorFlow nor Keras. `model` may be a run folder, a .keras file (Keras loads then)
    or an exported .onnx / .tflite file; `engine` as for `engines.classifier`.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        engine: str = "auto",
        min_confidence: float = MIN_CONFIDENCE,
    ):
        self.classify = engines.classifier(model, engine)
        self.min_confidence = min_confidence

    def _digit(self, p: np.ndarray, box: tuple | None = None) -> Digit:
        found = answer(p, self.min_confidence)
        top3 = [(int(d), float(q)) for d, q in found.top3]
        unsure = found.digit is None
        return Digit(found.digit, float(found.confidence), top3, unsure, box)

    def read_digit(self, image: "str | Path | bytes | Image.Image | np.ndarray") -> Digit:
        """The one digit in `image` (any size, either polarity: it is normalised first)."""
        seen = normalise(to_gray(image))
        return self._digit(self.classify(seen[None, ..., None])[0])

    def read_number(self, image: "str | Path | bytes | Image.Image | np.ndarray") -> Number:
        """The digits written in a row in `image`, left to right."""
        pieces = number_pieces(to_gray(image), self.classify)
        probs = self.classify(np.stack([seen for _, _, seen in pieces])[..., None])
        found = [
            self._digit(p, (cols.start, rows.start, cols.stop, rows.stop))
            for p, (rows, cols, _) in zip(probs, pieces, strict=True)
        ]
        return Number("".join("?" if d.unsure else str(d.digit) for d in found), found)
