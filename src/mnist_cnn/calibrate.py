"""Confidence you can trust: temperature scaling, fit on the validation split.

A trained net's top probability is rarely the chance that it is right (over-confident after
long training, under-confident after label smoothing). Dividing its logits by one number T,
chosen to minimise the validation loss, fixes most of that without changing a single answer.
T is folded into the last Dense layer's weights (logits / T = (xW + b) / T), so the saved model
stays a plain Keras model that any runtime loads, calibrated.
"""

from typing import Any

import keras
import numpy as np
from scipy.optimize import minimize_scalar

from mnist_cnn.evaluate import EPS, ece, nll, predict_proba


def scaled(probs: np.ndarray, temperature: float) -> np.ndarray:
    """The probabilities the same net gives with its logits divided by `temperature`."""
    logits = np.log(np.clip(probs, EPS, 1.0)) / temperature
    logits -= logits.max(1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(1, keepdims=True)


def fit_temperature(probs: np.ndarray | list[np.ndarray], y: np.ndarray) -> float:
    """The T in [0.05, 20] that minimises the cross-entropy of scaled(probs, T) on (probs, y);
    for a list (an ensemble's members), of the mean of each one scaled."""
    members = probs if isinstance(probs, list) else [probs]

    def loss(log_t: float) -> float:
        t = float(np.exp(log_t))
        return nll(np.mean([scaled(p, t) for p in members], axis=0), y)

    result = minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def fold_into(model: keras.Model, temperature: float) -> None:
    """Divide the final softmax Dense layer's weights by `temperature`, in place."""
    last = model.layers[-1]
    if not (isinstance(last, keras.layers.Dense) and last.activation is keras.activations.softmax):
        raise ValueError(f"{model.name} does not end in a softmax Dense layer")
    last.set_weights([w / temperature for w in last.get_weights()])


def calibrate(model: keras.Model, x_val: np.ndarray, y_val: np.ndarray) -> dict[str, Any]:
    """Fit T on the validation split, fold it into the model (into each member of an
    ensemble, whose mean then has no softmax of its own to scale), and say what it changed."""
    members = [layer for layer in model.layers if isinstance(layer, keras.Model)] or [model]
    before = predict_proba(model, x_val)
    temperature = fit_temperature([predict_proba(m, x_val) for m in members], y_val)
    for member in members:
        fold_into(member, temperature)
    after = predict_proba(model, x_val)
    return {
        "temperature": round(temperature, 6),
        "val_ece_before": ece(before, y_val),
        "val_ece_after": ece(after, y_val),
        "val_loss_before": nll(before, y_val),
        "val_loss_after": nll(after, y_val),
    }
