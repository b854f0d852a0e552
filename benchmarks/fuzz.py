"""Fuzz the image paths: mutated real image bytes and random arrays through the reader and the
server (tests/fuzzing.py says what counts as a failure).

    python benchmarks/fuzz.py [--cases 2000] [--seed 0] [--out benchmarks/results/fuzz.json]

Seeds are real pictures saved in every format Pillow writes (PNG, JPEG, GIF, TIFF, BMP, WebP and
rarer ones: PPM, PCX, TGA, SGI, ICO, SPIDER, 16-bit PNG, float TIFF). Each case mutates one (bit
flips, truncation, spliced or repeated chunks, a huge declared size) and sends it through
`read_digit`, `read_number` and `read_numbers` and the server's three image routes. Reports
cases, failures, and the worst time and memory (RSS growth) per case. The test suite runs a
short, fixed-seed version (tests/test_fuzz.py).
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
import fuzzing


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/fuzz.json")
    args = p.parse_args()

    from fastapi.testclient import TestClient

    from mnist_cnn import serve
    from mnist_cnn.reading.predictor import Reader

    app = serve.create_app()
    started = time.perf_counter()
    with TestClient(app, raise_server_exceptions=False) as client:
        report = fuzzing.fuzz(args.cases, args.seed, Reader(), client)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["command"] = " ".join(["python benchmarks/fuzz.py", *sys.argv[1:]])
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "failure_examples"}))
    print("| cases | failures | worst time per case | peak RSS growth |")
    print("| --- | --- | --- | --- |")
    print(
        f"| {report['cases']} | {report['failures']} | {report['worst_seconds']} s | "
        f"{report['peak_rss_growth_mb']} MB |"
    )
    sys.exit(1 if report["failures"] else 0)


if __name__ == "__main__":
    main()
