"""The marks people write between digits, and what they make of a row of digits.

Segmentation (`digits.segment`) keeps the marks too small to be digits out of the number. Here
they are told apart by their shape and where they sit against the digits beside them, the way
a reader does: a small round dot on the baseline between two digits is a decimal point, one
with a tail running below the baseline a comma, a short flat bar at mid-height before the
first digit a minus sign. Anything else small (a speck of dirt, a stray stroke) stays out.
A gap between two digits much wider than the others is a space between digit groups.
Boxes are (x0, y0, x1, y1). The network is not asked about marks; a decimal mark's confidence
is how clearly its shape and place say point or comma (the two are told apart by degree).
"""

import itertools
import math
import re
from dataclasses import dataclass

import numpy as np

DOT = 0.4  # a decimal point is at most this share of the digits' height across ...
DOT_PENS = 2.5  # ... or, in a thick pen, this many of its stroke widths ...
GRAIN = 0.05  # ... and at least this, either way: a pen's dot, not a grain of dirt
LOW = 0.6  # ... and its middle lies below this share of the way down the digits ...
RAISED = 0.2  # ... its bottom at most this share of the height above the baseline ...
PEN_DOT = 0.6  # ... and it is at least this many of the digits' stroke widths across
TAIL = 0.03  # a comma reaches at least this share of the height below the baseline ...
COMMA = 0.6  # ... is at most this share as tall ...
COMMA_LIKE = 0.6  # ... and scores this on `find`'s likeness to a comma (a round dot about 0.2)
SURE = 11.0  # a decimal mark's confidence: sigmoid(SURE x its likeness's distance from COMMA_LIKE)
BAR = 0.35  # a minus sign is at most this tall (share of the height) ...
FLAT = 1.4  # ... at least this many times wider than tall
BAR_WIDTH = (0.25, 1.6)  # ... and this wide
MIDDLE = (0.2, 0.8)  # ... its middle this far down the digits
DWARFS = 2.0  # of two marks like a decimal mark, one with this many times the other's ink is it
SPACE = 0.75  # a gap wider than this share of the height, and twice the usual, is a space
KINDS = (".", ",", "-")
MAX_VALUE_DIGITS = 15  # a double holds 15 significant digits exactly


@dataclass(frozen=True)
class Mark:
    """A mark that is part of a number: ".", "," or "-", and its box in the picture; for a
    decimal mark, `confidence` that it is the kind read and not the other (0.5-1; fit so that
    on the benchmark's marks it is about the share read right), None for a minus sign."""

    kind: str
    box: tuple[int, int, int, int]
    confidence: float | None = None


def find(
    digits: list[tuple],
    small: list[tuple],
    fills: list[float] | None = None,
    pen: float | None = None,
) -> list[Mark]:
    """The decimal points, commas and minus signs among the small marks (boxes), judged
    against the digits' boxes; at most one decimal mark, and a minus only before the first.
    `fills`: the share of each small mark's box its ink covers (a dot fills most of it, a
    comma's thin tail little), and `pen`, the digits' stroke width in px (a pen's dot is about
    as wide, a speck of dirt is less), where known."""
    if not digits or not small:
        return []
    fill = dict(zip(map(tuple, small), fills or [1.0] * len(small), strict=True))
    top, base = float(np.median([d[1] for d in digits])), float(np.median([d[3] for d in digits]))
    height = max(base - top, 1.0)
    first, last = min(d[0] for d in digits), max(d[2] for d in digits)
    found = []
    for box in sorted(small):
        x0, y0, x1, y1 = box
        w, h, middle = x1 - x0, y1 - y0, (y0 + y1) / 2
        # a decimal mark stands alone: one with a mark over it, among the digits, is a piece
        # of a broken stroke or a colon's
        alone = not any(
            top <= o[3] <= y0 and min(o[2], x1) - max(o[0], x0) > 0 for o in small if o != box
        )
        between = x0 > first and x1 < last
        low = middle > top + LOW * height
        below = (y1 - base) / height
        # how like a comma: hanging below the baseline most of all, then taller than wide,
        # then thin (its ink covering less of its box than a round dot's three quarters)
        comma = 3 * below + (h / max(w, 1) - 1) + (0.75 - fill[tuple(box)])
        tail = below >= TAIL and comma >= COMMA_LIKE and h <= COMMA * height
        sure = 1 / (1 + math.exp(-SURE * abs(comma - COMMA_LIKE)))
        if between and alone and low and tail:
            found.append(Mark(",", box, sure))
        elif (
            between
            and alone
            and low
            and below >= -RAISED
            and GRAIN * height <= min(w, h)
            and max(w, h) <= max(DOT * height, DOT_PENS * (pen or 0))
            and (pen is None or max(w, h) >= PEN_DOT * pen)
        ):
            # a point as like a comma as a comma is (but not hanging below): a toss-up
            found.append(Mark(".", box, sure if comma < COMMA_LIKE else 0.5))
        elif (
            x1 <= first + 0.1 * height
            and h <= BAR * height
            and w >= FLAT * h
            and BAR_WIDTH[0] * height <= w <= BAR_WIDTH[1] * height
            and top + MIDDLE[0] * height <= middle <= top + MIDDLE[1] * height
        ):
            found.append(Mark("-", box))
    minus = [m for m in found if m.kind == "-"][-1:]  # the one nearest the digits
    return minus + _one_decimal([m for m in found if m.kind != "-"], fill)


def _one_decimal(marks: list[Mark], fill: dict) -> list[Mark]:
    """The decimal mark among several like one: the one with most ink when it has at least
    DWARFS times any other's (a speck or a stroke's fragment beside a pen's dot), else none."""

    def ink(m: Mark) -> float:
        return (m.box[2] - m.box[0]) * (m.box[3] - m.box[1]) * fill[tuple(m.box)]

    marks = sorted(marks, key=ink, reverse=True)
    if len(marks) == 1 or (marks and ink(marks[0]) >= DWARFS * ink(marks[1])):
        return marks[:1]
    return []


def text(digits: list[tuple[str, tuple]], marks: list[Mark]) -> str:
    """The number as written: each digit's text ("?" when unsure) and the marks, in order,
    with a space where a gap between digits is much wider than the others."""
    if not digits:
        return "".join(m.kind for m in marks)
    height = float(np.median([b[3] - b[1] for _, b in digits]))
    boxes = sorted([(b, t) for t, b in digits] + [(m.box, m.kind) for m in marks])
    gaps = [b[0] - a[2] for (a, _), (b, _) in itertools.pairwise(boxes)]
    usual = float(np.median(gaps)) if gaps else 0.0
    out = boxes[0][1]
    for gap, ((_, before), (_, after)) in zip(gaps, itertools.pairwise(boxes), strict=True):
        spaced = gap > SPACE * height and gap > 2 * max(usual, 1.0)
        if spaced and before not in KINDS and after not in KINDS:
            out += " "
        out += after
    return out


def value(written: str, decimal_comma: bool | None = None) -> int | float | None:
    """The number `written` stands for, or None when it is none (an unsure digit, two marks).

    decimal_comma: a comma is the decimal mark and a point groups thousands (True), the other
    way round (False), or (None) a point is the decimal mark and so is a comma, unless three
    digits follow it, as in 1,250. A thousands mark must be followed by three digits. More
    than MAX_VALUE_DIGITS digits have no value: JSON readers hold no more exactly."""
    s = written.replace(" ", "")
    found = re.fullmatch(r"(-?\d+)(?:([.,])(\d+))?", s)
    if "?" in s or found is None or sum(c.isdigit() for c in s) > MAX_VALUE_DIGITS:
        return None
    whole, mark, tail = found.groups()
    if mark is None:
        return int(whole)
    if decimal_comma is None:
        decimal = mark == "." or len(tail) != 3
    else:
        decimal = (mark == ",") == decimal_comma
    if decimal:
        return float(f"{whole}.{tail}")
    return int(whole + tail) if len(tail) == 3 else None
