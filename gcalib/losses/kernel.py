"""From a contrastive batch to the log Gibbs kernel of its transport problem.

For V views of B samples stacked in the *blocked* layout (rows ``[view 1 of samples 0..B-1; view 2; …]``,
``n = V·B``) with unit rows ``z``, the cost is ``C = 1 − z zᵀ`` with ``C_rr = +∞`` (a sample is no candidate
for itself), and the log-kernel is ``log K = −C/ε``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..validation import check_float_tensor

__all__ = ["embed_views", "similarity_log_kernel", "contrastive_log_kernel"]


def embed_views(views: Sequence[torch.Tensor]) -> torch.Tensor:
    """Validate V views, L2-normalise their rows and stack them in the blocked layout.

    Parameters
    ----------
    views : sequence of torch.Tensor
        At least two floating (B, D) tensors with B ≥ 2, of one shape, dtype and device, finite, with
        non-zero rows.

    Returns
    -------
    torch.Tensor
        ``z``, shape (V·B, D), unit rows; float32 (float64 stays float64), also under autocast.

    Raises
    ------
    TypeError
        When a view is not a floating-point tensor.
    ValueError
        When there are fewer than two views or samples, the views differ in shape, device or dtype, or hold
        NaN, inf or a zero row.
    """
    if len(views) < 2:
        raise ValueError(f"need at least two views (each a (batch, dim) tensor), got {len(views)}")
    first = views[0]
    for i, view in enumerate(views):
        check_float_tensor(f"view {i}", view)
        if view.dim() != 2:
            raise ValueError(f"view {i} must have shape (batch, dim), got {tuple(view.shape)}")
        if view.shape != first.shape:
            raise ValueError(f"all views must have the same shape; view 0 is {tuple(first.shape)}, view {i} is {tuple(view.shape)}")
        if view.device != first.device:
            raise ValueError(f"all views must be on one device; view 0 is on {first.device}, view {i} on {view.device}")
        if view.dtype != first.dtype:
            raise ValueError(f"all views must share a dtype; view 0 is {first.dtype}, view {i} is {view.dtype}")
    if first.shape[0] < 2:
        raise ValueError(f"need at least two samples per view (negatives come from the batch), got batch size {first.shape[0]}")
    if first.shape[1] < 1:
        raise ValueError("views must have at least one feature dimension")
    dtype = torch.float64 if first.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=first.device.type, enabled=False):
        h = torch.cat([view.to(dtype) for view in views])
        batch_size = first.shape[0]
        if not torch.isfinite(h).all():
            row, col = (int(i) for i in (~torch.isfinite(h)).nonzero()[0])
            raise ValueError(
                f"views must be finite, got NaN or inf: view {row // batch_size}, sample {row % batch_size}, "
                f"column {col} is {float(h[row, col])}; check the encoder outputs (lower the lr, check inputs)"
            )
        norms = h.norm(dim=1, keepdim=True)
        if (norms == 0).any():
            row = int((norms.flatten() == 0).nonzero()[0])
            raise ValueError(
                f"views must have non-zero rows (the cosine similarity of a zero vector is undefined), got zero "
                f"norm at view {row // batch_size}, sample {row % batch_size}"
            )
        return h / norms


def similarity_log_kernel(similarity: torch.Tensor, eps: float) -> torch.Tensor:
    """The log-kernel of a cosine-similarity matrix: ``log K = −C/ε = (S − 1)/ε``, ``log K_rr = −∞``.

    Parameters
    ----------
    similarity : torch.Tensor
        ``S``, shape (n, n), e.g. ``z zᵀ`` for unit rows ``z``. Not modified; gradients flow to it.
    eps : float
        Entropic regularisation ``ε > 0``.

    Returns
    -------
    torch.Tensor
        ``log K``, shape (n, n), with ``−∞`` on the diagonal (self-pairs are no candidates).
    """
    return ((similarity - 1.0) / eps).fill_diagonal_(-math.inf)


def contrastive_log_kernel(z: torch.Tensor, eps: float) -> torch.Tensor:
    """The log-kernel of unit rows: :func:`similarity_log_kernel` of ``S = z zᵀ``.

    Parameters
    ----------
    z : torch.Tensor
        Unit rows in the blocked layout, shape (n, d) (:func:`embed_views`).
    eps : float
        Entropic regularisation ``ε > 0``.

    Returns
    -------
    torch.Tensor
        ``(z zᵀ − 1)/ε`` with ``−∞`` on the diagonal, shape (n, n).
    """
    return similarity_log_kernel(z @ z.T, eps)
