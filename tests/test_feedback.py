"""Users' corrections: the SQLite store, the API, the CLI and fine-tuning on them."""

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import paper, png
from PIL import Image

from mnist_cnn import cli, data, feedback, launch, serve, synth, train
from mnist_cnn.errors import MnistCnnError

WRITER = """
import sys, numpy as np
from mnist_cnn import feedback
store = feedback.FeedbackStore(sys.argv[1])
x = np.full((28, 28), 200.0)
for i in range(int(sys.argv[2])):
    store.add(x, i % 10, None)
    print(i, flush=True)
"""


def test_the_store_keeps_pixels_and_labels_and_counts_them(tmp_path):
    store = feedback.FeedbackStore(tmp_path / "f.sqlite3")
    x = np.arange(784, dtype=np.float32).reshape(28, 28) % 256
    first = store.add(x, 3, predicted=5)
    store.add(x, 3, predicted=3)
    store.add(x, 7)
    assert store.stats() == {
        "total": 3,
        "per_digit": {str(d): {3: 2, 7: 1}.get(d, 0) for d in range(10)},
        "model_was_wrong": 1,
        "pending": 3,
        "kept": 0,
        "dropped": 0,
    }
    images, labels, ids = store.arrays()
    assert images.shape == (3, 28, 28) and np.array_equal(images[0], x)
    assert list(labels) == [3, 3, 7] and ids[0] == first
    assert [r["label"] for r in store.rows()] == [7, 3, 3]  # newest first
    for bad in [(x, 10, None), (x, 3, 12), (x[:5], 3, None), (np.full((28, 28), np.nan), 1, None)]:
        with pytest.raises(feedback.FeedbackError):
            store.add(*bad)
    assert store.clear() == 3 and store.stats()["total"] == 0
    with sqlite3.connect(store.path) as db:  # what is stored: no addresses, no files
        columns = [r[1] for r in db.execute("PRAGMA table_info(corrections)")]
    assert columns == ["id", "created", "label", "predicted", "pixels", "kept"]


def test_corrections_wait_for_review_and_only_kept_ones_are_learnt(tmp_path, capsys):
    db = tmp_path / "f.sqlite3"
    store = feedback.FeedbackStore(db)
    ids = [store.add(np.full((28, 28), 20.0 * n), n % 10) for n in range(6)]
    assert store.stats()["pending"] == 6 and len(store.arrays("kept")[2]) == 0
    assert cli.main(["feedback", "review", "--db", str(db), "--out", str(tmp_path / "r.png")]) == 0
    said = capsys.readouterr().out
    assert "6 corrections wait for review" in said and "feedback keep" in said
    sheet = Image.open(tmp_path / "r.png")
    assert sheet.size[0] >= 6 * 3 * 28 and np.asarray(sheet).min() < 100  # digits drawn
    assert cli.main(["feedback", "keep", *map(str, ids[:4]), "--db", str(db)]) == 0
    assert cli.main(["feedback", "drop", str(ids[4]), "--db", str(db)]) == 0
    assert cli.main(["feedback", "keep", "--db", str(db)]) == 2  # no ids: one line, no change
    assert "needs correction ids" in capsys.readouterr().err
    found = store.stats()
    assert (found["pending"], found["kept"], found["dropped"]) == (1, 4, 1)
    assert list(store.arrays("kept")[2]) == ids[:4]
    assert [r["review"] for r in store.rows()] == ["pending", "dropped", *["kept"] * 4]
    assert store.review(None, keep=True) == 1 and store.stats()["kept"] == 5


def test_a_schema_1_database_is_brought_up_to_date_and_keeps_its_corrections(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE corrections (id INTEGER PRIMARY KEY, created REAL NOT NULL,
                label INTEGER NOT NULL, predicted INTEGER, pixels BLOB NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');"""
        )
        db.execute("INSERT INTO corrections VALUES (1, 0, 4, NULL, ?)", (bytes(784),))
    store = feedback.FeedbackStore(path)
    assert store.stats()["total"] == 1 and store.stats()["pending"] == 1
    store.add(np.zeros((28, 28)), 5, sender="10.0.0.1", per_minute=10)
    assert store.stats()["total"] == 2 and store.integrity() == "ok"


def test_a_full_store_and_a_newer_schema_say_so(tmp_path):
    store = feedback.FeedbackStore(tmp_path / "f.sqlite3", max_rows=2)
    for label in (1, 2):
        store.add(np.zeros((28, 28)), label)
    with pytest.raises(feedback.FeedbackError, match=r"full .*export and clear"):
        store.add(np.zeros((28, 28)), 3)
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(feedback.FeedbackError, match="newer mnist-cnn"):
        feedback.FeedbackStore(store.path)
    (tmp_path / "junk.sqlite3").write_bytes(b"not a database at all" * 100)
    with pytest.raises(feedback.FeedbackError, match="cannot use"):
        feedback.FeedbackStore(tmp_path / "junk.sqlite3")


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    db = tmp_path / "f.sqlite3"
    feedback.FeedbackStore(db)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), "150"], stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    for p in procs:
        assert p.wait(120) == 0
    store = feedback.FeedbackStore(db)
    _, _, ids = store.arrays()
    assert store.stats()["total"] == 300 and len(set(ids)) == 300
    assert store.integrity() == "ok"


def test_kill_9_mid_write_leaves_a_whole_database(tmp_path):
    db = tmp_path / "f.sqlite3"
    feedback.FeedbackStore(db)
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), "100000"], stdout=subprocess.PIPE, text=True
    )
    for _ in range(50):  # let it write for a while, then kill it wherever it is
        proc.stdout.readline()
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    store = feedback.FeedbackStore(db)
    assert store.integrity() == "ok"
    images, labels, _ = store.arrays()
    assert len(labels) >= 50 and images.shape == (len(labels), 28, 28)  # every row whole


@pytest.fixture(scope="module")
def app_client(small_run, tmp_path_factory):
    db = tmp_path_factory.mktemp("fb") / "f.sqlite3"
    app = serve.create_app(small_run[0], feedback_db=db)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, db


def test_the_api_stores_corrections_and_reports_stats(app_client, test_digits):
    client, db = app_client
    x, y = test_digits
    r = client.post("/api/feedback", json={"pixels": x[0].tolist(), "label": int(y[0])})
    assert r.status_code == 201 and r.json()["id"] >= 1
    files = {"file": ("d.png", png(paper(x[1])), "image/png")}
    r = client.post("/api/feedback", files=files, data={"label": "4", "predicted": "9"})
    assert r.status_code == 201, r.text
    stats = client.get("/api/feedback/stats").json()
    assert stats["total"] == r.json()["total"] >= 2 and stats["model_was_wrong"] >= 1
    images, labels, _ = feedback.FeedbackStore(db).arrays()
    assert labels[-1] == 4 and images[-1].max() > 200  # the normalised 28x28, not the upload


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"json": {"pixels": [[0] * 28] * 28, "label": 10}}, 422),
        ({"json": {"pixels": [[0] * 28] * 28, "label": "seven"}}, 422),
        ({"json": {"pixels": [[0] * 28] * 28, "label": True}}, 422),
        ({"json": {"pixels": [[0] * 28] * 28}}, 422),
        ({"json": {"pixels": [[0] * 27] * 28, "label": 1}}, 422),
        ({"json": {"pixels": [[0] * 28] * 28, "label": 1, "predicted": 11}}, 422),
        ({"json": [1, 2, 3]}, 422),
        ({"json": {"pixels": [[0] * 28] * 28, "label": "7"}}, 422),  # JSON: a number
        ({"files": {"file": ("x.png", b"x", "image/png")}, "data": {"label": "²"}}, 422),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415),
        ({"files": {"file": ("x.png", b"not an image", "image/png")}, "data": {"label": "1"}}, 400),
        ({"files": {"other": ("x.png", b"x", "image/png")}, "data": {"label": "1"}}, 422),
    ],
)
def test_bad_corrections_get_a_4xx_never_a_500(app_client, kwargs, status):
    client, _ = app_client
    r = client.post("/api/feedback", **kwargs)
    assert r.status_code == status, r.text


def test_the_rate_limit_is_one_for_all_workers(small_run, tmp_path, monkeypatch):
    """Two apps on one database (two server processes): a client gets 3 a minute in all, not
    3 from each; another client has its own 3; no address is stored."""
    monkeypatch.setattr(serve, "FEEDBACK_PER_MINUTE", 3)
    db = tmp_path / "f.sqlite3"
    apps = [serve.create_app(small_run[0], feedback_db=db) for _ in range(2)]
    body = {"pixels": [[0] * 28] * 28, "label": 1}
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        replies = [(a, b)[i % 2].post("/api/feedback", json=body) for i in range(5)]
        other = TestClient(apps[1], client=("10.9.9.9", 50000))
        assert other.post("/api/feedback", json=body).status_code == 201
    assert [r.status_code for r in replies] == [201, 201, 201, 429, 429]
    assert replies[-1].headers["retry-after"] == "60"
    assert "a minute" in replies[-1].json()["detail"]
    with sqlite3.connect(db) as con:
        senders = [r[0] for r in con.execute("SELECT sender FROM senders")]
    assert senders and "testclient" not in senders and "10.9.9.9" not in senders  # hashed


def test_corrections_need_the_token_where_one_is_set(small_run, tmp_path):
    app = serve.create_app(small_run[0], feedback_db=tmp_path / "f.sqlite3", feedback_token="s3")
    body = {"pixels": [[0] * 28] * 28, "label": 1}
    with TestClient(app) as c:
        assert c.post("/api/feedback", json=body).status_code == 401
        wrong = c.post("/api/feedback", json=body, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "token" in wrong.json()["detail"]
        right = c.post("/api/feedback", json=body, headers={"authorization": "Bearer s3"})
        assert right.status_code == 201
        assert c.post("/api/predict", json=body).status_code == 200  # reading needs none


@pytest.mark.parametrize(
    ("host", "needs"), [("127.0.0.1", False), ("::1", False), ("0.0.0.0", True), ("::", True)]
)
def test_listening_beyond_loopback_makes_a_token(host, needs, monkeypatch, capsys):
    ran = {}
    monkeypatch.delenv("MNIST_CNN_FEEDBACK_TOKEN", raising=False)
    monkeypatch.setattr(launch, "_run", lambda settings, app, threads: ran.update(app))
    launch.serve(1, host, 8123)
    printed = capsys.readouterr().out
    assert bool(ran["feedback_token"]) == needs
    if needs:
        assert len(ran["feedback_token"]) >= 20 and f"?token={ran['feedback_token']}" in printed
    monkeypatch.setenv("MNIST_CNN_FEEDBACK_TOKEN", "from-env")
    launch.serve(1, host, 8123)
    assert ran["feedback_token"] == "from-env"


def test_no_feedback_means_no_routes(small_run):
    app = serve.create_app(small_run[0], feedback=False)
    with TestClient(app) as c:
        assert (
            c.post("/api/feedback", json={"pixels": [[0] * 28] * 28, "label": 1}).status_code == 404
        )
        assert c.get("/api/feedback/stats").status_code == 404


def test_the_cli_shows_exports_and_clears_corrections(tmp_path, capsys):
    db = tmp_path / "f.sqlite3"
    store = feedback.FeedbackStore(db)
    for label in (1, 1, 8):
        store.add(np.full((28, 28), 30.0 * label), label, predicted=7)
    assert cli.main(["feedback", "stats", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["per_digit"]["1"] == 2
    assert cli.main(["feedback", "list", "--db", str(db), "--limit", "2"]) == 0
    assert capsys.readouterr().out.count("label") == 2
    assert cli.main(["feedback", "export", "--db", str(db), "--out", str(tmp_path / "c.npz")]) == 0
    saved = np.load(tmp_path / "c.npz")
    assert saved["x"].shape == (3, 28, 28) and list(saved["y"]) == [1, 1, 8]
    out = tmp_path / "idx"
    args = ["feedback", "export", "--db", str(db), "--out", str(out), "--format", "idx"]
    assert cli.main(args) == 0
    images = data.read_idx(out / "corrections-images-idx3-ubyte.gz")
    assert images.shape == (3, 28, 28) and images[2, 0, 0] == 240
    assert list(data.read_idx(out / "corrections-labels-idx1-ubyte.gz")) == [1, 1, 8]
    assert cli.main(["feedback", "clear", "--db", str(db)]) == 0
    assert "deleted 3" in capsys.readouterr().out.splitlines()[-1]


def tune(model, db, out, **settings):
    cfg = train.make_config("finetune", init_from=str(model), feedback_db=str(db), out=str(out))
    return train.train(dataclasses.replace(cfg, **settings), verbose=0)


def test_finetuning_on_a_tiny_database_learns_and_writes_a_normal_run(
    small_run, mnist_dir, tmp_path, capsys
):
    db = tmp_path / "f.sqlite3"
    store = feedback.FeedbackStore(db)
    made = synth.generate(60, "held_out", "fonts", 0.0, seed=5, only=("kristi",))
    for x, label in zip(made.x, made.y, strict=True):
        store.add(x, int(label))
    store.add(np.zeros((28, 28)), 3)
    store.review(None, keep=True)
    store.add(np.full((28, 28), 255.0), 8)  # pending: never learnt
    out = tmp_path / "tuned"
    args = ["finetune", "--model", str(small_run[0]), "--feedback", str(db), "--out", str(out)]
    assert cli.main([*args, "--steps-per-epoch", "40", "--data-dir", str(mnist_dir)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    before, after = metrics["before"], metrics["after"]
    assert after["corrections_held_out_accuracy"] >= before["corrections_held_out_accuracy"]
    assert after["mnist_test_accuracy"] > 0.8  # MNIST replay: it still reads MNIST
    assert metrics["corrections"] == 61 and 0 < metrics["calibration"]["temperature"] < 20
    assert {"corrections_held_out_unsure"} <= after.keys()
    history = json.loads((out / "history.json").read_text())
    assert history["loss"][-1] < 2.0
    config = json.loads((out / "config.json").read_text())  # a config run through train
    assert config["recipe"] == "finetune" and config["steps_per_epoch"] == 40
    assert config["init_from"] == str(small_run[0].resolve()) and config["feedback_db"] == str(db)
    assert config["architecture"] == "classic" and len(metrics["held_out_ids"]) == 8
    for name in ("model.keras", "config.json", "curves.png", "confusion.png"):
        assert (out / name).exists(), name
    assert cli.main(["predict", "--model", str(out), str(tmp_path / "missing.png")]) == 1
    with pytest.raises(MnistCnnError, match=r"already holds a finished run.*another --out"):
        tune(small_run[0], db, out)  # never over a run
    capsys.readouterr()


def test_finetune_needs_some_kept_corrections(small_run, tmp_path):
    db = tmp_path / "f.sqlite3"
    store = feedback.FeedbackStore(db)
    for _ in range(12):
        store.add(np.zeros((28, 28)), 1)
    with pytest.raises(MnistCnnError, match=r"0 kept corrections \(12 wait for review\).*review"):
        tune(small_run[0], db, tmp_path / "out")
    missing = tmp_path / "no" / "such.sqlite3"
    with pytest.raises(MnistCnnError, match=r"no corrections database at .*such"):
        tune(small_run[0], missing, tmp_path / "out2")
    assert not missing.parent.exists()  # nothing made at a mistyped path


def test_the_finetune_recipe_says_what_it_needs(tmp_path):
    with pytest.raises(MnistCnnError, match=r"needs --init-from and --feedback-db"):
        train.make_config("finetune", out=str(tmp_path / "out"))
    assert cli.main(["train", "--recipe", "finetune", "--out", str(tmp_path / "o")]) == 2


def test_an_ensemble_like_the_packaged_model_fine_tunes_as_one_model(small_run, tmp_path):
    from mnist_cnn import models

    path = tmp_path / "ensemble.keras"
    one = models.load(small_run[0])
    models.ensemble([one, one]).save(path)
    db = tmp_path / "f.sqlite3"
    store = feedback.FeedbackStore(db)
    for i in range(12):
        store.add(np.full((28, 28), 20.0 * (i % 10)), i % 10)
    store.review(None, keep=True)
    with pytest.raises(MnistCnnError, match=r"not a \.keras file"):
        tune(db, db, tmp_path / "wrong")  # the database given as the model
    assert not (tmp_path / "wrong" / "config.json").exists()
    result = tune(path, db, tmp_path / "out", steps_per_epoch=3, test_limit=500)
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["architecture"] == "ensemble2" and saved["precision"] == "float32"
    assert len(result.history["loss"]) == 1 and result.metrics["corrections"] == 12
    names = [layer.name for layer in models.load(path).layers]  # both members, tuned as one
    assert [layer.name for layer in result.model.layers] == names


def test_a_full_store_is_507_and_a_broken_one_503(small_run, tmp_path):
    app = serve.create_app(small_run[0], feedback_db=tmp_path / "f.sqlite3")
    body = {"pixels": [[0] * 28] * 28, "label": 1}
    with TestClient(app) as c:
        app.state.served.store.max_rows = 1
        assert c.post("/api/feedback", json=body).status_code == 201
        full = c.post("/api/feedback", json=body)
        assert full.status_code == 507 and "export and clear" in full.json()["detail"]
        app.state.served.store.path = tmp_path / "not-a-folder" / "f.sqlite3"  # unwritable
        app.state.served.store.max_rows = 10
        broken = c.post("/api/feedback", json=body)
        assert broken.status_code == 503 and "cannot" in broken.json()["detail"], broken.text
        assert broken.headers["retry-after"] == "1"
        stats = c.get("/api/feedback/stats")
        assert stats.status_code == 503 and "cannot read" in stats.json()["detail"], stats.text
