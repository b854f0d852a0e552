"""The photo stage: phone-style photos (benchmarks/photos.py composes them) read as numbers.

Each condition is one a phone photo brings and the old single-threshold ink finder failed on:
the sheet on a table, a shadow's edge, pencil, ruled and squared paper, printed boxes, dim
light, a sticky note, a whiteboard. The digits are MNIST test digits, read by the packaged model.
"""

import io
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import png, row_of
from PIL import Image

from mnist_cnn import digits, engines, photo, predict

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import photos


@pytest.fixture(scope="module")
def classify():
    return engines.classifier(engine="onnx-int8")


def photos_of(condition: str, test_digits, count: int = 6, seed: int = 0):
    """`count` photos of 3-5 digit numbers under `condition`: (JPEG bytes, digits) each."""
    x, y = test_digits
    rng = np.random.default_rng([seed, photos.CONDITIONS.index(condition)])
    for _ in range(count):
        idx = rng.choice(len(y), int(rng.integers(3, 6)), replace=False)
        height = int(rng.integers(70, 140))
        yield photos.compose(photos.mnist_inks(x[idx], height), condition, rng), list(y[idx])


# Of 6 numbers, each condition reads 5 or 6 (the old single-threshold ink finder read 0-1 of
# 6 in all but plain paper, pencil, a tilted camera and motion blur; before the small sheet's
# holes were filled, 4 of 6 sticky notes)
NEEDED = 5


@pytest.mark.parametrize("condition", photos.CONDITIONS)
def test_numbers_in_each_kind_of_photo_are_read(condition, test_digits, classify):
    read = 0
    for jpeg, truth in photos_of(condition, test_digits):
        got = photos.read_photo(jpeg, classify, predict.MIN_CONFIDENCE)
        read += [d for d, _ in got] == truth
    assert read >= NEEDED, f"{condition}: {read} of 6 numbers read"


@pytest.mark.parametrize("condition", ["pencil", "shadow", "on a table", "form boxes"])
def test_one_digit_per_photo_reads_through_plain_predict(condition, test_digits, classify):
    x, y = test_digits
    rng = np.random.default_rng([7, photos.CONDITIONS.index(condition)])
    right = 0
    for i in range(6):
        jpeg = photos.compose(photos.mnist_inks(x[i : i + 1], 160), condition, rng)
        right += photos.read_single(jpeg, classify, predict.MIN_CONFIDENCE)[0] == y[i]
    assert right >= 5, f"{condition}: {right} of 6 digits read"


def test_the_sheet_on_a_table_is_found_and_boxes_map_back_into_it(test_digits):
    jpeg, truth = next(photos_of("on a table", test_digits, count=1))
    gray = digits.read_image(jpeg)
    found, pieces, _ = digits.locate_number(gray)
    assert found.sheet is not None and found.sheet.shape == (4, 2)
    assert len(pieces) == len(truth)
    sheet = found.sheet.astype(np.float32)
    for rows, cols, _ in pieces:  # every digit's box lies on the sheet, in the photo's pixels
        centre = ((cols.start + cols.stop) / 2, (rows.start + rows.stop) / 2)
        assert cv2.pointPolygonTest(sheet, centre, False) > 0


def test_paper_that_fills_the_photo_is_not_cut(test_digits):
    jpeg, _ = next(photos_of("white paper", test_digits, count=1))
    assert photo.find_ink(digits.read_image(jpeg)).sheet is None


def test_a_shadow_edge_and_ruled_lines_leave_only_the_digit():
    from PIL import ImageDraw

    rng = np.random.default_rng(3)
    sheet = Image.new("L", (800, 600), 235)
    ImageDraw.Draw(sheet).ellipse((360, 200, 440, 330), outline=30, width=9)  # a 0
    page = np.asarray(sheet, np.float64).copy()
    page[:, 300:] *= 0.55  # a hard shadow over most of the page, the digit in it
    page[100::60] = np.minimum(page[100::60], 150)  # ruled lines
    page += rng.normal(0, 3, page.shape)
    ink = photo.find_ink(page).ink > 0
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    assert rows[0] >= 195 and rows[-1] <= 335 and cols[0] >= 355 and cols[-1] <= 445
    assert ink[200:331, 360:441].sum() > 0.9 * ink.sum()


def test_show_input_with_number_writes_each_digit_and_the_boxes(test_digits, tmp_path, capsys):
    from mnist_cnn import cli

    jpeg, truth = next(photos_of("on a table", test_digits, count=1))
    (tmp_path / "meter.jpg").write_bytes(jpeg)
    out = tmp_path / "seen"
    cli.main(
        ["predict", "--number", "--json", "--show-input", str(out), str(tmp_path / "meter.jpg")]
    )
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(
        [f"meter-{k}.png" for k in range(1, len(truth) + 1)] + ["meter-boxes.png"]
    )
    boxes = Image.open(out / "meter-boxes.png")
    assert boxes.size == Image.open(io.BytesIO(jpeg)).size and boxes.mode == "RGB"
    assert np.asarray(Image.open(out / "meter-1.png")).shape == (28, 28)
    import json

    [answer] = json.loads(capsys.readouterr().out)
    assert answer["sheet"] is not None and len(answer["digits"]) == len(truth)


def test_the_narrow_tip_of_a_shadow_is_no_digit(test_digits):
    """The paper's closing fills a shadow's tip where it is narrower than the closing, so
    the tip looks like ink; what goes on just as dark past its outline is dropped."""
    x = test_digits[0]
    page = np.full((768, 1024), 235, np.float32)
    row = row_of(x[:3], gap=20, scale=3)
    page[300 : 300 + row.shape[0], 350 : 350 + row.shape[1]] *= row / 255
    shade = np.zeros_like(page)
    cv2.fillPoly(shade, [np.int32([(0, 520), (0, 768), (420, 768)])], 1)
    cv2.fillPoly(shade, [np.int32([(1024, 0), (1024, 300), (700, 0)])], 1)
    page *= 1 - 0.45 * cv2.GaussianBlur(shade, (0, 0), 2)
    _, pieces, _ = digits.locate_number(page)
    assert len(pieces) == 3 and all(350 < cols.start < 700 for _, cols, _ in pieces)


def test_a_shadow_edge_just_under_the_digits_leaves_the_ink_dark(test_digits, classify):
    """Beside a shadow's edge a window of the paper holds more shadow than paper: taking
    each place's median for the paper there read the bright paper as ink and the digits as
    paper (the photo a negative). Told apart by width, the digits stay the ink."""
    x, y = test_digits
    page = np.full((768, 1024), 232, np.float32)
    row = row_of(x[:3], gap=16, scale=3)
    top, left = 420, 400
    page[top : top + row.shape[0], left : left + row.shape[1]] *= row / 255
    shade = np.zeros_like(page)  # a hard, sloping edge a few pixels under the row
    edge = top + row.shape[0] + 6
    cv2.fillPoly(shade, [np.int32([(0, edge + 60), (1024, edge - 20), (1024, 768), (0, 768)])], 1)
    page *= 1 - 0.5 * shade
    page += np.random.default_rng(2).normal(0, 2, page.shape)
    assert not photo._dark_paper(page)
    got = photos.read_photo(png(page), classify, predict.MIN_CONFIDENCE)
    assert [d for d, _ in got] == list(y[:3])


def test_a_pen_stroke_along_a_grid_line_stays():
    """A fine pen's 7 with its bar written on a grid line: the bar is ink, darker than the
    print, and stays when the grid goes (else the 7 reads as a 1)."""
    from PIL import ImageDraw

    page = Image.new("RGB", (900, 600), (240, 240, 236))
    pen = ImageDraw.Draw(page)
    for k in range(0, 20):
        pen.line([(0, 50 * k + 10), (900, 50 * k + 10)], fill=(130, 150, 205), width=3)
        pen.line([(50 * k + 25, 0), (50 * k + 25, 600)], fill=(130, 150, 205), width=3)
    for left in (300, 480):  # two 7s, their bars on the line at y = 210
        pen.line([(left, 210), (left + 90, 210), (left + 35, 360)], fill=(20, 20, 30), width=4)
    gray = np.asarray(page.convert("L"), np.float32)
    ink = photo.find_ink(gray).ink
    assert (ink[206:215, 310:380] > 100).any(0).mean() > 0.9  # the bar, along its length
    assert (ink[:, 100:250] == 0).all()  # and the grid is gone


def test_a_white_digit_drawn_on_black_is_no_sheet(test_digits):
    """A white 0 on black, its hole filled, is a bright even region: but no four-sided one,
    so it is read as the digit it is (it was once cut out as a sheet, two corners the same:
    the 4th white-on-black page of benchmarks/real_world.py)."""
    import real_world

    x, y = test_digits
    rng = np.random.default_rng(0)
    pages = [real_world.render(d, "white on black", rng) for d in x[:4]]
    assert y[3] == 0 and photo.find_ink(pages[3]).sheet is None
    seen = digits.normalise(pages[3])
    assert np.isfinite(seen).all() and seen.max() == 255


def test_a_white_8_drawn_on_black_is_no_sheet(mnist_dir, classify):
    """The 267th white-on-black page of benchmarks/real_world.py: an 8 whose two loops,
    filled in, make a four-sided region; taken for a sheet, it left "no ink found". A sheet
    is mostly light, and this is not."""
    import real_world

    from mnist_cnn import data

    ds = data.load(str(mnist_dir), val_size=0, test_limit=267)
    rng = np.random.default_rng(0)
    pages = [real_world.render(d, "white on black", rng) for d in ds.x_test[:267, ..., 0]]
    assert ds.y_test[266] == 8 and photo.find_ink(pages[266]).sheet is None
    seen = digits.normalise(pages[266])
    assert classify(seen[None, ..., None]).argmax() == 8


def test_a_grid_line_broken_by_the_digits_on_it_still_goes():
    """Five thick 0s with their tops on one grid line break it into pieces, each shorter than
    a printed line must be: together they are one line, and it goes (else it stays, joins
    the 0s into one mark, and they go with it)."""
    from PIL import ImageDraw

    page = Image.new("RGB", (1024, 768), (240, 238, 244))
    pen = ImageDraw.Draw(page)
    for k in range(17):
        pen.line([(0, 62 * k + 8), (1024, 62 * k + 8)], fill=(120, 140, 215), width=2)
        pen.line([(62 * k + 8, 0), (62 * k + 8, 768)], fill=(120, 140, 215), width=2)
    lefts = range(150, 900, 150)
    for left in lefts:  # tops on the line at y = 318
        pen.ellipse((left, 318, left + 100, 460), outline=(170, 25, 30), width=12)
    ink = photo.find_ink(np.asarray(page.convert("L"), np.float32)).ink > 0
    assert not ink[:, :140].any() and not ink[:, 910:].any()  # the grid is gone
    for left in lefts:  # and each 0 is whole, on its own
        assert ink[330:450, left : left + 12].any() and ink[330:450, left + 88 : left + 100].any()
        assert not ink[:, left + 118 : left + 132].any()


@pytest.mark.parametrize(("pen", "dot"), [(4, 18), (16, 9)])
def test_a_decimal_point_thicker_or_thinner_than_the_strokes_stays(pen, dot):
    """A felt pen's blot beside fine strokes is no stain, and a light touch's dot beside bold
    strokes no speck: each stays as ink, for `marks` to read as a decimal point."""
    from PIL import ImageDraw

    page = Image.new("L", (900, 500), 236)
    draw = ImageDraw.Draw(page)
    for left in (250, 520):  # two 0s, 150 px tall
        draw.ellipse((left, 150, left + 100, 300), outline=25, width=pen)
    centre = (435, 300 - dot // 2)  # on the baseline, between them
    draw.ellipse((centre[0] - dot // 2, centre[1] - dot // 2, centre[0] + dot // 2, 300), fill=25)
    ink = photo.find_ink(np.asarray(page, np.float32)).ink
    assert (ink[280:305, 415:455] > 100).sum() >= 0.5 * dot * dot


def test_a_sticky_note_written_from_edge_to_edge_is_found_with_every_digit():
    """A row of digits across a small note, the first and last touching its edges (the last in
    a finer pen), cuts the note's paper in two: it is still found as one sheet, and the digits
    at its edges are writing, not a strip of table left by the cut."""
    from PIL import ImageDraw

    rng = np.random.default_rng(5)
    table = (60 + 25 * np.sin(np.arange(768)[:, None] / 9 + np.arange(1024)[None] / 40)).clip(0)
    photo_ = Image.fromarray(np.repeat(table[..., None], 3, 2).astype(np.uint8))
    draw = ImageDraw.Draw(photo_)
    draw.rectangle((500, 260, 820, 580), fill=(250, 236, 120))  # the note
    for k, left in enumerate((500, 583, 666, 750)):  # four 0s from edge to edge
        draw.ellipse((left, 360, left + 70, 480), outline=(170, 25, 30), width=12 if k < 3 else 5)
    gray = np.asarray(photo_.convert("L"), np.float32) + rng.normal(0, 2, (768, 1024))
    found = photo.find_ink(gray)
    assert found.sheet is not None
    _, _, stats, _ = cv2.connectedComponentsWithStats((found.ink > 60).astype(np.uint8))
    assert (stats[1:, cv2.CC_STAT_HEIGHT] > 0.25 * found.ink.shape[0]).sum() == 4


def test_a_decimal_point_written_as_a_short_tick_stays():
    """A point made by a quick touch is a short tick, up to twice as long as the pen is wide;
    beside bold digits it is smaller than a twentieth of them and was dropped as a speck."""
    from PIL import ImageDraw

    page = Image.new("L", (900, 500), 236)
    draw = ImageDraw.Draw(page)
    for left in (250, 520):  # two bold 0s, 150 px tall
        draw.ellipse((left, 150, left + 110, 300), outline=25, width=22)
    draw.line((427, 293, 445, 283), fill=25, width=14)  # the tick, on the baseline between
    ink = photo.find_ink(np.asarray(page, np.float32)).ink
    assert (ink[270:305, 415:460] > 100).sum() >= 150
