"""Data-parallel training on tf.distribute: two CPU replicas in one process, and two workers.

Each case runs in fresh processes: TensorFlow's devices and cluster are fixed once it starts.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from mnist_cnn import cli, models

QUICK = ["--train-limit", "2048", "--test-limit", "500", "--val-size", "256", "--epochs", "1"]

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


def test_mirrored_over_two_cpu_devices_trains(mnist_dir, tmp_path):
    out = tmp_path / "mirrored"
    args = ["train", "--strategy", "mirrored", "--data-dir", str(mnist_dir), "--out", str(out)]
    proc = run([*args, *QUICK], code=MIRRORED)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["replicas"] == 2  # one model copy per logical CPU
    assert metrics["test_accuracy"] > 0.9, metrics["test_accuracy"]
    assert json.loads((out / "config.json").read_text())["strategy"] == "mirrored"


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_localhost_end_on_the_same_weights(mnist_dir, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    procs, outs = [], []
    for index in range(2):
        out = tmp_path / f"worker{index}"
        outs.append(out)
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        args = ["train", "--strategy", "multiworker", "--data-dir", str(mnist_dir)]
        procs.append(
            run([*args, "--out", str(out), *QUICK], env={"TF_CONFIG": json.dumps(tf_config)})
        )
    logs = [p.communicate(timeout=600)[0] for p in procs]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    weights = [models.load(out).get_weights() for out in outs]
    for a, b in zip(*weights, strict=True):
        assert np.array_equal(a, b)  # the all-reduce kept the replicas in step
    metrics = [json.loads((out / "metrics.json").read_text()) for out in outs]
    assert all(m["replicas"] == 2 for m in metrics)
    assert metrics[0]["test_accuracy"] == metrics[1]["test_accuracy"] > 0.9


def test_strategy_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    args = ["train", "--strategy", "multiworker", "--out", str(tmp_path / "x"), "--dry-run"]
    assert cli.main(args) == 2
    assert "TF_CONFIG" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["mirrored", "none"])
def test_strategy_names(name):
    from mnist_cnn import distribute

    assert (distribute.strategy(name) is None) == (name == "none")
