"""Tests for mnist_cnn.data: IDX parsing, verification, download fallback, locating, splitting.

Everything except `test_real_mnist` runs on small synthetic IDX files in tmp_path and on
local HTTP servers bound to 127.0.0.1; nothing here touches the internet or ~/.cache.
"""

import functools
import gzip
import hashlib
import http.server
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import fashion
import numpy as np
import pytest

from mnist_cnn import data
from mnist_cnn.data import DataError

# ---------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """Encode an array as IDX: 00 00, type code, ndim, big-endian uint32 dims, data."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write(path: Path, raw: bytes, gz: bool) -> Path:
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return path


def synthetic_set(
    rng: np.random.Generator, n_train: int = 12, n_test: int = 5
) -> dict[str, np.ndarray]:
    """Small MNIST-shaped arrays keyed like data.FILES."""
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": np.arange(n_train, dtype=np.uint8) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test, dtype=np.uint8) * 3) % 10,
    }


def write_set(directory: Path, arrays: dict[str, np.ndarray], gz: bool = True) -> dict[str, str]:
    """Write the four files into `directory`; return base name -> sha256 of the IDX bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for key, base in data.FILES.items():
        raw = idx_bytes(arrays[key])
        write(directory / (base + ".gz" if gz else base), raw, gz)
        hashes[base] = hashlib.sha256(raw).hexdigest()
    return hashes


def dead_url() -> str:
    """A 127.0.0.1 URL with nothing listening: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()


class Server:
    """A stdlib HTTP server on 127.0.0.1 serving one folder, in a background thread."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_Handler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.requests = []  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests  # type: ignore[attr-defined]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may write to the real cache or reach the internet; local URLs bypass proxies.

    MNIST_DATA_DIR is left alone here (the real-data test needs it); tests of locate() clear
    it themselves.
    """
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("MNIST_MIRRORS", dead_url())
    monkeypatch.setenv("FASHION_MNIST_MIRRORS", dead_url())
    monkeypatch.delenv("FASHION_MNIST_DATA_DIR", raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return synthetic_set(rng)


@pytest.fixture
def fake_sha(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    """Make data.SHA256 expect the synthetic files' hashes instead of the real ones."""

    def apply(hashes: dict[str, str]) -> None:
        for base, digest in hashes.items():
            monkeypatch.setitem(data.SHA256, base, digest)

    return apply


@pytest.fixture
def synthetic_dir(
    tmp_path: Path, arrays: dict[str, np.ndarray], fake_sha: Callable[[dict[str, str]], None]
) -> Path:
    """A folder of four valid synthetic gz files whose hashes data.SHA256 expects."""
    directory = tmp_path / "synthetic"
    fake_sha(write_set(directory, arrays))
    return directory


@pytest.fixture
def serve() -> Iterator[Callable[[Path], Server]]:
    """Start local HTTP servers; all are shut down when the test ends."""
    servers: list[Server] = []

    def start(directory: Path) -> Server:
        servers.append(Server(directory))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def mirrors(tmp_path: Path, synthetic_dir: Path, serve: Callable[[Path], Server]) -> dict:
    """Mirrors of every kind: good, corrupted (wrong content), truncated gzip, empty (404)."""
    corrupt, truncated, empty = tmp_path / "corrupt", tmp_path / "truncated", tmp_path / "empty"
    for folder in (corrupt, truncated, empty):
        folder.mkdir()
    for base in data.FILES.values():
        raw = gzip.decompress((synthetic_dir / f"{base}.gz").read_bytes())
        flipped = raw[:-1] + bytes([raw[-1] ^ 0xFF])  # still valid IDX, wrong hash
        write(corrupt / f"{base}.gz", flipped, gz=True)
        good_gz = (synthetic_dir / f"{base}.gz").read_bytes()
        (truncated / f"{base}.gz").write_bytes(good_gz[: len(good_gz) // 2])
    return {
        "good": serve(synthetic_dir),
        "corrupt": serve(corrupt),
        "truncated": serve(truncated),
        "empty": serve(empty),
        "dead": dead_url(),
    }


def assert_verified(dest: Path) -> None:
    """dest holds exactly the four verified .gz files and nothing else (no temp files)."""
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{b}.gz" for b in data.FILES.values())
    for base in data.FILES.values():
        data.read_idx(dest / f"{base}.gz", data.SHA256[base])


# ---------------------------------------------------------------- constants


def test_constants() -> None:
    assert set(data.FILES) == {"train_images", "train_labels", "test_images", "test_labels"}
    assert set(data.SHA256) == set(data.FILES.values())
    assert data.MIRRORS[:2] == (
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    )
    assert "http://yann.lecun.com/exdb/mnist/" in data.MIRRORS
    assert all(m.endswith("/") for m in data.MIRRORS)
    assert issubclass(DataError, data.MnistCnnError)


# ---------------------------------------------------------------- parse_idx / read_idx


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_read_idx_good(tmp_path: Path, rng: np.random.Generator, gz: bool) -> None:
    images = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    raw = idx_bytes(images)
    path = write(tmp_path / "images", raw, gz)  # no suffix: gzip is detected by its magic
    out = data.read_idx(path, expected_sha256=hashlib.sha256(raw).hexdigest())
    assert out.dtype == np.uint8 and out.shape == (3, 28, 28)
    np.testing.assert_array_equal(out, images)


def test_parse_idx_labels_and_empty() -> None:
    labels = np.array([7, 2, 1, 0, 4], dtype=np.uint8)
    np.testing.assert_array_equal(data.parse_idx(idx_bytes(labels)), labels)
    assert data.parse_idx(idx_bytes(np.zeros((0, 28, 28)))).shape == (0, 28, 28)


def test_read_idx_gz_suffix_on_raw_file(tmp_path: Path) -> None:
    labels = np.arange(10, dtype=np.uint8)
    path = write(tmp_path / "labels.gz", idx_bytes(labels), gz=False)
    np.testing.assert_array_equal(data.read_idx(path), labels)


def _bad_files() -> dict[str, tuple[bytes, str]]:
    good = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    return {
        "truncated payload": (good[:-1], "truncated"),
        "trailing bytes": (good + b"\x00\x00", "2 unexpected bytes"),
        "bad magic": (b"\x01\x00" + good[2:], "not an IDX file"),
        "unsupported type": (good[:2] + b"\x0d" + good[3:], "type code 0x0d"),
        "truncated header": (good[:9], "truncated"),
        "too short": (b"\x00\x00", "truncated"),
        "zero dims": (b"\x00\x00\x08\x00", "no dimensions"),
    }


@pytest.mark.parametrize("case", list(_bad_files()))
@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_read_idx_rejects(tmp_path: Path, case: str, gz: bool) -> None:
    raw, phrase = _bad_files()[case]
    path = write(tmp_path / "broken-idx1-ubyte", raw, gz)
    with pytest.raises(DataError, match=phrase) as info:
        data.read_idx(path)
    assert path.name in str(info.value)


@pytest.mark.parametrize("case", list(_bad_files()))
def test_parse_idx_rejects_naming_source(case: str) -> None:
    raw, phrase = _bad_files()[case]
    with pytest.raises(DataError, match=phrase) as info:
        data.parse_idx(raw, name="some-file-idx3-ubyte")
    assert "some-file-idx3-ubyte" in str(info.value)


def test_read_idx_truncated_gzip(tmp_path: Path) -> None:
    packed = gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8) % 251))
    path = tmp_path / "cut-idx1-ubyte.gz"
    path.write_bytes(packed[: len(packed) - 20])
    with pytest.raises(DataError, match="corrupt or truncated gzip") as info:
        data.read_idx(path)
    assert path.name in str(info.value)


def test_read_idx_corrupt_gzip(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8) % 251)))
    packed[15:25] = b"\xff" * 10
    path = tmp_path / "garbled-idx1-ubyte.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(DataError, match="gzip") as info:
        data.read_idx(path)
    assert path.name in str(info.value)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_read_idx_wrong_sha256(tmp_path: Path, gz: bool) -> None:
    path = write(tmp_path / "labels-idx1-ubyte", idx_bytes(np.arange(5)), gz)
    with pytest.raises(DataError, match="not the original MNIST") as info:
        data.read_idx(path, expected_sha256="0" * 64)
    message = str(info.value)
    assert path.name in message and "delete it" in message


def test_read_idx_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere-idx1-ubyte.gz"
    with pytest.raises(DataError, match="does not exist") as info:
        data.read_idx(path)
    assert path.name in str(info.value)


def test_read_idx_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read") as info:
        data.read_idx(tmp_path)
    assert str(tmp_path) in str(info.value)


# ---------------------------------------------------------------- cache_dir / find_file


def test_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "xdg" / "mnist-cnn" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.cache_dir() == tmp_path / "home" / ".cache" / "mnist-cnn" / "mnist"


def test_find_file(tmp_path: Path) -> None:
    assert data.find_file(tmp_path, "x-idx1-ubyte") is None
    (tmp_path / "x-idx1-ubyte").write_bytes(b"")
    assert data.find_file(tmp_path, "x-idx1-ubyte") == tmp_path / "x-idx1-ubyte"
    (tmp_path / "x-idx1-ubyte.gz").write_bytes(b"")
    assert data.find_file(tmp_path, "x-idx1-ubyte") == tmp_path / "x-idx1-ubyte.gz"
    (tmp_path / "y-idx1-ubyte.gz").mkdir()  # a folder is not a file
    assert data.find_file(tmp_path, "y-idx1-ubyte") is None


# ---------------------------------------------------------------- load_arrays


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_load_arrays_synthetic(tmp_path: Path, arrays: dict, fake_sha: Callable, gz: bool) -> None:
    fake_sha(write_set(tmp_path, arrays, gz=gz))
    (x_train, y_train), (x_test, y_test) = data.load_arrays(tmp_path)
    assert x_train.shape == (12, 28, 28, 1) and x_train.dtype == np.float32
    assert x_test.shape == (5, 28, 28, 1) and x_test.dtype == np.float32
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    np.testing.assert_array_equal(x_train[..., 0], arrays["train_images"])  # unscaled 0..255
    np.testing.assert_array_equal(y_test, arrays["test_labels"])


def test_load_arrays_checks_sha256(synthetic_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(data.SHA256, "t10k-labels-idx1-ubyte", "f" * 64)
    with pytest.raises(DataError, match="not the original MNIST") as info:
        data.load_arrays(synthetic_dir)
    assert "t10k-labels-idx1-ubyte" in str(info.value)


def test_load_arrays_count_mismatch(tmp_path: Path, arrays: dict, fake_sha: Callable) -> None:
    arrays["train_labels"] = arrays["train_labels"][:-1]
    fake_sha(write_set(tmp_path, arrays))
    with pytest.raises(DataError, match=r"12 images but .* 11 labels") as info:
        data.load_arrays(tmp_path)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and "train-labels-idx1-ubyte" in message


def test_load_arrays_bad_label(tmp_path: Path, arrays: dict, fake_sha: Callable) -> None:
    arrays["test_labels"][2] = 10
    fake_sha(write_set(tmp_path, arrays))
    with pytest.raises(DataError, match="label 10") as info:
        data.load_arrays(tmp_path)
    assert "t10k-labels-idx1-ubyte" in str(info.value)


def test_load_arrays_bad_image_shape(tmp_path: Path, arrays: dict, fake_sha: Callable) -> None:
    arrays["test_images"] = arrays["test_images"][:, :27, :]
    fake_sha(write_set(tmp_path, arrays))
    with pytest.raises(DataError, match="28x28") as info:
        data.load_arrays(tmp_path)
    assert "t10k-images-idx3-ubyte" in str(info.value)


# ---------------------------------------------------------------- download


def test_download_falls_back(
    tmp_path: Path, mirrors: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "dest"
    order = [mirrors["dead"], mirrors["corrupt"].url, mirrors["good"].url]
    assert data.download(dest, mirrors=order, timeout=5, progress=False) == dest
    assert_verified(dest)
    assert len(mirrors["good"].requests) == 4 and len(mirrors["corrupt"].requests) == 4
    err = capsys.readouterr().err
    assert mirrors["dead"] in err and mirrors["corrupt"].url in err
    assert "not the original MNIST" in err and "trying the next mirror" in err

    # Second call: everything present and valid, so nothing is fetched again.
    data.download(dest, mirrors=[mirrors["good"].url], progress=False)
    assert len(mirrors["good"].requests) == 4


def test_download_with_progress_bar(
    tmp_path: Path, mirrors: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "dest"
    data.download(dest, mirrors=[mirrors["good"].url.rstrip("/")], progress=True)
    assert_verified(dest)
    assert "downloaded" in capsys.readouterr().err


def test_download_replaces_corrupt_file(tmp_path: Path, mirrors: dict) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    bad = dest / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(b"not mnist"))
    data.download(dest, mirrors=[mirrors["good"].url], progress=False)
    assert_verified(dest)


def test_download_all_mirrors_fail(tmp_path: Path, mirrors: dict) -> None:
    silent = socket.socket()  # accepts connections (backlog) but never answers: a timeout
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
    bad = [
        mirrors["dead"],
        mirrors["corrupt"].url,
        mirrors["truncated"].url,
        mirrors["empty"].url,
        silent_url,
    ]
    dest = tmp_path / "dest"
    try:
        with pytest.raises(DataError) as info:
            data.download(dest, mirrors=bad, timeout=0.3, progress=False)
    finally:
        silent.close()
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert all(url in message for url in bad)
    assert "HTTP 404" in message and "gzip" in message and "no answer within" in message
    assert "--data-dir" in message and "MNIST_DATA_DIR" in message
    assert list(dest.iterdir()) == []


def test_download_honours_mnist_mirrors(
    tmp_path: Path, mirrors: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNIST_MIRRORS", f"{mirrors['dead']}, {mirrors['good'].url}")
    dest = tmp_path / "dest"
    data.download(dest, progress=False)
    assert_verified(dest)
    assert len(mirrors["good"].requests) == 4


def test_download_defaults_to_builtin_mirrors(
    tmp_path: Path, mirrors: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MNIST_MIRRORS")
    monkeypatch.setattr(data, "MIRRORS", (mirrors["dead"], mirrors["good"].url))
    data.download(progress=False)  # dest defaults to the (temporary) cache dir
    assert_verified(data.cache_dir())


# ---------------------------------------------------------------- locate


def test_locate_explicit_dir(synthetic_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_DATA_DIR", "/nonexistent")  # the argument wins over the env
    assert data.locate(synthetic_dir) == synthetic_dir
    assert data.locate(str(synthetic_dir)) == synthetic_dir


def test_locate_explicit_dir_missing_file(
    synthetic_dir: Path, mirrors: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNIST_MIRRORS", mirrors["good"].url)
    (synthetic_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="lacks t10k-labels-idx1-ubyte") as info:
        data.locate(synthetic_dir)
    assert str(synthetic_dir) in str(info.value)
    assert mirrors["good"].requests == []  # never downloads instead of a named folder


def test_locate_explicit_dir_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as info:
        data.locate(tmp_path / "nope")
    assert "nope" in str(info.value)


def test_locate_env_var(
    synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNIST_DATA_DIR", str(synthetic_dir))
    assert data.locate() == synthetic_dir
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="MNIST_DATA_DIR") as info:
        data.locate()
    assert "train-images-idx3-ubyte" in str(info.value)


def test_locate_uses_complete_cache(
    tmp_path: Path, arrays: dict, fake_sha: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    cache = data.cache_dir()
    assert cache.is_relative_to(tmp_path)
    fake_sha(write_set(cache, arrays))
    assert data.locate() == cache


def test_locate_downloads_into_empty_cache(
    tmp_path: Path, mirrors: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="downloading is off") as info:
        data.locate(download_if_missing=False)
    assert "--data-dir" in str(info.value) and "MNIST_DATA_DIR" in str(info.value)

    monkeypatch.setenv("MNIST_MIRRORS", mirrors["good"].url)
    cache = data.locate()
    assert cache == data.cache_dir() and cache.is_relative_to(tmp_path)
    assert_verified(cache)
    (x_train, _), (x_test, _) = data.load_arrays()
    assert len(x_train) == 12 and len(x_test) == 5


# ---------------------------------------------------------------- split_validation / load


def test_split_validation() -> None:
    x = np.arange(100)
    y = x % 10
    x_tr, y_tr, x_val, y_val = data.split_validation(x, y, val_size=20, seed=3)
    assert len(x_tr) == len(y_tr) == 80 and len(x_val) == len(y_val) == 20
    assert set(x_tr).isdisjoint(x_val) and set(x_tr) | set(x_val) == set(range(100))
    np.testing.assert_array_equal(y_tr, x_tr % 10)  # images and labels stay paired
    np.testing.assert_array_equal(y_val, x_val % 10)

    again = data.split_validation(x, y, val_size=20, seed=3)
    np.testing.assert_array_equal(again[2], x_val)
    other = data.split_validation(x, y, val_size=20, seed=4)
    assert set(other[2]) != set(x_val)


def test_split_validation_edges() -> None:
    x, y = np.arange(10), np.arange(10)
    x_tr, _, x_val, y_val = data.split_validation(x, y, val_size=0)
    assert len(x_tr) == 10 and x_val.shape == (0,) and y_val.shape == (0,)
    assert len(data.split_validation(x, y, val_size=9)[0]) == 1
    for bad in (10, 11, -1):
        with pytest.raises(DataError, match="--val-size"):
            data.split_validation(x, y, val_size=bad)


def test_load_synthetic(synthetic_dir: Path) -> None:
    ds = data.load(synthetic_dir, val_size=4)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (8, 4, 5)
    assert ds.x_val.shape == (4, 28, 28, 1) and "train=8" in repr(ds)

    limited = data.load(synthetic_dir, val_size=4, train_limit=3, test_limit=2)
    assert (len(limited.y_train), len(limited.y_val), len(limited.y_test)) == (3, 4, 2)
    np.testing.assert_array_equal(limited.x_val, ds.x_val)  # val carved before the limit
    np.testing.assert_array_equal(limited.x_train, ds.x_train[:3])
    np.testing.assert_array_equal(limited.x_test, ds.x_test[:2])

    with pytest.raises(DataError, match="--train-limit"):
        data.load(synthetic_dir, train_limit=0, val_size=4)
    with pytest.raises(DataError, match="--val-size"):
        data.load(synthetic_dir, val_size=12)


# ---------------------------------------------------------------- Fashion-MNIST


@pytest.fixture
def fashion_set(tmp_path, arrays, monkeypatch):
    """Synthetic Fashion-MNIST files whose hashes fashion.FASHION_SHA256 expects, and no
    system copy: (folder, hashes)."""
    folder = tmp_path / "fashion-src"
    hashes = write_set(folder, arrays)
    for base, digest in hashes.items():
        monkeypatch.setitem(fashion.FASHION_SHA256, base, digest)
    monkeypatch.setattr(fashion, "FASHION_SYSTEM", tmp_path / "no-system-copy")
    return folder, hashes


def test_fashion_comes_from_the_env_the_cache_or_the_system_package(fashion_set, monkeypatch):
    folder, _ = fashion_set
    monkeypatch.setenv("FASHION_MNIST_DATA_DIR", str(folder))
    assert fashion.fashion_dir() == folder
    assert fashion.load_fashion("test").shape == (5, 28, 28, 1)
    monkeypatch.delenv("FASHION_MNIST_DATA_DIR")
    monkeypatch.setattr(fashion, "FASHION_SYSTEM", folder)  # as Debian's package puts it
    assert fashion.fashion_dir() == folder
    cache = data.cache_dir().parent / "fashion-mnist"
    write_set(cache, synthetic_set(np.random.default_rng(1)))
    assert fashion.fashion_dir() == cache  # the user's cache first


def test_fashion_downloads_checked_into_the_cache(fashion_set, serve, monkeypatch, capsys):
    folder, _ = fashion_set
    good = serve(folder)
    monkeypatch.setenv("FASHION_MNIST_MIRRORS", f"{dead_url()},{good.url}")
    assert fashion.fashion_dir() == data.cache_dir().parent / "fashion-mnist"
    assert fashion.load_fashion("train").shape == (12, 28, 28, 1)
    assert len(good.requests) == 4 and "trying the next mirror" in capsys.readouterr().err
    monkeypatch.setitem(fashion.FASHION_SHA256, "t10k-images-idx3-ubyte", "0" * 64)
    (data.cache_dir().parent / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(data.DataError, match="dataset-fashion-mnist"):
        fashion.fashion_dir()  # the mirror's copy is not what the hash says: nothing kept


def test_fashion_that_cannot_be_had_says_how_to_get_it(fashion_set, tmp_path, monkeypatch):
    with pytest.raises(data.DataError, match="FASHION_MNIST_DATA_DIR"):
        fashion.fashion_dir(download_if_missing=False)
    monkeypatch.setenv("FASHION_MNIST_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(data.DataError, match="lacks"):
        fashion.fashion_dir()


# ---------------------------------------------------------------- real MNIST

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist(mnist_dir: Path) -> None:
    ds = data.load(mnist_dir, val_size=5000)  # found as the package finds it, env or not
    assert ds.x_train.shape == (55000, 28, 28, 1)
    assert ds.x_val.shape == (5000, 28, 28, 1)
    assert ds.x_test.shape == (10000, 28, 28, 1)
    for x in (ds.x_train, ds.x_val, ds.x_test):
        assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 255.0
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert y.dtype == np.int64 and y.min() == 0 and y.max() == 9
    train_counts = np.bincount(ds.y_train, minlength=10) + np.bincount(ds.y_val, minlength=10)
    assert train_counts.tolist() == TRAIN_COUNTS and sum(TRAIN_COUNTS) == 60000
    assert np.bincount(ds.y_test, minlength=10).tolist() == TEST_COUNTS
    assert sum(TEST_COUNTS) == 10000


def test_the_pinned_hashes_are_those_of_the_real_files(mnist_dir):
    """Each SHA256 entry matches the real file's content; a wrong digit fails this."""
    import gzip
    import hashlib

    for base, expected in data.SHA256.items():
        path = data.find_file(mnist_dir, base)
        raw = path.read_bytes()
        content = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        assert hashlib.sha256(content).hexdigest() == expected, base


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    import gzip
    import resource

    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    member = gzip.compress(b"\x00" * (1 << 26), compresslevel=9)  # 64 MiB of zeros in 64 KB
    bomb.write_bytes(member * 48)  # gzip members in a row read as one: 3 GiB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(data.DataError, match="more than any MNIST file"):
        data.read_idx(bomb)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300
