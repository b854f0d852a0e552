"""Several numbers on a page: the lines of writing, the numbers on each line, and the table
they make.

A line is the digit-sized marks whose heights overlap (a line written a little aslant still
is one); the small marks (a decimal point, a minus sign, a 5's loose cap) go with the line
whose band they lie in. Each line is then cut into digits and marks as one number is
(`digits.segment_marks`), and split into numbers where the gap between two neighbours is
wider than NUMBER_GAP times the writing's height: a space within a number (12 500) is
narrower. Lines of numbers make a table when their numbers stand in columns.
"""

import numpy as np

from mnist_cnn import photo
from mnist_cnn.errors import ImageError
from mnist_cnn.photo import MIN_CONTRAST, otsu

MAX_LINES = 60  # lines of writing on one page
MAX_PAGE_MARKS = 2000  # separate marks on one page: more is noise or an attack
NUMBER_GAP = 1.5  # a gap wider than this many writing heights starts a new number
TALL = 0.5  # a mark at least this share of the writing's height may be a digit

Box = tuple[int, int, int, int]  # x0, y0, x1, y1


def find_lines(ink: np.ndarray) -> list[Box]:
    """The box of each line of writing, top to bottom."""
    mask = (ink > max(otsu(ink), MIN_CONTRAST / 2)).astype(np.uint8)
    n, _, stats, _ = photo._components(mask)
    if n - 1 > MAX_PAGE_MARKS:
        raise ImageError(f"{n - 1} separate marks: too many to read (at most {MAX_PAGE_MARKS})")
    x, y, w, h = (stats[1:, i] for i in range(4))
    if not len(h):
        return []
    height = float(np.median(h[h >= 0.5 * h.max()]))
    tall = np.flatnonzero(h >= TALL * height)
    bands: list[list[float]] = []  # top, bottom, x0, x1
    for i in tall[np.argsort(y[tall] + h[tall] / 2)]:
        top, bottom, middle = y[i], y[i] + h[i], y[i] + h[i] / 2
        band = bands[-1] if bands else None
        overlap = min(bottom, band[1]) - max(top, band[0]) if band else 0
        if band and (band[0] <= middle <= band[1] or overlap > 0.5 * min(h[i], band[1] - band[0])):
            _widen(band, x[i], top, x[i] + w[i], bottom)
        else:
            bands.append([top, bottom, x[i], x[i] + w[i]])
    if len(bands) > MAX_LINES:
        raise ImageError(f"{len(bands)} lines of writing: too many to read (at most {MAX_LINES})")
    for i in np.setdiff1d(np.arange(len(h)), tall):  # small marks: the band they lie in
        middle = y[i] + h[i] / 2
        near = [b for b in bands if b[0] - 0.2 * height <= middle <= b[1] + 0.4 * height]
        for band in near[:1]:
            _widen(band, x[i], y[i], x[i] + w[i], y[i] + h[i])
    return [(int(b[2]), int(b[0]), int(b[3]), int(b[1])) for b in bands]


def _widen(band: list, x0: float, y0: float, x1: float, y1: float) -> None:
    band[:] = [min(band[0], y0), max(band[1], y1), min(band[2], x0), max(band[3], x1)]


def split_numbers(digits: list[Box], small: list[Box]) -> list[tuple[list[int], list[int]]]:
    """The numbers of one line: for each, the indices of its digits and of its small marks,
    left to right, split where a gap is wider than NUMBER_GAP writing heights."""
    if not digits:
        return []
    height = float(np.median([b[3] - b[1] for b in digits]))
    items = sorted([(b[0], b[2], "d", k) for k, b in enumerate(digits)])
    items += [(b[0], b[2], "s", k) for k, b in enumerate(small)]
    items.sort()
    groups: list[list[tuple]] = []
    right = None
    for item in items:
        if right is None or item[0] - right > NUMBER_GAP * height:
            groups.append([])
        groups[-1].append(item)
        right = item[1] if right is None else max(right, item[1])
    numbers = []
    for group in groups:
        found = [k for *_, kind, k in group if kind == "d"]
        if found:  # a group of small marks alone is no number
            numbers.append((found, [k for *_, kind, k in group if kind == "s"]))
    return numbers


def table(rows: list[list[Box]]) -> list[list[int | None]] | None:
    """Which column each number of each line stands in, when the numbers of all lines stand
    in columns (their spans overlap down the page, one number a column in each line); None
    when they do not."""
    spans = sorted((b[0], b[2]) for row in rows for b in row)
    columns: list[list[int]] = []
    for x0, x1 in spans:
        if columns and x0 <= columns[-1][1]:
            columns[-1][1] = max(columns[-1][1], x1)
        else:
            columns.append([x0, x1])
    placed = []
    for row in rows:
        at = [next(k for k, c in enumerate(columns) if c[0] <= b[0] <= c[1]) for b in row]
        if len(set(at)) < len(at):
            return None
        cells: list[int | None] = [None] * len(columns)
        for k, column in enumerate(at):
            cells[column] = k
        placed.append(cells)
    return placed
