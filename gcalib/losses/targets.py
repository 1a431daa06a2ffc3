"""Target plans T: which pairs of a contrastive batch should be matched, and how strongly.

In the paper's words, the target plan is the transport plan the loss aligns the batch's transport plan with.
All builders return an (n, n) float tensor in the *blocked* layout (rows ``[view 1 of samples 0..B-1; view 2
of samples 0..B-1; …]``, ``n = V·B``, row ``r`` belongs to sample ``r mod B``) with a zero diagonal. Losses
use the row-normalised form ``T̂ = T / T𝟙``. The kinds (:data:`TARGET_KINDS`, built by :func:`target_plan`):

* ``"positive"`` — the views of one sample are matched (:func:`positive_pairs`; InfoNCE's target);
* ``"labels"`` — the views of samples of one class (:func:`from_labels`; supervised contrastive);
* ``"domain"`` — positives, plus weights α within a domain and β across domains (:func:`domain_plan`).

``rows=`` (a 1-D integer tensor of global row indices) returns only those rows, shape (len(rows), n), with a
zero at each row's self-pair ``(i, rows[i])``: a process's share of a row-sharded plan
(:func:`gcalib.losses.sharded.shard_rows`) without building the n × n matrix.
"""
from __future__ import annotations

from typing import Any, Optional, Union

import torch

from ..validation import check_choice, check_float_tensor, check_ids, check_int, check_nonnegative

__all__ = ["TARGET_KINDS", "target_plan", "positive_pairs", "from_labels", "domain_plan", "validate_target",
           "sample_index"]

TARGET_KINDS = ("positive", "labels", "domain")
"""The kinds of target plan :func:`target_plan` builds."""


def sample_index(batch_size: int, n_views: int = 2, device: Optional[torch.device] = None) -> torch.Tensor:
    """The sample of every row of the blocked layout: ``r ↦ r mod B``.

    Parameters
    ----------
    batch_size : int
        Samples per view ``B``.
    n_views : int
        Views ``V``.
    device : torch.device or None
        Device of the result.

    Returns
    -------
    torch.Tensor
        Shape (V·B,), int64.
    """
    return torch.arange(batch_size, device=device).repeat(n_views)


def _check_rows(rows: Optional[torch.Tensor], n: int) -> Optional[torch.Tensor]:
    """``rows`` if it is ``None`` or a 1-D integer tensor of distinct indices in ``[0, n)``."""
    if rows is None:
        return None
    if not isinstance(rows, torch.Tensor):
        raise TypeError(f"rows must be an integer tensor of global row indices, got {type(rows).__name__}")
    check_ids("rows", rows, what="global row indices")
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
    """The positive-pair target plan: ``T_rs = 1`` when ``r ≠ s`` are views of the same sample.

    Parameters
    ----------
    batch_size : int
        Samples per view ``B ≥ 2``.
    n_views : int
        Views ``V ≥ 2``; each row has ``V − 1`` positives.
    device : torch.device or None
        Device of the result.
    dtype : torch.dtype
        Floating dtype of the result.

    Returns
    -------
    torch.Tensor
        ``T``, shape (V·B, V·B), zero diagonal.

    Raises
    ------
    TypeError
        When ``batch_size`` or ``n_views`` is not an int.
    ValueError
        When either is below 2.

    Examples
    --------
    >>> positive_pairs(2).tolist()
    [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]
    """
    check_int("batch_size", batch_size, 2)
    check_int("n_views", n_views, 2)
    ids = sample_index(batch_size, n_views, device)
    return _zero_diagonal(_same(ids).to(dtype))


def from_labels(
    labels: torch.Tensor, n_views: int = 2, *, dtype: torch.dtype = torch.float32,
    rows: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """The class-aware target plan (supervised contrastive as a plan): ``T_rs = 1`` when the samples of rows
    ``r ≠ s`` have the same label.

    Parameters
    ----------
    labels : torch.Tensor
        One integer class id per sample, length ``B ≥ 2`` (a list is accepted).
    n_views : int
        Views ``V ≥ 2``.
    dtype : torch.dtype
        Floating dtype of the result.
    rows : torch.Tensor or None
        Only these global rows (see the module docstring).

    Returns
    -------
    torch.Tensor
        ``T``, shape (V·B, V·B), or (len(rows), V·B) with ``rows``; on ``labels``' device.

    Raises
    ------
    TypeError
        When ``labels`` is not of an integer dtype, or ``n_views`` not an int.
    ValueError
        When ``labels`` is not one-dimensional or has fewer than two ids, or ``rows`` is invalid.

    Examples
    --------
    >>> import torch
    >>> from_labels(torch.tensor([0, 1, 0])).sum(1).tolist()
    [3.0, 1.0, 3.0, 3.0, 1.0, 3.0]
    """
    labels = check_ids("labels", labels, what="one class id per sample", min_length=2)
    check_int("n_views", n_views, 2)
    rows = _check_rows(rows, n_views * labels.numel())
    return _zero_diagonal(_same(labels.repeat(n_views), rows).to(dtype), rows)


def domain_plan(
    domains: torch.Tensor, alpha: float, beta: float, n_views: int = 2, *, dtype: torch.dtype = torch.float32,
    rows: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """The domain-aware target plan: ``T = [positive pair] + α·[same domain, not positive] + β·[other domain]``.

    With ``α = β = 0`` this is :func:`positive_pairs`.

    Parameters
    ----------
    domains : torch.Tensor
        One integer domain id per sample, length ``B ≥ 2`` (a list is accepted).
    alpha : float
        Weight ``α ≥ 0`` of the other samples of a row's domain.
    beta : float
        Weight ``β ≥ 0`` of the samples of other domains.
    n_views : int
        Views ``V ≥ 2``.
    dtype : torch.dtype
        Floating dtype of the result.
    rows : torch.Tensor or None
        Only these global rows (see the module docstring).

    Returns
    -------
    torch.Tensor
        ``T``, shape (V·B, V·B), or (len(rows), V·B) with ``rows``; on ``domains``' device.

    Raises
    ------
    TypeError
        When ``domains`` is not of an integer dtype, or a number argument is not a number.
    ValueError
        When ``domains`` is not one-dimensional or has fewer than two ids, ``α`` or ``β`` is negative or not
        finite, or ``rows`` is invalid.

    Examples
    --------
    >>> import torch
    >>> plan = domain_plan(torch.tensor([0, 0, 1]), alpha=0.5, beta=0.1)
    >>> [round(float(t), 2) for t in plan[0]]
    [0.0, 0.5, 0.1, 1.0, 0.5, 0.1]
    """
    domains = check_ids("domains", domains, what="one domain id per sample", min_length=2)
    check_int("n_views", n_views, 2)
    check_nonnegative("alpha", alpha)
    check_nonnegative("beta", beta)
    batch_size = domains.numel()
    rows = _check_rows(rows, n_views * batch_size)
    positive = _same(sample_index(batch_size, n_views, domains.device), rows)
    same_domain = _same(domains.repeat(n_views), rows)
    plan = positive.to(dtype) + alpha * (same_domain & ~positive).to(dtype) + beta * (~same_domain).to(dtype)
    return _zero_diagonal(plan, rows)


def _positive_rows(batch_size: int, n_views: int, rows: torch.Tensor, device: Optional[torch.device],
                   dtype: torch.dtype) -> torch.Tensor:
    """Rows ``rows`` of :func:`positive_pairs`."""
    check_int("batch_size", batch_size, 2)
    check_int("n_views", n_views, 2)
    rows = _check_rows(rows, n_views * batch_size)
    ids = sample_index(batch_size, n_views, rows.device if device is None else device)
    rows = rows.to(ids.device)
    return _zero_diagonal(_same(ids, rows).to(dtype), rows)


def target_plan(
    kind: str,
    batch_size: Optional[int] = None,
    *,
    labels: Any = None,
    domains: Any = None,
    alpha: float = 0.0,
    beta: float = 0.0,
    n_views: int = 2,
    rows: Optional[torch.Tensor] = None,
    device: Union[str, torch.device, None] = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The target plan of one of the :data:`TARGET_KINDS` for a batch, from its per-sample ids.

    ``"positive"`` is :func:`positive_pairs`, ``"labels"`` :func:`from_labels` and ``"domain"``
    :func:`domain_plan`.

    Parameters
    ----------
    kind : {"positive", "labels", "domain"}
        The kind of plan.
    batch_size : int or None
        Samples per view ``B``; needed for ``"positive"`` unless ``labels`` or ``domains`` gives it.
    labels : tensor-like or None
        One integer class id per sample; needed for ``"labels"``.
    domains : tensor-like or None
        One integer domain id per sample; needed for ``"domain"``.
    alpha, beta : float
        Domain weights of ``"domain"`` (ignored otherwise).
    n_views : int
        Views ``V ≥ 2``.
    rows : torch.Tensor or None
        Only these global rows (see the module docstring).
    device : str, torch.device or None
        Device of the result (default: that of the ids, else the CPU).
    dtype : torch.dtype
        Floating dtype of the result.

    Returns
    -------
    torch.Tensor
        ``T``, shape (V·B, V·B), or (len(rows), V·B) with ``rows``.

    Raises
    ------
    TypeError
        When the ids are not integer, or a number argument is not a number.
    ValueError
        When ``kind`` is unknown, the ids it needs are missing or invalid, or a number is out of range.

    Examples
    --------
    >>> import torch
    >>> torch.equal(target_plan("positive", 3), positive_pairs(3))
    True
    >>> target_plan("domain", domains=torch.tensor([0, 0, 1]), alpha=0.5).shape
    torch.Size([6, 6])
    >>> target_plan("labels", 3)
    Traceback (most recent call last):
    ...
    ValueError: kind='labels' needs labels= (one class id per sample)
    """
    check_choice("target kind", kind, TARGET_KINDS)
    if kind == "labels":
        if labels is None:
            raise ValueError("kind='labels' needs labels= (one class id per sample)")
        labels = check_ids("labels", labels, what="one class id per sample", length=batch_size)
        return from_labels(labels if device is None else labels.to(device), n_views, dtype=dtype, rows=rows)
    if kind == "domain":
        if domains is None:
            raise ValueError("kind='domain' needs domains= (one domain id per sample)")
        domains = check_ids("domains", domains, what="one domain id per sample", length=batch_size)
        return domain_plan(domains if device is None else domains.to(device), alpha, beta, n_views, dtype=dtype,
                           rows=rows)
    if batch_size is None:
        given = labels if labels is not None else domains
        if given is None:
            raise ValueError("kind='positive' needs batch_size= (or labels= or domains= to count the samples)")
        batch_size = check_ids("labels" if labels is not None else "domains", given).numel()
    if rows is not None:
        return _positive_rows(batch_size, n_views, rows, device, dtype)
    return positive_pairs(batch_size, n_views, device=device, dtype=dtype)


def validate_target(target: torch.Tensor, n: int, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Check a user's target plan for a batch of ``n`` rows and return it unchanged.

    Requirements: a floating (n, n) tensor, finite, non-negative, zero diagonal (self-pairs are not
    candidates), and at least one positive entry per row (a row without mass has no target).

    Parameters
    ----------
    target : torch.Tensor
        The target plan T.
    n : int
        Rows of the batch, ``V·B``.
    rows : torch.Tensor or None
        ``target`` holds only these global rows of such a plan: shape (len(rows), n), zero at each self-pair
        ``(i, rows[i])``.

    Returns
    -------
    torch.Tensor
        ``target``.

    Raises
    ------
    TypeError
        When ``target`` is not a floating-point tensor, or ``rows`` not an integer tensor.
    ValueError
        When a requirement above fails (the message names the first offending entry or rows).
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
