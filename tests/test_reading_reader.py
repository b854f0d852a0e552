"""The packaged reader (reading/predictor.py) on pictures it was never trained on: generated
pages of held-out writers, each mark, touching digits, security backgrounds, squared paper,
and a few real files from ../shared/data/real."""

import contextlib
import json

import cv2
import numpy as np
import pytest
from helpers import number_photo, page_photo

from mnist_cnn import data
from mnist_cnn.errors import ImageError
from mnist_cnn.reading import pages, predictor, training


@pytest.fixture(scope="module")
def reader():
    return predictor.Reader()


@pytest.fixture(scope="module")
def held_out(mnist_dir):
    """Writers the reader never saw: MNIST's test digits, the held-out fonts and styles."""
    _, (x, y) = data.load_arrays(mnist_dir)
    return pages.Writers(x[..., 0], y, "held_out")


def digits_of(text: str) -> str:
    return "".join(c for c in text if c.isdigit() or c == "?")


def test_generated_pages_of_writers_it_never_saw(reader, mnist_dir):
    """Pages drawn as the training pages are, but by other writers: the network finds nearly
    every digit and mark and reads nearly every digit right (benchmarks/real.py measures real
    handwriting)."""
    made = training.generate(60, 11, "held_out", str(mnist_dir), processes=1)
    scores = training.score(reader.cells, made)
    # 0.955, 0.947 and 0.944 on 2026-12-06
    assert scores["recall"] >= 0.93, scores
    assert scores["precision"] >= 0.92, scores
    assert scores["class_accuracy"] >= 0.92, scores


@pytest.mark.parametrize("text", ["12.50", "3,14", "-47", "-3.5", "1.250.000"])
def test_each_mark_is_read_where_it_is_written(reader, held_out, text):
    rng = np.random.default_rng([3, len(text)])
    read = [reader.read_number(number_photo(text, held_out, rng)).text for _ in range(5)]
    assert sum(r == text for r in read) >= 4, read


def test_touching_digits_are_read_one_by_one(reader, held_out):
    rng = np.random.default_rng(5)
    right = 0
    for _ in range(20):
        text = "".join(str(d) for d in rng.integers(0, 10, 4))
        got = reader.read_number(number_photo(text, held_out, rng, spacing=-0.1)).text
        right += digits_of(got) == text
    assert right >= 10  # 12 of 20 on 2026-12-07: an unsure digit is the usual miss


@pytest.mark.parametrize(("background", "least"), [("guilloche", 5), ("squared", 8)])
def test_numbers_on_a_printed_background_are_read(reader, held_out, background, least):
    """Of 12 numbers, at least `least` exact (guilloche 6, squared 9 on 2026-12-07: a dense
    guilloche can make the paper stage take the picture for light ink on dark paper)."""
    rng = np.random.default_rng([9, len(background)])
    right = 0
    for _ in range(12):
        text = "".join(str(d) for d in rng.integers(0, 10, 4))
        pen = 0.16 * 40 if background == "squared" else None  # bold digits on a grid
        got = reader.read_number(number_photo(text, held_out, rng, background, pen=pen)).text
        right += digits_of(got) == text
    assert right >= least, right


@pytest.mark.parametrize("grain", [0, 3, 6])
def test_a_blank_or_grainy_page_has_no_digit(reader, grain):
    """Blank paper photographed: its grain (std of the grey levels) is not made into ink."""
    rng = np.random.default_rng(grain)
    page = np.clip(200 + rng.normal(0, grain, (300, 400)), 0, 255).astype(np.uint8)
    with pytest.raises(ImageError, match="no digit"):
        reader.read_number(page)


def test_a_blank_page_has_no_digit(reader):
    for page in (np.full((200, 300), 240.0), np.full((28, 28), 0.0)):
        with pytest.raises(ImageError, match="no digit"):
            reader.read_number(page)


def test_a_page_of_numbers_reads_line_by_line(reader, held_out):
    lines = [["12", "345"], ["6789"]]
    page = reader.read_numbers(page_photo(lines, held_out, np.random.default_rng(2)))
    guessed = [["".join(str(d.top3[0][0]) for d in n.digits) for n in line] for line in page.lines]
    assert guessed == lines  # an unsure digit read as its likeliest
    # the page's digits go to the classifier together: one batch (the server's batcher sees
    # a page as one request), and each number gets its own digits back, in order
    calls = []
    counted = predictor.Reader(
        classify=lambda x: calls.append(len(x)) or reader.classify(x), pool=reader.pool
    )
    again = counted.read_numbers(page_photo(lines, held_out, np.random.default_rng(2)))
    assert calls == [9] and [[n.text for n in line] for line in again.lines] == [
        [n.text for n in line] for line in page.lines
    ]


# ------------------------------------------------------------------ real handwriting


def real_files(real_dir, folder: str, every: int = 1, limit: int | None = None):
    labels = json.loads((real_dir / folder / "labels.json").read_text())
    names = sorted(labels)[::every][:limit]
    return [(real_dir / folder / n, labels[n]) for n in names]


def test_real_cheque_amounts(reader, real_dir):
    """ORAND-CAR-A fields (real Uruguayan cheques): 40 of them, every 27th."""
    fields = real_files(real_dir, "orand-train", every=27, limit=40)
    exact = sum(digits_of(reader.read_number(p).text) == label["digits"] for p, label in fields)
    assert exact >= 0.4 * len(fields), f"{exact} of {len(fields)}"  # 19 of 40 on 2026-12-06


def test_real_photos_and_drawings(reader, real_dir):
    files = [
        *real_files(real_dir, "photos"),
        *real_files(real_dir, "drawn"),
        *real_files(real_dir, "nist-hsf", every=4),
    ]
    exact = 0
    for path, label in files:
        want = label.get("digits") or digits_of(label["text"])
        if label["kind"] == "single":
            got = str(reader.read_digit(path).digit)
        elif label["kind"] == "number":
            got = digits_of(reader.read_number(path).text)
        else:
            got = digits_of(reader.read_numbers(path).text)
        exact += got == want
    assert exact >= 0.6 * len(files), f"{exact} of {len(files)}"  # 25 of 36 on 2026-12-06


def test_a_real_digit_cut_out_of_a_cheque_reads_alone(reader, real_dir):
    right = total = 0
    for path, label in real_files(real_dir, "orand-train", every=54, limit=20):
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        paper = float(np.percentile(gray, 90))
        for x, y, w, h, digit in label["boxes"]:
            pad = max(w, h) // 4
            crop = np.full((h + 2 * pad, w + 2 * pad), paper, np.float32)
            part = gray[max(y, 0) : y + h, max(x, 0) : x + w]
            crop[pad : pad + part.shape[0], pad : pad + part.shape[1]] = part
            with contextlib.suppress(ImageError):  # "no digit found": a miss
                right += reader.read_digit(crop).top3[0][0] == digit
            total += 1
    assert right >= 0.8 * total, f"{right} of {total}"  # the likeliest digit: 89.4% of all 4,898


@pytest.mark.parametrize("shape", [(1024, 2), (2, 1024), (1, 600), (600, 1), (3, 3)])
def test_a_picture_thin_as_a_line_gets_an_answer_or_one_image_error(reader, shape):
    strip = np.tile(np.array([[0, 255]], np.float64), (shape[0], shape[1] // 2 or 1))
    strip = np.resize(strip, shape)
    for read in (reader.read_digit, reader.read_number, reader.read_numbers):
        with contextlib.suppress(ImageError):
            read(strip)
