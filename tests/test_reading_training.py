"""The reader trained through the one training loop (`train --recipe reader`), and taught a
user's own fields (`finetune --fields`): briefly, on a few generated pages."""

import contextlib
import json

import numpy as np
import pytest
from PIL import Image

from mnist_cnn import cli, recipes, train
from mnist_cnn.errors import ImageError, MnistCnnError
from mnist_cnn.reading import pages, pooling, predictor, training

TINY = {"pages": 64, "val_pages": 16, "epochs": 1, "batch_size": 16}
pytestmark = pytest.mark.xdist_group("tiny_reader")  # one process trains it once


@pytest.fixture(scope="module")
def tiny_reader(mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("reader") / "run"
    cfg = recipes.make_config("reader", seed=2, data_dir=str(mnist_dir), out=str(out), **TINY)
    return out, train.train(cfg, verbose=0)


def test_a_reader_run_holds_its_network_export_and_scores(tiny_reader):
    run, result = tiny_reader
    for name in ("model.keras", "reader.onnx", "config.json", "metrics.json", "history.json"):
        assert (run / name).is_file(), name
    assert not (run / "checkpoint").exists()  # finished: nothing to resume
    m = result.metrics
    assert m["pages"] == 64 and m["epochs"] == 1 and m["params"] == 832_194
    assert set(m["held_out"]) == {"recall", "precision", "class_accuracy", "pages_exact"}
    assert m["calibration"]["temperature"] > 0
    # its pool is fit where it finds digits; briefly trained, it may find none, and pool none
    assert (run / "pooling.json").is_file() == bool(m["pooling"])
    assert json.loads((run / "config.json").read_text())["architecture"] == "reader"
    assert predictor.is_reader(run) and predictor.is_reader(run / "reader.onnx")
    assert predictor.is_reader(run / "model.keras")


def test_a_reader_s_run_ends_with_its_pool_but_a_fields_run_without(mnist_dir, tmp_path):
    """`runs.finish_reader` on the packaged network (which finds digits): the pool it fits
    with the packaged classifier is saved beside the export, and the reader takes it."""
    from mnist_cnn import models, runs

    held = training.generate(30, seed=7, split="held_out", data_dir=str(mnist_dir), processes=1)
    for name, fields in (("reader", 0), ("fields", 6)):
        run = tmp_path / name
        run.mkdir()
        model = models.load(predictor.packaged_network())
        m = runs.finish_reader(run, model, held, {"recipe": name, "fields": fields}).metrics
        (run / "config.json").write_text(json.dumps({"seed": 0, "val_pages": 20, "fields": fields}))
        if fields:  # the classifier never saw the user's writers
            assert "pooling" not in m and not (run / pooling.FILE).exists()
            assert predictor.Reader(run).pool is None
            with pytest.raises(MnistCnnError, match="reads with its network alone"):
                train.pool_again(run, str(mnist_dir))
            continue
        pool = pooling.Pool(m["pooling"]["network"], m["pooling"]["classifier"])
        assert m["pooling"]["digits"] > 50 and 0 < pool.classifier < pool.network
        assert pooling.beside(run / predictor.READER_FILE) == predictor.Reader(run).pool == pool
        # fit again (`make default-pool`, after the classifier is retrained): other pages here
        again = train.pool_again(run, str(mnist_dir))
        assert (
            pooling.beside(run / predictor.READER_FILE)
            == pooling.Pool(again["network"], again["classifier"])
            != pool
        )


def test_a_reader_of_ones_own_reads_through_the_same_reader(tiny_reader):
    run, _ = tiny_reader
    reader = predictor.Reader(run)
    page = np.full((80, 200), 240.0)
    page[20:60, 40:46] = 20
    with contextlib.suppress(ImageError):  # briefly trained: an answer or the one-line error
        number = reader.read_number(page)
        assert number.size == (200, 80)


def test_the_same_seed_trains_the_same_reader(tiny_reader, mnist_dir, tmp_path):
    _, result = tiny_reader
    again = recipes.make_config(
        "reader", seed=2, data_dir=str(mnist_dir), out=str(tmp_path / "again"), **TINY
    )
    assert train.train(again, verbose=0).history["loss"] == pytest.approx(
        result.history["loss"], rel=1e-3
    )


def fields_folder(folder, mnist_dir, count: int = 6):
    """Pictures of numbers (MNIST test digits) with their text and boxes, as a user's."""
    from mnist_cnn import data

    _, (x, y) = data.load_arrays(mnist_dir)
    writers = pages.Writers(x[:500, ..., 0], y[:500], "held_out")
    rng = np.random.default_rng(0)
    labels = {}
    for i in range(count):
        text = "".join(str(d) for d in rng.integers(0, 10, 4))
        ink, glyphs = pages.write(text, writers, rng, 30, 3.0, spacing=0.3)
        sheet = np.pad(1 - 0.9 * ink, 15, constant_values=1.0) * 235
        Image.fromarray(sheet.astype(np.uint8)).save(folder / f"f{i}.png")
        boxes = []
        for points, cls in glyphs:
            (x0, y0), (x1, y1) = points.min(0), points.max(0)
            boxes.append([int(x0) + 15, int(y0) + 15, int(x1 - x0) + 1, int(y1 - y0) + 1, cls])
        labels[f"f{i}.png"] = {"text": text, "boxes": boxes} if i % 2 else {"text": text}
    (folder / "labels.json").write_text(json.dumps(labels))
    return folder


def test_a_reader_learns_a_users_fields(tiny_reader, mnist_dir, tmp_path):
    run, _ = tiny_reader
    folder = fields_folder(tmp_path, mnist_dir)
    cfg = recipes.make_config(
        "fields",
        init_from=str(run / "model.keras"),
        fields=str(folder),
        seed=0,
        data_dir=str(mnist_dir),
        out=str(tmp_path / "mine"),
        **TINY,
    )
    assert cfg.precision == "float32" and cfg.fields_share == 0.5
    m = train.train(cfg, verbose=0).metrics
    # fields with boxes are learnt; those without, where the (barely trained) reader finds
    # another count of digits, are left out and counted
    assert m["fields"] + m["fields_left_out"] == 6 and m["fields"] >= 3
    assert predictor.is_reader(tmp_path / "mine")
    # it reads with its network alone: the classifier never saw the writers it learnt
    assert "pooling" not in m and not (tmp_path / "mine" / "pooling.json").exists()
    assert predictor.Reader(tmp_path / "mine").pool is None


def test_finetune_fields_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["finetune", "--fields", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "labels.json" in capsys.readouterr().err
    with pytest.raises(MnistCnnError, match="needs --init-from and --fields"):
        recipes.make_config("fields")
    args = ["finetune", "--fields", str(tmp_path), "--feedback", "x.db", "--out", "r"]
    assert cli.main(args) == 2


def test_a_fields_boxes_are_in_its_files_pixels_however_large(tmp_path, mnist_dir):
    """A scan 3,000 px wide is read shrunk to 1,024 px; its labelled boxes follow."""
    from mnist_cnn import data

    _, (x, y) = data.load_arrays(mnist_dir)
    big = np.asarray(Image.fromarray(x[0, ..., 0]).resize((200, 200)), np.float32)
    sheet = np.full((400, 3000), 235.0)
    sheet[100:300, 2500:2700] -= 0.9 * big
    Image.fromarray(sheet.astype(np.uint8)).save(tmp_path / "wide.png")
    rows, cols = np.flatnonzero(big.max(1) > 64), np.flatnonzero(big.max(0) > 64)
    box = [2500 + int(cols[0]), 100 + int(rows[0]), int(cols[-1] - cols[0]) + 1]
    box += [int(rows[-1] - rows[0]) + 1, int(y[0])]
    labels = {"wide.png": {"digits": str(y[0]), "boxes": [box]}}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    made, left_out = training.fields(tmp_path)
    (x0, y0, x1, y1), classes = made.labels(0)[0][0], made.labels(0)[1]
    page = made.images[0].astype(np.float64)
    inside = page[int(y0) : int(np.ceil(y1)) + 1, int(x0) : int(np.ceil(x1)) + 1].sum()
    assert left_out == 0 and list(classes) == [y[0]] and inside >= 0.9 * page.sum()


@pytest.mark.parametrize(
    "boxes",
    [[[1, 2, 3, 4, 5]], [[1, 2, 3, 4]] * 2, [[1, 2, 3, 4, 1], [5, 6, 7, 8, 3]], "here"],
)
def test_fields_whose_boxes_do_not_fit_their_digits_are_refused_in_one_line(tmp_path, boxes):
    (tmp_path / "labels.json").write_text(json.dumps({"a.png": {"digits": "12", "boxes": boxes}}))
    with pytest.raises(MnistCnnError, match="one box"):
        training.read_labels(tmp_path)


def test_classifier_commands_refuse_a_reader_in_one_line(capsys):
    reader = str(predictor.packaged_network())
    assert cli.main(["export", "--model", reader, "--format", "onnx"]) == 2
    assert "is a reader" in capsys.readouterr().err
    assert cli.main(["evaluate", reader]) == 2
    assert "is a reader" in capsys.readouterr().err
