"""Implicit differentiation of Sinkhorn: gradients from the optimality conditions at the returned potentials.

The output ``(φ, γ)`` of a solve (notation of :mod:`gcalib.ot.scaling`) is treated as a fixed point
``φ = κ_a(log a − LSE_j(L + γ))``, ``γ = κ_b(log b − LSE_i(L + φ))``. With the plan ``P = exp(L + φ ⊕ γ)``,
its marginals ``r = P𝟙``, ``c = Pᵀ𝟙`` and ``κ = κ_a κ_b``, the adjoint ``(λ, μ = c∘ν)`` solves

    (diag(c) − κ Pᵀ diag(1/r) P)·ν = γ̄ − κ_a Pᵀ(φ̄/r)

(symmetric positive semi-definite: conjugate gradients preconditioned by ``diag(c)``), then
``λ = φ̄ − κ_b P ν`` and ``L̄ = −P ∘ (κ_a λ/r ⊕ κ_b ν)``. Balanced problems (κ = 1) fix the potentials only up
to ``(φ + t, γ − t)``; implicit gradients then hold ``⟨c, γ⟩`` fixed, so they are exact for every output
invariant to that shift (plan, log-plan, row-projected plan) and differ from unrolled gradients only along
the shift. The memory does not depend on the number of iterations the forward ran.
"""
from __future__ import annotations

import warnings
from typing import Callable, Optional

import torch

from .scaling import Trace, matvec

__all__ = ["implicit_backward"]


def implicit_backward(
    trace: Trace,
    grad_phi: Optional[torch.Tensor],
    grad_gamma: Optional[torch.Tensor],
    tol: Optional[float] = None,
    max_iter: int = 500,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients at ``(φ, γ)`` taken as a fixed point of the Sinkhorn updates (see the module docstring).

    Parameters
    ----------
    trace : Trace
        A trace of :func:`gcalib.ot.scaling.solve`, ideally run to convergence.
    grad_phi, grad_gamma : torch.Tensor or None
        Adjoints of the returned potentials (``None`` is zero).
    tol : float or None
        Relative residual at which conjugate gradients stop; default ``1e-10`` in float64, ``1e-6`` otherwise.
    max_iter : int
        Most conjugate-gradient iterations; a ``RuntimeWarning`` says when ``tol`` was not reached.

    Returns
    -------
    cost_grad : torch.Tensor
        ``L̄``, the gradient with respect to ``L``.
    grad_log_a, grad_log_b : torch.Tensor
        Gradients with respect to ``log a`` (..., n) and ``log b`` (..., m).
    """
    phi, gamma = trace.phi, trace.gamma
    grad_phi = torch.zeros_like(phi) if grad_phi is None else grad_phi
    grad_gamma = torch.zeros_like(gamma) if grad_gamma is None else grad_gamma
    if tol is None:
        tol = 1e-10 if phi.dtype == torch.float64 else 1e-6
    plan = torch.add(trace.kernel(), phi.unsqueeze(-1)).add_(gamma.unsqueeze(-2)).exp_()
    rows, cols = plan.sum(-1), plan.sum(-2)
    fa, fb = trace.factor_a, trace.factor_b
    kappa = fa * fb

    def operator(v: torch.Tensor) -> torch.Tensor:
        return cols * v - kappa * matvec(plan, matvec(plan, v, transpose=False) / rows, transpose=True)

    rhs = grad_gamma - fa * matvec(plan, grad_phi / rows, transpose=True)
    if kappa == 1.0:
        rhs = rhs - rhs.sum(-1, keepdim=True) * cols / cols.sum(-1, keepdim=True)
    nu = _conjugate_gradient(operator, rhs, cols, tol, max_iter)
    lam = grad_phi - fb * matvec(plan, nu, transpose=False)
    cost_grad = plan.mul_((fa * lam / rows).unsqueeze(-1) + (fb * nu).unsqueeze(-2)).neg_()
    return cost_grad, fa * lam, fb * cols * nu


def _conjugate_gradient(operator: Callable[[torch.Tensor], torch.Tensor], rhs: torch.Tensor, diagonal: torch.Tensor,
                        tol: float, max_iter: int) -> torch.Tensor:
    """Solve ``operator(x) = rhs`` (symmetric positive semi-definite, batched over leading dims) by
    conjugate gradients preconditioned with ``diag(diagonal)``."""

    def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u * v).sum(-1, keepdim=True)

    x = torch.zeros_like(rhs)
    residual = rhs.clone()
    goal = tol * rhs.norm(dim=-1, keepdim=True)
    direction = residual / diagonal
    rz = dot(residual, direction)
    for _ in range(max_iter):
        if bool((residual.norm(dim=-1, keepdim=True) <= goal).all()):
            return x
        applied = operator(direction)
        curvature = dot(direction, applied)
        step = torch.where(curvature > 0, rz / curvature, torch.zeros_like(rz))
        x = x + step * direction
        residual = residual - step * applied
        preconditioned = residual / diagonal
        rz_next = dot(residual, preconditioned)
        direction = preconditioned + torch.where(rz > 0, rz_next / rz, torch.zeros_like(rz)) * direction
        rz = rz_next
    relative = float((residual.norm(dim=-1, keepdim=True)
                      / rhs.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(rhs.dtype).tiny)).max())
    if relative > tol:
        warnings.warn(f"implicit Sinkhorn gradient: conjugate gradients stopped after {max_iter} iterations at "
                      f"relative residual {relative:.2e} > tol {tol:.1e}; iterate the forward closer to convergence",
                      RuntimeWarning, stacklevel=3)
    return x
