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
stores vectors only (:mod:`gcalib.ot.adjoint`), ``"implicit"`` differentiates the optimality
conditions at the returned potentials (:mod:`gcalib.ot.implicit`), and ``"detach"`` lets gradients reach ``cost`` only through
``log_plan``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from .potentials import potentials
from .residual import Marginal, plan_residual
from ..validation import check_choice, check_float_tensor, check_int, check_positive, check_real

__all__ = ["OTResult", "sinkhorn", "iterate", "relaxation_factor", "check_relaxation", "GRAD_MODES"]

GRAD_MODES = ("unroll", "fused", "implicit", "detach")
"""Gradient modes of :func:`sinkhorn`."""


def relaxation_factor(reg: float, eps: float) -> float:
    """The factor ``κ = ρ/(ρ + ε)`` that an unbalanced potential update applies.

    Parameters
    ----------
    reg : float
        Marginal relaxation ``ρ > 0``; ``inf`` for a hard marginal.
    eps : float
        Entropic regularisation ``ε > 0``.

    Returns
    -------
    float
        ``ρ/(ρ + ε)``, exactly 1 for a hard marginal.
    """
    return 1.0 if math.isinf(reg) else reg / (reg + eps)


def check_relaxation(name: str, reg: float) -> float:
    """Check a marginal relaxation ``ρ``.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    reg : float
        A number > 0; ``float('inf')`` for a hard marginal.

    Returns
    -------
    float
        ``reg`` as a float.

    Raises
    ------
    TypeError
        When ``reg`` is not a number.
    ValueError
        When ``reg`` is NaN or not positive.
    """
    return check_real(name, reg, lambda v: v > 0, "a number > 0 (float('inf') for a hard marginal)")


@dataclass(frozen=True)
class OTResult:
    """Output of :func:`sinkhorn`: the potentials with the problem they solve, and diagnostics.

    The plan is ``P = exp(log_plan)`` with ``log_plan = (f[..., :, None] + g[..., None, :] − cost)/ε``.

    Parameters
    ----------
    f, g : torch.Tensor
        Dual potentials, (..., n) and (..., m).
    cost : torch.Tensor
        The cost the problem was solved for, in the working dtype (float32 or float64).
    eps : float
        Entropic regularisation ``ε``.
    log_a, log_b : torch.Tensor
        Log-weights of the marginals.
    reg_a, reg_b : float
        Marginal relaxations ``ρ`` (``inf``: hard).
    n_iter : int
        Iterations run.
    converged : bool or None
        Whether :attr:`marginal_error` fell below ``tol``; ``None`` when a fixed ``n_iter`` was asked for.
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
        residual of the first-order condition ``P𝟙 = a·exp(−f/ρ_a)`` (:mod:`gcalib.ot.residual`).
        """
        with torch.no_grad():
            return plan_residual(self.log_plan, self.f / self.eps, self.g / self.eps, self.log_a, self.log_b,
                                 relaxation_factor(self.reg_a, self.eps), relaxation_factor(self.reg_b, self.eps))


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
    log_a: Marginal,
    log_b: Marginal,
    factor_a: float,
    factor_b: float,
    n_iter: int,
    gamma: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-domain Sinkhorn iterations on ``log K = −C/ε``, differentiable by autograd.

    Each iteration is ``φ ← κ_a (log a − LSE_j(log K_ij + γ_j))``, ``γ ← κ_b (log b − LSE_i(log K_ij + φ_i))``
    with ``κ = ρ/(ρ+ε)`` (:func:`relaxation_factor`). No validation: :func:`sinkhorn` is the checked entry
    point; losses call this on kernels they built.

    Parameters
    ----------
    log_kernel : torch.Tensor
        ``log K``, shape (..., n, m); ``−inf`` forbids a pair.
    log_a, log_b : torch.Tensor or float
        Log-weights of the marginals, broadcastable to (..., n) and (..., m).
    factor_a, factor_b : float
        Relaxation factors ``κ`` in (0, 1].
    n_iter : int
        Number of (row, column) updates; 0 returns zeros.
    gamma : torch.Tensor or None
        Starting column potential ``γ`` (default 0), to continue an earlier run.

    Returns
    -------
    phi, gamma : torch.Tensor
        The scaled potentials ``(f/ε, g/ε)``, (..., n) and (..., m).
    """
    phi = log_kernel.new_zeros(log_kernel.shape[:-1])
    if gamma is None:
        gamma = log_kernel.new_zeros(log_kernel.shape[:-2] + log_kernel.shape[-1:])
    for _ in range(n_iter):
        phi = factor_a * (log_a - torch.logsumexp(log_kernel + gamma.unsqueeze(-2), dim=-1))
        gamma = factor_b * (log_b - torch.logsumexp(log_kernel + phi.unsqueeze(-1), dim=-2))
    return phi, gamma


def _unrolled(log_kernel: torch.Tensor, log_a: torch.Tensor, log_b: torch.Tensor, factor_a: float, factor_b: float,
              n_iter: Optional[int], tol: float, max_iter: int) -> tuple[torch.Tensor, torch.Tensor, int, Optional[bool]]:
    """Autograd through every iteration: ``(φ, γ, iterations, converged)``."""
    if n_iter is not None:
        phi, gamma = iterate(log_kernel, log_a, log_b, factor_a, factor_b, n_iter)
        return phi, gamma, n_iter, None
    gamma = None
    for iterations in range(1, max_iter + 1):
        phi, gamma = iterate(log_kernel, log_a, log_b, factor_a, factor_b, 1, gamma)
        with torch.no_grad():
            log_plan = log_kernel + phi.unsqueeze(-1) + gamma.unsqueeze(-2)
            error = plan_residual(log_plan, phi, gamma, log_a, log_b, factor_a, factor_b)
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

    Minimises ``⟨C, P⟩ + ε Σ P(log P − 1) + ρ_a KL(P𝟙‖a) + ρ_b KL(Pᵀ𝟙‖b)`` over ``P ≥ 0`` (a hard
    constraint where ``ρ = ∞``) by alternating the potential updates of the module docstring.

    Parameters
    ----------
    cost : torch.Tensor
        Floating tensor of shape (..., n, m); ``+inf`` forbids a pair. Leading dimensions are a batch.
    eps : float
        Entropic regularisation ``ε > 0``.
    a, b : torch.Tensor or None
        Positive weights (..., n) and (..., m); default uniform ``𝟙/n`` and ``𝟙/m`` as in POT.
    reg_a, reg_b : float
        Marginal relaxations ``ρ_a, ρ_b > 0``; ``inf`` (default) is a hard constraint.
    n_iter : int or None
        A fixed number of iterations (what losses use; ``0`` returns ``f = g = 0``); ``None`` iterates until
        ``marginal_error < tol`` or ``max_iter``.
    tol : float
        Residual to reach when ``n_iter`` is ``None``.
    max_iter : int
        Most iterations when ``n_iter`` is ``None``.
    grad : {"unroll", "fused", "implicit", "detach"}
        ``"unroll"`` differentiates through every iteration with autograd; ``"fused"`` returns the same
        gradient (to rounding) from a backward whose memory does not grow with the iterations;
        ``"implicit"`` differentiates the fixed-point conditions at the returned potentials (for solves run
        to ``tol``; balanced problems: exact for the plan, see :mod:`gcalib.ot.implicit`); ``"detach"``
        computes the potentials without gradient, so gradients reach ``cost`` only through ``log_plan``.

    Returns
    -------
    OTResult
        With ``plan``, ``log_plan``, ``f``, ``g``, ``n_iter``, ``converged`` and ``marginal_error``, the L1
        residual of the marginal optimality conditions. The solve runs in float32 (float64 if ``cost`` is
        float64), also under autocast.

    Raises
    ------
    TypeError
        When ``cost``, ``a`` or ``b`` is not a floating tensor, or a number argument is not a number.
    ValueError
        When a shape does not match, ``cost`` holds NaN or ``−inf`` or a row or column with no finite entry,
        a weight is not positive and finite, or a number is out of range.

    Examples
    --------
    >>> import torch
    >>> from gcalib import sinkhorn
    >>> cost = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    >>> result = sinkhorn(cost, eps=0.5)
    >>> [[round(float(p), 4) for p in row] for row in result.plan]
    [[0.4404, 0.0596], [0.0596, 0.4404]]
    >>> result.converged, result.marginal_error < 1e-6
    (True, True)
    >>> relaxed = sinkhorn(cost, eps=0.5, reg_a=1.0, reg_b=1.0, n_iter=50)
    >>> round(float(relaxed.plan.sum()), 4)
    1.1782
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
            phi, gamma, iterations, converged = _unrolled(log_kernel, log_a, log_b, fa, fb, n_iter, tol, max_iter)
        else:
            phi, gamma, iterations, converged = potentials(log_kernel, log_a, log_b, fa, fb, n_iter, grad=grad, tol=tol,
                                                           max_iter=max_iter)
        f, g = eps * phi, eps * gamma
    return OTResult(f=f, g=g, cost=cost, eps=eps, log_a=log_a, log_b=log_b, reg_a=reg_a, reg_b=reg_b,
                    n_iter=iterations, converged=converged)
