"""The marginal residual: its closed form, and the one function both Sinkhorn engines stop on."""
import math

import pytest
import torch

from gcalib.ot.residual import marginal_residual, plan_residual
from gcalib.ot.scaling import solve
from gcalib.ot.solver import iterate, relaxation_factor, sinkhorn


def _optimal_marginal(weights, potential, reg):
    """``w·exp(−f/ρ)``, ``w`` for a hard marginal: what ``P𝟙`` (or ``Pᵀ𝟙``) equals at the optimum."""
    return weights if math.isinf(reg) else weights * (-potential / reg).exp()


@pytest.mark.parametrize("reg_a,reg_b", [(math.inf, math.inf), (0.3, 0.7), (math.inf, 0.4)])
def test_residual_is_the_violation_of_the_first_order_conditions(problem, reg_a, reg_b):
    cost, log_a, log_b, _ = problem((5, 4), seed=1)
    eps = 0.2
    result = sinkhorn(cost, eps, log_a.exp(), log_b.exp(), reg_a=reg_a, reg_b=reg_b, n_iter=3)
    plan = result.plan
    target_rows = _optimal_marginal(log_a.exp(), result.f, reg_a)
    target_cols = _optimal_marginal(log_b.exp(), result.g, reg_b)
    expected = float((plan.sum(1) - target_rows).abs().sum() + (plan.sum(0) - target_cols).abs().sum())
    fa, fb = relaxation_factor(reg_a, eps), relaxation_factor(reg_b, eps)
    ours = plan_residual(result.log_plan, result.f / eps, result.g / eps, log_a, log_b, fa, fb)
    assert ours == pytest.approx(expected, rel=1e-12)
    assert result.marginal_error == ours
    rows, cols = torch.logsumexp(result.log_plan, -1), torch.logsumexp(result.log_plan, -2)
    assert marginal_residual(rows, cols, result.f / eps, result.g / eps, log_a, log_b, fa, fb) == ours


def test_residual_is_the_largest_over_a_batch_and_zero_at_the_solution(problem):
    cost, _, _, _ = problem((3, 4, 5), seed=2)
    results = [sinkhorn(cost[k], 0.5, n_iter=2) for k in range(3)]
    batched = sinkhorn(cost, 0.5, n_iter=2)
    assert batched.marginal_error == pytest.approx(max(r.marginal_error for r in results), rel=1e-12)
    assert sinkhorn(cost, 0.5, tol=1e-12, max_iter=5000).marginal_error < 1e-12


@pytest.mark.parametrize("reg_b", [math.inf, 0.5])
def test_scaling_solve_stops_on_the_same_residual_as_the_log_domain_iterations(problem, reg_b):
    cost, log_a, log_b, _ = problem((7, 6), seed=3)
    log_a, log_b = log_a - log_a.logsumexp(-1), log_b - log_b.logsumexp(-1)
    eps, tol = 0.1, 1e-8
    fa, fb = 1.0, relaxation_factor(reg_b, eps)
    trace = solve(-cost / eps, log_a, log_b, fa, fb, None, tol=tol, max_iter=5000)
    assert trace.converged
    log_plan = -cost / eps + trace.phi.unsqueeze(-1) + trace.gamma.unsqueeze(-2)
    assert plan_residual(log_plan, trace.phi, trace.gamma, log_a, log_b, fa, fb) < tol
    phi, gamma = iterate(-cost / eps, log_a, log_b, fa, fb, trace.iterations - 1)
    previous = plan_residual(-cost / eps + phi.unsqueeze(-1) + gamma.unsqueeze(-2), phi, gamma, log_a, log_b, fa, fb)
    assert previous >= tol
