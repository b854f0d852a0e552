"""Plots of a run: curves for any run's history, a reader's (loss only) included."""

import warnings

from mnist_cnn import plots


def test_curves_of_a_run_without_accuracy_say_so_and_warn_nothing():
    history = {"loss": [2.0, 1.0, 0.5], "val_loss": [2.2, 1.1, 0.7]}  # a reader's run
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels" would raise
        fig = plots.curves(history)
    loss, accuracy = fig.axes
    assert len(loss.lines) == 2 and loss.get_legend() is not None
    assert not accuracy.lines and "not measured" in accuracy.texts[0].get_text()


def test_curves_of_a_classifier_run_show_both_panels():
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.6], "accuracy": [0.9, 0.95]}
    history["val_accuracy"] = [0.91, 0.96]
    _, accuracy = plots.curves(history).axes
    assert len(accuracy.lines) == 2 and accuracy.get_legend() is not None
