"""Global-batch helpers on top of ``torch.distributed``.

Every function works in a plain single process (no process group): ``rank() == 0``,
``world_size() == 1`` and the gathers return their input unchanged. Under ``torchrun`` with an
initialised process group, :func:`all_gather_with_grad` assembles the global batch of embeddings so
that a loss can solve its plan over all ranks' samples, and :func:`gather_nograd` assembles per-sample
metadata (labels, domain ids) in the same order, so that target plans are built for the global batch.

Gathering concatenates along dim 0 in rank order: rank k's rows ``0..B-1`` become global rows
``k·B .. k·B + B-1``. A loss that gathers each view separately therefore sees the blocked layout
[view 1 of all ranks' samples; view 2 of all ranks' samples; …], and sample ``i`` of rank ``k`` is
global sample ``k·B + i``.

For training under ``torchrun``, :func:`init_from_env` joins the process group that torchrun's
environment describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and
:func:`shutdown` leaves it; :func:`all_ranks`, :func:`mean_over_ranks`, :func:`gather_objects` and
:func:`barrier` are the few collectives the trainer needs, each a no-op in a single process.
"""
from __future__ import annotations

import math
import os
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.rendezvous import rendezvous

__all__ = [
    "is_initialized",
    "rank",
    "world_size",
    "local_rank",
    "env_world_size",
    "init_from_env",
    "shutdown",
    "all_ranks",
    "mean_over_ranks",
    "gather_objects",
    "barrier",
    "require_initialized",
    "all_gather_with_grad",
    "gather_nograd",
]


def is_initialized() -> bool:
    """Whether a ``torch.distributed`` default process group is available and initialised.

    Returns
    -------
    bool
        ``True`` inside an initialised process group.
    """
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the default group.

    Returns
    -------
    int
        The rank, 0 without a process group.
    """
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    """Number of processes in the default group.

    Returns
    -------
    int
        The group's size, 1 without a process group.
    """
    return dist.get_world_size() if is_initialized() else 1


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer (torchrun sets it), got {text!r}") from None


def env_world_size() -> int:
    """The number of processes torchrun launched: ``WORLD_SIZE`` from the environment.

    Returns
    -------
    int
        ``WORLD_SIZE``, 1 when unset.

    Raises
    ------
    ValueError
        When ``WORLD_SIZE`` is set but not an integer.
    """
    return _env_int("WORLD_SIZE", 1)


def local_rank() -> int:
    """This process's rank on its node: ``LOCAL_RANK`` from the environment (set by torchrun).

    Returns
    -------
    int
        ``LOCAL_RANK``, 0 when unset.

    Raises
    ------
    ValueError
        When ``LOCAL_RANK`` is set but not an integer.
    """
    return _env_int("LOCAL_RANK", 0)


_OWNED_GROUP = False


def init_from_env(device_type: str) -> bool:
    """Join the process group described by torchrun's environment.

    Does nothing when ``WORLD_SIZE`` is unset or 1, or when a process group is already initialised (a
    caller's own). The backend is nccl for ``device_type == "cuda"`` (after selecting GPU ``LOCAL_RANK``),
    gloo otherwise, on a store whose keys are private to this attempt of the worker group.
    :func:`shutdown` destroys a group created here.

    Parameters
    ----------
    device_type : str
        ``"cuda"`` or another torch device type.

    Returns
    -------
    bool
        ``True`` when this call created the group.

    Raises
    ------
    RuntimeError
        When ``WORLD_SIZE > 1`` but this torch build has no distributed support.
    """
    global _OWNED_GROUP
    if is_initialized() or env_world_size() <= 1:
        return False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 asks for distributed training, but this torch build has no "
                           "torch.distributed support")
    if device_type == "cuda":
        torch.cuda.set_device(local_rank())
    store, rank_, size = _attempt_store()
    dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo", store=store, rank=rank_,
                            world_size=size)
    _OWNED_GROUP = True
    return True


def _attempt_store() -> tuple[dist.Store, int, int]:
    """``(store, rank, world size)`` of the ``env://`` rendezvous, the store's keys private to this attempt
    of the worker group (``TORCHELASTIC_RESTART_COUNT``, 0 when unset).

    ``torchrun --max-restarts`` keeps one store for all attempts; without the prefix a restarted group
    would read the addresses the lost group published there and fail to connect."""
    store, rank_, size = next(rendezvous("env://"))
    return dist.PrefixStore(f"attempt_{_env_int('TORCHELASTIC_RESTART_COUNT', 0)}", store), rank_, size


def shutdown() -> None:
    """Destroy the process group if :func:`init_from_env` created it; a caller's own group is left alone."""
    global _OWNED_GROUP
    if _OWNED_GROUP and is_initialized():
        dist.destroy_process_group()
    _OWNED_GROUP = False


def all_ranks(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is true on every rank (an all-reduce MIN).

    Ranks must agree before branching around a collective (skip a step, raise), or the others hang.

    Parameters
    ----------
    flag : bool
        This rank's flag.
    device : torch.device
        Where the collective runs (this rank's GPU with nccl).

    Returns
    -------
    bool
        The flag on every rank; ``flag`` itself in one process.
    """
    if world_size() == 1:
        return bool(flag)
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def mean_over_ranks(value: float, device: torch.device) -> float:
    """The mean of a number over ranks.

    Parameters
    ----------
    value : float
        This rank's number.
    device : torch.device
        Where the collective runs.

    Returns
    -------
    float
        The mean over ranks; ``value`` itself in one process.
    """
    if world_size() == 1:
        return float(value)
    total = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return float(total.item()) / world_size()


def gather_objects(obj: Any) -> list:
    """Every rank's picklable object, in rank order.

    Parameters
    ----------
    obj : Any
        This rank's object.

    Returns
    -------
    list
        One object per rank; ``[obj]`` in one process.
    """
    if world_size() == 1:
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if world_size() > 1:
        dist.barrier()


def require_initialized(feature: str = "gather_distributed=True") -> None:
    """Check that a process group is initialised.

    Parameters
    ----------
    feature : str
        What needs it, for the message (default ``"gather_distributed=True"``).

    Raises
    ------
    RuntimeError
        When no process group is initialised, saying how to launch one.
    """
    if not is_initialized():
        raise RuntimeError(
            f"{feature} requires an initialised torch.distributed process group (launch with "
            "`torchrun --nproc_per_node=N ...` and call torch.distributed.init_process_group() before "
            "the first loss call), but no process group is initialised in this process"
        )


def _check_tensor(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0:
        raise ValueError("x must have a leading batch dimension (shape (B, ...)), got a 0-d tensor")


def _check_same_shape(x: torch.Tensor) -> None:
    """Raise ``ValueError`` on every rank unless all ranks agree on ``(ndim, B, elements per row)``.

    One small all-gather of those three numbers: the gather itself needs equal sizes on all ranks,
    and an unequal last batch (``drop_last=False``) would otherwise hang or fail inside the backend
    with an obscure message.
    """
    meta = torch.tensor([x.dim(), x.shape[0], math.prod(x.shape[1:])], dtype=torch.int64, device=x.device)
    metas = [torch.empty_like(meta) for _ in range(world_size())]
    dist.all_gather(metas, meta)
    shapes = [tuple(m.tolist()) for m in metas]
    if any(s != shapes[0] for s in shapes):
        found = ", ".join(f"rank {k}: ndim={s[0]}, B={s[1]}, row size={s[2]}" for k, s in enumerate(shapes))
        raise ValueError(
            "x must have the same shape on every rank (equal per-rank batch size B; use "
            f"drop_last=True in the DataLoader/DistributedSampler), got {found}"
        )


def _gather(x: torch.Tensor) -> torch.Tensor:
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


class _AllGatherWithGrad(torch.autograd.Function):
    """Forward: concatenation of every rank's ``x``. Backward: all-reduce (sum), keep own slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.batch = x.shape[0]
        return _gather(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = rank() * ctx.batch
        return grad[start:start + ctx.batch]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``x`` along dim 0, with a gradient back to each rank's rows.

    Parameters
    ----------
    x : torch.Tensor
        This rank's (B, ...) tensor; the same shape on every rank.

    Returns
    -------
    torch.Tensor
        A (world_size·B, ...) tensor in rank order; ``x`` itself without a process group (or with one process).

    Raises
    ------
    TypeError
        When ``x`` is not a tensor.
    ValueError
        When ``x`` is 0-d, or (on every rank) when the ranks' shapes differ.

    Notes
    -----
    Gradient: the backward pass sums the incoming gradient over ranks (all-reduce) and returns this
    rank's rows, i.e. on rank k

    .. math::  \\partial x_k \\leftarrow \\sum_j \\partial L_j / \\partial y_{[kB:(k+1)B]},

    where ``L_j`` is the loss computed on rank j from the gathered ``y``. This is the gradient of
    ``Σ_j L_j`` with respect to the rows rank k owns: rank k's parameters influence every rank's loss,
    but only rank k's autograd graph reaches them, so the other ranks' contributions must be sent back.
    When every rank computes the same global loss ``L`` (the usual case) this gives ``W·∂L/∂x_k``, and
    DistributedDataParallel, which *averages* parameter gradients over the ``W`` ranks, turns
    ``(1/W) Σ_k W·J_kᵀ ∂L/∂x_k`` into exactly ``∂L/∂θ``: the gradient one process would get on the
    concatenated batch. Without the sum (returning only the local slice) DDP would produce ``∂L/∂θ / W``;
    averaging instead of summing would do the same.

    Collectives per call: one small shape check and one all-gather forward, one all-reduce of the
    gathered size backward. Every rank must call it, in the same order, with the same shape.
    """
    _check_tensor(x)
    if world_size() == 1:
        return x
    _check_same_shape(x)
    return _AllGatherWithGrad.apply(x)


def gather_nograd(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``x`` along dim 0 in rank order, without gradient.

    For per-sample metadata (labels, domain ids) that must line up with the rows gathered by
    :func:`all_gather_with_grad`. With the nccl backend ``x`` must live on this rank's GPU.

    Parameters
    ----------
    x : torch.Tensor
        This rank's (B, ...) tensor; the same shape on every rank.

    Returns
    -------
    torch.Tensor
        The detached (world_size·B, ...) concatenation; ``x`` detached without a process group.

    Raises
    ------
    TypeError
        When ``x`` is not a tensor.
    ValueError
        When ``x`` is 0-d, or the ranks' shapes differ.
    """
    _check_tensor(x)
    if world_size() == 1:
        return x.detach()
    _check_same_shape(x)
    with torch.no_grad():
        return _gather(x.detach())
