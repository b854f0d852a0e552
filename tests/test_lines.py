"""Several numbers on a page: lines of writing, numbers on a line, the table they make."""

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_cnn import cli, digits, engines, lines, predict
from mnist_cnn.errors import ImageError

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import as_written
import photos


@pytest.fixture(scope="module")
def classify():
    return engines.classifier(None, "auto")  # the packaged model's int8 twin


def page_photo(rows: list[list[str]], seed: int = 0, condition: str = "white paper") -> bytes:
    rng = np.random.default_rng(seed)
    make = as_written.digit_source("mnist", rng)
    return photos.compose([as_written.page_ink(rows, make, rng)], condition, rng)


def test_numbers_split_where_the_gap_is_wide():
    digit = lambda x: (x, 0, x + 40, 100)  # noqa: E731
    row = [digit(0), digit(50), digit(300), digit(350), digit(400)]
    assert lines.split_numbers(row, [(-60, 45, -15, 55)]) == [([0, 1], [0]), ([2, 3, 4], [])]
    assert lines.split_numbers(row[:2], [(700, 80, 710, 90)]) == [([0, 1], [])]  # a lone speck


def test_columns_only_when_the_numbers_stand_in_columns():
    a, b = (0, 0, 100, 50), (300, 0, 400, 50)
    assert lines.table([[a, b], [(10, 80, 90, 130)], [b]]) == [[0, 1], [0, None], [None, 0]]
    assert lines.table([[a, b], [(50, 80, 350, 130)]]) is None  # one number spans both


def test_a_two_line_page(classify):
    """123 over 456 (before: ???) reads as two lines of one number each."""
    for seed in range(3):
        gray = digits.read_image(page_photo([["123"], ["456"]], seed))
        page = predict.read_numbers(gray, classify, 0.0)
        assert [[n.text for n in line] for line in page.lines] == [["123"], ["456"]], seed
        assert page.table() == [["123"], ["456"]] and page.columns == [[0], [0]]
        assert page.lines[0][0].digits[0].box[1] < page.lines[1][0].digits[0].box[1]


def test_a_column_of_numbers_to_csv(tmp_path, capsys):
    column = [["12.50"], ["-3"], ["0.75"], ["1024"]]
    path = tmp_path / "column.jpg"
    path.write_bytes(page_photo(column, seed=1))
    assert cli.main(["predict", "--numbers", "--csv", str(path)]) == 0
    assert capsys.readouterr().out == "12.50\n-3\n0.75\n1024\n"
    assert cli.main(["predict", "--numbers", "--csv", str(path), str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{path},12.50"
    assert cli.main(["predict", "--numbers", "--json", str(path)]) == 0
    [answer] = json.loads(capsys.readouterr().out)
    assert answer["table"] == [["12.50"], ["-3"], ["0.75"], ["1024"]]
    assert [line[0]["value"] for line in answer["lines"]] == [12.5, -3, 0.75, 1024]
    assert cli.main(["predict", "--csv", str(path)]) == 2  # --csv needs --numbers
    assert "use it with --numbers" in capsys.readouterr().err


def test_a_table_keeps_its_columns(classify):
    rows = [["12", "7.5"], ["3", "40"], ["105", "2,25"]]
    page = predict.read_numbers(
        digits.read_image(page_photo(rows, seed=1, condition="on a table")), classify, 0.0
    )
    assert page.table() == rows and page.sheet is not None


def test_show_input_boxes_every_number(tmp_path):
    path = tmp_path / "page.png"
    path.write_bytes(page_photo([["12"], ["34"]]))
    out = tmp_path / "seen"
    assert cli.main(["predict", "--numbers", "--show-input", str(out), str(path)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"page-{k}.png" for k in range(1, 5)] + [
        "page-boxes.png"
    ]


def test_a_page_of_thousands_of_dots_is_refused_in_a_sentence(classify):
    dots = np.tile(np.pad(np.zeros((3, 3)), 3, constant_values=255), (70, 70))  # 4,900
    with pytest.raises(ImageError, match=r"too many to read"):
        predict.read_numbers(dots.astype(np.float32), classify, 0.9)


def test_a_page_of_dashes_is_refused_or_read_as_unsure(classify):
    dashes = np.tile(np.pad(np.zeros((3, 30)), 4, constant_values=255), (60, 40))  # 2,400
    try:
        page = predict.read_numbers(dashes.astype(np.float32), classify, 0.9)
    except ImageError as err:
        assert "too many" in str(err) or "no " in str(err), err
    else:
        assert all(n.value is None for line in page.lines for n in line)


def test_read_numbers_everywhere():
    import mnist_cnn

    body = page_photo([["123"], ["456"]])
    assert mnist_cnn.read_numbers(body).table() == [["123"], ["456"]]
    image = Image.open(io.BytesIO(body))
    assert predict.DigitReader().read_numbers(image).table() == [["123"], ["456"]]
