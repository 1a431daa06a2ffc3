"""The GCA loss as a composite autograd formula on a log-kernel: the reference definition of the family.

Given ``log K`` (:mod:`gcalib.losses.kernel`) and a :class:`~gcalib.losses.spec.LossSpec`:

* ``n_iter`` Sinkhorn iterations with unit marginals ``μ = ν = 𝟙`` (relaxed by ``ρ_a, ρ_b``) give the scaled
  potentials ``φ = f/ε``, ``γ = g/ε`` and the log-weights ``W = log K + γ`` (:func:`plan_log_weights`);
* the scored transport plan is the row projection ``P̂ = rownorm(exp W)`` (``n_iter = 0``: exactly
  InfoNCE's softmax) or, for ``scored="sinkhorn"``, the Sinkhorn plan ``P = exp(W + φ)`` (:func:`scored_log_plan`);
* the loss against the row-normalised target plan ``T̂`` is

  ``r1·CE(T̂, P) + r2·robust(T̂, W) + uni_weight·CE(U, P)``

  with the cross-entropy ``CE(T̂, P) = −(1/n) Σ_rs T̂_rs log P_rs`` (:func:`cross_entropy`), the RINCE term of
  :func:`robust_divergence` (on ``W + φ`` for the Sinkhorn plan) and ``U`` the uniform plan over candidates.

:mod:`gcalib.losses.fused` evaluates the same formula in one autograd function and is tested against this one.
"""
from __future__ import annotations

import math

import torch

from .spec import LossSpec
from ..ot.potentials import potentials
from ..ot.solver import iterate, relaxation_factor

__all__ = ["plan_log_weights", "scored_log_plan", "cross_entropy", "robust_divergence", "composite_loss"]


def plan_log_weights(log_kernel: torch.Tensor, spec: LossSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-weights ``W = log K + γ`` after ``spec.n_iter`` unit-marginal Sinkhorn iterations, and ``φ``.

    The Sinkhorn plan is ``exp(W + φ)`` and the row-projected plan ``rownorm(exp W)``.

    Parameters
    ----------
    log_kernel : torch.Tensor
        ``log K``, shape (..., n, n), ``−∞`` on forbidden pairs.
    spec : LossSpec
        Supplies ``eps``, ``n_iter``, ``reg_a``, ``reg_b`` and ``grad`` (``"unroll"``: autograd through the
        iterations; otherwise :func:`gcalib.ot.potentials.potentials` with that mode).

    Returns
    -------
    log_weights : torch.Tensor
        ``W``, the shape of ``log_kernel``.
    phi : torch.Tensor
        The scaled row potential ``f/ε``, shape (..., n).
    """
    fa, fb = relaxation_factor(spec.reg_a, spec.eps), relaxation_factor(spec.reg_b, spec.eps)
    if spec.grad == "unroll":
        phi, gamma = iterate(log_kernel, 0.0, 0.0, fa, fb, spec.n_iter)
    else:
        phi, gamma, _, _ = potentials(log_kernel, 0.0, 0.0, fa, fb, spec.n_iter, grad=spec.grad)
    return log_kernel + gamma.unsqueeze(-2), phi


def scored_log_plan(log_kernel: torch.Tensor, spec: LossSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The log-weights and log-plan that the divergences score.

    Parameters
    ----------
    log_kernel : torch.Tensor
        ``log K``, shape (n, n).
    spec : LossSpec
        The loss's hyper-parameters; ``spec.scored`` picks the plan.

    Returns
    -------
    log_weights : torch.Tensor
        ``W`` for the projected plan, ``log P = W + φ`` for the Sinkhorn plan.
    log_plan : torch.Tensor
        ``log rownorm(exp W)``, or ``log P`` for the Sinkhorn plan.
    """
    log_weights, phi = plan_log_weights(log_kernel, spec)
    if spec.scored == "sinkhorn":
        log_weights = log_weights + phi.unsqueeze(-1)
        return log_weights, log_weights
    return log_weights, torch.log_softmax(log_weights, dim=1)


def cross_entropy(target: torch.Tensor, log_plan: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of a plan against a row-normalised target: ``−(1/n) Σ_r Σ_s T̂_rs log P_rs``.

    It differs from ``KL(T̂‖P)`` by the mean row entropy of ``T̂``, a constant of the target (zero when each
    row of ``T̂`` has one entry, e.g. two views). Terms with ``T̂_rs = 0`` vanish, also where
    ``log P_rs = −∞``.

    Parameters
    ----------
    target : torch.Tensor
        ``T̂``, shape (n, m), rows summing to one.
    log_plan : torch.Tensor
        ``log P``, shape (n, m).

    Returns
    -------
    torch.Tensor
        The scalar cross-entropy.
    """
    safe = torch.where(target > 0, log_plan, torch.zeros_like(log_plan))
    return -(target * safe).sum(dim=1).mean()


def robust_divergence(target: torch.Tensor, log_weights: torch.Tensor, q: float, lam: float) -> torch.Tensor:
    """RINCE on plan weights ``e^W``: ``mean_r [−pos_r^q/q + (λ·tot_r)^q/q]``, evaluated in log space.

    ``pos_r = Σ_s T̂_rs e^{W_rs}`` and ``tot_r = Σ_s e^{W_rs}`` (``W_rr = −∞``). At ``n_iter = 0`` this is
    Chuang et al.'s RINCE at temperature ε times the constant ``e^{−q/ε}`` (same minimisers).

    Parameters
    ----------
    target : torch.Tensor
        ``T̂``, shape (n, n); entries with ``T̂ = 0`` drop out of ``pos`` (also from its gradient).
    log_weights : torch.Tensor
        ``W``, shape (n, n).
    q : float
        Exponent in (0, 1].
    lam : float
        Weight ``λ > 0`` of the total mass.

    Returns
    -------
    torch.Tensor
        The scalar robust divergence.
    """
    positive = target > 0
    log_target = torch.where(positive, torch.where(positive, target, 1.0).log(), -math.inf)
    log_pos = torch.logsumexp(log_weights + log_target, dim=1)
    log_tot = torch.logsumexp(log_weights, dim=1)
    return ((q * (math.log(lam) + log_tot)).exp() - (q * log_pos).exp()).mean() / q


def composite_loss(log_kernel: torch.Tensor, target: torch.Tensor, spec: LossSpec) -> torch.Tensor:
    """The GCA loss of a log-kernel against a row-normalised target (module docstring), by autograd.

    Parameters
    ----------
    log_kernel : torch.Tensor
        ``log K``, shape (n, n), ``−∞`` on the diagonal (:mod:`gcalib.losses.kernel`).
    target : torch.Tensor
        ``T̂``, shape (n, n), non-negative rows summing to one, zero diagonal; may require grad.
    spec : LossSpec
        The loss's hyper-parameters.

    Returns
    -------
    torch.Tensor
        The scalar loss; differentiable in ``log_kernel`` and ``target``.
    """
    log_weights, log_plan = scored_log_plan(log_kernel, spec)
    loss = log_kernel.new_zeros(())
    if spec.r1 > 0:
        loss = loss + spec.r1 * cross_entropy(target, log_plan)
    if spec.r2 > 0:
        loss = loss + spec.r2 * robust_divergence(target, log_weights, spec.q, spec.lam)
    if spec.uni_weight > 0:
        candidates = torch.ones_like(log_plan).fill_diagonal_(0.0)
        loss = loss + spec.uni_weight * cross_entropy(candidates / candidates.sum(1, keepdim=True), log_plan)
    return loss
