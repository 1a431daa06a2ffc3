"""Implicit differentiation (grad="implicit") against unrolled gradients at convergence and finite differences."""
import math

import pytest
import torch

from gcalib.ot.implicit import implicit_backward
from gcalib.ot.scaling import solve
from gcalib.ot.solver import sinkhorn

DT = torch.float64


def _converged(cost, eps, reg_a, reg_b, grad):
    return sinkhorn(cost, eps, reg_a=reg_a, reg_b=reg_b, tol=1e-13, max_iter=20000, grad=grad)


@pytest.mark.parametrize("reg_a,reg_b", [(math.inf, math.inf), (0.5, 0.3), (math.inf, 0.4)])
@pytest.mark.parametrize("shape", [(7, 5), (2, 4, 6)])
def test_implicit_gradient_matches_unrolled_gradient_at_convergence(problem, reg_a, reg_b, shape):
    cost, _, _, _ = problem(shape, seed=10)
    weights = torch.randn(*shape, dtype=DT, generator=torch.Generator().manual_seed(1))
    grads = {}
    for mode in ("unroll", "implicit"):
        c = cost.clone().requires_grad_(True)
        result = sinkhorn(c, 0.3, reg_a=reg_a, reg_b=reg_b, n_iter=800, grad=mode)
        objective = (result.plan * weights).sum()
        if not math.isinf(reg_a) or not math.isinf(reg_b):
            objective = objective + (result.f * weights[..., 0]).sum() + (result.g * weights[..., 0, :]).sum()
        (grads[mode],) = torch.autograd.grad(objective, c)
    scale = float(grads["unroll"].abs().max())
    assert float((grads["implicit"] - grads["unroll"]).abs().max()) <= 1e-4 * scale


@pytest.mark.parametrize("reg_a,reg_b", [(math.inf, math.inf), (0.6, 0.6), (0.5, math.inf)])
def test_implicit_gradient_passes_gradcheck_against_finite_differences(problem, reg_a, reg_b):
    cost, _, _, _ = problem((4, 5), seed=11)
    cost.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c: _converged(c, 0.4, reg_a, reg_b, "implicit").plan, (cost,), atol=1e-6)


def test_implicit_warns_when_conjugate_gradients_stop_early(problem):
    cost, _, _, _ = problem((30, 30), seed=12)
    trace = solve(-cost / 0.02, -math.log(30), -math.log(30), 1.0, 1.0, 200)
    with pytest.warns(RuntimeWarning, match="conjugate gradients stopped"):
        implicit_backward(trace, torch.randn(30, dtype=DT), torch.randn(30, dtype=DT), max_iter=2)


