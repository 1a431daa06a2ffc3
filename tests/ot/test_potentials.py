"""The differentiable potentials: which gradient modes build a graph."""
import pytest
import torch

from gcalib.ot.potentials import potentials


def test_detach_and_no_grad_build_no_graph(problem):
    cost, log_a, log_b, _ = problem((5, 5), seed=13)
    log_kernel = (-cost / 0.3).requires_grad_(True)
    phi, gamma, _, _ = potentials(log_kernel, log_a, log_b, 1.0, 1.0, 5, grad="detach")
    assert phi.grad_fn is None and gamma.grad_fn is None
    with torch.no_grad():
        phi, gamma, _, _ = potentials(log_kernel, log_a, log_b, 1.0, 1.0, 5, grad="fused")
    assert phi.grad_fn is None
    with pytest.raises(ValueError, match="unknown grad 'unroll'; valid: fused, implicit, detach"):
        potentials(log_kernel, log_a, log_b, 1.0, 1.0, 5, grad="unroll")


