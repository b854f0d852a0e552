"""From the digits and marks the network found to what is written: lines, numbers, text, value.

The network says what each mark is; what is left is where things stand against each other,
the way a reader sees it: marks in a row are a line (a line written aslant, or a whole number
written diagonally, is still one), a gap much wider than the writing is tall starts a new
number, a gap much wider than the others within a number is a space between digit groups.
A number's text is its digits and marks in order; its value follows the usual conventions of
decimal points and commas. Every threshold here is in units of the writing's height.
"""

import itertools
import math
import re
from dataclasses import dataclass

import numpy as np

from mnist_cnn.reading.detector import Detection
from mnist_cnn.reading.geometry import Box

NUMBER_GAP = 1.5  # a gap wider than this many heights starts a new number
SPACE = 0.75  # a gap within a number wider than this many heights, and twice the usual, is a space
STEEPEST = 60.0  # degrees: writing turned further than this is read as if upright
LINE_BAND = 0.6  # a mark belongs to a line when its middle lies within this many heights of it
END_MARKS = "-=."  # what a writer may put after an amount so nothing can be added
MAX_VALUE_DIGITS = 15  # a double holds 15 significant digits exactly


@dataclass(frozen=True)
class Line:
    """The detections of one line of writing, in reading order, split into numbers."""

    numbers: list[list[Detection]]


def angle(found: list[Detection]) -> float:
    """The writing's direction in degrees (0: left to right, positive: rising to the right,
    as image y points down), from each digit to its nearest neighbour; 0 when it cannot
    be told or is steeper than STEEPEST."""
    digits = [d for d in found if d.is_digit]
    if len(digits) < 2:
        return 0.0
    centres = np.array([(d.box.cx, d.box.cy) for d in digits])
    gaps = centres[:, None] - centres[None]
    dist = np.hypot(gaps[..., 0], gaps[..., 1]) + np.eye(len(digits)) * 1e9
    nearest = gaps[np.arange(len(digits)), dist.argmin(1)]
    folded = [math.degrees(math.atan2(-dy, dx)) for dx, dy in nearest]
    folded = [(a + 90) % 180 - 90 for a in folded]  # a neighbour on either side: one direction
    turn = float(np.median(folded))
    return turn if abs(turn) <= STEEPEST else 0.0


def along(found: list[Detection], turn: float) -> list[tuple[float, float, Detection]]:
    """Each detection's centre in the writing's own frame: x along the line, y across it."""
    c, s = math.cos(math.radians(turn)), math.sin(math.radians(turn))
    return [(d.box.cx * c - d.box.cy * s, d.box.cx * s + d.box.cy * c, d) for d in found]


def height(found: list[Detection]) -> float:
    """How tall the writing is: the median digit's height (1 when there is none)."""
    tall = [d.box.height for d in found if d.is_digit]
    return float(np.median(tall)) if tall else 1.0


def lines(found: list[Detection], turn: float | None = None) -> list[Line]:
    """The lines of writing, top to bottom, each split into numbers, left to right."""
    if not found:
        return []
    turn = angle(found) if turn is None else turn
    h = height(found)
    placed = sorted(along(found, turn), key=lambda t: t[1])
    rows: list[list[tuple[float, float, Detection]]] = []
    for item in placed:  # digits first settle the lines; marks then join the nearest
        if not item[2].is_digit:
            continue
        if rows and abs(item[1] - float(np.median([r[1] for r in rows[-1]]))) <= LINE_BAND * h:
            rows[-1].append(item)
        else:
            rows.append([item])
    for item in placed:
        if item[2].is_digit:
            continue
        near = [
            (abs(item[1] - float(np.median([r[1] for r in row]))), k) for k, row in enumerate(rows)
        ]
        if near and min(near)[0] <= 1.2 * h:
            rows[min(near)[1]].append(item)
    return [Line(_numbers(sorted(row, key=lambda t: t[0]), h)) for row in rows]


def _numbers(row: list[tuple[float, float, Detection]], h: float) -> list[list[Detection]]:
    """A line's detections split where a gap is wider than NUMBER_GAP heights."""
    numbers: list[list[Detection]] = []
    right = None
    for x, _, d in row:
        half = d.box.width / 2
        if right is None or x - half - right > NUMBER_GAP * h:
            numbers.append([])
        numbers[-1].append(d)
        right = x + half if right is None else max(right, x + half)
    return [n for n in numbers if any(d.is_digit for d in n)]


def text(number: list[Detection], digits: list[str], turn: float = 0.0) -> str:
    """A number's text: each detection's reading in order (`digits`: the text of each,
    '?' for an unsure digit), with a space where a gap between two digits is much wider than
    the others."""
    h = height(number)
    c, s = math.cos(math.radians(turn)), math.sin(math.radians(turn))
    spans = [
        (
            (d.box.cx * c - d.box.cy * s) - d.box.width / 2,
            (d.box.cx * c - d.box.cy * s) + d.box.width / 2,
        )
        for d in number
    ]
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(spans)]
    usual = float(np.median(gaps)) if gaps else 0.0
    out = digits[0] if digits else ""
    for k, gap in enumerate(gaps):
        before, after = digits[k], digits[k + 1]
        if (
            gap > SPACE * h
            and gap > 2 * max(usual, 1.0)
            and before[-1].isdigit()
            and after[0].isdigit()
        ):
            out += " "
        out += after
    return out


def value(written: str, decimal_comma: bool | None = None) -> int | float | None:
    """The number `written` stands for, or None when it is none (an unsure digit, marks that
    make no number).

    The marks that close an amount (`1.500.-`, `250=`) are left out first. One mark:
    decimal_comma says whether a comma is the decimal mark and a point groups thousands
    (True), the other way round (False), or (None) a point is the decimal mark and so is a
    comma, unless three digits follow it, as in 1,250. Several: the same mark between groups
    of three digits groups thousands, and a last, different one is the decimal mark
    (3.975,50). More than MAX_VALUE_DIGITS digits have no value: JSON readers hold no more
    exactly."""
    s = re.sub(f"[{re.escape(END_MARKS)},]+$", "", written.replace(" ", ""))
    found = re.fullmatch(r"(-?)(\d+(?:[.,]\d+)*)", s)
    if found is None or sum(c.isdigit() for c in s) > MAX_VALUE_DIGITS:
        return None
    sign, body = found.groups()
    parts = re.split(r"([.,])", body)
    groups, marks = parts[::2], parts[1::2]
    if not marks:
        return int(sign + body)
    last = marks[-1]
    if len(set(marks)) == 1 and len(marks) > 1:
        decimal = False  # one mark written several times groups thousands
    elif decimal_comma is None:
        decimal = last == "." or len(groups[-1]) != 3
    else:
        decimal = (last == ",") == decimal_comma
    grouping = marks[:-1] if decimal else marks
    if len(set(grouping)) > 1 or (decimal and last in grouping):
        return None
    between = groups[1:-1] if decimal else groups[1:]
    if any(len(g) != 3 for g in between) or (grouping and len(groups[0]) > 3):
        return None
    whole = "".join(groups[:-1] if decimal else groups)
    return float(f"{sign}{whole}.{groups[-1]}") if decimal else int(sign + whole)


def table(rows: list[list[Box | None]]) -> list[list[int | None]] | None:
    """Which column each number of each line stands in, when the numbers of all lines stand
    in columns (their spans overlap down the page, one number a column in each line); None
    when they do not."""
    spans = sorted((b.x0, b.x1) for row in rows for b in row if b is not None)
    columns: list[list[float]] = []
    for x0, x1 in spans:
        if columns and x0 <= columns[-1][1]:
            columns[-1][1] = max(columns[-1][1], x1)
        else:
            columns.append([x0, x1])
    placed = []
    for row in rows:
        at = [next(k for k, c in enumerate(columns) if c[0] <= b.x0 <= c[1]) for b in row]
        if len(set(at)) < len(at):
            return None
        cells: list[int | None] = [None] * len(columns)
        for k, column in enumerate(at):
            cells[column] = k
        placed.append(cells)
    return placed
