"""The trainer and CLI under ``torchrun`` (2 gloo processes on CPU): one set of outputs, the lr
scaling rule, per-rank RNG streams in the checkpoint, an exact resume, ``--shard-plan`` against the
replicated plan, and a group that ``--max-restarts`` restarts after a worker is killed mid-epoch.

Each launch starts two Python processes (~10 s on 2 cores), hence ``slow``.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest
import torch

from gcalib.training import checkpoint as ckpt
from gcalib import cli

NPROC = 2
LR = 1e-3
ARGS = ["--dataset", "digits", "--max-train-samples", "256", "--batch-size", "32", "--epochs", "2",
        "--loss", "gca_ince", "--target", "labels", "--lr", str(LR), "--lr-scaling", "linear", "--device", "cpu",
        "--workers", "0", "--deterministic", "--no-progress"]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _command(out: Path, args: list[str], *launcher: str) -> list[str]:
    """``torchrun [launcher options] -m gcalib pretrain ARGS --out OUT`` with NPROC processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={NPROC}", *launcher,
            "-m", "gcalib", "pretrain", *args, "--out", str(out)]


def _torchrun(out: Path, *extra: str, args: list[str] = ARGS) -> subprocess.CompletedProcess:
    return subprocess.run(_command(out, [*args, *extra]), env=ENV, capture_output=True, text=True, timeout=300)


def _max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


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


# Two SGD steps per process: per step the sharded and the replicated gradients agree to rounding (~1e-6
# relative), but over many steps such differences grow (ReLU kinks), so the runs are short.
SHARD_ARGS = ["--max-train-samples", "128", "--batch-size", "32", "--epochs", "1", "--loss", "gca_ince",
              "--optimizer", "sgd", "--lr", "0.05", "--warmup-epochs", "0", "--device", "cpu", "--workers", "0",
              "--deterministic", "--no-progress", "--no-evaluate"]


@pytest.mark.slow
@pytest.mark.parametrize("data", [["--dataset", "digits"],
                                  ["--dataset", "digits_domains", "--target", "domain", "--alpha", "0.2",
                                   "--beta", "0.05"]], ids=["positive-pairs", "domain"])
def test_shard_plan_trains_as_the_replicated_plan(data, tmp_path):
    encoders = {}
    for name, extra in (("replicated", []), ("sharded", ["--shard-plan"])):
        done = _torchrun(tmp_path / name, *data, *extra, args=SHARD_ARGS)
        assert done.returncode == 0, done.stderr[-3000:]
        config = json.loads((tmp_path / name / "metrics.json").read_text())["config"]
        assert config["shard_plan"] == (name == "sharded")
        encoders[name] = torch.load(tmp_path / name / "encoder.pt", weights_only=True)
    assert _max_difference(encoders["replicated"], encoders["sharded"]) <= 1e-5


def _worker_pid(agent: int, rank: int) -> Optional[int]:
    """The pid of the torchrun worker of ``rank`` among the children of the agent process ``agent``."""
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != agent:
                continue
            if f"RANK={rank}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except (OSError, ValueError, IndexError):  # the process ended while being read
            continue
    return None


@pytest.mark.slow
def test_a_worker_killed_mid_epoch_is_restarted_and_the_run_ends_as_uninterrupted(first_run, tmp_path):
    """``--resume`` on an empty directory starts afresh; SIGKILL of rank 1 after the first step checkpoint
    makes torchrun restart the group, which resumes from the newest (mid-epoch) checkpoint."""
    out = tmp_path / "restarted"
    args = [*ARGS, "--resume", "--checkpoint-every-steps", "1", "--no-evaluate"]
    with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
        agent = subprocess.Popen(_command(out, args, "--max-restarts=1"), env=ENV, stdout=stdout, stderr=stderr)
        try:
            victim, deadline = None, time.monotonic() + 120
            while not any("-step" in p.name for p in ckpt.list_checkpoints(out)):
                assert agent.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr").read_text()[-3000:]
                victim = victim or _worker_pid(agent.pid, rank=1)
                time.sleep(0.01)
            os.kill(victim or _worker_pid(agent.pid, rank=1), signal.SIGKILL)
            agent.wait(timeout=240)
        finally:
            if agent.poll() is None:
                agent.kill()
    assert agent.returncode == 0, (tmp_path / "stderr").read_text()[-3000:]
    resumed = [line for line in (tmp_path / "stdout").read_text().splitlines() if line.startswith("resuming from")]
    assert len(resumed) == 1 and re.search(r"checkpoint-\d{5}-step\d{7}\.pt$", resumed[0]), resumed
    expected = torch.load(first_run / "encoder.pt", weights_only=True)
    got = torch.load(out / "encoder.pt", weights_only=True)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    history = json.loads((out / "history.json").read_text())
    assert [h["loss"] for h in history] == [h["loss"] for h in json.loads((first_run / "history.json").read_text())]
