"""Any picture a user hands the reader, as a grayscale array: a path, a file's bytes, a PIL
image or an array.

Decoding is bounded (at most MAX_PIXELS are decoded, JPEGs at a reduced scale, and the picture
is shrunk to MAX_SIDE before any float work), so a hostile file costs little memory, and
whatever a decoder raises on a damaged or crafted file becomes one ImageError. Nothing
process-wide is changed: Pillow's own pixel limit stays the host's.
"""

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_cnn.errors import ImageError

MAX_PIXELS = 16_000_000  # decoded at most (a 12-megapixel phone photo fits); more is refused
MAX_SIDE = 1024  # pictures are shrunk to this before any float work: writing needs no more


def displayed_size(path: Path) -> tuple[int, int]:
    """A picture file's width and height as shown (its EXIF rotation applied), read from its
    header: the pixels a user's boxes are in."""
    try:
        with Image.open(path) as img:
            turned = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # Orientation: a quarter turn
            return (img.height, img.width) if turned else (img.width, img.height)
    except Exception as err:  # the same file read_image has just read: rare
        raise ImageError(f"cannot read its size ({type(err).__name__})") from None


def read_image(source: str | Path | bytes) -> np.ndarray:
    """A file (or its bytes) as grayscale float32 (0-255), alpha on white, EXIF rotation applied.

    Decoding is bounded: at most MAX_PIXELS are decoded (JPEGs at a reduced scale), and the
    picture is shrunk to MAX_SIDE before any float work, so a hostile file costs little memory.
    Whatever a decoder raises on a damaged or crafted file becomes an ImageError.
    """
    if isinstance(source, bytes):
        if not source:
            raise ImageError("empty file (0 bytes)")
        path: Path | io.BytesIO = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError("no such file")
    try:
        img = Image.open(path)
        with img:
            img.seek(0)  # the first frame of a GIF, TIFF or WebP animation
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"{img.width}x{img.height} is too large; resize it")
            # a JPEG decodes at 1/2 to 1/8 scale, as small as keeps its longer side MAX_SIDE
            fit = min(1.0, MAX_SIDE / max(img.width, img.height, 1))
            img.draft("L", (math.ceil(img.width * fit), math.ceil(img.height * fit)))
            return _gray(ImageOps.exif_transpose(img))
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError("too many pixels (a decompression bomb?); resize it") from None
    except UnidentifiedImageError:
        known = "PNG, JPEG, BMP, GIF, TIFF, WebP"
        raise ImageError(f"not an image Pillow can read ({known})") from None
    except MemoryError:
        raise ImageError("too large to decode; resize it") from None
    except Exception as err:  # any decoder's failure on a damaged or crafted file
        why = f"{type(err).__name__}: {err}"[:120]
        raise ImageError(f"damaged or truncated image ({why})") from None


def to_gray(image: "str | Path | bytes | Image.Image | np.ndarray") -> np.ndarray:
    """A path, the bytes of a file, a PIL image or an array, as grayscale float32 (0-255)."""
    if isinstance(image, str | Path | bytes):
        return read_image(image)
    if isinstance(image, Image.Image):
        try:
            return _gray(image)
        except Exception as err:
            raise ImageError(f"cannot read this PIL image ({type(err).__name__}: {err})") from None
    return as_gray_array(image)


def _gray(img: Image.Image) -> np.ndarray:
    """Any mode as grayscale 0-255, at most MAX_SIDE on a side: transparency on white paper,
    16-bit scaled by 1/257, 32-bit integer or float stretched to the full range."""
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if img.mode.startswith("I;16"):
        img = Image.fromarray(np.asarray(img, np.float32) / 257)
    elif img.mode in ("I", "F"):
        with np.errstate(invalid="ignore"):  # NaN and infinities in a float image: ink-free
            a = np.nan_to_num(np.asarray(img, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(a.min()), float(a.max())
        img = Image.fromarray(((a - lo) * (255 / (hi - lo) if hi > lo else 0)).astype(np.float32))
    elif img.mode != "L":
        img = img.convert("L")
    if max(img.size) > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BOX)
    return np.asarray(img, np.float32)


def as_gray_array(gray: np.ndarray) -> np.ndarray:
    """A 2-D float32 image in 0-255 from any array a user may hold: (H, W) or (H, W, 1),
    0-1 floats scaled up, other ranges stretched; NaN, infinities and other shapes refused."""
    try:
        a = np.asarray(gray, dtype=np.float32)
    except (TypeError, ValueError):
        raise ImageError("not an image: expected a 2-D array of grey levels") from None
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2 or min(a.shape) < 1:
        raise ImageError(f"not an image: expected a 2-D array of grey levels, not {a.shape}")
    if not np.isfinite(a).all():
        raise ImageError("the image holds NaN or infinite values")
    if max(a.shape) > MAX_SIDE:  # as a file is: writing needs no more
        import cv2

        f = MAX_SIDE / max(a.shape)
        size = (max(1, round(a.shape[1] * f)), max(1, round(a.shape[0] * f)))
        a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 255:  # in float64: the range of a float32 picture may overflow float32
        a = ((a - np.float64(lo)) * (255 / (hi - lo))).astype(np.float32) if hi > lo else 0 * a
    elif hi <= 1.0:
        a = a * 255  # 0-1 floats
    return a
