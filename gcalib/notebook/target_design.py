"""Designing target plans: build a named plan for a batch, lift per-sample weights to views, and measure
where a plan puts each row's mass.

Pure tensor functions (no figure, no widget): :func:`gcalib.notebook.figures.plot_target` draws a plan with
its mass shares and :func:`gcalib.notebook.explorers.plan_inspector` redraws it under sliders.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..losses import targets as plans
from ..validation import check_choice, check_ids, check_int, check_nonnegative

__all__ = ["build_plan", "lift_sample_weights", "target_mass"]


def build_plan(kind: str, *, batch_size: Optional[int] = None, labels=None, domains=None, alpha: float = 0.0,
               beta: float = 0.0, n_views: int = 2) -> torch.Tensor:
    """The target plan of kind ``kind`` for one batch, as the trainer builds it per batch.

    ``"positive"``: :func:`gcalib.positive_pairs`; ``"labels"``: :func:`gcalib.from_labels`;
    ``"domain"``: :func:`gcalib.domain_plan`, ``T_rs = [positive] + α·[same domain] + β·[other domain]``.

    Parameters
    ----------
    kind : {"positive", "labels", "domain"}
        Which plan (:data:`gcalib.losses.targets.TARGET_KINDS`).
    batch_size : int, optional
        Number of samples B, for ``"positive"``; defaults to the length of ``labels`` or ``domains``.
    labels : sequence of int, optional
        One class id per sample; required for ``"labels"``.
    domains : sequence of int, optional
        One domain id per sample; required for ``"domain"``.
    alpha, beta : float
        Weights of same-domain and other-domain pairs of the domain plan.
    n_views : int
        Number of views V per sample.

    Returns
    -------
    torch.Tensor
        The (V·B, V·B) target plan in the blocked layout.

    Raises
    ------
    TypeError
        For ids that are not integers.
    ValueError
        For an unknown ``kind``, a missing ``labels``/``domains``/``batch_size``, or ids of the wrong shape.
    """
    check_choice("plan kind", kind, plans.TARGET_KINDS)
    return plans.target_plan(kind, batch_size, labels=labels, domains=domains, alpha=alpha, beta=beta,
                             n_views=n_views)


def lift_sample_weights(weights: torch.Tensor, n_views: int = 2, positive: float = 1.0) -> torch.Tensor:
    """Blocked target plan from per-sample weights: how much sample i is pulled towards sample j, once per
    pair of samples, with the views following.

    ``T_rs = positive·[r ≠ s, same sample] + W_{r mod B, s mod B}·[different samples]``. The diagonal of
    ``W`` is not used (those entries are the positive pairs).

    Parameters
    ----------
    weights : torch.Tensor
        Floating-point (B, B) affinity ``W`` between samples, B >= 2, non-negative.
    n_views : int
        Number of views V per sample.
    positive : float
        Weight of the positive pairs (views of the same sample), >= 0.

    Returns
    -------
    torch.Tensor
        The (V·B, V·B) plan, checked with :func:`gcalib.validate_target`.

    Raises
    ------
    TypeError
        If ``weights`` is not a floating-point tensor.
    ValueError
        If ``weights`` is not square with B >= 2, ``positive`` is negative, or the plan has a negative
        entry or a row without mass.
    """
    if not isinstance(weights, torch.Tensor) or not weights.is_floating_point():
        raise TypeError(f"weights must be a floating-point torch.Tensor (B, B), got {type(weights).__name__}"
                        + (f" of dtype {weights.dtype}" if isinstance(weights, torch.Tensor) else ""))
    if weights.dim() != 2 or weights.shape[0] != weights.shape[1] or weights.shape[0] < 2:
        raise ValueError(f"weights must be a square (B, B) matrix with B >= 2 (one row and column per sample), "
                         f"got shape {tuple(weights.shape)}")
    check_nonnegative("positive", positive)
    batch_size = weights.shape[0]
    same_sample = plans.positive_pairs(batch_size, n_views, device=weights.device, dtype=weights.dtype)
    others = weights.repeat(n_views, n_views)
    index = plans.sample_index(batch_size, n_views, weights.device)
    others = others.masked_fill(index[:, None] == index[None, :], 0.0)
    return plans.validate_target(positive * same_sample + others, n_views * batch_size)


def target_mass(target: torch.Tensor, n_views: int = 2, *, domains=None, labels=None) -> dict[str, float]:
    """Mean over rows of the mass the row-normalised target ``T̂ = T / T𝟙`` puts on each kind of pair.

    For the domain plan, a row of domain k with ``m`` of the batch's B samples in k gets ``(V−1)/Z`` on
    positives, ``α·V(m−1)/Z`` on its domain and ``β·V(B−m)/Z`` elsewhere, with
    ``Z = (V−1) + α·V(m−1) + β·V(B−m)``: in a batch of 128, α = 0.1 already puts most of the mass on the
    domain.

    Parameters
    ----------
    target : torch.Tensor
        (n, n) target plan in the blocked layout, n divisible by ``n_views``.
    n_views : int
        Number of views V per sample, >= 2.
    domains : sequence of int, optional
        One domain id per sample (B = n / V of them).
    labels : sequence of int, optional
        One class id per sample.

    Returns
    -------
    dict of str to float
        ``positive`` (views of the same sample); given ``domains``, ``same_domain`` and ``other_domain``;
        given ``labels``, ``same_class`` and ``other_class``. The shares exclude the positives, so
        ``positive + same_domain + other_domain = 1``.

    Raises
    ------
    ValueError
        If ``target`` is not a valid (n, n) target with n divisible by ``n_views``, or ``domains``/``labels``
        do not hold one integer id per sample.
    """
    check_int("n_views", n_views, 2)
    if not isinstance(target, torch.Tensor) or target.dim() != 2 or target.shape[0] % n_views:
        raise ValueError(f"target must be an (n, n) tensor with n divisible by n_views={n_views}, got "
                         f"{tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__}")
    n = target.shape[0]
    plans.validate_target(target, n)
    batch_size = n // n_views
    rows = target / target.sum(1, keepdim=True)
    index = plans.sample_index(batch_size, n_views, target.device)
    positive = index[:, None] == index[None, :]

    def share(mask: torch.Tensor) -> float:
        return float((rows * mask).sum(1).mean())

    mass = {"positive": share(positive)}
    for name, ids in (("domain", domains), ("class", labels)):
        if ids is None:
            continue
        ids = check_ids("domains" if name == "domain" else "labels", ids, length=batch_size)
        ids = ids.to(target.device).repeat(n_views)
        same = ids[:, None] == ids[None, :]
        mass[f"same_{name}"] = share(same & ~positive)
        mass[f"other_{name}"] = share(~same)
    return mass
