"""Run-directory files: atomic writes, JSON in and out, the writable-directory check."""
import json
import os

import pytest

from gcalib.training.run_files import atomic_write, check_out_dir, read_json, write_json


def test_write_json_round_trips_and_writes_what_json_cannot_hold_as_str(tmp_path):
    path = write_json({"loss": 0.5, "where": tmp_path, "values": [1, 2]}, tmp_path / "metrics.json")
    assert path == tmp_path / "metrics.json"
    assert read_json(path) == {"loss": 0.5, "where": str(tmp_path), "values": [1, 2]}
    assert path.read_text().endswith("\n") and json.loads(path.read_text())["values"] == [1, 2]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = write_json({"version": 1}, tmp_path / "state.json")

    def failing(handle):
        handle.write(b"{partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, failing)
    assert read_json(path) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary left


def test_check_out_dir_creates_the_directory_and_rejects_unwritable_ones(tmp_path):
    assert check_out_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="out_dir '.*file/sub' is not a writable directory"):
        check_out_dir(tmp_path / "file" / "sub")
    assert os.listdir(tmp_path / "a" / "b") == []  # the probe file is removed
