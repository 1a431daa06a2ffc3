"""Target plans: which pairs of a contrastive batch should be matched, and how strongly.

All builders return an (n, n) float tensor in the *blocked* layout (rows ``[view 1 of samples
0..B-1; view 2 of samples 0..B-1; …]``, ``n = V·B``, row ``r`` belongs to sample ``r mod B``) with a
zero diagonal. Losses use the row-normalised form ``T̂ = T / T𝟙``.

``rows=`` (a 1-D integer tensor of global row indices) returns only those rows, shape (len(rows), n), with a
zero at each row's self-pair ``(i, rows[i])``: a process's share of a row-sharded plan
(:func:`gcalib.losses.sharded.shard_rows`) without building the n × n matrix.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..validation import check_float_tensor, check_int, check_nonnegative

__all__ = ["positive_pairs", "from_labels", "domain_plan", "validate_target", "sample_index"]


def _check_ids(name: str, ids: torch.Tensor) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor):
        ids = torch.as_tensor(ids)
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor (one id per sample), got dtype {ids.dtype}")
    if ids.dim() != 1:
        raise ValueError(f"{name} must be one-dimensional (one id per sample), got shape {tuple(ids.shape)}")
    if ids.numel() < 2:
        raise ValueError(f"{name} needs at least two samples, got {ids.numel()}")
    return ids


def sample_index(batch_size: int, n_views: int = 2, device: Optional[torch.device] = None) -> torch.Tensor:
    """Sample id of every row of the blocked layout: ``r ↦ r mod B``."""
    return torch.arange(batch_size, device=device).repeat(n_views)


def _check_rows(rows: Optional[torch.Tensor], n: int) -> Optional[torch.Tensor]:
    """``rows`` if it is ``None`` or a 1-D integer tensor of distinct indices in ``[0, n)``."""
    if rows is None:
        return None
    if not isinstance(rows, torch.Tensor) or rows.dtype.is_floating_point or rows.dtype.is_complex or rows.dtype == torch.bool:
        raise TypeError(f"rows must be an integer tensor of global row indices, got {type(rows).__name__}"
                        + (f" of dtype {rows.dtype}" if isinstance(rows, torch.Tensor) else ""))
    if rows.dim() != 1 or rows.numel() == 0:
        raise ValueError(f"rows must be a non-empty 1-D tensor of global row indices, got shape {tuple(rows.shape)}")
    if int(rows.min()) < 0 or int(rows.max()) >= n:
        raise ValueError(f"rows must hold indices in [0, {n}) for a plan of {n} rows, got values from "
                         f"{int(rows.min())} to {int(rows.max())}")
    if rows.unique().numel() != rows.numel():
        raise ValueError("rows must hold distinct indices, got repeated ones")
    return rows


def _same(ids: torch.Tensor, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``[ids_r == ids_s]`` for ``r`` in ``rows`` (default all) and every ``s``."""
    return (ids if rows is None else ids[rows]).unsqueeze(1) == ids.unsqueeze(0)


def _self_pairs(plan: torch.Tensor, rows: Optional[torch.Tensor]) -> torch.Tensor:
    """The entries ``(i, rows[i])`` of ``plan`` (its diagonal when ``rows`` is ``None``)."""
    return plan.diagonal() if rows is None else plan[torch.arange(len(rows), device=plan.device), rows]


def _zero_diagonal(plan: torch.Tensor, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    if rows is None:
        return plan.fill_diagonal_(0.0)
    plan[torch.arange(len(rows), device=plan.device), rows] = 0.0
    return plan


def positive_pairs(
    batch_size: int, n_views: int = 2, *, device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``T_rs = 1`` when ``r ≠ s`` are views of the same sample (V − 1 positives per row)."""
    check_int("batch_size", batch_size, 2)
    check_int("n_views", n_views, 2)
    ids = sample_index(batch_size, n_views, device)
    return _zero_diagonal(_same(ids).to(dtype))


def from_labels(
    labels: torch.Tensor, n_views: int = 2, *, dtype: torch.dtype = torch.float32,
    rows: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Class-aware plan (supervised contrastive as a plan): ``T_rs = 1`` when the labels of the
    samples of rows ``r ≠ s`` match. ``labels`` holds one class id per sample (length B); ``rows``: only
    these rows (see module docstring)."""
    labels = _check_ids("labels", labels)
    check_int("n_views", n_views, 2)
    rows = _check_rows(rows, n_views * labels.numel())
    return _zero_diagonal(_same(labels.repeat(n_views), rows).to(dtype), rows)


def domain_plan(
    domains: torch.Tensor, alpha: float, beta: float, n_views: int = 2, *, dtype: torch.dtype = torch.float32,
    rows: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Domain-aware plan: ``T = [positive pair] + α·[same domain, not positive] + β·[other domain]``.

    ``domains`` holds one domain id per sample (length B); ``α, β ≥ 0``. With ``α = β = 0`` this is
    :func:`positive_pairs`. ``rows``: only these rows (see module docstring).
    """
    domains = _check_ids("domains", domains)
    check_int("n_views", n_views, 2)
    check_nonnegative("alpha", alpha)
    check_nonnegative("beta", beta)
    batch_size = domains.numel()
    rows = _check_rows(rows, n_views * batch_size)
    positive = _same(sample_index(batch_size, n_views, domains.device), rows)
    same_domain = _same(domains.repeat(n_views), rows)
    plan = positive.to(dtype) + alpha * (same_domain & ~positive).to(dtype) + beta * (~same_domain).to(dtype)
    return _zero_diagonal(plan, rows)


def validate_target(target: torch.Tensor, n: int, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Check a user target plan for a batch of ``n`` rows and return it unchanged.

    Requirements: a floating (n, n) tensor, finite, non-negative, zero diagonal (self-pairs are not
    candidates), and at least one positive entry per row (a row without mass has no target). With
    ``rows``: the rows ``rows`` of such a plan, (len(rows), n), zero at each self-pair ``(i, rows[i])``.
    """
    check_float_tensor("target", target)
    rows = _check_rows(rows, n)
    if rows is None and target.shape != (n, n):
        raise ValueError(
            f"target must have shape ({n}, {n}) = (n_views*batch_size)^2 in the blocked layout, "
            f"got {tuple(target.shape)}"
        )
    if rows is not None and target.shape != (len(rows), n):
        raise ValueError(
            f"target must have shape ({len(rows)}, {n}) with shard_plan=True: this process's {len(rows)} rows "
            f"(gcalib.losses.sharded.shard_rows) of the ({n}, {n}) plan in the blocked layout, got {tuple(target.shape)}"
        )
    if not torch.isfinite(target).all():
        row, col = (int(i) for i in (~torch.isfinite(target)).nonzero()[0])
        raise ValueError(f"target must be finite, got NaN or inf: target[{row}, {col}] = {float(target[row, col])}")
    if (target < 0).any():
        raise ValueError(f"target must be non-negative; its smallest entry is {float(target.min()):.4g}")
    diagonal = _self_pairs(target, rows)
    if (diagonal != 0).any():
        row = int((diagonal != 0).nonzero()[0])
        col = row if rows is None else int(rows[row])
        fix = "target.fill_diagonal_(0)" if rows is None else "target[torch.arange(len(rows)), rows] = 0"
        raise ValueError(
            f"target must have a zero diagonal (self-pairs are not candidates); "
            f"target[{row}, {col}] = {float(diagonal[row]):.4g}. Use {fix}"
        )
    empty = target.sum(dim=1) <= 0
    if empty.any():
        rows = empty.nonzero().flatten()[:5].tolist()
        raise ValueError(f"every target row needs positive mass; rows {rows} sum to zero")
    return target
