"""A run folder: everything one training, fine-tuning or ensemble made, in one place.

model.keras, config.json, history.json (per epoch), metrics.json, curves.png, confusion.png
and misclassified.png, each written atomically. A folder holds one run: `claim` locks it for
one process and refuses one that already holds a run (unless resuming it), and `finish` is
the one way a run ends, whatever made it, so every run folder is scored the same way.
"""

import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mnist_cnn import artifacts, calibrate, data, evaluate, models, plots
from mnist_cnn.errors import MnistCnnError

MODEL, CONFIG, HISTORY, METRICS = "model.keras", "config.json", "history.json", "metrics.json"


@dataclass
class Result:
    """What a run made: the model as saved (calibrated, float32), its per-epoch history (empty
    for an ensemble), the metrics also written to metrics.json, and the run folder."""

    model: keras.Model
    history: dict[str, list[float]]
    metrics: dict[str, Any]
    run: Path


@contextlib.contextmanager
def claim(
    out: str | Path, resume: bool = False, overwrite: bool = False, resumable: bool = True
) -> Iterator[Path]:
    """The run folder `out`, held by this process alone while the block runs. overwrite=True
    empties a folder that holds a run (a notebook cell run twice); otherwise a folder with a
    run in it is one clear error, unless `resume` asks to continue that run (`resumable`:
    whether the error may suggest it)."""
    with artifacts.claim(out) as run:
        if overwrite and not resume:
            for old in run.iterdir():
                if old.name != ".lock":
                    shutil.rmtree(old) if old.is_dir() else old.unlink()
        if (run / METRICS).exists():
            raise MnistCnnError(
                f"{run} already holds a finished run ({METRICS}): "
                + ("nothing to resume" if resume else "choose another --out")
            )
        if (run / CONFIG).exists() and not resume:
            advice = f"pass --resume {run} to continue it, or another --out"
            raise MnistCnnError(
                f"{run} already holds a run: " + (advice if resumable else "choose another --out")
            )
        if resume and not (run / CONFIG).exists():
            raise MnistCnnError(f"{run} holds no run to resume: start one with --out {run}")
        yield run


def history(run: Path) -> dict[str, list[float]]:
    return artifacts.read_json(run / HISTORY) if (run / HISTORY).exists() else {}


def finish(
    run: Path,
    model: keras.Model,
    ds: data.Dataset,
    facts: dict[str, Any],
    calibrate_on: tuple[np.ndarray, np.ndarray] | None = None,
    scored: Callable[[keras.Model], dict[str, Any]] | None = None,
) -> Result:
    """The one way a run ends: calibrated on `calibrate_on` (images, labels) where given and
    not empty, saved, loaded back as users load it, scored on the test set, with its curves,
    plots and metrics (`facts`, the calibration, and what `scored` says of the saved model)."""
    if calibrate_on is not None:
        calibration = None
        if len(calibrate_on[1]):  # a temperature folded into the saved model
            calibration = calibrate.calibrate(model, *calibrate_on)
        facts = {**facts, "calibration": calibration}
    artifacts.write_with(run / MODEL, model.save)
    past = history(run)
    if past:
        plots.save(plots.curves(past), run / "curves.png")
    saved = models.load(run / MODEL)  # score what was written, exactly as users load it
    if scored is not None:
        facts = {**facts, **scored(saved)}
    metrics = evaluate.evaluate(saved, ds.x_test, ds.y_test, run, facts)
    return Result(saved, past, metrics, run)


def finish_reader(run: Path, model: keras.Model, held: Any, facts: dict[str, Any]) -> Result:
    """The one way a reader's run ends: calibrated on the held-out pages, saved, exported to
    ONNX (what reads), loaded back from that export as users load it and scored on those
    pages, its pool with the packaged classifier fit on them (but for a user's fields), with
    its curves."""
    from mnist_cnn import export
    from mnist_cnn.reading import predictor, training

    calibration = training.calibrate(model, held) if len(held) else {}
    artifacts.write_with(run / MODEL, model.save)
    export.export_reader(model, run / predictor.READER_FILE, saved=run / MODEL)
    past = history(run)
    if past:
        plots.save(plots.curves(past), run / "curves.png")
    cells = predictor.load(run)
    scores = training.score(cells, held) if len(held) else {}
    metrics = {**facts, "params": int(model.count_params()), "calibration": calibration}
    metrics["held_out"] = scores
    # each digit read by the network and the packaged classifier, pooled; not a reader that
    # learnt a user's fields, whose writers the classifier never saw (docs/reading.md)
    if len(held) and not facts.get("fields"):
        metrics["pooling"] = training.save_pool(cells, held, run)
    artifacts.write_json(run / METRICS, metrics)
    return Result(models.load(run / MODEL), past, metrics, run)


def ensemble(
    paths: list[str | Path],
    out: str | Path,
    data_dir: str | None = None,
    test_limit: int | None = None,
) -> dict[str, Any]:
    """Average saved models into one run folder and score it and each member on the test
    set; returns the ensemble's metrics (members' too)."""
    members = [models.load(path) for path in paths]
    config = {"recipe": "ensemble", "members": [_member(p) for p in paths]}  # before any writing
    ds = data.load(data_dir, val_size=0, test_limit=test_limit)
    member_acc = [
        evaluate.score(evaluate.predict_proba(m, ds.x_test), ds.y_test)["test_accuracy"]
        for m in members
    ]
    with claim(out, resumable=False) as run:
        artifacts.write_json(run / CONFIG, config)
        members_at = [m["path"] for m in config["members"]]  # their recipes: config.json
        facts = {"recipe": "ensemble", "members": members_at, "member_test_accuracy": member_acc}
        return finish(run, models.ensemble(members), ds, facts).metrics


def _member(path: str | Path) -> dict[str, Any]:
    """Where a member came from and, from its run folder, the recipe that made it: the
    ensemble's config says how to train it again even once the member folders are gone."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    member: dict[str, Any] = {"path": str(path)}
    if (folder / CONFIG).is_file():
        member["config"] = artifacts.read_json(folder / CONFIG)
    return member
