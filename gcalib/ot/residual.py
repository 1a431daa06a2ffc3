"""The convergence residual of Sinkhorn: how far a pair of potentials is from the optimality conditions.

With scaled potentials ``φ = f/ε``, ``γ = g/ε`` and relaxation factors ``κ = ρ/(ρ + ε)``, the (unbalanced)
entropic plan is optimal when its marginals satisfy

.. math::

    P\\mathbb{1} = a \\, e^{-f/\\rho_a} = a \\, e^{-\\varphi (1 - \\kappa_a)/\\kappa_a}, \\qquad
    P^\\top\\mathbb{1} = b \\, e^{-g/\\rho_b} = b \\, e^{-\\gamma (1 - \\kappa_b)/\\kappa_b}.

For a hard marginal (``ρ = ∞``, ``κ = 1``) the condition is the plain constraint ``P𝟙 = a``. The residual is
the L1 violation of both conditions, maximised over the leading (batch) dimensions. Both Sinkhorn engines
(the log-domain iterations of :mod:`gcalib.ot.solver` and the scaling-domain solve of
:mod:`gcalib.ot.scaling`) stop on it, and :attr:`gcalib.ot.solver.OTResult.marginal_error` reports it.
"""
from __future__ import annotations

from typing import Union

import torch

__all__ = ["Marginal", "marginal_residual", "plan_residual"]

Marginal = Union[torch.Tensor, float]
"""Log-weights of a marginal: a tensor broadcastable to the potential, or one number for every entry."""


def _optimal_marginal(log_weights: Marginal, potential: torch.Tensor, factor: float) -> torch.Tensor:
    """``w·exp(−v (1 − κ)/κ)``: the marginal the plan must have at the optimum for potential ``v``."""
    return (log_weights - potential * ((1.0 - factor) / factor)).exp()


def marginal_residual(
    log_row_sums: torch.Tensor,
    log_col_sums: torch.Tensor,
    phi: torch.Tensor,
    gamma: torch.Tensor,
    log_a: Marginal,
    log_b: Marginal,
    factor_a: float,
    factor_b: float,
) -> float:
    """L1 residual of the marginal optimality conditions, from the plan's log-marginals.

    Computes ``max_batch ‖P𝟙 − a·e^{−φ(1−κ_a)/κ_a}‖₁ + ‖Pᵀ𝟙 − b·e^{−γ(1−κ_b)/κ_b}‖₁``, zero exactly
    at the solution (see the module docstring).

    Parameters
    ----------
    log_row_sums : torch.Tensor
        ``log P𝟙``, shape (..., n).
    log_col_sums : torch.Tensor
        ``log Pᵀ𝟙``, shape (..., m).
    phi, gamma : torch.Tensor
        Scaled potentials ``f/ε`` (..., n) and ``g/ε`` (..., m).
    log_a, log_b : torch.Tensor or float
        Log-weights of the marginals, broadcastable to ``phi`` and ``gamma``.
    factor_a, factor_b : float
        Relaxation factors ``κ = ρ/(ρ + ε)`` in (0, 1]; 1 for a hard marginal.

    Returns
    -------
    float
        The residual, the largest over the leading dimensions.
    """
    rows = (log_row_sums.exp() - _optimal_marginal(log_a, phi, factor_a)).abs().sum(-1)
    cols = (log_col_sums.exp() - _optimal_marginal(log_b, gamma, factor_b)).abs().sum(-1)
    return float((rows + cols).max())


def plan_residual(
    log_plan: torch.Tensor,
    phi: torch.Tensor,
    gamma: torch.Tensor,
    log_a: Marginal,
    log_b: Marginal,
    factor_a: float,
    factor_b: float,
) -> float:
    """:func:`marginal_residual` of the plan ``P = exp(log_plan)``.

    Parameters
    ----------
    log_plan : torch.Tensor
        ``log P = log K + φ ⊕ γ``, shape (..., n, m); ``−inf`` on forbidden pairs.
    phi, gamma : torch.Tensor
        The scaled potentials the plan was built from, (..., n) and (..., m).
    log_a, log_b : torch.Tensor or float
        Log-weights of the marginals.
    factor_a, factor_b : float
        Relaxation factors ``κ = ρ/(ρ + ε)``; 1 for a hard marginal.

    Returns
    -------
    float
        The residual; no gradient is recorded.

    Examples
    --------
    >>> import torch
    >>> from gcalib.ot.solver import sinkhorn
    >>> result = sinkhorn(torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64), 0.5, n_iter=0)
    >>> round(plan_residual(result.log_plan, result.f / 0.5, result.g / 0.5, result.log_a, result.log_b, 1.0, 1.0), 4)
    2.5413
    """
    with torch.no_grad():
        return marginal_residual(torch.logsumexp(log_plan, dim=-1), torch.logsumexp(log_plan, dim=-2),
                                 phi, gamma, log_a, log_b, factor_a, factor_b)
