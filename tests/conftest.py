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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Tests that share a trained run are one xdist group, so one process trains it once. A
    pytest-xdist that cannot group under this pytest (pytest-xdist#1386) would quietly train it
    in every process: such tests fail before their fixtures instead, saying so."""
    grouped = "@" in item.nodeid or not getattr(item.config.option, "loadgroup", False)
    if item.get_closest_marker("xdist_group") and not grouped:
        pytest.fail(
            "--dist loadgroup does not group tests under this pytest: see its pin in "
            "pyproject.toml",
            pytrace=False,
        )


@pytest.fixture(scope="session", autouse=True)
def private_data_dir(tmp_path_factory):
    """Corrections the tests send go to a folder of their own, never the user's data dir
    (servers started in subprocesses inherit it too)."""
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Real MNIST, found the way the package finds it: MNIST_DATA_DIR, else the user cache,
    else a download into that cache.

    Fails (never skips) when none works: a test run that silently skips the real-data tests
    would report green without having checked the data path at all.
    """
    try:
        return data.locate()
    except data.DataError as err:
        pytest.fail(f"these tests need real MNIST and none could be found: {err}", pytrace=False)


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """Real handwriting nobody on this project wrote (../shared/data/real, or REAL_DATA_DIR):
    for measuring, never for training. Fails (never skips) when it is not there."""
    found = Path(
        os.environ.get("REAL_DATA_DIR", Path(__file__).parents[2] / "shared" / "data" / "real")
    )
    if not (found / "orand-train" / "labels.json").is_file():
        pytest.fail(
            f"these tests read real handwriting from {found} (../shared/data/real beside the "
            "checkout, or REAL_DATA_DIR), and it is not there",
            pytrace=False,
        )
    return found


SMALL = {"train_limit": 3000, "test_limit": 1000, "val_size": 500, "epochs": 2}


@pytest.fixture(scope="session")
def small_run(mnist_dir, tmp_path_factory):
    """The classic model trained briefly on real MNIST: a run folder for tests of what follows."""
    from mnist_cnn import train

    out = tmp_path_factory.mktemp("runs") / "small"
    cfg = train.make_config("classic", seed=3, data_dir=str(mnist_dir), out=str(out), **SMALL)
    metrics = train.train(cfg, verbose=0).metrics
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
    return out, train.train(cfg, verbose=0).metrics


@pytest.fixture(scope="session")  # test_train and test_evaluate share them: trained once
def best_run(mnist_dir, tmp_path_factory):
    return short_run("best", mnist_dir, tmp_path_factory)


@pytest.fixture(scope="session")
def deep_run(mnist_dir, tmp_path_factory):
    return short_run("best-deep", mnist_dir, tmp_path_factory)
