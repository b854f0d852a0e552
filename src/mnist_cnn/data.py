"""MNIST from its four original IDX files: find, download, verify, parse and split them.

Only numpy and the standard library are used here (and tqdm for a download's progress bar),
so loading data never pays for importing TensorFlow. Every problem a user can fix (a missing,
truncated or foreign file, a mirror that is down) is raised as `DataError` with a message
saying what to do.
"""

import gzip
import hashlib
import http.client
import io
import math
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_cnn.errors import MnistCnnError

FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# sha256 of the *decompressed* files: the gzip wrapping differs between copies, the content not.
SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

MIRRORS: tuple[str, ...] = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

SIZE = 28  # every image is SIZE x SIZE pixels
IMAGE_SHAPE = (SIZE, SIZE)
NUM_CLASSES = 10
VAL_SIZE = 5000  # training images set aside for validation (a fixed split)
_GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_BYTES = 64_000_000  # the largest MNIST file is 47,040,016 bytes
_IDX_UBYTE = 0x08
_CHUNK = 1 << 16
_ADVICE = (
    "delete it and download it again, or point --data-dir / MNIST_DATA_DIR at a folder "
    "with good copies of the four MNIST files"
)


class DataError(MnistCnnError):
    """A data file or data source the user can fix: missing, corrupt, foreign or unreachable."""


class _ContentError(Exception):
    """What is wrong with some bytes, phrased to follow the name of where they came from."""


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value to compare by
class Dataset:
    """The three splits, images float32 (N, 28, 28, 1) in 0..255 and labels int64 (N,).

    Validation is carved from the training files; the test files are only ever for testing.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def __repr__(self) -> str:
        sizes = ", ".join(f"{n}={len(getattr(self, 'y_' + n))}" for n in ("train", "val", "test"))
        return f"Dataset({sizes})"


def _offline_hint() -> str:
    names = ", ".join(f"{base}.gz" for base in FILES.values())
    return (
        f"To work offline, download the four files ({names}) on another machine and pass "
        f"--data-dir DIR or set MNIST_DATA_DIR=DIR, or put them in {cache_dir()}."
    )


def _parse(raw: bytes) -> np.ndarray:
    """Parse IDX bytes or raise `_ContentError`; one pass of checks, no copying."""
    if len(raw) < 4:
        raise _ContentError(f"is truncated: it holds {len(raw)} bytes, less than an IDX header")
    if raw[0] != 0 or raw[1] != 0:
        raise _ContentError(
            f"is not an IDX file: it starts with bytes {raw[0]:02x} {raw[1]:02x}, not 00 00"
        )
    if raw[2] != _IDX_UBYTE:
        raise _ContentError(
            f"has IDX type code 0x{raw[2]:02x}, but only 0x08 (unsigned bytes, as in MNIST) "
            "is supported"
        )
    ndim = raw[3]
    if ndim == 0:
        raise _ContentError("has an IDX header that declares no dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _ContentError(
            f"is truncated: its header declares {ndim} dimensions but the file ends "
            f"after {len(raw)} bytes"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    size = math.prod(dims)
    payload = len(raw) - header
    shape = "x".join(map(str, dims))
    if payload < size:
        raise _ContentError(
            f"is truncated: its dimensions {shape} need {size} bytes of data but it holds {payload}"
        )
    if payload > size:
        raise _ContentError(
            f"has {payload - size} unexpected bytes after the {size} bytes of data its "
            f"dimensions {shape} call for"
        )
    return np.frombuffer(raw, dtype=np.uint8, count=size, offset=header).reshape(dims)


def _decompress(raw: bytes, *, require_gzip: bool = False) -> bytes:
    """Undo gzip when the bytes carry its magic number (whatever the file is called)."""
    if raw[:2] != _GZIP_MAGIC:
        if require_gzip:
            raise _ContentError("is not gzip data (perhaps an error page from a proxy)")
        return raw
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            content = stream.read(MAX_IDX_BYTES + 1)  # bounded: a gzip bomb stops here
    except (OSError, EOFError, zlib.error) as err:
        raise _ContentError(f"is a corrupt or truncated gzip file ({err})") from err
    if len(content) > MAX_IDX_BYTES:
        raise _ContentError(
            f"decompresses to more than {MAX_IDX_BYTES:,} bytes, more than any MNIST file"
        )
    return content


def _check_sha256(content: bytes, expected: str) -> None:
    got = hashlib.sha256(content).hexdigest()
    if got != expected.lower():
        raise _ContentError(
            f"is corrupt or not the original MNIST file (sha256 of its content is {got}, "
            f"expected {expected.lower()})"
        )


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse uncompressed IDX bytes into a uint8 array shaped as the header says.

    Why strict: a payload shorter or longer than the header's dimensions means a damaged or
    foreign file, and training on it would fail later in a far less clear way. The result is a
    read-only view of `raw` (no copy); convert it (as `load_arrays` does) to modify it.
    """
    try:
        return _parse(raw)
    except _ContentError as err:
        raise DataError(f"{name} {err}; {_ADVICE}.") from None


def read_idx(path: str | Path, expected_sha256: str | None = None) -> np.ndarray:
    """Read an IDX file, gzipped or raw, optionally checking the sha256 of its content.

    Why sniff the gzip magic instead of trusting the suffix: users rename and decompress
    files, and the hash is of the decompressed bytes, so both forms must give the same result.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"MNIST file {path} does not exist; check the path, or pass --data-dir DIR or set "
            "MNIST_DATA_DIR=DIR to a folder holding the four MNIST files."
        ) from None
    except OSError as err:
        raise DataError(
            f"cannot read MNIST file {path} ({err.strerror or err}); check that it is a "
            "readable file."
        ) from None
    try:
        content = _decompress(raw)
        if expected_sha256 is not None:
            _check_sha256(content, expected_sha256)
        return _parse(content)
    except _ContentError as err:
        raise DataError(f"{path} {err}; {_ADVICE}.") from None


def cache_dir() -> Path:
    """Where downloads go by default: $XDG_CACHE_HOME/mnist-cnn/mnist or ~/.cache/mnist-cnn/mnist.

    Why a cache and not the working directory: every run folder and checkout can share one copy.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return root / "mnist-cnn" / "mnist"


def find_file(directory: Path, base: str) -> Path | None:
    """Return `directory/base.gz` or `directory/base`, whichever is a file, else None.

    Why both: mirrors serve .gz files but many users have decompressed copies. When both exist
    the .gz is used, since that is the form `download` writes and verifies.
    """
    directory = Path(directory)
    for candidate in (directory / f"{base}.gz", directory / base):
        if candidate.is_file():
            return candidate
    return None


def _resolve_mirrors(mirrors: Sequence[str] | None) -> list[str]:
    if mirrors is None:
        env = os.environ.get("MNIST_MIRRORS", "")
        mirrors = env.split(",") if env.strip() else MIRRORS
    cleaned = [m.strip() for m in mirrors if m.strip()]
    return [m if m.endswith("/") else m + "/" for m in cleaned]


def _reason(err: BaseException, timeout: float) -> str:
    """One short phrase for why a mirror failed."""
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        if not isinstance(err.reason, BaseException):
            return str(err.reason)
        err = err.reason
    if isinstance(err, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(err, _ContentError):
        return f"the download {err}"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return f"{type(err).__name__}: {err}"


def _fetch_one(
    url: str, base: str, dest: Path, timeout: float, progress: bool, expected: str
) -> Path:
    """Stream one URL to a temp file in `dest`; only verified content is renamed into place."""
    fd, tmp_name = tempfile.mkstemp(dir=dest, prefix=f".{base}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length", "")
            total = int(length) if length.isdigit() else None
            from tqdm import tqdm  # only a download needs it

            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"{base}.gz",
                file=sys.stderr,
                disable=not progress,
                leave=False,
            ) as bar:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
        raw = tmp.read_bytes()
        content = _decompress(raw, require_gzip=True)
        _check_sha256(content, expected)
        _parse(content)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the data is not
        final = dest / f"{base}.gz"
        os.replace(tmp, final)
        return final
    finally:
        tmp.unlink(missing_ok=True)


_FETCH_ERRORS = (OSError, http.client.HTTPException, ValueError, _ContentError)


def _fetch(
    base: str,
    dest: Path,
    mirrors: list[str],
    timeout: float,
    progress: bool,
    expected: str | None = None,
    hint: str | None = None,
) -> Path:
    """One file from the first mirror that has good content (sha256 `expected`, by default
    MNIST's); `hint` says how to work offline."""
    failures: list[str] = []
    for i, mirror in enumerate(mirrors):
        url = f"{mirror}{base}.gz"
        try:
            path = _fetch_one(url, base, dest, timeout, progress, expected or SHA256[base])
        except _FETCH_ERRORS as err:
            reason = _reason(err, timeout)
            failures.append(f"{mirror}: {reason}")
            then = "trying the next mirror" if i + 1 < len(mirrors) else "no mirrors left"
            print(f"mnist-cnn: warning: {url} failed: {reason}; {then}", file=sys.stderr)
            continue
        if progress:
            print(f"mnist-cnn: downloaded {path}", file=sys.stderr)
        return path
    tried = "; ".join(failures) if failures else "no mirrors were given"
    hint = hint or _offline_hint()
    raise DataError(f"could not download {base}.gz from any mirror ({tried}). {hint}")


def download(
    dest: Path | None = None,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Fetch whichever of the four files `dest` lacks (or holds corrupt), trying each mirror.

    Why so careful: a half-written or wrong file left in the cache would break every later
    run, so downloads land in a temp file and are renamed only once their sha256 matches.
    Mirrors default to $MNIST_MIRRORS (comma-separated base URLs) or `MIRRORS`.
    """
    dest = Path(dest).expanduser() if dest is not None else cache_dir()
    mirror_list = _resolve_mirrors(mirrors)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"cannot create the MNIST folder {dest} ({err.strerror or err}). {_offline_hint()}"
        ) from None
    for base in FILES.values():
        existing = find_file(dest, base)
        if existing is not None:
            try:
                read_idx(existing, SHA256[base])
                continue
            except DataError as err:
                print(f"mnist-cnn: warning: {err} Downloading it again.", file=sys.stderr)
        _fetch(base, dest, mirror_list, timeout, progress)
    return dest


def _missing(directory: Path) -> list[str]:
    return [base for base in FILES.values() if find_file(directory, base) is None]


def locate(data_dir: str | Path | None = None, download_if_missing: bool = True) -> Path:
    """Pick the folder to read MNIST from: data_dir, $MNIST_DATA_DIR, the cache, or a download.

    Why never download when a folder was named: the user asked for that folder, so a wrong
    path must be reported, not papered over with a silent download somewhere else.
    """
    if data_dir is not None:
        chosen, source = Path(data_dir).expanduser(), "--data-dir"
    elif os.environ.get("MNIST_DATA_DIR"):
        chosen, source = Path(os.environ["MNIST_DATA_DIR"]).expanduser(), "MNIST_DATA_DIR"
    else:
        chosen = None
    if chosen is not None:
        if not chosen.is_dir():
            raise DataError(
                f"the MNIST folder {chosen} (from {source}) does not exist or is not a folder; "
                f"fix {source}, or leave it unset to download MNIST into {cache_dir()}."
            )
        missing = _missing(chosen)
        if missing:
            names = ", ".join(f"{base}[.gz]" for base in missing)
            raise DataError(
                f"the MNIST folder {chosen} (from {source}) lacks {names}; put the four "
                f"MNIST files there, or leave {source} unset to download them into {cache_dir()}."
            )
        return chosen
    cache = cache_dir()
    if not _missing(cache):
        return cache
    if not download_if_missing:
        raise DataError(f"MNIST is not in {cache} and downloading is off. {_offline_hint()}")
    return download(cache)


def load_arrays(
    data_dir: str | Path | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return (x_train, y_train), (x_test, y_test) from verified files.

    Images are float32 (N, 28, 28, 1) with raw values 0..255 (models scale inside, so the
    saved model takes raw pixels); labels int64 (N,). `data_dir` is resolved by `locate`.
    """
    directory = locate(data_dir)
    arrays: dict[str, np.ndarray] = {}
    paths: dict[str, Path] = {}
    for key, base in FILES.items():
        path = find_file(directory, base)
        if path is None:  # removed between locate() and now
            raise DataError(f"MNIST file {directory / base}[.gz] disappeared while loading.")
        paths[key], arrays[key] = path, read_idx(path, SHA256[base])

    out = []
    for split in ("train", "test"):
        xi, yi = f"{split}_images", f"{split}_labels"
        x, y = arrays[xi], arrays[yi]
        if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
            raise DataError(
                f"{paths[xi]} holds images of shape {x.shape[1:]}, not 28x28; {_ADVICE}."
            )
        if y.ndim != 1:
            raise DataError(f"{paths[yi]} is not a 1-D label file (shape {y.shape}); {_ADVICE}.")
        if len(x) != len(y):
            raise DataError(
                f"{paths[xi]} holds {len(x)} images but {paths[yi]} holds {len(y)} labels; "
                f"the two files do not belong together: replace both with the original MNIST files."
            )
        if y.size and int(y.max()) >= NUM_CLASSES:
            raise DataError(f"{paths[yi]} holds label {int(y.max())}, outside 0..9; {_ADVICE}.")
        out.append((x.astype(np.float32)[..., np.newaxis], y.astype(np.int64)))
    return out[0], out[1]


def split_validation(
    x: np.ndarray, y: np.ndarray, val_size: int = VAL_SIZE, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Carve `val_size` random examples out of a training set: x_train, y_train, x_val, y_val.

    Why a seeded permutation: the split must be the same in every run (and on resume) so that
    validation scores are comparable. Both parts keep the original order of the examples.
    """
    n = len(x)
    if len(y) != n:
        raise DataError(f"cannot split {n} images with {len(y)} labels; they must match.")
    if not 0 <= val_size < n:
        raise DataError(
            f"validation size {val_size} is out of range for {n} training examples; "
            f"choose a --val-size from 0 to {n - 1}."
        )
    if val_size == 0:
        return x, y, x[:0], y[:0]
    perm = np.random.default_rng(seed).permutation(n)
    val_idx = np.sort(perm[:val_size])
    train_idx = np.sort(perm[val_size:])
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def _limit(
    flag: str, limit: int | None, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    if limit is None:
        return x, y
    if limit < 1:
        raise DataError(f"{flag} must be at least 1, not {limit}.")
    return x[:limit].copy(), y[:limit].copy()  # copies, so the full arrays can be freed


def load(
    data_dir: str | Path | None = None,
    val_size: int = VAL_SIZE,
    train_limit: int | None = None,
    test_limit: int | None = None,
    split_seed: int = 0,
) -> Dataset:
    """Locate, verify and split MNIST into a `Dataset`.

    Why limits apply after the split: validation must stay the same examples whether or not a
    quick run trains on only the first `train_limit` of the remaining training images.
    """
    (x_full, y_full), (x_test, y_test) = load_arrays(data_dir)
    x_train, y_train, x_val, y_val = split_validation(x_full, y_full, val_size, split_seed)
    x_train, y_train = _limit("--train-limit", train_limit, x_train, y_train)
    x_test, y_test = _limit("--test-limit", test_limit, x_test, y_test)
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """An unsigned-byte array as an IDX file (gzipped when the name ends in .gz), atomically:
    the format read_idx reads, so other MNIST tools read it too."""
    from mnist_cnn import artifacts

    a = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _IDX_UBYTE, a.ndim]) + np.asarray(a.shape, ">u4").tobytes()
    raw = header + a.tobytes()
    content = gzip.compress(raw, mtime=0) if str(path).endswith(".gz") else raw
    return artifacts.write_with(path, lambda tmp: Path(tmp).write_bytes(content))
