"""Any picture of a digit to MNIST's 28x28: normalisation, polarity, cutting numbers."""

import io

import numpy as np
import pytest
from helpers import place, row_of, similarity
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from mnist_cnn import data, digits


@pytest.fixture(scope="module")
def some_digits(test_digits):
    """A handful of real MNIST test digits for the property tests."""
    return test_digits[0][:20]


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


def leaning_digit(run: int) -> np.ndarray:
    """A 1 with a loop on top (bright ink on black), its top `run` px right of its foot."""
    img = Image.new("L", (400, 400), 0)
    pen = ImageDraw.Draw(img)
    pen.line([(200 - run // 2, 380), (200 + run // 2, 20)], fill=255, width=16)
    pen.ellipse([(200 + run // 4 - 60, 40), (200 + run // 4 + 60, 160)], outline=255, width=14)
    return digits._crop(np.asarray(img, np.float32))


@pytest.mark.parametrize("run", [280, -280, 330])
def test_a_digit_leaning_further_than_mnist_is_stood_up_to_the_edge_of_its_range(run):
    ink = leaning_digit(run)
    assert abs(digits.slant(ink)) > digits.MAX_SLANT + 0.1
    upright = digits._upright(ink)
    assert digits.slant(upright) == pytest.approx(np.sign(-run) * digits.MAX_SLANT, abs=0.02)
    assert upright.shape[0] == ink.shape[0] and upright.shape[1] < ink.shape[1]
    assert abs(digits.slant(digits._to_mnist(ink))) < digits.MAX_SLANT


def test_a_digit_within_mnists_lean_is_left_as_it_is():
    ink = leaning_digit(120)
    assert abs(digits.slant(ink)) < digits.MAX_SLANT
    assert digits._upright(ink) is ink


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 80), st.integers(1, 80), st.floats(0.01, 1), st.integers(0, 2**32 - 1))
def test_any_ink_stood_upright_stays_bounded_and_normalises(h, w, density, seed):
    """Every shape is sheared (limit near 0): flat dashes, dots, noise, all stay bounded."""
    rng = np.random.default_rng(seed)
    ink = np.where(rng.random((h, w)) < density, rng.uniform(1, 255, (h, w)), 0)
    ink[rng.integers(h), rng.integers(w)] = 255  # some ink, always
    ink = digits._crop(ink.astype(np.float32))
    old = digits.MAX_SLANT
    try:
        digits.MAX_SLANT = 0.01
        upright = digits._upright(ink)
        seen = digits._to_mnist(ink)
    finally:
        digits.MAX_SLANT = old
    assert upright.shape[0] <= ink.shape[0] and upright.shape[1] <= ink.shape[1] + ink.shape[0] + 2
    assert upright.max() > 0 and seen.shape == (28, 28) and np.isfinite(seen).all()
    assert seen.min() >= 0 and seen.max() <= 255


def test_max_slant_is_where_mnists_writers_stop(mnist_dir):
    """The constant is a fact about MNIST: 95% of its training digits lean less."""
    lean = np.abs([digits.slant(x[..., 0]) for x in data.load(mnist_dir).x_train])
    assert 0.94 <= (lean < digits.MAX_SLANT).mean() <= 0.97


def test_transparent_png_is_ink_on_white(test_digits, tmp_path):
    x, _ = test_digits
    alpha = place(x[0], 4, 10, 10, False).astype(np.uint8)
    rgba = np.zeros((*alpha.shape, 4), np.uint8)
    rgba[..., 3] = alpha  # black ink only where alpha is set; transparent elsewhere
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    gray = digits.read_image(tmp_path / "t.png")
    assert gray[0, 0] == 255 and gray.min() < 50
    assert similarity(digits.normalise(gray), digits.normalise(x[0])) > 0.8


def test_touching_digits_are_split_and_broken_ones_joined(test_digits):
    from scipy import ndimage

    x, y = test_digits
    for pair, gap in (([0, 1], -14), ([3, 4], -10)):  # a 7 and a 2, a 0 and a 4: overlapping
        ink = 255 - row_of(x[pair], gap=gap)
        blobs = ndimage.label(ink > digits.otsu(ink), structure=np.ones((3, 3)))[1]
        assert blobs == 1  # the two digits touch: one connected blob
        assert len(digits.segment(ink)) == 2
    seven = 255 - row_of(x[[int(np.flatnonzero(y == 7)[0])]], gap=0)
    rows = np.flatnonzero((seven > 0).any(1))
    seven[rows[len(rows) // 2] - 2 : rows[len(rows) // 2] + 2] = 0  # cut it in two
    assert len(digits.segment(seven)) == 1


@pytest.fixture(scope="module")
def classify():
    from mnist_cnn import engines

    return engines.classifier(engine="onnx-int8")  # the packaged model, as a user reads with


def first(y, digit: int) -> int:
    return int(np.flatnonzero(y == digit)[0])


def read(ink, classify) -> list[int]:
    pieces = digits.segment(ink, classify)
    seen = np.stack([digits._to_mnist(p, digits.WIDE_DIGIT) for _, _, p in pieces])[..., None]
    return [int(d) for d in classify(seen).argmax(1)]


def test_a_digit_written_wide_is_one_digit_not_two(test_digits, classify):
    """A 2 written two and a half times as wide as tall (or widened by a tilted camera) is
    cut in two as touching digits are; read whole, scaled flat into MNIST's box, it read worse
    than its halves, and the number gained a digit. Narrowed first, the whole reads best."""
    x, y = test_digits
    wide = [np.asarray(Image.fromarray(x[first(y, 2)].astype(np.uint8)).resize((70, 28)))]
    others = [x[first(y, d)] for d in (8, 4)]
    tiles = [
        np.asarray(Image.fromarray(t).resize((4 * t.shape[1], 112)), np.float32)
        for t in [wide[0], *[o.astype(np.uint8) for o in others]]
    ]
    tiles = [t[:, t.any(0)] for t in tiles]
    ink = np.zeros((152, sum(t.shape[1] for t in tiles) + 40 * 3 + 60), np.float32)
    col = 30
    for t in tiles:
        ink[20:132, col : col + t.shape[1]] = t
        col += t.shape[1] + 40
    assert len(digits.segment(ink)) > 3  # without the model: the wide 2 is cut in parts
    assert read(ink, classify) == [2, 8, 4]


def test_the_model_settles_how_marks_form_digits(test_digits, classify):
    x, y = test_digits
    # digits written wide: the plain cut halves them by their width alone, the model keeps
    # each whole
    ink = 255 - row_of(x[[first(y, d) for d in (1, 2, 3)]], gap=12)
    wide = Image.fromarray(ink).resize((int(ink.shape[1] * 1.5), ink.shape[0]))
    ink = np.asarray(wide, np.float32)
    assert len(digits.segment(ink)) == 5
    assert read(ink, classify) == [1, 2, 3]
    # a dot between two digits is no digit (the plain cut reads it as one)
    pair = 255 - row_of(x[[first(y, 7), first(y, 4)]], gap=40)
    rows = np.flatnonzero(pair.any(1))
    cols = np.flatnonzero(pair.any(0))
    middle = (cols[0] + cols[-1]) // 2
    pair[rows[-1] - 10 : rows[-1], middle - 5 : middle + 5] = 255
    assert len(digits.segment(pair)) == 3
    assert read(pair, classify) == [7, 4]
    # two digits close together that each read well stay two
    close = 255 - row_of(x[[first(y, 1), first(y, 0)]], gap=3)
    assert read(close, classify) == [1, 0]


def test_two_small_marks_one_above_the_other_are_no_digit(test_digits, classify):
    """A speck over a point between two digits (or a colon) stays two small marks; merged
    as a 5's cap is merged with its body, the pair was as tall as half a digit and read as
    one (an unsure digit in a tilted-camera photo)."""
    x, y = test_digits
    pair = 255 - row_of(x[[first(y, 7), first(y, 4)]], gap=40)
    rows = np.flatnonzero(pair.any(1))
    cols = np.flatnonzero(pair.any(0))
    middle, height = (cols[0] + cols[-1]) // 2, rows[-1] - rows[0]
    pair[rows[0] + height // 3 : rows[0] + height // 3 + 14, middle - 6 : middle + 6] = 255
    pair[rows[-1] - 16 : rows[-1], middle - 6 : middle + 6] = 255
    assert len(digits.segment(pair)) == 4  # without the model: each mark is a piece
    assert read(pair, classify) == [7, 4]


# ------------------------------------------------------------------ hostile input


def encoded(array: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, fmt, **kw)
    return out.getvalue()


def test_any_decoder_failure_is_an_image_error(monkeypatch):
    """A file Pillow opens but then fails on with an error of its own (EOFError on seek, as a
    crafted SPIDER file does) is a bad file, not a crash."""

    class Broken:
        width = height = 10
        info = None

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def seek(self, frame):
            raise EOFError("no more images in SPIDER file")

    monkeypatch.setattr(digits.Image, "open", lambda path: Broken())
    with pytest.raises(digits.ImageError, match=r"damaged or truncated image .*EOFError"):
        digits.read_image(b"anything")


@pytest.mark.parametrize(
    "shape", [(2, 300), (1, 40), (3, 900), (4, 4960), (4960, 4), (1, 1), (60, 3000)]
)
def test_thin_shapes_read_as_a_number_or_refuse_cleanly(shape):
    page = np.full((shape[0] + 40, shape[1] + 40), 255.0, np.float32)
    page[20 : 20 + shape[0], 20 : 20 + shape[1]] = 0
    try:
        pieces = digits.number_pieces(page)
    except digits.ImageError as err:
        assert "digit" in str(err) or "ink" in str(err), err
    else:
        assert 1 <= len(pieces) <= digits.MAX_DIGITS
        assert all(seen.shape == (28, 28) for _, _, seen in pieces)


def test_many_marks_are_refused_and_merging_stays_linear():
    rng = np.random.default_rng(0)
    page = np.full((200, 2000), 255.0, np.float32)
    for r, c in zip(rng.integers(5, 190, 1000), rng.integers(5, 1990, 1000), strict=True):
        page[r : r + 2, c : c + 2] = 0  # ~1000 dots, many in stacked pairs
        page[r + 4 : r + 6, c : c + 2] = 0
    with pytest.raises(digits.ImageError, match="separate marks"):
        digits.number_pieces(page)
    few = np.full((60, 3000), 255.0, np.float32)
    for c in range(10, 2990, 24):  # 125 stacked pairs: under the cap, merged in one pass
        few[20:24, c : c + 3] = 0
        few[30:34, c : c + 3] = 0
    with pytest.raises(digits.ImageError, match="digits"):
        digits.number_pieces(few)  # 250 marks merged into 125 pieces: too many digits


def test_a_huge_image_is_refused_before_it_is_decoded():
    import resource

    page = np.ones((7000, 7000), bool)
    page[3000:3100, 3000:3100] = False
    data = encoded(page)  # a 7000x7000 1-bit PNG: tens of KB
    assert len(data) < 200_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(digits.ImageError, match=r"too large|too many pixels"):
        digits.read_image(data)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100


def test_a_big_photo_is_shrunk_before_the_float_work(test_digits):
    x, _ = test_digits
    big = np.asarray(Image.fromarray((255 - x[0]).astype(np.uint8)).resize((3000, 3000)))
    gray = digits.read_image(encoded(big, "JPEG", quality=90))
    assert max(gray.shape) <= digits.MAX_SIDE
    assert similarity(digits.normalise(gray), digits.normalise(x[0])) > 0.8


@pytest.mark.parametrize("kind", ["png16", "tiff32", "tiff-float"])
def test_deep_images_read_like_8_bit_ones(kind, test_digits):
    x, _ = test_digits
    page = 255 - place(x[3], 4, 20, 30, False)  # dark ink on white
    if kind == "png16":
        data = encoded((page * 257).astype(np.uint16))
    elif kind == "tiff32":
        data = encoded((page * 1_000_000).astype(np.int32), "TIFF")
    else:
        data = encoded(page.astype(np.float32) / 255, "TIFF")
    reference = digits.normalise(page)
    assert similarity(digits.normalise(digits.read_image(data)), reference) > 0.95


def test_a_float_image_with_nan_and_infinities_reads_or_refuses_cleanly(test_digits):
    """Found by the fuzzer: a float TIFF holding NaN made Otsu's threshold raise."""
    x, _ = test_digits
    page = (255 - place(x[5], 4, 20, 30, False)).astype(np.float32)
    page[:5, :5] = np.nan
    page[-3:, -3:] = np.inf
    gray = digits.read_image(encoded(page, "TIFF"))
    assert np.isfinite(gray).all()
    digits.number_pieces(gray)  # no ValueError
    nan_page = np.full((40, 40), np.nan, np.float32)
    with pytest.raises(digits.ImageError):
        digits.number_pieces(digits.read_image(encoded(nan_page, "TIFF")))
