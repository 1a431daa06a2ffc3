import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional

import pytest
import torch

from gcalib.training import checkpoint as ckpt
from gcalib.training.byol import BYOL, byol_loss, target_momentum
from gcalib.training.models import Projector, make_encoder
from gcalib.losses.gca import make_loss
from gcalib.training.contrastive import ContrastiveModel
from gcalib.training.trainable import TrainableModel
from gcalib.training.trainer import (NonFiniteLossError, PretrainConfig, WarmupCosine, _Trainer, prepare, pretrain,
                                     resolve_precision)

TINY = dict(max_train_samples=96, batch_size=32, workers=0, evaluate=False, progress=False, projector_hidden_dim=64)


def tiny(**overrides):
    return PretrainConfig(**{**TINY, **overrides})


def weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ---- config validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("dataset", "mnist", "unknown dataset 'mnist'; valid: digits"),
    ("arch", "vgg", "unknown arch 'vgg'; valid: resnet18, resnet50, small_cnn"),
    ("augmentation", "mixup", "unknown augmentation 'mixup'; valid: simclr"),
    ("loss", "ntxent", "unknown loss 'ntxent'; valid: infonce, hs_ince, gca_ince"),
    ("target", "classes", "unknown target 'classes'; valid: positive, labels, domain"),
    ("optimizer", "lars", "unknown optimizer 'lars'; valid: sgd, adam"),
    ("precision", "fp8", "unknown precision 'fp8'"),
    ("lr", -0.1, "lr must be a finite number > 0, got -0.1"),
    ("lr", float("nan"), "lr must be a finite number > 0"),
    ("batch_size", 1, "batch_size must be an int >= 2, got 1"),
    ("epochs", 0, "epochs must be an int >= 1, got 0"),
    ("n_views", 1, "n_views must be an int >= 2"),
    ("momentum", 1.0, "momentum must be a number in [0, 1)"),
    ("warmup_epochs", 50, "warmup_epochs must be at most epochs=20"),
    ("device", "gpu:x", "device must be 'auto' or a torch device string"),
    ("strength", 9.0, "strength must be a number in"),
    ("alpha", 0.5, "only apply to target='domain'"),
])
def test_config_rejects_bad_values_with_clear_messages(field, value, message):
    with pytest.raises(ValueError) as err:
        PretrainConfig(**{field: value})
    assert message in str(err.value)


def test_config_type_errors_and_cross_field_rules():
    with pytest.raises(TypeError, match="batch_size must be an int"):
        PretrainConfig(batch_size=32.0)
    with pytest.raises(TypeError, match="unknown hyper-parameter"):
        PretrainConfig(loss_params={"temperature": 0.1})
    with pytest.raises(ValueError, match="eps must be"):
        PretrainConfig(loss_params={"eps": 0.0})
    with pytest.raises(ValueError, match="loss_params must be empty for loss='byol'"):
        PretrainConfig(loss="byol", loss_params={"eps": 0.1})
    with pytest.raises(ValueError, match="loss='byol' has no target plan"):
        PretrainConfig(loss="byol", target="labels")
    assert PretrainConfig(loss="byol").method == "byol" and PretrainConfig().method == "gca"
    with pytest.raises(ValueError, match="resume=True needs out_dir"):
        PretrainConfig(resume=True)
    with pytest.raises(TypeError, match="compile must be a bool"):
        PretrainConfig(compile="yes")


def test_prepare_checks_data_size_output_dir_and_device(tmp_path):
    with pytest.raises(ValueError, match="batch_size=2000 is larger than the 1346 samples"):
        prepare(PretrainConfig(batch_size=2000))
    with pytest.raises(ValueError, match="batch_size=64 is larger than the 50 samples"):
        prepare(PretrainConfig(batch_size=64, max_train_samples=50))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="is not a writable directory"):
        prepare(tiny(out_dir=str(blocker / "sub")))
    with pytest.raises(ValueError, match="target='domain' needs a dataset with domain labels"):
        prepare(tiny(target="domain", alpha=0.1))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            prepare(tiny(device="cuda"))
        with pytest.raises(ValueError, match="fp16"):
            resolve_precision("fp16", torch.device("cpu"))
    assert resolve_precision("auto", torch.device("cpu")) is None
    assert resolve_precision("auto", torch.device("cuda")) == torch.bfloat16


def test_warmup_cosine_schedule():
    s = WarmupCosine(warmup_steps=4, total_steps=12)
    assert [s(k) for k in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert s(4) == 1.0 and s(8) == pytest.approx(0.5) and s(12) == pytest.approx(0.0)
    assert WarmupCosine(0, 10)(0) == 1.0


# ---- BYOL -----------------------------------------------------------------------------------------

def test_byol_loss_and_momentum_closed_forms():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert byol_loss([a, a], [a, 3 * a]).item() == pytest.approx(0.0, abs=1e-7)
    b = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert byol_loss([a, b], [a, b]).item() == pytest.approx(2.0)  # cross pairs (a, b) and (b, a) are orthogonal
    assert byol_loss([a, b], [b, a]).item() == pytest.approx(0.0, abs=1e-7)
    assert target_momentum(0.99, 0, 100) == pytest.approx(0.99)
    assert target_momentum(0.99, 50, 100) == pytest.approx(0.995)
    assert target_momentum(0.99, 100, 100) == pytest.approx(1.0)


def test_byol_target_is_an_ema_of_the_online_network():
    torch.manual_seed(0)
    model = BYOL(make_encoder("small_cnn"), Projector(128, 32, 16), predictor_hidden_dim=8, base_momentum=0.9)
    assert all(not p.requires_grad for p in model.target_parameters())
    online_before = [p.detach().clone() for p in model.encoder.parameters()]
    for p in model.encoder.parameters():
        p.data.add_(1.0)
    tau = model.update_target(0, 10)
    assert tau == pytest.approx(0.9)
    for t, o in zip(model.target_encoder.parameters(), online_before):
        torch.testing.assert_close(t, 0.9 * o + 0.1 * (o + 1.0))
    out = model(torch.randn(6, 3, 16, 16))
    assert out[0].shape == out[1].shape == (6, 16) and not out[1].requires_grad


# ---- the model protocol ---------------------------------------------------------------------------

def _models():
    torch.manual_seed(0)
    loss_fn = make_loss("gca_rince", eps=0.5, r1=0.5, r2=1.0)  # both terms, so loss_terms splits them
    contrastive = ContrastiveModel(make_encoder("small_cnn"), Projector(128, 32, 16), loss_fn)
    byol = BYOL(make_encoder("small_cnn"), Projector(128, 32, 16), predictor_hidden_dim=8)
    return contrastive, byol


def test_both_models_implement_the_trainer_protocol():
    members = [name for name in vars(TrainableModel) if not name.startswith("_")] + ["uses_target_plan"]
    x = torch.randn(8, 3, 16, 16)  # 2 views of 4 samples
    for model in _models():
        for name in set(members) | set(TrainableModel.__annotations__):
            assert hasattr(model, name), (type(model).__name__, name)
        out = model(x)
        loss = model.loss(out, 2, None)
        assert loss.ndim == 0 and math.isfinite(loss.item())
        terms = model.loss_terms(out, 2, None)
        assert terms and all(isinstance(v, float) for v in terms.values())
        assert {id(p) for p in model.online_parameters()} <= {id(p) for p in model.parameters()}
    contrastive, byol = _models()
    assert contrastive.uses_target_plan and not byol.uses_target_plan
    assert set(contrastive.loss_terms(contrastive(x), 2, None)) == {"r1*kl", "r2*robust"}
    assert contrastive.nonfinite_advice() == ["raise eps (eps=0.5)"] and byol.nonfinite_advice() == []


def test_after_optimizer_step_moves_only_the_byol_target():
    contrastive, byol = _models()
    before = weights(contrastive)
    contrastive.after_optimizer_step(1, 10)
    assert_same_weights(weights(contrastive), before)
    for p in byol.encoder.parameters():
        p.data.add_(1.0)
    expected = [0.99 * t + 0.01 * o for t, o in zip(byol.target_encoder.parameters(), byol.encoder.parameters())]
    byol.after_optimizer_step(0, 10)
    for t, e in zip(byol.target_encoder.parameters(), expected):
        torch.testing.assert_close(t, e)


def test_byol_refuses_a_target_plan():
    _, byol = _models()
    out = byol(torch.randn(8, 3, 16, 16))
    with pytest.raises(ValueError, match="BYOL has no target plan"):
        byol.loss(out, 2, torch.eye(8))


# ---- training ---------------------------------------------------------------------------------------

def test_pretrain_writes_history_and_checkpoints(tmp_path):
    result = pretrain(tiny(epochs=3, out_dir=str(tmp_path), checkpoint_every=1))
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    for h in result.history:
        assert {"loss", "lr", "time_s", "images_per_s", "grad_norm", "skipped_steps"} <= set(h)
        assert h["images_per_s"] > 0 and math.isfinite(h["loss"])
    assert json.loads((tmp_path / "history.json").read_text()) == result.history
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint-00002.pt", "checkpoint-00003.pt"]
    state, _ = ckpt.load_latest(tmp_path)
    assert state["epoch"] == 3 and state["step"] == 9 and state["config"]["epochs"] == 3
    assert set(ckpt.CHECKPOINT_KEYS) <= set(state)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"] == result.config.to_dict() and metrics["epoch_time_s"] > 0
    encoder = make_encoder("small_cnn")
    encoder.load_state_dict(torch.load(tmp_path / "encoder.pt", weights_only=True))
    assert_same_weights(weights(encoder), weights(result.encoder))
    assert result.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine ends at zero


def test_pretrain_is_reproducible_under_a_seed():
    a = pretrain(tiny(epochs=1, seed=3))
    b = pretrain(tiny(epochs=1, seed=3))
    c = pretrain(tiny(epochs=1, seed=4))
    assert_same_weights(weights(a.encoder), weights(b.encoder))
    assert a.history[0]["loss"] == b.history[0]["loss"] != c.history[0]["loss"]


class StopAfterFirstCheckpoint(Exception):
    pass


def crash_after_first_checkpoint(monkeypatch, config: PretrainConfig, at_step: Optional[int] = None) -> None:
    """Pretrain ``config`` until its epoch-1 checkpoint (or the checkpoint of global step ``at_step``) is
    written, then stop as a crash would."""
    real_save = ckpt.save_checkpoint

    def save_then_crash(state, directory, keep=2):
        path = real_save(state, directory, keep)
        if (state["epoch"] == 1) if at_step is None else (state["step"] == at_step):
            raise StopAfterFirstCheckpoint
        return path

    monkeypatch.setattr(ckpt, "save_checkpoint", save_then_crash)
    with pytest.raises(StopAfterFirstCheckpoint):
        pretrain(config)
    monkeypatch.setattr(ckpt, "save_checkpoint", real_save)


@pytest.mark.parametrize("batch_augment", [True, False])
def test_resume_continues_history_and_matches_uninterrupted_run(tmp_path, monkeypatch, batch_augment):
    config = dict(epochs=3, deterministic=True, checkpoint_every=1, batch_augment=batch_augment)
    reference = pretrain(tiny(**config, out_dir=str(tmp_path / "reference")))

    crash_after_first_checkpoint(monkeypatch, tiny(**config, out_dir=str(tmp_path / "run")))

    state, _ = ckpt.load_latest(tmp_path / "run")
    assert len(state["rng"]) == 1 and ("augment" in state["rng"][0]) == batch_augment  # one rank
    resumed = pretrain(tiny(**config, out_dir=str(tmp_path / "run"), resume=True))
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in reference.history]
    assert_same_weights(weights(resumed.model), weights(reference.model))
    assert json.loads((tmp_path / "run" / "history.json").read_text()) == resumed.history


@pytest.mark.parametrize("batch_augment, workers", [(True, 0), (False, 0),
                                                    pytest.param(False, 1, marks=pytest.mark.slow)])
def test_resume_in_the_middle_of_an_epoch_matches_uninterrupted_run(tmp_path, monkeypatch, batch_augment, workers):
    # 3 steps per epoch; checkpoints after steps 2 (epoch 1), 3 (its end), 4 (step 1 of epoch 2) and 6 (the end).
    config = dict(epochs=2, deterministic=True, checkpoint_every=1, checkpoint_every_steps=2,
                  batch_augment=batch_augment, workers=workers)
    reference = pretrain(tiny(**config, out_dir=str(tmp_path / "reference")))
    crash_after_first_checkpoint(monkeypatch, tiny(**config, out_dir=str(tmp_path / "run")), at_step=4)

    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "run")] == ["checkpoint-00001.pt",
                                                                         "checkpoint-00001-step0000004.pt"]
    state, _ = ckpt.load_latest(tmp_path / "run")
    assert (state["epoch"], state["step"], state["step_in_epoch"]) == (1, 4, 1)
    assert len(state["epoch_progress"][0]["losses"]) == 1
    resumed = pretrain(tiny(**config, out_dir=str(tmp_path / "run"), resume=True))
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in reference.history]
    assert [h["grad_norm"] for h in resumed.history] == [h["grad_norm"] for h in reference.history]
    assert_same_weights(weights(resumed.model), weights(reference.model))
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "run")] == ["checkpoint-00001-step0000004.pt",
                                                                         "checkpoint-00002.pt"]


def test_resume_with_a_different_config_names_the_fields(tmp_path):
    pretrain(tiny(epochs=1, out_dir=str(tmp_path)))
    with pytest.raises(ValueError) as err:
        prepare(tiny(epochs=1, out_dir=str(tmp_path), resume=True, lr=0.1, batch_size=16))
    message = str(err.value)
    assert "cannot resume" in message and "lr: 0.002 -> 0.1" in message and "batch_size: 32 -> 16" in message
    # Fields that do not change the numbers may differ.
    prepare(tiny(epochs=1, out_dir=str(tmp_path), resume=True, progress=True, checkpoint_every=5))


def test_resume_without_checkpoint_starts_afresh(tmp_path):
    result = pretrain(tiny(epochs=1, out_dir=str(tmp_path), resume=True))
    assert len(result.history) == 1


def test_resume_skips_corrupt_latest_checkpoint(tmp_path):
    pretrain(tiny(epochs=2, out_dir=str(tmp_path)))
    latest = ckpt.list_checkpoints(tmp_path)[-1]
    latest.write_bytes(b"not a checkpoint")
    with pytest.warns(RuntimeWarning, match="corrupt"):
        result = pretrain(tiny(epochs=2, out_dir=str(tmp_path), resume=True))
    assert [h["epoch"] for h in result.history] == [1, 2]


def poison_loss(monkeypatch, at_call):
    """Make the loss NaN on the ``at_call``-th call (1-based)."""
    real = ContrastiveModel.loss
    calls = {"n": 0}

    def loss(self, h, n_views, target):
        calls["n"] += 1
        value = real(self, h, n_views, target)
        return value * float("nan") if calls["n"] == at_call else value

    monkeypatch.setattr(ContrastiveModel, "loss", loss)


def test_nonfinite_loss_stops_with_diagnostics_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    poison_loss(monkeypatch, at_call=5)  # 3 steps per epoch: step 2 of epoch 2
    with pytest.raises(NonFiniteLossError) as err:
        pretrain(tiny(epochs=3, out_dir=str(tmp_path)))
    message = str(err.value)
    for part in ("non-finite loss", "epoch 2, step 2 of the epoch (global step 5)", "loss terms: infonce=",
                 "lower the learning rate (lr=0.002)", "raise eps (eps=0.5)", "check the inputs",
                 "skip_nonfinite=True", "checkpoint-00001.pt was left untouched"):
        assert part in message, part
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint-00001.pt"]
    state, _ = ckpt.load_latest(tmp_path)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_nonfinite_projections_are_reported(monkeypatch):
    real = ContrastiveModel.forward
    monkeypatch.setattr(ContrastiveModel, "forward", lambda self, x: real(self, x) / 0.0 * 0.0)
    with pytest.raises(NonFiniteLossError, match="64 of 64 projector outputs contain NaN/inf"):
        pretrain(tiny(epochs=1))


def test_skip_nonfinite_skips_the_step(monkeypatch):
    poison_loss(monkeypatch, at_call=2)
    with pytest.warns(RuntimeWarning, match="skipped 1 step"):
        result = pretrain(tiny(epochs=1, skip_nonfinite=True))
    assert result.history[0]["skipped_steps"] == 1 and math.isfinite(result.history[0]["loss"])
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


@pytest.mark.parametrize("target, extra", [("labels", {}), ("domain", {"alpha": 0.3, "beta": 0.1})])
def test_target_plans_in_training(target, extra, monkeypatch):
    seen = []
    real = ContrastiveModel.loss

    def loss(self, h, n_views, plan):
        seen.append(plan)
        return real(self, h, n_views, plan)

    monkeypatch.setattr(ContrastiveModel, "loss", loss)
    result = pretrain(tiny(dataset="digits_domains", epochs=1, target=target, loss="gca_uot", **extra))
    assert math.isfinite(result.history[0]["loss"]) and len(seen) == 3
    plan = seen[0]
    assert plan.shape == (64, 64) and torch.all(plan.diagonal() == 0)
    values = {round(v, 4) for v in plan.unique().tolist()}
    assert values <= ({0.0, 1.0} if target == "labels" else {0.0, 0.1, 0.3, 1.0})
    assert len(values) >= 2 + (target == "domain")


def test_byol_method_trains():
    result = pretrain(tiny(loss="byol", epochs=1))
    assert math.isfinite(result.history[0]["loss"]) and 0 <= result.history[0]["loss"] <= 4


def test_pretraining_lowers_loss_and_beats_random_init_in_knn():
    config = PretrainConfig(epochs=5, workers=0, progress=False, evaluate=True)
    result = pretrain(config)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]
    from gcalib.training.data import load_dataset
    from gcalib.training.evaluate import extract_features, knn_accuracy

    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    torch.manual_seed(config.seed)
    random_encoder = make_encoder(config.arch)
    (xtr, ytr, _), (xte, yte, _) = extract_features(random_encoder, train), extract_features(random_encoder, test)
    assert result.metrics["knn_acc"] > knn_accuracy(xtr, ytr, xte, yte, k=20)


# ---- crash and resume in a separate process ------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys
    from gcalib.training import trainer as train
    from gcalib.training.trainer import PretrainConfig, pretrain

    real_step = train._Trainer.train_step

    def step(self, *args):
        out = real_step(self, *args)
        print("step", self.step, flush=True)
        return out

    train._Trainer.train_step = step
    pretrain(PretrainConfig(max_train_samples=192, batch_size=32, epochs=3, workers=0, evaluate=False,
                            progress=False, projector_hidden_dim=64, deterministic=True, checkpoint_every=1,
                            out_dir=sys.argv[1], resume=sys.argv[2] == "resume"))
""")


def test_sigkill_mid_epoch_then_resume_is_bit_exact(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def run(out, mode):
        return subprocess.run([sys.executable, str(script), str(out), mode], env=env, capture_output=True,
                              text=True, timeout=120)

    reference = run(tmp_path / "reference", "fresh")
    assert reference.returncode == 0, reference.stderr

    victim = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run"), "fresh"], env=env,
                              stdout=subprocess.PIPE, text=True)
    killed_at = None
    for line in victim.stdout:
        step = int(line.split()[1])
        if step == 9:  # 6 steps per epoch: epoch 2 is half done, its checkpoint not yet written
            victim.send_signal(signal.SIGKILL)
            killed_at = step
            break
    victim.stdout.close()
    victim.wait(timeout=60)
    assert killed_at == 9 and victim.returncode == -signal.SIGKILL
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "run")] == ["checkpoint-00001.pt"]

    resumed = run(tmp_path / "run", "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.split("\n")[0] == "step 7"  # continued after the epoch-1 checkpoint
    final_ref, _ = ckpt.load_latest(tmp_path / "reference")
    final_run, _ = ckpt.load_latest(tmp_path / "run")
    assert final_run["epoch"] == final_ref["epoch"] == 3
    assert_same_weights(final_run["model"], final_ref["model"])
    assert final_run["optimizer"]["state"].keys() == final_ref["optimizer"]["state"].keys()
    for k, ref_state in final_ref["optimizer"]["state"].items():
        assert_same_weights(final_run["optimizer"]["state"][k], ref_state)  # AdamW moments and step
    assert [h["loss"] for h in final_run["history"]] == [h["loss"] for h in final_ref["history"]]


@pytest.mark.parametrize("rule, world, factor", [("linear", 4, 4.0), ("sqrt", 4, 2.0), ("none", 4, 1.0),
                                                 ("linear", 1, 1.0), ("sqrt", 1, 1.0)])
def test_lr_scaling_rules(rule, world, factor):
    assert PretrainConfig(lr=0.5, lr_scaling=rule).peak_lr(world) == 0.5 * factor


def test_unknown_lr_scaling_lists_the_rules():
    with pytest.raises(ValueError, match="unknown lr_scaling 'cubic'; valid: linear, sqrt, none"):
        PretrainConfig(lr_scaling="cubic")


def test_sync_bn_with_several_cpu_processes_is_rejected(monkeypatch):
    from gcalib.losses import distributed

    monkeypatch.setattr(distributed, "init_from_env", lambda device_type: False)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(ValueError, match="sync_bn=True needs CUDA devices .* got device 'cpu'"):
        prepare(PretrainConfig(device="cpu", sync_bn=True))


def test_global_batch_larger_than_the_data_names_the_process_count(monkeypatch):
    from gcalib.losses import distributed

    monkeypatch.setattr(distributed, "init_from_env", lambda device_type: False)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(ValueError, match=r"batch_size=64 per process x 2 processes is larger than the 100 samples"
                                         r".*use batch_size <= 50"):
        prepare(PretrainConfig(device="cpu", max_train_samples=100, batch_size=64))


def test_resume_from_a_checkpoint_of_an_earlier_version(tmp_path):
    """Earlier checkpoints hold one RNG dict (not a list per rank) and no lr_scaling/sync_bn fields."""
    reference = pretrain(tiny(epochs=2, out_dir=str(tmp_path / "reference")))
    state = torch.load(tmp_path / "reference" / "checkpoint-00001.pt", weights_only=True)
    state["rng"] = state["rng"][0]
    for added in ("lr_scaling", "sync_bn"):
        del state["config"][added]
    ckpt.save_checkpoint(state, tmp_path / "old")
    resumed = pretrain(tiny(epochs=2, out_dir=str(tmp_path / "old"), resume=True))
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in reference.history]
    assert_same_weights(weights(resumed.model), weights(reference.model))


# ---- rendered views, broken positives, dataset objects ---------------------------------------------------

def trainer_tags(disk, epochs: int, **overrides):
    """(sample, rendering) tags (V, M) of every view of ``epochs`` epochs of a trainer on
    ``disk.tagged_dataset`` with the deterministic ``none`` views, and the batches' labels (M,)."""
    dataset = overrides.pop("dataset", None) or disk.tagged_dataset(n=200, k=3)
    config = PretrainConfig(dataset=dataset, augmentation="none", batch_size=50, workers=0, evaluate=False,
                            progress=False, **overrides)
    trainer = _Trainer(prepare(config))
    samples, renderings, labels = [], [], []
    for _ in range(epochs):
        for views, batch_labels, _ in trainer.batches():
            sample, rendering = disk.tags(views)
            samples.append(sample.view(config.n_views, -1))
            renderings.append(rendering.view(config.n_views, -1))
            labels.append(batch_labels)
    return torch.cat(samples, 1), torch.cat(renderings, 1), torch.cat(labels)


@pytest.mark.parametrize("batch_augment", [True, False])
def test_rendered_views_are_distinct_renderings_of_the_sample(disk, batch_augment):
    samples, renderings, labels = trainer_tags(disk, 2, views="rendered", n_views=3, batch_augment=batch_augment)
    assert samples.shape == (3, 400) and sorted(samples[0].tolist()) == sorted(list(range(200)) * 2)
    assert (samples == samples[0]).all() and torch.equal(labels, samples[0] % 4)
    assert (renderings[0] != renderings[1]).all() and (renderings[1] != renderings[2]).all()
    assert (renderings[0] != renderings[2]).all()
    for view in renderings:  # every rendering is drawn at every view position, never the evaluation image
        assert set(view.tolist()) == {0, 1, 2}


@pytest.mark.parametrize("batch_augment, views", [(True, "augment"), (False, "augment"), (True, "rendered"),
                                                  (False, "rendered")])
def test_corrupt_pairs_breaks_the_stated_fraction_of_positives(disk, batch_augment, views):
    p = 0.3
    samples, renderings, labels = trainer_tags(disk, 5, views=views, corrupt_pairs=p, batch_augment=batch_augment)
    assert torch.equal(labels, samples[0] % 4)  # labels (and targets) stay those of the first view
    corrupt = samples[1] != samples[0]
    m = corrupt.numel()
    assert abs(corrupt.float().mean().item() - p) < 4 * (p * (1 - p) / m) ** 0.5  # binomial, 4 sigma
    assert len(set(samples[1][corrupt].tolist())) > 100  # partners spread over the other samples
    assert set(renderings[0].tolist()) == ({255} if views == "augment" else {0, 1, 2})
    assert set(renderings[1].tolist()) == ({255} if views == "augment" else {0, 1, 2})


def test_rendered_views_need_renderings_and_enough_of_them(disk):
    with pytest.raises(ValueError, match="views='rendered' needs a dataset with renderings .* 'digits' has none"):
        prepare(tiny(views="rendered"))
    with pytest.raises(ValueError, match=r"n_views=4 distinct renderings per sample, but 'tagged' has 3; use "
                                         r"n_views <= 3"):
        prepare(PretrainConfig(dataset=disk.tagged_dataset(), views="rendered", n_views=4, evaluate=False,
                               batch_size=8))


@pytest.mark.parametrize("batch_augment", [True, False])
def test_resume_with_rendered_views_and_broken_pairs_is_bit_exact(disk, tmp_path, monkeypatch, batch_augment):
    torch.manual_seed(0)
    data = disk.tagged_dataset(n=32, k=3)
    data.renderings.random_(0, 256)
    config = dict(dataset=data, views="rendered", corrupt_pairs=0.4, epochs=2, deterministic=True,
                  checkpoint_every=1, batch_augment=batch_augment, batch_size=8, evaluate=False, workers=0,
                  progress=False, projector_hidden_dim=32)
    reference = pretrain(PretrainConfig(**config, out_dir=str(tmp_path / "reference")))
    crash_after_first_checkpoint(monkeypatch, PretrainConfig(**config, out_dir=str(tmp_path / "run")))
    resumed = pretrain(PretrainConfig(**config, out_dir=str(tmp_path / "run"), resume=True))
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in reference.history]
    assert_same_weights(weights(resumed.model), weights(reference.model))
    state, _ = ckpt.load_latest(tmp_path / "run")
    assert state["config"]["views"] == "rendered" and state["config"]["corrupt_pairs"] == 0.4
    assert state["config"]["dataset"] == f"{data!r} sha1:{data.fingerprint()}"
    other = disk.tagged_dataset(n=32, k=3)
    with pytest.raises(ValueError, match=r"cannot resume .* differs in 1 field\(s\): dataset: \"ImageDataset\('tagged'"):
        prepare(PretrainConfig(**{**config, "dataset": other}, out_dir=str(tmp_path / "run"), resume=True))


def test_pretrain_and_evaluate_a_dataset_object(tmp_path):
    torch.manual_seed(0)
    images, labels = torch.randint(0, 256, (48, 3, 16, 16), dtype=torch.uint8), torch.arange(48) % 3
    train = [(images[i], labels[i], i % 2) for i in range(32)]
    test = [(images[i], labels[i], i % 2) for i in range(32, 48)]
    config = PretrainConfig(dataset=train, test_dataset=test, epochs=1, batch_size=16, workers=0, progress=False,
                            projector_hidden_dim=32, out_dir=str(tmp_path))
    result = pretrain(config)
    assert len(result.history) == 1 and math.isfinite(result.history[0]["loss"])
    assert 0 <= result.metrics["linear_acc"] <= 1 and 0 <= result.metrics["domain_acc"] <= 1
    run_config = result.config  # the dataset objects, read into ImageDatasets
    assert torch.equal(run_config.dataset.images, images[:32]) and torch.equal(run_config.test_dataset.images, images[32:])
    assert run_config.test_dataset.mean == run_config.dataset.mean  # the test split takes the train statistics
    saved = json.loads((tmp_path / "metrics.json").read_text())["config"]
    assert saved["dataset"].startswith("ImageDataset('list', split='train', n=32, 3x16x16, classes=3, domains=['0', '1']")
    assert saved["test_dataset"].startswith("ImageDataset('list', split='test', n=16")
    assert config.to_dict()["dataset"] == "builtins.list of 32 items"


def test_dataset_objects_are_checked_before_training():
    train = [(torch.zeros(3, 8, 8, dtype=torch.uint8), i % 2) for i in range(16)]
    with pytest.raises(ValueError, match="test_dataset must be given with a dataset object when evaluate=True"):
        PretrainConfig(dataset=train)
    with pytest.raises(ValueError, match="dataset_options only apply to a dataset name"):
        PretrainConfig(dataset=train, evaluate=False, dataset_options={"holdout_domain": "x"})
    with pytest.raises(TypeError, match=r"test_dataset must be None or a map-style dataset .* got 3 \(int\)"):
        PretrainConfig(dataset=train, test_dataset=3)
    small = [(torch.zeros(1, 4, 4, dtype=torch.uint8), 0)]
    with pytest.raises(ValueError, match=r"dataset images must have the shape \(3, 8, 8\) of the 'list' train "
                                         r"split, got \(1, 4, 4\)"):
        prepare(PretrainConfig(dataset=train, test_dataset=small, batch_size=8))
    with pytest.raises(ValueError, match=r"batch_size=32 is larger than the 16 samples available for pretraining "
                                         r"\(list train split\)"):
        prepare(PretrainConfig(dataset=train, evaluate=False, batch_size=32))
