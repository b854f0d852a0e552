"""reading/paper.py: the sheet found and straightened, the light evened, either polarity."""

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_cnn.reading import paper
from mnist_cnn.reading.geometry import Box


def sheet_with_a_zero(size=(600, 800), grey=235, ink=30) -> np.ndarray:
    img = Image.new("L", size[::-1], grey)
    ImageDraw.Draw(img).ellipse((360, 200, 440, 330), outline=ink, width=9)
    return np.asarray(img, np.float64).copy()


def test_a_shadow_edge_and_ruled_lines_are_evened_out_and_the_digit_stays():
    rng = np.random.default_rng(3)
    page = sheet_with_a_zero()
    page[:, 300:] *= 0.55  # a hard shadow over most of the page, the digit in it
    page[100::60] = np.minimum(page[100::60], 150)  # faint ruled lines
    page += rng.normal(0, 3, page.shape)
    ink = paper.prepare(page).ink
    assert ink[200:331, 360:441].max() > 0.9  # the digit at full strength
    outside = ink.copy()
    outside[190:340, 350:450] = 0
    outside[95::60] = outside[96::60] = outside[97::60] = 0  # the printed lines aside
    outside[98::60] = outside[99::60] = outside[100::60] = outside[101::60] = 0
    assert np.quantile(outside, 0.999) < 0.3  # the shadow's edge is no ink


def test_white_chalk_on_a_dark_board_reads_as_ink_on_paper():
    board = 255 - sheet_with_a_zero(grey=235, ink=30)
    ink = paper.prepare(board).ink
    assert ink[200:331, 360:441].max() > 0.9 and np.median(ink) < 0.05


def test_faint_pencil_is_stretched_to_full_strength():
    faint = sheet_with_a_zero(grey=200, ink=160)  # 20% darker than its paper
    assert paper.prepare(faint).ink.max() > 0.95
    fainter = sheet_with_a_zero(grey=200, ink=167)  # at most MAX_GAIN times
    assert paper.prepare(fainter).ink.max() == pytest.approx(paper.MAX_GAIN * 33 / 200, abs=0.05)


def test_the_sheet_on_a_table_is_found_straightened_and_boxes_map_back():
    table = np.full((700, 900), 70.0)
    table[::20] = 110  # a tablecloth's pattern
    sheet = np.full((400, 300), 240, np.uint8)
    cv2.putText(sheet, "42", (60, 250), cv2.FONT_HERSHEY_SIMPLEX, 5, 20, 12)
    sheet = sheet.astype(np.float64)
    src = np.float32([[0, 0], [300, 0], [300, 400], [0, 400]])
    corners = np.float32([[250, 120], [590, 160], [560, 600], [210, 560]])
    warp = cv2.getPerspectiveTransform(src, corners)
    photo = cv2.warpPerspective(sheet, warp, (900, 700), borderValue=-1)
    photo = np.where(photo < 0, table, photo)
    found = paper.prepare(photo)
    assert found.sheet is not None and found.sheet.shape == (4, 2)
    assert np.abs(np.sort(found.sheet, 0) - np.sort(corners, 0)).max() < 35  # a little inside
    h, w = found.ink.shape
    middle = found.box_in_photo(Box(w / 2 - 5, h / 2 - 5, w / 2 + 5, h / 2 + 5))
    centre = (middle.cx, middle.cy)
    assert cv2.pointPolygonTest(corners, centre, False) > 0


def test_paper_that_fills_the_photo_is_not_cut():
    assert paper.prepare(sheet_with_a_zero()).sheet is None


@pytest.mark.parametrize("value", [0.0, 128.0, 255.0])
def test_a_blank_picture_has_no_ink(value):
    ink = paper.prepare(np.full((200, 300), value)).ink
    assert ink.max() < 0.05 and np.isfinite(ink).all()


def test_noise_alone_is_stretched_no_more_than_max_gain():
    rng = np.random.default_rng(0)
    grain = 240 + rng.normal(0, 4, (300, 300))
    ink = paper.prepare(grain).ink
    assert np.quantile(ink, 0.99) <= paper.MAX_GAIN * np.quantile(1 - grain / 250, 0.99) + 0.05


def test_a_dim_photo_s_grain_is_not_taken_for_ink():
    """Dim paper (85 grey) with a phone sensor's grain (9 grey levels): the paper's light is its
    level, not its grain's peaks, so the paper comes out nearly blank and the stroke as ink (the
    grain read 0.3 on the ink scale all over, up to 0.7, when the closing ran on it unsmoothed)."""
    rng = np.random.default_rng(0)
    gray = np.clip(85 + rng.normal(0, 9, (300, 400)), 0, 255)
    gray[100:200, 150:160] = 45  # a stroke
    ink = paper.prepare(gray).ink
    assert ink[100:200, 152:158].mean() > 0.9
    assert np.median(ink[:, :100]) < 0.1 and np.quantile(ink[:, :100], 0.99) < 0.4
