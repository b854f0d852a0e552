"""Atomic writes, and clear errors when the disk or the path refuses."""

import errno
import json

import pytest

from mnist_cnn import artifacts
from mnist_cnn.errors import MnistCnnError


def test_write_json_is_atomic_and_readable(tmp_path):
    path = artifacts.write_json(tmp_path / "m.json", {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_full_disk_gives_one_clear_error_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    artifacts.write_json(target, {"old": True})

    def full(tmp):
        tmp.write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(MnistCnnError, match="disk is full"):
        artifacts.write_with(target, full)
    assert json.loads(target.read_text()) == {"old": True}  # nothing lost
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


def test_unwritable_out_is_caught_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(MnistCnnError, match=r"cannot write .*a-file/run"):
        artifacts.prepare_dir(blocker / "run")


def test_read_json_missing_and_corrupt(tmp_path):
    with pytest.raises(MnistCnnError, match="does not exist"):
        artifacts.read_json(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(MnistCnnError, match="cannot read"):
        artifacts.read_json(tmp_path / "bad.json")
