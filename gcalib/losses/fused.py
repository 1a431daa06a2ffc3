"""The GCA loss family as one autograd function: a lean forward and the exact gradient.

For unit rows ``z`` (n × d) the forward builds ``L = (z zᵀ − 1)/ε`` (``L_rr = −∞``) with one matrix
product, runs the Sinkhorn half-steps of :func:`gcalib.ot.engine.solve` on it, plus the final
row projection ``lse*_r = LSE_s(L_rs + γ_s)``, and evaluates every divergence from vectors
(``T̂`` the row-normalised target, ``φ, γ`` the scaled potentials):

    KL(T̂‖P̂) = −(1/n) [⟨T̂, L⟩ + ⟨T̂ᵀ𝟙, γ⟩ − ⟨T̂𝟙, lse*⟩]          projected plan P̂ = rownorm(exp(L + γ))
    KL(T̂‖P)  = −(1/n) [⟨T̂, L⟩ + ⟨T̂ᵀ𝟙, γ⟩ + ⟨T̂𝟙, φ⟩]             Sinkhorn plan P = exp(L + φ ⊕ γ) (IOT)
    robust    = (1/(nq)) Σ_r [e^{q(log λ + s_r + lse*_r)} − e^{q(s_r + log pos_r)}],
                log pos_r = LSE_s(L_rs + γ_s + log T̂_rs),  s = φ for the Sinkhorn plan, else 0,

plus ``uni_weight`` times the KL term with the uniform plan over candidates in place of ``T̂``. This is
:func:`gcalib.losses.gca.gca_loss`'s composite (autograd) formula rearranged, not an approximation.

The backward seeds the Sinkhorn adjoint (:func:`gcalib.ot.engine.backward`) with the partial
derivatives in ``(φ, γ, lse*)``, adds the terms of ``L̄`` that bypass it (``−(r1/n)·T̂`` and the
target-weighted softmax of the robust term) and returns ``(L̄ + L̄ᵀ)·z/ε``: besides the two products
with ``z`` it touches the n × n matrix a handful of times, whatever ``n_iter``. Positive-pair targets are
index lists (:func:`positive_pair_target`), so the default target never becomes an n × n matrix.

**A block of rows** (:class:`RowBlock`). The same function evaluates one process's share when the rows of the
problem are split over processes: it holds ``L`` restricted to its rows ``R`` (|R| × n, built as
``(z_R zᵀ − 1)/ε``), the target's rows and the plan's rows; every sum over rows above (``T̂ᵀ𝟙``, the column
half-steps, the adjoint of ``γ``) is this block's partial sum, combined over processes by the block's
:class:`gcalib.ot.engine.RowReduction`, and the value is the sum of the blocks' values. The backward
returns this block's share ``Σ_{r∈R} (L̄_r·z e_rᵀ + z_r L̄_rᵀ)/ε`` of the gradient with respect to ``z``,
scaled by the incoming gradients summed over processes: summed over processes it is the whole gradient.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch.autograd.function import once_differentiable

from ..ot.solver import relaxation_factor
from ..ot.engine import backward as sinkhorn_backward
from ..ot.engine import ALL_ROWS, RowReduction, log_floor, solve

__all__ = ["SparseTarget", "RowBlock", "ALL", "positive_pair_target", "fused_gca_loss"]


@dataclass(frozen=True)
class SparseTarget:
    """A row-normalised target with ``k`` entries per row: ``T̂[r, index[r, j]] = weight[r, j]``."""

    index: torch.Tensor
    weight: torch.Tensor


Target = Union[torch.Tensor, SparseTarget]


@dataclass(frozen=True)
class RowBlock:
    """The rows of the (n, n) problem this process evaluates: global row indices ``rows`` (``None``: all n),
    and ``reduction``, which combines per-column partial sums and maxima, the value and the incoming
    gradient over the processes holding the other rows."""

    rows: Optional[torch.Tensor] = None
    reduction: RowReduction = ALL_ROWS

    def own(self, z: torch.Tensor) -> torch.Tensor:
        """``z_R``: the block's rows of ``z``."""
        return z if self.rows is None else z[self.rows]

    def fill_self_pairs(self, matrix: torch.Tensor, value: float) -> torch.Tensor:
        """Set the self-pair entries ``(i, R_i)`` of the block's (|R|, n) ``matrix`` to ``value``, in place."""
        if self.rows is None:
            matrix.diagonal().fill_(value)
        else:
            matrix[torch.arange(len(self.rows), device=matrix.device), self.rows] = value
        return matrix

    def uniform_columns(self, z: torch.Tensor) -> Union[torch.Tensor, float]:
        """Column sums over the block's rows of the uniform plan over candidates, ``(|R| − [s ∈ R])/(n − 1)``
        (1 for every column when the block holds all rows)."""
        if self.rows is None:
            return 1.0
        own = torch.zeros_like(z[:, 0]).index_fill_(0, self.rows, 1.0)
        return (len(self.rows) - own) / (z.shape[0] - 1)

    def embedding_grad(self, cost_grad: torch.Tensor, z: torch.Tensor, z_rows: torch.Tensor) -> torch.Tensor:
        """The block's share of ``(L̄ + L̄ᵀ)·z`` for its rows ``L̄`` of the cost gradient: ``L̄·z`` on rows ``R``
        plus ``L̄ᵀ·z_R`` on all rows."""
        if self.rows is None:
            return torch.addmm(cost_grad @ z, cost_grad.T, z)
        return (cost_grad.T @ z_rows).index_add_(0, self.rows, cost_grad @ z)


ALL = RowBlock()
"""The whole problem in one process."""


def positive_pair_target(batch_size: int, n_views: int, like: torch.Tensor) -> SparseTarget:
    """Positive pairs of the blocked layout as a :class:`SparseTarget`: row ``r`` has the ``V − 1``
    other views ``(r + k·B) mod n`` of its sample, each with weight ``1/(V − 1)``."""
    n = batch_size * n_views
    rows = torch.arange(n, device=like.device).unsqueeze(1)
    offsets = batch_size * torch.arange(1, n_views, device=like.device).unsqueeze(0)
    weight = torch.full((n, n_views - 1), 1.0 / (n_views - 1), dtype=like.dtype, device=like.device)
    return SparseTarget((rows + offsets) % n, weight)


def _log_kernel(z_rows: torch.Tensor, z: torch.Tensor, eps: float) -> torch.Tensor:
    """``(z_R zᵀ − 1)/ε`` in one product (the self-pairs still finite)."""
    return torch.addmm(z.new_tensor(-1.0 / eps), z_rows, z.T, alpha=1.0 / eps)


def _target_terms(target: Target, log_kernel: torch.Tensor, z_rows: torch.Tensor, z: torch.Tensor, eps: float):
    """``(⟨T̂, L⟩, T̂𝟙, T̂ᵀ𝟙, L at the sparse entries)`` over the block's rows (the last ``None`` for a dense
    target)."""
    if isinstance(target, SparseTarget):
        logits = ((z[target.index] * z_rows.unsqueeze(1)).sum(-1) - 1.0) / eps
        cols = torch.zeros_like(z[:, 0]).index_add_(0, target.index.flatten(), target.weight.flatten())
        return (target.weight * logits).sum(), target.weight.sum(1), cols, logits
    dot = torch.dot(target.reshape(-1), log_kernel.reshape(-1))
    return dot, target.sum(1), target.sum(0), None


def _uniform_dot(z_rows: torch.Tensor, z: torch.Tensor, eps: float) -> torch.Tensor:
    """``Σ_{r∈R} Σ_{s≠r} L_rs/(n − 1)`` from ``Σ_{r∈R} Σ_{s≠r} z_r·z_s = (Σ_{r∈R} z_r)·(Σ_s z_s) − Σ_{r∈R} ‖z_r‖²``."""
    m, n = z_rows.shape[0], z.shape[0]
    off_diagonal = torch.dot(z_rows.sum(0), z.sum(0)) - z_rows.square().sum()
    return (off_diagonal / eps - m * (n - 1) / eps) / (n - 1)


class _Positives:
    """``log pos_r = LSE_s(L_rs + γ_s + log T̂_rs)`` and, in the backward, ``diag(c)·Q`` with
    ``Q_rs = T̂_rs e^{L_rs + γ_s}/pos_r`` (the target-weighted softmax)."""

    def __init__(self, target: Target, trace, logits):
        self.target, self.trace = target, trace
        if isinstance(target, SparseTarget):
            self.logits = logits + trace.gamma[target.index] + target.weight.log()
            self.log_pos = torch.logsumexp(self.logits, 1)
            return
        ref, step = trace.refs[-1], trace.steps[-1]
        self.sums = torch.mv(target * ref.matrix, step.scale)
        floor = math.exp(log_floor(self.sums.dtype)) * step.scale.amax().clamp(min=1.0)
        self.exact = bool(((self.sums >= floor) & self.sums.isfinite()).all())
        if self.exact:
            self.log_pos = self.sums.log() - ref.p
        else:
            self.log_pos = torch.logsumexp(self._log_domain_logits(), 1)

    def _log_domain_logits(self) -> torch.Tensor:
        return torch.add(self.trace.kernel(), self.trace.gamma).add_(self.target.log())

    def weighted(self, coefficient: torch.Tensor) -> torch.Tensor:
        """``diag(coefficient)·Q``: (n, k) at the sparse entries, else (n, n)."""
        if isinstance(self.target, SparseTarget):
            return torch.softmax(self.logits, 1).mul_(coefficient.unsqueeze(1))
        if self.exact:
            matrix, scale = self.trace.refs[-1].matrix, self.trace.steps[-1].scale
            return torch.mul(self.target, matrix).mul_((coefficient / self.sums).unsqueeze(1)).mul_(scale)
        return self._log_domain_logits().sub_(self.log_pos.unsqueeze(1)).exp_().mul_(coefficient.unsqueeze(1))


class _FusedGCALoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, target: Target, spec, block: RowBlock) -> torch.Tensor:
        with torch.autocast(device_type=z.device.type, enabled=False):
            return _FusedGCALoss._forward(ctx, z, target, spec, block)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        with torch.autocast(device_type=grad_output.device.type, enabled=False):
            return _FusedGCALoss._backward(ctx, grad_output)

    @staticmethod
    def _forward(ctx, z: torch.Tensor, target: Target, spec, block: RowBlock) -> torch.Tensor:
        n, eps = z.shape[0], spec.eps
        projected = spec.plan == "projected"
        kl_weight, robust_weight, uni_weight = spec.r1, spec.r2, spec.uni_weight
        z_rows = block.own(z)

        def regenerate() -> torch.Tensor:
            return block.fill_self_pairs(_log_kernel(z_rows, z, eps), -math.inf)

        log_kernel = _log_kernel(z_rows, z, eps)
        dot, rows, cols, logits = _target_terms(target, log_kernel, z_rows, z, eps)
        block.fill_self_pairs(log_kernel, -math.inf)
        fa, fb = relaxation_factor(spec.reg_a, eps), relaxation_factor(spec.reg_b, eps)
        trace = solve(log_kernel, 0.0, 0.0, fa, fb, spec.n_iter, project=projected or robust_weight > 0,
                      consume=True, regenerate=regenerate, rows=block.reduction)
        phi, gamma = trace.phi, trace.gamma
        lse = trace.lse(trace.steps[-1]) if trace.projected else None
        value = z.new_zeros(())
        kl_rows = kl_weight * rows + uni_weight
        kl_cols = kl_weight * cols + uni_weight * block.uniform_columns(z)
        if kl_weight > 0 or uni_weight > 0:
            inner = kl_weight * dot + (kl_cols * gamma).sum()
            if uni_weight > 0:
                inner = inner + uni_weight * _uniform_dot(z_rows, z, eps)
            inner = inner - (kl_rows * lse).sum() if projected else inner + (kl_rows * phi).sum()
            value = value - inner / n
        positives = total_q = positive_q = None
        if robust_weight > 0:
            positives = _Positives(target, trace, logits)
            shift = 0.0 if projected else phi
            total_q = (spec.q * (math.log(spec.lam) + shift + lse)).exp()
            positive_q = (spec.q * (shift + positives.log_pos)).exp()
            value = value + robust_weight * (total_q - positive_q).sum() / (n * spec.q)
        ctx.save_for_backward(z)
        ctx.state = (target, spec, block, trace, kl_rows, kl_cols, positives, total_q, positive_q)
        return block.reduction.sum(value)

    @staticmethod
    def _backward(ctx, grad_output: torch.Tensor):
        (z,) = ctx.saved_tensors
        target, spec, block, trace, kl_rows, kl_cols, positives, total_q, positive_q = ctx.state
        n, eps = z.shape[0], spec.eps
        projected = spec.plan == "projected"
        kl_weight, robust_weight, uni_weight = spec.r1, spec.r2, spec.uni_weight
        grad_phi = torch.zeros_like(trace.phi)
        grad_gamma = torch.zeros_like(trace.gamma)
        grad_lse = torch.zeros_like(trace.phi) if trace.projected else None
        if kl_weight > 0 or uni_weight > 0:
            grad_gamma -= kl_cols / n
            if projected:
                grad_lse += kl_rows / n
            else:
                grad_phi -= kl_rows / n
        weighted = None
        if robust_weight > 0:
            grad_lse += robust_weight * total_q / n
            if not projected:
                grad_phi += robust_weight * (total_q - positive_q) / n
            weighted = positives.weighted(robust_weight * positive_q / n)
            if isinstance(target, SparseTarget):
                grad_gamma.index_add_(0, target.index.flatten(), weighted.flatten(), alpha=-1.0)
            else:
                grad_gamma -= weighted.sum(0)
        grad_gamma = block.reduction.sum(grad_gamma)
        cost_grad, _, _ = sinkhorn_backward(trace, grad_phi, grad_gamma, grad_lse, marginals=False)
        if cost_grad is None:
            cost_grad = torch.zeros(trace.phi.shape[0], n, dtype=z.dtype, device=z.device)
        if isinstance(target, SparseTarget):
            direct = target.weight * (-kl_weight / n)
            if weighted is not None:
                direct = direct - weighted
            cost_grad.scatter_add_(1, target.index, direct)
        else:
            if kl_weight > 0:
                cost_grad.add_(target, alpha=-kl_weight / n)
            if weighted is not None:
                cost_grad.sub_(weighted)
        if uni_weight > 0:
            block.fill_self_pairs(cost_grad.add_(-uni_weight / (n * (n - 1))), 0.0)
        grad_z = block.embedding_grad(cost_grad, z, block.own(z))
        return grad_z.mul_(block.reduction.sum(grad_output) / eps), None, None, None


def fused_gca_loss(z: torch.Tensor, target: Target, spec, block: RowBlock = ALL) -> torch.Tensor:
    """The loss of :func:`gcalib.losses.gca.gca_loss` for unit rows ``z`` (blocked layout) against the
    row-normalised ``target`` (dense or :class:`SparseTarget`, the block's rows: (|R|, n); not
    differentiated), with the hyper-parameters of ``spec`` (a :class:`gcalib.losses.gca.LossSpec`).

    With a :class:`RowBlock` of some rows, every process holding a block calls it (same ``z``, ``spec``)
    and gets the whole loss; its gradient is the block's share (see module docstring)."""
    return _FusedGCALoss.apply(z, target, spec, block)
