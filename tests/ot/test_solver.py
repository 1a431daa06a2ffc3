"""gcalib.ot.solver against POT's solvers, closed forms and its own invariants."""
import math

import numpy as np
import ot as pot
import pytest
import torch

from gcalib.ot.solver import sinkhorn

DT = torch.float64


def _problem(n, m, batch=(), seed=0):
    gen = torch.Generator().manual_seed(seed)
    cost = torch.rand(*batch, n, m, generator=gen, dtype=DT)
    a = torch.rand(*batch, n, generator=gen, dtype=DT) + 0.1
    b = torch.rand(*batch, m, generator=gen, dtype=DT) + 0.1
    return cost, a / a.sum(-1, keepdim=True), b / b.sum(-1, keepdim=True)


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.5])
@pytest.mark.parametrize("shape", [(5, 7), (9, 4)])
def test_balanced_plan_matches_pot_log_sinkhorn(eps, shape):
    cost, a, b = _problem(*shape)
    ours = sinkhorn(cost, eps, a, b, tol=1e-12, max_iter=20000)
    ref = pot.bregman.sinkhorn_log(a.numpy(), b.numpy(), cost.numpy(), eps, numItermax=20000, stopThr=1e-13)
    assert ours.converged
    np.testing.assert_allclose(ours.plan.numpy(), ref, atol=1e-5)


def test_default_marginals_are_uniform_probability_vectors():
    cost, _, _ = _problem(6, 3)
    plan = sinkhorn(cost, 0.2, tol=1e-10).plan
    torch.testing.assert_close(plan.sum(1), torch.full((6,), 1 / 6, dtype=DT))
    torch.testing.assert_close(plan.sum(0), torch.full((3,), 1 / 3, dtype=DT))


def test_batched_costs_solve_each_problem_independently():
    cost, a, b = _problem(5, 6, batch=(2, 3), seed=1)
    ours = sinkhorn(cost, 0.1, a, b, tol=1e-12, max_iter=20000).plan
    for i in range(2):
        for j in range(3):
            ref = pot.bregman.sinkhorn_log(
                a[i, j].numpy(), b[i, j].numpy(), cost[i, j].numpy(), 0.1, numItermax=20000, stopThr=1e-13
            )
            np.testing.assert_allclose(ours[i, j].numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("reg_a,reg_b", [(0.3, 0.3), (1.0, 0.2), (math.inf, 0.5), (0.4, math.inf)])
@pytest.mark.parametrize("eps", [0.1, 0.5])
def test_unbalanced_and_semi_relaxed_match_pot(reg_a, reg_b, eps):
    cost, a, b = _problem(6, 5, seed=2)
    ours = sinkhorn(cost, eps, a, b, reg_a=reg_a, reg_b=reg_b, tol=1e-12, max_iter=20000)
    ref = pot.unbalanced.sinkhorn_unbalanced(
        a.numpy(), b.numpy(), cost.numpy(), eps, (reg_a, reg_b),
        reg_type="entropy", numItermax=20000, stopThr=1e-14,
    )
    assert ours.converged
    np.testing.assert_allclose(ours.plan.numpy(), ref, atol=1e-5)


def test_batched_unbalanced_matches_pot():
    cost, a, b = _problem(4, 7, batch=(3,), seed=3)
    ours = sinkhorn(cost, 0.2, a, b, reg_a=0.5, reg_b=0.5, tol=1e-12, max_iter=20000).plan
    for i in range(3):
        ref = pot.unbalanced.sinkhorn_unbalanced(
            a[i].numpy(), b[i].numpy(), cost[i].numpy(), 0.2, 0.5, reg_type="entropy", numItermax=20000, stopThr=1e-14
        )
        np.testing.assert_allclose(ours[i].numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("tol", [1e-3, 1e-6])
def test_iterating_to_tol_brings_marginal_error_below_tol(tol):
    cost, a, b = _problem(30, 20, seed=4)
    result = sinkhorn(cost, 0.05, a, b, tol=tol)
    assert result.converged and result.marginal_error < tol
    plan = result.plan
    violation = (plan.sum(1) - a).abs().sum() + (plan.sum(0) - b).abs().sum()
    assert float(violation) < tol


def test_fixed_iterations_are_counted_and_zero_iterations_give_the_kernel():
    cost, _, _ = _problem(4, 4)
    assert sinkhorn(cost, 0.3, n_iter=7).n_iter == 7
    zero = sinkhorn(cost, 0.3, n_iter=0)
    torch.testing.assert_close(zero.plan, torch.exp(-cost / 0.3))
    assert zero.converged is None


def test_forbidden_pairs_get_zero_mass_and_match_a_huge_finite_cost():
    cost, a, b = _problem(5, 5, seed=5)
    forbidden = cost.clone().fill_diagonal_(math.inf)
    huge = cost.clone().fill_diagonal_(1e4)
    with_inf = sinkhorn(forbidden, 0.1, a, b, tol=1e-12, max_iter=5000).plan
    with_huge = sinkhorn(huge, 0.1, a, b, tol=1e-12, max_iter=5000).plan
    assert (with_inf.diagonal() == 0).all()
    torch.testing.assert_close(with_inf, with_huge)


def test_small_eps_stays_finite_where_kernel_sinkhorn_underflows():
    cost, a, b = _problem(20, 20, seed=6)
    cost = cost * 10
    assert (torch.exp(-cost / 1e-3) == 0).any()
    result = sinkhorn(cost, 1e-3, a, b, n_iter=50)
    assert torch.isfinite(result.f).all() and torch.isfinite(result.g).all()
    torch.testing.assert_close(result.plan.sum(0), b)


def test_unroll_gradient_passes_gradcheck():
    cost, a, b = _problem(4, 3, seed=7)
    cost.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c: sinkhorn(c, 0.3, a, b, n_iter=5).plan, (cost,))
    assert torch.autograd.gradcheck(
        lambda c: sinkhorn(c, 0.3, a, b, reg_a=0.5, reg_b=2.0, n_iter=5).plan, (cost,)
    )


def test_detach_gradient_reaches_cost_only_through_the_log_plan():
    cost, _, _ = _problem(4, 5, seed=8)
    cost.requires_grad_(True)
    weights = torch.randn(4, 5, dtype=DT)
    (sinkhorn(cost, 0.25, n_iter=5, grad="detach").log_plan * weights).sum().backward()
    torch.testing.assert_close(cost.grad, -weights / 0.25)


def test_solves_in_float32_under_autocast():
    cost = torch.rand(6, 6, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = sinkhorn(cost, 0.1, n_iter=5)
    assert result.plan.dtype == torch.float32


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(eps=0.0), "eps must be a finite number > 0, got 0.0"),
        (dict(eps=-1.0), "eps must be a finite number > 0, got -1.0"),
        (dict(eps=0.1, reg_a=0.0), r"reg_a must be a number > 0 \(float\('inf'\) for a hard marginal\), got 0.0"),
        (dict(eps=0.1, n_iter=-1), "n_iter must be an int >= 0, got -1"),
        (dict(eps=0.1, grad="implicitly"), "unknown grad 'implicitly'; valid: unroll, fused, implicit, detach"),
        (dict(eps=0.1, a=torch.ones(3)), "a must have last dimension 4"),
        (dict(eps=0.1, b=-torch.ones(4)), "b must hold finite, strictly positive"),
        (dict(eps=0.1, tol=0.0), "tol must be a finite number > 0, got 0.0"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sinkhorn(torch.rand(4, 4), **kwargs)


def test_bad_costs_raise_clear_errors():
    with pytest.raises(TypeError, match="floating-point"):
        sinkhorn(torch.ones(3, 3, dtype=torch.int64), 0.1)
    with pytest.raises(ValueError, match="NaN"):
        sinkhorn(torch.full((3, 3), math.nan), 0.1)
    blocked = torch.rand(3, 3)
    blocked[1] = math.inf
    with pytest.raises(ValueError, match="every row"):
        sinkhorn(blocked, 0.1)
    with pytest.raises(ValueError, match="shape"):
        sinkhorn(torch.rand(3), 0.1)
