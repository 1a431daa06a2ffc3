"""Sinkhorn potentials without a stored iteration graph: exact ("fused") and implicit gradients.

Notation: ``L = log K = −C/ε`` of shape (..., n, m) (``−inf`` forbids a pair), scaled potentials
``φ = f/ε`` (rows) and ``γ = g/ε`` (columns), factors ``κ = ρ/(ρ+ε)``. A *half-step* maps the
previous potential ``v`` (``γ`` before a row step, ``φ`` before a column step) to

    lse = LSE along the step's axis of (L + v),        v' = κ (log w − lse),

with ``(κ, w) = (κ_a, a)`` for a row step and ``(κ_b, b)`` for a column step, from ``γ₀ = 0``: one
iteration of :func:`gcalib.ot.solver.iterate` is a row then a column half-step. Its softmax matrix
``S = exp(L + v − lse)`` has unit row sums (row step) or unit column sums (column step).

**Forward** (:func:`solve`). Against a *reference* ``M = exp(L + p ⊕ q)`` (entries ≤ 1) a row step is
``s = M·y`` with ``y = e^{γ − q}``, ``lse = −p + log s``, and the next input is
``x = e^{φ − p} = e^{κ_a log a + (κ_a − 1) p}·s^{−κ_a}`` (``a/s`` when balanced); column steps mirror it
with ``Mᵀ``. So a half-step costs one matrix-vector product and an elementwise power, and
``S = diag(1/s)·M·diag(y)``. A reference is built in the log domain (a max and an exp pass) at the first
half-step, and again from the first half-step whose normaliser breaks ``min s ≥ e^{log_floor}·max(1, max y)``
(checked once after the loop): above that level the entries of ``S`` lost to underflow in ``M`` or ``y``
are below ``eps²`` of the machine, so the potentials equal the log-domain recursion's up to rounding.
Only two vectors per half-step and the last reference are kept.

**Row shards** (``rows=`` of :func:`solve`). A process may hold only some rows of ``L`` (m × n, e.g. its samples'
rows of a plan over the global batch) while ``γ`` stays whole. Row half-steps are then local; what reduces
over rows is combined over processes by a :class:`RowReduction`: ``sum`` of the column products ``Mᵀ·x``
(one per column half-step, and in the backward one per row half-step), ``max`` of the validity flags (once
per solve, and per step after a failed fast step) and of the column maxima of a reference built at a column
half-step (with a ``sum`` of its column sums). :data:`ALL_ROWS` (the default) is the identity.

**Fused backward** (:func:`backward`). Reverse mode through the recursion: with ``ḡ`` the adjoint of a
half-step's ``lse`` (``ḡ = −κ·v̄'`` plus any direct use),

    L̄ += diag(ḡ)·S (row step) or S·diag(ḡ) (column step),     v̄ += Sᵀ·ḡ (row step) or S·ḡ (column step).

Each half-step is one matrix-vector product with ``M``; the cost contributions of all half-steps that
share ``M`` add up to ``M ∘ (U·Vᵀ)`` with ``U, V`` stacking two vectors per half-step: one low-rank
product and one elementwise pass. Earlier references (only made when a fast step failed) are rebuilt from
``L``; the backward holds a fixed number of (n, m) matrices (the reference and the gradient when none
was rebuilt), whatever the number of iterations.

**Implicit backward** (:func:`implicit_backward`). The output is treated as a fixed point
``φ = κ_a(log a − LSE_j(L + γ))``, ``γ = κ_b(log b − LSE_i(L + φ))``. With the plan
``P = exp(L + φ ⊕ γ)``, its marginals ``r = P𝟙``, ``c = Pᵀ𝟙`` and ``κ = κ_a κ_b``, the adjoint
``(λ, μ = c∘ν)`` solves ``(diag(c) − κ Pᵀ diag(1/r) P)·ν = γ̄ − κ_a Pᵀ(φ̄/r)`` (symmetric positive
semi-definite: conjugate gradients preconditioned by ``diag(c)``), ``λ = φ̄ − κ_b P ν`` and
``L̄ = −P ∘ (κ_a λ/r ⊕ κ_b ν)``. Balanced problems (κ = 1) fix the potentials only up to
``(φ + t, γ − t)``; implicit gradients then hold ``⟨c, γ⟩`` fixed, so they are exact for every output
invariant to that shift (plan, log-plan, row-projected plan) and differ from unrolled gradients only
along the shift.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
from torch.autograd.function import once_differentiable

from ..validation import check_choice

__all__ = ["Trace", "RowReduction", "ALL_ROWS", "solve", "backward", "implicit_backward", "potentials", "log_floor",
           "SOLVE_GRADS"]

Marginal = Union[torch.Tensor, float]
SOLVE_GRADS = ("fused", "implicit", "detach")


def log_floor(dtype: torch.dtype) -> float:
    """``log(tiny/eps²)`` of ``dtype``: normalisers above ``exp`` of this make underflow negligible."""
    info = torch.finfo(dtype)
    return math.log(info.tiny) - 2.0 * math.log(info.eps)


def _unchanged(partial: torch.Tensor) -> torch.Tensor:
    return partial


@dataclass(frozen=True)
class RowReduction:
    """How results over this process's rows of ``L`` combine into results over all rows.

    ``sum`` and ``max`` map a partial (..., n) tensor (a sum or maximum over this process's rows, one entry
    per column) to the sum or maximum over every process's rows; they must be called by all processes in
    the same order.
    """

    sum: Callable[[torch.Tensor], torch.Tensor]
    max: Callable[[torch.Tensor], torch.Tensor]


ALL_ROWS = RowReduction(sum=_unchanged, max=_unchanged)
"""The process holds every row: nothing to combine."""


def _matvec(matrix: torch.Tensor, vector: torch.Tensor, transpose: bool) -> torch.Tensor:
    """``M·v`` or ``Mᵀ·v`` batched over leading dimensions."""
    if matrix.dim() == 2:
        return torch.mv(matrix.T if transpose else matrix, vector)
    return torch.matmul(matrix.mT if transpose else matrix, vector.unsqueeze(-1)).squeeze(-1)


@dataclass
class Reference:
    """``M = exp(L + p ⊕ q) ≤ 1`` built by an exact half-step from its input ``vector`` (``None``: zeros).

    Row step: ``p = −shift``, ``q = vector``; column step: ``p = vector``, ``q = −shift``, where ``shift``
    holds the maxima of ``L + vector`` along the step's axis. ``matrix`` is dropped once superseded.
    """

    row_step: bool
    vector: Optional[torch.Tensor]
    shift: torch.Tensor
    p: torch.Tensor
    q: torch.Tensor
    matrix: Optional[torch.Tensor]


def _build(log_kernel: torch.Tensor, row_step: bool, vector: Optional[torch.Tensor], in_place: bool,
           rows: RowReduction) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M, shift)`` with ``M = exp(L + vector − shift)``, ``shift`` the max along the step's axis (kept dim;
    over all processes' rows for a column step).

    Entries below the smallest normal number are set to zero: they are negligible by the same bound as
    underflow (see :func:`log_floor`), and subnormal operands slow matrix products down many times."""
    axis = -1 if row_step else -2
    if vector is None:
        work = log_kernel if in_place else log_kernel.clone()
    else:
        work = torch.add(log_kernel, vector.unsqueeze(-2 if row_step else -1), out=log_kernel if in_place else None)
    shift = work.amax(axis, keepdim=True) if row_step else rows.max(work.amax(axis, keepdim=True))
    log_tiny = math.log(torch.finfo(work.dtype).tiny)
    return torch.nn.functional.threshold_(work.sub_(shift), log_tiny, -math.inf).exp_(), shift


def _rebuild(log_kernel: torch.Tensor, ref: Reference, rows: RowReduction) -> torch.Tensor:
    """The matrix of ``ref``, recomputed with the same arithmetic as when it was built."""
    return _build(log_kernel, ref.row_step, ref.vector, in_place=False, rows=rows)[0]


@dataclass
class HalfStep:
    """One half-step against ``refs[ref]``: input scaling ``scale`` (``y`` for a row step, ``x`` for a
    column step) and normaliser ``sums`` (``M·y`` or ``Mᵀ·x``)."""

    row_step: bool
    scale: torch.Tensor
    sums: torch.Tensor
    ref: int


@dataclass
class Trace:
    """What a solve leaves for the backward: half-steps, references, the potentials and how it ended.

    ``steps`` holds ``2·iterations`` half-steps, plus a final row step on ``γ`` when solved with
    ``project=True`` (its :meth:`lse` is the log-normaliser of the row-projected plan ``rownorm(exp(L + γ))``).
    ``rows`` combines column results over the processes that hold the other rows of ``L``.
    """

    log_kernel: Optional[torch.Tensor]
    regenerate: Optional[Callable[[], torch.Tensor]]
    log_a: Marginal
    log_b: Marginal
    factor_a: float
    factor_b: float
    steps: list
    refs: list
    phi: torch.Tensor
    gamma: torch.Tensor
    iterations: int
    converged: Optional[bool]
    projected: bool
    rows: RowReduction = ALL_ROWS

    def kernel(self) -> torch.Tensor:
        """``L`` (rebuilt by ``regenerate`` when the solve consumed its buffer)."""
        if self.log_kernel is None:
            self.log_kernel = self.regenerate()
        return self.log_kernel

    def lse(self, step: HalfStep) -> torch.Tensor:
        ref = self.refs[step.ref]
        return step.sums.log().sub_(ref.p if step.row_step else ref.q)


class _Solver:
    """Runs half-steps against the current reference, rebuilding it in the log domain when needed."""

    def __init__(self, log_kernel, log_a, log_b, factor_a, factor_b, consume, regenerate, rows):
        self.log_kernel: Optional[torch.Tensor] = log_kernel
        self.marginals = ((factor_a, log_a), (factor_b, log_b))
        self.consume = consume
        self.regenerate = regenerate
        self.refs: list[Reference] = []
        self.steps: list[HalfStep] = []
        self.floor = math.exp(log_floor(log_kernel.dtype))
        self.constants: dict = {}
        self.rows = rows
        self.trace = Trace(None, regenerate, log_a, log_b, factor_a, factor_b, self.steps, self.refs,
                           None, None, 0, None, False, rows)

    def kernel(self) -> torch.Tensor:
        if self.log_kernel is None:
            self.log_kernel = self.regenerate()
        return self.log_kernel

    def potential(self, step: HalfStep) -> torch.Tensor:
        """The step's output ``v' = κ (log w − lse)`` in the log domain."""
        factor, log_w = self.marginals[0 if step.row_step else 1]
        return factor * (log_w - self.trace.lse(step))

    def next_scale(self, step: HalfStep) -> torch.Tensor:
        """Input scaling of the half-step after ``step``, against the same reference:
        ``e^{κ log w + (κ − 1)·base}·s^{−κ}`` with ``base = p`` (row step) or ``q`` (column step)."""
        factor, log_w = self.marginals[0 if step.row_step else 1]
        if factor == 1.0:
            if not isinstance(log_w, torch.Tensor) and log_w == 0.0:
                return step.sums.reciprocal()
            key = (-1, step.row_step)
            if key not in self.constants:
                self.constants[key] = log_w.exp() if isinstance(log_w, torch.Tensor) else math.exp(log_w)
            return self.constants[key] / step.sums
        key = (step.ref, step.row_step)
        if key not in self.constants:
            ref = self.refs[step.ref]
            self.constants[key] = factor * log_w + (factor - 1.0) * (ref.p if step.row_step else ref.q)
        return step.sums.log().mul_(-factor).add_(self.constants[key]).exp_()

    def exact(self, row_step: bool, vector: Optional[torch.Tensor]) -> None:
        """Log-domain half-step from the log-domain input ``vector`` (``None``: the zero start ``γ₀``);
        its matrix becomes the new reference."""
        log_kernel = self.kernel()
        in_place = self.consume and not self.refs
        matrix, shift = _build(log_kernel, row_step, vector, in_place, self.rows)
        if in_place:
            self.log_kernel = None
        axis = -1 if row_step else -2
        peak = shift.squeeze(axis)
        if row_step:
            p = -peak
            q = log_kernel.new_zeros(log_kernel.shape[:-2] + log_kernel.shape[-1:]) if vector is None else vector
        else:
            p, q = vector, -peak
        if self.refs:
            self.refs[-1].matrix = None
        self.refs.append(Reference(row_step, vector, shift, p, q, matrix))
        sums = matrix.sum(axis) if row_step else self.rows.sum(matrix.sum(axis))
        self.steps.append(HalfStep(row_step, torch.ones_like(q if row_step else p), sums, len(self.refs) - 1))

    def product(self, matrix: torch.Tensor, vector: torch.Tensor, row_step: bool) -> torch.Tensor:
        """A half-step's normaliser: ``M·y`` (row step) or ``Mᵀ·x`` summed over all processes' rows."""
        return _matvec(matrix, vector, False) if row_step else self.rows.sum(_matvec(matrix, vector, True))

    def fast(self, row_step: bool) -> None:
        """Half-step as one product with the reference (validity checked by :meth:`invalid`)."""
        scale = self.next_scale(self.steps[-1])
        sums = self.product(self.refs[-1].matrix, scale, row_step)
        self.steps.append(HalfStep(row_step, scale, sums, len(self.refs) - 1))

    def invalid(self, steps: list[HalfStep]) -> torch.Tensor:
        """Per step: ``min s < floor·max(1, max scale)`` or anything non-finite (stacked, one reduction; over
        all processes' rows, a step is invalid when it is on one of them)."""
        sums = torch.stack([step.sums for step in steps]).flatten(1)
        scales = torch.stack([step.scale for step in steps]).flatten(1)
        largest_scale = scales.amax(1)
        bad = sums.amin(1) < self.floor * largest_scale.clamp(min=1.0)
        bad = bad | ~sums.amax(1).isfinite() | ~largest_scale.isfinite()
        return self.rows.max(bad.to(sums.dtype)) > 0

    def step(self, row_step: bool, careful: bool) -> None:
        """Append one half-step; ``careful``: redo it exactly at once when invalid."""
        if not self.refs:
            self.exact(row_step, None)
            return
        self.fast(row_step)
        if careful and bool(self.invalid(self.steps[-1:])[0]):
            self.steps.pop()
            self.exact(row_step, self.potential(self.steps[-1]))


def solve(
    log_kernel: torch.Tensor,
    log_a: Marginal,
    log_b: Marginal,
    factor_a: float,
    factor_b: float,
    n_iter: Optional[int],
    *,
    tol: float = 1e-6,
    max_iter: int = 1000,
    project: bool = False,
    consume: bool = False,
    regenerate: Optional[Callable[[], torch.Tensor]] = None,
    record: bool = True,
    rows: RowReduction = ALL_ROWS,
) -> Trace:
    """Run ``n_iter`` Sinkhorn iterations on ``L = log_kernel`` (no autograd graph) and return the trace.

    ``n_iter=None`` iterates until the marginal residual of :attr:`gcalib.ot.solver.OTResult.marginal_error`
    is below ``tol`` (or ``max_iter``). ``project`` appends the final row step on ``γ``. ``consume``
    lets the first reference overwrite ``log_kernel``; ``regenerate()`` must then return ``L`` again.
    ``record=False`` (iterating to ``tol``) keeps only the last half-steps, enough for the potentials
    and implicit gradients. ``rows``: ``log_kernel`` holds this process's rows, the other processes' rows
    are combined by this reduction (a fixed ``n_iter`` only; ``log_a`` a scalar or this process's rows).
    """
    if consume and regenerate is None:
        raise ValueError("consume=True needs regenerate, a callable that rebuilds the log-kernel")
    if n_iter is None and rows is not ALL_ROWS:
        raise ValueError("n_iter must be an int for a row-sharded solve (rows=...), got None")
    with torch.no_grad():
        solver = _Solver(log_kernel, log_a, log_b, factor_a, factor_b, consume, regenerate, rows)
        if n_iter is None:
            iterations, converged = _run_to_tolerance(solver, tol, max_iter, record)
        else:
            _run_fixed(solver, 2 * n_iter + int(project))
            iterations, converged = n_iter, None
        steps = solver.steps
        potential_steps = steps[:-1] if project else steps
        if potential_steps:
            phi, gamma = solver.potential(potential_steps[-2]), solver.potential(potential_steps[-1])
        else:
            phi = log_kernel.new_zeros(log_kernel.shape[:-1])
            gamma = log_kernel.new_zeros(log_kernel.shape[:-2] + log_kernel.shape[-1:])
    trace = solver.trace
    trace.log_kernel = solver.log_kernel
    trace.phi, trace.gamma, trace.iterations, trace.converged, trace.projected = phi, gamma, iterations, converged, project
    return trace


def _run_fixed(solver: _Solver, total: int) -> None:
    """``total`` alternating half-steps (row first). The fast steps' validity is checked once at the end
    (one device sync); from the first invalid one the rest runs again, checking every step."""
    if total == 0:
        return
    solver.exact(True, None)
    steps, matrix = solver.steps, solver.refs[0].matrix
    for h in range(1, total):
        previous = steps[-1]
        scale = solver.next_scale(previous)
        steps.append(HalfStep(not previous.row_step, scale, solver.product(matrix, scale, not previous.row_step), 0))
    bad = torch.zeros(total, dtype=torch.bool, device=matrix.device)
    for first in (1, 2):
        if first < total:
            bad[first::2] = solver.invalid(steps[first::2])
    if not bool(bad.any()):
        return
    start = int(bad.nonzero()[0])
    del steps[start:]
    for h in range(start, total):
        solver.step(h % 2 == 0, careful=True)


def _run_to_tolerance(solver: _Solver, tol: float, max_iter: int, record: bool) -> tuple[int, bool]:
    """Iterate until the marginal residual of ``(φ_k, γ_k)`` is below ``tol``. The plan's row sums come
    from the next row step, which is kept as that step when iterating on."""
    (factor_a, log_a), (factor_b, log_b) = solver.marginals
    steps = solver.steps
    solver.step(True, careful=True)
    iteration, error = 0, math.inf
    while iteration < max_iter and not error < tol:
        if iteration and not record:
            del steps[:-1]
        iteration += 1
        solver.step(False, careful=True)
        solver.step(True, careful=True)
        row, col, ahead = steps[-3], steps[-2], steps[-1]
        phi, gamma = solver.potential(row), solver.potential(col)
        rows = (phi + solver.trace.lse(ahead)).exp() - (log_a - phi * ((1 - factor_a) / factor_a)).exp()
        cols = (gamma + solver.trace.lse(col)).exp() - (log_b - gamma * ((1 - factor_b) / factor_b)).exp()
        error = float((rows.abs().sum(-1) + cols.abs().sum(-1)).max())
    steps.pop()
    if not record:
        del steps[:-2]
    return iteration, error < tol


def _flush(cost_grad: Optional[torch.Tensor], matrix: Optional[torch.Tensor], left: list, right: list) -> Optional[torch.Tensor]:
    """Add ``M ∘ (U·Vᵀ)`` for one reference's stacked vectors to the running cost gradient."""
    if not left:
        return cost_grad
    block = torch.matmul(torch.stack(left, -1), torch.stack(right, -2)).mul_(matrix)
    return block if cost_grad is None else cost_grad.add_(block)


def backward(
    trace: Trace,
    grad_phi: Optional[torch.Tensor],
    grad_gamma: Optional[torch.Tensor],
    grad_projection: Optional[torch.Tensor] = None,
    marginals: bool = True,
) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Exact reverse mode through the traced half-steps (see module docstring).

    ``grad_phi``, ``grad_gamma``: adjoints of the returned potentials (``None`` is zero; for a row-sharded
    trace ``grad_phi`` of this process's rows and ``grad_gamma`` already summed over processes);
    ``grad_projection``: adjoint of the projection step's ``lse`` (traces solved with ``project=True``).
    Returns ``(L̄, ā, b̄)``: the gradient with respect to ``L`` (``None`` when there are no half-steps)
    and to ``log a`` and ``log b`` at full (..., n) and (..., m) shapes (``None`` unless ``marginals``).
    """
    steps, refs = trace.steps, trace.refs
    carry = torch.zeros_like(trace.gamma) if grad_gamma is None else grad_gamma.clone()
    grad_log_a = torch.zeros_like(trace.phi) if marginals else None
    grad_log_b = torch.zeros_like(trace.gamma) if marginals else None
    cost_grad, matrix, group = None, None, None
    left: list[torch.Tensor] = []
    right: list[torch.Tensor] = []
    n_potential = len(steps) - int(trace.projected)
    for h in range(len(steps) - 1, -1, -1):
        step = steps[h]
        if step.ref != group:
            cost_grad = _flush(cost_grad, matrix, left, right)
            left, right, group = [], [], step.ref
            matrix = refs[group].matrix
            if matrix is None:
                matrix = _rebuild(trace.kernel(), refs[group], trace.rows)
        if h == n_potential:
            grad_lse = grad_projection
        else:
            if h == n_potential - 2 and grad_phi is not None:
                carry = carry + grad_phi
            factor = trace.factor_a if step.row_step else trace.factor_b
            if marginals:
                (grad_log_a if step.row_step else grad_log_b).add_(carry, alpha=factor)
            grad_lse = carry.mul(-factor)
        weighted = grad_lse / step.sums  # S = diag(1/s)·M·diag(scale) (row step), diag(scale)·M·diag(1/s) (column)
        left.append(weighted if step.row_step else step.scale)
        right.append(step.scale if step.row_step else weighted)
        if h == 0:  # the first step's input γ₀ = 0 is a constant
            break
        inner = _matvec(matrix, weighted, transpose=step.row_step)
        inner = (trace.rows.sum(inner) if step.row_step else inner).mul_(step.scale)
        carry = carry + inner if h == n_potential else inner
    cost_grad = _flush(cost_grad, matrix, left, right)
    return cost_grad, grad_log_a, grad_log_b


def implicit_backward(
    trace: Trace,
    grad_phi: Optional[torch.Tensor],
    grad_gamma: Optional[torch.Tensor],
    tol: Optional[float] = None,
    max_iter: int = 500,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Implicit differentiation at ``(φ, γ)`` taken as a fixed point (see module docstring).

    Conjugate gradients run to a relative residual ``tol`` (default ``1e-10`` in float64, ``1e-6``
    otherwise) or ``max_iter`` iterations, with a warning when the residual is not reached.
    Returns ``(L̄, ā, b̄)`` like :func:`backward`.
    """
    phi, gamma = trace.phi, trace.gamma
    grad_phi = torch.zeros_like(phi) if grad_phi is None else grad_phi
    grad_gamma = torch.zeros_like(gamma) if grad_gamma is None else grad_gamma
    if tol is None:
        tol = 1e-10 if phi.dtype == torch.float64 else 1e-6
    plan = torch.add(trace.kernel(), phi.unsqueeze(-1)).add_(gamma.unsqueeze(-2)).exp_()
    rows, cols = plan.sum(-1), plan.sum(-2)
    fa, fb = trace.factor_a, trace.factor_b
    kappa = fa * fb

    def operator(v: torch.Tensor) -> torch.Tensor:
        return cols * v - kappa * _matvec(plan, _matvec(plan, v, transpose=False) / rows, transpose=True)

    rhs = grad_gamma - fa * _matvec(plan, grad_phi / rows, transpose=True)
    if kappa == 1.0:
        rhs = rhs - rhs.sum(-1, keepdim=True) * cols / cols.sum(-1, keepdim=True)
    nu = _conjugate_gradient(operator, rhs, cols, tol, max_iter)
    lam = grad_phi - fb * _matvec(plan, nu, transpose=False)
    cost_grad = plan.mul_((fa * lam / rows).unsqueeze(-1) + (fb * nu).unsqueeze(-2)).neg_()
    return cost_grad, fa * lam, fb * cols * nu


def _conjugate_gradient(operator, rhs: torch.Tensor, diagonal: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
    """Solve ``operator(x) = rhs`` (symmetric positive semi-definite, batched over leading dims) by
    conjugate gradients preconditioned with ``diag(diagonal)``."""

    def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u * v).sum(-1, keepdim=True)

    x = torch.zeros_like(rhs)
    residual = rhs.clone()
    goal = tol * rhs.norm(dim=-1, keepdim=True)
    direction = residual / diagonal
    rz = dot(residual, direction)
    for _ in range(max_iter):
        if bool((residual.norm(dim=-1, keepdim=True) <= goal).all()):
            return x
        applied = operator(direction)
        curvature = dot(direction, applied)
        step = torch.where(curvature > 0, rz / curvature, torch.zeros_like(rz))
        x = x + step * direction
        residual = residual - step * applied
        preconditioned = residual / diagonal
        rz_next = dot(residual, preconditioned)
        direction = preconditioned + torch.where(rz > 0, rz_next / rz, torch.zeros_like(rz)) * direction
        rz = rz_next
    relative = float((residual.norm(dim=-1, keepdim=True) / rhs.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(rhs.dtype).tiny)).max())
    if relative > tol:
        warnings.warn(f"implicit Sinkhorn gradient: conjugate gradients stopped after {max_iter} iterations at "
                      f"relative residual {relative:.2e} > tol {tol:.1e}; iterate the forward closer to convergence",
                      RuntimeWarning, stacklevel=3)
    return x


def _reduce(grad: Optional[torch.Tensor], like: Marginal) -> Optional[torch.Tensor]:
    return grad.sum_to_size(like.shape) if grad is not None and isinstance(like, torch.Tensor) and like.requires_grad else None


class _TracedPotentials(torch.autograd.Function):
    """``(φ, γ)`` of a trace; subclasses give ``gradients(ctx, grad_phi, grad_gamma)`` for the backward."""

    @staticmethod
    def forward(ctx, log_kernel, log_a, log_b, trace: Trace):
        ctx.trace = trace
        ctx.marginals = (log_a, log_b)
        return trace.phi, trace.gamma

    @classmethod
    @once_differentiable
    def backward(cls, ctx, grad_phi, grad_gamma):
        with torch.autocast(device_type=ctx.trace.phi.device.type, enabled=False):
            cost_grad, grad_a, grad_b = cls.gradients(ctx, grad_phi, grad_gamma)
        log_a, log_b = ctx.marginals
        return cost_grad, _reduce(grad_a, log_a), _reduce(grad_b, log_b), None


class _FusedPotentials(_TracedPotentials):
    """``(φ, γ)`` of a trace, with the exact gradient of the unrolled iterations (:func:`backward`)."""

    @staticmethod
    def gradients(ctx, grad_phi, grad_gamma):
        marginals = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        return backward(ctx.trace, grad_phi, grad_gamma, marginals=marginals)


class _ImplicitPotentials(_TracedPotentials):
    """``(φ, γ)`` of a trace, with implicit gradients at the fixed point (:func:`implicit_backward`)."""

    @staticmethod
    def gradients(ctx, grad_phi, grad_gamma):
        return implicit_backward(ctx.trace, grad_phi, grad_gamma)


def potentials(
    log_kernel: torch.Tensor,
    log_a: Marginal,
    log_b: Marginal,
    factor_a: float,
    factor_b: float,
    n_iter: Optional[int],
    *,
    grad: str = "fused",
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> tuple[torch.Tensor, torch.Tensor, int, Optional[bool]]:
    """``(φ, γ, iterations, converged)`` of :func:`solve`, differentiable according to ``grad``:
    ``"fused"`` (exact gradient of the unrolled iterations), ``"implicit"`` or ``"detach"`` (none)."""
    check_choice("grad", grad, SOLVE_GRADS)
    trace = solve(log_kernel.detach(), log_a, log_b, factor_a, factor_b, n_iter, tol=tol, max_iter=max_iter,
                  record=grad == "fused")
    differentiable = [t for t in (log_kernel, log_a, log_b) if isinstance(t, torch.Tensor) and t.requires_grad]
    if grad == "detach" or not trace.steps or not differentiable or not torch.is_grad_enabled():
        return trace.phi, trace.gamma, trace.iterations, trace.converged
    if grad == "implicit":
        trace.refs[-1].matrix = None
    function = _FusedPotentials if grad == "fused" else _ImplicitPotentials
    phi, gamma = function.apply(log_kernel, log_a, log_b, trace)
    return phi, gamma, trace.iterations, trace.converged
