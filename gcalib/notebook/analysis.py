"""Small numerical experiments behind the teaching notebooks (tested in ``tests/notebook/test_analysis.py``).

Three groups, one per notebook:

* optimal transport between point clouds: :func:`two_clouds`, :func:`squared_distances`,
  :func:`exact_plan` (linear programme), :func:`transport_cost`, :func:`plan_entropy`,
  :func:`entropic_entropy` (the entropy of the entropic OT objective), :func:`marginal_errors`
  (Sinkhorn's marginal error after every iteration), :func:`marginal_deviation`,
  :func:`convergence_summary`, :func:`eps_sweep`;
* the contrastive batch as a transport problem: :func:`contrastive_batch`, :func:`batch_cost`,
  :func:`nt_xent` (an independent InfoNCE written with ``F.cross_entropy``, any number of views),
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

from ..losses.composite import composite_loss, cross_entropy
from ..losses.gca import GCALoss, make_loss
from ..losses.kernel import embed_views, similarity_log_kernel
from ..losses.spec import LossSpec
from ..losses.targets import positive_pairs, validate_target
from ..ot.residual import plan_residual
from ..ot.solver import iterate, relaxation_factor, sinkhorn
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


def _check_matrices(**matrices: torch.Tensor) -> None:
    """Each argument a floating matrix, all of one shape (the error names them in the order given)."""
    for name, value in matrices.items():
        _check_matrix(name, value)
    shapes = [tuple(value.shape) for value in matrices.values()]
    if len(set(shapes)) > 1:
        *first, last = matrices
        raise ValueError(f"{', '.join(first)} and {last} must have the same shape, got "
                         f"{', '.join(map(str, shapes[:-1]))} and {shapes[-1]}")


# --------------------------------------------------------------------------- point clouds and OT

def two_clouds(
    n_source: int = 8, n_target: int = 8, *, n_outliers: int = 0, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two seeded 2-D point clouds for the transport examples.

    ``x`` is a round Gaussian blob at the origin; ``y`` an elongated blob centred at (3, 1) followed by
    ``n_outliers`` far points near (3, 6) (the last rows of ``y``).

    Parameters
    ----------
    n_source : int
        Points of ``x`` (≥ 1).
    n_target : int
        Points of the blob of ``y`` (≥ 1).
    n_outliers : int
        Far points appended to ``y`` (≥ 0).
    seed : int
        Seed of the CPU generator.
    dtype : torch.dtype
        Floating dtype of the result.

    Returns
    -------
    x, y : torch.Tensor
        Shapes (n_source, 2) and (n_target + n_outliers, 2).

    Raises
    ------
    TypeError
        When a count is not an int.
    ValueError
        When a count is out of range.
    """
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
    """The squared Euclidean cost ``C_ij = ‖x_i − y_j‖²``.

    Parameters
    ----------
    x : torch.Tensor
        Floating (n, d) points.
    y : torch.Tensor
        Floating (m, d) points.
    normalize : bool
        Divide by the largest entry, so that ``C ∈ [0, 1]`` and ε is on the scale of the cost.

    Returns
    -------
    torch.Tensor
        ``C``, shape (n, m).

    Raises
    ------
    TypeError
        When ``x`` or ``y`` is not a floating tensor.
    ValueError
        When they are not matrices of one dimension d, or ``normalize`` meets a cost that is zero everywhere.
    """
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
    """Unregularised OT, ``argmin_{P ≥ 0, P𝟙 = a, Pᵀ𝟙 = b} ⟨C, P⟩``, as a linear programme (SciPy's HiGHS).

    Meant for small problems (n·m variables).

    Parameters
    ----------
    cost : torch.Tensor
        Finite floating (n, m) cost.
    a, b : torch.Tensor or None
        Non-negative weights (n,) and (m,) of equal sums; default uniform probability vectors.

    Returns
    -------
    torch.Tensor
        The optimal plan, (n, m), in ``cost``'s dtype and device.

    Raises
    ------
    TypeError
        When ``cost`` is not a floating tensor.
    ValueError
        When ``cost`` is not a finite matrix, or the weights have the wrong shape, negative entries or
        unequal sums.
    RuntimeError
        When the linear programme fails.
    """
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
    """The transport cost ``⟨C, P⟩ = Σ_ij C_ij P_ij``.

    Pairs with ``P_ij = 0`` contribute nothing, even where ``C_ij = ∞``.

    Parameters
    ----------
    plan : torch.Tensor
        Floating (n, m) plan.
    cost : torch.Tensor
        Floating (n, m) cost.

    Returns
    -------
    float
        The cost of the plan.

    Raises
    ------
    TypeError
        When an argument is not a floating tensor.
    ValueError
        When they are not matrices of one shape.
    """
    _check_matrices(plan=plan, cost=cost)
    return float(torch.where(plan > 0, plan * cost, torch.zeros_like(plan)).sum())


def plan_entropy(plan: torch.Tensor) -> float:
    """The Shannon entropy ``H(P) = −Σ_ij P_ij log P_ij`` (``0 log 0 = 0``).

    Parameters
    ----------
    plan : torch.Tensor
        Non-negative floating (n, m) plan.

    Returns
    -------
    float
        The entropy.

    Raises
    ------
    TypeError
        When ``plan`` is not a floating tensor.
    ValueError
        When it is not a matrix or has a negative entry.
    """
    _check_matrix("plan", plan)
    if (plan < 0).any():
        raise ValueError("plan must be non-negative")
    return float(-torch.special.xlogy(plan, plan).sum())


def entropic_entropy(plan: torch.Tensor) -> float:
    """The entropy of the entropic OT objective ``⟨C, P⟩ − ε H(P)``: ``H(P) = −Σ_ij P_ij (log P_ij − 1)``.

    It is the Shannon entropy (:func:`plan_entropy`) plus the total mass ``Σ_ij P_ij``; for a plan of total
    mass one its largest value, reached by the uniform plan, is ``log(nm) + 1``.

    Parameters
    ----------
    plan : torch.Tensor
        Non-negative floating (n, m) plan.

    Returns
    -------
    float
        The entropy (``0 log 0 = 0``).

    Raises
    ------
    TypeError
        When ``plan`` is not a floating tensor.
    ValueError
        When it is not a matrix or has a negative entry.
    """
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
    """Sinkhorn's marginal error after each iteration, from one run.

    ``e_k`` equals ``sinkhorn(cost, eps, a, b, n_iter=k).marginal_error``, the residual of
    :mod:`gcalib.ot.residual`.

    Parameters
    ----------
    cost : torch.Tensor
        Floating (n, m) cost (see :func:`gcalib.ot.solver.sinkhorn`).
    eps : float
        Entropic regularisation ``ε > 0``.
    n_iter : int
        Iterations to run (≥ 1).
    a, b : torch.Tensor or None
        Marginal weights; default uniform.
    reg_a, reg_b : float
        Marginal relaxations ``ρ``; ``inf`` for a hard marginal.
    tol : float or None
        Stop after the first ``e_k < tol`` (so a log-scale plot never meets an error of exactly zero).

    Returns
    -------
    list of float
        ``[e_1, e_2, …]``.

    Raises
    ------
    TypeError, ValueError
        As :func:`gcalib.ot.solver.sinkhorn` for the problem, and for ``n_iter < 1`` or ``tol <= 0``.
    """
    check_int("n_iter", n_iter, 1)
    if tol is not None:
        check_positive("tol", tol)
    start = sinkhorn(cost, eps, a, b, reg_a=reg_a, reg_b=reg_b, n_iter=0)
    log_kernel = -start.cost / start.eps
    fa, fb = relaxation_factor(start.reg_a, start.eps), relaxation_factor(start.reg_b, start.eps)
    errors, gamma = [], None
    with torch.no_grad():
        for _ in range(n_iter):
            phi, gamma = iterate(log_kernel, start.log_a, start.log_b, fa, fb, 1, gamma)
            log_plan = log_kernel + phi.unsqueeze(-1) + gamma.unsqueeze(-2)
            errors.append(plan_residual(log_plan, phi, gamma, start.log_a, start.log_b, fa, fb))
            if tol is not None and errors[-1] < tol:
                break
    return errors


def marginal_deviation(plan: torch.Tensor, a: Optional[torch.Tensor] = None, b: Optional[torch.Tensor] = None) -> float:
    """How far a plan's marginals are from ``a`` and ``b``: ``‖P𝟙 − a‖₁ + ‖Pᵀ𝟙 − b‖₁``.

    For balanced OT this is Sinkhorn's marginal error; an unbalanced plan keeps a deviation at its optimum on
    purpose (it destroys or creates mass).

    Parameters
    ----------
    plan : torch.Tensor
        Floating (n, m) plan.
    a, b : torch.Tensor or None
        Weights (n,) and (m,); default uniform probability vectors.

    Returns
    -------
    float
        The deviation.

    Raises
    ------
    TypeError
        When ``plan`` is not a floating tensor.
    ValueError
        When it is not a matrix, or the weights have the wrong shape or negative entries.
    """
    _check_matrix("plan", plan)
    n, m = plan.shape
    a = _weights("a", a, n, plan)
    b = _weights("b", b, m, plan)
    return float((plan.sum(1) - a).abs().sum() + (plan.sum(0) - b).abs().sum())


def convergence_summary(errors: Sequence[float], tol: float) -> str:
    """One line about a trace of :func:`marginal_errors` run with ``tol``.

    Parameters
    ----------
    errors : sequence of float
        The trace.
    tol : float
        The tolerance it was run with (> 0).

    Returns
    -------
    str
        The iteration at which the error first fell below ``tol``, or the error after the last iteration
        (rounded to two digits).

    Raises
    ------
    ValueError
        When ``errors`` is empty or ``tol`` is not positive.
    """
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
    """Converged entropic plans for each ε, compared with the exact plan.

    Parameters
    ----------
    cost : torch.Tensor
        Finite floating (n, m) cost.
    eps_values : iterable of float
        The ε to solve for.
    a, b : torch.Tensor or None
        Marginal weights; default uniform.
    tol : float
        Residual each solve reaches.
    max_iter : int
        Most iterations per solve.

    Returns
    -------
    dict of str to list of float
        ``"eps"``, ``"cost"`` ``⟨C, P_ε⟩``, ``"entropy"`` (Shannon, :func:`plan_entropy`), ``"H"`` (the
        objective's ``−Σ P(log P − 1)``, :func:`entropic_entropy`), ``"iterations"`` and ``"gap"``
        ``⟨C, P_ε⟩ − ⟨C, P_exact⟩`` (:func:`exact_plan`), one entry per ε.

    Raises
    ------
    TypeError, ValueError
        As :func:`exact_plan` and :func:`gcalib.ot.solver.sinkhorn`.
    """
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

    Each sample is ``c_k + spread·ξ/√dim`` around one of ``n_clusters`` unit-norm centres ``c_k`` (clusters of
    unequal size make some embeddings "hubs"); each view adds ``view_noise·ξ'/√dim``.

    Parameters
    ----------
    batch_size : int
        Samples ``B ≥ 2``.
    dim : int
        Feature dimension (≥ 1).
    n_views : int
        Views ``V ≥ 2``.
    n_clusters : int
        Cluster centres (≥ 1).
    spread : float
        Spread of the samples around their centre (≥ 0).
    view_noise : float
        Noise of each view around its sample (≥ 0).
    seed : int
        Seed of the CPU generator.
    dtype : torch.dtype
        Floating dtype.
    device : str, torch.device or None
        Where the views are moved after drawing them.

    Returns
    -------
    list of torch.Tensor
        The ``n_views`` views.

    Raises
    ------
    TypeError
        When a count is not an int or a scale not a number.
    ValueError
        When one is out of range.
    """
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
    """The contrastive cost ``C = 1 − z zᵀ`` of the stacked, normalised views, with ``C_rr = +∞``.

    Parameters
    ----------
    views : sequence of torch.Tensor
        V ≥ 2 floating (B, D) views (:func:`gcalib.losses.kernel.embed_views`).

    Returns
    -------
    torch.Tensor
        ``C``, shape (V·B, V·B).

    Raises
    ------
    TypeError, ValueError
        As :func:`gcalib.losses.kernel.embed_views`.
    """
    z = embed_views(views)
    return (1.0 - z @ z.T).fill_diagonal_(math.inf)


def nt_xent(*views: torch.Tensor, temperature: Optional[float] = None) -> torch.Tensor:
    """NT-Xent (SimCLR) written with ``F.cross_entropy``: an independent InfoNCE for V ≥ 2 views.

    With the blocked rows (``n = V·B``) the logits are ``cos/τ`` over the n − 1 other rows; row ``r`` has the
    V − 1 labels ``(r + kB) mod n``, k = 1..V−1, and the loss is the mean over rows and over those labels (for
    two views, the usual NT-Xent).

    Parameters
    ----------
    *views : torch.Tensor
        The (B, D) views; the temperature may also be given as the last positional argument
        (``nt_xent(z1, z2, 0.5)``).
    temperature : float or None
        ``τ > 0``.

    Returns
    -------
    torch.Tensor
        The scalar loss.

    Raises
    ------
    TypeError
        When no temperature is given, or it is not a number.
    ValueError
        When it is not positive or fewer than two views are given.
    """
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
    """The cross-entropy of a plan against a target plan, split into KL divergence and target entropy.

    With the row-normalised target ``T̂ = T / T𝟙``: the cross-entropy ``−(1/n) Σ_rs T̂_rs log P_rs``
    (:func:`gcalib.losses.composite.cross_entropy`, what the GCA losses report), the mean row entropy of
    ``T̂`` and ``KL(T̂ ‖ P) = cross-entropy − entropy`` (per row, averaged). The two agree only when every row
    of ``T̂`` puts all its mass on one entry (entropy 0, e.g. two views).

    Parameters
    ----------
    target : torch.Tensor
        Target plan T, floating (n, n) (:func:`gcalib.losses.targets.validate_target`).
    plan : torch.Tensor
        Transport plan P, floating (n, n).

    Returns
    -------
    dict of str to float
        ``"cross_entropy"``, ``"target_entropy"`` and ``"kl"``.

    Raises
    ------
    TypeError
        When an argument is not a floating tensor.
    ValueError
        When the shapes differ or the target is not a valid target plan.
    """
    _check_matrices(target=target, plan=plan)
    validate_target(target, target.shape[0])
    hat = target / target.sum(1, keepdim=True)
    total = float(cross_entropy(hat, plan.clamp_min(0).log()))
    entropy = float(-torch.special.xlogy(hat, hat).sum(1).mean())
    return {"cross_entropy": total, "target_entropy": entropy, "kl": total - entropy}


def loss_vs_iterations(
    views: Sequence[torch.Tensor],
    eps_values: Iterable[float],
    n_iters: Iterable[int],
    *,
    name: str = "gca_ince",
    progress: bool = False,
    **hparams,
) -> dict[float, list[float]]:
    """The loss of a preset at a fixed batch as a function of the number of Sinkhorn iterations.

    Parameters
    ----------
    views : sequence of torch.Tensor
        The (B, D) views.
    eps_values : iterable of float
        The ε to evaluate.
    n_iters : iterable of int
        The numbers of iterations to evaluate.
    name : str
        The preset (:data:`gcalib.losses.spec.LOSSES`).
    progress : bool
        Show a progress bar over ε.
    **hparams
        Other hyper-parameters of :func:`gcalib.losses.gca.make_loss`.

    Returns
    -------
    dict of float to list of float
        ``{ε: [loss(n_iter) for n_iter in n_iters]}``.

    Raises
    ------
    TypeError, ValueError
        As :func:`gcalib.losses.gca.make_loss` and the loss call.
    """
    n_iters = list(n_iters)
    eps_values = list(eps_values)
    curves: dict[float, list[float]] = {}
    with torch.no_grad():
        for eps in tqdm(eps_values, desc="eps", disable=not progress):
            curves[float(eps)] = [float(make_loss(name, eps=eps, n_iter=k, **hparams)(*views)) for k in n_iters]
    return curves


def first_iteration_share(curve: Sequence[float], n_iters: Sequence[int]) -> float:
    """The share of the loss change from ``n_iter = 0`` to the last ``n_iter`` that the first iteration makes.

    ``(L(0) − L(1)) / (L(0) − L(last))`` for a curve of :func:`loss_vs_iterations`.

    Parameters
    ----------
    curve : sequence of float
        Losses, one per entry of ``n_iters``.
    n_iters : sequence of int
        The numbers of iterations; must contain 0 and 1.

    Returns
    -------
    float
        The share.

    Raises
    ------
    ValueError
        When the lengths differ, 0 or 1 is missing, or the loss does not change.
    """
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

    ``log K = (S − 1)/ε`` with ``log K_rr = −∞`` (:func:`gcalib.losses.kernel.similarity_log_kernel`), then
    the composite formula (:func:`gcalib.losses.composite.composite_loss`). Equal to ``gca_loss`` for
    ``S = z zᵀ``; differentiating it gives ∂loss/∂S_rs.

    Parameters
    ----------
    similarity : torch.Tensor
        ``S``, floating (n, n).
    spec : LossSpec
        The loss's hyper-parameters.
    target : torch.Tensor
        An (n, n) target plan; it is row-normalised here.

    Returns
    -------
    torch.Tensor
        The scalar loss, differentiable in ``similarity``.

    Raises
    ------
    TypeError
        When ``similarity`` or ``target`` is not a floating tensor or ``spec`` not a LossSpec.
    ValueError
        When ``similarity`` is not square or ``target`` is not a valid target plan.
    """
    _check_matrix("similarity", similarity)
    n = similarity.shape[0]
    if similarity.shape != (n, n):
        raise ValueError(f"similarity must be square, got shape {tuple(similarity.shape)}")
    if not isinstance(spec, LossSpec):
        raise TypeError(f"spec must be a LossSpec, got {type(spec).__name__}")
    validate_target(target, n)
    target = target.to(similarity.dtype)
    return composite_loss(similarity_log_kernel(similarity, spec.eps), target / target.sum(dim=1, keepdim=True), spec)


def similarity_gradient(loss: GCALoss, *views: torch.Tensor, target: Optional[torch.Tensor] = None) -> torch.Tensor:
    """∂loss/∂cos(z_r, z_s) for every unordered pair, as a symmetric (n, n) matrix ``G + Gᵀ``.

    ``G_rs = ∂loss/∂S_rs`` treats the cosine matrix entries as independent; a pair's cosine appears at (r, s)
    and (s, r), hence the sum. Negative entries pull a pair together under gradient descent, positive entries
    push it apart. The diagonal is zero (self-pairs are not candidates).

    Parameters
    ----------
    loss : GCALoss
        The loss (:func:`gcalib.losses.gca.make_loss`).
    *views : torch.Tensor
        The (B, D) views.
    target : torch.Tensor or None
        The target plan; default the positive pairs.

    Returns
    -------
    torch.Tensor
        The pair gradient, shape (V·B, V·B).

    Raises
    ------
    TypeError
        When ``loss`` is not a GCALoss, or as :func:`loss_from_similarity`.
    ValueError
        As :func:`loss_from_similarity`.
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
    """The unordered positive pairs ``r < s`` with ``T_rs > 0``.

    Parameters
    ----------
    target : torch.Tensor
        Floating (n, n) target plan.

    Returns
    -------
    rows, cols : torch.Tensor
        Indices of the pairs, row-major.

    Raises
    ------
    TypeError
        When ``target`` is not a floating tensor.
    ValueError
        When it is not a matrix.
    """
    _check_matrix("target", target)
    upper = torch.triu(target > 0, diagonal=1)
    rows, cols = upper.nonzero(as_tuple=True)
    return rows, cols


def corrupted_rows(mask: torch.Tensor, n_views: int) -> torch.Tensor:
    """The rows of the blocked layout that hold a view replaced by :func:`corrupt_views`.

    Parameters
    ----------
    mask : torch.Tensor
        Bool (B,) flags of the corrupted samples (whose last view was replaced).
    n_views : int
        Views ``V ≥ 2``.

    Returns
    -------
    torch.Tensor
        Bool (V·B,) flags.

    Raises
    ------
    TypeError
        When ``mask`` is not a 1-D bool tensor or ``n_views`` not an int.
    ValueError
        When ``n_views < 2``.
    """
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() != 1:
        raise TypeError(f"mask must be a one-dimensional bool tensor (one flag per sample), got {mask!r:.60}")
    check_int("n_views", n_views, 2)
    rows = torch.zeros(n_views * mask.numel(), dtype=torch.bool, device=mask.device)
    rows[(n_views - 1) * mask.numel():] = mask
    return rows


def pull_share(gradient: torch.Tensor, target: torch.Tensor, rows: torch.Tensor) -> float:
    """The fraction of the total pull on positive pairs spent on the pairs that touch flagged rows.

    The pull is that of :func:`pull_and_push`.

    Parameters
    ----------
    gradient : torch.Tensor
        Pair gradient (:func:`similarity_gradient`), floating (n, n).
    target : torch.Tensor
        The target plan, (n, n).
    rows : torch.Tensor
        Bool (n,) flags, e.g. :func:`corrupted_rows`.

    Returns
    -------
    float
        The share in [0, 1] when every pull is positive.

    Raises
    ------
    TypeError
        When a matrix is not a floating tensor.
    ValueError
        When ``rows`` has the wrong shape or dtype, or the positive pairs are not pulled together in total.
    """
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
    """Split a pair-gradient matrix by the target plan into pull on positives and push on negatives.

    ``pull = −Σ_{r<s, T_rs>0} G_rs`` (how hard positives are pulled together) and
    ``push = Σ_{r<s, T_rs=0} G_rs`` (how hard negatives are pushed apart).

    Parameters
    ----------
    gradient : torch.Tensor
        Pair gradient ``G`` (:func:`similarity_gradient`), floating (n, n).
    target : torch.Tensor
        The target plan, floating (n, n).

    Returns
    -------
    dict of str to float
        ``"pull"`` and ``"push"``.

    Raises
    ------
    TypeError
        When an argument is not a floating tensor.
    ValueError
        When they are not matrices of one shape.
    """
    _check_matrices(gradient=gradient, target=target)
    upper = torch.triu(torch.ones_like(target, dtype=torch.bool), diagonal=1)
    positive = upper & (target > 0)
    negative = upper & (target == 0)
    return {"pull": float(-gradient[positive].sum()), "push": float(gradient[negative].sum())}


def corrupt_views(
    views: Sequence[torch.Tensor], fraction: float, *, seed: int = 0
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Break ``round(fraction·B)`` positive pairs by replacing the last view of those samples.

    The replacement is an unrelated Gaussian vector scaled to the replaced row's norm; the other views are
    returned unchanged.

    Parameters
    ----------
    views : sequence of torch.Tensor
        V ≥ 2 (B, D) views.
    fraction : float
        Share of the samples to corrupt, in [0, 1].
    seed : int
        Seed of the CPU generator.

    Returns
    -------
    views : list of torch.Tensor
        The views with the last one corrupted.
    mask : torch.Tensor
        Bool (B,) flags of the corrupted samples.

    Raises
    ------
    TypeError
        When ``fraction`` is not a number.
    ValueError
        When it is outside [0, 1] or fewer than two views are given.
    """
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
    """Of the mass a plan puts above a reference, the share that lands on the target's pairs.

    The gained mass is the sum of the positive entries of ``plan − reference``; the target's pairs are those
    with ``T_rs > 0`` (e.g. positive pairs).

    Parameters
    ----------
    plan, reference : torch.Tensor
        Floating (n, n) transport plans.
    target : torch.Tensor
        Floating (n, n) target plan.

    Returns
    -------
    float
        The share in [0, 1].

    Raises
    ------
    TypeError
        When an argument is not a floating tensor.
    ValueError
        When the shapes differ or ``plan`` gains no mass anywhere.
    """
    _check_matrices(plan=plan, reference=reference, target=target)
    gain = (plan - reference).clamp_min(0)
    total = gain.sum()
    if total <= 0:
        raise ValueError("plan puts no mass above reference anywhere: a share is undefined")
    return float(gain[target > 0].sum() / total)
