"""Any picture of a digit in, the 28x28 an MNIST model expects out.

A model that scores 99% on MNIST is wrong on a phone photo because the photo is not MNIST:
dark ink on light paper, the digit anywhere and any size, grey paper, specks. `normalise`
redoes what MNIST's makers did to every digit: white ink on black, background removed, the
ink's bounding box scaled so its longer side is 20 px (anti-aliased, aspect kept), and pasted
into 28x28 with its centre of mass in the middle. `segment` cuts a written number into digits.
"""

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from mnist_cnn.data import SIZE
from mnist_cnn.errors import MnistCnnError

BOX = 20  # MNIST's digits fit a 20x20 box, centred by mass in SIZE x SIZE
MAX_PIXELS = 50_000_000  # larger images are refused; Pillow itself stops bombs at twice this
MIN_CONTRAST = 32  # ink must differ from the paper by this much (0-255) to count as ink
STROKE = 2.2  # MNIST's typical stroke width in the 20 px box, pixels


class ImageError(MnistCnnError):
    """A file that cannot be read as a digit: not an image, broken, too big, or blank."""


def read_image(source: str | Path | bytes) -> np.ndarray:
    """A file (or its bytes) as grayscale float32 (0-255), alpha on white, EXIF rotation applied."""
    if isinstance(source, bytes):
        if not source:
            raise ImageError("empty file (0 bytes)")
        path: Path | io.BytesIO = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError("no such file")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow warns above this, errors above twice this
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            img.seek(0)  # the first frame of a GIF, TIFF or WebP animation
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"{img.width}x{img.height} is too large; resize it")
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                rgba = img.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(white, rgba)
            return np.asarray(img.convert("L"), dtype=np.float32)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError("too many pixels (a decompression bomb?); resize it") from None
    except UnidentifiedImageError:
        known = "PNG, JPEG, BMP, GIF, TIFF, WebP"
        raise ImageError(f"not an image Pillow can read ({known})") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageError(f"damaged or truncated image ({err})") from None


def _otsu(values: np.ndarray) -> float:
    """The grey level that best splits values into two classes (Otsu's method)."""
    hist, edges = np.histogram(values, bins=256, range=(0, 256))
    weight = np.cumsum(hist)
    mean = np.cumsum(hist * edges[:-1])
    total, total_mean = weight[-1], mean[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mean * weight - mean * total) ** 2 / (weight * (total - weight))
    return float(edges[np.nanargmax(between)])


def ink_of(gray: np.ndarray) -> np.ndarray:
    """Bright ink on a black background, whatever the polarity of the picture.

    Paper is what covers the border; when the border is light the image is inverted. The
    paper's own grey is subtracted, and specks far smaller than the writing are removed.
    """
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 127:
        gray = 255 - gray
    ink = np.clip(gray - np.median(gray), 0, None)
    if ink.max() < MIN_CONTRAST:
        raise ImageError("no ink found: the image is blank or has too little contrast")
    mask = ink > max(_otsu(ink), MIN_CONTRAST / 2)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    keep = np.isin(labels, 1 + np.flatnonzero(sizes >= 0.05 * sizes.max()))
    near = ndimage.binary_dilation(keep, iterations=max(1, round(max(gray.shape) / 200)))
    return np.where(near, ink, 0).astype(np.float32)


def normalise(gray: np.ndarray) -> np.ndarray:
    """Any grayscale digit image in, the 28x28 (0-255, float32) an MNIST model expects out."""
    return _to_mnist(ink_of(np.asarray(gray, dtype=np.float32)))


def _to_mnist(ink: np.ndarray) -> np.ndarray:
    """Bright ink on black, any size: crop, thicken thin pens, scale to 20 px, centre by mass."""
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = BOX / max(ink.shape)
    # thin pen on a big page would fade to nothing at 20 px: thicken it to MNIST's stroke first
    mask = ink > 0.5 * ink.max()
    edge = mask & ~ndimage.binary_erosion(mask)
    width = 2 * mask.sum() / max(edge.sum(), 1)  # a stroke's area over half its outline
    grow = round((STROKE / scale - width) / 2)
    if grow > 0:
        ink = ndimage.grey_dilation(ink, size=(2 * grow + 1, 2 * grow + 1))
    h, w = (max(1, round(n * scale)) for n in ink.shape)
    small = np.asarray(Image.fromarray(ink).resize((w, h), Image.Resampling.LANCZOS))
    small = np.clip(small, 0, None)
    small = np.clip(small * (255 / small.max()), 0, 255)
    cy, cx = ndimage.center_of_mass(small)
    top = int(np.clip(round(SIZE / 2 - cy), 0, SIZE - h))
    left = int(np.clip(round(SIZE / 2 - cx), 0, SIZE - w))
    out = np.zeros((SIZE, SIZE), np.float32)
    out[top : top + h, left : left + w] = small
    return out


def segment(ink: np.ndarray) -> list[tuple[slice, slice, np.ndarray]]:
    """The digits of a written number, left to right: (rows, cols, that digit's ink) each.

    Connected strokes are candidate digits. Pieces that sit above one another (a 5's loose
    cap, a broken 4) are merged; a blob much wider than the writing is tall is cut where the
    ink is thinnest, since that is where two digits touch.
    """
    mask = ink > max(_otsu(ink), MIN_CONTRAST / 2)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    boxes = [[b[0].start, b[0].stop, b[1].start, b[1].stop] for b in ndimage.find_objects(labels)]
    groups = [[i + 1] for i in range(n)]
    merged = True
    while merged:  # merge groups whose columns overlap by half the narrower one
        merged = False
        for a in range(len(boxes)):
            for b in range(a + 1, len(boxes)):
                overlap = min(boxes[a][3], boxes[b][3]) - max(boxes[a][2], boxes[b][2])
                narrower = min(boxes[a][3] - boxes[a][2], boxes[b][3] - boxes[b][2])
                if overlap >= 0.5 * narrower:
                    boxes[a] = [
                        min(boxes[a][0], boxes[b][0]),
                        max(boxes[a][1], boxes[b][1]),
                        min(boxes[a][2], boxes[b][2]),
                        max(boxes[a][3], boxes[b][3]),
                    ]
                    groups[a] += groups.pop(b)
                    boxes.pop(b)
                    merged = True
                    break
            if merged:
                break
    height = np.median([b[1] - b[0] for b in boxes]) if boxes else 0
    pieces = []
    for box, group in zip(boxes, groups, strict=True):
        rows, cols = slice(box[0], box[1]), slice(box[2], box[3])
        digit_ink = np.where(np.isin(labels[rows, cols], group), ink[rows, cols], 0)
        pieces += _split_touching(rows, cols, digit_ink, height)
    pieces.sort(key=lambda p: p[1].start)
    return pieces


def _split_touching(rows: slice, cols: slice, ink: np.ndarray, height: float) -> list:
    """Cut a blob wider than ~1.2 digits at its thinnest column near where digits would meet."""
    h, w = ink.shape
    parts = max(1, round(w / (0.8 * max(height, h))))
    if parts == 1 or w < 1.2 * max(height, h):
        return [(rows, cols, ink)]
    profile = (ink > 0).sum(0)
    cut = w // parts
    window = slice(max(1, cut - w // (3 * parts)), min(w - 1, cut + w // (3 * parts)))
    cut = window.start + int(np.argmin(profile[window]))
    left = _split_touching(rows, slice(cols.start, cols.start + cut), ink[:, :cut], height)
    right = _split_touching(rows, slice(cols.start + cut, cols.stop), ink[:, cut:], height)
    return left + right


def number_pieces(gray: np.ndarray) -> list[tuple[slice, slice, np.ndarray]]:
    """Each digit of a number written in a row, left to right: (rows, cols, its 28x28)."""
    ink = ink_of(np.asarray(gray, dtype=np.float32))
    return [(rows, cols, _to_mnist(piece)) for rows, cols, piece in segment(ink)]
