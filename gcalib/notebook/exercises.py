"""Self-checks for the exercises of notebooks 01–03 (notebook-helper layer, tested in ``tests/notebook/test_exercises.py``).

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
=========================================  =================================================

Solutions are in ``notebooks/solutions/``, one file per notebook, one function per exercise.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..losses.gca import make_loss
from ..losses.targets import positive_pairs
from ..ot.solver import sinkhorn
from . import analysis

__all__ = [
    "NOT_SOLVED",
    "check_log_sinkhorn",
    "check_unbalanced_sinkhorn",
    "check_infonce_from_kernel",
    "check_three_view_target",
    "check_infonce_gradient",
    "check_rince_loss",
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
    (also when the placeholder made the call fail, e.g. ``... * x``)."""
    if _is_placeholder(function):
        raise _Unsolved
    try:
        value = function(*args)
    except TypeError as error:
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
