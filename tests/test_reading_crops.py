"""A found digit as MNIST has its digits (reading/crops.py)."""

import numpy as np
import pytest

from mnist_cnn.errors import ImageError
from mnist_cnn.reading import crops
from mnist_cnn.reading.geometry import Box


def test_a_faint_stroke_on_grey_paper_comes_out_on_black_as_mnist_s_digits():
    """A thin grey stroke on a printed background (a cheque's guilloche): the background goes,
    the stroke is the crop's full white, its longer side 20 px, centred by its mass."""
    rng = np.random.default_rng(0)
    ink = rng.uniform(0.0, 0.08, (60, 50)).astype(np.float32)  # the background's print
    ink[10:13, 10:30] = ink[10:50, 26:30] = 0.5  # a `7`, half as dark as a pen's
    out = crops.as_mnist(ink, Box(0, 0, 50, 60))
    assert out.shape == (crops.SIZE, crops.SIZE) and out.dtype == np.float32
    assert out.max() == pytest.approx(255)
    rows, cols = np.flatnonzero(out.max(1) > 0), np.flatnonzero(out.max(0) > 0)
    assert rows[-1] - rows[0] + 1 == crops.INNER == 2 * (cols[-1] - cols[0] + 1)  # the `7` alone
    centre = [(out.sum(axis) * np.arange(28)).sum() / out.sum() for axis in (1, 0)]
    assert np.allclose(centre, 13.5, atol=1)  # by its mass, as MNIST's
    # inside the 7's box, below its bar and left of its stem, the print is gone: black
    assert not out[rows[0] + 3 :, cols[0] : cols[-1] - 2].any()


def test_a_box_off_the_picture_or_on_blank_paper_is_an_empty_digit():
    ink = np.zeros((30, 30), np.float32)
    assert not crops.as_mnist(ink, Box(0, 0, 30, 30)).any()
    ink[5:25, 10:14] = 1.0
    assert not crops.as_mnist(ink, Box(40, 40, 50, 50)).any()


def test_a_blank_picture_is_one_line_error():
    with pytest.raises(ImageError, match="no ink found"):
        crops.from_picture(np.full((40, 40), 230, np.uint8))
