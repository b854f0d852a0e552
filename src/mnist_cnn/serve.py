"""The HTTP API and the draw-a-digit page, on FastAPI.

The model loads once, when the app is made. Requests never run it on the event loop: they
queue for one worker thread that takes everything waiting as one batch (micro-batching), so
the server keeps answering under load and a burst costs one forward pass, not fifty.
Bad input gets a JSON error with a 4xx status; a 500 means a bug.
"""

import asyncio
import gc
import hmac
import json
import logging
import os
import re
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from mnist_cnn import engines
from mnist_cnn import schemas as api
from mnist_cnn.data import NUM_CLASSES, SIZE
from mnist_cnn.engines import Classifier
from mnist_cnn.errors import ImageError, MnistCnnError
from mnist_cnn.feedback import FeedbackError, FeedbackStore, RateLimited, StoreFull
from mnist_cnn.reading import pooling, predictor, results
from mnist_cnn.reading.results import MIN_CONFIDENCE

MAX_BODY = 1024 * 1024  # bytes: a larger request gets 413
BODY_BUDGET = 64 * MAX_BODY  # bytes all bodies in flight may hold in one process: then 503
CLIENT_BODY_BUDGET = 8 * MAX_BODY  # ... and those of one client address
MAX_BATCH = 256  # most images one forward pass takes from the queue
BODY_TIMEOUT = 10.0  # seconds a client may pause while sending its body: then 408
IMAGE_SLOTS = max(1, os.cpu_count() or 1)  # images decoded and normalised at once, off the loop
FEEDBACK_PER_MINUTE = 60  # corrections one client may send in a minute
READY_WITHIN = 5.0  # seconds /readyz waits for the model's answer
log = logging.getLogger("mnist_cnn.serve")


STATIC = resources.files("mnist_cnn") / "static"


class Batcher:
    """Runs whatever requests are waiting as one batch in a worker thread, one batch at a time."""

    def __init__(self, classify: Classifier, max_batch: int = MAX_BATCH):
        self.classify, self.max_batch = classify, max_batch
        self.queue: asyncio.Queue = asyncio.Queue()

    async def __call__(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for a batch of 28x28x1 images, once its turn comes."""
        done = asyncio.get_running_loop().create_future()
        await self.queue.put((x, done))
        return await done

    async def run(self) -> None:
        while True:
            waiting = [await self.queue.get()]
            while not self.queue.empty() and len(waiting) < self.max_batch:
                waiting.append(self.queue.get_nowait())
            x = np.concatenate([x for x, _ in waiting])
            try:
                probs = await asyncio.to_thread(self.classify, x)
            except Exception as err:  # a bug: every waiting request gets it, the loop goes on
                for _, done in waiting:
                    if not done.done():
                        done.set_exception(err)
                continue
            start = 0
            for x_part, done in waiting:
                if not done.done():  # its client may have gone
                    done.set_result(probs[start : start + len(x_part)])
                start += len(x_part)


@dataclass
class Served:
    """What the app serves and how, in `app.state.served`: the models' description, the
    classifier's batches (JSON pixels, and the digits a reader finds where a classifier reads
    them), the reader's network and its pool with the classifier, the image-work slots, and
    the corrections store (None: no feedback routes)."""

    info: dict[str, Any]
    batcher: Batcher
    cells: Any
    reads_with_classifier: bool
    pool: pooling.Pool | None
    min_confidence: float
    image_slots: asyncio.Semaphore
    store: FeedbackStore | None
    token: str | None


class LimitBody:
    """ASGI middleware: 413 for a body over `limit` bytes, declared or streamed; 503 (Retry-After)
    for a body that would take what is held of all bodies in flight over `budget`, or one
    client's over `client_budget`: each request is bounded, and so is their sum, so a client
    stalling hundreds of uploads can hold neither the memory nor the others' room."""

    def __init__(
        self,
        app: Any,
        limit: int | None = None,
        budget: int | None = None,
        client_budget: int | None = None,
    ):
        self.app, self.limit = app, MAX_BODY if limit is None else limit
        self.budget = BODY_BUDGET if budget is None else budget
        self.client_budget = CLIENT_BODY_BUDGET if client_budget is None else client_budget
        self.held, self.by_client = 0, {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _too_large(self.limit)(scope, receive, send)
        client = (scope.get("client") or ("?",))[0]
        received, complete = 0, False

        async def counted() -> dict:
            nonlocal received, complete
            if complete:  # the body is in: later reads only wait for a disconnect
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), BODY_TIMEOUT)
            except TimeoutError:
                raise HTTPException(408, f"no body data for {BODY_TIMEOUT:.0f} s") from None
            size = len(message.get("body", b""))
            received += size
            self._hold(client, size)
            complete = not message.get("more_body", False)
            if received > self.limit:
                raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        try:
            await self.app(scope, counted, send)
        finally:
            self._hold(client, -received)

    def _hold(self, client: str, size: int) -> None:
        self.held += size
        mine = self.by_client.get(client, 0) + size
        if mine > 0:
            self.by_client[client] = mine
        else:
            self.by_client.pop(client, None)
        if size > 0 and (self.held > self.budget or mine > self.client_budget):
            raise HTTPException(
                503, "the server holds too many uploads; try again", {"Retry-After": "1"}
            )


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)


def model_info(model_path: str | Path, engine: str) -> dict[str, Any]:
    """Name, parameter count and test accuracy, from the run's metrics.json where there is one."""
    path = Path(model_path)
    folder = path if path.is_dir() else path.parent
    metrics_file = folder / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    return {  # no server paths: a client has no business knowing them
        "name": metrics.get("recipe")  # (runs before 2026-12-07 wrote it as "model")
        or metrics.get("model", path.stem if path.is_file() else path.name),
        "engine": engine,
        "params": metrics.get("params"),
        "test_accuracy": metrics.get("test_accuracy"),
    }


def create_app(
    model: str | Path | None = None,
    engine: str = "auto",
    min_confidence: float | None = None,
    threads: int = 0,
    feedback: bool = True,
    feedback_db: str | Path | None = None,
    feedback_token: str | None = None,
) -> FastAPI:
    """The app for `mnist-cnn serve`; the models load here, once, before any request.

    model: a reader (pictures are read with it, JSON pixels with the packaged classifier), or
    an MNIST classifier (it reads JSON pixels, and the digits the packaged reader finds); None:
    the packaged reader and classifier.

    feedback: whether corrections are taken (False: no feedback routes); feedback_db: where
    they go (None: the user data dir's database); feedback_token: what a correction must carry
    (`Authorization: Bearer TOKEN`), else 401 (None: none needed; the launcher makes one for a
    server beyond loopback)."""
    reader = model is None or predictor.is_reader(model)
    path = engines.packaged_model() if reader else Path(model)
    served = Served(
        info=model_info(path, engines.resolve(path, engine)),
        batcher=Batcher(engines.classifier(path, engine, threads)),
        cells=predictor.load(model if reader else None, threads),
        reads_with_classifier=not reader,
        pool=pooling.beside(predictor.reader_path(model)) if reader else None,
        min_confidence=MIN_CONFIDENCE if min_confidence is None else min_confidence,
        image_slots=asyncio.Semaphore(IMAGE_SLOTS),
        store=FeedbackStore(feedback_db) if feedback else None,
        token=feedback_token,
    )
    served.info["min_confidence"] = served.min_confidence
    served.info["pictures"] = (
        "classifier" if not reader else "pooled" if served.pool is not None else "network"
    )
    served.info["pool"] = asdict(served.pool) if served.pool is not None else None
    app = FastAPI(
        title="mnist-cnn",
        summary="Handwritten digits in, answers out: draw one at / or call the JSON API.",
        lifespan=lifespan,
    )
    app.state.served = served
    app.add_middleware(LimitBody)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.include_router(routes)
    if served.store is not None:  # (None: --no-feedback, and the routes are 404)
        app.include_router(feedback_routes)
    app.add_exception_handler(ImageError, image_error)
    app.add_exception_handler(BodyError, body_error)
    app.add_exception_handler(ClientDisconnect, client_left)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI):
    # The model and TensorFlow leave millions of long-lived objects: keep them out of the
    # garbage collector's full passes, which otherwise stall ~1 request in 100 by ~0.2 s.
    gc.collect()
    gc.freeze()
    worker = asyncio.create_task(app.state.served.batcher.run())
    yield
    worker.cancel()


def _served(request: Request) -> Served:
    return request.app.state.served


def _reader(served: Served, decimal_comma: bool | None = None) -> predictor.Reader:
    """The reader for one request: the served network, and, where a classifier reads the
    digits (alone, or pooled with the network), the classifier's batches."""
    classify = _through_batches(served) if served.reads_with_classifier or served.pool else None
    return predictor.Reader(
        cells=served.cells,
        classify=classify,
        pool=served.pool or False,
        min_confidence=served.min_confidence,
        decimal_comma=decimal_comma,
    )


async def off_the_loop(served: Served, work: Any, *args: Any) -> Any:
    """Image work in a worker thread, IMAGE_SLOTS at a time: /healthz and JSON requests keep
    being answered while hostile uploads are decoded. A file that makes the image code fail
    unexpectedly is still the file's fault to the client (400), and a bug to the log (one
    line)."""
    async with served.image_slots:
        try:
            return await run_in_threadpool(work, *args)
        except ImageError:
            raise
        except Exception as err:
            log.warning("image work failed: %s: %s", type(err).__name__, err)
            raise ImageError(f"could not read this image ({type(err).__name__})") from None


class BodyError(MnistCnnError):
    """A body that is not what its content type says (JSON that is not JSON): 400."""


async def image_error(request: Request, err: ImageError) -> JSONResponse:
    return JSONResponse({"detail": str(err), "problem": "image"}, status_code=400)


async def body_error(request: Request, err: BodyError) -> JSONResponse:
    return JSONResponse({"detail": str(err), "problem": "body"}, status_code=400)


async def client_left(request: Request, err: ClientDisconnect) -> Response:
    log.info("client left before its request was read: %s %s", request.method, request.url.path)
    return Response(status_code=499)  # nobody is listening; nginx's code for this


routes = APIRouter()
feedback_routes = APIRouter()


@routes.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(str(STATIC / "index.html"))


@routes.get("/healthz", response_model=api.Status, responses=api.errors(413))
async def healthz() -> dict[str, str]:
    """The process lives (for a liveness probe: it answers while the model is busy)."""
    return {"status": "ok"}


@routes.get(
    "/readyz",
    response_model=api.Status,
    responses={
        **api.errors(413),
        503: {"model": api.Status, "description": "the model is busy (Retry-After)"},
    },
)
async def readyz(request: Request) -> JSONResponse:
    """The model is loaded and answering: a blank digit goes through the batches in time (for
    a readiness probe or a load balancer's health check)."""
    blank = np.zeros((1, SIZE, SIZE, 1), np.float32)
    try:
        await asyncio.wait_for(_served(request).batcher(blank), READY_WITHIN)
    except TimeoutError:
        return JSONResponse({"status": "busy"}, status_code=503, headers={"Retry-After": "1"})
    return JSONResponse({"status": "ready"})


@routes.get("/api/model", response_model=api.Model, responses=api.errors(413))
async def model_route(request: Request) -> dict[str, Any]:
    """The model being served: name, parameters, test accuracy, engine, unsure threshold."""
    return _served(request).info


@routes.post(
    "/api/predict",
    openapi_extra=api.PIXELS_BODY,
    response_model=api.Digit,
    responses=api.errors(*api.READING),
)
async def predict_route(request: Request) -> Response:
    """One digit: an image (multipart field `file`, or the body as image/*), or JSON pixels.

    An image is read by the reader: the digit it finds (the largest), its box, and `input`,
    the digit as 28x28 MNIST pixels; JSON `pixels` are taken as already in MNIST form (white
    ink on black, 0-255) and read by the classifier.
    """
    served = _served(request)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        digit = _pixels(await request.body())
        p = (await served.batcher(digit[None, ..., None].astype(np.float32)))[0]
        answer = results.digit(p, served.min_confidence)
    else:
        body = await _image_bytes(request, content_type)
        reader = _reader(served)
        answer = await off_the_loop(served, lambda: reader.read_digit(body, inputs=True))
    return Response(orjson.dumps(answer.to_json()), media_type="application/json")


@routes.post(
    "/api/read-number",
    openapi_extra=api.IMAGE_BODY,
    response_model=api.Number,
    responses=api.errors(*api.READING),
)
async def read_number_route(request: Request, decimal_comma: bool | None = None) -> Response:
    """A number written in a row (multipart field `file`, or the body as image/*): its text
    and value, each digit (with its box and 28x28) and each mark. `decimal_comma`: a comma is
    the decimal mark (true), a thousands separator (false), or (unset) the decimal mark unless
    three digits follow it."""
    served = _served(request)
    body = await _image_bytes(request, request.headers.get("content-type", ""))
    reader = _reader(served, decimal_comma)
    number = await off_the_loop(served, lambda: reader.read_number(body, inputs=True))
    return Response(orjson.dumps(number.to_json()), media_type="application/json")


@routes.post(
    "/api/read-numbers",
    openapi_extra=api.IMAGE_BODY,
    response_model=api.Page,
    responses=api.errors(*api.READING),
)
async def read_numbers_route(request: Request, decimal_comma: bool | None = None) -> Response:
    """Every number on a page (multipart field `file`, or the body as image/*): lines of
    numbers, top to bottom, each as /api/read-number answers, and `table`, the rows of text
    (numbers in their columns where they stand in columns)."""
    served = _served(request)
    body = await _image_bytes(request, request.headers.get("content-type", ""))
    reader = _reader(served, decimal_comma)
    page = await off_the_loop(served, lambda: reader.read_numbers(body, inputs=True))
    return Response(orjson.dumps(page.to_json()), media_type="application/json")


@feedback_routes.post(
    "/api/feedback",
    status_code=201,
    openapi_extra=api.FEEDBACK_BODY,
    response_model=api.Stored,
    responses=api.errors(*api.READING, 401, 429, 507),
)
async def feedback_route(request: Request) -> dict[str, int]:
    """A correction: the digit the user really wrote. JSON {"pixels": 28x28, "label": 0-9,
    "predicted": 0-9 or null}, or multipart `file` (normalised like /api/predict) with `label`
    (and `predicted`). Stores pixels and labels only."""
    served = _served(request)
    _check_token(request, served.token)
    digit, label, predicted = await _correction(request, served)
    # the client's address: behind a trusted proxy (--forwarded-allow-ips), the one the proxy
    # names; the rate limit is shared by all workers through the database
    sender = request.client.host if request.client else "?"
    store = served.store
    try:
        found = await run_in_threadpool(
            store.add, digit, label, predicted, sender, FEEDBACK_PER_MINUTE
        )
    except RateLimited as err:
        raise HTTPException(429, str(err), {"Retry-After": "60"}) from None
    except StoreFull as err:
        raise HTTPException(507, str(err)) from None
    except FeedbackError as err:
        raise HTTPException(503, str(err), {"Retry-After": "1"}) from None
    return {"id": found, "total": (await run_in_threadpool(store.stats))["total"]}


@feedback_routes.get(
    "/api/feedback/stats", response_model=api.Stats, responses=api.errors(413, 503)
)
async def feedback_stats(request: Request) -> dict[str, Any]:
    """How many corrections are stored: in all, per digit, where the model was wrong, and
    how many wait for review, were kept or dropped."""
    try:
        return await run_in_threadpool(_served(request).store.stats)
    except FeedbackError as err:
        raise HTTPException(503, str(err), {"Retry-After": "1"}) from None


async def _correction(request: Request, served: Served) -> tuple[np.ndarray, int, int | None]:
    """A correction's 28x28, label and the model's answer, from JSON or a multipart form."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        doc = _json(await request.body())
        if not isinstance(doc, dict):
            raise HTTPException(422, "expected a JSON object with pixels and label")
        digit = _pixel_rows(doc.get("pixels"))
        label = _digit_field(doc.get("label"), "label", required=True)
        return digit, label, _digit_field(doc.get("predicted"), "predicted", required=False)
    if not content_type.startswith("multipart/form-data"):
        raise HTTPException(415, "send JSON pixels and a label, or multipart file + label")
    form = await _form(request)
    label = _digit_field(form.get("label"), "label", required=True, text=True)
    predicted = _digit_field(form.get("predicted"), "predicted", required=False, text=True)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise HTTPException(422, "multipart body has no file field named 'file'")
    body = await upload.read()
    reader = _reader(served)
    digit = await off_the_loop(served, lambda: reader.read_digit(body, inputs=True))
    return np.asarray(digit.input, np.float32), label, predicted


async def _form(request: Request) -> Any:
    """The multipart form, or 400 (`problem` "body") when it is not one."""
    try:
        return await request.form()
    except HTTPException:  # ours: the body's limits (LimitBody)
        raise
    except StarletteHTTPException as err:  # "Invalid multipart data.", a part too large
        raise BodyError(f"{err.detail} Send multipart/form-data with a 'file' field.") from None


def _check_token(request: Request, token: str | None) -> None:
    if token is None:
        return
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            401,
            "corrections need this server's token: open the page at the address `mnist-cnn "
            "serve` printed (it ends in ?token=...), or send Authorization: Bearer TOKEN",
            {"WWW-Authenticate": "Bearer"},
        )


def _through_batches(served: Served) -> Classifier:
    """A classifier for the image thread that sends its images through the batches, where
    the model settles how a number's marks form digits."""
    loop = asyncio.get_running_loop()

    def classify(x: np.ndarray) -> np.ndarray:
        return asyncio.run_coroutine_threadsafe(served.batcher(x), loop).result()

    return classify


async def _image_bytes(request: Request, content_type: str) -> bytes:
    if content_type.startswith("multipart/form-data"):
        form = await _form(request)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "multipart body has no file field named 'file'")
        return await upload.read()
    if content_type.startswith("image/") or content_type == "application/octet-stream":
        return await request.body()
    raise HTTPException(
        415,
        f"unsupported content type {content_type or '(none)'!r}: send multipart/form-data "
        "with a 'file' field, an image/* body, or JSON pixels",
    )


def _pixels(body: bytes) -> np.ndarray:
    """JSON `pixels` as a 28x28 array, parsed by orjson and checked by numpy: this is the
    hottest path of the API, and this takes a third of the time a pydantic model took
    (34 against 100 us for one digit's body)."""
    doc = _json(body)
    return _pixel_rows(doc.get("pixels") if isinstance(doc, dict) else None)


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise BodyError(f"body is not valid JSON: {err}") from None


def _digit_field(value: Any, name: str, required: bool, text: bool = False) -> int | None:
    """A label field: an integer 0-9 (9.0 too: an integer to JSON Schema; `text`: a form's
    "9"), else 422."""
    if value is None and not required:
        return None
    if text and isinstance(value, str) and re.fullmatch(r"\s*[0-9]\s*", value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < NUM_CLASSES:
        raise HTTPException(422, f"{name}: expected a digit 0-{NUM_CLASSES - 1}")
    return value


def _pixel_rows(rows: Any) -> np.ndarray:
    try:
        x = np.array(rows) if isinstance(rows, list) else None
    except (ValueError, TypeError):  # ragged rows
        x = None
    if x is not None and x.dtype.kind not in "iuf":  # strings, true/false, objects
        x = None
    if x is None or x.ndim != 2 or len(x) != SIZE:
        raise HTTPException(
            422, f"expected {{'pixels': {SIZE} rows of {SIZE} values}}, 0 (paper) to 255"
        )
    if x.shape[1] != SIZE:
        raise HTTPException(422, f"pixels: each of the {SIZE} rows must hold {SIZE} values")
    if not 0 <= x.min() <= x.max() <= 255:  # (orjson takes no NaN or Infinity)
        raise HTTPException(422, "pixels: values must lie between 0 and 255")
    return x.astype(np.float32)
