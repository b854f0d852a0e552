"""Reading digits and numbers from image files: normalise each one, then ask a Classifier.

Every file gets an answer or its own error, so one bad file never costs the rest of a batch.
"""

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mnist_cnn import engines, marks
from mnist_cnn.data import MIN_CONFIDENCE
from mnist_cnn.digits import locate_number, locate_numbers, normalise, read_image, to_gray
from mnist_cnn.engines import Classifier
from mnist_cnn.errors import ImageError, MnistCnnError
from mnist_cnn.lines import table
from mnist_cnn.marks import Mark


@dataclass(frozen=True)
class Digit:
    """One digit as read: `digit` is None when the model is unsure (its confidence under the
    reader's threshold). `box` (x0, y0, x1, y1) locates a digit of a number in its picture;
    `input` is the 28x28 the model saw, where the caller asked for it."""

    digit: int | None
    confidence: float
    top3: list[tuple[int, float]]
    probabilities: list[float]
    box: tuple[int, int, int, int] | None = None
    input: list[list[int]] | None = None

    @property
    def unsure(self) -> bool:
        return self.digit is None

    def to_json(self) -> dict[str, Any]:
        """Its fields as JSON (None ones left out), and `unsure`."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return {**out, "digit": self.digit, "unsure": self.unsure}


@dataclass(frozen=True)
class Number:
    """A written number as read: `text` as written ("?" for each unsure digit, marks and
    spaces where they are: "-12.50"), `value` the number it stands for (None when it is none),
    each digit, each mark (`marks.Mark`), and the sheet's corners when one was cut out of a
    photo; `size` is the picture's (width, height) as read."""

    text: str
    value: int | float | None
    digits: list[Digit]
    marks: list[Mark] = field(default_factory=list)
    sheet: list[list[float]] | None = None
    size: tuple[int, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "digits": [d.to_json() for d in self.digits]}


@dataclass(frozen=True)
class Page:
    """A page of numbers as read: each line of writing, top to bottom, its numbers left to
    right; `columns`, for each line, the column each number stands in (a cell None where a
    line has none), when the numbers stand in columns, else None."""

    lines: list[list[Number]]
    columns: list[list[int | None]] | None = None
    sheet: list[list[float]] | None = None
    size: tuple[int, int] | None = None

    def table(self) -> list[list[str]]:
        """The page as rows of cells (one row a line): in their columns where they stand in
        columns, else each line's numbers in order."""
        if self.columns is None:
            return [[n.text for n in line] for line in self.lines]
        return [
            ["" if k is None else line[k].text for k in cells]
            for line, cells in zip(self.lines, self.columns, strict=True)
        ]

    def to_json(self) -> dict[str, Any]:
        found = [[n.to_json() for n in line] for line in self.lines]
        return {**dataclasses.asdict(self), "lines": found, "table": self.table()}


@dataclass(frozen=True)
class FileAnswer:
    """One file's answer in a batch (`mnist-cnn predict`): a Digit or Number, or an error."""

    file: str
    answer: Digit | Number | Page | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        found = self.answer.to_json() if self.answer is not None else {}
        return {"file": self.file, **found, "error": self.error}


def answer(
    p: np.ndarray,
    min_confidence: float = 0.0,
    box: tuple[int, int, int, int] | None = None,
    seen: np.ndarray | None = None,
) -> Digit:
    """The top digit (None when its probability is below min_confidence), the top 3 and
    every probability; `seen`, the 28x28 the model read, goes into the answer as `input`."""
    order = np.argsort(p)[::-1][:3]
    confidence = round(float(p[order[0]]), 6)
    return Digit(
        digit=int(order[0]) if confidence >= min_confidence else None,
        confidence=confidence,
        top3=[(int(d), round(float(p[d]), 6)) for d in order],
        probabilities=[round(float(v), 6) for v in p],
        box=box,
        input=None if seen is None else seen.round().astype(int).tolist(),
    )


def number_answer(
    located: tuple,
    probs: np.ndarray,
    min_confidence: float = 0.0,
    decimal_comma: bool | None = None,
    inputs: bool = False,
    size: tuple[int, int] | None = None,
) -> Number:
    """The Number that `digits.locate_number`'s (ink, digits, marks) and the model's
    probabilities for each digit make; `inputs` puts each digit's 28x28 in its answer."""
    found, pieces, written = located
    digits = [
        answer(p, min_confidence, (c.start, r.start, c.stop, r.stop), seen if inputs else None)
        for p, (r, c, seen) in zip(probs, pieces, strict=True)
    ]
    text = marks.text([("?" if d.unsure else str(d.digit), d.box) for d in digits], written)
    sheet = None if found.sheet is None else np.round(found.sheet, 1).tolist()
    return Number(text, marks.value(text, decimal_comma), digits, written, sheet, size)


def read_numbers(
    gray: np.ndarray,
    classify: Classifier,
    min_confidence: float = 0.0,
    decimal_comma: bool | None = None,
    inputs: bool = False,
) -> Page:
    """Every number on a page (a grayscale picture): lines top to bottom, numbers left to
    right, each digit read in one batch; `inputs` as for `number_answer`."""
    found, located = locate_numbers(gray, classify)
    seen = [p[2] for line in located for number, _ in line for p in number]
    if not seen:
        raise ImageError("no digits found: only marks too small to be digits")
    probs = iter(classify(np.stack(seen)[..., None]))
    lines = []
    for line in located:
        numbers = []
        for pieces, written in line:
            p = np.stack([next(probs) for _ in pieces])
            located_one = (found, pieces, written)
            one = number_answer(located_one, p, min_confidence, decimal_comma, inputs)
            numbers.append(dataclasses.replace(one, sheet=None))
        lines.append(numbers)
    columns = table([[_span(n) for n in line] for line in lines])
    sheet = None if found.sheet is None else np.round(found.sheet, 1).tolist()
    return Page(lines, columns, sheet, (int(gray.shape[1]), int(gray.shape[0])))


def _span(number: Number) -> tuple[int, int, int, int]:
    boxes = [d.box for d in number.digits] + [m.box for m in number.marks]
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def read_number(
    gray: np.ndarray,
    classify: Classifier,
    min_confidence: float = 0.0,
    decimal_comma: bool | None = None,
    inputs: bool = False,
) -> Number:
    """The number written in a row in a grayscale picture; `inputs` as for `number_answer`."""
    located = locate_number(gray, classify)
    probs = classify(np.stack([seen for _, _, seen in located[1]])[..., None])
    size = (int(gray.shape[1]), int(gray.shape[0]))
    return number_answer(located, probs, min_confidence, decimal_comma, inputs, size)


def predict_files(
    paths: Iterable[str | Path],
    classify: Classifier,
    min_confidence: float = 0.0,
    show_input: str | Path | None = None,
) -> list[FileAnswer]:
    """Normalise and classify each file; a bad file gets its error and the rest go on.

    show_input: a folder for the 28x28 each file became, as STEM.png (STEM-2.png and so on
    when two files share a stem; long stems are shortened).
    """
    from mnist_cnn import artifacts

    folder = artifacts.prepare_dir(show_input) if show_input is not None else None
    results: list[FileAnswer | None] = []
    batch, names = [], set()
    for path in paths:
        try:
            digit = normalise(read_image(path))
        except Exception as err:  # one file's failure never costs the batch
            results.append(FileAnswer(str(path), error=_reason(err)))
            continue
        results.append(None)
        saved = None
        if folder is not None:
            name = _unique(Path(path).stem[:100] or "image", names)
            try:
                image = Image.fromarray(digit.round().astype(np.uint8))
                artifacts.write_with(folder / f"{name}.png", lambda t, i=image: i.save(t, "PNG"))
            except Exception as err:
                saved = f"read, but the 28x28 could not be saved: {_reason(err)}"
        batch.append((len(results) - 1, str(path), digit, saved))
    if batch:
        probs = classify(np.stack([d for _, _, d, _ in batch])[..., None])
        for (at, path, _, saved), p in zip(batch, probs, strict=True):
            results[at] = FileAnswer(path, answer(p, min_confidence), saved)
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


def read_number_files(
    paths: Iterable[str | Path],
    classify: Classifier,
    min_confidence: float = 0.0,
    show_input: str | Path | None = None,
    decimal_comma: bool | None = None,
    page: bool = False,
) -> list[FileAnswer]:
    """`read_number` (or with `page`, `read_numbers`) for each file; a bad file gets its
    error and the rest go on.

    show_input: a folder for what the model saw: STEM-1.png, STEM-2.png ... (each digit's
    28x28) and STEM-boxes.png (the picture with the sheet's outline and each digit's and
    mark's box and reading drawn on it).
    """
    from mnist_cnn import artifacts

    folder = artifacts.prepare_dir(show_input) if show_input is not None else None
    read = read_numbers if page else read_number
    results, names = [], set()
    for path in paths:
        try:
            gray = read_image(path)
            found = read(gray, classify, min_confidence, decimal_comma, folder is not None)
        except Exception as err:  # one file's failure never costs the batch
            results.append(FileAnswer(str(path), error=_reason(err)))
            continue
        error = None
        if folder is not None:
            name = _unique(Path(path).stem[:100] or "image", names)
            numbers = found.lines if page else [[found]]
            try:
                _show_numbers(
                    folder, name, gray, [n for line in numbers for n in line], found.sheet
                )
            except Exception as err:
                error = f"read, but what it saw could not be saved: {_reason(err)}"
        results.append(FileAnswer(str(path), found, error))
    return results


def _show_numbers(folder: Path, name: str, gray: np.ndarray, numbers: list, sheet) -> None:
    """Each digit's 28x28, and the picture with the sheet and every digit's and mark's box
    drawn on it."""
    from PIL import ImageDraw

    from mnist_cnn import artifacts

    every = [d for n in numbers for d in n.digits]
    for k, d in enumerate(every, 1):
        image = Image.fromarray(np.asarray(d.input, np.uint8))
        artifacts.write_with(folder / f"{name}-{k}.png", lambda t, i=image: i.save(t, "PNG"))
    picture = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(picture)
    width = max(2, round(max(picture.size) / 300))
    if sheet is not None:
        corners = [tuple(c) for c in sheet]
        draw.line([*corners, corners[0]], fill=(0, 160, 255), width=width)
    boxes = [(d.box, "?" if d.unsure else str(d.digit), d) for d in every]
    for box, label, d in boxes + [(m.box, m.kind, None) for n in numbers for m in n.marks]:
        colour = (220, 0, 0) if label == "?" else (0, 170, 0) if d else (160, 0, 200)
        draw.rectangle(box, outline=colour, width=width)
        said = f"{label} {d.confidence:.2f}" if d else label
        draw.text((box[0], max(0, box[1] - 12)), said, fill=colour)
    artifacts.write_with(folder / f"{name}-boxes.png", lambda t: picture.save(t, "PNG"))


# ------------------------------------------------------------------ the Python API


class DigitReader:
    """Reads digits and numbers from pictures: a path, a file's bytes, a PIL image or an array.

    With no model it runs the packaged model's int8 ONNX twin on ONNX Runtime, importing
    neither TensorFlow nor Keras. `model` may be a run folder, a .keras file (Keras loads then)
    or an exported .onnx / .tflite file; `engine` as for `engines.classifier`.
    `decimal_comma`: whether a comma in a number is its decimal mark (see `marks.value`).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        engine: str = "auto",
        min_confidence: float = MIN_CONFIDENCE,
        decimal_comma: bool | None = None,
    ):
        self.classify = engines.classifier(model, engine)
        self.min_confidence = min_confidence
        self.decimal_comma = decimal_comma

    def read_digit(self, image: "str | Path | bytes | Image.Image | np.ndarray") -> Digit:
        """The one digit in `image` (any size, either polarity: it is normalised first)."""
        seen = normalise(to_gray(image))
        return answer(self.classify(seen[None, ..., None])[0], self.min_confidence)

    def read_number(self, image: "str | Path | bytes | Image.Image | np.ndarray") -> Number:
        """The number written in a row in `image`: its digits and marks, left to right."""
        gray = to_gray(image)
        return read_number(gray, self.classify, self.min_confidence, self.decimal_comma)

    def read_numbers(self, image: "str | Path | bytes | Image.Image | np.ndarray") -> Page:
        """Every number on a page in `image`: lines top to bottom, numbers left to right."""
        gray = to_gray(image)
        return read_numbers(gray, self.classify, self.min_confidence, self.decimal_comma)
