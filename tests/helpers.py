"""Test helpers shared by several test modules (and benchmarks): made-up images and
probabilities, and a model run over many images in batches."""

import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_cnn.engines import Classifier


def blobs(n: int = 32, seed: int = 0) -> np.ndarray:
    """Blobs of 'ink' well inside a 28x28 frame: enough to see what a warp does."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28, 1), "float32")
    for i in range(n):
        r, c = rng.integers(8, 16, 2)
        x[i, r : r + 6, c : c + 4] = 255
    return x


def place(digit: np.ndarray, scale: float, top: int, left: int, invert: bool, size=(160, 200)):
    """The digit resized by `scale` and put on a bigger canvas, maybe dark ink on white."""
    side = max(8, round(28 * scale))
    big = np.asarray(Image.fromarray(digit.astype(np.uint8)).resize((side, side)), np.float32)
    canvas = np.zeros(size, np.float32)
    top, left = min(top, size[0] - side), min(left, size[1] - side)
    canvas[top : top + side, left : left + side] = big
    return 255 - canvas if invert else canvas


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two 28x28 images, allowing the half-pixel placement ambiguity of 1 px."""
    return max(
        float(np.corrcoef(np.roll(a, (dy, dx), (0, 1)).ravel(), b.ravel())[0, 1])
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )


def row_of(digits, gap: int, scale: int = 4) -> np.ndarray:
    """Digits written in a row, dark on white, `gap` px of paper between their ink."""
    tiles = []
    for d in digits:
        big = Image.fromarray(d.astype(np.uint8)).resize((28 * scale, 28 * scale))
        tile = np.asarray(big, np.float32)
        tiles.append(tile[:, tile.any(0)])
    page = np.zeros((28 * scale + 40, sum(t.shape[1] for t in tiles) + gap * len(tiles) + 60))
    col = 30
    for tile in tiles:
        area = page[20 : 20 + tile.shape[0], col : col + tile.shape[1]]
        np.maximum(area, tile, out=area)
        col += tile.shape[1] + gap
    return (255 - page).astype(np.float32)


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def overconfident(n=20_000, true_t=2.5, seed=0):
    """Labels drawn from softmax(z / true_t), probabilities claimed as softmax(z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 4, (n, 10))
    truth = softmax(z / true_t)
    y = np.array([rng.choice(10, p=p) for p in truth])
    return softmax(z), y


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.asarray(array).astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


def paper(digit: np.ndarray, scale: int = 4) -> np.ndarray:
    """An MNIST digit as a user would photograph it: dark ink on white paper, larger."""
    big = np.asarray(Image.fromarray(digit.astype(np.uint8)).resize((28 * scale, 28 * scale)))
    canvas = np.full((200, 260), 255, np.uint8)
    canvas[40 : 40 + 28 * scale, 60 : 60 + 28 * scale] = 255 - big
    return canvas


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """A Chromium or Chrome to drive: the system's first, else the one Playwright downloaded."""
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        own = p.chromium.executable_path
    return own if Path(own).exists() else None


def number_photo(
    text: str,
    writers,
    rng: np.random.Generator,
    background: str = "plain",
    height: int = 40,
    pen: float | None = None,
    spacing: float | None = None,
) -> bytes:
    """`text` written by `writers` (a `reading.pages.Writers`) on a sheet, as JPEG bytes: on
    plain paper, a cheque's guilloche, or squared paper."""
    from mnist_cnn.reading import pages

    ink, _ = pages.write(text, writers, rng, height, pen or 0.09 * height, spacing)
    h, w = ink.shape[0] + 2 * height, ink.shape[1] + 2 * height
    sheet = np.full((h, w), 0.93, np.float32)
    if background == "guilloche":
        sheet *= 1 - 0.45 * pages._guilloche(rng, (h, w))
    elif background == "squared":
        grid = np.maximum(
            pages._lines(rng, (h, w), height, True), pages._lines(rng, (h, w), height, False)
        )
        sheet *= 1 - 0.5 * grid
    sheet[height : height + ink.shape[0], height : height + ink.shape[1]] *= 1 - 0.9 * ink
    return jpeg(sheet * 255)


def page_photo(lines: list[list[str]], writers, rng: np.random.Generator, height: int = 40):
    """Numbers written on a sheet, line under line, as JPEG bytes: `lines` of numbers."""
    from mnist_cnn.reading import pages

    inks = [
        [pages.write(t, writers, rng, height, 0.09 * height, spacing=0.2)[0] for t in line]
        for line in lines
    ]
    width = max(sum(i.shape[1] + 3 * height for i in line) for line in inks) + 2 * height
    sheet = np.full((len(lines) * 3 * height + height, width), 0.93, np.float32)
    for row, line in enumerate(inks):
        x, y = height, height + 3 * height * row
        for ink in line:
            sheet[y : y + ink.shape[0], x : x + ink.shape[1]] *= 1 - 0.9 * ink
            x += ink.shape[1] + 3 * height
    return jpeg(sheet * 255)


def jpeg(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def on_a_table(photo: bytes, rng: np.random.Generator) -> bytes:
    """A photo of a sheet as if the sheet lay on a dark, patterned table, the camera a
    little tilted: JPEG bytes."""
    import cv2

    sheet = np.asarray(Image.open(io.BytesIO(photo)).convert("L"), np.float32)
    h, w = sheet.shape
    big = (int(h * 1.8), int(w * 1.6))
    table = np.full(big, 70, np.float32)
    table[::12] = 100  # the table's grain
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    x0, y0 = big[1] * 0.2, big[0] * 0.2
    dst = src + np.float32([x0, y0]) + rng.uniform(-0.04, 0.04, (4, 2)).astype(np.float32) * [w, h]
    warp = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    out = cv2.warpPerspective(sheet, warp, big[::-1], borderValue=-1)
    return jpeg(np.where(out < 0, table, out))


def predict_batched(run: Classifier, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Probabilities for all of `x`, `batch_size` images per call (float64, like evaluate's)."""
    parts = [run(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return np.concatenate(parts).astype("float64")
