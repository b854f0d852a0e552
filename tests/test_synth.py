"""Synthetic digits of other writers: seeded, labelled right, held-out ones kept from training."""

from pathlib import Path

import numpy as np
import pytest

from mnist_cnn import engines, synth, train
from mnist_cnn.errors import MnistCnnError


def test_the_split_holds_out_whole_fonts_and_whole_styles():
    assert not set(synth.TRAIN_FONTS) & set(synth.HELD_OUT_FONTS)
    assert not set(synth.TRAIN_STYLES) & set(synth.HELD_OUT_STYLES)
    assert set(synth.TRAIN_FONTS) | set(synth.HELD_OUT_FONTS) == set(synth.FONTS)
    assert set(synth.HELD_OUT_STYLES) <= set(synth.STYLES)
    for split in synth.SPLITS.values():  # every digit has a style on each side of the split
        assert {s.split("-")[0] for s in split[1]} == {str(d) for d in range(10)}
    # no font file belongs to two families (a family held out is held out whole)
    files = synth.font_files(tuple(synth.FONTS))
    paths = [p for family in files.values() for p in family]
    assert len(paths) == len(set(paths)) >= len(synth.FONTS)


@pytest.mark.parametrize("kind", ["fonts", "styles"])
def test_generators_are_seeded_and_balanced(kind):
    a = synth.generate(30, "held_out", kind, 0.5, seed=7)
    b = synth.generate(30, "held_out", kind, 0.5, seed=7)
    c = synth.generate(30, "held_out", kind, 0.5, seed=8)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.source, b.source)
    assert not np.array_equal(a.x, c.x)
    assert a.x.shape == (30, 28, 28) and a.x.dtype == np.float32
    assert a.x.min() >= 0 and a.x.max() <= 255.01 and a.x.max() > 200
    assert np.array_equal(a.y, np.arange(30) % 10)  # 0-9 in turn
    assert a.scanned.any() and not a.scanned.all()
    allowed = synth.HELD_OUT_FONTS if kind == "fonts" else synth.HELD_OUT_STYLES
    assert set(a.source) <= set(allowed)
    if kind == "styles":  # a style's name says which digit it writes
        assert all(s.startswith(f"{d}-") for s, d in zip(a.source, a.y, strict=True))


def test_stroke_styles_draw_the_digit_they_are_named_for():
    """The labels are right: the packaged model reads held-out styles it never trained on."""
    made = synth.generate(40, "held_out", "styles", 0.0, seed=3)
    probs = engines.classifier()(made.x[..., None])
    assert (probs.argmax(1) == made.y).mean() >= 0.95


def test_the_packaged_model_reads_held_out_writers():
    """A handful of digits in held-out fonts and styles, as pictures and as scans."""
    sets = synth.held_out_sets(n=30, seed=11)
    classify = engines.classifier()
    for name, made in sets.items():
        probs = classify(made.x[..., None])
        right = (probs.argmax(1) == made.y).sum()
        assert right >= 28, (name, right)


def test_pictures_are_the_same_digits_as_the_28x28s():
    made = synth.generate(20, "held_out", "styles", 0.5, seed=4)
    shown = synth.generate(20, "held_out", "styles", 0.5, seed=4, pictures=True)
    assert np.array_equal(made.y, shown.y) and np.array_equal(made.source, shown.source)
    assert all(p.ndim == 2 and p.shape[0] > 28 for p in shown.x)


def test_the_packaged_reader_reads_held_out_writers_pictures():
    """The same digits as pictures, read as `mnist-cnn predict` reads a file."""
    from mnist_cnn.reading.predictor import Reader

    reader = Reader(min_confidence=0.0)
    for name, made in synth.held_out_sets(n=30, seed=11, pictures=True).items():
        right = sum(reader.read_digit(p).digit == t for p, t in zip(made.x, made.y, strict=True))
        assert right >= 28, (name, right)


def test_a_missing_font_folder_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(synth, "FONT_DIR", tmp_path)
    with pytest.raises(MnistCnnError, match=r"fonts are missing .*comic-neue.*reinstall"):
        synth.generate(10, "train", "fonts", 0.0, seed=0)


def test_training_with_synthetic_digits_learns_and_never_sees_held_out_ones(
    mnist_dir, tmp_path, monkeypatch
):
    calls = []
    generate = synth.generate

    def spy(n, split, kind, scanned, seed, only=None, pictures=False):
        calls.append(split)
        return generate(n, split, kind, scanned, seed, only, pictures)

    monkeypatch.setattr(synth, "generate", spy)
    monkeypatch.setattr(train, "SYNTHETIC_POOL", 600)
    cfg = train.make_config(
        "writers",
        seed=1,
        data_dir=str(mnist_dir),
        out=str(tmp_path / "run"),
        epochs=2,
        train_limit=2000,
        test_limit=500,
        val_size=300,
        precision="float32",
    )
    metrics = train.train(cfg, verbose=0).metrics
    assert calls and set(calls) == {"train"}  # held-out fonts and styles never reach training
    assert metrics["test_accuracy"] > 0.85
    assert cfg.synthetic == 0.25 and cfg.scan == 0.2
    monkeypatch.setattr(synth, "generate", generate)
    made = synth.generate(100, "train", "styles", 0.5, seed=99)
    model = engines.classifier(tmp_path / "run" / "model.keras")
    assert (model(made.x[..., None]).argmax(1) == made.y).mean() > 0.6


def test_every_font_travels_with_its_licence_in_the_package():
    """The fonts are package data (no system fonts), each family's licence beside its files."""
    assert synth.FONT_DIR.is_relative_to(Path(synth.__file__).parent)
    readme = (synth.FONT_DIR / "README.md").read_text()
    for family, files in synth.font_files(synth.FONTS).items():
        licence = (synth.FONT_DIR / family / "COPYRIGHT").read_text()
        assert (
            "Open Font License" in licence
            or "General Public License" in licence
            or ("Redistribution and use" in licence)
        ), family
        assert f"`{family}`" in readme, family
        assert all(p.stat().st_size < 1_000_000 for p in files), family  # the big ones subset
    for gpl in ("GPL-2", "GPL-3"):
        assert "GNU GENERAL PUBLIC LICENSE" in (synth.FONT_DIR / gpl).read_text()
