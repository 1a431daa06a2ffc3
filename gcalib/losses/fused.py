"""The GCA loss family as one autograd function: a lean forward and the exact gradient.

For unit rows ``z`` (n × d) the forward builds ``L = (z zᵀ − 1)/ε`` (``L_rr = −∞``) with one matrix
product, runs the Sinkhorn half-steps of :func:`gcalib.ot.scaling.solve` on it, plus the final
row projection ``lse*_r = LSE_s(L_rs + γ_s)``, and evaluates every divergence from vectors
(``T̂`` the row-normalised target plan, ``φ, γ`` the scaled potentials)::

    CE(T̂, P̂) = −(1/n) [⟨T̂, L⟩ + ⟨T̂ᵀ𝟙, γ⟩ − ⟨T̂𝟙, lse*⟩]         projected plan P̂ = rownorm(exp(L + γ))
    CE(T̂, P)  = −(1/n) [⟨T̂, L⟩ + ⟨T̂ᵀ𝟙, γ⟩ + ⟨T̂𝟙, φ⟩]            Sinkhorn plan P = exp(L + φ ⊕ γ) (IOT)
    robust    = (1/(nq)) Σ_r [e^{q(log λ + s_r + lse*_r)} − e^{q(s_r + log pos_r)}],
                log pos_r = LSE_s(L_rs + γ_s + log T̂_rs),  s = φ for the Sinkhorn plan, else 0,

plus ``uni_weight`` times the cross-entropy with the uniform plan over candidates in place of ``T̂``. This is
the composite (autograd) formula of :func:`gcalib.losses.composite.composite_loss` rearranged, not an
approximation.

The backward seeds the Sinkhorn adjoint (:func:`gcalib.ot.adjoint.fused_backward`) with the partial
derivatives in ``(φ, γ, lse*)``, adds the terms of ``L̄`` that bypass it (``−(r1/n)·T̂`` and the
target-weighted softmax of the robust term) and returns ``(L̄ + L̄ᵀ)·z/ε``: besides the two products
with ``z`` it touches the n × n matrix a handful of times, whatever ``n_iter``. Positive-pair targets are
index lists (:func:`positive_pair_target`), so the default target never becomes an n × n matrix.

**A block of rows** (:class:`RowBlock`). The same function evaluates one process's share when the rows of the
problem are split over processes: it holds ``L`` restricted to its rows ``R`` (#R × n, built as
``(z_R zᵀ − 1)/ε``), the target's rows and the plan's rows; every sum over rows above (``T̂ᵀ𝟙``, the column
half-steps, the adjoint of ``γ``) is this block's partial sum, combined over processes by the block's
:class:`gcalib.ot.scaling.RowReduction`, and the value is the sum of the blocks' values. The backward
returns this block's share ``Σ_{r∈R} (L̄_r·z e_rᵀ + z_r L̄_rᵀ)/ε`` of the gradient with respect to ``z``,
scaled by the incoming gradients summed over processes: summed over processes it is the whole gradient.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch.autograd.function import once_differentiable

from .spec import LossSpec
from ..ot.adjoint import fused_backward
from ..ot.scaling import ALL_ROWS, RowReduction, Trace, log_floor, solve
from ..ot.solver import relaxation_factor

__all__ = ["SparseTarget", "RowBlock", "ALL", "positive_pair_target", "fused_gca_loss"]


@dataclass(frozen=True)
class SparseTarget:
    """A row-normalised target plan with ``k`` entries per row: ``T̂[r, index[r, j]] = weight[r, j]``.

    Parameters
    ----------
    index : torch.Tensor
        Column of each entry, integer (rows, k).
    weight : torch.Tensor
        Its weight, floating (rows, k); each row sums to one.
    """

    index: torch.Tensor
    weight: torch.Tensor


Target = Union[torch.Tensor, SparseTarget]


@dataclass(frozen=True)
class RowBlock:
    """The rows of the (n, n) problem this process evaluates.

    Parameters
    ----------
    rows : torch.Tensor or None
        Global row indices ``R`` held here, 1-D integer; ``None`` for all n rows.
    reduction : RowReduction
        Combines per-column partial sums and maxima, the value and the incoming gradient over the processes
        holding the other rows.
    """

    rows: Optional[torch.Tensor] = None
    reduction: RowReduction = ALL_ROWS

    def own(self, z: torch.Tensor) -> torch.Tensor:
        """The block's rows ``z_R`` of ``z`` (n, d).

        Parameters
        ----------
        z : torch.Tensor
            All rows, shape (n, d).

        Returns
        -------
        torch.Tensor
            ``z_R``, shape (#R, d).
        """
        return z if self.rows is None else z[self.rows]

    def fill_self_pairs(self, matrix: torch.Tensor, value: float) -> torch.Tensor:
        """Set the self-pair entries ``(i, R_i)`` of the block's rows of a matrix, in place.

        Parameters
        ----------
        matrix : torch.Tensor
            The block's rows of an (n, n) matrix, shape (#R, n).
        value : float
            The value to write.

        Returns
        -------
        torch.Tensor
            ``matrix`` itself.
        """
        if self.rows is None:
            matrix.diagonal().fill_(value)
        else:
            matrix[torch.arange(len(self.rows), device=matrix.device), self.rows] = value
        return matrix

    def uniform_columns(self, z: torch.Tensor) -> Union[torch.Tensor, float]:
        """Column sums over the block's rows of the uniform plan over candidates: ``(#R − [s ∈ R])/(n − 1)``.

        Parameters
        ----------
        z : torch.Tensor
            All rows, shape (n, d) (gives n, dtype and device).

        Returns
        -------
        torch.Tensor or float
            Shape (n,), or 1.0 for every column when the block holds all rows.
        """
        if self.rows is None:
            return 1.0
        own = torch.zeros_like(z[:, 0]).index_fill_(0, self.rows, 1.0)
        return (len(self.rows) - own) / (z.shape[0] - 1)

    def embedding_grad(self, cost_grad: torch.Tensor, z: torch.Tensor, z_rows: torch.Tensor) -> torch.Tensor:
        """The block's share of ``(L̄ + L̄ᵀ)·z``: ``L̄·z`` on rows ``R`` plus ``L̄ᵀ·z_R`` on all rows.

        Parameters
        ----------
        cost_grad : torch.Tensor
            The block's rows ``L̄`` of the gradient with respect to the log-kernel, shape (#R, n).
        z : torch.Tensor
            All rows, shape (n, d).
        z_rows : torch.Tensor
            The block's rows ``z_R`` (:meth:`own`).

        Returns
        -------
        torch.Tensor
            Shape (n, d).
        """
        if self.rows is None:
            return torch.addmm(cost_grad @ z, cost_grad.T, z)
        return (cost_grad.T @ z_rows).index_add_(0, self.rows, cost_grad @ z)


ALL = RowBlock()
"""The whole problem in one process."""


def positive_pair_target(batch_size: int, n_views: int, like: torch.Tensor) -> SparseTarget:
    """The row-normalised positive-pair target plan as a :class:`SparseTarget`, without an n × n matrix.

    Row ``r`` of the blocked layout has the ``V − 1`` other views ``(r + k·B) mod n`` of its sample, each with
    weight ``1/(V − 1)``.

    Parameters
    ----------
    batch_size : int
        Samples per view ``B``.
    n_views : int
        Views ``V ≥ 2``.
    like : torch.Tensor
        Gives the weights' dtype and device.

    Returns
    -------
    SparseTarget
        ``index`` and ``weight`` of shape (V·B, V − 1).
    """
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

    def __init__(self, target: Target, trace: Trace, logits: Optional[torch.Tensor]) -> None:
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
    def forward(ctx, z: torch.Tensor, target: Target, spec: LossSpec, block: RowBlock) -> torch.Tensor:
        with torch.autocast(device_type=z.device.type, enabled=False):
            return _FusedGCALoss._forward(ctx, z, target, spec, block)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        with torch.autocast(device_type=grad_output.device.type, enabled=False):
            return _FusedGCALoss._backward(ctx, grad_output)

    @staticmethod
    def _forward(ctx, z: torch.Tensor, target: Target, spec: LossSpec, block: RowBlock) -> torch.Tensor:
        n, eps = z.shape[0], spec.eps
        projected = spec.scored == "projected"
        ce_weight, robust_weight, uni_weight = spec.r1, spec.r2, spec.uni_weight
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
        ce_rows = ce_weight * rows + uni_weight
        ce_cols = ce_weight * cols + uni_weight * block.uniform_columns(z)
        if ce_weight > 0 or uni_weight > 0:
            inner = ce_weight * dot + (ce_cols * gamma).sum()
            if uni_weight > 0:
                inner = inner + uni_weight * _uniform_dot(z_rows, z, eps)
            inner = inner - (ce_rows * lse).sum() if projected else inner + (ce_rows * phi).sum()
            value = value - inner / n
        positives = total_q = positive_q = None
        if robust_weight > 0:
            positives = _Positives(target, trace, logits)
            shift = 0.0 if projected else phi
            total_q = (spec.q * (math.log(spec.lam) + shift + lse)).exp()
            positive_q = (spec.q * (shift + positives.log_pos)).exp()
            value = value + robust_weight * (total_q - positive_q).sum() / (n * spec.q)
        ctx.save_for_backward(z)
        ctx.state = (target, spec, block, trace, ce_rows, ce_cols, positives, total_q, positive_q)
        return block.reduction.sum(value)

    @staticmethod
    def _backward(ctx, grad_output: torch.Tensor):
        (z,) = ctx.saved_tensors
        target, spec, block, trace, ce_rows, ce_cols, positives, total_q, positive_q = ctx.state
        n, eps = z.shape[0], spec.eps
        projected = spec.scored == "projected"
        ce_weight, robust_weight, uni_weight = spec.r1, spec.r2, spec.uni_weight
        grad_phi = torch.zeros_like(trace.phi)
        grad_gamma = torch.zeros_like(trace.gamma)
        grad_lse = torch.zeros_like(trace.phi) if trace.projected else None
        if ce_weight > 0 or uni_weight > 0:
            grad_gamma -= ce_cols / n
            if projected:
                grad_lse += ce_rows / n
            else:
                grad_phi -= ce_rows / n
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
        cost_grad, _, _ = fused_backward(trace, grad_phi, grad_gamma, grad_lse, marginals=False)
        if cost_grad is None:
            cost_grad = torch.zeros(trace.phi.shape[0], n, dtype=z.dtype, device=z.device)
        if isinstance(target, SparseTarget):
            direct = target.weight * (-ce_weight / n)
            if weighted is not None:
                direct = direct - weighted
            cost_grad.scatter_add_(1, target.index, direct)
        else:
            if ce_weight > 0:
                cost_grad.add_(target, alpha=-ce_weight / n)
            if weighted is not None:
                cost_grad.sub_(weighted)
        if uni_weight > 0:
            block.fill_self_pairs(cost_grad.add_(-uni_weight / (n * (n - 1))), 0.0)
        grad_z = block.embedding_grad(cost_grad, z, block.own(z))
        return grad_z.mul_(block.reduction.sum(grad_output) / eps), None, None, None


def fused_gca_loss(z: torch.Tensor, target: Target, spec: LossSpec, block: RowBlock = ALL) -> torch.Tensor:
    """The GCA loss of unit rows in one autograd function (the module docstring's rearranged formula).

    Parameters
    ----------
    z : torch.Tensor
        Unit rows in the blocked layout, shape (n, d).
    target : torch.Tensor or SparseTarget
        The row-normalised target plan ``T̂``, its block's rows (#R, n); not differentiated.
    spec : LossSpec
        The loss's hyper-parameters.
    block : RowBlock
        The rows this process evaluates (default all). With a block of some rows, every process holding a
        block calls this with the same ``z`` and ``spec`` and gets the whole loss; its gradient with respect
        to ``z`` is the block's share.

    Returns
    -------
    torch.Tensor
        The scalar loss, equal to :func:`gcalib.losses.composite.composite_loss` up to rounding.
    """
    return _FusedGCALoss.apply(z, target, spec, block)
