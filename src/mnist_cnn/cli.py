"""The `mnist-cnn` command: a thin layer of flags over the package's functions."""

import argparse
import csv
import dataclasses
import io
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out

from mnist_cnn import recipes
from mnist_cnn.engines import ENGINES, INT8_NAME
from mnist_cnn.errors import MnistCnnError, install_hint
from mnist_cnn.export import FORMATS
from mnist_cnn.recipes import RECIPES, TrainConfig


def _at_least(low: float, kind: type = int):
    """An argparse type that rejects values below `low` with a clear message."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is too small: it must be at least {low}")
        return value

    return parse


POSITIVE = _at_least(1)
NON_NEGATIVE = _at_least(0)
POSITIVE_FLOAT = _at_least(1e-12, float)


def _print_metrics(metrics: dict, where: Path) -> None:
    if "held_out" in metrics:  # a reader: how it reads pages of writers it never saw
        scores = "  ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in metrics["held_out"].items())
        print(f"held-out pages: {scores}  params {metrics['params']:,}")
        print(f"trained {metrics['train_seconds']:.1f} s; wrote {where}")
        return
    print(
        f"test accuracy {metrics['test_accuracy']:.4f}  test loss {metrics['test_loss']:.4f}  "
        f"errors {metrics['test_errors']}/{metrics['test_size']}  params {metrics['params']:,}"
        + (f"  train {metrics['train_seconds']:.1f} s" if "train_seconds" in metrics else "")
    )
    print(f"wrote {where}")


def _settings() -> list[dataclasses.Field]:
    """The training settings that are command-line flags (TrainConfig declares them)."""
    return [f for f in dataclasses.fields(TrainConfig) if f.metadata["flag"]]


def cmd_train(args: argparse.Namespace) -> None:
    from mnist_cnn import train

    if args.resume:
        from mnist_cnn import artifacts

        where = Path(args.resume) / "config.json"
        values = artifacts.read_json(where)
        values = {**values, "out": str(args.resume)} if isinstance(values, dict) else values
        metrics = train.train(recipes.config_from(values, str(where)), resume=True).metrics
        return _print_metrics(metrics, Path(args.resume))
    if args.model:
        raise MnistCnnError(
            f"train takes a recipe as --recipe {args.model} (--model names a saved model in "
            "the other commands)"
        )
    overrides = {f.name: getattr(args, f.name) for f in _settings()}
    if args.dry_run:  # one short epoch on a few batches: checks the whole pipeline in seconds
        recipe = recipes.make_config(args.recipe)
        bs = args.batch_size or recipe.batch_size
        overrides.update(epochs=1, train_limit=2 * bs, test_limit=1000)
        if recipe.pages:
            overrides.update(pages=2 * bs, val_pages=bs)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    seed = 0 if args.seed is None else args.seed
    out = args.out or f"runs/{args.recipe}-seed{seed}-{stamp}"
    cfg = recipes.make_config(args.recipe, out=out, **overrides)
    metrics = train.train(cfg).metrics
    _print_metrics(metrics, Path(cfg.out))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from mnist_cnn import data, evaluate, models

    source, beside = _model_path(args.model)
    model = models.load(source)
    ds = data.load(args.data_dir, val_size=0, test_limit=args.test_limit)
    out = Path(args.out) if args.out else beside / "eval"
    extra: dict = {"model_path": str(source)}
    if args.tta:  # report both, so the gain is plain to see
        plain = evaluate.score(evaluate.predict_proba(model, ds.x_test), ds.y_test)
        extra["test_accuracy_without_tta"] = plain["test_accuracy"]
        print(f"without TTA: test accuracy {plain['test_accuracy']:.4f}")
    metrics = evaluate.evaluate(model, ds.x_test, ds.y_test, out, extra, tta=args.tta)
    _print_metrics(metrics, out)


def cmd_ensemble(args: argparse.Namespace) -> None:
    from mnist_cnn import runs

    metrics = runs.ensemble(args.models, args.out, args.data_dir, args.test_limit)
    print("members: " + "  ".join(f"{a:.4f}" for a in metrics["member_test_accuracy"]))
    _print_metrics(metrics, Path(args.out))


def cmd_export(args: argparse.Namespace) -> None:
    from mnist_cnn import export, models

    source, beside = _model_path(args.model)
    model = models.load(source)
    names = {"saved_model": "saved_model", "onnx-int8": INT8_NAME}
    default = names.get(args.format, f"model.{args.format}")
    calibration = export.calibration_images(args.data_dir) if args.format == "onnx-int8" else None
    out = Path(args.out) if args.out else beside / default
    path = export.export(model, args.format, out, calibration)
    print(f"wrote {path}")


def _model_path(model: str | None) -> tuple[Path, Path]:
    """The model to use (the packaged one when none is given) and where its outputs go.

    Outputs of a given model go beside it; those of the packaged model go to the current
    folder, never into the installed package.
    """
    if model is None:
        from mnist_cnn import engines

        return engines.packaged_model(), Path("runs/packaged-model")
    source = Path(model)
    _classifier(source)
    return source, source if source.is_dir() else source.parent


def _classifier(model: Path) -> None:
    """Refuse a reader where a command takes an MNIST classifier (28x28 digits in)."""
    from mnist_cnn.reading import predictor

    if predictor.is_reader(model):
        raise MnistCnnError(
            f"{model} is a reader (pages in), and this command takes an MNIST classifier; a "
            f"reader is exported as its run folder's {predictor.READER_FILE}, and learns with "
            "`finetune --fields`"
        )


def cmd_predict(args: argparse.Namespace) -> int:
    from mnist_cnn import predict
    from mnist_cnn.reading.predictor import reader_for

    if args.csv and not args.numbers:
        raise MnistCnnError("--csv writes the numbers of a page: use it with --numbers")
    reader = reader_for(
        args.model,
        args.engine,
        min_confidence=args.min_confidence,
        decimal_comma=args.decimal_comma,
    )
    what = "numbers" if args.numbers else "number" if args.number else "digit"
    results = predict.read_files(args.files, reader, what, args.show_input)
    if args.csv:
        sys.stdout.write(as_csv(results))
    else:
        print(as_json(results) if args.json else as_table(results))
    failed = sum(r.error is not None for r in results)
    if failed:
        print(f"mnist-cnn: {failed} of {len(results)} files failed", file=sys.stderr)
    return 1 if failed else 0


def _predict_parser(sub: Any) -> None:
    r = sub.add_parser("predict", help="read the digit, number or numbers in each image file")
    r.add_argument("files", nargs="+", metavar="FILE", help="PNG, JPEG, BMP, GIF, TIFF or WebP")
    _model_options(r)
    what = r.add_mutually_exclusive_group()
    what.add_argument(
        "--number",
        action="store_true",
        help="read a number written in a row: digits, a decimal point or comma, a minus sign",
    )
    what.add_argument(
        "--numbers",
        action="store_true",
        help="read every number on a page: lines top to bottom, numbers left to right",
    )
    r.add_argument(
        "--decimal-comma",
        action=argparse.BooleanOptionalAction,
        help="a comma in a number is its decimal mark (12,50 is 12.5), or with "
        "--no-decimal-comma a thousands separator (default: the decimal mark unless three "
        "digits follow it, as in 1,250)",
    )
    out = r.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    out.add_argument(
        "--csv",
        action="store_true",
        help="with --numbers: CSV, a row per line of writing (numbers in their columns where "
        "they stand in columns); with several files, the file name first",
    )
    r.add_argument(
        "--show-input",
        metavar="DIR",
        help="save what the reader saw: each picture with the sheet and every digit's and "
        "mark's box and reading drawn (STEM-boxes.png), and each digit's 28x28 (STEM-1.png ...)",
    )
    r.set_defaults(func=cmd_predict)


def cmd_serve(args: argparse.Namespace) -> None:
    from mnist_cnn import launch

    print(f"serving on http://{args.host}:{args.port}/ (API docs at /docs); Ctrl+C stops")
    launch.serve(
        args.workers,
        args.host,
        args.port,
        args.forwarded_allow_ips,
        model=args.model,
        engine=args.engine,
        min_confidence=args.min_confidence,
        feedback=not args.no_feedback,
        feedback_db=args.feedback_db,
        feedback_token=args.feedback_token,
    )


def serve_workers() -> int:
    """The default number of server processes: one per core, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def _model_options(p: argparse.ArgumentParser) -> None:
    from mnist_cnn.reading.results import MIN_CONFIDENCE

    p.add_argument(
        "--model",
        help="a reader (its run folder or .onnx), or an MNIST classifier (.keras file, run "
        "folder, .onnx or .tflite) that reads the digits the packaged reader finds (default: "
        "the packaged reader)",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="run a .keras model on Keras, on ONNX Runtime, or its int8 twin on ONNX Runtime; "
        "auto: the int8 twin where one sits beside the model (the packaged model's), else "
        "Keras (default auto)",
    )
    p.add_argument(
        "--min-confidence",
        type=_at_least(0.0, float),
        default=MIN_CONFIDENCE,
        help=f"answer unsure (digit null) below this probability (default {MIN_CONFIDENCE})",
    )


def cmd_feedback(args: argparse.Namespace) -> None:
    from mnist_cnn import feedback

    store = feedback.FeedbackStore(args.db)
    if args.action == "stats":
        found = store.stats()
        if args.json:
            print(json.dumps(found))
        else:
            per = "  ".join(f"{d}:{n}" for d, n in found["per_digit"].items())
            print(
                f"{found['total']} corrections ({found['model_was_wrong']} where the model "
                f"was wrong) in {store.path}\nper digit  {per}\nreview     "
                f"{found['pending']} pending, {found['kept']} kept, {found['dropped']} dropped"
            )
    elif args.action == "list":
        rows = store.rows(args.limit)
        if args.json:
            print(json.dumps(rows))
        for r in [] if args.json else rows:
            when = datetime.fromtimestamp(r["created"]).isoformat(" ", "seconds")
            print(
                f"{r['id']:>7}  {when}  label {r['label']}  model said {r['predicted']}  "
                f"{r['review']}"
            )
    elif args.action == "export":
        if not args.out:
            raise MnistCnnError("feedback export needs --out FILE.npz, or --out DIR --format idx")
        print(f"wrote {feedback.export(store, args.out, args.format)}")
    elif args.action == "review":
        sheet, shown = feedback.review_sheet(store, args.out or "review.png", args.limit or 100)
        pending = store.stats()["pending"]
        print(
            f"{pending} corrections wait for review; the oldest {shown} are in {sheet} "
            "(id: label). Keep the right ones: mnist-cnn feedback keep ID ... (or --all), "
            "drop the others: mnist-cnn feedback drop ID ..."
        )
    elif args.action in ("keep", "drop"):
        if not args.ids and not args.all:
            raise MnistCnnError(f"feedback {args.action} needs correction ids, or --all pending")
        changed = store.review(None if args.all else args.ids, keep=args.action == "keep")
        print(f"{args.action}: {changed} corrections; {store.stats()['kept']} kept in all")
    else:
        print(f"deleted {store.clear()} corrections from {store.path}")


FINETUNE_FLAGS = ("steps_per_epoch", "lr", "correction_share", "holdout", "seed", "data_dir")


def cmd_finetune(args: argparse.Namespace) -> None:
    """The finetune recipe on the packaged model and the user's corrections by default; with
    --fields, the fields recipe on the packaged reader and the user's labelled pictures."""
    from mnist_cnn import engines, feedback, train

    overrides = {name: getattr(args, name) for name in FINETUNE_FLAGS}
    if args.fields:
        from mnist_cnn.reading import predictor

        if args.feedback:
            raise MnistCnnError("--fields teaches the reader, --feedback the classifier: one")
        if args.model and not predictor.is_reader(args.model):
            raise MnistCnnError(
                f"{args.model} is no reader: --fields fine-tunes a reader (a run folder of "
                "`train --recipe reader` or `finetune --fields`, or its model.keras)"
            )
        cfg = recipes.make_config(
            "fields",
            init_from=str(args.model or predictor.packaged_network()),
            fields=args.fields,
            out=args.out,
            **{k: v for k, v in overrides.items() if k in ("lr", "seed", "data_dir")},
            epochs=args.epochs,
        )
        result = train.train(cfg)
        m = result.metrics
        print(
            f"learnt {m['fields']} fields ({m['fields_left_out']} left out: no boxes, and the "
            f"reader found another count of digits); held-out pages: "
            + "  ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in m["held_out"].items())
        )
        print(f"fine-tuned in {m['train_seconds']:.1f} s; wrote {result.run}")
        return
    if args.model:
        _classifier(Path(args.model))
    cfg = recipes.make_config(
        "finetune",
        init_from=str(args.model or engines.packaged_model()),
        feedback_db=str(args.feedback or feedback.default_path()),
        out=args.out,
        **overrides,
    )
    result = train.train(cfg)
    m = result.metrics
    for when in ("before", "after"):
        print(
            f"{when}: held-out corrections {m[when]['corrections_held_out_accuracy']:.4f}  "
            f"MNIST test {m[when]['mnist_test_accuracy']:.4f}"
        )
    print(f"fine-tuned in {m['train_seconds']:.1f} s; wrote {result.run}")


def cmd_summary(args: argparse.Namespace) -> None:
    from mnist_cnn import models

    if args.model:
        raise MnistCnnError(f"summary takes the recipe or network by name: summary {args.model}")
    name = args.name
    models.build(recipes.make_config(name).architecture if name in RECIPES else name).summary()


def _setting_flag(
    p: argparse.ArgumentParser, f: dataclasses.Field, recipe: str | None = None
) -> None:
    """A --flag for TrainConfig setting `f`: its help, its default, its check, stated there
    (the default `recipe` gives it, where the command runs one recipe)."""
    meta = f.metadata
    set_by = [name for name, values in RECIPES.items() if f.name in values]
    default = f"{f.default}; some recipes set their own" if set_by else f.default
    if recipe is not None:
        default = RECIPES[recipe].get(f.name, f.default)
    kind = recipes.kind_of(f)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        try:
            recipes.check(f, value)
        except MnistCnnError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return value

    p.add_argument(
        "--" + f.name.replace("_", "-"),
        type=parse,
        choices=meta["choices"],
        help=f"{meta['help']} (default {default})",
    )


def _train_parser(sub: Any) -> None:
    names = ", ".join(sorted(RECIPES))
    t = sub.add_parser("train", help="train a model, evaluate it, write plots and metrics")
    t.add_argument("--recipe", default="classic", help=f"recipe: {names} (classic)")
    t.add_argument("--model", help=argparse.SUPPRESS)  # the old spelling: one clear message
    for f in _settings():
        _setting_flag(t, f)
    t.add_argument("--out", help="run folder (default: runs/RECIPE-seedN-TIMESTAMP)")
    t.add_argument("--resume", metavar="RUN", help="continue a killed run from its last epoch")
    t.add_argument("--dry-run", action="store_true", help="one quick epoch on two batches")
    t.set_defaults(func=cmd_train)


def _serve_parser(sub: Any) -> None:
    v = sub.add_parser("serve", help="the draw-a-digit page and the JSON API (FastAPI)")
    _model_options(v)
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    v.add_argument("--port", type=POSITIVE, default=8000, help="port (default 8000)")
    v.add_argument(
        "--workers",
        type=POSITIVE,
        default=serve_workers(),
        help=f"server processes, each with the model (default: one per core: {serve_workers()})",
    )
    v.add_argument(
        "--feedback-db", help="where users' corrections go (default: the user data dir's)"
    )
    v.add_argument("--no-feedback", action="store_true", help="no corrections: /api/feedback 404")
    v.add_argument(
        "--feedback-token",
        help="what a correction must carry (Authorization: Bearer ...; default: "
        "$MNIST_CNN_FEEDBACK_TOKEN; beyond loopback without one, a new token is printed)",
    )
    v.add_argument(
        "--forwarded-allow-ips",
        default="",
        help="reverse proxies (comma-separated addresses) trusted to name the client in "
        "X-Forwarded-For (default: none)",
    )
    v.set_defaults(func=cmd_serve)


def _feedback_parser(sub: Any) -> None:
    f = sub.add_parser(
        "feedback", help="the corrections users sent: stats, list, review, keep, drop, export"
    )
    f.add_argument("action", choices=["stats", "list", "review", "keep", "drop", "export", "clear"])
    f.add_argument("ids", nargs="*", type=int, help="keep, drop: the corrections' ids")
    f.add_argument("--all", action="store_true", help="keep, drop: every pending correction")
    f.add_argument("--db", help="the corrections database (default: the user data dir's)")
    f.add_argument("--json", action="store_true", help="JSON instead of text (stats, list)")
    f.add_argument("--limit", type=POSITIVE, help="list: the newest N only; review: N (100)")
    f.add_argument(
        "--out", help="export: a .npz file, or a folder with --format idx; review: a PNG"
    )
    f.add_argument("--format", choices=["npz", "idx"], default="npz", help="export (npz)")
    f.set_defaults(func=cmd_feedback)


def _finetune_parser(sub) -> None:
    u = sub.add_parser(
        "finetune",
        help="teach the classifier the corrections users sent, or the reader your own fields",
    )
    u.add_argument(
        "--model",
        help="run folder or .keras file (default: the packaged model, or with --fields the "
        "packaged reader)",
    )
    u.add_argument("--feedback", help="the corrections database (default: the user data dir's)")
    u.add_argument(
        "--fields",
        metavar="DIR",
        help="teach the reader your own pictures instead: a folder of them with labels.json "
        '({"FILE": {"text": "12.50"}}, and "boxes" where you have them; docs/reading.md)',
    )
    u.add_argument("--epochs", type=POSITIVE, help="with --fields: passes (the recipe's 2)")
    u.add_argument("--out", required=True, help="the new run folder")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for name in FINETUNE_FLAGS:
        _setting_flag(u, fields[name], recipe="finetune")
    u.set_defaults(func=cmd_finetune)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mnist-cnn", description="Train, evaluate and use CNNs on MNIST (Keras 3)."
    )
    sub = p.add_subparsers(dest="command", required=True)

    _train_parser(sub)

    e = sub.add_parser("evaluate", help="score a saved model on the test set, write plots")
    e.add_argument("model", nargs="?", help="a .keras file or a run folder (default: packaged)")
    e.add_argument("--out", help="where to write (default: MODEL's folder/eval)")
    e.add_argument("--data-dir", help="folder with the four MNIST files (or MNIST_DATA_DIR)")
    e.add_argument("--test-limit", type=POSITIVE, help="evaluate on the first N test images only")
    e.add_argument("--tta", action="store_true", help="average over one-pixel shifts too")
    e.set_defaults(func=cmd_evaluate)

    n = sub.add_parser("ensemble", help="average saved models into one model, and score it")
    n.add_argument("models", nargs="+", help=".keras files or run folders")
    n.add_argument("--out", required=True, help="folder for the ensemble's model and metrics")
    n.add_argument("--data-dir", help="folder with the four MNIST files (or MNIST_DATA_DIR)")
    n.add_argument("--test-limit", type=POSITIVE, help="evaluate on the first N test images only")
    n.set_defaults(func=cmd_ensemble)

    x = sub.add_parser("export", help="write a model as ONNX, TFLite or a TF SavedModel")
    x.add_argument("--model", help="a .keras file or a run folder (default: the packaged model)")
    x.add_argument(
        "--format",
        required=True,
        choices=list(FORMATS),
        help="onnx-int8: ONNX quantized to 8-bit integers, 2-3x faster on CPUs",
    )
    x.add_argument("--out", help="file (folder for saved_model); default: beside the model")
    x.add_argument("--data-dir", help="MNIST, for onnx-int8's calibration (or MNIST_DATA_DIR)")
    x.set_defaults(func=cmd_export)

    _predict_parser(sub)

    _serve_parser(sub)
    _feedback_parser(sub)

    _finetune_parser(sub)

    s = sub.add_parser("summary", help="print a model's layers, shapes and parameters")
    s.add_argument("name", nargs="?", default="classic", help="recipe or network (classic)")
    s.add_argument("--model", help=argparse.SUPPRESS)  # the old spelling: one clear message
    s.set_defaults(func=cmd_summary)
    return p


# which extra brings each optional module (pyproject.toml)
EXTRAS = {
    **dict.fromkeys(["keras", "tensorflow", "tensorboard", "matplotlib", "tqdm"], "train"),
    **dict.fromkeys(["fastapi", "uvicorn", "orjson", "multipart", "starlette"], "serve"),
    **dict.fromkeys(["onnx", "tf2onnx", "ai_edge_litert"], "export"),
    "jax": "jax",
    "torch": "torch",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code = args.func(args)
    except MnistCnnError as err:
        print(f"mnist-cnn: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:  # an optional part that this install left out
        top = (err.name or "").split(".")[0]
        if top not in EXTRAS:
            raise
        print(
            f"mnist-cnn: error: this needs {top}, which is not installed: "
            f"{install_hint(EXTRAS[top])}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("mnist-cnn: interrupted", file=sys.stderr)
        return 130
    return code or 0


def as_json(results: list) -> str:
    return json.dumps([r.to_json() for r in results], indent=2)


def as_csv(results: list) -> str:
    """Each page's rows of numbers as CSV (the file name first when there are several)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for r in results:
        if r.result is None:
            print(f"mnist-cnn: {r.file}: {r.error}", file=sys.stderr)
            continue
        for row in r.result.table():
            writer.writerow([r.file, *row] if len(results) > 1 else row)
    return out.getvalue()


def as_table(results: list) -> str:
    """One line per file: its digit (or number), the confidence, or its error."""
    from mnist_cnn.reading.results import Digit, Page

    lines = []
    for r in results:
        if r.result is None:
            lines.append(f"{r.file}: error: {r.error}")
        elif isinstance(r.result, Digit):
            top = "  ".join(f"{d}:{p:.3f}" for d, p in r.result.top3)
            said = r.result.digit if not r.result.unsure else "unsure"
            lines.append(f"{r.file}: {said}  (confidence {r.result.confidence:.3f}; top 3 {top})")
        elif isinstance(r.result, Page):
            lines.append(f"{r.file}: {len(r.result.lines)} lines")
            lines += ["    " + "    ".join(cells) for cells in r.result.table()]
        else:
            confidences = " ".join(f"{d.confidence:.2f}" for d in r.result.digits)
            value = "" if r.result.value is None else f"value {r.result.value}; "
            names = {".": "point", ",": "comma", "-": "minus"}
            sure = "".join(f"; {names[m.kind]} {m.confidence:.2f}" for m in r.result.marks)
            said = f"{value}per-digit confidence {confidences}{sure}"
            lines.append(f"{r.file}: {r.result.text}  ({said})")
        if r.result is not None and r.error:
            lines.append(f"{r.file}: error: {r.error}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
