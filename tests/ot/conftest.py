"""Shared by the tests of the Sinkhorn engines: seeded float64 transport problems."""
import math

import pytest
import torch

DT = torch.float64


def make_problem(shape, seed=0, scale=1.0, forbid_diagonal=False):
    gen = torch.Generator().manual_seed(seed)
    cost = scale * torch.rand(*shape, generator=gen, dtype=DT)
    if forbid_diagonal:
        cost = cost + torch.diag_embed(torch.full(shape[:-1], math.inf, dtype=DT))
    log_a = (torch.rand(*shape[:-1], generator=gen, dtype=DT) + 0.2).log()
    log_b = (torch.rand(*shape[:-2], shape[-1], generator=gen, dtype=DT) + 0.2).log()
    weights = (torch.randn(*shape[:-1], generator=gen, dtype=DT), torch.randn(*shape[:-2], shape[-1], generator=gen, dtype=DT))
    return cost, log_a, log_b, weights



@pytest.fixture
def problem():
    """``problem(shape, seed=0, scale=1.0, forbid_diagonal=False)`` → ``(cost, log_a, log_b, (w_φ, w_γ))``:
    a random cost in ``[0, scale)``, random marginals and random weights of the potentials."""
    return make_problem
