"""The GCA loss family: a divergence between a target plan and a transport plan of the batch.

For V views of B samples (blocked layout, ``n = V·B``), with ``z = h/‖h‖``:

* cost ``C = 1 − z zᵀ`` with ``C_rr = +∞`` (self-pairs excluded), kernel ``K = exp(−C/ε)``
  (:mod:`gcalib.losses.kernel`);
* ``n_iter`` Sinkhorn iterations with unit marginals ``μ = ν = 𝟙`` (relaxed by ``ρ_a, ρ_b`` for
  unbalanced OT) give column potentials ``g``; the log-weights ``W = −C/ε + g/ε`` define the transport
  plan after a final row projection ``P̂ = rownorm(exp W)``. ``n_iter = 0`` is exactly InfoNCE;
* the loss is ``r1·CE + r2·robust`` between the row-normalised target plan ``T̂`` and the transport plan:

  - cross-entropy: ``−(1/n) Σ_r Σ_s T̂_rs log P̂_rs`` (the KL divergence ``KL(T̂‖P̂)`` plus the entropy of
    ``T̂``, a constant of the target);
  - robust (RINCE): ``mean_r [−pos_r^q/q + (λ·tot_r)^q/q]`` with ``pos_r = Σ_s T̂_rs e^{W_rs}``,
    ``tot_r = Σ_{s≠r} e^{W_rs}``. At ``n_iter = 0`` this is Chuang et al.'s RINCE at temperature ε
    times the constant ``e^{−q/ε}`` (same minimisers, gradients scaled by that constant).

``iot`` / ``iot_uni`` (Shi et al. 2023) instead score the Sinkhorn plan itself (``scored="sinkhorn"``),
``P = exp((f ⊕ g − C)/ε)`` after ``n_iter`` iterations: ``−(1/n) Σ T̂ log P`` (+ ``uni_weight`` times
the same cross-entropy against the uniform plan over candidates).

Gradients (``grad``): ``"fused"`` (default) evaluates the whole loss in one autograd function
(:mod:`gcalib.losses.fused`) whose backward is exact and does not grow with ``n_iter``; ``"unroll"`` is
the composite autograd formula (:mod:`gcalib.losses.composite`, the reference); ``"implicit"`` and ``"detach"``
differentiate the potentials implicitly or not at all (:func:`gcalib.ot.solver.sinkhorn`).

Over several processes (``gather_distributed=True``) the views are gathered into the global batch and the
loss is solved over it; with ``shard_plan=True`` each process holds only its own samples' rows of the plan
(:mod:`gcalib.losses.sharded`), and a custom ``target`` is given as those rows.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import fields, replace
from typing import Optional

import torch
from torch import nn

from . import distributed
from .composite import composite_loss, scored_log_plan
from .fused import fused_gca_loss, positive_pair_target
from .kernel import contrastive_log_kernel, embed_views
from .sharded import shard_rows, sharded_gca_loss
from .spec import LOSSES, PRESETS, LossSpec, robust_scale
from .targets import positive_pairs, validate_target
from ..validation import check_choice, fail

__all__ = ["GCALoss", "make_loss", "gca_loss", "scored_plan", "ROBUST_SCALE_WARNING"]


def _resolve_target(target: Optional[torch.Tensor], batch_size: int, n_views: int, like: torch.Tensor,
                    rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    n = batch_size * n_views
    if target is None:
        return positive_pairs(batch_size, n_views, device=like.device, dtype=like.dtype)
    if isinstance(target, torch.Tensor) and target.device != like.device:
        raise ValueError(f"target must be on the embeddings' device {like.device}, got a tensor on {target.device}; "
                         f"move it with target.to({str(like.device)!r})")
    validate_target(target, n, rows)
    return target.to(like.dtype)


def _sharded_loss(z: torch.Tensor, target: Optional[torch.Tensor], batch_size: int, n_views: int,
                  spec: LossSpec) -> torch.Tensor:
    """``shard_plan=True``: this process's rows of the plan over the gathered batch (``batch_size`` samples)."""
    rows = shard_rows(batch_size // distributed.world_size(), n_views, device=z.device)
    error = None
    try:
        if target is not None:
            target = _resolve_target_rows(target, batch_size, n_views, z, rows)
    except (TypeError, ValueError) as caught:
        error = caught
    if not distributed.all_ranks(error is None, z.device):  # every rank raises rather than waiting for the others
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
    """The log-weights and log transport plan that the divergences of ``spec`` score, for unit rows ``z``.

    Parameters
    ----------
    z : torch.Tensor
        Unit rows in the blocked layout, shape (n, d) (:func:`gcalib.losses.kernel.embed_views`).
    spec : LossSpec
        The loss's hyper-parameters.

    Returns
    -------
    log_weights, log_plan : torch.Tensor
        ``(W, log rownorm e^W)``, or for ``scored="sinkhorn"`` the Sinkhorn plan's ``(log P, log P)``
        (:func:`gcalib.losses.composite.scored_log_plan`); shape (n, n), computed in float32 or float64
        also under autocast.
    """
    with torch.autocast(device_type=z.device.type, enabled=False):
        return scored_log_plan(contrastive_log_kernel(z, spec.eps), spec)


def gca_loss(*views: torch.Tensor, target: Optional[torch.Tensor] = None, spec: LossSpec = LossSpec()) -> torch.Tensor:
    """The GCA loss of ``views`` against a target plan (formulas in the module docstring).

    Parameters
    ----------
    *views : torch.Tensor
        V ≥ 2 floating (B, D) projector outputs, one per view (:func:`gcalib.losses.kernel.embed_views`).
    target : torch.Tensor or None
        The target plan T, (V·B, V·B) in the blocked layout (:mod:`gcalib.losses.targets`); ``None`` is the
        positive pairs. With ``spec.shard_plan``, this process's rows of the global plan: shape (n/W, n) for
        ``n = V·W·B``, the rows :func:`gcalib.losses.sharded.shard_rows` lists (``rows=`` of the target
        builders builds them). A target that requires grad is differentiated.
    spec : LossSpec
        The loss's hyper-parameters.

    Returns
    -------
    torch.Tensor
        The scalar loss (float32, or float64 for float64 views).

    Raises
    ------
    TypeError
        When a view or the target is not a floating-point tensor.
    ValueError
        When the views are inconsistent or not finite, or the target has the wrong shape, device or values
        (:func:`gcalib.losses.targets.validate_target`).
    RuntimeError
        When ``spec.gather_distributed`` is set without an initialised process group.
    """
    if spec.gather_distributed:
        distributed.require_initialized("shard_plan=True" if spec.shard_plan else "gather_distributed=True")
        views = tuple(distributed.all_gather_with_grad(view) for view in views)
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
        return composite_loss(contrastive_log_kernel(z, spec.eps), target / target.sum(dim=1, keepdim=True), spec)


ROBUST_SCALE_WARNING = 1e-6
"""Below this factor ``e^{−q/ε}`` a robust-only loss's SGD steps shrink by the same factor, Adam stalls once the
gradients fall under its 1e-8 floor, and float32 rounds the gradients of dissimilar pairs to zero."""


def _warn_if_robust_term_vanishes(spec: LossSpec, name: str) -> None:
    if spec.r2 == 0 or spec.r1 > 0 or robust_scale(spec) >= ROBUST_SCALE_WARNING:
        return
    eps_floor = spec.q / math.log(1 / ROBUST_SCALE_WARNING)
    warnings.warn(
        f"{name} at eps={spec.eps}, q={spec.q}: the robust term and its gradients carry the factor e^(-q/eps) = "
        f"{robust_scale(spec):.2g} relative to Chuang et al.'s RINCE at temperature eps: SGD steps shrink by that "
        f"factor, Adam stalls once gradients fall below its eps (1e-8), and float32 rounds the gradients of "
        f"dissimilar pairs to zero; use eps >= {eps_floor:.3g} at this q, or add a cross-entropy term (r1 > 0)",
        UserWarning, stacklevel=3)


class GCALoss(nn.Module):
    """A GCA loss as a module: ``loss(*views, target=None)`` calls :func:`gca_loss` with its spec.

    Build presets with :func:`make_loss`. Warns (``UserWarning``) when a robust-only loss (``r1 = 0``) has
    ``e^{−q/ε} <`` :data:`ROBUST_SCALE_WARNING`.

    Parameters
    ----------
    spec : LossSpec
        The loss's hyper-parameters.
    name : str
        A name for messages and ``repr``.

    Raises
    ------
    TypeError
        When ``spec`` is not a :class:`~gcalib.losses.spec.LossSpec`.
    """

    def __init__(self, spec: LossSpec = LossSpec(), name: str = "gca") -> None:
        super().__init__()
        if not isinstance(spec, LossSpec):
            raise TypeError(f"spec must be a LossSpec, got {type(spec).__name__}")
        _warn_if_robust_term_vanishes(spec, name)
        self.spec = spec
        self.name = name

    def forward(self, *views: torch.Tensor, target: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The loss of ``views`` against a target plan (see :func:`gca_loss`).

        Parameters
        ----------
        *views : torch.Tensor
            V ≥ 2 floating (B, D) projector outputs.
        target : torch.Tensor or None
            The target plan T; ``None`` is the positive pairs.

        Returns
        -------
        torch.Tensor
            The scalar loss.
        """
        return gca_loss(*views, target=target, spec=self.spec)

    @torch.no_grad()
    def plan(self, *views: torch.Tensor) -> torch.Tensor:
        """The transport plan the divergences compare with the target plan, detached.

        Parameters
        ----------
        *views : torch.Tensor
            V ≥ 2 (B, D) views, as for the loss.

        Returns
        -------
        torch.Tensor
            ``P̂`` or, for ``scored="sinkhorn"``, the Sinkhorn plan ``P``; shape (V·B, V·B).
        """
        return scored_plan(embed_views(views), self.spec)[1].exp()

    def extra_repr(self) -> str:
        """The name and every field of the spec, for ``repr``.

        Returns
        -------
        str
            ``"name='…', eps=…, n_iter=…, …"``.
        """
        return f"name={self.name!r}, " + ", ".join(f"{f.name}={getattr(self.spec, f.name)}" for f in fields(self.spec))


def make_loss(name: str, **hparams) -> GCALoss:
    """Build a named preset of the family with some hyper-parameters overridden.

    Parameters
    ----------
    name : str
        One of :data:`~gcalib.losses.spec.LOSSES` (case-insensitive): ``infonce``, ``hs_ince``, ``gca_ince``,
        ``rince``, ``gca_rince``, ``gca_uot``, ``iot``, ``iot_uni``.
    **hparams
        Fields of :class:`~gcalib.losses.spec.LossSpec` to override (``eps``, ``n_iter``, ``reg_a``, ...).

    Returns
    -------
    GCALoss
        The loss module.

    Raises
    ------
    TypeError
        When ``name`` is not a str or a hyper-parameter is unknown or of the wrong type.
    ValueError
        When ``name`` is not a preset or a hyper-parameter is out of range.

    Examples
    --------
    >>> import torch
    >>> from gcalib import make_loss
    >>> gen = torch.Generator().manual_seed(0)
    >>> x = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    >>> z1, z2 = (x + 0.1 * torch.randn(4, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    >>> round(float(make_loss("infonce")(z1, z2)), 4)
    0.9585
    >>> round(float(make_loss("gca_ince", eps=0.2)(z1, z2)), 4)
    0.4699
    >>> loss = make_loss("gca_uot", eps=0.2, reg_a=0.5)
    >>> loss.spec.n_iter, loss.spec.reg_a, loss.spec.reg_b
    (10, 0.5, 0.2)
    >>> loss.plan(z1, z2).shape
    torch.Size([8, 8])
    """
    if not isinstance(name, str):
        fail("loss name", name, "a str", TypeError)
    key = check_choice("loss", name.lower(), LOSSES)
    valid = {f.name for f in fields(LossSpec)}
    unknown = sorted(set(hparams) - valid)
    if unknown:
        raise TypeError(f"unknown hyper-parameter(s) {unknown} for loss {name!r}; valid: {sorted(valid)}")
    return GCALoss(replace(PRESETS[key], **hparams), name=key)
