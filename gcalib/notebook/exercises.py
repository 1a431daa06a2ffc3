"""Self-checks for the exercises of notebooks 01–05 and 07 (notebook-helper layer, tested in ``tests/notebook/test_exercises.py``).

Every ``check_*`` function takes the participant's function, runs it on a small fixed problem, compares
the numbers with gcalib (and, where it is installed, POT), prints what is right and what is wrong, and
returns True when everything matches. It never raises on a wrong answer: an exercise cell whose
placeholder (``...`` or ``None``) is still there prints "not solved yet" and returns False, so a notebook
with unsolved exercises still runs from top to bottom.

=========================================  =================================================
notebook                                   checks
=========================================  =================================================
01 entropic OT and Sinkhorn                :func:`check_log_sinkhorn`, :func:`check_unbalanced_sinkhorn`
02 InfoNCE is one Sinkhorn step            :func:`check_infonce_from_kernel`, :func:`check_three_view_target`
03 the GCA loss family                     :func:`check_infonce_gradient`, :func:`check_rince_loss`
04 pretraining on a CPU                    :func:`check_knn_accuracy`, :func:`check_alignment_uniformity`
05 extreme views and unbalanced OT         :func:`check_break_pairs`, :func:`check_unbalanced_row_mass`
07 custom target plans                     :func:`check_domain_plan`, :func:`check_hospital_plan`
=========================================  =================================================

Solutions are in ``notebooks/solutions/``, one file per notebook, one function per exercise.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ..losses.gca import make_loss
from ..losses.targets import domain_plan, from_labels, positive_pairs, validate_target
from ..ot.solver import sinkhorn
from ..training.evaluate import alignment, knn_accuracy, uniformity
from . import analysis
from .batch_plans import positive_pair_mass

__all__ = [
    "NOT_SOLVED",
    "check_log_sinkhorn",
    "check_unbalanced_sinkhorn",
    "check_infonce_from_kernel",
    "check_three_view_target",
    "check_infonce_gradient",
    "check_rince_loss",
    "check_knn_accuracy",
    "check_alignment_uniformity",
    "check_break_pairs",
    "check_unbalanced_row_mass",
    "check_domain_plan",
    "check_hospital_plan",
]

NOT_SOLVED = "not solved yet"
_TOLERANCE = 1e-8


class _Unsolved(Exception):
    """The answer still holds its placeholder (``...`` or ``None``)."""


def _is_placeholder(value: Any) -> bool:
    if value is None or value is Ellipsis:
        return True
    if isinstance(value, (tuple, list)):
        return any(_is_placeholder(item) for item in value)
    return False


def _call(function: Callable, *args):
    """``function(*args)``; raises :class:`_Unsolved` when the answer or its result is still a placeholder
    (also when the placeholder made the call fail, e.g. ``... * x`` or ``plan.sum(1)`` with ``plan = ...``)."""
    if _is_placeholder(function):
        raise _Unsolved
    try:
        value = function(*args)
    except (TypeError, AttributeError) as error:
        if "ellipsis" in str(error) or "NoneType" in str(error):
            raise _Unsolved from error
        raise
    if _is_placeholder(value):
        raise _Unsolved
    return value


def _report(name: str, lines: list[tuple[bool, str]]) -> bool:
    passed = all(ok for ok, _ in lines)
    for ok, text in lines:
        print(f"  {'✓' if ok else '✗'} {text}")
    print(f"{name}: {'solved, well done' if passed else 'not yet right: see the ✗ lines above'}")
    return passed


def _run(name: str, body: Callable[[], list[tuple[bool, str]]]) -> bool:
    """Run a check's body; a placeholder prints "not solved yet", an exception is reported, never raised."""
    try:
        lines = body()
    except _Unsolved:
        print(f"{name}: {NOT_SOLVED} (replace the ... placeholders in the exercise cell and run it again)")
        return False
    except Exception as error:  # the participant's code failed: say how, do not stop the notebook
        print(f"{name}: your code raised {type(error).__name__}: {error}")
        return False
    return _report(name, lines)


def _tensor(name: str, value: Any, shape: tuple[int, ...]) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if tuple(value.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
    return value.detach().to(torch.float64)


def _close(label: str, mine: torch.Tensor, reference: torch.Tensor, tolerance: float = _TOLERANCE) -> tuple[bool, str]:
    if not torch.isfinite(mine).all():
        return False, f"{label}: your result holds NaN or inf (work with log-sum-exp, never with exp(−C/ε) itself)"
    difference = float((mine - reference).abs().max())
    verdict = "matches" if difference <= tolerance else "differs from"
    return difference <= tolerance, f"{label}: {verdict} the reference (largest |difference| {difference:.1e})"


# --------------------------------------------------------------------------- notebook 01

def _cloud_problem(seed: int = 7) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x, y = analysis.two_clouds(6, 5, n_outliers=1, seed=seed)
    cost = analysis.squared_distances(x, y)
    a = torch.full((cost.shape[0],), 1.0 / cost.shape[0], dtype=cost.dtype)
    b = torch.full((cost.shape[1],), 1.0 / cost.shape[1], dtype=cost.dtype)
    return cost, a, b


def _plan_from_potentials(name: str, answer: Any, cost: torch.Tensor, eps: float) -> torch.Tensor:
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise TypeError(f"{name} must return the potentials (f, g), got {type(answer).__name__}")
    f = _tensor("f", answer[0], (cost.shape[0],))
    g = _tensor("g", answer[1], (cost.shape[1],))
    return ((f[:, None] + g[None, :] - cost) / eps).exp()


def check_log_sinkhorn(log_sinkhorn: Callable) -> bool:
    """Check a log-domain Sinkhorn: ``n_iter`` iterations (a row update then a column update) from ``g = 0``
    returning the potentials of the plan ``P = exp((f ⊕ g − C)/ε)``.

    Compared with :func:`gcalib.sinkhorn` after 1 and 50 iterations at ε = 0.05, at ε = 0.0001 (where
    ``exp(−C/ε)`` underflows, so only the log domain works), and, when POT is installed, converged
    (2000 iterations) against ``ot.sinkhorn(..., method="sinkhorn_log")``.

    Parameters
    ----------
    log_sinkhorn : callable
        The participant's ``log_sinkhorn(cost, eps, a, b, n_iter) -> (f, g)``.

    Returns
    -------
    bool
        True when every comparison matches; what is right and wrong is printed, nothing is raised.
    """

    def body() -> list[tuple[bool, str]]:
        cost, a, b = _cloud_problem()
        lines = []
        for eps, n_iter in ((0.05, 1), (0.05, 50), (1e-4, 20)):
            plan = _plan_from_potentials("log_sinkhorn", _call(log_sinkhorn, cost, eps, a, b, n_iter), cost, eps)
            reference = sinkhorn(cost, eps, a, b, n_iter=n_iter).plan
            lines.append(_close(f"plan after {n_iter} iteration{'s' if n_iter > 1 else ''} at ε = {eps} vs gcalib.sinkhorn",
                                plan, reference))
        try:
            import ot
        except ImportError:
            lines.append((True, "POT is not installed (pip install pot): skipped the comparison with ot.sinkhorn"))
            return lines
        eps = 0.05
        plan = _plan_from_potentials("log_sinkhorn", _call(log_sinkhorn, cost, eps, a, b, 2000), cost, eps)
        reference = torch.as_tensor(ot.sinkhorn(a.numpy(), b.numpy(), cost.numpy(), eps, method="sinkhorn_log",
                                                numItermax=20000, stopThr=1e-13))
        lines.append(_close(f"converged plan (2000 iterations) at ε = {eps} vs POT's ot.sinkhorn", plan, reference, 1e-7))
        return lines

    return _run("log_sinkhorn", body)


def check_unbalanced_sinkhorn(unbalanced_sinkhorn: Callable) -> bool:
    """Check an unbalanced Sinkhorn: each balanced potential update multiplied by κ = ρ/(ρ + ε).

    Compared with ``gcalib.sinkhorn(..., reg_a=ρ, reg_b=ρ)`` for ρ = 0.1 and ρ = 1 after 1 and 100
    iterations, and the mass the plan keeps.

    Parameters
    ----------
    unbalanced_sinkhorn : callable
        The participant's ``unbalanced_sinkhorn(cost, eps, a, b, rho, n_iter) -> (f, g)``.

    Returns
    -------
    bool
        True when every comparison matches; what is right and wrong is printed, nothing is raised.
    """

    def body() -> list[tuple[bool, str]]:
        cost, a, b = _cloud_problem()
        eps, lines = 0.05, []
        for rho in (0.1, 1.0):
            for n_iter in (1, 100):
                plan = _plan_from_potentials("unbalanced_sinkhorn", _call(unbalanced_sinkhorn, cost, eps, a, b, rho, n_iter),
                                             cost, eps)
                reference = sinkhorn(cost, eps, a, b, reg_a=rho, reg_b=rho, n_iter=n_iter).plan
                ok, text = _close(f"ρ = {rho}, {n_iter} iteration{'s' if n_iter > 1 else ''}: plan", plan, reference)
                lines.append((ok, f"{text}; total mass {float(plan.sum()):.4f} (reference {float(reference.sum()):.4f})"))
        if not all(ok for ok, _ in lines):
            lines.append((False, "hint: κ = ρ / (ρ + ε) multiplies the whole balanced update, f ← κ · ε (log a − LSE)"))
        return lines

    return _run("unbalanced_sinkhorn", body)


# --------------------------------------------------------------------------- notebook 02

def check_infonce_from_kernel(infonce_from_kernel: Callable) -> bool:
    """Check InfoNCE written as one row projection of the Gibbs kernel: the cross-entropy
    ``−(1/n) Σ_rs T̂_rs log P̂_rs`` of the row-normalised positive-pair target ``T̂`` against
    ``P̂ = K / K𝟙`` (self-pairs excluded, ``K_rr = 0``).

    Compared with the NT-Xent written with ``cross_entropy`` (:func:`gcalib.notebook.analysis.nt_xent`) and
    the ``infonce`` preset, for 2 and 3 views.

    Parameters
    ----------
    infonce_from_kernel : callable
        The participant's ``infonce_from_kernel(views, eps) -> loss``.

    Returns
    -------
    bool
        True when every comparison matches; what is right and wrong is printed, nothing is raised.
    """

    def body() -> list[tuple[bool, str]]:
        lines = []
        for n_views, eps in ((2, 0.5), (2, 0.1), (3, 0.5)):
            views = analysis.contrastive_batch(6, 8, n_views=n_views, seed=11)
            loss = _call(infonce_from_kernel, views, eps)
            loss = _tensor("the loss", torch.as_tensor(loss), ())
            reference = analysis.nt_xent(*views, temperature=eps)
            ok, text = _close(f"{n_views} views, ε = {eps}: your loss {float(loss):.6f}, NT-Xent {float(reference):.6f}",
                              loss, reference.to(torch.float64))
            lines.append((ok, text))
        preset = float(make_loss("infonce", eps=0.5)(*analysis.contrastive_batch(6, 8, seed=11)))
        lines.append((True, f"(the infonce preset gives {preset:.6f} on the 2-view batch at ε = 0.5)"))
        if not all(ok for ok, _ in lines):
            lines.append((False, "hint: K_rr = 0 (an embedding is never its own candidate); P̂ = K / K𝟙; "
                                 "loss = −(1/n) Σ_rs T̂_rs log P̂_rs with T̂ = T / T𝟙"))
        return lines

    return _run("infonce_from_kernel", body)


def check_three_view_target(three_view_target: Callable) -> bool:
    """Check the positive-pair target of three views in the blocked layout: ``T_rs = 1`` when r ≠ s are
    views of the same sample (``r mod B = s mod B``), else 0.

    Parameters
    ----------
    three_view_target : callable
        The participant's ``three_view_target(batch_size) -> T``, T of shape (3B, 3B).

    Returns
    -------
    bool
        True when every comparison matches; what is right and wrong is printed, nothing is raised.
    """

    def body() -> list[tuple[bool, str]]:
        lines = []
        for batch_size in (4, 5):
            n = 3 * batch_size
            target = _tensor(f"three_view_target({batch_size})", _call(three_view_target, batch_size), (n, n))
            reference = positive_pairs(batch_size, 3, dtype=torch.float64)
            lines.append((bool((target.diagonal() == 0).all()), f"B = {batch_size}: diagonal is zero (no self-pairs)"))
            sums = target.sum(1)
            lines.append((bool((sums == 2).all()), f"B = {batch_size}: every row has two positives "
                                                    f"(row sums {sorted(set(sums.tolist()))})"))
            wrong = int((target != reference).sum())
            lines.append((wrong == 0, f"B = {batch_size}: {wrong} of {n * n} entries differ from gcalib.positive_pairs"))
        views = analysis.contrastive_batch(5, 8, n_views=3, seed=12)
        target = _tensor("three_view_target(5)", _call(three_view_target, 5), (15, 15))
        if bool((target.sum(1) > 0).all()):
            values = analysis.cross_entropy_and_kl(target, make_loss("infonce", eps=0.5).plan(*views))
            preset = float(make_loss("infonce", eps=0.5)(*views))
            lines.append((abs(values["cross_entropy"] - preset) < 1e-8,
                          f"cross-entropy of the InfoNCE plan against your target {values['cross_entropy']:.4f}, "
                          f"the 3-view infonce preset {preset:.4f}"))
        return lines

    return _run("three_view_target", body)


# --------------------------------------------------------------------------- notebook 03

def check_infonce_gradient(infonce_gradient: Callable) -> bool:
    """Check the closed-form InfoNCE gradient ``G_rs = ∂L/∂cos(z_r, z_s)`` for every pair, computed from the
    row-projected plan ``P̂`` and the row-normalised target ``T̂``.

    Compared with autograd (:func:`gcalib.notebook.analysis.similarity_gradient`).

    Parameters
    ----------
    infonce_gradient : callable
        The participant's ``infonce_gradient(plan, target, eps) -> G``, G of shape (n, n).

    Returns
    -------
    bool
        True when every comparison matches; what is right and wrong is printed, nothing is raised.
    """

    def body() -> list[tuple[bool, str]]:
        lines = []
        for n_views, eps in ((2, 0.2), (3, 0.5)):
            views = analysis.contrastive_batch(6, 8, n_views=n_views, seed=13)
            n = 6 * n_views
            loss = make_loss("infonce", eps=eps)
            target = positive_pairs(6, n_views, dtype=torch.float64)
            hat = target / target.sum(1, keepdim=True)
            mine = _tensor("G", _call(infonce_gradient, loss.plan(*views), hat, eps), (n, n))
            reference = analysis.similarity_gradient(loss, *views)
            lines.append(_close(f"{n_views} views, ε = {eps}: G vs autograd", mine, reference))
        if not all(ok for ok, _ in lines):
            lines.append((False, "hint: L depends on cos(z_r, z_s) through entry (r, s) and entry (s, r): add the transpose; "
                                 "the loss is a mean over n rows and the logits are cos / ε"))
        return lines

    return _run("infonce_gradient", body)


def check_rince_loss(rince_loss: Callable) -> bool:
    """Check the RINCE loss ``mean_r [−pos_r^q/q + (λ·tot_r)^q/q]`` with ``pos_r = Σ_s T̂_rs K_rs``,
    ``tot_r = Σ_{s≠r} K_rs`` and ``K = exp((cos − 1)/ε)``.

    Compared with the ``rince`` preset at several ε, q and λ.

    Parameters
    ----------
    rince_loss : callable
        The participant's ``rince_loss(views, eps, q, lam) -> loss``.

    Returns
    -------
    bool
        True when every comparison matches; what is right and wrong is printed, nothing is raised.
    """

    def body() -> list[tuple[bool, str]]:
        lines = []
        views = analysis.contrastive_batch(6, 8, seed=14)
        for eps, q, lam in ((0.5, 0.6, 0.01), (0.2, 0.3, 0.1), (0.5, 1.0, 0.01)):
            mine = _tensor("the loss", torch.as_tensor(_call(rince_loss, views, eps, q, lam)), ())
            reference = make_loss("rince", eps=eps, q=q, lam=lam)(*views).detach().to(torch.float64)
            ok, text = _close(f"ε = {eps}, q = {q}, λ = {lam}: yours {float(mine):.6f}, the rince preset {float(reference):.6f}",
                              mine, reference)
            lines.append((ok, text))
        if not all(ok for ok, _ in lines):
            lines.append((False, "hint: K excludes the diagonal; pos uses the row-normalised target T̂; "
                                 "average over the n rows"))
        return lines

    return _run("rince_loss", body)


# --------------------------------------------------------------------------- notebook 04

def _scaled_rows(generator: torch.Generator, rows: torch.Tensor) -> torch.Tensor:
    """``rows`` with each row multiplied by a random factor in [0.5, 3): only a cosine ignores it."""
    return rows * (0.5 + 2.5 * torch.rand(rows.shape[0], 1, generator=generator, dtype=rows.dtype))


def _knn_problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(21)
    centres = torch.randn(4, 8, generator=generator, dtype=torch.float64)
    train_labels, test_labels = torch.arange(80) % 4, torch.arange(40) % 4
    noise = 1.1
    train = centres[train_labels] + noise * torch.randn(80, 8, generator=generator, dtype=torch.float64)
    test = centres[test_labels] + noise * torch.randn(40, 8, generator=generator, dtype=torch.float64)
    return _scaled_rows(generator, train), train_labels, _scaled_rows(generator, test), test_labels


def _scalar(name: str, value: Any) -> float:
    value = torch.as_tensor(value)
    if value.numel() != 1:
        raise ValueError(f"{name} must be one number, got a tensor of shape {tuple(value.shape)}")
    return float(value)


def check_knn_accuracy(knn_accuracy_by_hand: Callable) -> bool:
    """Check a weighted cosine kNN classifier: a test point takes the class maximising
    ``Σ_{i ∈ k nearest} exp(cos_i / τ)·[y_i = c]``; the result is the fraction of test points classified right.

    Compared with :func:`gcalib.knn_accuracy` on 80 train and 40 test points of four classes whose rows have
    random norms (only a cosine ignores them), for k = 1, 5 and 20 and τ = 0.07 and 1.

    Parameters
    ----------
    knn_accuracy_by_hand : callable
        The participant's ``knn_accuracy_by_hand(train_features, train_labels, test_features, test_labels, k,
        temperature) -> accuracy``.

    Returns
    -------
    bool
        True when every comparison matches; what is right and wrong is printed, nothing is raised.
    """

    def body() -> list[tuple[bool, str]]:
        train, train_labels, test, test_labels = _knn_problem()
        lines = []
        for k, temperature in ((1, 0.07), (5, 0.07), (20, 0.07), (20, 1.0)):
            mine = _scalar("the accuracy", _call(knn_accuracy_by_hand, train, train_labels, test, test_labels, k,
                                                 temperature))
            reference = knn_accuracy(train, train_labels, test, test_labels, k=k, temperature=temperature)
            lines.append((abs(mine - reference) < 1e-6,
                          f"k = {k}, τ = {temperature}: yours {mine:.4f}, gcalib.knn_accuracy {reference:.4f}"))
        if not all(ok for ok, _ in lines):
            lines.append((False, "hint: normalise the rows first (cosine similarity); each of the k most similar train "
                                 "points votes for its label with weight exp(cos/τ); predict the class with the "
                                 "largest sum of votes"))
        return lines

    return _run("knn_accuracy_by_hand", body)


def check_alignment_uniformity(alignment_uniformity: Callable) -> bool:
    """Check alignment ``E‖z₁ − z₂‖²`` over positive pairs and uniformity ``log E_{i≠j} exp(−2‖z_i − z_j‖²)``
    over distinct rows of ``z₁``, both after L2-normalising the rows (Wang & Isola, 2020).

    Compared with :func:`gcalib.alignment` and :func:`gcalib.uniformity` on spread-out embeddings and on
    nearly collapsed ones (all rows close to one direction).

    Parameters
    ----------
    alignment_uniformity : callable
        The participant's ``alignment_uniformity(z1, z2) -> (alignment, uniformity)``.

    Returns
    -------
    bool
        True when every comparison matches; what is right and wrong is printed, nothing is raised.
    """

    def body() -> list[tuple[bool, str]]:
        generator = torch.Generator().manual_seed(22)
        spread = torch.randn(32, 8, generator=generator, dtype=torch.float64)
        collapsed = torch.ones(32, 8, dtype=torch.float64) + 0.1 * torch.randn(32, 8, generator=generator,
                                                                                 dtype=torch.float64)
        lines = []
        for label, z in (("spread-out embeddings", spread), ("nearly collapsed embeddings", collapsed)):
            z1 = _scaled_rows(generator, z)
            z2 = _scaled_rows(generator, z + 0.3 * torch.randn(z.shape, generator=generator, dtype=torch.float64))
            answer = _call(alignment_uniformity, z1, z2)
            if not isinstance(answer, (tuple, list)) or len(answer) != 2:
                raise TypeError(f"alignment_uniformity must return (alignment, uniformity), got {type(answer).__name__}")
            mine = (_scalar("alignment", answer[0]), _scalar("uniformity", answer[1]))
            reference = (alignment(z1, z2), uniformity(z1))
            for name, value, expected in zip(("alignment", "uniformity"), mine, reference):
                lines.append((abs(value - expected) < 1e-6,
                              f"{label}: {name} yours {value:.4f}, gcalib.{name} {expected:.4f}"))
        if not all(ok for ok, _ in lines):
            lines.append((False, "hint: L2-normalise every row first; uniformity averages over the n(n − 1) pairs "
                                 "i ≠ j only (leave out the diagonal, where the distance is 0)"))
        return lines

    return _run("alignment_uniformity", body)


# --------------------------------------------------------------------------- notebook 05

def check_break_pairs(break_pairs: Callable) -> bool:
    """Check breaking positive pairs on purpose: in a blocked batch ``[first views; second views]`` of B
    samples, exactly ``round(fraction·B)`` samples get the second view of *another* sample; the first views
    and the other second views stay as they are.

    Run with fractions 0, 0.25, 0.5 and 1 on 20 samples.

    Parameters
    ----------
    break_pairs : callable
        The participant's ``break_pairs(views, fraction, generator) -> (new_views, broken)``: ``views`` of
        shape (2B, D), ``broken`` a boolean tensor (B,) marking the broken pairs.

    Returns
    -------
    bool
        True when every comparison matches; what is right and wrong is printed, nothing is raised.
    """

    def body() -> list[tuple[bool, str]]:
        batch_size, lines = 20, []
        views = torch.randn(2 * batch_size, 6, generator=torch.Generator().manual_seed(23), dtype=torch.float64)
        second = views[batch_size:]
        for fraction in (0.0, 0.25, 0.5, 1.0):
            answer = _call(break_pairs, views.clone(), fraction, torch.Generator().manual_seed(24))
            if not isinstance(answer, (tuple, list)) or len(answer) != 2:
                raise TypeError(f"break_pairs must return (new_views, broken), got {type(answer).__name__}")
            new_views = _tensor("new_views", answer[0], tuple(views.shape))
            broken = torch.as_tensor(answer[1])
            if broken.dtype != torch.bool or tuple(broken.shape) != (batch_size,):
                raise TypeError(f"broken must be a boolean tensor of shape ({batch_size},), "
                                f"got {broken.dtype} of shape {tuple(broken.shape)}")
            expected = round(fraction * batch_size)
            lines.append((int(broken.sum()) == expected,
                          f"fraction {fraction}: {int(broken.sum())} broken pairs (expected round({fraction} · "
                          f"{batch_size}) = {expected})"))
            lines.append((torch.equal(new_views[:batch_size], views[:batch_size]),
                          f"fraction {fraction}: the first views are untouched"))
            intact = torch.equal(new_views[batch_size:][~broken], second[~broken])
            lines.append((intact, f"fraction {fraction}: the second views of the intact pairs are unchanged"))
            matches = (new_views[batch_size:][:, None, :] == second[None, :, :]).all(2)  # [i, j]: view of sample j
            own = matches.diagonal()
            other = (matches & ~torch.eye(batch_size, dtype=torch.bool)).any(1)
            wrong = int((broken & (own | ~other)).sum())
            lines.append((wrong == 0, f"fraction {fraction}: {wrong} broken pairs do not hold the second view of "
                                      f"another sample"))
        return lines

    return _run("break_pairs", body)


def check_unbalanced_row_mass(unbalanced_row_mass: Callable) -> bool:
    """Check the mass each row of GCA-UOT's transport plan sends: ``n_iter`` unbalanced Sinkhorn iterations
    with unit marginals relaxed by ρ on cost ``C = 1 − z zᵀ`` (``C_rr = +∞``), z the normalised, blocked views.

    Compared with the plan of :func:`gcalib.notebook.batch_plans.positive_pair_mass` for the ``gca_uot``
    loss (the plan whose potentials the loss uses) at several ε, ρ and iteration counts, ρ = ∞ included
    (balanced: one unit per row).

    Parameters
    ----------
    unbalanced_row_mass : callable
        The participant's ``unbalanced_row_mass(views, eps, rho, n_iter) -> P𝟙``, of shape (V·B,).

    Returns
    -------
    bool
        True when every comparison matches; what is right and wrong is printed, nothing is raised.
    """

    def body() -> list[tuple[bool, str]]:
        views = analysis.contrastive_batch(8, 6, seed=25)
        n, lines = 2 * 8, []
        for eps, rho, n_iter in ((0.2, 0.2, 10), (0.5, 0.2, 10), (0.2, 1.0, 1), (0.2, math.inf, 10)):
            mine = _tensor("the row masses", _call(unbalanced_row_mass, views, eps, rho, n_iter), (n,))
            loss = make_loss("gca_uot", eps=eps, reg_a=rho, reg_b=rho, n_iter=n_iter)
            reference = positive_pair_mass(views, loss).row_mass.to(torch.float64)
            ok, text = _close(f"ε = {eps}, ρ = {rho}, {n_iter} iteration{'s' if n_iter > 1 else ''}: row masses", mine,
                              reference, 1e-6)
            lines.append((ok, f"{text}; yours from {float(mine.min()):.3f} to {float(mine.max()):.3f}, GCA-UOT's "
                              f"from {float(reference.min()):.3f} to {float(reference.max()):.3f}"))
        if not all(ok for ok, _ in lines):
            lines.append((False, "hint: normalise each row and stack the views (blocked); cost 1 − z zᵀ with +inf on "
                                 "the diagonal; unit marginals a = b = 𝟙 (gcalib.sinkhorn's default is 𝟙/n); "
                                 "reg_a = reg_b = ρ"))
        return lines

    return _run("unbalanced_row_mass", body)


# --------------------------------------------------------------------------- notebook 07

def check_domain_plan(domain_plan_by_hand: Callable) -> bool:
    """Check the domain-aware target plan of two views written by hand:
    ``T = [positive pair] + α·[same domain, not positive] + β·[other domain]``, zero diagonal.

    Compared with :func:`gcalib.domain_plan` for three (α, β) on two small batches.

    Parameters
    ----------
    domain_plan_by_hand : callable
        The participant's ``domain_plan_by_hand(domains, alpha, beta) -> T``, T of shape (2B, 2B).

    Returns
    -------
    bool
        True when every comparison matches; what is right and wrong is printed, nothing is raised.
    """

    def body() -> list[tuple[bool, str]]:
        lines = []
        for domains in (torch.tensor([0, 0, 1, 2, 1, 0]), torch.tensor([1, 0, 1, 0])):
            n = 2 * len(domains)
            for alpha, beta in ((0.5, 0.1), (0.0, 0.3), (0.2, 0.0)):
                mine = _tensor("T", _call(domain_plan_by_hand, domains.clone(), alpha, beta), (n, n))
                reference = domain_plan(domains, alpha, beta, dtype=torch.float64)
                wrong = int(((mine - reference).abs() > 1e-6).sum())
                lines.append((wrong == 0, f"domains {domains.tolist()}, α = {alpha}, β = {beta}: {wrong} of {n * n} "
                                          f"entries differ from gcalib.domain_plan"))
        if not all(ok for ok, _ in lines):
            lines.append((False, "hint: row r is sample r mod B; the positive pair (same sample, r ≠ s) gets 1, not "
                                 "1 + α; the diagonal is zero"))
        return lines

    return _run("domain_plan_by_hand", body)


def check_hospital_plan(hospital_plan: Callable) -> bool:
    """Check a target plan for the constraint "pull scans of the same hospital with the same finding with
    weight w, never pull across hospitals": ``T = [positive pair] + w·[same hospital and finding, not positive]``.

    Checks that :func:`gcalib.validate_target` accepts it, that no mass crosses hospitals, the weights of
    each kind of pair, and the whole plan against a reference built from :func:`gcalib.from_labels`.

    Parameters
    ----------
    hospital_plan : callable
        The participant's ``hospital_plan(hospital, finding, weight) -> T``, T of shape (2B, 2B).

    Returns
    -------
    bool
        True when every comparison matches; what is right and wrong is printed, nothing is raised.
    """

    def body() -> list[tuple[bool, str]]:
        lines = []
        problems = ((torch.tensor([0, 0, 0, 1, 1, 2, 2, 2]), torch.tensor([0, 1, 0, 1, 1, 0, 0, 2]), 0.3),
                    (torch.tensor([1, 0, 1, 0, 1]), torch.tensor([2, 2, 2, 0, 1]), 0.1))
        for hospital, finding, weight in problems:
            batch_size, n = len(hospital), 2 * len(hospital)
            mine = _tensor("T", _call(hospital_plan, hospital.clone(), finding.clone(), weight), (n, n))
            where = f"B = {batch_size}, w = {weight}"
            try:
                validate_target(mine, n)
                lines.append((True, f"{where}: gcalib.validate_target accepts the plan"))
            except (TypeError, ValueError) as error:
                lines.append((False, f"{where}: gcalib.validate_target rejects the plan: {error}"))
            sample = torch.arange(n) % batch_size
            same_hospital = hospital[sample][:, None] == hospital[sample][None, :]
            same_finding = finding[sample][:, None] == finding[sample][None, :]
            positive = positive_pairs(batch_size, dtype=torch.float64).bool()
            across = float(mine[~same_hospital].abs().sum())
            lines.append((across == 0, f"{where}: target mass across hospitals {across:g}"))
            lines.append((bool((mine[positive] == 1).all()), f"{where}: every positive pair has weight 1"))
            pulled = same_hospital & same_finding & ~positive & ~torch.eye(n, dtype=torch.bool)
            values = sorted({round(value, 6) for value in mine[pulled].tolist()})
            lines.append((values == [weight], f"{where}: same hospital and finding, other scan: weights {values}"))
            values = sorted({round(value, 6) for value in mine[same_hospital & ~same_finding].tolist()})
            lines.append((values == [0.0], f"{where}: same hospital, other finding: weights {values}"))
            key = hospital * (int(finding.max()) + 1) + finding
            pairs = positive.to(torch.float64)
            reference = pairs + weight * (from_labels(key, dtype=torch.float64) - pairs)
            wrong = int(((mine - reference).abs() > 1e-6).sum())
            lines.append((wrong == 0, f"{where}: {wrong} of {n * n} entries differ from the reference plan"))
        return lines

    return _run("hospital_plan", body)
