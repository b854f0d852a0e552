"""The HTTP API: every route, every kind of bad request, and answers that match `predict`."""

import asyncio
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import paper, png

from mnist_cnn import cli, digits, engines, serve


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


def test_an_uploaded_photo_is_normalised_like_predict_does(client, small_run, test_digits):
    x, y = test_digits
    photo = paper(x[0])
    r = client.post("/api/predict", files={"file": ("seven.png", png(photo), "image/png")})
    assert r.status_code == 200, r.text
    answer = r.json()
    seen = np.asarray(answer["input"])
    assert seen.shape == (28, 28)
    assert np.allclose(seen, digits.normalise(photo.astype(np.float32)).round(), atol=1)
    assert answer["digit"] == y[0] and len(answer["probabilities"]) == 10
    assert answer["top3"][0][0] == y[0]
    # the same image as a raw image/* body
    raw = client.post("/api/predict", content=png(photo), headers={"content-type": "image/png"})
    assert raw.json()["probabilities"] == answer["probabilities"]


def test_read_number(client, test_digits):
    x, y = test_digits
    row = np.concatenate([np.pad(255 - x[i], 6, constant_values=255) for i in range(4)], axis=1)
    r = client.post("/api/read-number", files={"file": ("n.png", png(row), "image/png")})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["number"] == "".join(map(str, y[:4]))
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
        ({"json": [1, 2, 3]}, 422, "pixels"),
        ({"json": {"image": []}}, 422, "pixels"),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "content type"),
        ({"content": b"hello"}, 415, "content type"),
        ({"files": {"file": ("x.png", b"not an image", "image/png")}}, 400, "not an image"),
        ({"files": {"file": ("x.png", b"", "image/png")}}, 400, "empty"),
        ({"files": {"file": ("x.png", png(np.full((50, 50), 255)), "image/png")}}, 400, "no ink"),
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
    assert engines.packaged_model().stat().st_size <= 5 * 1024 * 1024
    assert json.loads((engines.packaged_model().parent / "metrics.json").read_text())


def test_onnx_engine_serves_the_same_answers(small_run, test_digits):
    x, _ = test_digits
    app = serve.create_app(small_run[0], engine="onnx")
    with TestClient(app) as c:
        assert c.get("/api/model").json()["engine"] == "onnx"
        r = c.post("/api/predict", json={"pixels": x[0].tolist()}).json()
    expected = engines.classifier(small_run[0])(x[:1, ..., None])[0]
    assert np.allclose(r["probabilities"], expected, atol=1e-4)


def test_worker_processes_take_their_settings_from_the_environment(small_run, monkeypatch):
    monkeypatch.setenv("MNIST_CNN_MODEL", str(small_run[0]))
    monkeypatch.setenv("MNIST_CNN_ENGINE", "keras")
    monkeypatch.setenv("MNIST_CNN_MIN_CONFIDENCE", "0.7")
    monkeypatch.setenv("MNIST_CNN_THREADS", "1")
    with TestClient(serve.app_from_env()) as c:
        info = c.get("/api/model").json()
    assert info["min_confidence"] == 0.7 and info["params"] == 225_034


def test_serve_command_with_two_workers_answers(small_run, test_digits, tmp_path):
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "mnist_cnn", "serve", "--model", str(small_run[0])]
    server = subprocess.Popen([*command, "--port", str(port), "--workers", "2"])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, "the server exited"
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    assert json.loads(r.read()) == {"status": "ok"}
                    break
            except OSError:
                assert time.monotonic() < deadline, "no answer from the server"
                time.sleep(0.5)
        body = json.dumps({"pixels": test_digits[0][0].tolist()}).encode()
        request = urllib.request.Request(
            url + "/api/predict", body, {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            assert len(json.loads(r.read())["probabilities"]) == 10
        # each process listens on its own socket (SO_REUSEPORT), so the kernel spreads a burst
        # of connections over both: fewer than 8 of 40 on one happens about 1 in 20,000 (a
        # shared socket hands most of a burst to whichever process wakes first)
        listeners = _children(server.pid)
        while len(listeners) < 2:  # the other one may still be loading its model
            assert time.monotonic() < deadline, f"{len(listeners)} of 2 workers listen"
            time.sleep(0.5)
            listeners = _children(server.pid)
        assert len(listeners) == 2
        # a socket of its own each (uvicorn's --workers shares one, inherited, socket)
        assert not set.intersection(*(_listening_inodes(pid) for pid in listeners))
        sockets = [socket.socket() for _ in range(40)]
        for s in sockets:  # all at once, as a load generator opens them
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
        time.sleep(1)
        assert all(_connections(pid, port) >= 8 for pid in listeners)
        for s in sockets:
            s.close()
    finally:
        server.terminate()
        assert server.wait(60) == 0  # a clean stop, that takes its workers with it
    assert not [pid for pid in listeners if Path(f"/proc/{pid}").exists()]


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (the server's workers; spawn adds a resource tracker
    that holds no socket, so keep those that listen)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return [k for k in kids if _listens(k)]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _tcp_rows() -> list[list[str]]:
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if Path(table).exists():
            rows += [line.split() for line in Path(table).read_text().splitlines()[1:]]
    return rows


def _listening_inodes(pid: int) -> set[str]:
    inodes = _socket_inodes(pid)
    return {row[9] for row in _tcp_rows() if row[3] == "0A" and row[9] in inodes}  # 0A: LISTEN


def _listens(pid: int) -> bool:
    return bool(_listening_inodes(pid))


def _connections(pid: int, port: int) -> int:
    """Established connections to `port` that process `pid` holds."""
    inodes = _socket_inodes(pid)
    local = f":{port:04X}"
    return sum(
        row[3] == "01" and row[1].endswith(local) and row[9] in inodes for row in _tcp_rows()
    )


def test_serve_refuses_a_port_in_use(small_run, capsys):

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["serve", "--model", str(small_run[0]), "--port", str(port), "--workers", "2"]
        assert cli.main(args) == 2
    assert "cannot listen" in capsys.readouterr().err


def test_serve_command_reports_a_missing_model(tmp_path, capsys):

    code = cli.main(["serve", "--model", str(tmp_path / "nope.keras"), "--workers", "2"])
    assert code == 2 and "no model at" in capsys.readouterr().err


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
    real = digits.read_image

    def slow(data):
        started.set()
        release.wait(10)
        return real(data)

    monkeypatch.setattr(digits, "read_image", slow)
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


def test_half_sent_headers_are_cut_off(small_run, monkeypatch):
    import threading
    import time

    import uvicorn

    monkeypatch.setattr(serve, "HEADER_TIMEOUT", 0.5)
    app = serve.create_app(small_run[0] / "model.keras")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=serve.http_protocol(), **serve.UVICORN
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            started = time.perf_counter()
            assert conn.recv(100) == b""  # the server closed it
            assert time.perf_counter() - started < 4
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"200 OK" in conn.recv(1000)  # whole requests are answered as ever
    finally:
        server.should_exit = True
        thread.join(10)


def test_an_unexpected_failure_in_image_work_is_a_400_and_one_log_line(client, monkeypatch, caplog):
    def broken(gray, classify=None):
        raise ValueError("All-NaN slice encountered")

    monkeypatch.setattr(digits, "normalise", broken)
    monkeypatch.setattr(digits, "locate_number", broken)
    page = png(np.full((60, 60), 255))
    with caplog.at_level("WARNING", logger="mnist_cnn.serve"):
        for route in ("/api/predict", "/api/read-number"):
            r = client.post(route, files={"file": ("p.png", page, "image/png")})
            assert r.status_code == 400 and "could not read this image" in r.json()["detail"]
    lines = [r for r in caplog.records if r.name == "mnist_cnn.serve"]
    assert len(lines) == 2 and all("ValueError" in r.message for r in lines)
