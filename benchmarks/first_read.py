"""What a developer pays to read one digit: install size, import + first read time, memory.

    python benchmarks/first_read.py [--repeats 5] [--out benchmarks/first-read-DATE.json]

Builds a virtual environment with the core install only (`pip install .`: numpy, Pillow, SciPy,
ONNX Runtime) in a temporary folder, then times, in fresh processes, `import mnist_cnn` plus the
first `mnist_cnn.read_digit(picture)` in that environment and in this one (the full `[dev]`
install), with each process's peak RSS. Prints JSON and a table.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import venv
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import json, resource, sys, time
started = time.perf_counter()
import mnist_cnn
answer = mnist_cnn.read_digit(sys.argv[1])
seconds = time.perf_counter() - started
heavy = [m for m in ("tensorflow", "keras") if m in sys.modules]
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(
    resource.RUSAGE_SELF).ru_maxrss / 1024, "digit": answer.digit, "heavy_imports": heavy}))
"""


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def measure(python: str, picture: Path, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        done = subprocess.run(
            [python, "-c", PROBE, str(picture)], capture_output=True, text=True, check=True
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        "seconds_median": round(float(np.median([r["seconds"] for r in runs])), 3),
        "peak_rss_mb_median": round(float(np.median([r["peak_rss_mb"] for r in runs])), 1),
        "digit": runs[0]["digit"],
        "heavy_imports": runs[0]["heavy_imports"],
        "runs": runs,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="benchmarks/results/first-read.json")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="mnist-cnn-core-") as tmp:
        picture = Path(tmp) / "seven.png"
        page = Image.new("L", (120, 160), 255)
        ImageDraw.Draw(page).line([(20, 30), (95, 30), (50, 140)], fill=0, width=12)
        page.save(picture)
        core = Path(tmp) / "venv"
        venv.create(core, with_pip=True)
        pip = [str(core / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, str(ROOT)], check=True)
        rows = {
            "core install (pip install .)": {
                "venv_mb": round(size_mb(core), 0),
                **measure(str(core / "bin" / "python"), picture, args.repeats),
            },
            "full install (.[dev], this environment)": {
                "venv_mb": round(size_mb(Path(sys.prefix)), 0),
                **measure(sys.executable, picture, args.repeats),
            },
        }
    report = {"date": date.today().isoformat(), "repeats": args.repeats, "installs": rows}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: {x: v[x] for x in v if x != "runs"} for k, v in rows.items()}))
    print("| install | size | import + first read (median) | peak RSS | TF/Keras imported |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(
            f"| {name} | {r['venv_mb']:.0f} MB | {r['seconds_median']:.2f} s | "
            f"{r['peak_rss_mb_median']:.0f} MB | {'yes' if r['heavy_imports'] else 'no'} |"
        )


if __name__ == "__main__":
    main()
