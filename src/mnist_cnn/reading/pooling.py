"""Each found digit read twice, and the two readings pooled into one.

The reader's network reads a digit among its neighbours on the page; the MNIST classifier
(the packaged model) reads it alone, from its 28x28 (`crops.as_mnist`). They err on different
digits: the network on shapes the generated writers lack, the classifier where a neighbour's
stroke enters the crop. Pooled log-linearly, p ~ network^a * classifier^b, with a and b fit on
held-out generated pages (`training.fit_pool`, at the end of every reader's run), the answer is
right more often and its probability stays calibrated, so MIN_CONFIDENCE means what it did.
A reader's pool is saved beside its network as FILE; a reader without one reads alone.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_cnn import artifacts
from mnist_cnn.errors import MnistCnnError

FILE = "pooling.json"  # beside a reader's network: its run folder's, the package's
MOST_WEIGHT = 10.0  # a weight beyond this is no fit but a damaged file
MOST_BYTES = 4096  # a pooling file is two numbers: more is no pooling file
TINY = 1e-12  # a probability no smaller than this: log(0) is not a number


@dataclass(frozen=True)
class Pool:
    """The weights of the network's and the classifier's log-probabilities."""

    network: float
    classifier: float

    def __call__(self, network: np.ndarray, classifier: np.ndarray) -> np.ndarray:
        """(N, 10) probabilities of each reading -> (N, 10) pooled, each row summing to 1."""
        logs = self.network * _log(network) + self.classifier * _log(classifier)
        logs -= logs.max(1, keepdims=True)
        e = np.exp(logs)
        return e / e.sum(1, keepdims=True)

    def save(self, path: Path) -> None:
        """Written whole or not at all, as every file of a run."""
        artifacts.write_json(path, {"network": self.network, "classifier": self.classifier})


def _log(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, np.float64)
    p = p / np.maximum(p.sum(1, keepdims=True), TINY)  # the network's ten of its 13 classes
    return np.log(np.clip(p, TINY, 1.0))


def beside(network: Path) -> Pool | None:
    """The pool saved beside a reader's network file, or None where there is none."""
    path = network.with_name(FILE)
    if not (path.exists() or path.is_symlink()):
        return None
    pool = None
    try:
        if path.is_file():  # not a folder, a pipe or a device, whose reading may not end
            with open(path, "rb") as f:
                text = f.read(MOST_BYTES + 1)
            raw = json.loads(text) if len(text) <= MOST_BYTES else {}
            a, b = raw["network"], raw["classifier"]
            if all(type(w) in (int, float) for w in (a, b)):  # not true, "1" or null
                pool = Pool(float(a), float(b))
    except (OSError, ValueError, TypeError, KeyError, RecursionError, OverflowError):
        pool = None
    if pool is None or not (
        0 < pool.network <= MOST_WEIGHT and 0 <= pool.classifier <= MOST_WEIGHT
    ):  # NaN fails both
        raise MnistCnnError(
            f'{path} is not a reader\'s pooling file ({{"network": A, "classifier": B}}, '
            f"A above 0, each at most {MOST_WEIGHT:g}): remove it to read with the network alone"
        )
    return pool
