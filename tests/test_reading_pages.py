"""reading/pages.py and reading/training.py: the generated pages the reader learns from, and
what the network is asked to answer for them."""

import json

import numpy as np
import pytest
from PIL import Image

from mnist_cnn import data
from mnist_cnn.reading import network, pages, training
from mnist_cnn.reading.detector import CLASSES, STRIDE


@pytest.fixture(scope="module")
def writers(mnist_dir):
    (x, y), _ = data.load_arrays(mnist_dir)
    return pages.Writers(x[:3000, ..., 0], y[:3000])


def test_a_seed_gives_the_same_page(writers):
    a = pages.scene(np.random.default_rng([4, 2]), writers)
    b = pages.scene(np.random.default_rng([4, 2]), writers)
    c = pages.scene(np.random.default_rng([4, 3]), writers)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.image, c.image)


def test_pages_hold_boxed_digits_and_marks_inside_the_page(writers):
    h, w = pages.SIZE
    kinds = set()
    for i in range(60):
        s = pages.scene(np.random.default_rng([0, i]), writers)
        assert s.image.shape == pages.SIZE and s.image.dtype == np.uint8
        assert s.photo.shape == (*pages.SIZE, 3)
        assert len(s.boxes) == len(s.classes)
        if len(s.boxes):
            assert (s.boxes[:, :2] >= 0).all() and (s.boxes[:, 2] <= w).all()
            assert (s.boxes[:, 3] <= h).all()
            assert (s.boxes[:, 2:] > s.boxes[:, :2]).all()
        kinds |= {CLASSES[c] for c in s.classes}
        for (x0, y0, x1, y1), c in zip(s.boxes.astype(int), s.classes, strict=True):
            if c < 10 and (y1 - y0) >= 12:  # a digit's box holds ink, as the network sees it
                assert s.image[y0:y1, x0:x1].max() > 80
    assert set("0123456789") <= kinds and {".", ",", "-"} & kinds


@pytest.mark.parametrize("kind", [".", ",", "-", "="])
def test_marks_are_small_beside_a_digit(kind):
    rng = np.random.default_rng(1)
    ink = pages.mark(kind, rng, 40, 3)
    assert ink.max() > 0.9
    if kind in ".,":
        assert max(ink.shape) < 25
    else:
        assert ink.shape[1] > ink.shape[0]


def test_numbers_are_written_as_people_write_them():
    rng = np.random.default_rng(0)
    made = [pages.number_text(rng) for _ in range(400)]
    assert all(any(c.isdigit() for c in t) for t in made)
    for mark in ".,- =":
        assert any(mark in t for t in made)


def test_targets_mark_each_centre_with_its_class_and_box():
    boxes = np.array([[10, 20, 30, 60], [40, 50, 46, 56]], np.float32)
    t = network.targets(boxes, np.array([7, CLASSES.index(".")]), pages.SIZE)
    assert t.shape == (pages.SIZE[0] // STRIDE, pages.SIZE[1] // STRIDE, network.TARGETS)
    centres = np.argwhere(t[..., 3] == 1)
    assert sorted(map(tuple, centres)) == [(10, 5), (13, 10)]
    assert t[10, 5, 0] == 1 and t[10, 5, 1] == 7
    assert np.exp(t[10, 5, 7]) * STRIDE == pytest.approx(40)  # the box's height
    assert t[13, 10, 1] == CLASSES.index(".")


def test_generated_pages_are_the_same_in_any_number_of_processes(mnist_dir):
    one = training.generate(8, 3, "train", str(mnist_dir), processes=1)
    two = training.generate(8, 3, "train", str(mnist_dir), processes=2)
    assert np.array_equal(one.images, two.images) and np.array_equal(one.boxes, two.boxes)
    assert len(one.starts) == 9 and one.starts[-1] == len(one.boxes)


def test_batches_follow_the_seed_and_the_epoch(mnist_dir):
    made = training.generate(12, 0, "train", str(mnist_dir), processes=1)
    a, b = training.Batches(made, 4, seed=1), training.Batches(made, 4, seed=1)
    x, y = a[0]
    assert x.shape == (4, *pages.SIZE, 1) and y.shape[-1] == network.TARGETS
    assert np.array_equal(x, b[0][0])
    first = a[0][0]
    a.set_epoch(1)
    assert not np.array_equal(first, a[0][0])


def field_folder(tmp_path, writers):
    """A folder of two labelled fields with boxes, drawn from generated pages."""
    labels = {}
    for i in range(2):
        s = pages.scene(np.random.default_rng([9, i]), writers)
        while not (s.classes < 10).any():
            s = pages.scene(np.random.default_rng([9, i, len(labels) + 7]), writers)
        keep = s.classes < 10
        Image.fromarray(s.photo).save(tmp_path / f"f{i}.png")
        boxes = [
            [int(a), int(b), int(c - a), int(d - b), int(k)]
            for (a, b, c, d), k in zip(s.boxes[keep], s.classes[keep], strict=True)
        ]
        order = np.argsort(s.boxes[keep][:, 0])
        digits = "".join(str(s.classes[keep][k]) for k in order)
        labels[f"f{i}.png"] = {"digits": digits, "boxes": boxes}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    return tmp_path


def test_fields_with_boxes_become_pages(tmp_path, writers):
    folder = field_folder(tmp_path, writers)
    made, skipped = training.fields(folder)
    assert len(made) == 2 and skipped == 0
    assert made.images.shape[1:] == pages.SIZE
    boxes, classes = made.labels(0)
    label = json.loads((folder / "labels.json").read_text())["f0.png"]
    assert sorted(classes) == sorted(int(d) for d in label["digits"])
    assert np.median(boxes[:, 3] - boxes[:, 1]) == pytest.approx(training.FIELD_HEIGHT, rel=0.05)


def test_a_folder_without_labels_is_one_clear_error(tmp_path):
    from mnist_cnn.errors import MnistCnnError

    with pytest.raises(MnistCnnError, match=r"labels\.json"):
        training.fields(tmp_path)
    (tmp_path / "labels.json").write_text('{"a.png": {"text": "no digits"}}')
    with pytest.raises(MnistCnnError, match="no text with digits"):
        training.fields(tmp_path)
