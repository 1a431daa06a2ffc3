import os
import random

import numpy as np
import pytest
import torch

from gcalib.training import checkpoint as ckpt


def make_state(epoch, value=0.0):
    return {"epoch": epoch, "step": 10 * epoch, "model": {"w": torch.full((3,), float(value))},
            "optimizer": {}, "scheduler": {}, "scaler": {}, "rng": ckpt.rng_state(),
            "config": {"lr": 0.1}, "history": [{"epoch": e + 1} for e in range(epoch)]}


def test_save_keeps_last_two_and_loads_newest(tmp_path):
    for epoch in range(1, 5):
        ckpt.save_checkpoint(make_state(epoch, epoch), tmp_path)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint-00003.pt", "checkpoint-00004.pt"]
    state, path = ckpt.load_latest(tmp_path)
    assert path.name == "checkpoint-00004.pt"
    assert state["epoch"] == 4 and torch.equal(state["model"]["w"], torch.full((3,), 4.0))
    assert len(state["history"]) == 4
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_step_checkpoints_are_named_by_global_step_and_ordered_after_their_epoch(tmp_path):
    # 4 steps per epoch: step 3 of epoch 1, the end of epoch 1 (step 4), step 2 of epoch 2 (global step 6).
    for epoch, step, step_in_epoch in [(0, 3, 3), (1, 4, 0), (1, 6, 2)]:
        ckpt.save_checkpoint({**make_state(epoch), "step": step, "step_in_epoch": step_in_epoch}, tmp_path, keep=3)
    names = ["checkpoint-00000-step0000003.pt", "checkpoint-00001.pt", "checkpoint-00001-step0000006.pt"]
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == names
    assert ckpt.checkpoint_path(tmp_path, 1, 6).name == names[2]
    state, path = ckpt.load_latest(tmp_path)
    assert path.name == names[2] and (state["step"], state["step_in_epoch"]) == (6, 2)
    ckpt.save_checkpoint({**make_state(2), "step": 8, "step_in_epoch": 0}, tmp_path)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == [names[2], "checkpoint-00002.pt"]


def test_corrupt_latest_falls_back_to_previous_with_warning(tmp_path):
    ckpt.save_checkpoint(make_state(1, 1), tmp_path)
    latest = ckpt.save_checkpoint(make_state(2, 2), tmp_path)
    latest.write_bytes(latest.read_bytes()[:100])  # truncated, as after a crash of a non-atomic writer
    with pytest.warns(RuntimeWarning, match="checkpoint-00002.pt is corrupt"):
        state, path = ckpt.load_latest(tmp_path)
    assert path.name == "checkpoint-00001.pt" and state["epoch"] == 1


def test_incomplete_checkpoint_is_skipped(tmp_path):
    ckpt.save_checkpoint(make_state(1), tmp_path)
    torch.save({"epoch": 2}, ckpt.checkpoint_path(tmp_path, 2))
    with pytest.warns(RuntimeWarning, match="missing keys"):
        assert ckpt.load_latest(tmp_path)[1].name == "checkpoint-00001.pt"


def test_all_corrupt_raises_and_empty_returns_none(tmp_path):
    assert ckpt.load_latest(tmp_path) is None
    assert ckpt.load_latest(tmp_path / "missing") is None
    ckpt.checkpoint_path(tmp_path, 1).write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="none of the checkpoints"):
        ckpt.load_latest(tmp_path)


def test_atomic_save_leaves_old_file_intact_when_writing_fails(tmp_path, monkeypatch):
    path = ckpt.save_checkpoint(make_state(3, 3), tmp_path)
    original = path.read_bytes()

    def failing_save(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.atomic_save(make_state(3, 9), path)
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-00003.pt"]


def test_atomic_save_uses_rename_in_same_directory(tmp_path, monkeypatch):
    calls = []
    real_replace = os.replace

    def spy(src, dst):
        calls.append((os.path.dirname(src), os.path.dirname(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    ckpt.atomic_save({"x": 1}, tmp_path / "a.pt")
    assert calls == [(str(tmp_path), str(tmp_path))]


def test_rng_state_round_trip_through_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    ckpt.atomic_save(ckpt.rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    ckpt.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_save_validates_state_and_keep(tmp_path):
    with pytest.raises(ValueError, match="missing checkpoint keys"):
        ckpt.save_checkpoint({"epoch": 1}, tmp_path)
    with pytest.raises(ValueError, match="keep"):
        ckpt.save_checkpoint(make_state(1), tmp_path, keep=0)


def test_config_differences_names_fields():
    diff = ckpt.config_differences({"lr": 0.1, "epochs": 5, "resume": False}, {"lr": 0.2, "epochs": 5, "resume": True},
                                   ignore=("resume",))
    assert diff == ["lr: 0.1 -> 0.2"]
