"""Data-parallel training on tf.distribute: two CPU replicas in one process.

It runs in a fresh process: TensorFlow's logical devices are fixed once it starts.
"""

import json
import os
import subprocess
import sys

import pytest

QUICK = ["--train-limit", "4096", "--test-limit", "500", "--val-size", "256", "--epochs", "2"]

MIRRORED = """
import sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from mnist_cnn import cli

sys.exit(cli.main(sys.argv[1:]))
"""


def run(args: list[str], env: dict | None = None, code: str | None = None):
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "mnist_cnn"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(
        command + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_mirrored_over_two_cpu_devices_trains_like_one_device(mnist_dir, tmp_path):
    runs = {}
    for strategy in ("mirrored", "none"):
        out = tmp_path / strategy
        args = ["train", "--strategy", strategy, "--data-dir", str(mnist_dir), "--out", str(out)]
        proc = run([*args, *QUICK], code=MIRRORED)
        log, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, log[-3000:]
        runs[strategy] = json.loads((out / "metrics.json").read_text())
    assert runs["mirrored"]["replicas"] == 2 and runs["none"]["replicas"] == 1
    assert runs["mirrored"]["test_accuracy"] > 0.85, runs["mirrored"]["test_accuracy"]
    # two replicas averaging half-batches follow the same path as one device on whole batches
    gap = abs(runs["mirrored"]["test_accuracy"] - runs["none"]["test_accuracy"])
    assert gap < 0.03, runs
    assert json.loads((tmp_path / "mirrored" / "config.json").read_text())["strategy"] == "mirrored"


def test_unknown_strategy_is_refused(tmp_path):
    from mnist_cnn import distribute

    with pytest.raises(distribute.MnistCnnError, match="unknown strategy"):
        distribute.strategy("multiworker")


@pytest.mark.parametrize("name", ["mirrored", "none"])
def test_strategy_names(name):
    from mnist_cnn import distribute

    assert (distribute.strategy(name) is None) == (name == "none")
