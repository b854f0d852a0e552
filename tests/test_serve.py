"""The HTTP API: every route, every kind of bad request, and answers that match `predict`."""

import asyncio
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import number_photo, page_photo, paper, png

from mnist_cnn import data, engines, serve
from mnist_cnn.reading import pages, pooling, predictor


@pytest.fixture(scope="module")
def client(small_run):
    app = serve.create_app(small_run[0] / "model.keras", min_confidence=0.5)
    with TestClient(app, raise_server_exceptions=False) as c:  # a bug shows up as a 500
        yield c


def test_health_and_model_info(client, small_run):
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/api/model").json()
    metrics = small_run[1]
    assert info["params"] == metrics["params"] == 225_034
    assert info["test_accuracy"] == metrics["test_accuracy"]
    assert info["name"] == "classic" and info["engine"] == "keras" and info["min_confidence"] == 0.5
    assert info["pictures"] == "classifier" and info["pool"] is None  # its own reads alone


def test_pixels_give_the_same_answer_as_the_model(client, small_run, test_digits):
    x, y = test_digits
    classify = engines.classifier(small_run[0])
    expected = classify(x[:10, ..., None])
    for i in range(10):
        r = client.post("/api/predict", json={"pixels": x[i].tolist()})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert np.allclose(answer["probabilities"], expected[i], atol=1e-5)
        assert answer["confidence"] == pytest.approx(expected[i].max(), abs=1e-5)
        assert answer["unsure"] == (expected[i].max() < 0.5)
        if not answer["unsure"]:
            assert answer["digit"] == int(expected[i].argmax())
        assert "input" not in answer  # pixels are taken as they are
    right = sum(
        client.post("/api/predict", json={"pixels": x[i].tolist()}).json()["digit"] == y[i]
        for i in range(40)
    )
    assert right >= 36


def test_an_uploaded_photo_is_read_as_predict_reads_it(client, small_run, test_digits):
    x, y = test_digits
    photo = paper(x[0])
    r = client.post("/api/predict", files={"file": ("seven.png", png(photo), "image/png")})
    assert r.status_code == 200, r.text
    answer = r.json()
    seen = np.asarray(answer["input"])
    assert seen.shape == (28, 28)
    reader = predictor.reader_for(small_run[0] / "model.keras", min_confidence=0.5)
    expected = reader.read_digit(png(photo), inputs=True)
    assert np.array_equal(seen, expected.input)
    assert np.allclose(answer["probabilities"], expected.probabilities, atol=1e-5)
    assert answer["digit"] == y[0] and len(answer["probabilities"]) == 10
    assert answer["top3"][0][0] == y[0]
    # the same image as a raw image/* body
    raw = client.post("/api/predict", content=png(photo), headers={"content-type": "image/png"})
    assert raw.json()["probabilities"] == answer["probabilities"]


def test_read_number(client, test_digits):
    x, y = test_digits
    # MNIST's test digits 4-7 ("4149"; the thin 1 of "7210" is missed: docs/reading.md, Limits)
    x, y = x[4:8], y[4:8]
    row = np.concatenate([np.pad(255 - x[i], 6, constant_values=255) for i in range(4)], axis=1)
    r = client.post("/api/read-number", files={"file": ("n.png", png(row), "image/png")})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["text"] == "".join(map(str, y[:4])) and answer["marks"] == []
    assert [d["digit"] for d in answer["digits"]] == list(y[:4])
    assert all(type(d["top3"][0][0]) is int for d in answer["digits"])
    boxes = [d["box"] for d in answer["digits"]]
    assert boxes == sorted(boxes)  # left to right
    # each digit's 28x28 comes back, so a correction of it can be sent as pixels
    for d in answer["digits"]:
        seen = np.array(d["input"])
        assert seen.shape == (28, 28) and seen.max() > 200 and seen[0].max() == 0
    assert answer["size"] == [row.shape[1], row.shape[0]] and answer["sheet"] is None


@pytest.mark.parametrize(
    ("kwargs", "status", "words"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "JSON"),
        ({"json": {"pixels": [[0] * 28] * 27}}, 422, "28"),
        ({"json": {"pixels": [[0] * 27] * 28}}, 422, "28 values"),
        ({"json": {"pixels": [[300] * 28] * 28}}, 422, "between 0 and 255"),
        ({"json": {"pixels": "seven"}}, 422, "pixels"),
        ({"json": {"pixels": [["0"] * 28] * 28}}, 422, "pixels"),  # numbers, not their text
        ({"content": b"x", "headers": {"content-type": "multipart/form-data"}}, 400, "multipart"),
        ({"json": [1, 2, 3]}, 422, "pixels"),
        ({"json": {"image": []}}, 422, "pixels"),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "content type"),
        ({"content": b"hello"}, 415, "content type"),
        ({"files": {"file": ("x.png", b"not an image", "image/png")}}, 400, "not an image"),
        ({"files": {"file": ("x.png", b"", "image/png")}}, 400, "empty"),
        ({"files": {"file": ("x.png", png(np.full((50, 50), 255)), "image/png")}}, 400, "no digit"),
        ({"files": {"picture": ("x.png", b"abc", "image/png")}}, 422, "'file'"),
        ({"files": {"file": ("x.png", png(np.zeros((9, 9)))[:40], "image/png")}}, 400, "image"),
    ],
)
def test_bad_requests_get_a_json_error_never_a_500(client, kwargs, status, words):
    r = client.post("/api/predict", **kwargs)
    assert r.status_code == status, r.text
    assert words in str(r.json()["detail"])


def test_read_number_errors(client):
    r = client.post("/api/read-number", json={"pixels": []})
    assert r.status_code == 415
    r = client.post("/api/read-number", files={"file": ("x.gif", b"GIF89a", "image/gif")})
    assert r.status_code == 400 and "image" in r.json()["detail"]


def test_a_body_over_one_megabyte_gets_413(client):
    big = b"\x00" * (serve.MAX_BODY + 1)
    r = client.post("/api/predict", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413 and "over" in r.json()["detail"]

    def chunks():  # no content-length: counted as it streams in
        for _ in range(40):
            yield b"\x00" * 32_768

    r = client.post("/api/predict", content=chunks(), headers={"content-type": "image/png"})
    assert r.status_code == 413
    assert client.get("/healthz").status_code == 200  # and the server goes on


def test_page_and_docs_are_served_without_a_cdn(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    assert "http" not in page.text.replace("http-equiv", "")  # every asset from this server
    assert "/api/predict" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


def test_batcher_answers_each_caller_with_its_own_rows():
    calls = []

    def classify(x):
        calls.append(len(x))
        return x.reshape(len(x), -1)[:, :10] * 2

    async def main():
        batcher = serve.Batcher(classify)
        worker = asyncio.create_task(batcher.run())
        inputs = [np.full((1, 28, 28, 1), i, np.float32) for i in range(20)]
        outs = await asyncio.gather(*(batcher(x) for x in inputs))
        worker.cancel()
        return outs

    outs = asyncio.run(main())
    assert [float(o[0, 0]) for o in outs] == [2.0 * i for i in range(20)]
    assert sum(calls) == 20 and len(calls) < 20  # requests that waited together ran together


def test_default_model_ships_and_serves(tmp_path):
    app = serve.create_app()
    with TestClient(app) as c:
        info = c.get("/api/model").json()
    assert info["test_accuracy"] >= 0.995 and info["params"] > 0
    assert info["engine"] == "onnx-int8"  # the default engine picks the shipped int8 twin
    # a picture's digits: the packaged reader's network pooled with the classifier
    pool = pooling.beside(predictor.reader_path(None))
    assert info["pictures"] == "pooled" and info["pool"] == {
        "network": pool.network,
        "classifier": pool.classifier,
    }
    assert engines.packaged_model().stat().st_size <= 5 * 1024 * 1024
    assert json.loads((engines.packaged_model().parent / "metrics.json").read_text())
    # a reader without a pooling.json beside its network reads with its network alone
    alone = tmp_path / predictor.READER_FILE
    alone.write_bytes(predictor.reader_path(None).read_bytes())
    with TestClient(serve.create_app(alone)) as c:
        info = c.get("/api/model").json()
    assert info["pictures"] == "network" and info["pool"] is None


def test_onnx_engine_serves_the_same_answers(small_run, test_digits):
    x, _ = test_digits
    app = serve.create_app(small_run[0], engine="onnx")
    with TestClient(app) as c:
        assert c.get("/api/model").json()["engine"] == "onnx"
        r = c.post("/api/predict", json={"pixels": x[0].tolist()}).json()
    expected = engines.classifier(small_run[0])(x[:1, ..., None])[0]
    assert np.allclose(r["probabilities"], expected, atol=1e-4)


# ------------------------------------------------------------------ hostile clients


def test_model_info_shows_no_server_paths(client, small_run):
    info = client.get("/api/model").json()
    assert "path" not in info and str(small_run[0]) not in json.dumps(info)


@pytest.mark.parametrize("shape", [(2, 300), (4, 4960), (1, 3)])
def test_thin_shapes_get_an_answer_or_a_400_never_a_500(client, shape):
    page = np.full((shape[0] + 40, shape[1] + 40), 255, np.uint8)
    page[20 : 20 + shape[0], 20 : 20 + shape[1]] = 0
    for route in ("/api/read-number", "/api/predict"):
        r = client.post(route, files={"file": ("bar.png", png(page), "image/png")})
        assert r.status_code in (200, 400), (route, r.status_code, r.text)


def test_image_work_runs_off_the_event_loop(small_run, monkeypatch):
    """While an upload is being decoded, /healthz still answers."""
    import threading

    started, release = threading.Event(), threading.Event()
    real = predictor.to_gray

    def slow(data):
        started.set()
        release.wait(10)
        return real(data)

    monkeypatch.setattr(predictor, "to_gray", slow)
    app = serve.create_app(small_run[0] / "model.keras")
    with TestClient(app, raise_server_exceptions=False) as c:
        page = png(np.full((60, 60), 255))
        upload = threading.Thread(
            target=lambda: c.post("/api/predict", files={"file": ("p.png", page, "image/png")})
        )
        upload.start()
        assert started.wait(10)
        assert c.get("/healthz").status_code == 200  # answered while the upload is stuck
        release.set()
        upload.join(10)


def test_a_stalled_body_gets_408_and_a_vanished_client_one_log_line(small_run, monkeypatch, caplog):
    monkeypatch.setattr(serve, "BODY_TIMEOUT", 0.2)
    app = serve.create_app(small_run[0] / "model.keras")

    async def call(receive) -> tuple[int, bytes]:
        sent = []

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/api/predict",
            "raw_path": b"/api/predict",
            "query_string": b"",
            "headers": [(b"content-type", b"image/png")],
            "client": ("127.0.0.1", 5),
            "server": ("127.0.0.1", 80),
            "scheme": "http",
            "http_version": "1.1",
            "root_path": "",
        }
        await app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        return start["status"], b"".join(m.get("body", b"") for m in sent)

    async def stalled():
        await asyncio.sleep(5)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def vanished():
        return {"type": "http.disconnect"}

    with TestClient(app):  # runs the lifespan (the batcher) as a server would
        status, body = asyncio.run(call(stalled))
        assert status == 408 and b"no body data" in body
        with caplog.at_level("INFO", logger="mnist_cnn.serve"):
            status, _ = asyncio.run(call(vanished))
        assert status == 499
        lines = [r for r in caplog.records if r.name == "mnist_cnn.serve"]
        assert len(lines) == 1 and lines[0].exc_info is None and "client left" in lines[0].message


def test_uploads_held_at_once_are_bounded_per_client_and_in_all(small_run, monkeypatch):
    """Stalled uploads hold at most the client's share of the body budget: the next one gets
    503 with Retry-After, another client is still served, and the memory is let go."""
    monkeypatch.setattr(serve, "CLIENT_BODY_BUDGET", 3 * serve.MAX_BODY)
    app = serve.create_app(small_run[0] / "model.keras")
    chunk = b"\0" * (serve.MAX_BODY - 1)
    statuses: dict[str, list[int]] = {"stalled": [], "other": []}

    def scope(host: str) -> dict:
        return {
            "type": "http", "method": "POST", "path": "/api/predict",
            "raw_path": b"/api/predict", "query_string": b"",
            "headers": [(b"content-type", b"image/png")], "client": (host, 5),
            "server": ("127.0.0.1", 80), "scheme": "http", "http_version": "1.1",
            "root_path": "",
        }  # fmt: skip

    async def upload(host: str, kind: str, release: asyncio.Event) -> None:
        parts = [{"type": "http.request", "body": chunk, "more_body": True}]

        async def receive():
            if parts:
                return parts.pop()
            await release.wait()
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                statuses[kind].append(message["status"])
                if kind == "stalled" and message["status"] == 503:
                    assert (b"retry-after", b"1") in message["headers"]

        await app(scope(host), receive, send)

    async def burst() -> None:
        release = asyncio.Event()
        stalled = [asyncio.create_task(upload("10.0.0.9", "stalled", release)) for _ in range(6)]
        await asyncio.sleep(0.5)
        other = asyncio.Event()
        other.set()
        await upload("10.0.0.1", "other", other)  # served while the six stall
        held = app.middleware_stack
        while not isinstance(held, serve.LimitBody):
            held = held.app
        assert held.held == 3 * len(chunk)  # the three stalled ones that were let in
        release.set()
        await asyncio.gather(*stalled)
        assert held.held == 0 and not held.by_client

    with TestClient(app):
        asyncio.run(burst())
    assert sorted(statuses["stalled"]) == [400, 400, 400, 503, 503, 503]  # (zeros: no image)
    assert statuses["other"] == [400]


def test_an_unexpected_failure_in_image_work_is_a_400_and_one_log_line(client, monkeypatch, caplog):
    from mnist_cnn.reading import paper

    def broken(gray):
        raise ValueError("All-NaN slice encountered")

    monkeypatch.setattr(paper, "prepare", broken)
    page = png(np.full((60, 60), 255))
    with caplog.at_level("WARNING", logger="mnist_cnn.serve"):
        for route in ("/api/predict", "/api/read-number"):
            r = client.post(route, files={"file": ("p.png", page, "image/png")})
            assert r.status_code == 400 and "could not read this image" in r.json()["detail"]
    lines = [r for r in caplog.records if r.name == "mnist_cnn.serve"]
    assert len(lines) == 2 and all("ValueError" in r.message for r in lines)


@pytest.fixture(scope="module")
def packaged():
    with TestClient(serve.create_app(feedback=False), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def held_out(mnist_dir):
    _, (x, y) = data.load_arrays(mnist_dir)
    return pages.Writers(x[..., 0], y, "held_out")


def test_read_number_with_marks_and_the_comma_choice(packaged, held_out):
    rng = np.random.default_rng(0)
    jpeg = number_photo("3,14", held_out, rng)
    files = {"file": ("n.jpg", jpeg, "image/jpeg")}
    answer = packaged.post("/api/read-number", files=files).json()
    assert answer["text"] == "3,14" and answer["value"] == 3.14
    assert [m["kind"] for m in answer["marks"]] == [","]
    told = packaged.post("/api/read-number?decimal_comma=false", files=files).json()
    assert told["text"] == "3,14" and told["value"] is None
    bad = packaged.post("/api/read-number?decimal_comma=perhaps", files=files)
    assert bad.status_code == 422


def test_the_server_pools_each_digit_as_the_library_does(packaged, real_dir):
    """A real drawing whose second digit the network alone is unsure of (0?876), and which the
    network and the classifier pooled read whole (tests/test_reading_pooling.py)."""
    from mnist_cnn.reading import predictor

    path = real_dir / "drawn" / "mrsadeghi_09876.png"
    files = {"file": (path.name, path.read_bytes(), "image/png")}
    answer = packaged.post("/api/read-number", files=files).json()
    assert answer["text"] == predictor.Reader().read_number(path).text == "09876"


def test_read_numbers_gives_lines_and_a_table(packaged, held_out):
    # a photo the reader reads right (test_reading_reader measures how often): the route is
    # what is tested here
    jpeg = page_photo([["123"], ["456"]], held_out, np.random.default_rng(1))
    r = packaged.post("/api/read-numbers", content=jpeg, headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["table"] == [["123"], ["456"]] and page["columns"] == [[0], [0]]
    assert [[n["value"] for n in line] for line in page["lines"]] == [[123], [456]]
    assert all(
        np.shape(d["input"]) == (28, 28) for line in page["lines"] for d in line[0]["digits"]
    )
    dots = np.tile(np.pad(np.zeros((3, 3)), 3, constant_values=255), (70, 70))
    refused = packaged.post("/api/read-numbers", files={"file": ("d.png", png(dots), "image/png")})
    assert refused.status_code == 400
    assert "too many" in refused.json()["detail"] or "no digits" in refused.json()["detail"]
    schema = packaged.get("/openapi.json").json()["components"]["schemas"]
    assert {"Digit", "Number", "Page", "Mark"} <= set(schema)
