"""The scaling-domain Sinkhorn solve: potentials from matrix-vector products, and the trace a backward needs.

Notation: ``L = log K = −C/ε`` of shape (..., n, m) (``−inf`` forbids a pair), scaled potentials
``φ = f/ε`` (rows) and ``γ = g/ε`` (columns), factors ``κ = ρ/(ρ+ε)``. A *half-step* maps the
previous potential ``v`` (``γ`` before a row step, ``φ`` before a column step) to

    lse = LSE along the step's axis of (L + v),        v' = κ (log w − lse),

with ``(κ, w) = (κ_a, a)`` for a row step and ``(κ_b, b)`` for a column step, from ``γ₀ = 0``: one
iteration of :func:`gcalib.ot.solver.iterate` is a row then a column half-step. Its softmax matrix
``S = exp(L + v − lse)`` has unit row sums (row step) or unit column sums (column step).

**Scaling domain.** Against a *reference* ``M = exp(L + p ⊕ q)`` (entries ≤ 1) a row step is
``s = M·y`` with ``y = e^{γ − q}``, ``lse = −p + log s``, and the next input is
``x = e^{φ − p} = e^{κ_a log a + (κ_a − 1) p}·s^{−κ_a}`` (``a/s`` when balanced); column steps mirror it
with ``Mᵀ``. So a half-step costs one matrix-vector product and an elementwise power, and
``S = diag(1/s)·M·diag(y)``. A reference is built in the log domain (a max and an exp pass) at the first
half-step, and again from the first half-step whose normaliser breaks ``min s ≥ e^{log_floor}·max(1, max y)``
(checked once after the loop): above that level the entries of ``S`` lost to underflow in ``M`` or ``y``
are below ``eps²`` of the machine, so the potentials equal the log-domain recursion's up to rounding.
Only two vectors per half-step and the last reference are kept, in a :class:`Trace` that the fused adjoint
(:mod:`gcalib.ot.adjoint`) and implicit differentiation (:mod:`gcalib.ot.implicit`) read.

**Row shards** (``rows=`` of :func:`solve`). A process may hold only some rows of ``L`` (m × n, e.g. its samples'
rows of a plan over the global batch) while ``γ`` stays whole. Row half-steps are then local; what reduces
over rows is combined over processes by a :class:`RowReduction`: ``sum`` of the column products ``Mᵀ·x``
(one per column half-step, and in the backward one per row half-step), ``max`` of the validity flags (once
per solve, and per step after a failed fast step) and of the column maxima of a reference built at a column
half-step (with a ``sum`` of its column sums). :data:`ALL_ROWS` (the default) is the identity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .residual import Marginal, marginal_residual

__all__ = ["RowReduction", "ALL_ROWS", "Reference", "HalfStep", "Trace", "log_floor", "matvec", "solve"]

def log_floor(dtype: torch.dtype) -> float:
    """Lowest safe log-normaliser of a scaling-domain half-step: ``log(tiny/eps²)`` of ``dtype``.

    Parameters
    ----------
    dtype : torch.dtype
        A floating dtype.

    Returns
    -------
    float
        ``log(tiny) − 2·log(eps)``; normalisers above ``exp`` of this make underflow negligible.
    """
    info = torch.finfo(dtype)
    return math.log(info.tiny) - 2.0 * math.log(info.eps)


def _unchanged(partial: torch.Tensor) -> torch.Tensor:
    return partial


@dataclass(frozen=True)
class RowReduction:
    """How results over this process's rows of ``L`` combine into results over all rows.

    Parameters
    ----------
    sum : callable
        Maps a partial (..., m) tensor, a sum over this process's rows (one entry per column), to the sum
        over every process's rows.
    max : callable
        The same for a maximum.

    Notes
    -----
    Both must be called by all processes in the same order (they are collectives).
    """

    sum: Callable[[torch.Tensor], torch.Tensor]
    max: Callable[[torch.Tensor], torch.Tensor]


ALL_ROWS = RowReduction(sum=_unchanged, max=_unchanged)
"""The process holds every row: nothing to combine."""


def matvec(matrix: torch.Tensor, vector: torch.Tensor, transpose: bool) -> torch.Tensor:
    """Batched matrix-vector product ``M·v`` or ``Mᵀ·v``.

    Parameters
    ----------
    matrix : torch.Tensor
        Shape (..., n, m).
    vector : torch.Tensor
        Shape (..., m), or (..., n) when ``transpose``.
    transpose : bool
        Multiply by ``Mᵀ`` instead of ``M``.

    Returns
    -------
    torch.Tensor
        Shape (..., n), or (..., m) when ``transpose``.
    """
    if matrix.dim() == 2:
        return torch.mv(matrix.T if transpose else matrix, vector)
    return torch.matmul(matrix.mT if transpose else matrix, vector.unsqueeze(-1)).squeeze(-1)


@dataclass
class Reference:
    """A reference matrix ``M = exp(L + p ⊕ q) ≤ 1`` built by an exact (log-domain) half-step.

    Parameters
    ----------
    row_step : bool
        Whether it was built at a row half-step.
    vector : torch.Tensor or None
        The half-step's log-domain input (``None``: the zero start ``γ₀``).
    shift : torch.Tensor
        Maxima of ``L + vector`` along the step's axis (kept dimension).
    p, q : torch.Tensor
        Row and column offsets: ``(−shift, vector)`` for a row step, ``(vector, −shift)`` for a column step.
    matrix : torch.Tensor or None
        ``M``; dropped (``None``) once a later reference supersedes it, and rebuilt on demand.
    """

    row_step: bool
    vector: Optional[torch.Tensor]
    shift: torch.Tensor
    p: torch.Tensor
    q: torch.Tensor
    matrix: Optional[torch.Tensor]

    def rebuild(self, log_kernel: torch.Tensor, rows: RowReduction) -> torch.Tensor:
        """Recompute :attr:`matrix` from ``L`` with the same arithmetic as when it was built.

        Parameters
        ----------
        log_kernel : torch.Tensor
            ``L``, left unchanged.
        rows : RowReduction
            Combines column maxima over processes (for a reference built at a column step).

        Returns
        -------
        torch.Tensor
            ``M``.
        """
        return _exponentiate(log_kernel, self.row_step, self.vector, in_place=False, rows=rows)[0]


def _exponentiate(log_kernel: torch.Tensor, row_step: bool, vector: Optional[torch.Tensor], in_place: bool,
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


@dataclass
class HalfStep:
    """One half-step against a reference.

    Parameters
    ----------
    row_step : bool
        A row (``φ``) or column (``γ``) update.
    scale : torch.Tensor
        Input scaling: ``y`` for a row step, ``x`` for a column step.
    sums : torch.Tensor
        Normaliser ``s``: ``M·y`` or ``Mᵀ·x``.
    ref : int
        Index of its :class:`Reference` in the trace.
    """

    row_step: bool
    scale: torch.Tensor
    sums: torch.Tensor
    ref: int

    def lse(self, reference: Reference) -> torch.Tensor:
        """The half-step's log-normaliser ``LSE(L + v) = log s − p`` (row step) or ``log s − q`` (column step).

        Parameters
        ----------
        reference : Reference
            The reference the step was taken against.

        Returns
        -------
        torch.Tensor
            Shape (..., n) for a row step, (..., m) for a column step.
        """
        return self.sums.log().sub_(reference.p if self.row_step else reference.q)


@dataclass
class Trace:
    """What a solve leaves for the backward: half-steps, references, the potentials and how it ended.

    Parameters
    ----------
    log_kernel : torch.Tensor or None
        ``L``; ``None`` when the solve consumed its buffer (:meth:`kernel` rebuilds it).
    regenerate : callable or None
        Returns ``L`` again; needed when ``log_kernel`` is ``None``.
    log_a, log_b : torch.Tensor or float
        Log-weights of the marginals.
    factor_a, factor_b : float
        Relaxation factors ``κ = ρ/(ρ + ε)``.
    steps : list of HalfStep
        ``2·iterations`` half-steps, plus a final row step on ``γ`` when ``projected`` (its log-normaliser is
        that of the row-projected plan ``rownorm(exp(L + γ))``). A solve to tolerance keeps the last ones only.
    refs : list of Reference
        The references the steps were taken against; only the last one keeps its matrix.
    phi, gamma : torch.Tensor
        The scaled potentials after the last iteration.
    iterations : int
        Iterations run.
    converged : bool or None
        Whether the residual fell below the tolerance; ``None`` for a fixed number of iterations.
    projected : bool
        Whether ``steps`` ends with the final row projection.
    rows : RowReduction
        Combines column results over the processes that hold the other rows of ``L``.
    """

    log_kernel: Optional[torch.Tensor]
    regenerate: Optional[Callable[[], torch.Tensor]]
    log_a: Marginal
    log_b: Marginal
    factor_a: float
    factor_b: float
    steps: list[HalfStep]
    refs: list[Reference]
    phi: torch.Tensor
    gamma: torch.Tensor
    iterations: int
    converged: Optional[bool]
    projected: bool
    rows: RowReduction = ALL_ROWS

    def kernel(self) -> torch.Tensor:
        """``L``, rebuilt by ``regenerate`` (once) when the solve consumed its buffer.

        Returns
        -------
        torch.Tensor
            The log-kernel, shape (..., n, m).
        """
        if self.log_kernel is None:
            self.log_kernel = self.regenerate()
        return self.log_kernel

    def lse(self, step: HalfStep) -> torch.Tensor:
        """The log-normaliser of one of the trace's half-steps (:meth:`HalfStep.lse`).

        Parameters
        ----------
        step : HalfStep
            A member of :attr:`steps`.

        Returns
        -------
        torch.Tensor
            ``LSE(L + v)`` along the step's axis.
        """
        return step.lse(self.refs[step.ref])


class _Solver:
    """Runs half-steps against the current reference, rebuilding it in the log domain when needed."""

    def __init__(self, log_kernel: torch.Tensor, log_a: Marginal, log_b: Marginal, factor_a: float, factor_b: float,
                 consume: bool, regenerate: Optional[Callable[[], torch.Tensor]], rows: RowReduction) -> None:
        self.log_kernel: Optional[torch.Tensor] = log_kernel
        self.marginals = ((factor_a, log_a), (factor_b, log_b))
        self.consume = consume
        self.regenerate = regenerate
        self.refs: list[Reference] = []
        self.steps: list[HalfStep] = []
        self.floor = math.exp(log_floor(log_kernel.dtype))
        self.constants: dict = {}
        self.rows = rows

    def kernel(self) -> torch.Tensor:
        if self.log_kernel is None:
            self.log_kernel = self.regenerate()
        return self.log_kernel

    def lse(self, step: HalfStep) -> torch.Tensor:
        return step.lse(self.refs[step.ref])

    def potential(self, step: HalfStep) -> torch.Tensor:
        """The step's output ``v' = κ (log w − lse)`` in the log domain."""
        factor, log_w = self.marginals[0 if step.row_step else 1]
        return factor * (log_w - self.lse(step))

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
        matrix, shift = _exponentiate(log_kernel, row_step, vector, in_place, self.rows)
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
        return matvec(matrix, vector, False) if row_step else self.rows.sum(matvec(matrix, vector, True))

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

    def run_fixed(self, total: int) -> None:
        """``total`` alternating half-steps (row first). The fast steps' validity is checked once at the end
        (one device sync); from the first invalid one the rest runs again, checking every step."""
        if total == 0:
            return
        self.exact(True, None)
        steps, matrix = self.steps, self.refs[0].matrix
        for _ in range(1, total):
            previous = steps[-1]
            scale = self.next_scale(previous)
            steps.append(HalfStep(not previous.row_step, scale, self.product(matrix, scale, not previous.row_step), 0))
        bad = torch.zeros(total, dtype=torch.bool, device=matrix.device)
        for first in (1, 2):
            if first < total:
                bad[first::2] = self.invalid(steps[first::2])
        if not bool(bad.any()):
            return
        start = int(bad.nonzero()[0])
        del steps[start:]
        for h in range(start, total):
            self.step(h % 2 == 0, careful=True)

    def run_to_tolerance(self, tol: float, max_iter: int, record: bool) -> tuple[int, bool]:
        """Iterate until the marginal residual of ``(φ_k, γ_k)`` is below ``tol``. The plan's row sums come
        from the next row step, which is kept as that step when iterating on."""
        (factor_a, log_a), (factor_b, log_b) = self.marginals
        steps = self.steps
        self.step(True, careful=True)
        iteration, error = 0, math.inf
        while iteration < max_iter and not error < tol:
            if iteration and not record:
                del steps[:-1]
            iteration += 1
            self.step(False, careful=True)
            self.step(True, careful=True)
            row, col, ahead = steps[-3], steps[-2], steps[-1]
            phi, gamma = self.potential(row), self.potential(col)
            error = marginal_residual(phi + self.lse(ahead), gamma + self.lse(col), phi, gamma,
                                      log_a, log_b, factor_a, factor_b)
        steps.pop()
        if not record:
            del steps[:-2]
        return iteration, error < tol


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
    """Run Sinkhorn iterations on ``L = log_kernel`` in the scaling domain, without an autograd graph.

    Each iteration is ``φ ← κ_a (log a − LSE_j(L_ij + γ_j))``, ``γ ← κ_b (log b − LSE_i(L_ij + φ_i))``
    from ``γ = 0``, evaluated by matrix-vector products with a reference matrix (module docstring).

    Parameters
    ----------
    log_kernel : torch.Tensor
        ``L = −C/ε``, shape (..., n, m); ``−inf`` forbids a pair. No validation: :func:`gcalib.ot.solver.sinkhorn`
        is the checked entry point.
    log_a, log_b : torch.Tensor or float
        Log-weights of the marginals (for a row-sharded solve ``log_a`` is a number or this process's rows).
    factor_a, factor_b : float
        Relaxation factors ``κ = ρ/(ρ + ε)`` in (0, 1].
    n_iter : int or None
        Number of iterations; ``None`` iterates until the residual of :mod:`gcalib.ot.residual` is below
        ``tol`` or ``max_iter`` iterations have run.
    tol : float
        Residual to reach when ``n_iter`` is ``None``.
    max_iter : int
        Most iterations when ``n_iter`` is ``None``.
    project : bool
        Append a final row step on ``γ`` (the row projection of ``exp(L + γ)``).
    consume : bool
        Let the first reference overwrite ``log_kernel``'s buffer; ``regenerate`` must then rebuild ``L``.
    regenerate : callable or None
        Returns ``L`` again (needed with ``consume=True``).
    record : bool
        Keep every half-step (what the fused adjoint needs); ``False`` keeps only the last ones, enough for
        the potentials and implicit gradients (iterating to ``tol``).
    rows : RowReduction
        ``log_kernel`` holds this process's rows; the other processes' rows are combined by this reduction
        (a fixed ``n_iter`` only).

    Returns
    -------
    Trace
        The potentials, the number of iterations, convergence and what a backward needs.

    Raises
    ------
    ValueError
        When ``consume=True`` comes without ``regenerate``, or a row-sharded solve has no fixed ``n_iter``.
    """
    if consume and regenerate is None:
        raise ValueError("consume=True needs regenerate, a callable that rebuilds the log-kernel")
    if n_iter is None and rows is not ALL_ROWS:
        raise ValueError("n_iter must be an int for a row-sharded solve (rows=...), got None")
    with torch.no_grad():
        solver = _Solver(log_kernel, log_a, log_b, factor_a, factor_b, consume, regenerate, rows)
        if n_iter is None:
            iterations, converged = solver.run_to_tolerance(tol, max_iter, record)
        else:
            solver.run_fixed(2 * n_iter + int(project))
            iterations, converged = n_iter, None
        potential_steps = solver.steps[:-1] if project else solver.steps
        if potential_steps:
            phi, gamma = solver.potential(potential_steps[-2]), solver.potential(potential_steps[-1])
        else:
            phi = log_kernel.new_zeros(log_kernel.shape[:-1])
            gamma = log_kernel.new_zeros(log_kernel.shape[:-2] + log_kernel.shape[-1:])
    return Trace(log_kernel=solver.log_kernel, regenerate=regenerate, log_a=log_a, log_b=log_b, factor_a=factor_a,
                 factor_b=factor_b, steps=solver.steps, refs=solver.refs, phi=phi, gamma=gamma, iterations=iterations,
                 converged=converged, projected=project, rows=rows)
