"""The trainer and CLI under ``torchrun`` (2 gloo processes on CPU): one set of outputs, the lr
scaling rule, per-rank RNG streams in the checkpoint, and an exact resume.

Each launch starts two Python processes (~10 s on 2 cores), hence ``slow``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gcalib import checkpoint as ckpt
from gcalib import cli

NPROC = 2
LR = 1e-3
ARGS = ["--dataset", "digits", "--max-train-samples", "256", "--batch-size", "32", "--epochs", "2",
        "--loss", "gca_ince", "--target", "labels", "--lr", str(LR), "--lr-scaling", "linear", "--device", "cpu",
        "--workers", "0", "--deterministic", "--no-progress"]


def _torchrun(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={NPROC}",
               "-m", "gcalib", "pretrain", *ARGS, "--out", str(out), *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("torchrun") / "run"
    done = _torchrun(out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote ") == 1, done.stdout  # rank 0 alone reports
    return out


@pytest.mark.slow
def test_torchrun_writes_one_set_of_outputs(first_run):
    names = sorted(p.name for p in first_run.iterdir())
    assert names == ["checkpoint-00001.pt", "checkpoint-00002.pt", "curves.png", "encoder.pt", "history.json",
                     "metrics.json"]
    metrics = json.loads((first_run / "metrics.json").read_text())
    assert metrics["world_size"] == NPROC
    assert 0.0 <= metrics["linear_acc"] <= 1.0
    history = json.loads((first_run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    # One warm-up epoch: the lr at its end is the peak, LR x 2 processes under the linear rule.
    assert history[0]["lr"] == pytest.approx(LR * NPROC)


@pytest.mark.slow
def test_checkpoint_holds_every_ranks_rng_streams(first_run):
    state, _ = ckpt.load_latest(first_run)
    assert len(state["rng"]) == NPROC
    assert not torch.equal(state["rng"][0]["augment"], state["rng"][1]["augment"])  # per-rank views


@pytest.mark.slow
def test_torchrun_resume_is_exact(first_run, tmp_path):
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "checkpoint-00001.pt").write_bytes((first_run / "checkpoint-00001.pt").read_bytes())
    done = _torchrun(resumed, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    expected = torch.load(first_run / "encoder.pt", weights_only=True)
    got = torch.load(resumed / "encoder.pt", weights_only=True)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert json.loads((resumed / "history.json").read_text())[1]["loss"] == \
        json.loads((first_run / "history.json").read_text())[1]["loss"]


@pytest.mark.slow
def test_resume_with_another_process_count_is_a_usage_error(first_run, tmp_path, capsys):
    run = tmp_path / "one-process"
    run.mkdir()
    (run / "checkpoint-00001.pt").write_bytes((first_run / "checkpoint-00001.pt").read_bytes())
    with pytest.raises(SystemExit) as stop:
        cli.main(["pretrain", *ARGS, "--out", str(run), "--resume"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "written by 2 process(es), this run has 1" in err and "--nproc_per_node" in err


def test_compare_refuses_torchrun(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit) as stop:
        cli.main(["compare", "--losses", "infonce", "--out", "unused"])
    assert stop.value.code == 2
    assert "compare runs in one process" in capsys.readouterr().err
