"""The image fuzzer: real pictures in every format Pillow writes, mutated, through the reader
and the server's image routes. tests/test_fuzz.py runs a short fixed-seed version of it and
benchmarks/fuzz.py the long one.

A failure is anything but an answer or the intended one-line image error: an exception out of
the reader that is not an `ImageError`, a server status other than 200 and 400, a 400 whose
detail is not one line, and the server's "image work failed" log line (an unexpected exception
the server turned into a 400).
"""

import io
import logging
import resource
import time

import numpy as np
from PIL import Image

FORMATS = {  # Pillow format, mode, suffix
    "PNG": ("L", ".png"),
    "JPEG": ("L", ".jpg"),
    "GIF": ("L", ".gif"),
    "TIFF": ("L", ".tif"),
    "BMP": ("L", ".bmp"),
    "WEBP": ("L", ".webp"),
    "PPM": ("L", ".pgm"),
    "PCX": ("L", ".pcx"),
    "TGA": ("L", ".tga"),
    "SGI": ("L", ".sgi"),
    "ICO": ("L", ".ico"),
    "SPIDER": ("F", ".spi"),
}


def digit_page(rng: np.random.Generator) -> np.ndarray:
    """A rough digit-like stroke, dark on light paper, 40-120 px."""
    side = int(rng.integers(40, 120))
    page = np.full((side, side), 235, np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        r0, c0, r1, c1 = rng.integers(side // 6, side - side // 6, 4)
        n = 50
        rr = np.linspace(r0, r1, n).astype(int)
        cc = np.linspace(c0, c1, n).astype(int)
        for r, c in zip(rr, cc, strict=True):
            page[max(0, r - 2) : r + 3, max(0, c - 2) : c + 3] = 20
    return page


def seeds(rng: np.random.Generator) -> list[tuple[str, bytes]]:
    """One real picture per format, plus 16-bit and float pictures."""
    out = []
    for fmt, (mode, suffix) in FORMATS.items():
        page = digit_page(rng)
        img = Image.fromarray(page.astype(np.float32) if mode == "F" else page)
        buf = io.BytesIO()
        img.save(buf, fmt)
        out.append((suffix, buf.getvalue()))
    page16 = (digit_page(rng).astype(np.uint16) * 257).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(page16).save(buf, "PNG")
    out.append((".png", buf.getvalue()))
    buf = io.BytesIO()
    Image.fromarray(digit_page(rng).astype(np.float32)).save(buf, "TIFF")
    out.append((".tif", buf.getvalue()))
    return out


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random mutation of `data`: flips, truncation, splices, repeats or a patched size."""
    b = bytearray(data)
    kind = int(rng.integers(0, 6))
    if kind == 0 and b:  # flip a few bytes
        for i in rng.integers(0, len(b), int(rng.integers(1, 9))):
            b[i] = int(rng.integers(0, 256))
    elif kind == 1 and len(b) > 1:  # truncate
        b = b[: int(rng.integers(1, len(b)))]
    elif kind == 2 and b:  # repeat a chunk
        i, n = int(rng.integers(0, len(b))), int(rng.integers(1, 256))
        b[i:i] = b[i : i + n] * int(rng.integers(1, 20))
    elif kind == 3 and b:  # big numbers where headers keep sizes
        i = int(rng.integers(0, min(len(b), 64)))
        b[i : i + 4] = bytes([0x7F, 0xFF, 0xFF, 0xFF])
    elif kind == 4:  # splice in random bytes
        i = int(rng.integers(0, len(b) + 1))
        b[i:i] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    else:  # delete a chunk
        i = int(rng.integers(0, max(1, len(b))))
        del b[i : i + int(rng.integers(1, 64))]
    return bytes(b)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Caught(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def fuzz(cases: int, seed: int, reader, client=None) -> dict:
    """Run `cases` mutated images (and a random array per 10 cases) through `reader` (a
    `reading.Reader`) and, with a TestClient, the server. Returns the cases, the failures and
    the worst case's time and RSS growth."""
    from mnist_cnn.errors import ImageError

    rng = np.random.default_rng(seed)
    pool = seeds(rng)
    failures, worst_s, worst_rss, start_rss = [], 0.0, 0.0, rss_mb()
    caught = _Caught()
    logging.getLogger("mnist_cnn.serve").addHandler(caught)
    try:
        for case in range(cases):
            suffix, data = pool[int(rng.integers(len(pool)))]
            for _ in range(int(rng.integers(1, 4))):
                data = mutate(data, rng)
            inputs: list = [data]
            if case % 10 == 9:  # a random array as an image, any shape and range
                shape = tuple(int(s) for s in rng.integers(1, 200, 2))
                arr = rng.uniform(-1e6, 1e6, shape) if rng.random() < 0.5 else rng.random(shape)
                inputs.append(arr)
            started = time.perf_counter()
            for given in inputs:
                for read in (reader.read_digit, reader.read_number, reader.read_numbers):
                    try:
                        read(given)
                    except ImageError as err:
                        if "\n" in str(err) or not str(err):
                            failures.append(
                                {"case": case, "where": read.__name__, "error": repr(err)}
                            )
                    except Exception as err:  # not the intended error: a failure
                        failures.append(
                            {"case": case, "where": read.__name__, "error": repr(err)[:200]}
                        )
            if client is not None:
                for route in ("/api/predict", "/api/read-number", "/api/read-numbers"):
                    r = client.post(route, files={"file": (f"case{suffix}", data, "image/png")})
                    detail = r.json().get("detail", "") if r.status_code == 400 else ""
                    if r.status_code not in (200, 400) or "\n" in str(detail):
                        failures.append({"case": case, "where": route, "status": r.status_code})
            for line in caught.lines:
                failures.append({"case": case, "where": "server log", "error": line[:200]})
            caught.lines.clear()
            worst_s = max(worst_s, time.perf_counter() - started)
            worst_rss = max(worst_rss, rss_mb() - start_rss)
    finally:
        logging.getLogger("mnist_cnn.serve").removeHandler(caught)
    return {
        "cases": cases,
        "seed": seed,
        "failures": len(failures),
        "failure_examples": failures[:20],
        "worst_seconds": round(worst_s, 3),
        "peak_rss_growth_mb": round(worst_rss, 1),
    }
