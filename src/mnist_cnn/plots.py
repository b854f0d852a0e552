"""The three pictures of a run: learning curves, confusion matrix, misclassified digits.

Each function returns a matplotlib Figure, which a notebook shows inline; `save` writes one
to a PNG. Figures are made without pyplot, so no backend is chosen here and none is needed to
write files (a server or CI has no display).
"""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mnist_cnn.artifacts import write_with
from mnist_cnn.data import SIZE


def save(fig: Figure, path: str | Path) -> Path:
    """Write `fig` to `path` as a PNG, atomically."""
    return write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def curves(history: dict[str, list[float]]) -> Figure:
    """Loss and accuracy per epoch, training against validation, to spot over-fitting."""
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, key, title in ((axes[0], "loss", "Loss"), (axes[1], "accuracy", "Accuracy")):
        if key in history:
            ax.plot(epochs, history[key], "o-", label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "s-", label="validation")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
        else:  # a reader's run: its loss only (its scores are in metrics.json)
            ax.text(0.5, 0.5, "not measured in this run", ha="center", transform=ax.transAxes)
    if "accuracy" in history or "val_accuracy" in history:
        axes[1].set_ylim(top=1.0)
    fig.tight_layout()
    return fig


def confusion(matrix: np.ndarray, title: str = "Confusion matrix") -> Figure:
    """Counts of true (rows) against predicted (columns) digits; the diagonal is right."""
    matrix = np.asarray(matrix)
    fig = Figure(figsize=(6.5, 6))
    ax = fig.subplots()
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    ax.imshow(off, cmap="Reds")
    dark = max(1, off.max()) / 2
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if matrix[i, j]:
                color = "tab:blue" if i == j else ("white" if off[i, j] > dark else "black")
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title} (errors shaded)")
    fig.tight_layout()
    return fig


def misclassified(
    images: np.ndarray,
    true: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    limit: int = 64,
) -> Figure:
    """A grid of the test digits the model got wrong, most confident mistakes first.

    One image of tiles, not an axes per digit: 64 axes took seconds to draw at every run's end.
    """
    wrong = np.flatnonzero(true != predicted)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:limit]
    cols, pad, label = 8, 2, 11  # pixels around each digit, and above it for its label
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    cell_h, cell_w = SIZE + label + pad, SIZE + 2 * pad
    sheet = np.zeros((rows * cell_h, cols * cell_w))
    inch = 1.3 / cell_w  # per pixel of the sheet: 1.3 inches a column
    fig = Figure(figsize=(cols * 1.3, rows * cell_h * inch + 0.4))
    ax = fig.add_axes((0, 0, 1, rows * cell_h * inch / (rows * cell_h * inch + 0.4)))
    for n, i in enumerate(wrong):
        top, left = (n // cols) * cell_h + label, (n % cols) * cell_w + pad
        sheet[top : top + SIZE, left : left + SIZE] = images[i].reshape(SIZE, SIZE)
        text = f"true {true[i]} / pred {predicted[i]}\np={confidence[i]:.2f}"
        ax.text(left + SIZE / 2, top - 0.5, text, ha="center", va="bottom", fontsize=7)
    ax.imshow(sheet, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    ax.axis("off")
    total = int((true != predicted).sum())
    fig.suptitle(
        f"{total} misclassified test digits" + (f" (first {limit})" if total > limit else "")
    )
    return fig
