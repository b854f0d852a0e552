"""Reading digits from real image files: make each one look like MNIST, then ask the model.

A model that scores 99% on MNIST is wrong on a phone photo because the photo is not MNIST:
dark ink on light paper, the digit anywhere and any size, grey paper, specks. `normalise`
redoes what MNIST's makers did to every digit: white ink on black, background removed, the
ink's bounding box scaled so its longer side is 20 px (anti-aliased, aspect kept), and pasted
into 28x28 with its centre of mass in the middle.
"""

import io
import json
import tempfile
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from mnist_cnn.errors import MnistCnnError

BOX = 20  # MNIST's digits fit a 20x20 box ...
SIZE = 28  # ... centred by mass in 28x28
MAX_PIXELS = 50_000_000  # larger images are refused; Pillow itself stops bombs at twice this
MIN_CONTRAST = 32  # ink must differ from the paper by this much (0-255) to count as ink
STROKE = 2.2  # MNIST's typical stroke width in the 20 px box, pixels
MIN_CONFIDENCE = 0.95  # default "unsure" threshold: 1% of validation digits fall under it


@dataclass
class Prediction:
    """One file's answer, as printed by `mnist-cnn predict --json`."""

    file: str
    digit: int | None = None
    confidence: float | None = None
    top3: list[list[float]] = field(default_factory=list)
    error: str | None = None


Classifier = Callable[[np.ndarray], np.ndarray]


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


@dataclass
class NumberReading:
    """A whole written number, as printed by `mnist-cnn predict --number --json`."""

    file: str
    number: str | None = None  # "?" stands for a digit read with too little confidence
    digits: list[dict] = field(default_factory=list)  # digit, confidence, top3, box (x0 y0 x1 y1)
    error: str | None = None


def number_pieces(gray: np.ndarray) -> list[tuple[slice, slice, np.ndarray]]:
    """Each digit of a number written in a row, left to right: (rows, cols, its 28x28)."""
    ink = ink_of(np.asarray(gray, dtype=np.float32))
    return [(rows, cols, _to_mnist(piece)) for rows, cols, piece in segment(ink)]


def number_answer(
    pieces: list[tuple[slice, slice, np.ndarray]], probs: np.ndarray, min_confidence: float = 0.0
) -> tuple[str, list[dict]]:
    """The string and one answer per digit (digit, confidence, top3, box x0 y0 x1 y1)."""
    digits = []
    for p, (rows, cols, _) in zip(probs, pieces, strict=True):
        found = answer(p, min_confidence)
        digits.append(
            {
                "digit": found.digit,
                "confidence": found.confidence,
                "top3": found.top3,
                "box": [cols.start, rows.start, cols.stop, rows.stop],
            }
        )
    text = "".join(str(d["digit"]) if d["digit"] is not None else "?" for d in digits)
    return text, digits


def read_number(
    gray: np.ndarray, classify: Classifier, min_confidence: float = 0.0
) -> tuple[str, list[dict]]:
    """The digits of a number written in a row: (string, one answer per digit)."""
    pieces = number_pieces(gray)
    probs = classify(np.stack([seen for _, _, seen in pieces])[..., None])
    return number_answer(pieces, probs, min_confidence)


def default_model() -> Path:
    """The model that ships inside the package: what predict and serve use unless told."""
    return Path(str(resources.files("mnist_cnn") / "default" / "model.keras"))


ENGINES = ("keras", "onnx", "int8")


def classifier(
    model_path: str | Path | None = None, engine: str = "keras", threads: int = 0
) -> Classifier:
    """Raw 28x28x1 batches to probabilities, from a .keras model or an exported one.

    engine="onnx" runs a .keras model on ONNX Runtime: it is exported once, to a temporary
    file, when the classifier is made. engine="int8" quantizes it too, calibrated on MNIST
    training images (the packaged model ships already quantized, so it needs no data).
    `threads` caps ONNX Runtime's and LiteRT's threads (0: theirs to choose); Keras on
    TensorFlow takes TF_NUM_INTRAOP_THREADS from the environment instead.
    """
    path = Path(model_path) if model_path is not None else default_model()
    if engine not in ENGINES:
        raise MnistCnnError(f"unknown engine {engine!r}: use {' or '.join(ENGINES)}")
    from mnist_cnn import export, models

    if path.suffix in (".onnx", ".tflite"):
        return export.load_exported(path, threads)
    shipped = default_model().with_name("model-int8.onnx")
    if engine == "int8" and path.resolve() == default_model().resolve() and shipped.exists():
        return export.load_exported(shipped, threads)
    model = models.load(path)
    if engine in ("onnx", "int8"):
        fmt = {"onnx": "onnx", "int8": "onnx-int8"}[engine]
        calibration = export.calibration_images() if engine == "int8" else None
        out = Path(tempfile.mkdtemp(prefix="mnist-cnn-onnx-")) / "model.onnx"
        return export.load_exported(export.export(model, fmt, out, calibration), threads)
    # the compiled predict step: 3-8x faster than calling the model eagerly on small batches
    return lambda x: np.asarray(model.predict_on_batch(np.asarray(x, np.float32)))


def predict_files(
    paths: Iterable[str | Path],
    classify: Classifier,
    min_confidence: float = 0.0,
    show_input: str | Path | None = None,
) -> list[Prediction]:
    """Normalise and classify each file; a bad file gets its error and the rest go on."""
    results, batch = [], []
    for path in paths:
        result = Prediction(file=str(path))
        results.append(result)
        try:
            digit = normalise(read_image(path))
        except ImageError as err:
            result.error = str(err)  # the path is in result.file
            continue
        batch.append((result, digit))
        if show_input is not None:
            _save_input(digit, Path(show_input), Path(path))
    if batch:
        probs = classify(np.stack([d for _, d in batch])[..., None])
        for (result, _), p in zip(batch, probs, strict=True):
            answer(p, min_confidence, result)
    return results


def answer(
    p: np.ndarray, min_confidence: float = 0.0, result: Prediction | None = None
) -> Prediction:
    """The top digit (None when its probability is below min_confidence) and the top 3."""
    result = result or Prediction(file="")
    order = np.argsort(p)[::-1][:3]
    result.confidence = round(float(p[order[0]]), 6)
    result.top3 = [[int(d), round(float(p[d]), 6)] for d in order]
    result.digit = int(order[0]) if result.confidence >= min_confidence else None
    return result


def read_number_files(
    paths: Iterable[str | Path], classify: Classifier, min_confidence: float = 0.0
) -> list[NumberReading]:
    """`read_number` for each file; a bad file gets its error and the rest go on."""
    results = []
    for path in paths:
        result = NumberReading(file=str(path))
        results.append(result)
        try:
            result.number, result.digits = read_number(read_image(path), classify, min_confidence)
        except ImageError as err:
            result.error = str(err)  # the path is in result.file
    return results


def _save_input(digit: np.ndarray, folder: Path, source: Path) -> None:
    from mnist_cnn import artifacts

    artifacts.prepare_dir(folder)
    image = Image.fromarray(digit.round().astype(np.uint8))
    artifacts.write_with(folder / f"{source.stem}.png", lambda tmp: image.save(tmp, "PNG"))


def as_json(results: list[Prediction] | list[NumberReading]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2)


def as_table(results: list[Prediction] | list[NumberReading]) -> str:
    lines = []
    for r in results:
        if r.error:
            lines.append(f"{r.file}: error: {r.error}")
        elif isinstance(r, NumberReading):
            confidences = " ".join(f"{d['confidence']:.2f}" for d in r.digits)
            lines.append(f"{r.file}: {r.number}  (per-digit confidence {confidences})")
        else:
            top = "  ".join(f"{d}:{p:.3f}" for d, p in r.top3)
            answer = r.digit if r.digit is not None else "unsure"
            lines.append(f"{r.file}: {answer}  (confidence {r.confidence:.3f}; top 3 {top})")
    return "\n".join(lines)
