"""Corrections from users, kept in SQLite: the 28x28 the model saw and the digit it really is.

One file, Python's sqlite3, WAL mode: several server processes write at once, and a process
killed mid-write leaves a database that is whole (SQLite's transactions are atomic). Only
pixels and labels are kept: no IP addresses, no uploaded files. A size cap keeps the file
bounded; past it, adding says so clearly.
"""

import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import numpy as np

from mnist_cnn.data import NUM_CLASSES, SIZE
from mnist_cnn.errors import MnistCnnError

SCHEMA_VERSION = 1
MAX_ROWS = 100_000  # corrections one database keeps (about 80 MB)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    label INTEGER NOT NULL CHECK (label BETWEEN 0 AND {NUM_CLASSES - 1}),
    predicted INTEGER CHECK (predicted BETWEEN 0 AND {NUM_CLASSES - 1}),
    pixels BLOB NOT NULL CHECK (length(pixels) = {SIZE * SIZE})
);
"""


class FeedbackError(MnistCnnError):
    """A database the user can fix: unreadable, of a newer schema, or full."""


def default_path() -> Path:
    """$XDG_DATA_HOME/mnist-cnn/feedback.sqlite3, or ~/.local/share/mnist-cnn/feedback.sqlite3."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    root = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return root / "mnist-cnn" / "feedback.sqlite3"


class FeedbackStore:
    """The corrections database at `path`, created on first use."""

    def __init__(self, path: str | Path | None = None, max_rows: int = MAX_ROWS):
        self.path = Path(path) if path is not None else default_path()
        self.max_rows = max_rows
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(self._connect()) as db, db:
                db.executescript(_SCHEMA)
                db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
                )
                (version,) = db.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchone()
        except (sqlite3.Error, OSError) as err:
            raise FeedbackError(f"cannot use {self.path} as a feedback database: {err}") from None
        if int(version) > SCHEMA_VERSION:
            raise FeedbackError(
                f"{self.path} was written by a newer mnist-cnn (schema {version}); upgrade"
            )

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.isolation_level = ""  # transactions again: `with db` commits or rolls back
        return db

    def add(self, pixels: np.ndarray, label: int, predicted: int | None = None) -> int:
        """Store one correction; returns its id."""
        x = np.asarray(pixels, np.float32)
        if x.shape != (SIZE, SIZE) or not np.isfinite(x).all():
            raise FeedbackError(f"pixels must be {SIZE}x{SIZE} finite values")
        if not (0 <= int(label) < NUM_CLASSES) or (
            predicted is not None and not 0 <= int(predicted) < NUM_CLASSES
        ):
            raise FeedbackError(f"labels are digits 0-{NUM_CLASSES - 1}")
        blob = np.clip(np.round(x), 0, 255).astype(np.uint8).tobytes()
        try:
            with closing(self._connect()) as db, db:
                db.execute("BEGIN IMMEDIATE")  # the count and the insert, as one
                (count,) = db.execute("SELECT count(*) FROM corrections").fetchone()
                if count >= self.max_rows:
                    raise FeedbackError(
                        f"{self.path} is full ({count:,} corrections): export and clear it"
                    )
                row = (time.time(), int(label), None if predicted is None else int(predicted))
                cursor = db.execute(
                    "INSERT INTO corrections (created, label, predicted, pixels) "
                    "VALUES (?, ?, ?, ?)",
                    (*row, blob),
                )
                return int(cursor.lastrowid)
        except sqlite3.Error as err:
            raise FeedbackError(f"cannot write to {self.path}: {err}") from None

    def stats(self) -> dict:
        """How many corrections, per digit, and how many said the model was wrong."""
        with closing(self._connect()) as db:
            per = dict(db.execute("SELECT label, count(*) FROM corrections GROUP BY label"))
            wrong_sql = "SELECT count(*) FROM corrections WHERE predicted != label"  # NULL: no
            (wrong,) = db.execute(wrong_sql).fetchone()
        return {
            "total": sum(per.values()),
            "per_digit": {str(d): per.get(d, 0) for d in range(NUM_CLASSES)},
            "model_was_wrong": wrong,
        }

    def rows(self, limit: int | None = None) -> list[dict]:
        """The newest corrections first, without their pixels."""
        sql = "SELECT id, created, label, predicted FROM corrections ORDER BY id DESC"
        with closing(self._connect()) as db:
            found = db.execute(sql + (" LIMIT ?" if limit else ""), (limit,) if limit else ())
            return [{"id": i, "created": c, "label": lab, "predicted": p} for i, c, lab, p in found]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every correction as images float32 (N, 28, 28) 0-255, labels and ids, oldest first."""
        with closing(self._connect()) as db:
            found = db.execute("SELECT id, label, pixels FROM corrections ORDER BY id").fetchall()
        ids = np.array([r[0] for r in found], np.int64)
        y = np.array([r[1] for r in found], np.int64)
        x = np.frombuffer(b"".join(r[2] for r in found), np.uint8).reshape(-1, SIZE, SIZE)
        return x.astype(np.float32), y, ids

    def clear(self) -> int:
        """Delete every correction; returns how many there were."""
        with closing(self._connect()) as db, db:
            return db.execute("DELETE FROM corrections").rowcount

    def integrity(self) -> str:
        """SQLite's own check: "ok" for a whole database."""
        with closing(self._connect()) as db:
            return db.execute("PRAGMA integrity_check").fetchone()[0]


def export(store: FeedbackStore, out: str | Path, fmt: str = "npz") -> Path:
    """Every correction for other tools: a .npz (x uint8 N x 28 x 28, y, ids) or, with
    fmt="idx", MNIST's own format in a folder (corrections-images-idx3-ubyte.gz and labels)."""
    from mnist_cnn import artifacts, data

    x, y, ids = store.arrays()
    images = x.astype(np.uint8)
    out = Path(out)
    if fmt == "idx":
        artifacts.prepare_dir(out)
        data.write_idx(out / "corrections-images-idx3-ubyte.gz", images)
        data.write_idx(out / "corrections-labels-idx1-ubyte.gz", y.astype(np.uint8))
        return out
    artifacts.prepare_dir(out.parent if str(out.parent) else ".")
    target = out if out.suffix == ".npz" else out.with_suffix(".npz")
    return artifacts.write_with(
        target, lambda tmp: np.savez_compressed(tmp, x=images, y=y, ids=ids)
    )
