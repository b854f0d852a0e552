"""Fixtures shared by every test module."""

import os
from pathlib import Path

import pytest
from hypothesis import settings

from mnist_cnn import data, train

# The same examples on every run: CI's verdict does not depend on luck. (The fuzz benchmarks
# explore at random instead.)
settings.register_profile("repeatable", derandomize=True)
settings.load_profile("repeatable")

_HINT = (
    "set MNIST_DATA_DIR to a folder holding the four MNIST IDX files "
    "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
    "t10k-labels-idx1-ubyte, each optionally .gz); on this project's machines run e.g. "
    "MNIST_DATA_DIR=../shared/data/mnist PYTHONPATH=src python -m pytest"
)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST folder from $MNIST_DATA_DIR.

    Fails (never skips) when it is missing: a test run that silently skips the real-data
    tests would report green without having checked the data path at all.
    """

    value = os.environ.get("MNIST_DATA_DIR", "")
    if not value:
        pytest.fail(f"MNIST_DATA_DIR is not set; {_HINT}", pytrace=False)
    directory = Path(value).expanduser()
    if not directory.is_dir():
        pytest.fail(f"MNIST_DATA_DIR={value} is not a folder; {_HINT}", pytrace=False)
    missing = [base for base in data.FILES.values() if data.find_file(directory, base) is None]
    if missing:
        pytest.fail(f"MNIST_DATA_DIR={value} lacks {', '.join(missing)}; {_HINT}", pytrace=False)
    return directory


SMALL = {"train_limit": 3000, "test_limit": 1000, "val_size": 500, "epochs": 2}


@pytest.fixture(scope="session")
def small_run(mnist_dir, tmp_path_factory):
    """The classic model trained briefly on real MNIST: a run folder for tests of what follows."""
    from mnist_cnn import train

    out = tmp_path_factory.mktemp("runs") / "small"
    cfg = train.make_config("classic", seed=3, data_dir=str(mnist_dir), out=str(out), **SMALL)
    metrics = train.train(cfg, verbose=0)
    return out, metrics


@pytest.fixture(scope="session")
def test_digits(mnist_dir):
    """The first 200 MNIST test digits (28x28, 0-255) and their labels."""

    ds = data.load(mnist_dir, val_size=0, test_limit=200)
    return ds.x_test[..., 0], ds.y_test


def short_run(recipe: str, mnist_dir, tmp_path_factory):
    """`recipe` on 4,000 images: one augmented epoch, one on the digits as they are."""
    out = tmp_path_factory.mktemp(recipe) / "run"
    cfg = train.make_config(
        recipe,
        seed=1,
        data_dir=str(mnist_dir),
        out=str(out),
        train_limit=4000,
        test_limit=1000,
        val_size=500,
        epochs=2,
        clean_epochs=1,
    )
    return out, train.train(cfg, verbose=0)


@pytest.fixture(scope="module")
def best_run(mnist_dir, tmp_path_factory):
    return short_run("best", mnist_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def deep_run(mnist_dir, tmp_path_factory):
    return short_run("best-deep", mnist_dir, tmp_path_factory)
