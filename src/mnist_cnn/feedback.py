"""Corrections from users, kept in SQLite: the 28x28 the model saw and the digit it really is.

One file, Python's sqlite3, WAL mode: several server processes write at once, and a process
killed mid-write leaves a database that is whole (SQLite's transactions are atomic). Only
pixels and labels are kept: no IP addresses (the rate limit, which all server processes share
here, keeps a salted hash of each sender for a minute), no uploaded files. A size cap keeps
the file bounded; past it, adding says so clearly. Each correction waits for review: a person
keeps or drops it (`mnist-cnn feedback review`, `keep`, `drop`), and fine-tuning learns only
the kept ones, so that what anyone can send is not what the model learns.
"""

import hashlib
import os
import secrets
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_cnn.data import NUM_CLASSES, SIZE
from mnist_cnn.errors import MnistCnnError

SCHEMA_VERSION = 2
MAX_ROWS = 100_000  # corrections one database keeps (about 80 MB)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    label INTEGER NOT NULL CHECK (label BETWEEN 0 AND {NUM_CLASSES - 1}),
    predicted INTEGER CHECK (predicted BETWEEN 0 AND {NUM_CLASSES - 1}),
    pixels BLOB NOT NULL CHECK (length(pixels) = {SIZE * SIZE}),
    kept INTEGER CHECK (kept IN (0, 1))
);
CREATE TABLE IF NOT EXISTS senders (sender TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS senders_at ON senders (at);
"""
REVIEW = {"pending": "kept IS NULL", "kept": "kept = 1", "dropped": "kept = 0", "all": "1"}


class FeedbackError(MnistCnnError):
    """A database the user can fix: unreadable, of a newer schema, or full."""


class RateLimited(FeedbackError):
    """A sender past its corrections a minute."""


class StoreFull(FeedbackError):
    """No room for another correction: the database at its `max_rows`, or its disk full."""


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
                version = self._migrate(db)
        except (sqlite3.Error, OSError) as err:
            raise FeedbackError(f"cannot use {self.path} as a feedback database: {err}") from None
        if int(version) > SCHEMA_VERSION:
            raise FeedbackError(
                f"{self.path} was written by a newer mnist-cnn (schema {version}); upgrade"
            )

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> int:
        """Create the tables, or bring a schema 1 database up to date (its corrections wait
        for review like new ones); returns the version found."""
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        found = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(found[0]) if found else SCHEMA_VERSION
        if version == 1:
            db.execute("ALTER TABLE corrections ADD COLUMN kept INTEGER CHECK (kept IN (0, 1))")
            version = SCHEMA_VERSION
        if version <= SCHEMA_VERSION:
            db.executescript(_SCHEMA)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (version,))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('salt', ?)", (secrets.token_hex(16),))
        return version

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.isolation_level = ""  # transactions again: `with db` commits or rolls back
        return db

    def add(
        self,
        pixels: np.ndarray,
        label: int,
        predicted: int | None = None,
        sender: str | None = None,
        per_minute: int = 0,
    ) -> int:
        """Store one correction, waiting for review; returns its id. With `sender` (a client's
        address) and `per_minute`, refuse the sender's correction past that many a minute."""
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
                    raise StoreFull(
                        f"{self.path} is full ({count:,} corrections): export and clear it"
                    )
                if sender is not None and per_minute:
                    self._count_sender(db, sender, per_minute)
                row = (time.time(), int(label), None if predicted is None else int(predicted))
                cursor = db.execute(
                    "INSERT INTO corrections (created, label, predicted, pixels) "
                    "VALUES (?, ?, ?, ?)",
                    (*row, blob),
                )
                return int(cursor.lastrowid)
        except sqlite3.Error as err:
            if getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                raise StoreFull(f"cannot write to {self.path}: {err}") from None
            raise FeedbackError(f"cannot write to {self.path}: {err}") from None

    @staticmethod
    def _count_sender(db: sqlite3.Connection, sender: str, per_minute: int) -> None:
        now = time.time()
        (salt,) = db.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()
        key = hashlib.sha256(f"{salt}:{sender}".encode()).hexdigest()[:24]
        db.execute("DELETE FROM senders WHERE at < ?", (now - 60,))
        (recent,) = db.execute("SELECT count(*) FROM senders WHERE sender = ?", (key,)).fetchone()
        if recent >= per_minute:
            raise RateLimited(f"at most {per_minute} corrections a minute")
        db.execute("INSERT INTO senders VALUES (?, ?)", (key, now))

    def review(self, ids: list[int] | None, keep: bool) -> int:
        """Keep (or drop) the corrections `ids`, or all pending ones for None; returns how many
        changed. Fine-tuning learns only kept corrections."""
        with closing(self._connect()) as db, db:
            if ids is None:
                sql = "UPDATE corrections SET kept = ? WHERE kept IS NULL"
                return db.execute(sql, (int(keep),)).rowcount
            sql = "UPDATE corrections SET kept = ? WHERE id = ?"
            return sum(db.execute(sql, (int(keep), int(i))).rowcount for i in ids)

    def stats(self) -> dict:
        """How many corrections, per digit, and how many said the model was wrong."""
        try:
            return self._stats()
        except sqlite3.Error as err:
            raise FeedbackError(f"cannot read {self.path}: {err}") from None

    def _stats(self) -> dict:
        with closing(self._connect()) as db:
            per = dict(db.execute("SELECT label, count(*) FROM corrections GROUP BY label"))
            wrong_sql = "SELECT count(*) FROM corrections WHERE predicted != label"  # NULL: no
            (wrong,) = db.execute(wrong_sql).fetchone()
            review = dict(db.execute("SELECT kept, count(*) FROM corrections GROUP BY kept"))
        return {
            "total": sum(per.values()),
            "per_digit": {str(d): per.get(d, 0) for d in range(NUM_CLASSES)},
            "model_was_wrong": wrong,
            "pending": review.get(None, 0),
            "kept": review.get(1, 0),
            "dropped": review.get(0, 0),
        }

    def rows(self, limit: int | None = None, review: str = "all") -> list[dict]:
        """The newest corrections first, without their pixels."""
        sql = (
            "SELECT id, created, label, predicted, kept FROM corrections "
            f"WHERE {REVIEW[review]} ORDER BY id DESC"
        )
        state = {None: "pending", 1: "kept", 0: "dropped"}
        with closing(self._connect()) as db:
            found = db.execute(sql + (" LIMIT ?" if limit else ""), (limit,) if limit else ())
            return [
                {"id": i, "created": c, "label": lab, "predicted": p, "review": state[k]}
                for i, c, lab, p, k in found
            ]

    def arrays(self, review: str = "all") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The corrections (all, or "kept", "pending", "dropped") as images float32
        (N, 28, 28) 0-255, labels and ids, oldest first."""
        sql = f"SELECT id, label, pixels FROM corrections WHERE {REVIEW[review]} ORDER BY id"
        with closing(self._connect()) as db:
            found = db.execute(sql).fetchall()
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


@dataclass
class Corrections:
    """A database's kept corrections as fine-tuning uses them, split by a seed: `learnt` join
    the training batches, `calibration` recalibrates the model after, `held_out` scores it
    before and after (positions into x, y, ids)."""

    path: Path
    x: np.ndarray  # (N, 28, 28, 1) float32, 0-255
    y: np.ndarray
    ids: np.ndarray
    learnt: np.ndarray
    calibration: np.ndarray
    held_out: np.ndarray


FEWEST_TO_LEARN = 10


def corrections(path: str | Path, holdout: float, seed: int) -> Corrections:
    """The kept corrections of the database at `path`, a share `holdout` set aside (half to
    calibrate, half to score); fewer than FEWEST_TO_LEARN is one clear error."""
    if not Path(path).is_file():  # never made here: a mistyped path is not an empty store
        raise MnistCnnError(
            f"no corrections database at {path}: `mnist-cnn serve` collects them there "
            "(--feedback-db), or pass the one it used"
        )
    store = FeedbackStore(path)
    x, y, ids = store.arrays("kept")
    if len(y) < FEWEST_TO_LEARN:
        raise MnistCnnError(
            f"{store.path} holds {len(y)} kept corrections ({store.stats()['pending']} wait "
            f"for review): fine-tuning needs {FEWEST_TO_LEARN}; review them with "
            "`mnist-cnn feedback review`"
        )
    order = np.random.default_rng(seed).permutation(len(y))
    kept = max(1, round(holdout * len(y)))
    calibration, held_out, learnt = order[: kept // 2], order[kept // 2 : kept], order[kept:]
    return Corrections(store.path, x[..., None], y, ids, learnt, calibration, held_out)


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


def review_sheet(store: FeedbackStore, out: str | Path, limit: int = 100) -> tuple[Path, int]:
    """The pending corrections (oldest first, at most `limit`) as one PNG to look over: each
    digit as the model saw it, with its id and the label the sender gave. Returns the file
    and how many it shows."""
    from PIL import Image, ImageDraw

    from mnist_cnn import artifacts

    x, y, ids = store.arrays("pending")
    x, y, ids = x[:limit], y[:limit], ids[:limit]
    cols, cell = 10, 3 * SIZE + 16
    rows = max(1, -(-len(y) // cols))
    sheet = Image.new("L", (cols * cell, rows * cell), 255)
    draw = ImageDraw.Draw(sheet)
    for n, (image, label, i) in enumerate(zip(x, y, ids, strict=True)):
        left, top = (n % cols) * cell, (n // cols) * cell
        digit = Image.fromarray(255 - image.astype(np.uint8)).resize((3 * SIZE, 3 * SIZE))
        sheet.paste(digit, (left + 8, top + 2))
        draw.text((left + 8, top + 3 * SIZE + 3), f"#{i}: {label}", fill=0)
    out = Path(out)
    artifacts.prepare_dir(out.parent if str(out.parent) else ".")
    return artifacts.write_with(out, lambda tmp: sheet.save(tmp, "PNG")), len(y)
