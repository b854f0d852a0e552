"""The reader: where the stages are composed, and the only place.

    picture -> image.to_gray -> paper.prepare -> detector.find -> pooling -> layout -> results

`Reader.read_digit`, `read_number` and `read_numbers` are what the CLI, the server and the
benchmarks call. The network runs on ONNX Runtime (the packaged reader, or a run folder's
export); a Keras model file is run by Keras.
"""

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mnist_cnn.errors import ImageError, MnistCnnError
from mnist_cnn.reading import crops, detector, layout, paper, pooling, results
from mnist_cnn.reading.detector import CLASSES, DIGITS, Detection
from mnist_cnn.reading.geometry import Box
from mnist_cnn.reading.image import to_gray
from mnist_cnn.reading.results import MIN_CONFIDENCE, Digit, Mark, Number, Page

READER_FILE = "reader.onnx"  # the network, as a run folder and the package hold it


NETWORK_FILE = "reader.keras"  # the packaged reader's Keras network: what fine-tuning starts from


def packaged() -> Path:
    """The reader that ships inside the package (its ONNX export)."""
    return Path(str(resources.files("mnist_cnn") / "default" / READER_FILE))


def packaged_network() -> Path:
    """The packaged reader's Keras network, which `finetune --fields` starts from."""
    return packaged().with_name(NETWORK_FILE)


def exported(model: str | Path) -> Path:
    """Where a reader's ONNX export sits: a run folder's, or the one beside a .keras network
    (the packaged one's); else the model itself."""
    path = Path(model)
    beside = (path if path.is_dir() else path.parent) / READER_FILE
    return beside if beside.is_file() else path


def reader_path(model: str | Path | None = None) -> Path:
    """The file a reader's network is loaded from: the packaged .onnx, a run folder's
    READER_FILE, else `model` itself (an .onnx or .keras file)."""
    path = Path(model) if model is not None else packaged()
    return path / READER_FILE if path.is_dir() else path


def load(model: str | Path | None = None, threads: int = 0) -> detector.Cells:
    """The network as a function from a page's raw pixels to its cells: an .onnx file (or a run
    folder holding READER_FILE) on ONNX Runtime, a .keras file on Keras."""
    path = reader_path(model)
    if not path.is_file():
        raise MnistCnnError(f"no reader at {path}: give an .onnx file or a reader's run folder")
    if path.suffix == ".keras":
        from mnist_cnn import models

        network = models.load(path)
        return lambda x: np.asarray(network.predict_on_batch(x))
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # a runtime's own error on a damaged or foreign file
        why = f"{type(err).__name__}: {err}".splitlines()[0][:160]
        raise MnistCnnError(f"cannot load {path} as a reader ({why})") from None
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: np.asarray(x, np.float32)})[0]


def is_reader(model: str | Path) -> bool:
    """Whether a model file or run folder is a reader (pages in), not an MNIST classifier
    (28x28 digits in): a run folder holding READER_FILE, an .onnx whose output has cells, or a
    .keras model named "reader"."""
    path = Path(model)
    if path.is_dir():
        return (path / READER_FILE).is_file()
    if path.suffix == ".onnx" and path.is_file():
        try:
            import onnxruntime as ort

            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            return len(session.get_outputs()[0].shape) == 4
        except Exception:  # not a model ONNX Runtime can load: load() says why
            return False
    if path.suffix == ".keras" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            try:
                config = json.loads(archive.read("config.json"))
            except (KeyError, ValueError):
                return False
        return config.get("config", {}).get("name") == "reader"
    return False


def reader_for(model: str | Path | None = None, engine: str = "auto", **options: Any) -> "Reader":
    """A Reader for whatever `model` is: None the packaged reader, a reader (`is_reader`), or an
    MNIST classifier (a .keras file, run folder or exported model), which then reads each
    digit the packaged reader finds. `options` go to Reader."""
    if model is None or is_reader(model):
        return Reader(model, **options)
    from mnist_cnn import engines

    return Reader(None, classify=engines.classifier(model, engine), pool=False, **options)


@dataclass(frozen=True)
class Seen:
    """What the stages before the layout made of a picture: its gray levels, its paper, and
    what the network found (boxes in the paper's pixels)."""

    gray: np.ndarray
    paper: paper.Paper
    found: list[Detection]


class Reader:
    """Reads digits and numbers from pictures: a path, a file's bytes, a PIL image or an array.

    `model`: an .onnx or .keras file or a reader's run folder (None: the packaged reader).
    `min_confidence`: a digit read with less probability is answered unsure (None).
    `decimal_comma`: whether a comma in a number is its decimal mark (see `layout.value`).
    `classify`: an MNIST classifier (28x28x1 raw pixels in, 10 probabilities out, as
    `engines.classifier` makes one) that reads each digit the network found, from its 28x28:
    alone, unless a `pool` is given (None: the packaged classifier, where the reader pools).
    `pool`: how the network's and the classifier's readings of a digit make one
    (`pooling.Pool`); True: the reader's own (`pooling.FILE` beside `model`'s network, as the
    packaged reader has; none where `cells` or `classify` is given, whose pool `model`'s
    file does not know), False: no pooling.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        min_confidence: float = MIN_CONFIDENCE,
        decimal_comma: bool | None = None,
        threads: int = 0,
        cells: detector.Cells | None = None,
        classify: Callable[[np.ndarray], np.ndarray] | None = None,
        pool: pooling.Pool | bool = True,
    ) -> None:
        self.cells = cells or load(model, threads)
        self.min_confidence, self.decimal_comma = min_confidence, decimal_comma
        if pool is True:
            mine = cells is None and classify is None
            pool = pooling.beside(reader_path(model)) if mine else None
        self.pool = pool or None
        if self.pool is not None and classify is None:
            from mnist_cnn import engines

            classify = engines.classifier(None, threads=threads)
        self.classify = classify

    def see(self, image: "str | Path | bytes | np.ndarray") -> Seen:
        """The picture's paper and what the network found on it."""
        gray = to_gray(image)
        prepared = paper.prepare(gray)
        return Seen(gray, prepared, detector.find(self.cells, prepared.ink))

    def read_digit(self, image, inputs: bool = False) -> Digit:
        """The one digit in `image`: of the digits found, the largest. The picture is known to
        hold a digit, so a faint one (heat down to detector.ONE_DIGIT) is taken too."""
        seen = self.see(image)
        digits = [d for d in seen.found if d.is_digit]
        if not digits:
            faint = detector.find(self.cells, seen.paper.ink, detector.ONE_DIGIT)
            seen = Seen(seen.gray, seen.paper, faint)
            digits = [d for d in faint if d.is_digit]
        if not digits:
            raise ImageError("no digit found: the picture is blank, or holds no digit")
        main = max(digits, key=lambda d: (d.box.width * d.box.height) * d.found)
        return self._digits([main], seen, inputs)[0]

    def read_number(self, image, inputs: bool = False) -> Number:
        """The number written in a row in `image`: its digits and marks, in order."""
        seen = self.see(image)
        turn = layout.angle(seen.found)
        row = _in_order(seen.found, turn)
        if not any(d.is_digit for d in row):
            raise ImageError("no digits found: the picture is blank, or holds no number")
        read = self._digits([d for d in row if d.is_digit], seen, inputs)
        return self._number(row, read, seen, turn, whole=True)

    def read_numbers(self, image, inputs: bool = False) -> Page:
        """Every number on a page in `image`: lines top to bottom, numbers left to right."""
        seen = self.see(image)
        turn = layout.angle(seen.found)
        found = layout.lines(seen.found, turn)
        if not found:
            raise ImageError("no digits found: the picture is blank, or holds no number")
        # the page's digits read at once, then handed out number by number, in the same order
        digits = [d for line in found for n in line.numbers for d in n if d.is_digit]
        read = iter(self._digits(digits, seen, inputs))
        lines = [
            [
                self._number(n, [next(read) for d in n if d.is_digit], seen, turn)
                for n in line.numbers
            ]
            for line in found
        ]
        columns = layout.table([[n.box for n in line] for line in lines])
        return Page(lines, columns, _sheet(seen), _size(seen))

    # -------------------------------------------------------------- the results

    def _digits(self, found: list[Detection], seen: Seen, inputs: bool) -> list[Digit]:
        """Each found digit as read: by the network, by `classify` from its 28x28, or by
        both, pooled."""
        wanted = inputs or self.classify is not None
        shapes = [crops.as_mnist(seen.paper.ink, d.box) if wanted else None for d in found]
        probs = [d.probabilities[:DIGITS] for d in found]
        if self.classify is not None and found:
            alone = self.classify(np.stack(shapes)[..., None])
            probs = alone if self.pool is None else self.pool(np.stack(probs), alone)
        return [
            results.digit(
                p, self.min_confidence, seen.paper.box_in_photo(d.box), s if inputs else None
            )
            for d, p, s in zip(found, probs, shapes, strict=True)
        ]

    def _number(
        self, row: list[Detection], read: list[Digit], seen: Seen, turn: float, whole: bool = False
    ) -> Number:
        """The number `row` holds, its digits (in order) as `_digits` read them."""
        taken = iter(read)
        digits, marks, texts = [], [], []
        for d in row:
            if d.is_digit:
                digit = next(taken)
                digits.append(digit)
                texts.append("?" if digit.unsure else str(digit.digit))
            else:
                share = float(d.probabilities[CLASSES.index(d.kind)])
                marks.append(Mark(d.kind, seen.paper.box_in_photo(d.box), round(share, 6)))
                texts.append(d.kind)
        written = layout.text(row, texts, turn)
        return Number(
            written,
            layout.value(written, self.decimal_comma),
            digits,
            marks,
            _sheet(seen) if whole else None,
            _size(seen) if whole else None,
        )


def _in_order(found: list[Detection], turn: float) -> list[Detection]:
    """Every detection in reading order along the writing's direction."""
    return [d for _, _, d in sorted(layout.along(found, turn), key=lambda t: t[0])]


def _sheet(seen: Seen) -> list[list[float]] | None:
    return None if seen.paper.sheet is None else np.round(seen.paper.sheet, 1).tolist()


def _size(seen: Seen) -> tuple[int, int]:
    return (int(seen.gray.shape[1]), int(seen.gray.shape[0]))


__all__ = ["MIN_CONFIDENCE", "Box", "Reader", "load", "packaged"]
