"""Property tests (hypothesis) for gcalib.ot.solver.sinkhorn on small float64 problems.

Examples are derandomised (the same inputs every run, so CI time and outcome are reproducible) and no
example database is written. Costs lie in [0, 2] and ε in [0.2, 2], which keeps convergence to the
tolerances below within a few hundred iterations.
"""
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gcalib.ot.solver import sinkhorn

DT = torch.float64
PROPERTY = settings(
    max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
TOL = 1e-10
MAX_ITER = 20000


def _positive_weights(draw, size: int) -> torch.Tensor:
    w = torch.from_numpy(draw(arrays(np.float64, (size,), elements=st.floats(0.1, 1.0))))
    return w / w.sum()


@st.composite
def problems(draw, max_size: int = 5, square: bool = False):
    """(cost, a, b, eps): cost in [0, 2]^(n×m), a and b positive probability vectors."""
    n = draw(st.integers(1, max_size))
    m = n if square else draw(st.integers(1, max_size))
    cost = torch.from_numpy(draw(arrays(np.float64, (n, m), elements=st.floats(0.0, 2.0))))
    eps = draw(st.floats(0.2, 2.0))
    return cost, _positive_weights(draw, n), _positive_weights(draw, m), eps


relaxations = st.one_of(st.just(math.inf), st.floats(0.01, 10.0))


def _solve(cost, eps, a, b, **kwargs):
    result = sinkhorn(cost, eps, a, b, tol=kwargs.pop("tol", TOL), max_iter=MAX_ITER, **kwargs)
    if kwargs.get("n_iter") is None:
        assert result.converged, f"did not reach tol in {MAX_ITER} iterations"
    return result


def _kl(p: torch.Tensor, q: torch.Tensor) -> float:
    """Generalised KL(p‖q) = Σ p log(p/q) − p + q of positive vectors."""
    return float((p * (p / q).log() - p + q).sum())


@PROPERTY
@given(problems(), relaxations, relaxations, st.one_of(st.none(), st.integers(0, 20)))
def test_plans_are_finite_and_non_negative(problem, reg_a, reg_b, n_iter):
    cost, a, b, eps = problem
    plan = _solve(cost, eps, a, b, reg_a=reg_a, reg_b=reg_b, n_iter=n_iter).plan
    assert torch.isfinite(plan).all()
    assert (plan >= 0).all()


@PROPERTY
@given(problems(), st.sampled_from([1e-4, 1e-7, 1e-10]))
def test_balanced_marginals_are_within_tol(problem, tol):
    cost, a, b, eps = problem
    result = _solve(cost, eps, a, b, tol=tol)
    plan = result.plan
    violation = float((plan.sum(1) - a).abs().sum() + (plan.sum(0) - b).abs().sum())
    assert violation < tol
    assert result.marginal_error == pytest.approx(violation, rel=1e-6, abs=1e-15)


@PROPERTY
@given(problems(), st.floats(-5.0, 5.0), st.integers(1, 15))
def test_balanced_plan_is_invariant_to_adding_a_constant_to_the_cost(problem, shift, n_iter):
    cost, a, b, eps = problem
    torch.testing.assert_close(_solve(cost + shift, eps, a, b).plan, _solve(cost, eps, a, b).plan, rtol=0, atol=1e-8)
    # The row update absorbs a constant exactly (f shifts by it), so this holds after every iteration too.
    torch.testing.assert_close(
        _solve(cost + shift, eps, a, b, n_iter=n_iter).plan, _solve(cost, eps, a, b, n_iter=n_iter).plan,
        rtol=1e-10, atol=1e-14,
    )


@PROPERTY
@given(problems(), st.data(), st.integers(1, 15))
def test_balanced_plan_is_invariant_to_row_and_column_offsets(problem, data, n_iter):
    cost, a, b, eps = problem
    n, m = cost.shape
    rows = torch.from_numpy(data.draw(arrays(np.float64, (n,), elements=st.floats(-3.0, 3.0)), label="row offsets"))
    cols = torch.from_numpy(data.draw(arrays(np.float64, (m,), elements=st.floats(-3.0, 3.0)), label="col offsets"))
    reference = _solve(cost, eps, a, b).plan
    shifted = cost + rows[:, None] + cols[None, :]
    torch.testing.assert_close(_solve(shifted, eps, a, b).plan, reference, rtol=0, atol=1e-8)
    # Row offsets are absorbed by f at every iteration. Column offsets are absorbed by g only at the
    # fixed point: the first row update sees them through the initial g = 0.
    torch.testing.assert_close(
        _solve(cost + rows[:, None], eps, a, b, n_iter=n_iter).plan, _solve(cost, eps, a, b, n_iter=n_iter).plan,
        rtol=1e-10, atol=1e-14,
    )


@PROPERTY
@given(problems(square=True))
def test_symmetric_cost_with_equal_marginals_gives_a_symmetric_plan(problem):
    cost, a, _, eps = problem
    cost = (cost + cost.T) / 2
    plan = _solve(cost, eps, a, a).plan
    torch.testing.assert_close(plan, plan.T, rtol=0, atol=1e-9)


# Unbalanced mass. Write P = m·Q with Σ Q = 1. For fixed Q the objective of sinkhorn (a, b probability
# vectors) is m·X(Q) + (ε + ρ_a + ρ_b)(m log m − m) + const, with
# X(Q) = ⟨C, Q⟩ − ε H(Q) + ρ_a KL(Q𝟙‖a) + ρ_b KL(Qᵀ𝟙‖b), so the optimal mass is m = exp(−X/(ε+ρ_a+ρ_b)).
# Since ⟨C, Q⟩ − ε H(Q) ≥ −ε log Σ K (Gibbs, K = e^{−C/ε}) and the KL terms are ≥ 0:
#     0 < m ≤ (Σ K)^{ε/(ε + ρ_a + ρ_b)}.
# So the unbalanced mass lies between 0 and the balanced mass 1 whenever Σ K ≤ 1, for every ρ. It is NOT
# monotone in ρ in general (see test_unbalanced_mass_is_not_monotone_in_rho); what is monotone is the
# marginal penalty KL(P𝟙‖a) + KL(Pᵀ𝟙‖b), which cannot increase as ρ grows (penalty-method argument:
# adding the optimality inequalities of ρ₁ < ρ₂ gives (ρ₁ − ρ₂)(G(P₁) − G(P₂)) ≤ 0).


@PROPERTY
@given(problems(), st.floats(0.01, 10.0), st.floats(0.01, 10.0))
def test_unbalanced_mass_is_bounded_by_the_gibbs_mass(problem, reg_a, reg_b):
    cost, a, b, eps = problem
    mass = float(_solve(cost, eps, a, b, reg_a=reg_a, reg_b=reg_b).plan.sum())
    gibbs = float(torch.exp(-cost / eps).sum())
    assert 0 < mass <= gibbs ** (eps / (eps + reg_a + reg_b)) * (1 + 1e-8)


@PROPERTY
@given(problems(), st.floats(0.01, 10.0), st.floats(0.01, 10.0))
def test_unbalanced_mass_is_between_zero_and_the_balanced_mass_when_the_kernel_mass_is_at_most_one(
    problem, reg_a, reg_b
):
    cost, a, b, eps = problem
    n, m = cost.shape
    cost = cost + eps * math.log(n * m)  # now every K_ij ≤ 1/(nm), so Σ K ≤ 1
    balanced = float(_solve(cost, eps, a, b).plan.sum())
    mass = float(_solve(cost, eps, a, b, reg_a=reg_a, reg_b=reg_b).plan.sum())
    assert balanced == pytest.approx(1.0, abs=1e-9)
    assert 0 < mass <= balanced + 1e-9


@PROPERTY
@given(problems())
def test_unbalanced_marginal_penalty_does_not_increase_with_rho(problem):
    cost, a, b, eps = problem
    penalties = []
    for rho in (0.01, 0.1, 0.5, 2.0, 10.0):
        plan = _solve(cost, eps, a, b, reg_a=rho, reg_b=rho, tol=1e-12).plan
        penalties.append(_kl(plan.sum(1), a) + _kl(plan.sum(0), b))
    assert all(later <= earlier + 1e-9 for earlier, later in zip(penalties, penalties[1:])), penalties


@settings(PROPERTY, max_examples=10)
@given(problems())
def test_unbalanced_plan_tends_to_the_balanced_plan_as_rho_grows(problem):
    # The distance shrinks like 1/ρ (ρ·gap levels off); large ρ is not tried because the unbalanced
    # iteration contracts the total mass only by (ρ/(ρ+ε))² per step (10⁴ steps at ρ = 10³).
    cost, a, b, eps = problem
    balanced = _solve(cost, eps, a, b).plan
    gaps = [float((_solve(cost, eps, a, b, reg_a=rho, reg_b=rho, tol=1e-9).plan - balanced).abs().sum())
            for rho in (10.0, 100.0)]
    assert gaps[1] <= 0.2 * gaps[0] + 1e-8, gaps


def test_unbalanced_mass_is_not_monotone_in_rho():
    """Two sources, one sink: the mass falls from Σ K ≈ 0.9 towards ≈ 0.74 and then rises to 1."""
    cost = torch.tensor([[0.01], [2.0]], dtype=DT)
    a, b = torch.tensor([0.5, 0.5], dtype=DT), torch.ones(1, dtype=DT)
    masses = [float(_solve(cost, 0.1, a, b, reg_a=rho, reg_b=rho).plan.sum()) for rho in (0.001, 0.3, 10.0)]
    assert float(torch.exp(-cost / 0.1).sum()) < 1
    assert masses[1] < masses[0] - 0.1 and masses[1] < masses[2] - 0.1, masses


@PROPERTY
@given(problems(), st.floats(0.01, 10.0), st.integers(1, 20))
def test_semi_relaxed_plan_meets_its_hard_column_marginal_after_every_iteration(problem, reg_a, n_iter):
    cost, a, b, eps = problem
    plan = _solve(cost, eps, a, b, reg_a=reg_a, n_iter=n_iter).plan
    torch.testing.assert_close(plan.sum(0), b, rtol=1e-12, atol=1e-14)


@PROPERTY
@given(problems(), st.floats(0.01, 10.0))
def test_semi_relaxed_plan_meets_its_hard_row_marginal_at_convergence(problem, reg_b):
    cost, a, b, eps = problem
    plan = _solve(cost, eps, a, b, reg_b=reg_b).plan
    assert float((plan.sum(1) - a).abs().sum()) < TOL


@st.composite
def forbidden_masks(draw, n: int, m: int) -> torch.Tensor:
    """Boolean (n, m) mask of +inf entries leaving every row and column at least one finite entry."""
    mask = torch.from_numpy(draw(arrays(np.bool_, (n, m))))
    for k in range(max(n, m)):
        mask[k % n, k % m] = False
    return mask


@PROPERTY
@given(problems(), st.data(), relaxations, relaxations, st.integers(0, 20))
def test_forbidden_entries_get_zero_mass_and_zero_gradient(problem, data, reg_a, reg_b, n_iter):
    cost, a, b, eps = problem
    mask = data.draw(forbidden_masks(*cost.shape), label="mask")
    cost = cost.masked_fill(mask, math.inf).requires_grad_(True)
    result = sinkhorn(cost, eps, a, b, reg_a=reg_a, reg_b=reg_b, n_iter=n_iter)
    plan = result.plan
    assert (plan[mask] == 0).all()
    assert torch.isfinite(plan).all() and (plan[~mask] > 0).all()
    (plan * torch.linspace(0.5, 1.5, plan.numel(), dtype=DT).view_as(plan)).sum().backward()
    assert torch.isfinite(cost.grad).all()
    assert (cost.grad[mask] == 0).all()


@st.composite
def batches(draw):
    """A (k, n, m) stack of problems with per-problem marginals, and one ε."""
    k, n, m = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    cost = torch.from_numpy(draw(arrays(np.float64, (k, n, m), elements=st.floats(0.0, 2.0))))
    a = torch.stack([_positive_weights(draw, n) for _ in range(k)])
    b = torch.stack([_positive_weights(draw, m) for _ in range(k)])
    return cost, a, b, draw(st.floats(0.2, 2.0))


@PROPERTY
@given(batches(), relaxations, relaxations, st.integers(0, 20))
def test_batched_fixed_iterations_equal_per_problem_solves(batch, reg_a, reg_b, n_iter):
    cost, a, b, eps = batch
    stacked = sinkhorn(cost, eps, a, b, reg_a=reg_a, reg_b=reg_b, n_iter=n_iter)
    for i in range(cost.shape[0]):
        single = sinkhorn(cost[i], eps, a[i], b[i], reg_a=reg_a, reg_b=reg_b, n_iter=n_iter)
        torch.testing.assert_close(stacked.plan[i], single.plan, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(stacked.f[i], single.f, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(stacked.g[i], single.g, rtol=1e-12, atol=1e-15)


@PROPERTY
@given(batches(), relaxations, relaxations)
def test_batched_solves_to_tol_agree_with_per_problem_solves(batch, reg_a, reg_b):
    cost, a, b, eps = batch
    stacked = _solve(cost, eps, a, b, reg_a=reg_a, reg_b=reg_b)
    for i in range(cost.shape[0]):
        single = _solve(cost[i], eps, a[i], b[i], reg_a=reg_a, reg_b=reg_b)
        # The stack stops when its worst problem is converged, so each member is at least as converged.
        torch.testing.assert_close(stacked.plan[i], single.plan, rtol=0, atol=1e-8)
