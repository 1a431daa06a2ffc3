"""The fused adjoint (grad="fused") against autograd through the unrolled iterations, and its memory."""
import math

import pytest
import torch

from gcalib.ot import scaling
from gcalib.ot.potentials import potentials
from gcalib.ot.scaling import solve
from gcalib.ot.solver import iterate, relaxation_factor, sinkhorn

DT = torch.float64


def _gradients(mode, cost, eps, log_a, log_b, fa, fb, n_iter, weights):
    log_kernel = (-cost / eps).requires_grad_(True)
    log_a, log_b = log_a.clone().requires_grad_(True), log_b.clone().requires_grad_(True)
    if mode == "unroll":
        phi, gamma = iterate(log_kernel, log_a, log_b, fa, fb, n_iter)
    else:
        phi, gamma, _, _ = potentials(log_kernel, log_a, log_b, fa, fb, n_iter, grad=mode)
    objective = (phi * weights[0]).sum() + (gamma * weights[1]).sum()
    grads = torch.autograd.grad(objective, (log_kernel, log_a, log_b))
    return (phi.detach(), gamma.detach()), grads


def _assert_close(ours, reference, rtol):
    for x, y in zip(ours, reference):
        scale = max(float(y.abs().max()), 1.0)
        assert float((x - y).abs().max()) <= rtol * scale


@pytest.mark.parametrize("n_iter", [1, 2, 10, 50])
@pytest.mark.parametrize("shape", [(6, 6), (5, 9), (9, 4), (3, 5, 7), (2, 2, 4, 3)])
@pytest.mark.parametrize("reg_a,reg_b", [(math.inf, math.inf), (0.3, 0.7), (math.inf, 0.4), (0.5, math.inf)])
def test_fused_gradient_equals_unrolled_autograd(problem, n_iter, shape, reg_a, reg_b):
    eps = 0.2
    cost, log_a, log_b, weights = problem(shape, seed=n_iter)
    fa, fb = relaxation_factor(reg_a, eps), relaxation_factor(reg_b, eps)
    values, grads = _gradients("fused", cost, eps, log_a, log_b, fa, fb, n_iter, weights)
    ref_values, ref_grads = _gradients("unroll", cost, eps, log_a, log_b, fa, fb, n_iter, weights)
    _assert_close(values, ref_values, 1e-12)
    _assert_close(grads, ref_grads, 1e-9)


@pytest.mark.parametrize("eps", [1.0, 0.05, 0.01])
def test_fused_gradient_with_forbidden_pairs(problem, eps):
    cost, log_a, log_b, weights = problem((7, 7), seed=3, forbid_diagonal=True)
    for fa, fb in ((1.0, 1.0), (0.6, 0.9)):
        values, grads = _gradients("fused", cost, eps, log_a, log_b, fa, fb, 10, weights)
        ref_values, ref_grads = _gradients("unroll", cost, eps, log_a, log_b, fa, fb, 10, weights)
        assert (grads[0].diagonal() == 0).all()
        _assert_close(values, ref_values, 1e-12)
        _assert_close(grads, ref_grads, 1e-9)


def test_reference_rebuilds_at_extreme_cost_range_keep_the_gradient_exact(problem):
    cost, log_a, log_b, weights = problem((12, 10), seed=4)
    cost[:, 0] += 8.0  # a column far from every row: its potential must climb to ~8/ε, beyond exp's range
    eps = 0.005
    trace = solve(-cost / eps, log_a, log_b, 1.0, 1.0, 20)
    assert len(trace.refs) > 1
    values, grads = _gradients("fused", cost, eps, log_a, log_b, 1.0, 1.0, 20, weights)
    ref_values, ref_grads = _gradients("unroll", cost, eps, log_a, log_b, 1.0, 1.0, 20, weights)
    _assert_close(values, ref_values, 1e-12)
    _assert_close(grads, ref_grads, 1e-9)


def test_every_step_rebuilt_in_the_log_domain_gives_the_same_gradient(problem, monkeypatch):
    monkeypatch.setattr(scaling, "log_floor", lambda dtype: math.inf)
    cost, log_a, log_b, weights = problem((6, 8), seed=5)
    trace = solve(-cost / 0.3, log_a, log_b, 0.7, 1.0, 5)
    assert len(trace.refs) == 10
    values, grads = _gradients("fused", cost, 0.3, log_a, log_b, 0.7, 1.0, 5, weights)
    ref_values, ref_grads = _gradients("unroll", cost, 0.3, log_a, log_b, 0.7, 1.0, 5, weights)
    _assert_close(values, ref_values, 1e-12)
    _assert_close(grads, ref_grads, 1e-9)


def test_float32_fused_is_as_accurate_as_float32_unrolled(problem):
    cost, log_a, log_b, weights = problem((40, 30), seed=6, scale=2.0)
    single_weights = tuple(w.float() for w in weights)
    for eps in (0.5, 0.05, 0.005):
        _, exact = _gradients("unroll", cost, eps, log_a, log_b, 1.0, 1.0, 20, weights)
        errors = {}
        for mode in ("fused", "unroll"):
            _, grads = _gradients(mode, cost.float(), eps, log_a.float(), log_b.float(), 1.0, 1.0, 20, single_weights)
            errors[mode] = max(float((g.double() - e).abs().max() / e.abs().max()) for g, e in zip(grads, exact))
        assert errors["fused"] <= 10 * errors["unroll"] + 1e-6


@pytest.mark.parametrize("reg", [math.inf, 0.5])
def test_sinkhorn_fused_passes_gradcheck_for_cost_and_marginals(problem, reg):
    cost, log_a, log_b, _ = problem((4, 3), seed=7)
    a, b = log_a.exp().requires_grad_(True), log_b.exp().requires_grad_(True)
    cost.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda c, a, b: sinkhorn(c, 0.3, a, b, reg_a=reg, reg_b=2.0, n_iter=5, grad="fused").plan, (cost, a, b)
    )


def test_sinkhorn_fused_to_tolerance_matches_unroll_iterations_and_gradient(problem):
    cost, log_a, log_b, _ = problem((8, 6), seed=8)
    a, b = log_a.exp(), log_b.exp()
    results = {}
    for mode in ("unroll", "fused"):
        c = cost.clone().requires_grad_(True)
        result = sinkhorn(c, 0.1, a / a.sum(), b / b.sum(), reg_b=0.8, tol=1e-9, grad=mode)
        (grad,) = torch.autograd.grad((result.plan * torch.arange(48.0, dtype=DT).view(8, 6)).sum(), c)
        results[mode] = (result, grad)
    (ref, ref_grad), (ours, grad) = results["unroll"], results["fused"]
    assert ours.converged and ours.n_iter == ref.n_iter
    assert ours.marginal_error < 1e-9
    torch.testing.assert_close(ours.f, ref.f, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=1e-9)


def test_fused_trace_keeps_one_matrix_whatever_the_iterations(problem):
    """What the backward holds between forward and backward: one n×m matrix plus vectors."""
    cost, log_a, log_b, _ = problem((64, 48), seed=9)
    for n_iter in (10, 100):
        trace = solve(-cost / 0.5, log_a, log_b, 1.0, 1.0, n_iter)
        matrices = [ref.matrix for ref in trace.refs if ref.matrix is not None]
        assert len(matrices) == 1 and matrices[0].shape == (64, 48)
        vector_elements = sum(step.scale.numel() + step.sums.numel() for step in trace.steps)
        assert vector_elements == n_iter * 2 * (64 + 48)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fused_matches_unroll_and_backward_memory_does_not_grow():
    device = torch.device("cuda")
    gen = torch.Generator(device=device).manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(4096, 128, device=device, generator=gen), dim=1)
    cost = (1 - z @ z.T).fill_diagonal_(math.inf)
    weights = torch.randn(4096, device=device, generator=gen)
    grads = {}
    for mode in ("unroll", "fused"):
        c = cost.clone().requires_grad_(True)
        result = sinkhorn(c, 0.1, reg_b=0.5, n_iter=10, grad=mode)
        (grads[mode],) = torch.autograd.grad((result.g * weights).sum(), c)
    assert float((grads["fused"] - grads["unroll"]).abs().max()) <= 1e-4 * float(grads["unroll"].abs().max())
    peaks = {}
    for n_iter in (10, 100):
        c = cost.clone().requires_grad_(True)
        result = sinkhorn(c, 0.1, reg_b=0.5, n_iter=n_iter, grad="fused")
        objective = (result.g * weights).sum()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        objective.backward()
        torch.cuda.synchronize()
        peaks[n_iter] = torch.cuda.max_memory_allocated() - start
    assert peaks[100] <= 1.2 * peaks[10]
