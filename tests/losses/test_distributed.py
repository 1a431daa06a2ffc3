"""gcalib.losses.distributed: 2-process gloo runs on CPU compared with one process on the concatenated batch.

One ``torch.multiprocessing.spawn`` (module fixture) runs every distributed scenario on both ranks and
saves what each rank saw; the tests recompute the same quantities in this process, on the concatenated
global batch, and compare. Inputs are generated from seeds that depend only on (scenario, rank), so
both sides rebuild them independently.
"""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from gcalib.losses import distributed as gdist
from gcalib.losses import targets as plans
from gcalib.losses.gca import make_loss
from gcalib.losses.spec import LOSSES

WORLD = 2
B = 4  # samples per rank
D = 8  # embedding width
LOSS_NAMES = LOSSES
TARGETS = ("pairs", "domain")
ALPHA, BETA = 0.5, 0.1  # domain-plan weights
N_DOMAINS = 3
DDP_STEPS, DDP_LR, DDP_IN = 3, 0.5, 6


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# Inputs, rebuilt identically on every rank and in the test process
# ---------------------------------------------------------------------------------------------

def _gather_input(r: int) -> torch.Tensor:
    return _randn(100 + r, 3, 4)


def _rank_function(r: int, y: torch.Tensor) -> torch.Tensor:
    """A different scalar function of the gathered tensor on each rank, coupling all rows."""
    w = _randn(200 + r, WORLD * 3, 4)
    return (w * y).sum() + (r + 1) * (y ** 2).sum() + (y.sum(dim=0) ** 3).sum() * (0.5 + r)


def _loss_views(r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    domains = torch.randint(0, N_DOMAINS, (B,), generator=torch.Generator().manual_seed(300 + r))
    return _randn(310 + r, B, D), _randn(320 + r, B, D), domains


def _ddp_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(DDP_IN, 16), nn.Tanh(), nn.Linear(16, D))


def _ddp_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of step ``step``: two views of WORLD·B samples; rank r owns rows r·B..r·B+B-1."""
    return _randn(400 + step, WORLD * B, DDP_IN), _randn(500 + step, WORLD * B, DDP_IN)


def _target(kind: str, domains: torch.Tensor):
    return None if kind == "pairs" else plans.domain_plan(domains, ALPHA, BETA, n_views=2)


# ---------------------------------------------------------------------------------------------
# What each rank runs
# ---------------------------------------------------------------------------------------------

def _run_gather(r: int) -> dict:
    x = _gather_input(r).requires_grad_()
    y = gdist.all_gather_with_grad(x)
    _rank_function(r, y).backward()
    labels = torch.arange(3) + 10 * r
    meta = gdist.gather_nograd(labels)
    float_meta = gdist.gather_nograd(x)
    return {
        "rank": gdist.rank(), "world_size": gdist.world_size(), "initialized": gdist.is_initialized(),
        "y": y.detach(), "grad": x.grad, "labels": meta,
        "float_meta_requires_grad": float_meta.requires_grad, "float_meta": float_meta,
    }


def _run_unequal(r: int) -> dict:
    x = torch.zeros(3 if r == 0 else 2, 4, requires_grad=True)
    errors = {}
    for name, fn in (("with_grad", gdist.all_gather_with_grad), ("nograd", gdist.gather_nograd)):
        with pytest.raises(ValueError) as info:
            fn(x)
        errors[name] = str(info.value)
    return errors


def _run_collectives(r: int) -> dict:
    cpu = torch.device("cpu")
    return {
        "all_true": gdist.all_ranks(True, cpu), "one_false": gdist.all_ranks(r == 0, cpu),
        "mean": gdist.mean_over_ranks(float(r + 1), cpu), "objects": gdist.gather_objects({"rank": r}),
    }


def _run_losses(r: int) -> dict:
    out = {}
    for name in LOSS_NAMES:
        loss_fn = make_loss(name, gather_distributed=True)
        for kind in TARGETS:
            z1, z2, domains = _loss_views(r)
            z1.requires_grad_()
            z2.requires_grad_()
            target = _target(kind, gdist.gather_nograd(domains))
            value = loss_fn(z1, z2, target=target)
            value.backward()
            out[name, kind] = (value.detach(), z1.grad, z2.grad)
    return out


def _run_ddp(r: int) -> dict:
    model = nn.parallel.DistributedDataParallel(_ddp_model())
    opt = torch.optim.SGD(model.parameters(), lr=DDP_LR)
    loss_fn = make_loss("gca_ince", gather_distributed=True)
    rows = slice(r * B, (r + 1) * B)
    for step in range(DDP_STEPS):
        x1, x2 = _ddp_batch(step)
        h = model(torch.cat([x1[rows], x2[rows]]))
        opt.zero_grad()
        loss_fn(h[:B], h[B:]).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.module.state_dict().items()}


def _worker(r: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=r, world_size=WORLD, timeout=timedelta(seconds=60)
    )
    try:
        results = {
            "gather": _run_gather(r),
            "unequal": _run_unequal(r),
            "collectives": _run_collectives(r),
            "losses": _run_losses(r),
            "ddp": _run_ddp(r),
        }
    finally:
        dist.destroy_process_group()
    torch.save(results, os.path.join(out_dir, f"rank{r}.pt"))


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    """What each rank saw; one spawn for the whole module (~9 s on 2 idle cores, hence ``slow``)."""
    tmp = tmp_path_factory.mktemp("dist")
    mp.spawn(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD, join=True)
    return [torch.load(Path(tmp) / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


# ---------------------------------------------------------------------------------------------
# Primitive gathers
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_helpers_report_rank_and_world(ranks):
    for r, res in enumerate(ranks):
        assert (res["gather"]["rank"], res["gather"]["world_size"], res["gather"]["initialized"]) == (r, WORLD, True)


@pytest.mark.slow
def test_all_gather_forward_is_rank_ordered_concatenation(ranks):
    expected = torch.cat([_gather_input(r) for r in range(WORLD)])
    for res in ranks:
        assert torch.equal(res["gather"]["y"], expected)


@pytest.mark.slow
def test_all_gather_backward_sums_every_rank_contribution(ranks):
    # Rank r computed f_r(gathered); its local gradient must be its slice of ∇ Σ_r f_r.
    x = torch.cat([_gather_input(r) for r in range(WORLD)]).requires_grad_()
    sum(_rank_function(r, x) for r in range(WORLD)).backward()
    for r, res in enumerate(ranks):
        torch.testing.assert_close(res["gather"]["grad"], x.grad[r * 3:(r + 1) * 3], rtol=1e-6, atol=1e-5)


@pytest.mark.slow
def test_gather_nograd_orders_metadata_and_detaches(ranks):
    expected = torch.cat([torch.arange(3) + 10 * r for r in range(WORLD)])
    for res in ranks:
        assert res["gather"]["labels"].dtype == torch.int64
        assert torch.equal(res["gather"]["labels"], expected)
        assert res["gather"]["float_meta_requires_grad"] is False
        assert torch.equal(res["gather"]["float_meta"], torch.cat([_gather_input(r) for r in range(WORLD)]))


@pytest.mark.slow
def test_unequal_batch_sizes_raise_on_every_rank(ranks):
    for res in ranks:
        for message in res["unequal"].values():
            assert "rank 0: ndim=2, B=3" in message and "rank 1: ndim=2, B=2" in message
            assert "drop_last=True" in message


# ---------------------------------------------------------------------------------------------
# Losses over the global batch
# ---------------------------------------------------------------------------------------------

def _global_loss(name: str, kind: str):
    parts = [_loss_views(r) for r in range(WORLD)]
    z1 = torch.cat([p[0] for p in parts]).requires_grad_()
    z2 = torch.cat([p[1] for p in parts]).requires_grad_()
    domains = torch.cat([p[2] for p in parts])
    value = make_loss(name)(z1, z2, target=_target(kind, domains))
    value.backward()
    return value.detach(), z1.grad, z2.grad


@pytest.mark.slow
@pytest.mark.parametrize("kind", TARGETS)
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_gathered_loss_equals_single_process_loss(ranks, name, kind):
    value, g1, g2 = _global_loss(name, kind)
    for r, res in enumerate(ranks):
        got, got_g1, got_g2 = res["losses"][name, kind]
        assert abs(got.item() - value.item()) <= 1e-6
        # Every rank computed the same global loss, so the summed gradient is WORLD·∂L/∂z on own rows.
        rows = slice(r * B, (r + 1) * B)
        torch.testing.assert_close(got_g1, WORLD * g1[rows], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got_g2, WORLD * g2[rows], rtol=1e-5, atol=1e-6)


def test_domain_target_differs_from_pair_target():
    # Guards the comparison above against a domain plan that degenerates to the positive pairs.
    assert abs(_global_loss("infonce", "pairs")[0].item() - _global_loss("infonce", "domain")[0].item()) > 1e-3


@pytest.mark.slow
def test_ddp_sgd_with_gathering_matches_one_process(ranks):
    model = _ddp_model()
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=DDP_LR)
    loss_fn = make_loss("gca_ince")
    n = WORLD * B
    for step in range(DDP_STEPS):
        x1, x2 = _ddp_batch(step)
        h = model(torch.cat([x1, x2]))
        opt.zero_grad()
        loss_fn(h[:n], h[n:]).backward()
        opt.step()
    moved = max((v - start[k]).abs().max().item() for k, v in model.state_dict().items())
    assert moved > 1e-3  # a gradient off by the factor WORLD would be visible
    for res in ranks:
        for k, v in model.state_dict().items():
            torch.testing.assert_close(res["ddp"][k], v, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_trainer_collectives_agree_on_every_rank(ranks):
    for res in ranks:
        got = res["collectives"]
        assert got["all_true"] is True and got["one_false"] is False  # one rank's False is everyone's
        assert got["mean"] == pytest.approx((1 + WORLD) / 2)
        assert got["objects"] == [{"rank": k} for k in range(WORLD)]


# ---------------------------------------------------------------------------------------------
# One process, no process group
# ---------------------------------------------------------------------------------------------

def test_single_process_defaults_are_noops():
    assert not gdist.is_initialized()
    assert (gdist.rank(), gdist.world_size()) == (0, 1)
    x = torch.randn(3, 2, requires_grad=True)
    assert gdist.all_gather_with_grad(x) is x
    meta = gdist.gather_nograd(x)
    assert torch.equal(meta, x) and not meta.requires_grad


def test_trainer_collectives_are_local_in_one_process():
    cpu = torch.device("cpu")
    assert gdist.all_ranks(True, cpu) and not gdist.all_ranks(False, cpu)
    assert gdist.mean_over_ranks(2.5, cpu) == 2.5
    assert gdist.gather_objects("x") == ["x"]
    gdist.barrier()


def test_init_from_env_without_torchrun_does_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert gdist.init_from_env("cpu") is False and not gdist.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert gdist.init_from_env("cpu") is False and not gdist.is_initialized()
    gdist.shutdown()


def test_malformed_torchrun_environment_is_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="environment variable WORLD_SIZE must be an integer .*got 'two'"):
        gdist.init_from_env("cpu")
    monkeypatch.setenv("LOCAL_RANK", "")
    with pytest.raises(ValueError, match="LOCAL_RANK must be an integer"):
        gdist.local_rank()


@pytest.mark.parametrize("fn", [gdist.all_gather_with_grad, gdist.gather_nograd])
def test_gathers_reject_non_tensors_and_scalars(fn):
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        fn([1.0, 2.0])
    with pytest.raises(ValueError, match="x must have a leading batch dimension"):
        fn(torch.tensor(1.0))


def test_require_initialized_names_the_feature():
    with pytest.raises(RuntimeError, match=r"gather_distributed=True requires an initialised torch\.distributed "
                                           r"process group \(launch with `torchrun"):
        gdist.require_initialized()
    with pytest.raises(RuntimeError, match="^sync_batchnorm requires"):
        gdist.require_initialized("sync_batchnorm")


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_gathering_without_process_group_raises(name):
    z1, z2, _ = _loss_views(0)
    with pytest.raises(RuntimeError, match="gather_distributed=True requires an initialised torch.distributed"):
        make_loss(name, gather_distributed=True)(z1, z2)
