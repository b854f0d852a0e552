"""Any picture of a digit to MNIST's 28x28: normalisation, polarity, cutting numbers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mnist_cnn import digits


@pytest.fixture(scope="module")
def some_digits(test_digits):
    """A handful of real MNIST test digits for the property tests."""
    return test_digits[0][:20]


def place(digit: np.ndarray, scale: float, top: int, left: int, invert: bool, size=(160, 200)):
    """The digit resized by `scale` and put on a bigger canvas, maybe dark ink on white."""
    side = max(8, round(28 * scale))
    big = np.asarray(Image.fromarray(digit.astype(np.uint8)).resize((side, side)), np.float32)
    canvas = np.zeros(size, np.float32)
    top, left = min(top, size[0] - side), min(left, size[1] - side)
    canvas[top : top + side, left : left + side] = big
    return 255 - canvas if invert else canvas


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two 28x28 images, allowing the half-pixel placement ambiguity of 1 px."""
    return max(
        float(np.corrcoef(np.roll(a, (dy, dx), (0, 1)).ravel(), b.ravel())[0, 1])
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )


def test_an_mnist_digit_stays_an_mnist_digit(test_digits):
    x, _ = test_digits
    for digit in x[:50]:
        out = digits.normalise(digit)
        assert out.shape == (28, 28) and out.dtype == np.float32
        assert out.min() >= 0 and out.max() <= 255
        assert similarity(out, digit) > 0.9


@settings(max_examples=40, deadline=None)
@given(
    index=st.integers(0, 19),
    scale=st.floats(1.0, 5.0),  # photos are larger than MNIST; shrinking loses ink
    top=st.integers(0, 120),
    left=st.integers(0, 160),
    invert=st.booleans(),
)
def test_moved_scaled_or_inverted_digit_normalises_the_same(
    some_digits, index, scale, top, left, invert
):
    digit = some_digits[index]
    reference = digits.normalise(digit)
    moved = digits.normalise(place(digit, scale, top, left, invert))
    assert similarity(moved, reference) > 0.8
    cy, cx = np.argwhere(moved > 0).mean(0)  # the ink sits in the middle
    assert abs(cy - 13.5) < 4 and abs(cx - 13.5) < 4


def test_transparent_png_is_ink_on_white(test_digits, tmp_path):
    x, _ = test_digits
    alpha = place(x[0], 4, 10, 10, False).astype(np.uint8)
    rgba = np.zeros((*alpha.shape, 4), np.uint8)
    rgba[..., 3] = alpha  # black ink only where alpha is set; transparent elsewhere
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    gray = digits.read_image(tmp_path / "t.png")
    assert gray[0, 0] == 255 and gray.min() < 50
    assert similarity(digits.normalise(gray), digits.normalise(x[0])) > 0.8


def row_of(digits, gap: int, scale: int = 4) -> np.ndarray:
    """Digits written in a row, dark on white, `gap` px of paper between their ink."""
    tiles = []
    for d in digits:
        big = Image.fromarray(d.astype(np.uint8)).resize((28 * scale, 28 * scale))
        tile = np.asarray(big, np.float32)
        tiles.append(tile[:, tile.any(0)])
    page = np.zeros((28 * scale + 40, sum(t.shape[1] for t in tiles) + gap * len(tiles) + 60))
    col = 30
    for tile in tiles:
        area = page[20 : 20 + tile.shape[0], col : col + tile.shape[1]]
        np.maximum(area, tile, out=area)
        col += tile.shape[1] + gap
    return (255 - page).astype(np.float32)


def test_touching_digits_are_split_and_broken_ones_joined(test_digits):
    from scipy import ndimage

    x, y = test_digits
    for pair, gap in (([0, 1], -14), ([3, 4], -10)):  # a 7 and a 2, a 0 and a 4: overlapping
        ink = 255 - row_of(x[pair], gap=gap)
        blobs = ndimage.label(ink > digits._otsu(ink), structure=np.ones((3, 3)))[1]
        assert blobs == 1  # the two digits touch: one connected blob
        assert len(digits.segment(ink)) == 2
    seven = 255 - row_of(x[[int(np.flatnonzero(y == 7)[0])]], gap=0)
    rows = np.flatnonzero((seven > 0).any(1))
    seven[rows[len(rows) // 2] - 2 : rows[len(rows) // 2] + 2] = 0  # cut it in two
    assert len(digits.segment(seven)) == 1
