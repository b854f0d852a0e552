"""reading/layout.py: lines, numbers, text and value from boxes the network found."""

import numpy as np
import pytest

from mnist_cnn.reading import layout
from mnist_cnn.reading.detector import CLASSES, Detection
from mnist_cnn.reading.geometry import Box


def found(kind: str, x: float, y: float, w: float = 20, h: float = 34, sure: float = 0.98):
    """A detection of `kind` centred at (x, y)."""
    p = np.full(len(CLASSES), (1 - sure) / (len(CLASSES) - 1))
    p[CLASSES.index(kind)] = sure
    return Detection(Box(x - w / 2, y - h / 2, x + w / 2, y + h / 2), 0.9, p)


def row(text: str, x0: float = 50, y: float = 100, step: float = 26, turn: float = 0.0):
    """The detections of `text` written in a row (marks small and low, spaces skipped)."""
    out, x = [], x0
    c, s = np.cos(np.radians(turn)), np.sin(np.radians(turn))
    for ch in text:
        if ch == " ":
            x += 40
            continue
        small = ch in ".,-"
        dy = 12 if ch in ".," else 0
        px, py = x0 + (x - x0) * c, y - (x - x0) * s + dy
        out.append(found(ch, px, py, 6 if small else 20, 6 if small else 34))
        x += 14 if small else step
    return out


def texts(number):
    return [d.kind for d in number]


def test_a_row_is_one_line_of_one_number():
    [line] = layout.lines(row("1234"))
    assert [texts(n) for n in line.numbers] == [list("1234")]


def test_a_wide_gap_starts_a_new_number_and_a_line_below_is_a_new_line():
    page = row("12", x0=50) + row("345", x0=250) + row("6", x0=50, y=200)
    lines = layout.lines(page)
    assert [[texts(n) for n in line.numbers] for line in lines] == [
        [list("12"), list("345")],
        [list("6")],
    ]


def test_marks_join_the_line_they_sit_in():
    lines = layout.lines(row("-12.50"))
    assert [texts(n) for n in lines[0].numbers] == [list("-12.50")]


def test_marks_alone_make_no_number():
    assert layout.lines([found(".", 50, 100, 6, 6)]) == []


@pytest.mark.parametrize("turn", [-35.0, -10.0, 0.0, 20.0, 40.0])
def test_writing_turned_up_to_steepest_is_still_one_line_in_order(turn):
    dets = row("237845", turn=turn)
    assert layout.angle(dets) == pytest.approx(turn, abs=1.0)
    [line] = layout.lines(dets)
    assert [texts(n) for n in line.numbers] == [list("237845")]


def test_a_column_of_digits_is_read_as_lines_not_as_a_turned_number():
    column = [found(str(k), 50, 60 + 45 * k) for k in range(1, 6)]
    assert layout.angle(column) == 0.0
    assert [[texts(n) for n in line.numbers] for line in layout.lines(column)] == [
        [[str(k)]] for k in range(1, 6)
    ]


def test_text_puts_a_space_where_a_gap_is_much_wider_than_the_rest():
    number = row("12") + row("500", x0=50 + 2 * 26 + 40)
    assert layout.text(number, [d.kind for d in number]) == "12 500"
    assert layout.text(row("1250"), list("1250")) == "1250"


def test_text_keeps_unsure_digits_as_question_marks():
    number = row("123")
    assert layout.text(number, ["1", "?", "3"]) == "1?3"


@pytest.mark.parametrize(
    "written, default, comma, point",
    [
        ("12", 12, 12, 12),
        ("12.50", 12.5, None, 12.5),
        ("-12.50", -12.5, None, -12.5),
        ("1,250", 1250, 1.25, 1250),
        ("12,5", 12.5, 12.5, None),
        ("3.975,00", 3975.0, 3975.0, None),
        ("1.234.567", 1234567, 1234567, 1234567),
        ("1,234,567.5", 1234567.5, None, 1234567.5),
        ("12 500", 12500, 12500, 12500),
        ("19.133.-", 19.133, 19133, 19.133),
        ("26.511=", 26.511, 26511, 26.511),
        ("541,", 541, 541, 541),
        ("1?3", None, None, None),
        ("1.2.3", None, None, None),
        ("12,34,567", None, None, None),
        ("-", None, None, None),
        ("1" * 16, None, None, None),
    ],
)
def test_value_follows_the_conventions_of_marks(written, default, comma, point):
    assert layout.value(written) == default
    assert layout.value(written, decimal_comma=True) == comma
    assert layout.value(written, decimal_comma=False) == point


def test_table_places_numbers_in_their_columns():
    rows = [[Box(0, 0, 40, 20), Box(100, 0, 140, 20)], [Box(105, 40, 130, 60)]]
    assert layout.table(rows) == [[0, 1], [None, 0]]
    assert layout.table([[Box(0, 0, 100, 20), Box(50, 0, 120, 20)]]) is None
