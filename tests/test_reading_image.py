"""reading/image.py: any picture a user hands the reader, as gray levels, within bounds."""

import io
import resource

import numpy as np
import pytest
from PIL import Image

from mnist_cnn.errors import ImageError
from mnist_cnn.reading import image


def encoded(array: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, fmt, **kw)
    return out.getvalue()


def page() -> np.ndarray:
    """Dark strokes on white paper, 120x200."""
    p = np.full((120, 200), 250, np.uint8)
    p[30:90, 50:60] = 20
    p[30:40, 50:120] = 20
    return p


@pytest.mark.parametrize("source", ["path", "bytes", "pil", "array", "array01", "rgb"])
def test_every_kind_of_source_reads_as_the_same_gray_levels(source, tmp_path):
    p = page()
    (tmp_path / "p.png").write_bytes(encoded(p))
    given = {
        "path": tmp_path / "p.png",
        "bytes": encoded(p),
        "pil": Image.fromarray(p),
        "array": p.astype(np.float32),
        "array01": p.astype(np.float32) / 255,
        "rgb": Image.fromarray(np.stack([p] * 3, -1)),
    }[source]
    gray = image.to_gray(given)
    assert gray.dtype == np.float32 and gray.shape == p.shape
    assert np.abs(gray - p).max() <= 1.0


def test_transparent_png_is_ink_on_white(tmp_path):
    rgba = np.zeros((60, 60, 4), np.uint8)
    rgba[20:40, 20:40, 3] = 255  # black ink only where alpha is set; transparent elsewhere
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    gray = image.read_image(tmp_path / "t.png")
    assert gray[0, 0] == 255 and gray[30, 30] == 0


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

    monkeypatch.setattr(image.Image, "open", lambda path: Broken())
    with pytest.raises(ImageError, match=r"damaged or truncated image .*EOFError"):
        image.read_image(b"anything")


@pytest.mark.parametrize(
    "data, message",
    [(b"", "empty"), (b"not an image at all", "not an image"), (encoded(page())[:60], "damaged")],
)
def test_bad_files_are_one_clear_error(data, message):
    with pytest.raises(ImageError, match=message):
        image.read_image(data)


def test_a_missing_file_is_an_image_error(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        image.read_image(tmp_path / "nope.png")


def test_a_huge_image_is_refused_before_it_is_decoded():
    big = np.ones((7000, 7000), bool)
    big[3000:3100, 3000:3100] = False
    data = encoded(big)  # a 7000x7000 1-bit PNG: tens of KB
    assert len(data) < 200_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageError, match=r"too large|too many pixels"):
        image.read_image(data)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 100


def test_reading_leaves_pillows_pixel_limit_as_the_host_set_it():
    before = Image.MAX_IMAGE_PIXELS
    image.read_image(encoded(page()))
    assert before == Image.MAX_IMAGE_PIXELS


def test_big_pictures_and_arrays_are_shrunk_before_the_float_work():
    big = np.asarray(Image.fromarray(page()).resize((3000, 1800)))
    assert max(image.read_image(encoded(big, "JPEG", quality=90)).shape) <= image.MAX_SIDE
    assert max(image.to_gray(big.astype(np.float32)).shape) <= image.MAX_SIDE


@pytest.mark.parametrize("kind", ["png16", "tiff32", "tiff-float"])
def test_deep_images_read_like_8_bit_ones(kind):
    p = page().astype(np.float64)
    if kind == "png16":
        data = encoded((p * 257).astype(np.uint16))
    elif kind == "tiff32":
        data = encoded((p * 1_000_000).astype(np.int32), "TIFF")
    else:
        data = encoded(p.astype(np.float32) / 255, "TIFF")
    gray = image.read_image(data)
    assert np.corrcoef(gray.ravel(), p.ravel())[0, 1] > 0.99


def test_nan_and_infinities_are_refused_or_read_cleanly():
    p = page().astype(np.float32)
    p[:5, :5] = np.nan
    p[-3:, -3:] = np.inf
    assert np.isfinite(image.read_image(encoded(p, "TIFF"))).all()
    with pytest.raises(ImageError, match="NaN"):
        image.to_gray(p)


@pytest.mark.parametrize("shape", [(3, 4, 5), (0, 10), (10,), ()])
def test_arrays_that_are_no_picture_are_refused(shape):
    with pytest.raises(ImageError, match="not an image"):
        image.to_gray(np.zeros(shape, np.float32))
