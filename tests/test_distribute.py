"""Data-parallel training: two CPU replicas on tf.distribute, and two JAX worker processes.

Each case runs in fresh processes: devices and clusters are fixed once a backend starts.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from mnist_cnn import cli, distribute, models

QUICK = ["--train-limit", "4096", "--test-limit", "500", "--val-size", "256", "--epochs", "2"]

MIRRORED = """
import sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from mnist_cnn import cli

for strategy in ("mirrored", "none"):  # one process: TensorFlow takes seconds to start
    assert cli.main([*sys.argv[1:], "--strategy", strategy, "--out", strategy]) == 0
"""


def run(args: list[str], env: dict | None = None, code: str | None = None, cwd=None):
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "mnist_cnn"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(
        command + args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
    )


def test_mirrored_over_two_cpu_devices_trains_like_one_device(mnist_dir, tmp_path):
    proc = run(["train", "--data-dir", str(mnist_dir), *QUICK], code=MIRRORED, cwd=tmp_path)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-3000:]
    runs = {
        s: json.loads((tmp_path / s / "metrics.json").read_text()) for s in ("mirrored", "none")
    }
    assert runs["mirrored"]["replicas"] == 2 and runs["none"]["replicas"] == 1
    assert runs["mirrored"]["test_accuracy"] > 0.85, runs["mirrored"]["test_accuracy"]
    # two replicas averaging half-batches follow the same path as one device on whole batches
    gap = abs(runs["mirrored"]["test_accuracy"] - runs["none"]["test_accuracy"])
    assert gap < 0.03, runs
    assert json.loads((tmp_path / "mirrored" / "config.json").read_text())["strategy"] == "mirrored"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_on_localhost_end_on_the_same_weights(mnist_dir, tmp_path):
    cluster = {
        "KERAS_BACKEND": "jax",
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{free_port()}",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
    }
    procs, outs = [], []
    for index in range(2):
        outs.append(tmp_path / f"worker{index}")
        args = ["train", "--strategy", "multiworker", "--data-dir", str(mnist_dir)]
        env = {**cluster, "KERAS_DISTRIBUTION_PROCESS_ID": str(index)}
        procs.append(run([*args, "--out", str(outs[-1]), *QUICK], env=env))
    logs = [p.communicate(timeout=600)[0] for p in procs]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    weights = [models.load(out).get_weights() for out in outs]
    for a, b in zip(*weights, strict=True):
        assert np.array_equal(a, b)  # the all-reduce kept the two workers in step
    metrics = [json.loads((out / "metrics.json").read_text()) for out in outs]
    assert [m["replicas"] for m in metrics] == [2, 2]
    assert [m["backend"] for m in metrics] == ["jax", "jax"]
    assert metrics[0]["test_accuracy"] == metrics[1]["test_accuracy"] > 0.85


def test_each_worker_reads_its_own_equal_shard(monkeypatch):

    x, y = np.arange(11)[:, None], np.arange(11)
    shards = []
    for index in range(2):
        monkeypatch.setattr(distribute, "processes", lambda i=index: (i, 2))
        shards.append(distribute.shard(x, y))
    assert [len(sy) for _, sy in shards] == [5, 5]  # equal: both run the same number of steps
    assert not set(shards[0][1]) & set(shards[1][1])  # and never the same images
    assert np.array_equal(shards[1][0][:, 0], shards[1][1])  # images stay with their labels


def test_strategy_errors_say_what_to_do(tmp_path, capsys, monkeypatch):

    with pytest.raises(distribute.MnistCnnError, match="unknown strategy"):
        distribute.strategy("ring")
    args = ["train", "--strategy", "multiworker", "--out", str(tmp_path / "x"), "--dry-run"]
    assert cli.main(args) == 2  # this process runs TensorFlow
    assert "KERAS_BACKEND=jax" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_one_device_is_one_replica_and_every_listed_strategy_is_known():
    from mnist_cnn import recipes

    assert distribute.strategy("none") is None and distribute.replicas(None) == 1
    for name in recipes.STRATEGIES:  # the names train --strategy takes
        if name != "multiworker":  # needs JAX and a cluster: its own test above
            distribute.strategy(name)
