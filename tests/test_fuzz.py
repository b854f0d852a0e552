"""A short, fixed-seed run of the image fuzzer (benchmarks/fuzz.py runs the long one)."""

import sys
from pathlib import Path

from fastapi.testclient import TestClient

from mnist_cnn import engines, serve

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import fuzz


def test_mutated_images_never_crash_predict_or_the_server():
    classify = engines.classifier(engine="onnx-int8")
    app = serve.create_app(engine="onnx-int8")
    with TestClient(app, raise_server_exceptions=False) as client:
        report = fuzz.fuzz(150, seed=1, classify=classify, client=client)
    assert report["crashes"] == 0, report["crash_examples"]
    assert report["peak_rss_growth_mb"] < 500
