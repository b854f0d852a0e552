"""Writing run artifacts atomically, with one clear error when the disk or path says no.

Every file goes to a temporary name in the same folder and is renamed into place, so a reader
(or a killed run) never sees half a file.
"""

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mnist_cnn.errors import MnistCnnError


def _explain(err: OSError, path: Path) -> MnistCnnError:
    if err.errno == errno.ENOSPC:
        why = "the disk is full; free some space or choose another --out"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "permission denied; choose a folder you can write to with --out"
    else:
        why = f"{err.strerror or err}; check the path or choose another --out"
    return MnistCnnError(f"cannot write {path}: {why}")


def prepare_dir(path: str | Path) -> Path:
    """Create a folder and prove it is writable now, before hours of training, not after."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as err:
        raise _explain(err, path) from None
    return path


def write_with(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Call writer(tmp_path) on a temporary file beside path, then rename it into place.

    The temporary file is made with the usual permissions (0666 less the process's umask, as
    `open` makes files), without reading or changing the umask."""
    path = Path(path)
    tmp = None
    try:
        for _ in range(100):
            name = path.parent / f".{path.stem}-{secrets.token_hex(6)}{path.suffix}"
            try:
                os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                break
            except FileExistsError:
                continue
        tmp = Path(name)
        writer(tmp)
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise _explain(err, path) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MnistCnnError(f"{path} does not exist") from None
    except (OSError, ValueError) as err:
        raise MnistCnnError(f"cannot read {path}: {err}") from None


@contextlib.contextmanager
def claim(folder: str | Path) -> Iterator[Path]:
    """Hold `folder` for this process alone while the block runs: one folder, one run.

    An advisory lock (flock) on folder/.lock: the kernel drops it when the process ends, even
    on kill -9, so a dead run never blocks the folder."""
    folder = prepare_dir(folder)
    with open(folder / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MnistCnnError(
                f"another mnist-cnn process is writing to {folder}: wait for it to end, "
                "or choose another --out"
            ) from None
        yield folder


def check_room(folder: str | Path, needed: int) -> None:
    """One clear error before a write of `needed` bytes that the disk has no room for: some
    writers (h5py) crash the process on a full disk instead of raising."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise MnistCnnError(
            f"cannot write to {folder}: the disk is full ({free / 1e6:.1f} MB free, "
            f"{needed / 1e6:.1f} MB needed); free some space, then --resume the run"
        )
