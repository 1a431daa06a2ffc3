"""Entropic optimal transport in the log domain, batched over leading dimensions.

The problem solved by :func:`sinkhorn` is

.. math::

    \\min_{P \\ge 0} \\langle C, P \\rangle + \\varepsilon \\sum_{ij} P_{ij} (\\log P_{ij} - 1)
        + \\rho_a \\mathrm{KL}(P\\mathbb{1} \\| a) + \\rho_b \\mathrm{KL}(P^\\top\\mathbb{1} \\| b),

where ``reg_a = ρ_a = ∞`` (the default) turns the first penalty into the hard constraint
``P𝟙 = a`` and likewise for ``reg_b``. The optimal plan is ``P = exp((f ⊕ g − C)/ε)``
with dual potentials ``f``, ``g`` obtained by alternating the updates

.. math::

    f \\leftarrow \\tfrac{\\rho_a}{\\rho_a + \\varepsilon}\\,
        \\varepsilon\\big(\\log a - \\mathrm{LSE}_j((g_j - C_{ij})/\\varepsilon)\\big),\\qquad
    g \\leftarrow \\tfrac{\\rho_b}{\\rho_b + \\varepsilon}\\,
        \\varepsilon\\big(\\log b - \\mathrm{LSE}_i((f_i - C_{ij})/\\varepsilon)\\big).

One *iteration* is one ``f`` update followed by one ``g`` update. ``cost`` may hold ``+inf`` for
forbidden pairs (their plan entries are exactly zero).

Gradient modes (``grad``): ``"unroll"`` differentiates the iterations with autograd (the reference; memory
grows with the number of iterations), ``"fused"`` gives the same gradient from a custom backward that
stores vectors only (:mod:`gcalib.ot.engine`), ``"implicit"`` differentiates the optimality
conditions at the returned potentials, and ``"detach"`` lets gradients reach ``cost`` only through
``log_plan``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from .engine import potentials
from ..validation import check_choice, check_float_tensor, check_int, check_positive, check_real

__all__ = ["OTResult", "sinkhorn", "iterate", "relaxation_factor", "check_relaxation", "GRAD_MODES"]

GRAD_MODES = ("unroll", "fused", "implicit", "detach")


@dataclass(frozen=True)
class OTResult:
    """Output of :func:`sinkhorn`: the potentials with the problem they solve, and diagnostics.

    ``plan = exp(log_plan)`` with ``log_plan = (f[..., :, None] + g[..., None, :] − cost)/ε``.
    ``converged`` is ``None`` when a fixed ``n_iter`` was asked for.
    """

    f: torch.Tensor
    g: torch.Tensor
    cost: torch.Tensor
    eps: float
    log_a: torch.Tensor
    log_b: torch.Tensor
    reg_a: float
    reg_b: float
    n_iter: int
    converged: Optional[bool]

    @property
    def log_plan(self) -> torch.Tensor:
        """``(f_i + g_j − C_ij)/ε``, ``−inf`` on forbidden pairs."""
        return (self.f.unsqueeze(-1) + self.g.unsqueeze(-2) - self.cost) / self.eps

    @property
    def plan(self) -> torch.Tensor:
        """The transport plan ``P = exp(log_plan)``."""
        return self.log_plan.exp()

    @property
    def marginal_error(self) -> float:
        """``max_batch ‖P𝟙 − a·e^{−f/ρ_a}‖₁ + ‖Pᵀ𝟙 − b·e^{−g/ρ_b}‖₁``, zero exactly at the solution.

        For a hard side (ρ = ∞) the term is the plain marginal violation; for a relaxed side it is the
        residual of the first-order condition ``P𝟙 = a·exp(−f/ρ_a)``.
        """
        with torch.no_grad():
            return _marginal_error(self.f, self.g, self.cost, self.eps, self.log_a, self.log_b, self.reg_a, self.reg_b)


def relaxation_factor(reg: float, eps: float) -> float:
    """``ρ/(ρ + ε)``, the factor an unbalanced potential update applies (1 for a hard marginal)."""
    return 1.0 if math.isinf(reg) else reg / (reg + eps)


def check_relaxation(name: str, reg: float) -> float:
    """A marginal relaxation ρ: a number > 0, ``float('inf')`` for a hard marginal."""
    return check_real(name, reg, lambda v: v > 0, "a number > 0 (float('inf') for a hard marginal)")


def _working_dtype(tensor: torch.Tensor) -> torch.dtype:
    """float64 stays float64 (gradchecks); every other floating dtype is solved in float32."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def _marginal(name: str, weights: Optional[torch.Tensor], size: int, like: torch.Tensor) -> torch.Tensor:
    """Return log-weights broadcastable to ``like``'s leading dims plus ``size``."""
    if weights is None:
        return torch.full((size,), -math.log(size), dtype=like.dtype, device=like.device)
    if not isinstance(weights, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(weights).__name__}")
    if not weights.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {weights.dtype}")
    if weights.shape[-1:] != (size,):
        raise ValueError(f"{name} must have last dimension {size} to match cost, got shape {tuple(weights.shape)}")
    bad = ~torch.isfinite(weights) | (weights <= 0)
    if bad.any():
        index = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name} must hold finite, strictly positive weights, got {name}{list(index)} = "
                         f"{float(weights[index])}")
    return weights.to(like.dtype).log()


def _validate_cost(cost: torch.Tensor) -> None:
    check_float_tensor("cost", cost)
    if cost.dim() < 2 or cost.shape[-1] == 0 or cost.shape[-2] == 0:
        raise ValueError(f"cost must have shape (..., n, m) with n, m >= 1, got {tuple(cost.shape)}")
    bad = torch.isnan(cost) | (cost == -math.inf)
    if bad.any():
        index = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"cost must not contain NaN or -inf (use +inf to forbid a pair), got cost{list(index)} = "
                         f"{float(cost[index])}")
    allowed = torch.isfinite(cost)
    if not allowed.any(-1).all():
        raise ValueError("every row of cost needs at least one finite entry (a row of +inf cannot send mass)")
    if not allowed.any(-2).all():
        raise ValueError("every column of cost needs at least one finite entry (a column of +inf cannot receive mass)")


def iterate(
    log_kernel: torch.Tensor,
    log_a: torch.Tensor | float,
    log_b: torch.Tensor | float,
    factor_a: float,
    factor_b: float,
    n_iter: int,
    gamma: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``n_iter`` (row, column) updates on ``log K = −C/ε`` with potentials scaled by 1/ε.

    ``φ ← κ_a (log a − LSE_j(log K_ij + γ_j))``, ``γ ← κ_b (log b − LSE_i(log K_ij + φ_i))``, with
    ``κ = ρ/(ρ+ε)`` (:func:`relaxation_factor`), starting from ``γ`` (default 0). Returns
    ``(φ, γ) = (f/ε, g/ε)``; ``n_iter = 0`` returns zeros. No validation: :func:`sinkhorn` is the checked
    entry point; losses call this on kernels they built.
    """
    phi = log_kernel.new_zeros(log_kernel.shape[:-1])
    if gamma is None:
        gamma = log_kernel.new_zeros(log_kernel.shape[:-2] + log_kernel.shape[-1:])
    for _ in range(n_iter):
        phi = factor_a * (log_a - torch.logsumexp(log_kernel + gamma.unsqueeze(-2), dim=-1))
        gamma = factor_b * (log_b - torch.logsumexp(log_kernel + phi.unsqueeze(-1), dim=-2))
    return phi, gamma


def _marginal_error(f, g, cost, eps, log_a, log_b, reg_a, reg_b) -> float:
    log_plan = (f.unsqueeze(-1) + g.unsqueeze(-2) - cost) / eps
    rows = torch.logsumexp(log_plan, dim=-1).exp()
    cols = torch.logsumexp(log_plan, dim=-2).exp()
    target_rows = (log_a - (0.0 if math.isinf(reg_a) else f / reg_a)).exp()
    target_cols = (log_b - (0.0 if math.isinf(reg_b) else g / reg_b)).exp()
    err = (rows - target_rows).abs().sum(-1) + (cols - target_cols).abs().sum(-1)
    return float(err.max())


def _unrolled(log_kernel, cost, eps, log_a, log_b, reg_a, reg_b, n_iter, tol, max_iter):
    """Autograd through every iteration: ``(φ, γ, iterations, converged)``."""
    fa, fb = relaxation_factor(reg_a, eps), relaxation_factor(reg_b, eps)
    if n_iter is not None:
        phi, gamma = iterate(log_kernel, log_a, log_b, fa, fb, n_iter)
        return phi, gamma, n_iter, None
    gamma = None
    for iterations in range(1, max_iter + 1):
        phi, gamma = iterate(log_kernel, log_a, log_b, fa, fb, 1, gamma)
        with torch.no_grad():
            error = _marginal_error(eps * phi, eps * gamma, cost, eps, log_a, log_b, reg_a, reg_b)
        if error < tol:
            break
    return phi, gamma, iterations, error < tol


def sinkhorn(
    cost: torch.Tensor,
    eps: float,
    a: Optional[torch.Tensor] = None,
    b: Optional[torch.Tensor] = None,
    *,
    reg_a: float = math.inf,
    reg_b: float = math.inf,
    n_iter: Optional[int] = None,
    tol: float = 1e-6,
    max_iter: int = 1000,
    grad: str = "unroll",
) -> OTResult:
    """Solve (unbalanced) entropic OT between ``a`` and ``b`` for ``cost`` in the log domain.

    Parameters
    ----------
    cost : (..., n, m) floating tensor; ``+inf`` forbids a pair.
    eps : entropic regularisation ε > 0.
    a, b : (..., n) and (..., m) positive weights; default uniform ``𝟙/n`` and ``𝟙/m`` as in POT.
    reg_a, reg_b : marginal relaxations ρ_a, ρ_b > 0; ``inf`` (default) is a hard constraint.
    n_iter : a fixed number of iterations (what losses use, ``0`` returns ``f = g = 0``);
        ``None`` iterates until ``marginal_error < tol`` or ``max_iter``.
    grad : ``"unroll"`` differentiates through every iteration with autograd; ``"fused"`` returns the
        same gradient (to rounding) from a backward whose memory does not grow with the iterations;
        ``"implicit"`` differentiates the fixed-point conditions at the returned potentials (for
        solves run to ``tol``; balanced problems: exact for the plan, see
        :mod:`gcalib.ot.engine`); ``"detach"`` computes the potentials without gradient, so
        gradients reach ``cost`` only through ``log_plan``.

    Returns
    -------
    OTResult with ``plan``, ``log_plan``, ``f``, ``g``, ``n_iter``, ``marginal_error``, ``converged``.
    ``marginal_error`` is the L1 residual of the marginal optimality conditions (see OTResult).
    The solve runs in float32 (float64 if ``cost`` is float64), also under autocast.
    """
    _validate_cost(cost)
    eps = check_positive("eps", eps)
    reg_a = check_relaxation("reg_a", reg_a)
    reg_b = check_relaxation("reg_b", reg_b)
    check_choice("grad", grad, GRAD_MODES)
    if n_iter is not None:
        check_int("n_iter", n_iter, 0)
    else:
        tol = check_positive("tol", tol)
        check_int("max_iter", max_iter, 1)

    with torch.autocast(device_type=cost.device.type, enabled=False):
        cost = cost.to(_working_dtype(cost))
        n, m = cost.shape[-2], cost.shape[-1]
        log_a = _marginal("a", a, n, cost)
        log_b = _marginal("b", b, m, cost)
        fa, fb = relaxation_factor(reg_a, eps), relaxation_factor(reg_b, eps)
        log_kernel = -(cost.detach() if grad == "detach" else cost) / eps
        if grad == "unroll":
            phi, gamma, iterations, converged = _unrolled(log_kernel, cost, eps, log_a, log_b, reg_a, reg_b, n_iter, tol, max_iter)
        else:
            phi, gamma, iterations, converged = potentials(log_kernel, log_a, log_b, fa, fb, n_iter, grad=grad, tol=tol, max_iter=max_iter)
        f, g = eps * phi, eps * gamma
    return OTResult(f=f, g=g, cost=cost, eps=eps, log_a=log_a, log_b=log_b, reg_a=reg_a, reg_b=reg_b,
                    n_iter=iterations, converged=converged)
