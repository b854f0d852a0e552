"""Reading digits and numbers from image files: normalise each one, then ask a Classifier.

Every file gets an answer or its own error, so one bad file never costs the rest of a batch.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_cnn.digits import ImageError, normalise, number_pieces, read_image
from mnist_cnn.engines import Classifier

MIN_CONFIDENCE = 0.95  # default "unsure" threshold: 1% of validation digits fall under it


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
    pieces = number_pieces(gray)
    probs = classify(np.stack([seen for _, _, seen in pieces])[..., None])
    return number_answer(pieces, probs, min_confidence)


def predict_files(
    paths: Iterable[str | Path],
    classify: Classifier,
    min_confidence: float = 0.0,
    show_input: str | Path | None = None,
) -> list[Prediction]:
    """Normalise and classify each file; a bad file gets its error and the rest go on."""
    results, batch = [], []
    for path in paths:
        result = Prediction(file=str(path))
        results.append(result)
        try:
            digit = normalise(read_image(path))
        except ImageError as err:
            result.error = str(err)  # the path is in result.file
            continue
        batch.append((result, digit))
        if show_input is not None:
            _save_input(digit, Path(show_input), Path(path))
    if batch:
        probs = classify(np.stack([d for _, d in batch])[..., None])
        for (result, _), p in zip(batch, probs, strict=True):
            answer(p, min_confidence, result)
    return results


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
    paths: Iterable[str | Path], classify: Classifier, min_confidence: float = 0.0
) -> list[NumberReading]:
    """`read_number` for each file; a bad file gets its error and the rest go on."""
    results = []
    for path in paths:
        result = NumberReading(file=str(path))
        results.append(result)
        try:
            result.number, result.digits = read_number(read_image(path), classify, min_confidence)
        except ImageError as err:
            result.error = str(err)  # the path is in result.file
    return results


def _save_input(digit: np.ndarray, folder: Path, source: Path) -> None:
    from mnist_cnn import artifacts

    artifacts.prepare_dir(folder)
    image = Image.fromarray(digit.round().astype(np.uint8))
    artifacts.write_with(folder / f"{source.stem}.png", lambda tmp: image.save(tmp, "PNG"))
