"""What the reader answers, one tree of types: a Page holds lines of Numbers, a Number its
Digits and Marks. Every box is a `geometry.Box` in the picture's own pixels; `to_json` gives
the answer as the CLI's `--json` and the HTTP API send it.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mnist_cnn.reading.geometry import Box

MIN_CONFIDENCE = 0.9  # a digit read with less than this probability is answered unsure (None)


def _json_box(box: Box | None) -> list[int] | None:
    return None if box is None else list(box.pixels())


@dataclass(frozen=True)
class Digit:
    """One digit as read: `digit` is None when the reader is unsure (its confidence under the
    reader's threshold). `box` locates it in its picture; `input` is the digit as 28x28 MNIST
    pixels (white ink on black), where the caller asked for it: what a correction stores."""

    digit: int | None
    confidence: float
    top3: list[tuple[int, float]]
    probabilities: list[float]
    box: Box | None = None
    input: list[list[int]] | None = None

    @property
    def unsure(self) -> bool:
        return self.digit is None

    def to_json(self) -> dict[str, Any]:
        """Its fields as JSON (None ones left out), and `unsure`."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if self.box is not None:
            out["box"] = _json_box(self.box)
        return {**out, "digit": self.digit, "unsure": self.unsure}


def digit(probabilities, min_confidence: float, box: Box | None = None, seen=None) -> Digit:
    """The Digit that the probabilities of 0-9 make: the likeliest (None under
    `min_confidence`), the top 3, each rounded; `seen`, the 28x28 read, as its `input`."""
    p = [float(v) for v in probabilities]
    order = sorted(range(len(p)), key=lambda k: -p[k])[:3]
    confidence = round(p[order[0]], 6)
    return Digit(
        digit=order[0] if confidence >= min_confidence else None,
        confidence=confidence,
        top3=[(k, round(p[k], 6)) for k in order],
        probabilities=[round(v, 6) for v in p],
        box=box,
        input=None if seen is None else np.asarray(seen).round().astype(int).tolist(),
    )


@dataclass(frozen=True)
class Mark:
    """A mark that is part of a number: ".", "," or "-", its box, and how sure the reader is
    that it is that mark."""

    kind: str
    box: Box
    confidence: float

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "box": _json_box(self.box), "confidence": self.confidence}


@dataclass(frozen=True)
class Number:
    """A written number as read: `text` as written ("?" for each unsure digit, marks and
    spaces where they are: "-12.50"), `value` the number it stands for (None when it is none),
    each digit and each mark, and the sheet's corners when one was cut out of a photo; `size`
    is the picture's (width, height) as read."""

    text: str
    value: int | float | None
    digits: list[Digit]
    marks: list[Mark] = field(default_factory=list)
    sheet: list[list[float]] | None = None
    size: tuple[int, int] | None = None

    @property
    def box(self) -> Box | None:
        from mnist_cnn.reading.geometry import union

        boxes = [d.box for d in self.digits if d.box] + [m.box for m in self.marks]
        return union(boxes) if boxes else None

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "value": self.value,
            "digits": [d.to_json() for d in self.digits],
            "marks": [m.to_json() for m in self.marks],
            "sheet": self.sheet,
            "size": self.size,
        }


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

    @property
    def text(self) -> str:
        """The page as one line of text: numbers apart by a space, lines by ' | '."""
        return " | ".join(" ".join(n.text for n in line) for line in self.lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "lines": [[n.to_json() for n in line] for line in self.lines],
            "columns": self.columns,
            "sheet": self.sheet,
            "size": self.size,
            "table": self.table(),
        }
