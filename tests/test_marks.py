"""The marks between digits: decimal points, commas, minus signs, spaces; a number's value."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_cnn import cli, digits, engines, marks, predict

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import as_written

DIGITS = [(0, 0, 40, 100), (60, 0, 100, 100), (120, 0, 160, 100)]  # three digits, 100 px tall


def found(*args, **kwargs) -> list[tuple]:
    """`marks.find`'s marks as (kind, box)."""
    return [(m.kind, m.box) for m in marks.find(*args, **kwargs)]


@pytest.mark.parametrize(
    ("box", "kind"),
    [
        ((45, 85, 55, 98), "."),  # a round dot on the baseline between two digits
        ((45, 80, 56, 130), ","),  # a tail reaching below the baseline
        ((-60, 45, -15, 55), "-"),  # a flat bar at mid-height before the first digit
    ],
)
def test_each_mark_is_told_by_its_shape_and_place(box, kind):
    assert found(DIGITS, [box]) == [(kind, box)]


@pytest.mark.parametrize(
    "box",
    [
        (45, 5, 55, 15),  # a dot at the top: no decimal point
        (170, 85, 180, 95),  # a dot after the last digit
        (-10, 85, -2, 95),  # ... or before the first
        (45, 30, 55, 60),  # a blob at mid-height between digits
        (-60, 10, -15, 20),  # a bar near the top before the digits
        (-30, 45, -15, 75),  # a short upright stroke: no minus sign
    ],
)
def test_other_small_marks_are_no_part_of_the_number(box):
    assert marks.find(DIGITS, [box]) == []


def test_a_thin_mark_hanging_below_the_baseline_is_a_comma_a_round_one_a_point():
    square = (45, 90, 65, 110)  # as wide as tall, its foot 0.1 heights below the baseline
    assert found(DIGITS, [square], [0.35]) == [(",", square)]  # a thin tail
    assert found(DIGITS, [square], [0.8]) == [(".", square)]  # a round dot


def test_a_short_thick_minus_sign_is_one():
    """A minus sign as short as a quarter of the height, in a thick pen: 1.5 times as wide
    as tall (MNIST's strokes; 1.8 was needed before, and 1 in 25 such signs was missed)."""
    bar = (-45, 42, -15, 62)
    assert found(DIGITS, [bar]) == [("-", bar)]


def test_a_dot_above_the_baseline_or_thinner_than_the_pen_is_no_point():
    """A point sits on the baseline and is a pen's width across; a speck of dirt between
    the digits is often neither (before, both were read as decimal points)."""
    raised = (45, 66, 55, 76)  # its middle low enough, but its foot 0.24 heights up
    assert marks.find(DIGITS, [raised]) == []
    dot = (45, 88, 52, 95)  # 7 px on the baseline
    assert found(DIGITS, [dot], pen=8.0) == [(".", dot)]
    assert marks.find(DIGITS, [dot], pen=14.0) == []  # half the digits' stroke width: a speck


def test_a_dot_with_a_mark_over_it_is_no_point():
    """A point stands alone between the digits: the lower of two dashes one over the other
    is a piece of a broken stroke (an MNIST 4's stem) or a colon's dot (before: 40 read 4.0)."""
    dot, over = (45, 86, 54, 98), (45, 40, 54, 56)
    assert found(DIGITS, [dot]) == [(".", dot)]
    assert marks.find(DIGITS, [over, dot]) == []
    assert found(DIGITS, [(45, -40, 54, -30), dot]) == [(".", dot)]  # far above


def test_two_like_decimal_dots_make_neither_a_decimal_mark_one_dwarfing_the_other_is_it():
    """Two points in one number are none (which would it be?); a pen's dot beside a speck or
    a stroke's fragment is the point (before, a speck beside it lost 1 point in 100)."""
    assert marks.find(DIGITS, [(45, 85, 55, 98), (105, 85, 115, 98)]) == []
    speck = (106, 90, 112, 97)  # a third of the dot's ink
    assert found(DIGITS, [(45, 85, 55, 98), speck]) == [(".", (45, 85, 55, 98))]


def test_a_point_in_a_thick_pen_may_be_large():
    """A dot 2.5 pens across in a pen a fifth of the digits' height is a point, though more
    than 0.4 heights across (motion blur and thick MNIST strokes lost such points)."""
    blot = (44, 56, 57, 99)  # 0.43 heights tall, on the baseline
    assert marks.find(DIGITS, [blot], pen=10.0) == []
    assert found(DIGITS, [blot], pen=18.0) == [(".", blot)]


def test_a_decimal_marks_confidence_says_how_clearly_it_is_a_point_or_a_comma():
    dot, tail = (45, 85, 55, 98), (45, 80, 56, 130)
    assert marks.find(DIGITS, [dot])[0].confidence > 0.99  # round, on the baseline
    assert marks.find(DIGITS, [tail])[0].confidence > 0.99  # long, far below it
    # as wide as tall, its foot 0.1 heights below the baseline: as like a point as a comma
    doubtful = marks.find(DIGITS, [(45, 90, 65, 110)], [0.5])[0]
    assert 0.5 <= doubtful.confidence < 0.7
    assert marks.find(DIGITS, [(-60, 45, -15, 55)])[0].confidence is None  # a minus sign
    # tall and thin like a comma's tail, but on the baseline: a point, and a toss-up
    tick = (45, 70, 52, 100)
    assert [(m.kind, m.confidence) for m in marks.find(DIGITS, [tick], [0.4])] == [(".", 0.5)]


@pytest.mark.parametrize(
    ("text", "decimal_comma", "value"),
    [
        ("12.5", None, 12.5),
        ("-47", None, -47),
        ("0472", None, 472),
        ("3,14", None, 3.14),  # a comma followed by other than three digits: decimal
        ("1,250", None, 1250),  # ... by three: a thousands separator
        ("1,250", True, 1.25),
        ("12,50", False, None),  # not a thousands separator, and told it is no decimal mark
        ("1.250", True, 1250),
        ("12 500", None, 12500),
        ("1?5", None, None),
        ("-", None, None),
        ("1.2.3", None, None),
        ("9" * 15, None, 10**15 - 1),
        ("9" * 40, None, None),  # no value a JSON reader holds exactly (found by the fuzzer)
    ],
)
def test_the_value_of_what_was_written(text, decimal_comma, value):
    got = marks.value(text, decimal_comma)
    assert got == value and type(got) is type(value)


def test_a_wide_gap_between_digits_is_a_space():
    wide = [("1", (0, 0, 40, 100)), ("2", (55, 0, 95, 100)), ("5", (200, 0, 240, 100))]
    wide += [("0", (255, 0, 295, 100)), ("0", (310, 0, 350, 100))]
    assert marks.text(wide, []) == "12 500"
    assert marks.text(wide[:2], [marks.Mark(".", (45, 85, 52, 98))]) == "1.2"


@pytest.fixture(scope="module")
def classify():
    return engines.classifier(None, "auto")  # the packaged model's int8 twin


def photo(text: str, condition: str = "white paper", seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    jpeg = as_written.photo_of(text, as_written.digit_source("mnist", rng), condition, rng, False)
    return digits.read_image(jpeg)


@pytest.mark.parametrize(
    ("text", "value"),
    [("12.5", 12.5), ("0.75", 0.75), ("3,14", 3.14), ("-47", -47), ("-3.5", -3.5)],
)
def test_marks_in_a_photo_of_real_digits(classify, text, value):
    """Through the whole path (photo stage, segmentation, the packaged model): 5 of 6 photos
    of MNIST test digits, each under another seed, read exactly (before: 12.5 as 125,
    3,14 as 3914, -47 as 47)."""
    read = [predict.read_number(photo(text, seed=s), classify, 0.0) for s in range(6)]
    assert sum(n.text == text and n.value == value for n in read) >= 5, [n.text for n in read]
    kinds = [m.kind for m in read[0].marks]
    assert kinds == [c for c in text if c in ".,-"] or read[0].text != text


def test_specks_of_dirt_are_no_decimal_points(classify):
    """Plain numbers with dirt beside the digits: no mark read in any of 8 photos."""
    rng = np.random.default_rng(5)
    make = as_written.digit_source("mnist", rng)
    for _ in range(8):
        jpeg = as_written.photo_of("4721", make, "white paper", rng, specks=True)
        number = predict.read_number(digits.read_image(jpeg), classify, 0.0)
        assert number.marks == [], number.text


def test_the_decimal_point_is_in_every_answer_and_the_comma_choice_is_the_callers(tmp_path, capsys):
    path = tmp_path / "price.jpg"
    Image.fromarray(photo("3,14").astype(np.uint8)).save(path)
    assert cli.main(["predict", "--number", "--json", str(path)]) == 0
    [auto] = json.loads(capsys.readouterr().out)
    assert auto["text"] == "3,14" and auto["value"] == 3.14
    assert [m["kind"] for m in auto["marks"]] == [","] and len(auto["marks"][0]["box"]) == 4
    assert 0.5 <= auto["marks"][0]["confidence"] <= 1
    assert cli.main(["predict", "--number", "--json", "--no-decimal-comma", str(path)]) == 0
    [told] = json.loads(capsys.readouterr().out)
    assert told["text"] == "3,14" and told["value"] is None  # 3,14 is no thousands grouping
    assert cli.main(["predict", "--number", str(path)]) == 0
    said = capsys.readouterr().out
    assert "3,14  (value 3.14;" in said and re.search(r"; comma 0\.\d\d|; comma 1\.00", said)
    reader = predict.DigitReader(decimal_comma=False)
    assert reader.read_number(path).value is None


def test_show_input_draws_the_marks(tmp_path):
    path = tmp_path / "n.png"
    Image.fromarray(photo("-47").astype(np.uint8)).save(path)
    out = tmp_path / "seen"
    assert cli.main(["predict", "--number", "--show-input", str(out), str(path)]) == 0
    boxes = np.asarray(Image.open(out / "n-boxes.png").convert("RGB")).astype(int)
    purple = (abs(boxes[..., 0] - 160) < 30) & (boxes[..., 1] < 40) & (boxes[..., 2] > 170)
    assert purple.sum() > 50  # the minus sign's box
