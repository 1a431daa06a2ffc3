"""The fused adjoint: the exact gradient of unrolled Sinkhorn iterations from a scaling-domain trace.

Reverse mode through the half-steps of :mod:`gcalib.ot.scaling` (same notation). With ``ḡ`` the adjoint of a
half-step's ``lse`` (``ḡ = −κ·v̄'`` plus any direct use) and ``S`` its softmax matrix,

    L̄ += diag(ḡ)·S (row step) or S·diag(ḡ) (column step),     v̄ += Sᵀ·ḡ (row step) or S·ḡ (column step).

Each half-step is one matrix-vector product with its reference ``M`` (``S = diag(1/s)·M·diag(y)``); the cost
contributions of all half-steps that share ``M`` add up to ``M ∘ (U·Vᵀ)`` with ``U, V`` stacking two vectors
per half-step: one low-rank product and one elementwise pass. Earlier references (only made when a fast step
failed) are rebuilt from ``L``; the backward holds a fixed number of (n, m) matrices (the reference and the
gradient when none was rebuilt), whatever the number of iterations. For a row-sharded trace the adjoint of
``γ`` through a row half-step is summed over processes by the trace's :class:`gcalib.ot.scaling.RowReduction`.
"""
from __future__ import annotations

from typing import Optional

import torch

from .scaling import Trace, matvec

__all__ = ["fused_backward"]


def _flush(cost_grad: Optional[torch.Tensor], matrix: Optional[torch.Tensor], left: list[torch.Tensor],
           right: list[torch.Tensor]) -> Optional[torch.Tensor]:
    """Add ``M ∘ (U·Vᵀ)`` for one reference's stacked vectors to the running cost gradient."""
    if not left:
        return cost_grad
    block = torch.matmul(torch.stack(left, -1), torch.stack(right, -2)).mul_(matrix)
    return block if cost_grad is None else cost_grad.add_(block)


def fused_backward(
    trace: Trace,
    grad_phi: Optional[torch.Tensor],
    grad_gamma: Optional[torch.Tensor],
    grad_projection: Optional[torch.Tensor] = None,
    marginals: bool = True,
) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Exact reverse mode through the traced half-steps (see the module docstring).

    Parameters
    ----------
    trace : Trace
        A trace of :func:`gcalib.ot.scaling.solve` with ``record=True``.
    grad_phi : torch.Tensor or None
        Adjoint of the returned ``φ`` (``None`` is zero); for a row-sharded trace, of this process's rows.
    grad_gamma : torch.Tensor or None
        Adjoint of the returned ``γ`` (``None`` is zero); for a row-sharded trace, already summed over processes.
    grad_projection : torch.Tensor or None
        Adjoint of the final row projection's ``lse`` (traces solved with ``project=True``).
    marginals : bool
        Also return the gradients with respect to ``log a`` and ``log b``.

    Returns
    -------
    cost_grad : torch.Tensor or None
        ``L̄``, the gradient with respect to ``L``; ``None`` when the trace has no half-steps.
    grad_log_a, grad_log_b : torch.Tensor or None
        Gradients with respect to ``log a`` and ``log b`` at full (..., n) and (..., m) shapes; ``None``
        unless ``marginals``.
    """
    steps, refs = trace.steps, trace.refs
    carry = torch.zeros_like(trace.gamma) if grad_gamma is None else grad_gamma.clone()
    grad_log_a = torch.zeros_like(trace.phi) if marginals else None
    grad_log_b = torch.zeros_like(trace.gamma) if marginals else None
    cost_grad, matrix, group = None, None, None
    left: list[torch.Tensor] = []
    right: list[torch.Tensor] = []
    n_potential = len(steps) - int(trace.projected)
    for h in range(len(steps) - 1, -1, -1):
        step = steps[h]
        if step.ref != group:
            cost_grad = _flush(cost_grad, matrix, left, right)
            left, right, group = [], [], step.ref
            matrix = refs[group].matrix
            if matrix is None:
                matrix = refs[group].rebuild(trace.kernel(), trace.rows)
        if h == n_potential:
            grad_lse = grad_projection
        else:
            if h == n_potential - 2 and grad_phi is not None:
                carry = carry + grad_phi
            factor = trace.factor_a if step.row_step else trace.factor_b
            if marginals:
                (grad_log_a if step.row_step else grad_log_b).add_(carry, alpha=factor)
            grad_lse = carry.mul(-factor)
        weighted = grad_lse / step.sums  # S = diag(1/s)·M·diag(scale) (row step), diag(scale)·M·diag(1/s) (column)
        left.append(weighted if step.row_step else step.scale)
        right.append(step.scale if step.row_step else weighted)
        if h == 0:  # the first step's input γ₀ = 0 is a constant
            break
        inner = matvec(matrix, weighted, transpose=step.row_step)
        inner = (trace.rows.sum(inner) if step.row_step else inner).mul_(step.scale)
        carry = carry + inner if h == n_potential else inner
    cost_grad = _flush(cost_grad, matrix, left, right)
    return cost_grad, grad_log_a, grad_log_b
