"""Small numerical experiments behind the teaching notebooks (tested in ``tests/notebook/test_analysis.py``).

Three groups, one per notebook:

* optimal transport between point clouds: :func:`two_clouds`, :func:`squared_distances`,
  :func:`exact_plan` (linear programme), :func:`transport_cost`, :func:`plan_entropy`,
  :func:`entropic_entropy` (the entropy of the entropic OT objective), :func:`marginal_errors`
  (Sinkhorn's marginal error after every iteration), :func:`marginal_deviation`,
  :func:`convergence_summary`, :func:`eps_sweep`;
* the contrastive batch as a transport problem: :func:`contrastive_batch`, :func:`batch_cost`,
  :func:`nt_xent` (an independent InfoNCE written with ``cross_entropy``, any number of views),
  :func:`cross_entropy_and_kl`, :func:`loss_vs_iterations`, :func:`first_iteration_share`;
* the loss family under the microscope: :func:`loss_from_similarity`, :func:`similarity_gradient`
  (∂loss/∂cos for every pair), :func:`pull_and_push`, :func:`positive_pair_indices`,
  :func:`corrupt_views`, :func:`corrupted_rows`, :func:`pull_share`, :func:`gained_mass_share`.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linprog
from tqdm.auto import tqdm

from ..losses.gca import GCALoss, LossSpec, embed_views, kl_divergence, make_loss, plan_log_weights, robust_divergence
from ..ot.solver import OTResult, iterate, relaxation_factor, sinkhorn
from ..losses.targets import positive_pairs, validate_target
from ..validation import check_float_tensor, check_int, check_nonnegative, check_positive, check_real

__all__ = [
    "two_clouds",
    "squared_distances",
    "exact_plan",
    "transport_cost",
    "plan_entropy",
    "entropic_entropy",
    "marginal_errors",
    "marginal_deviation",
    "convergence_summary",
    "eps_sweep",
    "contrastive_batch",
    "batch_cost",
    "nt_xent",
    "cross_entropy_and_kl",
    "loss_vs_iterations",
    "first_iteration_share",
    "loss_from_similarity",
    "similarity_gradient",
    "positive_pair_indices",
    "pull_and_push",
    "corrupt_views",
    "corrupted_rows",
    "pull_share",
    "gained_mass_share",
]


def _check_matrix(name: str, value: torch.Tensor) -> torch.Tensor:
    check_float_tensor(name, value)
    if value.dim() != 2:
        raise ValueError(f"{name} must be a matrix (n, m), got shape {tuple(value.shape)}")
    return value


# --------------------------------------------------------------------------- point clouds and OT

def two_clouds(
    n_source: int = 8, n_target: int = 8, *, n_outliers: int = 0, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two 2-D point clouds: ``x`` a round Gaussian blob at the origin, ``y`` an elongated blob
    centred at (3, 1) followed by ``n_outliers`` far points near (3, 6) (the last rows of ``y``).
    Seeded by ``seed``; returns ``(x, y)`` of shapes (n_source, 2) and (n_target + n_outliers, 2)."""
    check_int("n_source", n_source, 1)
    check_int("n_target", n_target, 1)
    check_int("n_outliers", n_outliers, 0)
    gen = torch.Generator().manual_seed(seed)
    x = 0.6 * torch.randn(n_source, 2, generator=gen, dtype=dtype)
    stretch = torch.tensor([[1.2, 0.0], [0.0, 0.35]], dtype=dtype)
    y = torch.randn(n_target, 2, generator=gen, dtype=dtype) @ stretch + torch.tensor([3.0, 1.0], dtype=dtype)
    outliers = 0.3 * torch.randn(n_outliers, 2, generator=gen, dtype=dtype) + torch.tensor([3.0, 6.0], dtype=dtype)
    return x, torch.cat([y, outliers])


def squared_distances(x: torch.Tensor, y: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
    """Cost ``C_ij = ‖x_i − y_j‖²``, divided by its largest entry when ``normalize`` (so ``C ∈ [0, 1]``
    and ε is on the scale of the cost)."""
    _check_matrix("x", x)
    _check_matrix("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    cost = (x.unsqueeze(1) - y.unsqueeze(0)).pow(2).sum(-1)
    if normalize:
        largest = cost.max()
        if largest <= 0:
            raise ValueError("cannot normalize: every point of x coincides with every point of y")
        cost = cost / largest
    return cost


def _weights(name: str, weights: Optional[torch.Tensor], size: int, like: torch.Tensor) -> torch.Tensor:
    if weights is None:
        return torch.full((size,), 1.0 / size, dtype=like.dtype, device=like.device)
    if not isinstance(weights, torch.Tensor) or weights.shape != (size,):
        shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise ValueError(f"{name} must be a tensor of shape ({size},), got {shape}")
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"{name} must hold finite non-negative weights")
    return weights.to(like.dtype)


def exact_plan(cost: torch.Tensor, a: Optional[torch.Tensor] = None, b: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Unregularised OT: ``argmin_{P ≥ 0, P𝟙 = a, Pᵀ𝟙 = b} ⟨C, P⟩`` solved as a linear programme
    (SciPy's HiGHS). ``a``, ``b`` default to uniform probability vectors and must have equal sums.
    Meant for small problems (n·m variables)."""
    _check_matrix("cost", cost)
    if not torch.isfinite(cost).all():
        raise ValueError("cost must be finite for the exact solver")
    n, m = cost.shape
    a = _weights("a", a, n, cost)
    b = _weights("b", b, m, cost)
    if not math.isclose(float(a.sum()), float(b.sum()), rel_tol=1e-9, abs_tol=1e-12):
        raise ValueError(f"a and b must carry the same mass for balanced OT, got {float(a.sum())} and {float(b.sum())}")
    rows = np.kron(np.eye(n), np.ones((1, m)))
    cols = np.kron(np.ones((1, n)), np.eye(m))
    equality = np.vstack([rows, cols])
    rhs = np.concatenate([a.detach().cpu().double().numpy(), b.detach().cpu().double().numpy()])
    result = linprog(cost.detach().cpu().double().numpy().ravel(), A_eq=equality, b_eq=rhs, bounds=(0, None),
                     method="highs")
    if result.status != 0:
        raise RuntimeError(f"the linear programme failed: {result.message}")
    plan = result.x.reshape(n, m)
    return torch.as_tensor(plan, dtype=cost.dtype, device=cost.device)


def transport_cost(plan: torch.Tensor, cost: torch.Tensor) -> float:
    """``⟨C, P⟩ = Σ_ij C_ij P_ij``; pairs with ``P_ij = 0`` contribute nothing even where ``C_ij = ∞``."""
    _check_matrix("plan", plan)
    _check_matrix("cost", cost)
    if plan.shape != cost.shape:
        raise ValueError(f"plan and cost must have the same shape, got {tuple(plan.shape)} and {tuple(cost.shape)}")
    return float(torch.where(plan > 0, plan * cost, torch.zeros_like(plan)).sum())


def plan_entropy(plan: torch.Tensor) -> float:
    """Shannon entropy ``H(P) = −Σ_ij P_ij log P_ij`` (``0 log 0 = 0``)."""
    _check_matrix("plan", plan)
    if (plan < 0).any():
        raise ValueError("plan must be non-negative")
    return float(-torch.special.xlogy(plan, plan).sum())


def entropic_entropy(plan: torch.Tensor) -> float:
    """``H(P) = −Σ_ij P_ij (log P_ij − 1)``, the entropy in the entropic OT objective ``⟨C, P⟩ − ε H(P)``
    (``0 log 0 = 0``): the Shannon entropy (:func:`plan_entropy`) plus the total mass ``Σ_ij P_ij``.
    For a plan of total mass one its largest value, reached by the uniform plan, is ``log(nm) + 1``."""
    return plan_entropy(plan) + float(plan.sum())


def marginal_errors(
    cost: torch.Tensor,
    eps: float,
    n_iter: int,
    a: Optional[torch.Tensor] = None,
    b: Optional[torch.Tensor] = None,
    *,
    reg_a: float = math.inf,
    reg_b: float = math.inf,
    tol: Optional[float] = None,
) -> list[float]:
    """``[e_1, e_2, …]``: the marginal error (``OTResult.marginal_error``) of Sinkhorn after each
    iteration, from one run; ``e_k`` equals ``sinkhorn(cost, eps, a, b, n_iter=k).marginal_error``.
    Runs ``n_iter`` iterations, or stops after the first ``e_k < tol`` when ``tol`` is given (so a
    log-scale plot never meets an error of exactly zero)."""
    check_int("n_iter", n_iter, 1)
    if tol is not None:
        check_positive("tol", tol)
    start = sinkhorn(cost, eps, a, b, reg_a=reg_a, reg_b=reg_b, n_iter=0)
    log_kernel = -start.cost / start.eps
    fa, fb = relaxation_factor(start.reg_a, start.eps), relaxation_factor(start.reg_b, start.eps)
    errors, gamma = [], None
    with torch.no_grad():
        for k in range(1, n_iter + 1):
            phi, gamma = iterate(log_kernel, start.log_a, start.log_b, fa, fb, 1, gamma)
            state = OTResult(f=start.eps * phi, g=start.eps * gamma, cost=start.cost, eps=start.eps,
                             log_a=start.log_a, log_b=start.log_b, reg_a=start.reg_a, reg_b=start.reg_b,
                             n_iter=k, converged=None)
            errors.append(state.marginal_error)
            if tol is not None and errors[-1] < tol:
                break
    return errors


def marginal_deviation(plan: torch.Tensor, a: Optional[torch.Tensor] = None, b: Optional[torch.Tensor] = None) -> float:
    """``‖P𝟙 − a‖₁ + ‖Pᵀ𝟙 − b‖₁``: how far the plan's marginals are from ``a`` and ``b`` (uniform
    probability vectors by default). For balanced OT this is Sinkhorn's marginal error; an unbalanced
    plan keeps a deviation at its optimum on purpose (it destroys or creates mass)."""
    _check_matrix("plan", plan)
    n, m = plan.shape
    a = _weights("a", a, n, plan)
    b = _weights("b", b, m, plan)
    return float((plan.sum(1) - a).abs().sum() + (plan.sum(0) - b).abs().sum())


def convergence_summary(errors: Sequence[float], tol: float) -> str:
    """One line about a trace of :func:`marginal_errors` run with ``tol``: the iteration at which the
    error first fell below ``tol``, or the error after the last iteration (rounded to two digits)."""
    check_positive("tol", tol)
    errors = list(errors)
    if not errors:
        raise ValueError("errors must hold at least one marginal error")
    below = [k for k, error in enumerate(errors, start=1) if error < tol]
    if below:
        return f"below {tol:.0e} after {below[0]} iterations"
    return f"{errors[-1]:.1e} after {len(errors)} iterations (not converged)"


def eps_sweep(
    cost: torch.Tensor,
    eps_values: Iterable[float],
    a: Optional[torch.Tensor] = None,
    b: Optional[torch.Tensor] = None,
    *,
    tol: float = 1e-9,
    max_iter: int = 20000,
) -> dict[str, list[float]]:
    """Converged entropic plans for each ε: ``{"eps", "cost" ⟨C,P_ε⟩, "entropy"`` (Shannon, :func:`plan_entropy`),
    ``"H"`` (the objective's ``−Σ P(log P − 1)``, :func:`entropic_entropy`), ``"iterations", "gap"
    ⟨C,P_ε⟩ − ⟨C,P_exact⟩}`` (the gap uses :func:`exact_plan`)."""
    reference = transport_cost(exact_plan(cost, a, b), cost)
    table: dict[str, list[float]] = {"eps": [], "cost": [], "entropy": [], "H": [], "iterations": [], "gap": []}
    for eps in eps_values:
        result = sinkhorn(cost, eps, a, b, tol=tol, max_iter=max_iter)
        value = transport_cost(result.plan, cost)
        table["eps"].append(float(eps))
        table["cost"].append(value)
        table["entropy"].append(plan_entropy(result.plan))
        table["H"].append(entropic_entropy(result.plan))
        table["iterations"].append(result.n_iter)
        table["gap"].append(value - reference)
    return table


# --------------------------------------------------------------------------- contrastive batches

def contrastive_batch(
    batch_size: int = 16,
    dim: int = 16,
    *,
    n_views: int = 2,
    n_clusters: int = 4,
    spread: float = 0.5,
    view_noise: float = 0.3,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: Union[str, torch.device, None] = None,
) -> list[torch.Tensor]:
    """A synthetic batch of projector outputs: ``n_views`` tensors of shape (batch_size, dim).

    Each sample is ``c_k + spread·ξ/√dim`` around one of ``n_clusters`` unit-norm centres ``c_k``
    (clusters of unequal size make some embeddings "hubs"); each view adds ``view_noise·ξ'/√dim``.
    Seeded by ``seed`` (CPU generator, then moved to ``device``)."""
    check_int("batch_size", batch_size, 2)
    check_int("dim", dim, 1)
    check_int("n_views", n_views, 2)
    check_int("n_clusters", n_clusters, 1)
    check_nonnegative("spread", spread)
    check_nonnegative("view_noise", view_noise)
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_clusters, dim, generator=gen, dtype=dtype)
    centres = centres / centres.norm(dim=1, keepdim=True)
    members = torch.randint(0, n_clusters, (batch_size,), generator=gen)
    scale = 1.0 / math.sqrt(dim)
    samples = centres[members] + spread * scale * torch.randn(batch_size, dim, generator=gen, dtype=dtype)
    views = [samples + view_noise * scale * torch.randn(batch_size, dim, generator=gen, dtype=dtype)
             for _ in range(n_views)]
    return [view.to(device) for view in views]


def batch_cost(views: Sequence[torch.Tensor]) -> torch.Tensor:
    """The contrastive cost ``C = 1 − z zᵀ`` of the stacked, normalised views, ``C_rr = +∞``."""
    z = embed_views(views)
    return (1.0 - z @ z.T).fill_diagonal_(math.inf)


def nt_xent(*views: torch.Tensor, temperature: Optional[float] = None) -> torch.Tensor:
    """NT-Xent (SimCLR) written with ``F.cross_entropy``, for V ≥ 2 views of B samples (blocked rows,
    n = V·B): logits ``cos/τ`` over the n − 1 other rows; row ``r`` has the V − 1 labels
    ``(r + kB) mod n``, k = 1..V−1, and the loss is the mean over rows and over those labels (for two
    views, the usual NT-Xent). ``temperature`` may also be given as the last positional argument
    (``nt_xent(z1, z2, 0.5)``)."""
    if temperature is None and views and not isinstance(views[-1], torch.Tensor):
        views, temperature = views[:-1], views[-1]
    if temperature is None:
        raise TypeError("nt_xent needs a temperature: nt_xent(*views, temperature=0.5)")
    check_positive("temperature", temperature)
    if len(views) < 2:
        raise ValueError(f"nt_xent needs at least two views, got {len(views)}")
    z = F.normalize(torch.cat(views), dim=1)
    n, batch_size = z.shape[0], views[0].shape[0]
    logits = (z @ z.T / temperature).masked_fill(torch.eye(n, dtype=torch.bool, device=z.device), -math.inf)
    rows = torch.arange(n, device=z.device)
    return torch.stack([F.cross_entropy(logits, (rows + k * batch_size) % n) for k in range(1, len(views))]).mean()


def cross_entropy_and_kl(target: torch.Tensor, plan: torch.Tensor) -> dict[str, float]:
    """The cross-entropy ``−(1/n) Σ_rs T̂_rs log P_rs`` of a plan against the row-normalised target
    ``T̂ = T / T𝟙``, the mean row entropy of ``T̂`` and the KL divergence ``KL(T̂ ‖ P) = cross-entropy −
    entropy`` (per row, averaged). The GCA losses report the cross-entropy; it equals the KL only when
    every row of ``T̂`` puts all its mass on one entry (entropy 0, e.g. two views)."""
    _check_matrix("target", target)
    _check_matrix("plan", plan)
    if target.shape != plan.shape:
        raise ValueError(f"target and plan must have the same shape, got {tuple(target.shape)} and {tuple(plan.shape)}")
    validate_target(target, target.shape[0])
    hat = target / target.sum(1, keepdim=True)
    log_plan = torch.where(hat > 0, plan.clamp_min(0).log(), torch.zeros_like(plan))
    cross_entropy = float(-(hat * log_plan).sum(1).mean())
    entropy = float(-torch.special.xlogy(hat, hat).sum(1).mean())
    return {"cross_entropy": cross_entropy, "target_entropy": entropy, "kl": cross_entropy - entropy}


def loss_vs_iterations(
    views: Sequence[torch.Tensor],
    eps_values: Iterable[float],
    n_iters: Iterable[int],
    *,
    name: str = "gca_ince",
    progress: bool = False,
    **hparams,
) -> dict[float, list[float]]:
    """``{ε: [loss(n_iter) for n_iter in n_iters]}`` for the preset ``name`` at a fixed batch."""
    n_iters = list(n_iters)
    eps_values = list(eps_values)
    curves: dict[float, list[float]] = {}
    with torch.no_grad():
        for eps in tqdm(eps_values, desc="eps", disable=not progress):
            curves[float(eps)] = [float(make_loss(name, eps=eps, n_iter=k, **hparams)(*views)) for k in n_iters]
    return curves


def first_iteration_share(curve: Sequence[float], n_iters: Sequence[int]) -> float:
    """Share of the loss change from ``n_iter = 0`` to the last entry of ``n_iters`` that the first
    iteration makes: ``(L(0) − L(1)) / (L(0) − L(last))`` for a curve of :func:`loss_vs_iterations`
    (``n_iters`` must contain 0 and 1)."""
    n_iters = list(n_iters)
    curve = [float(v) for v in curve]
    if len(curve) != len(n_iters):
        raise ValueError(f"curve has {len(curve)} values but n_iters has {len(n_iters)}")
    if 0 not in n_iters or 1 not in n_iters:
        raise ValueError(f"n_iters must contain 0 and 1, got {n_iters}")
    start, first, last = curve[n_iters.index(0)], curve[n_iters.index(1)], curve[-1]
    if start == last:
        raise ValueError("the loss does not change between n_iter = 0 and the last n_iter: a share is undefined")
    return (start - first) / (start - last)


# --------------------------------------------------------------------------- gradients and corruption

def loss_from_similarity(similarity: torch.Tensor, spec: LossSpec, target: torch.Tensor) -> torch.Tensor:
    """The GCA loss of :func:`gcalib.losses.gca.gca_loss` as a function of the cosine matrix ``S``.

    ``log K = (S − 1)/ε`` with ``log K_rr = −∞``; the plan and divergences are those of ``spec``;
    ``target`` is an (n, n) target plan (it is row-normalised here). Equal to ``gca_loss`` for
    ``S = z zᵀ``; differentiating it gives ∂loss/∂S_rs.
    """
    _check_matrix("similarity", similarity)
    n = similarity.shape[0]
    if similarity.shape != (n, n):
        raise ValueError(f"similarity must be square, got shape {tuple(similarity.shape)}")
    if not isinstance(spec, LossSpec):
        raise TypeError(f"spec must be a LossSpec, got {type(spec).__name__}")
    validate_target(target, n)
    target = target.to(similarity.dtype)
    target = target / target.sum(dim=1, keepdim=True)
    diagonal = torch.eye(n, dtype=torch.bool, device=similarity.device)
    log_kernel = ((similarity - 1.0) / spec.eps).masked_fill(diagonal, -math.inf)
    log_weights, phi = plan_log_weights(log_kernel, spec)
    if spec.plan == "sinkhorn":
        log_weights = log_weights + phi.unsqueeze(-1)
        log_plan = log_weights
    else:
        log_plan = torch.log_softmax(log_weights, dim=1)
    loss = similarity.new_zeros(())
    if spec.r1 > 0:
        loss = loss + spec.r1 * kl_divergence(target, log_plan)
    if spec.r2 > 0:
        loss = loss + spec.r2 * robust_divergence(target, log_weights, spec.q, spec.lam)
    if spec.uni_weight > 0:
        candidates = (~diagonal).to(similarity.dtype)
        loss = loss + spec.uni_weight * kl_divergence(candidates / candidates.sum(1, keepdim=True), log_plan)
    return loss


def similarity_gradient(loss: GCALoss, *views: torch.Tensor, target: Optional[torch.Tensor] = None) -> torch.Tensor:
    """∂loss/∂cos(z_r, z_s) for every unordered pair, as a symmetric (n, n) matrix ``G + Gᵀ``.

    ``G_rs = ∂loss/∂S_rs`` treats the cosine matrix entries as independent; a pair's cosine appears
    at (r, s) and (s, r), hence the sum. Negative entries pull a pair together under gradient descent,
    positive entries push it apart. The diagonal is zero (self-pairs are not candidates).
    """
    if not isinstance(loss, GCALoss):
        raise TypeError(f"loss must be a GCALoss (from make_loss), got {type(loss).__name__}")
    with torch.no_grad():
        z = embed_views(views)
        similarity = z @ z.T
    n = similarity.shape[0]
    if target is None:
        target = positive_pairs(views[0].shape[0], len(views), device=z.device, dtype=z.dtype)
    similarity.requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_from_similarity(similarity, loss.spec, target), similarity)
    symmetric = grad + grad.T
    return symmetric.masked_fill(torch.eye(n, dtype=torch.bool, device=grad.device), 0.0)


def positive_pair_indices(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, cols)`` of the unordered positive pairs ``r < s`` with ``T_rs > 0``."""
    _check_matrix("target", target)
    upper = torch.triu(target > 0, diagonal=1)
    rows, cols = upper.nonzero(as_tuple=True)
    return rows, cols


def corrupted_rows(mask: torch.Tensor, n_views: int) -> torch.Tensor:
    """Rows of the blocked layout (n = V·B) that hold a view replaced by :func:`corrupt_views`
    (the last view of each sample flagged in ``mask``): a boolean (n,) vector."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() != 1:
        raise TypeError(f"mask must be a one-dimensional bool tensor (one flag per sample), got {mask!r:.60}")
    check_int("n_views", n_views, 2)
    rows = torch.zeros(n_views * mask.numel(), dtype=torch.bool, device=mask.device)
    rows[(n_views - 1) * mask.numel():] = mask
    return rows


def pull_share(gradient: torch.Tensor, target: torch.Tensor, rows: torch.Tensor) -> float:
    """Fraction of the total pull on positive pairs (see :func:`pull_and_push`) spent on the positive
    pairs that touch one of ``rows`` (a boolean (n,) vector, e.g. :func:`corrupted_rows`)."""
    _check_matrix("gradient", gradient)
    first, second = positive_pair_indices(target)
    if not isinstance(rows, torch.Tensor) or rows.dtype != torch.bool or rows.shape != (gradient.shape[0],):
        raise ValueError(f"rows must be a bool tensor of shape ({gradient.shape[0]},)")
    pull = -gradient[first, second]
    flagged = rows[first] | rows[second]
    total = pull.sum()
    if total <= 0:
        raise ValueError(f"the positive pairs are not pulled together in total (pull = {float(total):.3g}); a share is undefined")
    return float(pull[flagged].sum() / total)


def pull_and_push(gradient: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Split a pair-gradient matrix (:func:`similarity_gradient`) by the target:
    ``pull = −Σ_{r<s, T_rs>0} G_rs`` (how hard positives are pulled together) and
    ``push = Σ_{r<s, T_rs=0} G_rs`` (how hard negatives are pushed apart)."""
    _check_matrix("gradient", gradient)
    _check_matrix("target", target)
    if gradient.shape != target.shape:
        raise ValueError(f"gradient and target must have the same shape, got {tuple(gradient.shape)} and {tuple(target.shape)}")
    upper = torch.triu(torch.ones_like(target, dtype=torch.bool), diagonal=1)
    positive = upper & (target > 0)
    negative = upper & (target == 0)
    return {"pull": float(-gradient[positive].sum()), "push": float(gradient[negative].sum())}


def corrupt_views(
    views: Sequence[torch.Tensor], fraction: float, *, seed: int = 0
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Break ``round(fraction·B)`` positive pairs: the last view of those samples is replaced by an
    unrelated Gaussian vector (scaled to the replaced rows' norms). Returns the new views and a
    boolean mask (B,) of corrupted samples; the other views are returned unchanged."""
    check_real("fraction", fraction, lambda v: 0 <= v <= 1, "a number in [0, 1]")
    if len(views) < 2:
        raise ValueError(f"need at least two views, got {len(views)}")
    batch_size = views[0].shape[0]
    gen = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(batch_size, generator=gen)[: round(fraction * batch_size)]
    mask = torch.zeros(batch_size, dtype=torch.bool)
    mask[chosen] = True
    last = views[-1]
    noise = torch.randn(last.shape, generator=gen, dtype=last.dtype).to(last.device)
    noise = noise / noise.norm(dim=1, keepdim=True) * last.norm(dim=1, keepdim=True)
    device_mask = mask.to(last.device).unsqueeze(1)
    corrupted = torch.where(device_mask, noise, last)
    return [*views[:-1], corrupted], mask


def gained_mass_share(plan: torch.Tensor, reference: torch.Tensor, target: torch.Tensor) -> float:
    """Of the mass ``plan`` puts above ``reference`` (the sum of the positive entries of ``plan −
    reference``), the share that lands on the target's pairs (``T_rs > 0``, e.g. positive pairs)."""
    _check_matrix("plan", plan)
    _check_matrix("reference", reference)
    _check_matrix("target", target)
    if not plan.shape == reference.shape == target.shape:
        raise ValueError(f"plan, reference and target must have the same shape, got {tuple(plan.shape)}, "
                         f"{tuple(reference.shape)} and {tuple(target.shape)}")
    gain = (plan - reference).clamp_min(0)
    total = gain.sum()
    if total <= 0:
        raise ValueError("plan puts no mass above reference anywhere: a share is undefined")
    return float(gain[target > 0].sum() / total)
