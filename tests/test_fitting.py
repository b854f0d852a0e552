"""What fit is given: the Pool of images, the batches of their indices, the epoch sync that
makes a resumed run see what it would have, the progress bar."""

import h5py
import keras
import numpy as np
import pytest

from mnist_cnn import augment, fitting, models, recipes


def test_batches_keep_labels_with_their_images():
    index, y = np.arange(1000, 1300), np.arange(300) % 10  # a process's shard of the Pool
    batches = fitting.Batches(index, y, 64, seed=5)
    assert len(batches) == 5
    seen = []
    for i in range(len(batches)):
        idx, by = batches[i]
        assert idx.dtype == np.int32 and len(idx) == len(by)
        assert np.array_equal(y[idx - 1000], by)
        seen += list(idx)
    assert sorted(seen) == list(range(1000, 1300))  # every image once per epoch
    first = batches[0][0].copy()
    batches.set_epoch(1)
    assert not np.array_equal(first, batches[0][0])  # reshuffled


def test_the_pool_hands_the_train_step_its_images_and_saves_none(tmp_path):
    """Only indices cross from the host; checkpoints and saved models hold no training data."""
    x = np.random.default_rng(0).integers(0, 256, (50, 28, 28, 1)).astype("float32")
    x[0, 0, 0, 0] = 12.3456  # synthetic digits' pixels are fractions
    pool = fitting.Pool(x)
    taken = keras.ops.convert_to_numpy(pool(np.array([3, 0, 49], np.int32)))
    assert taken.dtype == np.float32 and np.array_equal(taken, x[[3, 0, 49]])
    indices = keras.Input((), dtype="int32")
    inner = models.build("fast")
    trainer = keras.Model(indices, inner(pool(indices)))
    trainer.compile("adam", "sparse_categorical_crossentropy")
    trainer.fit(np.arange(50, dtype=np.int32), np.arange(50) % 10, batch_size=10, verbose=0)
    trainer.save_weights(tmp_path / "trainer.weights.h5")
    shapes = []
    with h5py.File(tmp_path / "trainer.weights.h5") as f:
        f.visititems(lambda name, item: shapes.append(getattr(item, "shape", None)))
    assert (5, 5, 1, 16) in shapes  # the first conv's kernel is there
    assert not any(s and s[0] == 50 and s[1:] == (28, 28, 1) for s in shapes)
    again = keras.Model(indices, inner(fitting.Pool(x)(indices)))
    again.load_weights(tmp_path / "trainer.weights.h5")  # as BackupAndRestore resumes


def test_closing_clean_epochs_train_on_the_images_as_they_are(tmp_path):
    """EpochSync turns the augmentation off from epoch `clean_from` and has Keras trace the
    train step anew, so the model is fed the digits unchanged; each epoch's draws are seeded."""
    x = np.random.default_rng(0).uniform(0, 255, (32, 28, 28, 1)).astype("float32")
    y = keras.utils.to_categorical(np.arange(32) % 10, 10)
    seen = {}

    class Spy(keras.layers.Layer):  # records what reaches the model, epoch by epoch
        def call(self, images):
            return images

    batches = fitting.Batches(np.arange(32), y, 32, seed=1)
    aug = augment.Augmentation(augment.Augment(rotate=20), seed=1)
    inner = models.build("fast")
    indices = keras.Input((), dtype="int32")
    trainer = keras.Model(indices, inner(Spy()(aug(fitting.Pool(x)(indices)))))
    trainer.compile(optimizer="adam", loss="categorical_crossentropy", run_eagerly=True)

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen[batches.epoch] = aug.enabled

    sync = fitting.EpochSync(batches, aug, clean_from=2)
    trainer.fit(batches, epochs=4, verbose=0, callbacks=[sync, Record()])
    assert seen == {0: True, 1: True, 2: False, 3: False}
    assert np.array_equal(keras.ops.convert_to_numpy(aug(x, training=True)), x)
    aug.enabled = True
    state = keras.ops.convert_to_numpy(aug.seed_generator.state)
    assert state[0] == 1 and state[1] == 3 * 2**20  # reseeded for the last epoch, unused


def test_fit_fetches_each_epoch_after_the_batches_know_it(tmp_path):
    """Keras must not fetch a batch of epoch e before EpochSync says e starts (no stale
    prefetch), or resumed runs would start with the wrong order."""
    fetched = []

    class Recording(fitting.Batches):
        def __getitem__(self, i):
            fetched.append(self.epoch)
            return super().__getitem__(i)

    x = np.zeros((64, 28, 28, 1), "float32")
    y = keras.utils.to_categorical(np.arange(64) % 10, 10)
    batches = Recording(np.arange(64), y, 16, seed=0)
    logged = []

    class Log(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            logged.append(batches.epoch)

    indices = keras.Input((), dtype="int32")
    model = keras.Model(indices, models.build("fast")(fitting.Pool(x)(indices)))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(batches, epochs=3, verbose=0, callbacks=[fitting.EpochSync(batches), Log()])
    assert logged == [0] * 4 + [1] * 4 + [2] * 4
    # Keras peeks at a batch or two before training, to learn their shapes; then each epoch's
    # four batches are fetched while that epoch runs
    assert fetched[-12:] == [0] * 4 + [1] * 4 + [2] * 4 and set(fetched[:-12]) <= {0}


def test_batches_mix_in_their_share_of_synthetic_digits():
    extra = (np.arange(300, 350), np.full(50, 7), 0.2)  # the synthetic digits: all 7s
    batches = fitting.Batches(np.arange(300), np.zeros(300, int), 100, 0, [extra])
    assert len(batches) == 4  # 80 MNIST images a batch: every one still seen once an epoch
    seen = 0
    for i in range(len(batches)):
        idx, by = batches[i]
        synthetic = idx >= 300
        assert synthetic.sum() == 20 and (by[synthetic] == 7).all() and (by[~synthetic] == 0).all()
        assert idx.max() < 350
        seen += (~synthetic).sum()
    assert seen == 300


def test_batches_mix_in_two_extras_and_stop_after_their_steps():
    synthetic = (np.arange(300, 350), np.full(50, 7), 0.2)
    corrections = (np.arange(350, 360), np.full(10, 3), 0.1)
    batches = fitting.Batches(
        np.arange(300), np.zeros(300, int), 100, 0, [synthetic, corrections], steps=2
    )
    assert len(batches) == 2  # 70 MNIST a batch would take 5 batches to see them all
    for i in range(2):
        idx, by = batches[i]
        assert len(idx) == 100 and (by == 7).sum() == 20 and (by == 3).sum() == 10
        assert ((idx >= 350) == (by == 3)).all() and (idx[by == 0] < 300).all()


def test_the_progress_bar_ends_at_the_epochs_step_count():
    """With 4 steps per call, Keras' own bar ends an epoch of 10 steps at 12/10."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", steps_per_execution=4)
    bar = fitting.Progress()
    x, y = np.zeros((80, 4), "float32"), np.zeros(80, "int32")
    model.fit(x, y, batch_size=8, epochs=1, verbose=1, callbacks=[bar])
    assert bar.target == 10 and bar.seen == 10


@pytest.mark.parametrize(
    "backend, strategy, expected",
    [
        ("tensorflow", "none", 64),
        ("jax", "none", 64),
        ("torch", "none", 1),
        ("tensorflow", "mirrored", 1),
        ("jax", "multiworker", 1),
    ],
)
def test_steps_per_call_where_keras_runs_them(backend, strategy, expected, monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: backend)
    cfg = recipes.make_config("classic", strategy=strategy)
    assert cfg.steps_per_execution == 64
    assert fitting._steps_per_call(cfg) == expected
    peer = recipes.make_config("classic-peer")  # as the Keras example: fit's default
    assert fitting._steps_per_call(peer) == 1
