"""Fuzz the image paths: mutated real image bytes and random arrays through every reader.

    python benchmarks/fuzz.py [--cases 2000] [--seed 0] [--out benchmarks/fuzz-DATE.json]

Seeds are real digit pictures saved in every format Pillow writes (PNG, JPEG, GIF, TIFF, BMP,
WebP and rarer ones: PPM, PCX, TGA, SGI, ICO, SPIDER, 16-bit PNG, float TIFF). Each case
mutates one (bit flips, truncation, spliced or repeated chunks, a huge declared size) and sends
it through `predict.predict_files`, `predict.read_number_files` (a number, and a page of
numbers) and the server's three image routes. A crash is a Python exception out of predict
(a lost batch) or a 5xx from the server; a clean 4xx or a per-file error is what should
happen. Reports cases, crashes, and the worst time and memory (RSS growth) per case. The
test suite runs a short, fixed-seed version.
"""

import argparse
import base64
import io
import json
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

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


def fuzz(cases: int, seed: int, classify, client=None) -> dict:
    """Run `cases` mutated images (and a random array per 10 cases) through predict and, with a
    TestClient, the server. Returns counts, crashes and the worst case's time and peak RSS."""
    from mnist_cnn import digits, predict

    rng = np.random.default_rng(seed)
    pool = seeds(rng)
    crashes, worst_s, worst_rss, start_rss = [], 0.0, 0.0, rss_mb()
    with tempfile.TemporaryDirectory(prefix="mnist-cnn-fuzz-") as tmp:
        for case in range(cases):
            suffix, data = pool[int(rng.integers(len(pool)))]
            for _ in range(int(rng.integers(1, 4))):
                data = mutate(data, rng)
            if case % 10 == 9:  # a random array as an image, any shape and range
                shape = tuple(int(s) for s in rng.integers(1, 200, 2))
                arr = rng.uniform(-1e6, 1e6, shape) if rng.random() < 0.5 else rng.random(shape)
                try:
                    digits.normalise(arr)
                except digits.ImageError:
                    pass
                except Exception as err:  # a crash: normalise must say ImageError or answer
                    crashes.append({"case": case, "where": "normalise", "error": repr(err)[:200]})
            path = Path(tmp) / f"case{case}{suffix}"
            path.write_bytes(data)
            started = time.perf_counter()
            try:
                predict.predict_files([path], classify)  # one result, an answer or an error
                predict.read_number_files([path], classify)
                predict.read_number_files([path], classify, page=True)
            except Exception as err:  # a lost batch
                crashes.append({"case": case, "where": "predict", "error": repr(err)[:200]})
            if client is not None:
                for route in ("/api/predict", "/api/read-number", "/api/read-numbers"):
                    r = client.post(route, files={"file": (path.name, data, "image/png")})
                    if r.status_code >= 500:
                        crashes.append(
                            {
                                "case": case,
                                "where": route,
                                "status": r.status_code,
                                "input_b64": base64.b64encode(data).decode()[:20000],
                            }
                        )
            worst_s = max(worst_s, time.perf_counter() - started)
            worst_rss = max(worst_rss, rss_mb() - start_rss)
            path.unlink()
    return {
        "cases": cases,
        "seed": seed,
        "crashes": len(crashes),
        "crash_examples": crashes[:20],
        "worst_seconds": round(worst_s, 3),
        "peak_rss_growth_mb": round(worst_rss, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engine", default="onnx-int8")
    p.add_argument("--out", default=f"benchmarks/fuzz-{date.today()}.json")
    args = p.parse_args()

    from fastapi.testclient import TestClient

    from mnist_cnn import engines, serve

    classify = engines.classifier(engine=args.engine)
    app = serve.create_app(engine=args.engine)
    started = time.perf_counter()
    with TestClient(app, raise_server_exceptions=False) as client:
        report = fuzz(args.cases, args.seed, classify, client)
    report.update(date=date.today().isoformat(), engine=args.engine)
    report["seconds"] = round(time.perf_counter() - started, 1)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "crash_examples"}))
    print("| cases | crashes | worst time per case | peak RSS growth |\n| --- | --- | --- | --- |")
    print(
        f"| {report['cases']} | {report['crashes']} | {report['worst_seconds']} s | "
        f"{report['peak_rss_growth_mb']} MB |"
    )
    sys.exit(1 if report["crashes"] else 0)


if __name__ == "__main__":
    main()
