"""What the reader is trained on and scored by: generated pages, a user's own labelled fields,
batches of pages with what the network should answer, and the scores a run ends with.

Pages are generated once per run, in worker processes, page i from the seed (seed, i) alone:
the same seed gives the same pages whatever the number of processes.
"""

import json
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from mnist_cnn import data
from mnist_cnn.errors import ImageError, MnistCnnError
from mnist_cnn.reading import crops, detector, pages, pooling
from mnist_cnn.reading.detector import CLASSES
from mnist_cnn.reading.geometry import Box

PAGES_PER_TASK = 250  # pages a worker makes at a time
MATCH = 0.4  # a detection is a page's digit or mark when their boxes overlap this much (IoU)
FIELD_HEIGHT = 34.0  # px: a field's digits are scaled to this height, as pages draw them


@dataclass
class Pages:
    """Pages for the network: images (N, H, W) uint8 as `paper.even` makes them, and each
    page's boxes and classes, page i's at starts[i]:starts[i + 1]."""

    images: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    starts: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def labels(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        at = slice(self.starts[i], self.starts[i + 1])
        return self.boxes[at], self.classes[at]


def _joined(parts: list[tuple[list, list, list]]) -> Pages:
    images = [im for p in parts for im in p[0]]
    boxes = [b for p in parts for b in p[1]]
    classes = [c for p in parts for c in p[2]]
    counts = [len(c) for c in classes]
    return Pages(
        np.stack(images) if images else np.zeros((0, *pages.SIZE), np.uint8),
        np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32),
        np.concatenate(classes) if classes else np.zeros(0, np.int64),
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
    )


_WRITERS: dict[str, pages.Writers] = {}


def _make(task: tuple[int, int, int, str, str | None]) -> tuple[list, list, list]:
    """Pages lo..hi of a seed, in a worker: MNIST's training digits for the training split,
    its test digits for the held-out one."""
    seed, lo, hi, split, data_dir = task
    if split not in _WRITERS:
        (x, y), (x_test, y_test) = data.load_arrays(data_dir)
        held_out = split == "held_out"
        x, y = (x_test, y_test) if held_out else (x, y)
        _WRITERS[split] = pages.Writers(x[..., 0], y, split)
    made = [pages.scene(np.random.default_rng([seed, i]), _WRITERS[split]) for i in range(lo, hi)]
    return [s.image for s in made], [s.boxes for s in made], [s.classes for s in made]


def generate(
    n: int, seed: int, split: str = "train", data_dir: str | None = None, processes: int = 0
) -> Pages:
    """n generated pages, made in `processes` worker processes (0: one per core)."""
    data.locate(data_dir)  # MNIST found (or fetched) once, before the workers look for it
    tasks = [
        (seed, lo, min(lo + PAGES_PER_TASK, n), split, data_dir)
        for lo in range(0, n, PAGES_PER_TASK)
    ]
    processes = processes or multiprocessing.cpu_count()
    if processes == 1 or len(tasks) == 1:
        return _joined([_make(t) for t in tasks])
    # spawned, not forked: the parent holds TensorFlow's threads
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return _joined(list(pool.imap(_make, tasks)))


class Batches(keras.utils.PyDataset):
    """Batches of pages and what the network should answer for them, each epoch in an order
    of its own from (seed, epoch); a share `fields_share` of each batch from `fields`."""

    def __init__(
        self,
        made: Pages,
        batch_size: int,
        seed: int,
        fields: Pages | None = None,
        fields_share: float = 0.0,
        steps: int | None = None,
    ) -> None:
        super().__init__()
        self.made, self.fields, self.seed = made, fields, seed
        self.from_fields = round(fields_share * batch_size) if fields is not None else 0
        self.batch_size = batch_size
        self.steps = steps or max(1, len(made) // (batch_size - self.from_fields))
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        rng = np.random.default_rng([self.seed, epoch])
        need = self.steps * (self.batch_size - self.from_fields)
        self.order = np.resize(rng.permutation(len(self.made)), need)
        if self.from_fields:
            self.field_order = rng.integers(0, len(self.fields), self.steps * self.from_fields)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = self.batch_size - self.from_fields
        chosen = [(self.made, i) for i in self.order[k * n : (k + 1) * n]]
        if self.from_fields:
            at = self.field_order[k * self.from_fields : (k + 1) * self.from_fields]
            chosen += [(self.fields, i) for i in at]
        x = np.stack([src.images[i] for src, i in chosen])[..., None].astype(np.float32)
        from mnist_cnn.reading import network

        y = np.stack([network.targets(*src.labels(i), src.images.shape[1:]) for src, i in chosen])
        return x, y


class EpochSync(keras.callbacks.Callback):
    """Each epoch's order, from its number: a resumed run goes on as it would have."""

    def __init__(self, batches: Batches) -> None:
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.batches.set_epoch(epoch)


# ------------------------------------------------------------------ a user's own fields


def read_labels(folder: Path) -> dict[str, dict]:
    """A folder's labels.json: file name -> {"text" or "digits", and "boxes" where known,
    each [x, y, width, height, digit]}."""
    path = folder / "labels.json"
    if not path.is_file():
        raise MnistCnnError(
            f"no {path}: a folder of fields needs labels.json, "
            '{"FILE": {"text": "12.50"}, ...} (see docs/reading.md)'
        )
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise MnistCnnError(f"{path} is not JSON: {err}") from None
    if not isinstance(found, dict) or not found:
        raise MnistCnnError(f"{path} holds no labels: expected {{file: {{text: ...}}}}")
    for name, label in found.items():
        text = label.get("digits") or label.get("text") if isinstance(label, dict) else None
        if not isinstance(text, str) or not any(c.isdigit() for c in text):
            raise MnistCnnError(f"{path}: {name!r} has no text with digits")
        digits = [int(c) for c in text if c.isdigit()]
        boxes = label.get("boxes")
        if boxes is None:
            continue
        good = isinstance(boxes, list) and all(
            isinstance(b, list)
            and len(b) == 5
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in b)
            and b[2] > 0
            and b[3] > 0
            for b in boxes
        )
        if not good or [int(b[4]) for b in boxes] != digits:
            raise MnistCnnError(
                f"{path}: {name!r} needs one box [x, y, width, height, digit] per digit of "
                f"{text!r}, left to right, each with its digit"
            )
    return found


def fields(folder: str | Path, reader=None, names: list[str] | None = None) -> tuple[Pages, int]:
    """A user's labelled fields as pages: each picture's paper evened, scaled so its digits
    are FIELD_HEIGHT px tall and laid on a training page. Digits are boxed by the labels'
    `boxes`, else by what `reader` (a `predictor.Reader`) finds, where it finds as many digits
    as the label has (its marks are kept as it found them). Returns the pages and how many
    fields were left out (no boxes, and the reader found another count)."""
    from mnist_cnn.reading import paper
    from mnist_cnn.reading.image import displayed_size, read_image

    folder = Path(folder)
    labels = read_labels(folder)
    made, skipped = [], 0
    for name in names if names is not None else sorted(labels):
        label = labels[name]
        digits = "".join(c for c in (label.get("digits") or label.get("text")) if c.isdigit())
        try:
            gray = read_image(folder / name)
            width, _ = displayed_size(folder / name)
        except ImageError as err:
            raise MnistCnnError(f"{folder / name}: {err}") from None
        ink = paper.even(gray)
        marks: list[tuple[Box, int]] = []
        if label.get("boxes"):
            f = gray.shape[1] / width  # the labels' pixels are the file's; read_image shrinks
            boxes = [Box(x, y, x + w, y + h).scaled(f) for x, y, w, h, _ in label["boxes"]]
            if reader is not None:
                marks = _marks(reader, ink)
        elif reader is not None:
            found = detector.find(reader.cells, ink)
            found_digits = sorted((d for d in found if d.is_digit), key=lambda d: d.box.cx)
            if len(found_digits) != len(digits):
                skipped += 1
                continue
            boxes = [d.box for d in found_digits]
            marks = _marks(reader, ink, found)
        else:
            skipped += 1
            continue
        made.append(_on_page(ink, boxes, [int(c) for c in digits], marks))
    return _joined([([m[0] for m in made], [m[1] for m in made], [m[2] for m in made])]), skipped


def _marks(reader, ink: np.ndarray, found=None) -> list[tuple[Box, int]]:
    found = found if found is not None else detector.find(reader.cells, ink)
    return [(d.box, CLASSES.index(d.kind)) for d in found if not d.is_digit]


def _on_page(ink: np.ndarray, boxes: list[Box], digits: list[int], marks: list) -> tuple:
    """A field's writing (and half a digit's height of paper round it) on a training page,
    its digits FIELD_HEIGHT px tall where the page has room."""
    import cv2

    from mnist_cnn.reading.geometry import union

    placed = [(b, c) for b, c in zip(boxes, digits, strict=True)] + marks
    tall = float(np.median([b.height for b in boxes]))
    around = union(b for b, _ in placed)
    x0, y0 = int(max(0, around.x0 - tall / 2)), int(max(0, around.y0 - tall / 2))
    x1 = int(min(ink.shape[1], around.x1 + tall / 2))
    y1 = int(min(ink.shape[0], around.y1 + tall / 2))
    crop = ink[y0:y1, x0:x1]
    h, w = pages.SIZE
    scale = min(FIELD_HEIGHT / max(tall, 1.0), (h - 4) / crop.shape[0], (w - 4) / crop.shape[1])
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    page = np.zeros(pages.SIZE, np.float32)
    top, left = (h - size[1]) // 2, (w - size[0]) // 2
    page[top : top + size[1], left : left + size[0]] = small
    out = [b.moved(-x0, -y0).scaled(scale).moved(left, top).clipped(w, h) for b, _ in placed]
    return (
        np.round(page * 255).astype(np.uint8),
        np.asarray([[b.x0, b.y0, b.x1, b.y1] for b in out], np.float32).reshape(-1, 4),
        np.asarray([c for _, c in placed], np.int64),
    )


# ------------------------------------------------------------------ calibration and scores


def calibrate(model: keras.Model, held: Pages, batch_size: int = 32) -> dict[str, float]:
    """A temperature for the class probabilities, fit on the held-out pages' digits and marks
    (at their centres) and folded into the class head's weights: so that a digit read with
    probability p is right about p of the time, on pages like those."""
    from mnist_cnn import calibrate as calibration
    from mnist_cnn.evaluate import ece
    from mnist_cnn.reading import network

    head = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.filters == len(CLASSES)
    ][-1]
    probs, labels = [], []
    for lo in range(0, len(held), batch_size):
        at = range(lo, min(lo + batch_size, len(held)))
        x = held.images[lo : at.stop][..., None].astype(np.float32)
        cells = np.asarray(model.predict_on_batch(x))
        for k, i in enumerate(at):
            target = network.targets(*held.labels(i), held.images.shape[1:])
            centre = target[..., 3] == 1
            logits = cells[k][centre][:, 1 : 1 + len(CLASSES)].astype(np.float64)
            e = np.exp(logits - logits.max(1, keepdims=True))
            probs.append(e / e.sum(1, keepdims=True))
            labels.append(target[..., 1][centre].astype(int))
    p, y = np.concatenate(probs), np.concatenate(labels)
    if not len(y):
        return {}
    temperature = calibration.fit_temperature(p, y)
    head.set_weights([w / temperature for w in head.get_weights()])
    return {
        "temperature": round(temperature, 4),
        "ece_before": round(float(ece(p, y)), 4),
        "ece_after": round(float(ece(calibration.scaled(p, temperature), y)), 4),
    }


def fit_pool(
    cells: detector.Cells, classify: Callable[[np.ndarray], np.ndarray], held: Pages
) -> tuple[pooling.Pool | None, dict[str, float]]:
    """The pool (`pooling.Pool`) of the network's and `classify`'s readings that fits the
    held-out pages' digits best (least cross-entropy: right often, and as sure as right), and
    how each reads those digits (on the same pages); None where the network finds none."""
    from scipy.optimize import minimize

    found, shapes, labels = [], [], []
    for i in range(len(held)):
        ink = held.images[i].astype(np.float32) / 255
        truth = [(Box(*b), c) for b, c in zip(*held.labels(i), strict=True)]
        for d in detector.cells_at(cells, ink, 1.0):
            overlaps = [d.box.overlap(box) for box, _ in truth]
            k = int(np.argmax(overlaps)) if overlaps else -1
            if d.is_digit and k >= 0 and overlaps[k] >= MATCH and truth[k][1] < detector.DIGITS:
                found.append(d.probabilities[: detector.DIGITS])
                shapes.append(crops.as_mnist(ink, d.box))
                labels.append(truth[k][1])
    if not labels:
        return None, {}
    net, alone, y = np.stack(found), np.asarray(classify(np.stack(shapes)[..., None])), labels

    def nll(w: np.ndarray) -> float:
        p = pooling.Pool(*map(float, w))(net, alone)[np.arange(len(y)), y]
        return float(-np.mean(np.log(np.maximum(p, pooling.TINY))))

    bounds = [(0.01, pooling.MOST_WEIGHT), (0.0, pooling.MOST_WEIGHT)]
    w = minimize(nll, [1.0, 1.0], method="L-BFGS-B", bounds=bounds).x
    pool = pooling.Pool(round(float(w[0]), 4), round(float(w[1]), 4))

    def right(p: np.ndarray) -> float:
        return round(float(np.mean(np.argmax(p, 1) == y)), 4)

    return pool, {
        "digits": len(y),
        "network_right": right(net),
        "classifier_right": right(alone),
        "pooled_right": right(pool(net, alone)),
        "nll_network": round(nll(np.array([1.0, 0.0])), 4),
        "nll_pooled": round(nll(np.array([pool.network, pool.classifier])), 4),
    }


def save_pool(cells: detector.Cells, held: Pages, folder: Path) -> dict[str, float]:
    """A reader's pool with the packaged classifier, fit on `held` and saved in `folder` as
    pooling.FILE (a reader's run and `train.pool_again` alike); its figures and weights, or
    {} (and no file) where the network finds no digit."""
    from mnist_cnn import engines

    pool, figures = fit_pool(cells, engines.classifier(None), held)
    if pool is None:
        return {}
    pool.save(folder / pooling.FILE)
    return {**figures, **vars(pool)}


def score(cells: detector.Cells, made: Pages) -> dict[str, float]:
    """How the network reads pages it was not trained on: the share of digits and marks it
    finds (recall), of what it finds that is there (precision), of found digits it reads
    right, and of pages it reads exactly (every digit found and right, nothing more)."""
    tp = fp = fn = right = exact = 0
    for i in range(len(made)):
        boxes, classes = made.labels(i)
        found = detector.cells_at(cells, made.images[i].astype(np.float32) / 255, 1.0)
        truth = [Box(*b) for b in boxes]
        used: set[int] = set()
        page_ok = True
        for d in found:
            ious = [d.box.overlap(t) if k not in used else 0 for k, t in enumerate(truth)]
            k = int(np.argmax(ious)) if ious else -1
            if k < 0 or ious[k] < MATCH:
                fp += 1
                page_ok = False
                continue
            used.add(k)
            tp += 1
            ok = CLASSES.index(d.kind) == classes[k]
            right += ok
            page_ok &= ok
        fn += len(truth) - len(used)
        exact += page_ok and len(used) == len(truth)
    return {
        "recall": round(tp / max(tp + fn, 1), 4),
        "precision": round(tp / max(tp + fp, 1), 4),
        "class_accuracy": round(right / max(tp, 1), 4),
        "pages_exact": round(exact / max(len(made), 1), 4),
    }
