"""Each found digit read by the network and by the MNIST classifier, pooled
(reading/pooling.py): the pool's arithmetic, its file, its fit, and what it mends on real
writing."""

import json
import os

import numpy as np
import pytest

from mnist_cnn.errors import MnistCnnError
from mnist_cnn.reading import pooling, predictor, training


def dirichlet(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(10), n)


def test_a_pool_of_one_reading_is_that_reading_and_rows_sum_to_one():
    net, alone = dirichlet(50, 0), dirichlet(50, 1)
    assert np.allclose(pooling.Pool(1.0, 0.0)(net, alone), net)
    assert np.allclose(pooling.Pool(0.0, 1.0)(net, alone), alone)
    mixed = pooling.Pool(0.7, 0.3)(net, alone)
    assert np.allclose(mixed.sum(1), 1.0) and (mixed > 0).all()
    sure = np.eye(10)[[3]]  # a zero probability is no NaN
    assert np.argmax(pooling.Pool(0.5, 0.5)(sure, sure)) == 3


def test_the_network_s_ten_of_its_thirteen_classes_are_made_to_sum_to_one():
    net = np.full((1, 10), 0.08)  # 0.2 left for the marks
    assert np.allclose(pooling.Pool(1.0, 0.0)(net, dirichlet(1, 2)), 0.1)


def test_a_pool_saved_beside_a_network_is_found_and_none_where_there_is_none(tmp_path):
    network = tmp_path / predictor.READER_FILE
    assert pooling.beside(network) is None
    pooling.Pool(0.72, 0.28).save(tmp_path / pooling.FILE)
    assert pooling.beside(network) == pooling.Pool(0.72, 0.28)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"network": 1}',
        '{"network": "x", "classifier": 1}',
        '{"network": NaN, "classifier": 1}',
        '{"network": -1, "classifier": 1}',
        '{"network": 1e300, "classifier": 1}',
        '{"network": 1, "classifier": 1, "pad": "' + "x" * 5000 + '"}',
        '{"network": 0, "classifier": 0}',
        '{"network": true, "classifier": 1}',
        "[" * 3000,
        '{"network": 1' + "0" * 400 + ', "classifier": 1}',
    ],
)
def test_a_damaged_pooling_file_is_one_clear_error(tmp_path, text):
    (tmp_path / pooling.FILE).write_text(text)
    with pytest.raises(MnistCnnError, match="not a reader's pooling file") as err:
        pooling.beside(tmp_path / predictor.READER_FILE)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kind", ["folder", "pipe", "endless", "dangling"])
def test_a_pooling_file_that_is_no_file_is_one_clear_error_at_once(tmp_path, kind):
    path = tmp_path / pooling.FILE
    if kind == "folder":
        path.mkdir()
    elif kind == "pipe":
        os.mkfifo(path)  # opened for reading, it would wait for a writer for ever
    else:
        path.symlink_to("/dev/zero" if kind == "endless" else tmp_path / "gone")
    with pytest.raises(MnistCnnError, match="not a reader's pooling file"):
        pooling.beside(tmp_path / predictor.READER_FILE)


def test_the_packaged_reader_pools_and_a_classifier_of_ones_own_reads_alone():
    from mnist_cnn import engines

    packaged = json.loads(predictor.packaged().with_name(pooling.FILE).read_text())
    assert predictor.Reader().pool == pooling.Pool(**packaged)
    assert predictor.Reader().classify is not None  # the packaged classifier, to pool with
    assert predictor.Reader(pool=False).classify is None
    own = predictor.reader_for(engines.packaged_model())  # as `--model CLASSIFIER` gives it
    assert own.pool is None and own.classify is not None
    # a classifier or a network of one's own: the packaged pool was not fit for it
    assert predictor.Reader(classify=lambda x: np.eye(10)[[0] * len(x)]).pool is None
    assert predictor.Reader(cells=predictor.load()).pool is None


def test_each_digit_is_read_as_the_pool_weighs_its_two_readings(real_dir):
    """A 'classifier' that reads every digit as 7: weighed nothing, the network's reading
    stands; weighed heavily, every digit is a 7."""
    path = real_dir / "nist-hsf" / "hsf_f01.png"  # 0123456789
    sevens = lambda x: np.tile(np.eye(10)[7] * 0.99 + 0.001, (len(x), 1))  # noqa: E731
    alone = predictor.Reader(pool=False).read_number(path).text
    unweighed = predictor.Reader(classify=sevens, pool=pooling.Pool(1.0, 0.0))
    assert unweighed.read_number(path).text == alone == "0123456789"
    heavy = predictor.Reader(classify=sevens, pool=pooling.Pool(0.1, 5.0))
    assert heavy.read_number(path).text == "7" * 10


def test_the_fit_leaves_out_a_reading_that_knows_nothing(mnist_dir):
    """A 'classifier' answering at random gets little weight (0.10 here, against the packaged
    classifier's 0.28 on pages 25 times as many); the network keeps its own."""
    held = training.generate(40, seed=5, split="held_out", data_dir=str(mnist_dir), processes=1)
    cells = predictor.load()
    rng = np.random.default_rng(0)
    pool, facts = training.fit_pool(cells, lambda x: rng.dirichlet(np.ones(10), len(x)), held)
    assert pool.classifier < 0.15 and 0.8 < pool.network < 1.3, pool
    assert facts["digits"] > 100 and facts["classifier_right"] < 0.3
    assert facts["pooled_right"] >= facts["network_right"] - 0.01


def test_the_packaged_pool_reads_held_out_pages_better_than_either_alone(mnist_dir):
    from mnist_cnn import engines

    held = training.generate(60, seed=6, split="held_out", data_dir=str(mnist_dir), processes=1)
    _, facts = training.fit_pool(predictor.load(), engines.classifier(None), held)
    packaged = json.loads(predictor.packaged().with_name(pooling.FILE).read_text())
    assert 0.5 < packaged["network"] < 0.9 and 0.1 < packaged["classifier"] < 0.5
    assert facts["pooled_right"] >= max(facts["network_right"], facts["classifier_right"])
    assert facts["nll_pooled"] < facts["nll_network"]


# Real writing where the network alone is unsure of one digit and the pool reads it (the
# network: 35?1, 91?7, 0?876, ?4570; measured 2026-12-07)
MENDED = {
    "photos/tahaemara_sample3.jpg": "3541",
    "photos/tahaemara_sample4.jpg": "9107",
    "drawn/mrsadeghi_09876.png": "09876",
    "drawn/sohaboroojerdi_5test.jpg": "14570",
}


def test_pooling_reads_real_digits_the_network_alone_is_unsure_of(real_dir):
    pooled, alone = predictor.Reader(), predictor.Reader(pool=False)
    for name, text in MENDED.items():
        assert pooled.read_number(real_dir / name).text == text, name
        assert "?" in alone.read_number(real_dir / name).text, name
