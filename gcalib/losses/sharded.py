"""GCA losses over the global batch with the plan's rows split over the processes (``shard_plan=True``).

With W processes holding B samples each and V views, the gathered batch has ``n = V·W·B`` rows in the
blocked layout (:mod:`gcalib.losses.distributed`). Process k holds only the rows of its own samples' views,

    R_k = { v·W·B + k·B + i : v < V, i < B }      (:func:`shard_rows`, n/W rows),

and of every n × n matrix of :mod:`gcalib.losses.fused` only those rows: the log-kernel ``L_{R_k} =
(z_{R_k} zᵀ − 1)/ε``, the target's rows, the plan's rows and the backward's matrices, so its memory grows
like n²/W. Row half-steps, the final row projection and the divergences' row sums are local. What sums or
maximises over rows is combined with ``torch.distributed.all_reduce`` (:data:`ACROSS_PROCESSES`):

* forward, per Sinkhorn iteration: **one** all-reduce (sum) of n floats, the column half-step's
  ``Mᵀ·x`` (the first reference is built at a row step, so column maxima are not needed on this path).
  Per call besides: the gathers of the V views (:func:`gcalib.losses.distributed.all_gather_with_grad`), one
  scalar agreeing that every process's target is valid, two all-reduces of the fast half-steps' validity
  flags (n_iter + 1 floats at most) and one scalar, the loss ``Σ_k ℓ_k`` (every process returns the same
  global value);
* backward, per iteration: at most one all-reduce (sum) of n floats, the adjoint of ``γ`` through a row
  half-step. Per call besides: one of n floats (the divergences' adjoint of ``γ``), one scalar (the incoming
  gradients) and the all-reduce of the gathered views' gradient (n × d, in ``all_gather_with_grad``);
* only when a fast half-step fails its validity check (small ε): one flag all-reduce per half-step from
  there on, and for each column half-step redone in the log domain two all-reduces of n floats (column
  maxima and sums), the maxima again in the backward when that reference is rebuilt.

Targets: ``target=None`` gives the positive pairs as index lists (never an n × n matrix); a custom target is
passed by each process as its rows of the global plan, shape (n/W, n), validated on every process::

    loss_fn = make_loss("gca_uot", gather_distributed=True, shard_plan=True)
    rows = shard_rows(batch_size)                                       # this process's rows
    target = domain_plan(gather_nograd(domains), 0.2, 0.0, rows=rows)   # (n/W, n), not (n, n)
    loss = loss_fn(z1, z2, target=target)                               # the global loss, on every process

Gradient: the backward returns process k's share of ``∂L/∂z`` for the gathered ``z`` (``L̄_{R_k}·z`` on
rows ``R_k`` plus ``L̄_{R_k}ᵀ·z_{R_k}``) times the incoming gradients summed over processes. The backward of
:func:`gcalib.losses.distributed.all_gather_with_grad` sums these shares over processes and keeps rank k's rows,
which gives ``W·∂L/∂x_k`` as in the replicated gathered loss; DDP's gradient averaging then yields the
gradient of one process on the concatenated batch.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.distributed as dist

from . import distributed
from .fused import RowBlock, SparseTarget, fused_gca_loss, positive_pair_target
from .spec import LossSpec
from ..ot.scaling import RowReduction
from ..validation import check_int

__all__ = ["shard_rows", "ACROSS_PROCESSES", "sharded_gca_loss"]


def _all_reduce(op: dist.ReduceOp) -> Callable[[torch.Tensor], torch.Tensor]:
    def reduce(partial: torch.Tensor) -> torch.Tensor:
        total = partial.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, op=op)
        return total

    return reduce


ACROSS_PROCESSES = RowReduction(sum=_all_reduce(dist.ReduceOp.SUM), max=_all_reduce(dist.ReduceOp.MAX))
"""Row results combined over the default process group (all-reduce sum and max)."""


def shard_rows(batch_size: int, n_views: int = 2, *, rank: Optional[int] = None, world_size: Optional[int] = None,
               device: Optional[torch.device] = None) -> torch.Tensor:
    """The global rows ``v·W·B + k·B + i`` (``v < V``, ``i < B``) that process ``k`` holds of the gathered plan.

    A custom target for ``shard_plan=True`` is these rows of the global (n, n) target plan, e.g.
    ``from_labels(gather_nograd(labels), rows=shard_rows(B))``.

    Parameters
    ----------
    batch_size : int
        Samples per process and view ``B ≥ 1``.
    n_views : int
        Views ``V ≥ 2``.
    rank : int or None
        The process ``k`` (default this process's rank).
    world_size : int or None
        Number of processes ``W`` (default the group's size).
    device : torch.device or None
        Device of the result.

    Returns
    -------
    torch.Tensor
        ``V·B`` global row indices (int64), view by view.

    Raises
    ------
    TypeError
        When an argument is not an int.
    ValueError
        When an argument is out of range (``rank`` in ``[0, world_size)``).
    """
    check_int("batch_size", batch_size, 1)
    check_int("n_views", n_views, 2)
    world_size = check_int("world_size", distributed.world_size() if world_size is None else world_size, 1)
    rank = check_int("rank", distributed.rank() if rank is None else rank, 0, world_size - 1)
    own = torch.arange(rank * batch_size, (rank + 1) * batch_size, device=device)
    offsets = world_size * batch_size * torch.arange(n_views, device=device)
    return (offsets.unsqueeze(1) + own).flatten()


def sharded_gca_loss(z: torch.Tensor, target: Optional[torch.Tensor], rows: torch.Tensor, n_views: int,
                     spec: LossSpec) -> torch.Tensor:
    """The GCA loss on the gathered batch, this process holding only the plan's ``rows``.

    Parameters
    ----------
    z : torch.Tensor
        The gathered unit rows, shape (n, d), the same on every process.
    target : torch.Tensor or None
        ``None`` (positive pairs), or the row-normalised rows ``rows`` of the target plan, (len(rows), n).
    rows : torch.Tensor
        This process's global rows (:func:`shard_rows`).
    n_views : int
        Views ``V``.
    spec : LossSpec
        The loss's hyper-parameters.

    Returns
    -------
    torch.Tensor
        The global loss, the same on every process; its gradient is this process's share.
    """
    if target is None:
        pairs = positive_pair_target(z.shape[0] // n_views, n_views, z)
        target = SparseTarget(pairs.index[rows], pairs.weight[rows])
    return fused_gca_loss(z, target, spec, RowBlock(rows, ACROSS_PROCESSES))
