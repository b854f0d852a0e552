"""A short, fixed-seed run of the image fuzzer (benchmarks/fuzz.py runs the long one)."""

import pytest
from fastapi.testclient import TestClient
from fuzzing import fuzz

from mnist_cnn import serve
from mnist_cnn.reading import paper
from mnist_cnn.reading.predictor import Reader


def test_mutated_images_never_fail_the_reader_or_the_server():
    with TestClient(serve.create_app(), raise_server_exceptions=False) as client:
        report = fuzz(150, seed=1, reader=Reader(), client=client)
    assert report["failures"] == 0, report["failure_examples"]
    assert report["peak_rss_growth_mb"] < 500


def test_a_broken_paper_stage_makes_the_fuzzer_fail(monkeypatch):
    """The fuzzer counts what it should: a stage that raises on every picture is caught, both
    out of the reader and as the server's log line."""

    def broken(gray):
        raise ValueError("a bug")

    monkeypatch.setattr(paper, "prepare", broken)
    with TestClient(serve.create_app(), raise_server_exceptions=False) as client:
        report = fuzz(3, seed=1, reader=Reader(), client=client)
    assert report["failures"] >= 3
    wheres = {f["where"] for f in report["failure_examples"]}
    assert "server log" in wheres and wheres & {"read_digit", "read_number", "read_numbers"}


@pytest.mark.parametrize("value", [0.0, 255.0])
def test_a_uniform_array_reads_no_digit(value):
    import numpy as np

    from mnist_cnn.errors import ImageError

    with pytest.raises(ImageError):
        Reader().read_number(np.full((50, 80), value))
