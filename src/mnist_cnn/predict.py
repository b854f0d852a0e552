"""`mnist-cnn predict`: read image files with a `reading.Reader`, each to an answer or an error.

Every file gets an answer or its own error, so one bad file never costs the rest of a batch.
With `show_input`, what the reader saw is drawn for each file: the picture with the sheet's
outline and every digit's and mark's box and reading, and each digit as the 28x28 MNIST form
a correction stores.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mnist_cnn import artifacts
from mnist_cnn.errors import MnistCnnError
from mnist_cnn.reading.image import read_image
from mnist_cnn.reading.predictor import Reader
from mnist_cnn.reading.results import Digit, Number, Page

WHAT = ("digit", "number", "numbers")  # one digit a file, a number in a row, a page of them


@dataclass(frozen=True)
class FileResult:
    """One file's result in a batch: a Digit, Number or Page, or an error."""

    file: str
    result: Digit | Number | Page | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        found = self.result.to_json() if self.result is not None else {}
        return {"file": self.file, **found, "error": self.error}


def read_files(
    paths: Iterable[str | Path],
    reader: Reader,
    what: str = "digit",
    show_input: str | Path | None = None,
) -> list[FileResult]:
    """Each file read as `what` (WHAT); a bad file gets its error and the rest go on.

    show_input: a folder for what the reader saw: STEM-boxes.png (the picture with the boxes
    drawn) and STEM-1.png, STEM-2.png ... (each digit's 28x28); STEM-2-boxes.png and so on when
    two files share a stem.
    """
    if what not in WHAT:
        raise MnistCnnError(f"unknown reading {what!r}: use one of {', '.join(WHAT)}")
    folder = artifacts.prepare_dir(show_input) if show_input is not None else None
    read = {"digit": reader.read_digit, "number": reader.read_number}.get(what, reader.read_numbers)
    results, names = [], set()
    for path in paths:
        try:
            gray = read_image(path)
            found = read(gray, inputs=folder is not None)
        except Exception as err:  # one file's failure never costs the batch
            results.append(FileResult(str(path), error=_reason(err)))
            continue
        error = None
        if folder is not None:
            name = _unique(Path(path).stem[:100] or "image", names)
            try:
                show(folder, name, gray, found)
            except Exception as err:
                error = f"read, but what it saw could not be saved: {_reason(err)}"
        results.append(FileResult(str(path), found, error))
    return results


def _unique(name: str, taken: set[str]) -> str:
    base, k = name, 1
    while name in taken:
        k += 1
        name = f"{base}-{k}"
    taken.add(name)
    return name


def _reason(err: Exception) -> str:
    """An error as one line: the package's own errors say it all, others get a label."""
    if isinstance(err, MnistCnnError):
        return str(err)
    return f"could not read this image ({type(err).__name__}: {err})"[:200]


def show(folder: Path, name: str, gray: np.ndarray, found: Digit | Number | Page) -> None:
    """The picture with every digit's and mark's box and reading drawn on it, and each
    digit's 28x28."""
    from PIL import ImageDraw

    numbers = [found] if isinstance(found, Number) else []
    if isinstance(found, Page):
        numbers = [n for line in found.lines for n in line]
    every = [found] if isinstance(found, Digit) else [d for n in numbers for d in n.digits]
    for k, d in enumerate(every, 1):
        if d.input is not None:
            image = Image.fromarray(np.asarray(d.input, np.uint8))
            artifacts.write_with(folder / f"{name}-{k}.png", lambda t, i=image: i.save(t, "PNG"))
    picture = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(picture)
    width = max(2, round(max(picture.size) / 300))
    sheet = getattr(found, "sheet", None)
    if sheet is not None:
        corners = [tuple(c) for c in sheet]
        draw.line([*corners, corners[0]], fill=(0, 160, 255), width=width)
    marks = [(m.box, m.kind, m.confidence, False) for n in numbers for m in n.marks]
    shown = [(d.box, "?" if d.unsure else str(d.digit), d.confidence, True) for d in every]
    for box, label, confidence, is_digit in shown + marks:
        if box is None:
            continue
        colour = (220, 0, 0) if label == "?" else (0, 170, 0) if is_digit else (160, 0, 200)
        draw.rectangle(box.pixels(), outline=colour, width=width)
        draw.text((box.x0, max(0, box.y0 - 12)), f"{label} {confidence:.2f}", fill=colour)
    artifacts.write_with(folder / f"{name}-boxes.png", lambda t: picture.save(t, "PNG"))
