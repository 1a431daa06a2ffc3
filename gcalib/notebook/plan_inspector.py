"""Designing and inspecting target plans: where the target puts each row's mass.

* :func:`build_plan` builds a named plan (``"positive"``, ``"labels"``, ``"domain"``) from the ids of
  a batch, the way :func:`gcalib.pretrain.trainer.pretrain` does per batch.
* :func:`lift_sample_weights` turns a per-sample affinity ``W`` (B, B) into a blocked target plan:
  ``T_rs = positive·[r ≠ s, same sample] + W_{i(r) i(s)}·[different samples]`` with ``i(r) = r mod B``.
  This is the simplest way to write one's own plan: decide how much sample i should be pulled towards
  sample j, once per pair of samples, and let the views follow.
* :func:`target_mass` says where the row-normalised target ``T̂ = T / T𝟙`` puts its mass, on average over
  rows: on positive pairs, on other samples of the same domain or class, on other domains or classes.
  For the domain plan, a row of domain k with ``m`` of the batch's B samples in k gets
  ``(V−1) / Z`` on positives, ``α·V(m−1) / Z`` on its domain and ``β·V(B−m) / Z`` elsewhere,
  ``Z = (V−1) + α·V(m−1) + β·V(B−m)``: in a batch of 128, α = 0.1 already puts most of the mass on
  the domain.
* :func:`plan_inspector` is an ipywidgets explorer (plan kind, α, β) drawing the plan and its mass
  breakdown; it builds and draws without a kernel, so headless runs do not block.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..losses import targets as plans
from ..validation import check_choice, check_int, check_nonnegative, check_positive, check_real

__all__ = ["PLAN_KINDS", "build_plan", "lift_sample_weights", "target_mass", "plot_target", "plan_inspector"]

PLAN_KINDS = ("positive", "labels", "domain")


def _ids(name: str, ids, batch_size: Optional[int] = None) -> torch.Tensor:
    ids = torch.as_tensor(ids)
    if ids.dim() != 1 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise ValueError(f"{name} must be a 1-d integer tensor (one id per sample), got dtype {ids.dtype} "
                         f"and shape {tuple(ids.shape)}")
    if batch_size is not None and len(ids) != batch_size:
        raise ValueError(f"{name} must hold one id per sample ({batch_size}), got {len(ids)}")
    return ids


def build_plan(kind: str, *, batch_size: Optional[int] = None, labels=None, domains=None, alpha: float = 0.0,
               beta: float = 0.0, n_views: int = 2) -> torch.Tensor:
    """The (n, n) target of plan ``kind``: ``"positive"`` (needs ``batch_size``, or the length of
    ``labels``/``domains``), ``"labels"`` (needs ``labels``) or ``"domain"`` (needs ``domains``; α, β)."""
    check_choice("plan kind", kind, PLAN_KINDS)
    if kind == "labels":
        if labels is None:
            raise ValueError("kind='labels' needs labels= (one class id per sample)")
        return plans.from_labels(_ids("labels", labels), n_views)
    if kind == "domain":
        if domains is None:
            raise ValueError("kind='domain' needs domains= (one domain id per sample)")
        return plans.domain_plan(_ids("domains", domains), alpha, beta, n_views)
    if batch_size is None:
        given = labels if labels is not None else domains
        if given is None:
            raise ValueError("kind='positive' needs batch_size= (or labels= or domains= to count the samples)")
        batch_size = len(given)
    return plans.positive_pairs(batch_size, n_views)


def lift_sample_weights(weights: torch.Tensor, n_views: int = 2, positive: float = 1.0) -> torch.Tensor:
    """Blocked (V·B, V·B) plan from per-sample weights ``W`` (B, B):
    ``T_rs = positive·[r ≠ s, same sample] + W_{r mod B, s mod B}·[different samples]``.

    ``W``'s diagonal is not used (those entries are the positive pairs). The result is checked with
    :func:`gcalib.losses.targets.validate_target`, so a row left without mass is reported.
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
    """Mean over rows of the row-normalised target's mass on each kind of pair.

    Keys: ``positive`` (views of the same sample), and, given ``domains``, ``same_domain`` /
    ``other_domain``; given ``labels``, ``same_class`` / ``other_class`` (all excluding the positives, so
    ``positive + same_domain + other_domain = 1``).
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
        ids = _ids("domains" if name == "domain" else "labels", ids, batch_size).to(target.device).repeat(n_views)
        same = ids[:, None] == ids[None, :]
        mass[f"same_{name}"] = share(same & ~positive)
        mass[f"other_{name}"] = share(~same)
    return mass


def plot_target(target: torch.Tensor, n_views: int = 2, *, domains=None, labels=None, title: Optional[str] = None,
                figure=None):
    """Heatmap of ``target`` (with the view blocks) and a bar chart of :func:`target_mass`; returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from .viz import plot_plan

    mass = target_mass(target, n_views, domains=domains, labels=labels)
    if figure is None:
        figure = plt.figure(figsize=(9.0, 3.8))
    elif not isinstance(figure, Figure):
        raise TypeError(f"figure must be a matplotlib Figure or None, got {type(figure).__name__}")
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": (1.1, 1.0)})
    plot_plan(target, left, title=title, n_views=n_views)
    names = list(mass)
    bars = right.barh(range(len(names)), [mass[k] for k in names], color="tab:purple")
    right.bar_label(bars, fmt="%.3f", padding=2, fontsize="small")
    right.set_yticks(range(len(names)), [k.replace("_", " ") for k in names])
    right.invert_yaxis()
    right.set_xlim(0, 1.15)
    right.set_xlabel("mean share of a row's target mass (T̂ = T / T𝟙)")
    figure.tight_layout()
    return figure


def plan_inspector(domains, labels=None, *, n_views: int = 2, kind: str = "domain", alpha: float = 0.2,
                   beta: float = 0.0, max_weight: float = 1.0):
    """An explorer with a plan-kind menu and α, β sliders, redrawing :func:`plot_target` for a batch
    whose samples have ``domains`` (and optionally ``labels``). Returns a :class:`gcalib.notebook.viz.Explorer`.

    α and β weight the domain plan only: the sliders are disabled while another kind is selected."""
    import ipywidgets as widgets
    from matplotlib.figure import Figure

    from .viz import CONTROL_STYLE, Explorer

    domains = _ids("domains", domains)
    if labels is not None:
        labels = _ids("labels", labels, len(domains))
    kinds = [k for k in PLAN_KINDS if k != "labels" or labels is not None]
    if kind == "labels" and labels is None:
        raise ValueError("kind='labels' needs labels= (one class id per sample)")
    check_choice("plan kind", kind, PLAN_KINDS)
    check_positive("max_weight", max_weight)
    for name, value in (("alpha", alpha), ("beta", beta)):
        check_real(name, value, lambda v: 0 <= v <= max_weight, f"a number in [0, max_weight={max_weight}]")
    step = max_weight / 100
    controls = {
        "kind": widgets.Dropdown(options=kinds, value=kind, description="plan", style=CONTROL_STYLE),
        "alpha": widgets.FloatSlider(value=alpha, min=0.0, max=max_weight, step=step, description="α (same domain)",
                                     continuous_update=False, readout_format=".2f", style=CONTROL_STYLE),
        "beta": widgets.FloatSlider(value=beta, min=0.0, max=max_weight, step=step, description="β (other domains)",
                                    continuous_update=False, readout_format=".2f", style=CONTROL_STYLE),
    }

    def active(kind: str, alpha: float, beta: float) -> dict[str, bool]:
        return {"alpha": kind == "domain", "beta": kind == "domain"}

    def draw(kind: str, alpha: float, beta: float) -> Figure:
        target = build_plan(kind, labels=labels, domains=domains, alpha=alpha, beta=beta, n_views=n_views)
        title = f"domain plan, α={alpha:.2f}, β={beta:.2f}" if kind == "domain" else f"{kind} plan"
        return plot_target(target, n_views, domains=domains, labels=labels, title=title,
                           figure=Figure(figsize=(9.0, 3.8)))

    return Explorer(draw, controls, active)
