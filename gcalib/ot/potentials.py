"""Differentiable Sinkhorn potentials without a stored iteration graph.

:func:`potentials` runs the scaling-domain solve (:mod:`gcalib.ot.scaling`) outside autograd and returns
``(φ, γ)`` from an autograd function whose backward is the fused adjoint (:mod:`gcalib.ot.adjoint`, the exact
gradient of the unrolled iterations) or implicit differentiation (:mod:`gcalib.ot.implicit`).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.autograd.function import once_differentiable

from .adjoint import fused_backward
from .implicit import implicit_backward
from .residual import Marginal
from .scaling import Trace, solve
from ..validation import check_choice

__all__ = ["SOLVE_GRADS", "potentials"]

SOLVE_GRADS = ("fused", "implicit", "detach")
"""Gradient modes of :func:`potentials`."""


def _reduce(grad: Optional[torch.Tensor], like: Marginal) -> Optional[torch.Tensor]:
    return grad.sum_to_size(like.shape) if grad is not None and isinstance(like, torch.Tensor) and like.requires_grad else None


class _TracedPotentials(torch.autograd.Function):
    """``(φ, γ)`` of a trace; subclasses give ``gradients(ctx, grad_phi, grad_gamma)`` for the backward."""

    @staticmethod
    def forward(ctx, log_kernel, log_a, log_b, trace: Trace):
        ctx.trace = trace
        ctx.marginals = (log_a, log_b)
        return trace.phi, trace.gamma

    @classmethod
    @once_differentiable
    def backward(cls, ctx, grad_phi, grad_gamma):
        with torch.autocast(device_type=ctx.trace.phi.device.type, enabled=False):
            cost_grad, grad_a, grad_b = cls.gradients(ctx, grad_phi, grad_gamma)
        log_a, log_b = ctx.marginals
        return cost_grad, _reduce(grad_a, log_a), _reduce(grad_b, log_b), None


class _FusedPotentials(_TracedPotentials):
    """``(φ, γ)`` of a trace, with the exact gradient of the unrolled iterations (:func:`fused_backward`)."""

    @staticmethod
    def gradients(ctx, grad_phi, grad_gamma):
        marginals = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        return fused_backward(ctx.trace, grad_phi, grad_gamma, marginals=marginals)


class _ImplicitPotentials(_TracedPotentials):
    """``(φ, γ)`` of a trace, with implicit gradients at the fixed point (:func:`implicit_backward`)."""

    @staticmethod
    def gradients(ctx, grad_phi, grad_gamma):
        return implicit_backward(ctx.trace, grad_phi, grad_gamma)


def potentials(
    log_kernel: torch.Tensor,
    log_a: Marginal,
    log_b: Marginal,
    factor_a: float,
    factor_b: float,
    n_iter: Optional[int],
    *,
    grad: str = "fused",
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> tuple[torch.Tensor, torch.Tensor, int, Optional[bool]]:
    """Scaled Sinkhorn potentials ``(φ, γ) = (f/ε, g/ε)``, differentiable without a stored iteration graph.

    Runs :func:`gcalib.ot.scaling.solve` and attaches the gradient ``grad`` asks for.

    Parameters
    ----------
    log_kernel : torch.Tensor
        ``L = −C/ε``, shape (..., n, m).
    log_a, log_b : torch.Tensor or float
        Log-weights of the marginals.
    factor_a, factor_b : float
        Relaxation factors ``κ = ρ/(ρ + ε)`` in (0, 1].
    n_iter : int or None
        Number of iterations, or ``None`` to iterate until the residual is below ``tol`` (or ``max_iter``).
    grad : {"fused", "implicit", "detach"}
        ``"fused"``: the exact gradient of the unrolled iterations; ``"implicit"``: implicit differentiation
        at the returned potentials; ``"detach"``: no gradient.
    tol : float
        Residual to reach when ``n_iter`` is ``None``.
    max_iter : int
        Most iterations when ``n_iter`` is ``None``.

    Returns
    -------
    phi, gamma : torch.Tensor
        The scaled potentials, (..., n) and (..., m).
    iterations : int
        Iterations run.
    converged : bool or None
        Whether the residual fell below ``tol``; ``None`` for a fixed ``n_iter``.

    Raises
    ------
    ValueError
        When ``grad`` is not one of :data:`SOLVE_GRADS`.
    """
    check_choice("grad", grad, SOLVE_GRADS)
    trace = solve(log_kernel.detach(), log_a, log_b, factor_a, factor_b, n_iter, tol=tol, max_iter=max_iter,
                  record=grad == "fused")
    differentiable = [t for t in (log_kernel, log_a, log_b) if isinstance(t, torch.Tensor) and t.requires_grad]
    if grad == "detach" or not trace.steps or not differentiable or not torch.is_grad_enabled():
        return trace.phi, trace.gamma, trace.iterations, trace.converged
    if grad == "implicit":
        trace.refs[-1].matrix = None
    function = _FusedPotentials if grad == "fused" else _ImplicitPotentials
    phi, gamma = function.apply(log_kernel, log_a, log_b, trace)
    return phi, gamma, trace.iterations, trace.converged
