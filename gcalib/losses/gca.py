"""The GCA loss family: a divergence between a target plan and a transport plan of the batch.

For V views of B samples (blocked layout, ``n = V·B``), with ``z = h/‖h‖``:

* cost ``C = 1 − z zᵀ`` with ``C_rr = +∞`` (self-pairs excluded), kernel ``K = exp(−C/ε)``;
* ``n_iter`` Sinkhorn iterations with unit marginals ``μ = ν = 𝟙`` (relaxed by ``ρ_a, ρ_b`` for
  unbalanced OT) give column potentials ``g``; the log-weights ``W = −C/ε + g/ε`` define the plan
  after a final row projection ``P̂ = rownorm(exp W)``. ``n_iter = 0`` is exactly InfoNCE;
* the loss is ``r1·KL + r2·robust`` between the row-normalised target ``T̂`` and the plan:

  - KL: ``−(1/n) Σ_r Σ_s T̂_rs log P̂_rs``;
  - robust (RINCE): ``mean_r [−pos_r^q/q + (λ·tot_r)^q/q]`` with ``pos_r = Σ_s T̂_rs e^{W_rs}``,
    ``tot_r = Σ_{s≠r} e^{W_rs}``. At ``n_iter = 0`` this is Chuang et al.'s RINCE at temperature ε
    times the constant ``e^{−q/ε}`` (same minimisers, gradients scaled by that constant).

``iot`` / ``iot_uni`` (Shi et al. 2023) instead score the Sinkhorn plan itself,
``P = exp((f ⊕ g − C)/ε)`` after ``n_iter`` iterations: ``−(1/n) Σ T̂ log P`` (+ ``uni_weight`` times
the same cross-entropy against the uniform plan over candidates).

Gradients (``grad``): ``"fused"`` (default) evaluates the whole loss in one autograd function
(:mod:`gcalib.losses.fused`) whose backward is exact and does not grow with ``n_iter``; ``"unroll"`` is
the composite autograd formula below (the reference); ``"implicit"`` and ``"detach"`` differentiate
the potentials implicitly or not at all (:func:`gcalib.ot.solver.sinkhorn`).

Over several processes (``gather_distributed=True``) the views are gathered into the global batch and the
loss is solved over it; with ``shard_plan=True`` each process holds only its own samples' rows of the plan
(:mod:`gcalib.losses.sharded`), and a custom ``target`` is given as those rows.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields, replace
from typing import Optional, Sequence

import torch
from torch import nn

from . import targets as plans
from .fused import fused_gca_loss, positive_pair_target
from ..ot.solver import GRAD_MODES, check_relaxation, iterate, relaxation_factor
from ..ot.engine import potentials
from ..validation import (check_bool, check_choice, check_float_tensor, check_int, check_nonnegative, check_positive,
                         check_real, fail)

__all__ = [
    "LOSSES",
    "LossSpec",
    "GCALoss",
    "make_loss",
    "gca_loss",
    "embed_views",
    "contrastive_log_kernel",
    "plan_log_weights",
    "scored_plan",
    "kl_divergence",
    "robust_divergence",
    "robust_scale",
    "ROBUST_SCALE_WARNING",
    "PLAN_KINDS",
    "EPS_MIN",
]

PLAN_KINDS = ("projected", "sinkhorn")
# Smallest ε: costs (up to 2) over ε, the loss and its gradient must stay far inside float32's range (3.4e38).
EPS_MIN = 1e-30


@dataclass(frozen=True)
class LossSpec:
    """Hyper-parameters of one member of the family (see module docstring for the formulas).

    eps: ε ≥ ``EPS_MIN`` (the loss runs in float32 and scales like 1/ε); n_iter: Sinkhorn iterations
    ≥ 0; reg_a, reg_b: marginal relaxations ρ (``inf`` is balanced); r1, r2: weights of the KL and
    robust divergences; q ∈ (0, 1], lam = λ > 0: robust parameters; plan: ``"projected"`` (final row
    projection) or ``"sinkhorn"`` (IOT); uni_weight: weight of the uniform-plan term (IOT-uni); grad:
    ``"fused"`` (default, exact gradient from one fused backward), ``"unroll"`` (autograd through the
    iterations, the reference), ``"implicit"`` (for large ``n_iter``: exact at convergence, except
    that with both marginals hard a term that changes when ``γ`` shifts by a constant — the robust
    term on the projected plan — misses that direction of its gradient) or ``"detach"`` (see
    :func:`gcalib.ot.solver.sinkhorn`); gather_distributed: solve over the global batch gathered from every
    process (:mod:`gcalib.losses.distributed`); shard_plan: each process holds only its samples' rows of that
    plan (:mod:`gcalib.losses.sharded`; needs ``gather_distributed=True`` and ``grad="fused"``).
    """

    eps: float = 0.5
    n_iter: int = 0
    reg_a: float = math.inf
    reg_b: float = math.inf
    r1: float = 1.0
    r2: float = 0.0
    q: float = 0.6
    lam: float = 0.01
    plan: str = "projected"
    uni_weight: float = 0.0
    grad: str = "fused"
    gather_distributed: bool = False
    shard_plan: bool = False

    def __post_init__(self) -> None:
        check_positive("eps", self.eps)
        check_real("eps", self.eps, lambda v: v >= EPS_MIN,
                   f"at least EPS_MIN = {EPS_MIN:g} (smaller values overflow float32)")
        check_int("n_iter", self.n_iter, 0)
        check_relaxation("reg_a", self.reg_a)
        check_relaxation("reg_b", self.reg_b)
        for name in ("r1", "r2", "uni_weight"):
            check_nonnegative(name, getattr(self, name))
        if self.r1 == 0 and self.r2 == 0:
            raise ValueError("r1 and r2 are both 0: the loss would be identically zero; set r1 > 0 or r2 > 0")
        check_real("q", self.q, lambda v: 0 < v <= 1, "a number in (0, 1]")
        check_positive("lam", self.lam)
        check_choice("plan", self.plan, PLAN_KINDS)
        check_choice("grad", self.grad, GRAD_MODES)
        check_bool("gather_distributed", self.gather_distributed)
        if check_bool("shard_plan", self.shard_plan):
            if not self.gather_distributed:
                fail("gather_distributed", self.gather_distributed,
                     "True when shard_plan=True (the plan's rows are split over the processes of the global batch)")
            if self.grad != "fused":
                fail("grad", self.grad, "'fused' when shard_plan=True (the row-sharded plan has only the fused backward)")


_ROBUST = dict(r1=0.0, r2=1.0)
PRESETS: dict[str, LossSpec] = {
    "infonce": LossSpec(n_iter=0),
    "hs_ince": LossSpec(n_iter=0),
    "gca_ince": LossSpec(n_iter=10),
    "rince": LossSpec(n_iter=0, **_ROBUST),
    "gca_rince": LossSpec(n_iter=10, **_ROBUST),
    "gca_uot": LossSpec(n_iter=10, reg_a=0.2, reg_b=0.2, r1=1.0, r2=0.2),
    "iot": LossSpec(n_iter=10, plan="sinkhorn"),
    "iot_uni": LossSpec(n_iter=10, plan="sinkhorn", uni_weight=0.1),
}
LOSSES = tuple(PRESETS)


def embed_views(views: Sequence[torch.Tensor]) -> torch.Tensor:
    """Validate V views of shape (B, D), L2-normalise them and stack them blocked: (V·B, D).

    Runs in float32 (float64 stays float64), also under autocast.
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


def contrastive_log_kernel(z: torch.Tensor, eps: float) -> torch.Tensor:
    """``log K = −C/ε = (z zᵀ − 1)/ε`` for unit rows ``z``, with ``log K_rr = −∞`` (``C_rr = +∞``)."""
    log_kernel = (z @ z.T - 1.0) / eps
    return log_kernel.fill_diagonal_(-math.inf)


def plan_log_weights(log_kernel: torch.Tensor, spec: LossSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-weights of the plan the divergence scores, and the scaled row potential ``φ = f/ε``.

    Runs ``spec.n_iter`` unit-marginal Sinkhorn iterations and returns ``W = log K + γ`` (``γ = g/ε``)
    together with ``φ``; the Sinkhorn plan is ``exp(W + φ)`` and the row-projected plan ``rownorm(exp W)``.
    """
    fa, fb = relaxation_factor(spec.reg_a, spec.eps), relaxation_factor(spec.reg_b, spec.eps)
    if spec.grad == "unroll":
        phi, gamma = iterate(log_kernel, 0.0, 0.0, fa, fb, spec.n_iter)
    else:
        phi, gamma, _, _ = potentials(log_kernel, 0.0, 0.0, fa, fb, spec.n_iter, grad=spec.grad)
    return log_kernel + gamma.unsqueeze(-2), phi


def kl_divergence(target: torch.Tensor, log_plan: torch.Tensor) -> torch.Tensor:
    """``−(1/n) Σ_r Σ_s T̂_rs log P_rs`` (cross-entropy form of KL(T̂‖P); terms with T̂ = 0 vanish)."""
    safe = torch.where(target > 0, log_plan, torch.zeros_like(log_plan))
    return -(target * safe).sum(dim=1).mean()


def robust_divergence(target: torch.Tensor, log_weights: torch.Tensor, q: float, lam: float) -> torch.Tensor:
    """RINCE on plan weights ``e^W``: ``mean_r [−pos_r^q/q + (λ·tot_r)^q/q]``, evaluated in log space.

    ``pos_r = Σ_s T̂_rs e^{W_rs}``, ``tot_r = Σ_s e^{W_rs}`` (``W_rr = −∞``). Entries with ``T̂ = 0``
    drop out of ``pos`` (also from its gradient with respect to the target).
    """
    positive = target > 0
    log_target = torch.where(positive, torch.where(positive, target, 1.0).log(), -math.inf)
    log_pos = torch.logsumexp(log_weights + log_target, dim=1)
    log_tot = torch.logsumexp(log_weights, dim=1)
    return ((q * (math.log(lam) + log_tot)).exp() - (q * log_pos).exp()).mean() / q


def _resolve_target(target: Optional[torch.Tensor], batch_size: int, n_views: int, like: torch.Tensor,
                    rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    n = batch_size * n_views
    if target is None:
        return plans.positive_pairs(batch_size, n_views, device=like.device, dtype=like.dtype)
    if isinstance(target, torch.Tensor) and target.device != like.device:
        raise ValueError(f"target must be on the embeddings' device {like.device}, got a tensor on {target.device}; "
                         f"move it with target.to({str(like.device)!r})")
    plans.validate_target(target, n, rows)
    return target.to(like.dtype)


def _sharded_loss(z: torch.Tensor, target: Optional[torch.Tensor], batch_size: int, n_views: int,
                  spec: LossSpec) -> torch.Tensor:
    """``shard_plan=True``: this process's rows of the plan over the gathered batch (``batch_size`` samples)."""
    from .distributed import all_ranks, world_size
    from .sharded import shard_rows, sharded_gca_loss

    rows = shard_rows(batch_size // world_size(), n_views, device=z.device)
    error = None
    try:
        if target is not None:
            target = _resolve_target_rows(target, batch_size, n_views, z, rows)
    except (TypeError, ValueError) as caught:
        error = caught
    if not all_ranks(error is None, z.device):  # every rank raises rather than waiting for the others
        raise error or ValueError("target is invalid on another process (the error is raised there); every "
                                  "process must pass valid rows of the global target (or target=None on all)")
    return sharded_gca_loss(z, target, rows, n_views, spec)


def _resolve_target_rows(target: torch.Tensor, batch_size: int, n_views: int, like: torch.Tensor,
                         rows: torch.Tensor) -> torch.Tensor:
    """The validated, row-normalised rows ``rows`` of a target over the gathered batch."""
    if isinstance(target, torch.Tensor) and target.requires_grad:
        raise ValueError("target must not require grad with shard_plan=True (the row-sharded loss does not "
                         "differentiate the target), got a tensor with requires_grad=True; pass target.detach()")
    target = _resolve_target(target, batch_size, n_views, like, rows)
    return target / target.sum(dim=1, keepdim=True)


def scored_plan(z: torch.Tensor, spec: LossSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log-weights, log-plan)`` the divergences score: ``(W, log rownorm e^W)``, or for
    ``plan="sinkhorn"`` the Sinkhorn plan's ``(log P, log P)`` with ``log P = W + φ``."""
    with torch.autocast(device_type=z.device.type, enabled=False):
        log_weights, phi = plan_log_weights(contrastive_log_kernel(z, spec.eps), spec)
        if spec.plan == "sinkhorn":
            log_weights = log_weights + phi.unsqueeze(-1)
            return log_weights, log_weights
        return log_weights, torch.log_softmax(log_weights, dim=1)


def gca_loss(*views: torch.Tensor, target: Optional[torch.Tensor] = None, spec: LossSpec = LossSpec()) -> torch.Tensor:
    """Functional GCA loss of ``views`` (each (B, D)) against ``target`` ((V·B)², default positive pairs).

    With ``spec.shard_plan``, ``target`` is this process's rows of the global plan: shape (n/W, n) for
    ``n = V·W·B``, the rows :func:`gcalib.losses.sharded.shard_rows` lists (``rows=`` of
    :func:`gcalib.losses.targets.from_labels` and :func:`gcalib.losses.targets.domain_plan` builds them).
    """
    if spec.gather_distributed:
        from .distributed import all_gather_with_grad, require_initialized

        require_initialized("shard_plan=True" if spec.shard_plan else "gather_distributed=True")
        views = tuple(all_gather_with_grad(view) for view in views)
    z = embed_views(views)
    batch_size, n_views = views[0].shape[0], len(views)
    with torch.autocast(device_type=z.device.type, enabled=False):
        if spec.shard_plan:
            return _sharded_loss(z, target, batch_size, n_views, spec)
        if spec.grad == "fused" and not (isinstance(target, torch.Tensor) and target.requires_grad):
            if target is None:
                return fused_gca_loss(z, positive_pair_target(batch_size, n_views, z), spec)
            target = _resolve_target(target, batch_size, n_views, z)
            return fused_gca_loss(z, target / target.sum(dim=1, keepdim=True), spec)
        target = _resolve_target(target, batch_size, n_views, z)
        target = target / target.sum(dim=1, keepdim=True)
        log_weights, log_plan = scored_plan(z, spec)
        loss = z.new_zeros(())
        if spec.r1 > 0:
            loss = loss + spec.r1 * kl_divergence(target, log_plan)
        if spec.r2 > 0:
            loss = loss + spec.r2 * robust_divergence(target, log_weights, spec.q, spec.lam)
        if spec.uni_weight > 0:
            candidates = torch.ones_like(log_plan).fill_diagonal_(0.0)
            loss = loss + spec.uni_weight * kl_divergence(candidates / candidates.sum(1, keepdim=True), log_plan)
    return loss


# Below this factor e^{−q/ε} a robust-only loss's SGD steps shrink by the same factor, Adam stalls once the
# gradients fall under its 1e-8 floor, and float32 rounds the gradients of dissimilar pairs to zero.
ROBUST_SCALE_WARNING = 1e-6


def robust_scale(spec: LossSpec) -> float:
    """The constant ``e^{−q/ε}`` that scales the robust term and its gradients (relative to Chuang et al.'s RINCE)."""
    return math.exp(-spec.q / spec.eps)


def _warn_if_robust_term_vanishes(spec: LossSpec, name: str) -> None:
    if spec.r2 == 0 or spec.r1 > 0 or robust_scale(spec) >= ROBUST_SCALE_WARNING:
        return
    eps_floor = spec.q / math.log(1 / ROBUST_SCALE_WARNING)
    warnings.warn(
        f"{name} at eps={spec.eps}, q={spec.q}: the robust term and its gradients carry the factor e^(-q/eps) = "
        f"{robust_scale(spec):.2g} relative to Chuang et al.'s RINCE at temperature eps: SGD steps shrink by that "
        f"factor, Adam stalls once gradients fall below its eps (1e-8), and float32 rounds the gradients of "
        f"dissimilar pairs to zero; use eps >= {eps_floor:.3g} at this q, or add a KL term (r1 > 0)",
        UserWarning, stacklevel=3)


class GCALoss(nn.Module):
    """A GCA loss as a module: ``loss(*views, target=None)``; ``views`` are (B, D) projector outputs.

    Build presets with :func:`make_loss`. ``plan(*views)`` returns the (detached) plan the loss scores.
    Warns (``UserWarning``) when a robust-only loss (r1 = 0) has ``e^{−q/ε} <`` :data:`ROBUST_SCALE_WARNING`.
    """

    def __init__(self, spec: LossSpec = LossSpec(), name: str = "gca") -> None:
        super().__init__()
        if not isinstance(spec, LossSpec):
            raise TypeError(f"spec must be a LossSpec, got {type(spec).__name__}")
        _warn_if_robust_term_vanishes(spec, name)
        self.spec = spec
        self.name = name

    def forward(self, *views: torch.Tensor, target: Optional[torch.Tensor] = None) -> torch.Tensor:
        return gca_loss(*views, target=target, spec=self.spec)

    @torch.no_grad()
    def plan(self, *views: torch.Tensor) -> torch.Tensor:
        """The (n, n) plan the divergence compares with the target: ``P̂`` or, for IOT, the Sinkhorn plan."""
        return scored_plan(embed_views(views), self.spec)[1].exp()

    def extra_repr(self) -> str:
        return f"name={self.name!r}, " + ", ".join(f"{f.name}={getattr(self.spec, f.name)}" for f in fields(self.spec))


def make_loss(name: str, **hparams) -> GCALoss:
    """Build a named preset (see ``LOSSES``) with hyper-parameters overridden by ``hparams``.

    Example: ``make_loss("gca_uot", eps=0.1, reg_a=0.5)``.
    """
    if not isinstance(name, str):
        fail("loss name", name, "a str", TypeError)
    key = check_choice("loss", name.lower(), LOSSES)
    valid = {f.name for f in fields(LossSpec)}
    unknown = sorted(set(hparams) - valid)
    if unknown:
        raise TypeError(f"unknown hyper-parameter(s) {unknown} for loss {name!r}; valid: {sorted(valid)}")
    return GCALoss(replace(PRESETS[key], **hparams), name=key)
