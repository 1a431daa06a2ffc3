"""Row-sharded losses (shard_plan=True) against one process on the concatenated batch.

Two levels. In one process, W threads each evaluate one row block of :func:`gcalib.losses.fused.fused_gca_loss`
with a thread-barrier :class:`~gcalib.ot.scaling.RowReduction` (float64, every preset, to 1e-12).
Then real gloo process groups of 2 and 4 processes (one ``torch.multiprocessing.spawn`` per size, like
tests/test_distributed.py) run ``make_loss(..., gather_distributed=True, shard_plan=True)``, three DDP SGD
steps and the error paths; the tests recompute everything in this process on the concatenated batch.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from gcalib.losses import fused as fused_loss
from gcalib.losses import targets as plans
from gcalib.ot import scaling
from gcalib.losses import distributed as gdist
from gcalib.losses.fused import RowBlock, SparseTarget, fused_gca_loss, positive_pair_target
from gcalib.losses.gca import gca_loss, make_loss
from gcalib.losses.kernel import embed_views
from gcalib.losses.spec import LOSSES, PRESETS
from gcalib.losses.sharded import shard_rows
from gcalib.ot.scaling import RowReduction

# Small eps is part of what is tested here: the robust-term scale warning is tested in test_gca.py.
pytestmark = pytest.mark.filterwarnings("ignore:.*the robust term and its gradients carry:UserWarning")

B = 4  # samples per rank
D = 8  # embedding width
NAMES = tuple(name for name in LOSSES if name != "hs_ince")  # hs_ince is infonce's alias
TARGETS = ("pairs", "domain", "labels")
ALPHA, BETA = 0.5, 0.1
DDP_STEPS, DDP_LR, DDP_IN = 3, 0.5, 6


def _randn(seed: int, *shape: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _all_log_domain():
    """Force every Sinkhorn half-step (and the dense positives) into the log-domain fallback."""
    patches = [(scaling, "log_floor"), (fused_loss, "log_floor")]
    saved = [getattr(module, name) for module, name in patches]
    for module, name in patches:
        setattr(module, name, lambda dtype: math.inf)
    return lambda: [setattr(module, name, old) for (module, name), old in zip(patches, saved)]


# ---------------------------------------------------------------------------------------------
# Layout helpers
# ---------------------------------------------------------------------------------------------

def test_shard_rows_are_each_ranks_samples_in_every_view():
    assert shard_rows(2, 2, rank=1, world_size=3).tolist() == [2, 3, 8, 9]
    assert shard_rows(2, 3, rank=0, world_size=2).tolist() == [0, 1, 4, 5, 8, 9]
    every = torch.cat([shard_rows(3, 2, rank=k, world_size=4) for k in range(4)])
    assert sorted(every.tolist()) == list(range(24))
    assert shard_rows(5, 2).tolist() == list(range(10))  # no process group: rank 0 of 1


@pytest.mark.parametrize("kind", ["labels", "domain"])
def test_plan_builders_return_the_requested_rows_of_the_full_plan(kind):
    ids = torch.tensor([0, 1, 1, 2, 0, 2])
    rows = shard_rows(3, 2, rank=1, world_size=2)
    if kind == "labels":
        full, part = plans.from_labels(ids), plans.from_labels(ids, rows=rows)
    else:
        full, part = plans.domain_plan(ids, 0.3, 0.1), plans.domain_plan(ids, 0.3, 0.1, rows=rows)
    assert torch.equal(part, full[rows])
    assert plans.validate_target(part, 12, rows) is part


def test_target_rows_are_validated_against_their_self_pairs():
    rows = torch.tensor([2, 3])
    target = plans.from_labels(torch.tensor([0, 1, 0, 1]), rows=rows)
    target[1, 3] = 1.0
    with pytest.raises(ValueError, match=r"target\[1, 3\] = 1\. Use target\[torch.arange\(len\(rows\)\), rows\] = 0"):
        plans.validate_target(target, 8, rows)
    with pytest.raises(ValueError, match=r"rows must hold indices in \[0, 8\)"):
        plans.validate_target(target, 8, torch.tensor([2, 8]))


# ---------------------------------------------------------------------------------------------
# Row blocks in one process: W threads, a barrier reduction
# ---------------------------------------------------------------------------------------------

class _ThreadGroup:
    """A RowReduction per thread: each deposits its partial, all wait, each reduces the stack."""

    def __init__(self, world: int):
        self.barrier = threading.Barrier(world, timeout=60)
        self.slots: list = [None] * world

    def reduction(self, k: int) -> RowReduction:
        def combine(op):
            def reduce(partial: torch.Tensor) -> torch.Tensor:
                self.slots[k] = partial.clone()
                self.barrier.wait()
                total = op(torch.stack(self.slots))
                self.barrier.wait()
                return total
            return reduce
        return RowReduction(sum=combine(lambda s: s.sum(0)), max=combine(lambda s: s.amax(0)))


def _threaded_blocks(views, spec, world, full_target):
    """Every block's (value, gradient w.r.t. the views), each block in its own thread."""
    batch, n_views = views[0].shape[0] // world, len(views)
    group, out, errors = _ThreadGroup(world), [None] * world, []

    def block(k: int) -> None:
        try:
            own = [v.detach().clone().requires_grad_() for v in views]
            z = embed_views(own)
            rows = shard_rows(batch, n_views, rank=k, world_size=world)
            if full_target is None:
                pairs = positive_pair_target(world * batch, n_views, z)
                target = SparseTarget(pairs.index[rows], pairs.weight[rows])
            else:
                target = full_target[rows] / full_target[rows].sum(1, keepdim=True)
            value = fused_gca_loss(z, target, spec, RowBlock(rows, group.reduction(k)))
            out[k] = (value.detach(), torch.autograd.grad(value, own))
        except BaseException as error:  # noqa: BLE001 - re-raised in the test thread
            errors.append(error)
            group.barrier.abort()

    threads = [threading.Thread(target=block, args=(k,)) for k in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return out


@pytest.mark.parametrize("log_domain", [False, True], ids=["fast", "log-domain"])
@pytest.mark.parametrize("name", NAMES)
def test_row_blocks_sum_to_the_whole_loss_and_gradient(name, log_domain):
    world, n_views = 3, 2
    views = [_randn(10 + v, world * 2, 5, dtype=torch.float64) for v in range(n_views)]
    domains = torch.tensor([0, 1, 1, 2, 0, 2])
    restore = _all_log_domain() if log_domain else None
    try:
        for target in (None, plans.domain_plan(domains, ALPHA, BETA, n_views).double()):
            for eps in (0.5, 0.05):
                spec = replace(PRESETS[name], eps=eps)
                whole = [v.clone().requires_grad_() for v in views]
                value = gca_loss(*whole, target=target, spec=spec)
                grads = torch.autograd.grad(value, whole)
                value = value.detach()
                blocks = _threaded_blocks(views, spec, world, target)
                for block_value, _ in blocks:
                    assert abs(float(block_value - value)) <= 1e-12 * max(1.0, abs(float(value)))
                # Each block's gradient carries the incoming gradients summed over blocks (here W·1).
                for v in range(n_views):
                    total = sum(block_grads[v] for _, block_grads in blocks) / world
                    torch.testing.assert_close(total, grads[v], rtol=1e-10, atol=1e-12)
    finally:
        if restore:
            restore()


# ---------------------------------------------------------------------------------------------
# gloo process groups: inputs rebuilt identically on every rank and in the test process
# ---------------------------------------------------------------------------------------------

def _rank_inputs(r: int, n_views: int = 2):
    views = [_randn(310 + 10 * v + r, B, D) for v in range(n_views)]
    ids = torch.randint(0, 3, (B,), generator=torch.Generator().manual_seed(300 + r))
    return views, ids


def _global_target(kind: str, ids: torch.Tensor, n_views: int, rows=None):
    if kind == "pairs":
        return None
    if kind == "labels":
        return plans.from_labels(ids, n_views, rows=rows)
    return plans.domain_plan(ids, ALPHA, BETA, n_views, rows=rows)


def _ddp_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(DDP_IN, 16), nn.Tanh(), nn.Linear(16, D))


def _ddp_batch(step: int, world: int):
    return _randn(400 + step, world * B, DDP_IN), _randn(500 + step, world * B, DDP_IN)


SCENARIOS = [(name, kind, 2, False) for name in NAMES for kind in TARGETS]
SCENARIOS += [("gca_ince", "pairs", 3, False), ("gca_uot", "labels", 3, False)]
SCENARIOS += [(name, kind, 2, True) for name in ("gca_ince", "gca_uot", "gca_rince") for kind in ("pairs", "domain")]


def _sharded_run(r: int, name: str, kind: str, n_views: int, log_domain: bool):
    views, ids = _rank_inputs(r, n_views)
    views = [v.requires_grad_() for v in views]
    target = _global_target(kind, gdist.gather_nograd(ids), n_views, rows=shard_rows(B, n_views))
    restore = _all_log_domain() if log_domain else None
    try:
        value = make_loss(name, gather_distributed=True, shard_plan=True)(*views, target=target)
        value.backward()
    finally:
        if restore:
            restore()
    return value.detach(), [v.grad for v in views]


def _ddp_run(r: int, world: int, name: str) -> dict:
    model = nn.parallel.DistributedDataParallel(_ddp_model())
    opt = torch.optim.SGD(model.parameters(), lr=DDP_LR)
    loss_fn = make_loss(name, gather_distributed=True, shard_plan=True)
    rows = slice(r * B, (r + 1) * B)
    for step in range(DDP_STEPS):
        x1, x2 = _ddp_batch(step, world)
        h = model(torch.cat([x1[rows], x2[rows]]))
        opt.zero_grad()
        loss_fn(h[:B], h[B:]).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.module.state_dict().items()}


def _error_runs(r: int) -> dict:
    views, ids = _rank_inputs(r)
    ids = gdist.gather_nograd(ids)
    loss_fn = make_loss("gca_ince", gather_distributed=True, shard_plan=True)
    errors = {}
    own = plans.from_labels(ids, rows=shard_rows(B))
    one_bad = own.clone().fill_(-1.0) if r == 1 else own
    for label, target in (("full-target", plans.from_labels(ids)), ("grad-target", own.clone().requires_grad_()),
                          ("one-rank-bad", one_bad)):
        with pytest.raises(ValueError) as info:
            loss_fn(*views, target=target)
        errors[label] = str(info.value)
    return errors


def _worker(r: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=r, world_size=world,
                            timeout=timedelta(seconds=120))
    try:
        results = {"losses": {s: _sharded_run(r, *s) for s in SCENARIOS}, "errors": _error_runs(r),
                   "ddp": {name: _ddp_run(r, world, name) for name in ("gca_ince", "gca_uot")}}
    finally:
        dist.destroy_process_group()
    torch.save(results, os.path.join(out_dir, f"rank{r}.pt"))


def _spawn(tmp_path_factory, world: int) -> list[dict]:
    tmp = tmp_path_factory.mktemp(f"shard{world}")
    mp.spawn(_worker, args=(world, str(tmp / "init"), str(tmp)), nprocs=world, join=True)
    return [torch.load(Path(tmp) / f"rank{r}.pt", weights_only=False) for r in range(world)]


@pytest.fixture(scope="module", params=[2, 4], ids=["W2", "W4"])
def ranks(request, tmp_path_factory) -> list[dict]:
    """What each rank saw, for 2 and 4 gloo processes (one spawn each)."""
    return _spawn(tmp_path_factory, request.param)


def _single_process(name: str, kind: str, n_views: int, world: int):
    parts = [_rank_inputs(r, n_views) for r in range(world)]
    views = [torch.cat([p[0][v] for p in parts]).requires_grad_() for v in range(n_views)]
    ids = torch.cat([p[1] for p in parts])
    value = make_loss(name)(*views, target=_global_target(kind, ids, n_views))
    value.backward()
    return value.detach(), [v.grad for v in views]


@pytest.mark.slow
def test_sharded_loss_and_gradients_equal_one_process_on_the_concatenated_batch(ranks):
    world = len(ranks)
    for scenario in SCENARIOS:
        name, kind, n_views, _ = scenario
        value, grads = _single_process(name, kind, n_views, world)
        for r, res in enumerate(ranks):
            got, got_grads = res["losses"][scenario]
            assert abs(got.item() - value.item()) <= 1e-5, scenario
            rows = slice(r * B, (r + 1) * B)
            for got_grad, grad in zip(got_grads, grads):
                # The gathered-loss contract: every rank's gradient is WORLD·∂L/∂(own rows).
                torch.testing.assert_close(got_grad, world * grad[rows], rtol=1e-5, atol=1e-6, msg=str(scenario))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gca_ince", "gca_uot"])
def test_ddp_sgd_with_sharded_plan_matches_one_process(ranks, name):
    world = len(ranks)
    model = _ddp_model()
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=DDP_LR)
    loss_fn = make_loss(name)
    n = world * B
    for step in range(DDP_STEPS):
        x1, x2 = _ddp_batch(step, world)
        h = model(torch.cat([x1, x2]))
        opt.zero_grad()
        loss_fn(h[:n], h[n:]).backward()
        opt.step()
    assert max((v - start[k]).abs().max().item() for k, v in model.state_dict().items()) > 1e-3
    for res in ranks:
        for k, v in model.state_dict().items():
            torch.testing.assert_close(res["ddp"][name][k], v, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_bad_sharded_targets_raise_on_every_rank(ranks):
    world = len(ranks)
    n = 2 * world * B
    for res in ranks:
        assert f"target must have shape ({2 * B}, {n}) with shard_plan=True" in res["errors"]["full-target"]
        assert f"got ({n}, {n})" in res["errors"]["full-target"]
        assert "target must not require grad with shard_plan=True" in res["errors"]["grad-target"]
    assert "target must be non-negative" in ranks[1]["errors"]["one-rank-bad"]
    for res in ranks[:1] + ranks[2:]:
        assert "target is invalid on another process" in res["errors"]["one-rank-bad"]


def test_shard_plan_without_process_group_raises():
    views, _ = _rank_inputs(0)
    with pytest.raises(RuntimeError, match="^shard_plan=True requires an initialised torch.distributed"):
        make_loss("gca_uot", gather_distributed=True, shard_plan=True)(*views)
