"""Writing run artifacts atomically, with one clear error when the disk or path says no.

Every file goes to a temporary name in the same folder and is renamed into place, so a reader
(or a killed run) never sees half a file.
"""

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnist_cnn.errors import MnistCnnError

_UMASK = os.umask(0)
os.umask(_UMASK)


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
    """Call writer(tmp_path) on a temporary file beside path, then rename it into place."""
    path = Path(path)
    tmp = None
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
        os.close(fd)
        tmp = Path(name)
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
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
