"""Scoring a trained model on the MNIST test set, and writing what it found."""

from pathlib import Path
from typing import Any

import keras
import numpy as np

from mnist_cnn import artifacts, plots
from mnist_cnn.data import NUM_CLASSES

EPS = 1e-7  # Keras' epsilon: the loss matches what model.evaluate would report


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of the true labels: the test loss, and what calibration minimises."""
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], EPS, 1.0)).mean())


def ece(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: the gap between confidence and accuracy, over 15 bins."""
    confidence, right = probs.max(1), probs.argmax(1) == y
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            gap += inside.mean() * abs(confidence[inside].mean() - right[inside].mean())
    return float(gap)


# Test-time augmentation: the image as it is and moved one pixel each way (dy, dx).
TTA_SHIFTS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))


def predict_proba(
    model: keras.Model, x: np.ndarray, batch_size: int = 1000, tta: bool = False
) -> np.ndarray:
    """Class probabilities for raw-pixel images, shape (N, 10).

    With tta=True, the mean over the image and its one-pixel shifts (TTA_SHIFTS): five
    forward passes that smooth out a digit's exact position.
    """
    if not tta:
        return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    views = [shift(x, dy, dx) for dy, dx in TTA_SHIFTS]
    return np.mean([predict_proba(model, v, batch_size) for v in views], axis=0)


def shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Images moved by (dy, dx) whole pixels, the uncovered edge filled with black."""
    out = np.zeros_like(x)
    h, w = x.shape[1:3]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def score(probs: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Accuracy, cross-entropy, per-class precision/recall/F1 and the confusion matrix."""
    y = np.asarray(y, dtype=np.int64)
    pred = probs.argmax(axis=1)
    loss = nll(probs, y)
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    tp = np.diag(cm).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(tp / cm.sum(axis=0))
        recall = np.nan_to_num(tp / cm.sum(axis=1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    per_class = {
        str(c): {
            "precision": round(float(precision[c]), 6),
            "recall": round(float(recall[c]), 6),
            "f1": round(float(f1[c]), 6),
            "support": int(cm[c].sum()),
        }
        for c in range(NUM_CLASSES)
    }
    return {
        "test_accuracy": float((pred == y).mean()),
        "test_loss": loss,
        "test_errors": int((pred != y).sum()),
        "test_ece": ece(probs, y),
        "test_size": len(y),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }


def answered(probs: np.ndarray, y: np.ndarray, min_confidence: float) -> dict[str, float]:
    """What a user sees at an "unsure" threshold: right answers over all digits (top1), the
    share left unsure, and how often an answer that was given is right."""
    sure, right = probs.max(1) >= min_confidence, probs.argmax(1) == np.asarray(y)
    return {
        "top1": float(right.mean()),
        "unsure": float(1 - sure.mean()),
        "answered_accuracy": float(right[sure].mean()) if sure.any() else float("nan"),
    }


def evaluate(
    model: keras.Model,
    x_test: np.ndarray,
    y_test: np.ndarray,
    out_dir: str | Path,
    extra: dict[str, Any] | None = None,
    tta: bool = False,
) -> dict[str, Any]:
    """Score the model and write metrics.json, confusion.png and misclassified.png to out_dir."""
    out_dir = artifacts.prepare_dir(out_dir)
    probs = predict_proba(model, x_test, tta=tta)
    metrics = {**(extra or {}), **score(probs, y_test), "params": int(model.count_params())}
    metrics["tta"] = tta
    pred = probs.argmax(axis=1)
    plots.save(plots.confusion(np.array(metrics["confusion_matrix"])), out_dir / "confusion.png")
    wrong = plots.misclassified(x_test, y_test, pred, probs.max(axis=1))
    plots.save(wrong, out_dir / "misclassified.png")
    artifacts.write_json(out_dir / "metrics.json", metrics)
    return metrics
