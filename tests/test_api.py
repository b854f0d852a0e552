"""The top-level Python API: read_digit, read_number, read_numbers and Reader, light and
forgiving."""

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import paper
from PIL import Image

import mnist_cnn
from mnist_cnn.errors import MnistCnnError
from mnist_cnn.reading import results


def test_every_kind_of_image_reads_the_same(test_digits, tmp_path):
    x, y = test_digits
    page = paper(x[0])
    path = tmp_path / "d.png"
    Image.fromarray(page).save(path)
    answers = [
        mnist_cnn.read_digit(path),
        mnist_cnn.read_digit(str(path)),
        mnist_cnn.read_digit(path.read_bytes()),
        mnist_cnn.read_digit(Image.fromarray(page)),
        mnist_cnn.read_digit(page),
        mnist_cnn.read_digit(page.astype(np.float32) / 255),  # 0-1 floats
        mnist_cnn.read_digit(page[..., None]),  # (H, W, 1)
    ]
    assert {a.digit for a in answers} == {int(y[0])}
    a = answers[0]
    assert isinstance(a, results.Digit) and not a.unsure and a.confidence > 0.9
    assert len(a.top3) == 3 and a.top3[0][0] == a.digit


def test_read_number_gives_the_text_and_each_digit(test_digits):
    x, y = test_digits
    x, y = x[4:8], y[4:8]  # "4149" (the thin 1 of "7210" is missed: docs/reading.md, Limits)
    row = np.full((160, 600), 255, np.uint8)
    for i in range(4):
        big = np.asarray(Image.fromarray(x[i].astype(np.uint8)).resize((112, 112)))
        row[20:132, 20 + 140 * i : 132 + 140 * i] = np.minimum(
            row[20:132, 20 + 140 * i : 132 + 140 * i], 255 - big
        )
    number = mnist_cnn.read_number(row)
    assert number.text == "".join(map(str, y[:4]))
    assert [d.box.x0 for d in number.digits] == sorted(d.box.x0 for d in number.digits)


@pytest.mark.parametrize("bad", [np.zeros((3, 3, 3)), np.full((20, 20), np.nan), "nothing.png"])
def test_bad_input_is_one_image_error(bad):
    with pytest.raises(MnistCnnError):
        mnist_cnn.read_digit(bad)


def test_reading_imports_neither_tensorflow_nor_keras(test_digits, tmp_path):
    x, _ = test_digits
    path = tmp_path / "d.png"
    Image.fromarray(paper(x[1])).save(path)
    code = (
        "import sys, mnist_cnn\n"
        f"answer = mnist_cnn.read_digit({str(path)!r})\n"
        "number = mnist_cnn.read_number(open(" + repr(str(path)) + ", 'rb').read())\n"
        "page = mnist_cnn.read_numbers(" + repr(str(path)) + ")\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(answer.digit)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().isdigit()


def test_a_reader_with_a_classifier_of_ones_own(small_run, test_digits):
    from mnist_cnn.reading.predictor import reader_for

    x, y = test_digits
    reader = reader_for(small_run[0], min_confidence=0.0)
    assert reader.classify is not None
    answers = [reader.read_digit(paper(d)).digit for d in x[:20]]
    assert sum(a == t for a, t in zip(answers, y[:20], strict=True)) >= 17
    assert not any(reader.read_digit(paper(d)).unsure for d in x[:5])  # threshold 0


def test_importing_plots_forces_no_matplotlib_backend():
    code = (
        "import matplotlib\n"
        "before = matplotlib.rcParams._get_backend_or_none()\n"
        "import mnist_cnn.plots, mnist_cnn.train\n"
        "assert matplotlib.rcParams._get_backend_or_none() == before, before\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_notebook_page_runs(mnist_dir, tmp_path, monkeypatch):
    """docs/notebook.md, every code block in order, as a notebook would run it."""
    import re

    text = (Path(__file__).parents[1] / "docs" / "notebook.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)  # its runs/ folder lands here
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/notebook.md", "exec"), namespace)
    assert namespace["result"].metrics["test_accuracy"] > 0.9
    assert type(namespace["wrong"]).__name__ == "Figure"
    buf = io.BytesIO()
    namespace["wrong"].savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"


def test_reading_changes_nothing_process_wide(test_digits, tmp_path):
    """A library leaves its host as it found it: OpenCV's threads, Pillow's pixel limit and
    the umask are the host's before and after `import mnist_cnn` and a reading."""
    x, _ = test_digits
    path = tmp_path / "d.png"
    Image.fromarray(paper(x[1])).save(path)
    code = (
        "import os, cv2, PIL.Image\n"
        "cv2.setNumThreads(3); os.umask(0o027); PIL.Image.MAX_IMAGE_PIXELS = 123_456_789\n"
        "import mnist_cnn\n"
        f"mnist_cnn.read_digit({str(path)!r}); mnist_cnn.read_numbers({str(path)!r})\n"
        "from mnist_cnn import artifacts\n"
        f"artifacts.write_json({str(tmp_path / 'out.json')!r}, {{}})\n"
        "now = (cv2.getNumThreads(), os.umask(0o027), PIL.Image.MAX_IMAGE_PIXELS)\n"
        "assert now == (3, 0o027, 123_456_789), now\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == 0o640  # 0666 less the umask
