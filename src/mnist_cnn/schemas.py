"""The HTTP API's contract: what each route takes and answers, as /openapi.json shows it.

The routes read their bodies themselves (for speed, and for the body limits), so FastAPI
does not parse them: the request bodies here are documentation, each described as it is
accepted. The answers are built by `reading.results` (`to_json`); the models here say their
shape, and the suite checks every answer against them (tests/test_schemas.py, Schemathesis).
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from mnist_cnn.data import NUM_CLASSES, SIZE

Level = Annotated[float, Field(ge=0, le=255)]
Row = Annotated[list[Level], Field(min_length=SIZE, max_length=SIZE)]
Label = Annotated[int, Field(ge=0, le=NUM_CLASSES - 1)]
Size = Annotated[list[int], Field(min_length=2, max_length=2, description="width, height")]
Box = Annotated[
    list[int],
    Field(min_length=4, max_length=4, description="x0, y0, x1, y1 in the picture's pixels"),
]


class Pixels(BaseModel):
    """A digit already in MNIST form: 28 rows of 28 values, 0 (paper) to 255 (ink)."""

    pixels: Annotated[list[Row], Field(min_length=SIZE, max_length=SIZE)]


class Correction(Pixels):
    """The digit a user really wrote, and what the model had answered (null: not known)."""

    label: Label
    predicted: Label | None = None


# ------------------------------------------------------------------ answers


class Digit(BaseModel):
    """One digit as read; `digit` is null (and `unsure` true) under the server's threshold."""

    digit: Label | None
    unsure: bool
    confidence: float
    top3: list[Annotated[list[float], Field(min_length=2, max_length=2)]] = Field(
        description="the three likeliest digits, each [digit, probability]"
    )
    probabilities: list[float]
    box: Box | None = None
    input: list[list[int]] | None = Field(None, description="the digit as 28x28 MNIST pixels")


class Mark(BaseModel):
    kind: Literal[".", ",", "-"]
    box: Box
    confidence: float


class Number(BaseModel):
    """A number as read: `text` as written ("?" for an unsure digit), `value` the number it
    stands for (null: none), its digits and marks; `sheet` the corners of the sheet cut out
    of a photo, `size` the picture's width and height as read."""

    text: str
    value: int | float | None
    digits: list[Digit]
    marks: list[Mark]
    sheet: list[list[float]] | None
    size: Size | None


class Page(BaseModel):
    """Every number on a page: lines top to bottom, numbers left to right; `columns`, for each
    line, the column each number stands in (null where the numbers stand in none); `table`,
    the rows of text."""

    lines: list[list[Number]]
    columns: list[list[int | None]] | None
    sheet: list[list[float]] | None
    size: Size | None
    table: list[list[str]]


class Pooled(BaseModel):
    network: float
    classifier: float


class Model(BaseModel):
    name: str | None
    engine: str
    params: int | None
    test_accuracy: float | None
    min_confidence: float
    pictures: Literal["network", "pooled", "classifier"] = Field(
        description="what reads a picture's digits: the reader's network alone, the network "
        "and this classifier pooled (weights in `pool`), or this classifier alone"
    )
    pool: Pooled | None


class Status(BaseModel):
    status: Literal["ok", "ready", "busy"]


class Stored(BaseModel):
    id: int
    total: int


class Stats(BaseModel):
    total: int
    per_digit: dict[str, int]
    model_was_wrong: int
    pending: int
    kept: int
    dropped: int


class Problem(BaseModel):
    """What went wrong, in one line (FastAPI's own checks of a query parameter: a list)."""

    detail: str | list[dict[str, Any]]


class ImageProblem(BaseModel):
    """An image the reader cannot take: not an image, damaged, too large, or no digit in it
    (`problem` "image"); a JSON body that is not JSON (`problem` "body")."""

    detail: str
    problem: Literal["image", "body"]


# ------------------------------------------------------------------ the routes' documents

WHY = {
    400: "the image cannot be read or holds no digit (problem: image); or the body is not what "
    "its content type says: JSON that is not JSON, a broken multipart form (problem: body)",
    401: "a correction without this server's token (Authorization: Bearer TOKEN)",
    408: "the body stalled (no data for 10 s)",
    413: "the body is over 1 MiB (declared or streamed)",
    415: "a content type the route does not take",
    422: "the JSON or the form is not what the route takes (detail says what)",
    429: "too many corrections from this client in a minute (Retry-After)",
    503: "the server holds too many uploads, or its database is unavailable (Retry-After); "
    "beyond 1,000 connections at once uvicorn answers 503 in plain text",
    507: "the corrections database is full: export and clear it",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can answer these codes, each with its body."""
    return {
        code: {"model": ImageProblem if code == 400 else Problem, "description": WHY[code]}
        for code in codes
    }


READING = (400, 408, 413, 415, 422, 503)  # what a route that reads an image can answer

_IMAGE = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "string", "format": "binary"}},
            "required": ["file"],
        }
    },
    "image/*": {"schema": {"type": "string", "format": "binary"}},
}
_LABEL = {"type": "integer", "minimum": 0, "maximum": NUM_CLASSES - 1}
_FORM_CORRECTION = {
    "schema": {
        "type": "object",
        "properties": {
            "file": {"type": "string", "format": "binary"},
            "label": _LABEL,
            "predicted": _LABEL,
        },
        "required": ["file", "label"],
    }
}


def _body(**content: dict) -> dict:
    return {"requestBody": {"required": True, "content": content}}


IMAGE_BODY = _body(**_IMAGE)
PIXELS_BODY = _body(**_IMAGE, **{"application/json": {"schema": Pixels.model_json_schema()}})
FEEDBACK_BODY = _body(
    **{"multipart/form-data": _FORM_CORRECTION},
    **{"application/json": {"schema": Correction.model_json_schema()}},
)
