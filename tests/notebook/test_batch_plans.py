"""The mass a loss's plan puts on each positive pair, the pull of its gradient, broken against intact pairs."""
import math

import numpy as np
import ot
import pytest
import torch
import torch.nn.functional as F

from gcalib import make_loss
from gcalib.notebook import analysis, batch_plans


def test_without_iterations_the_plan_is_the_kernel(make_views):
    views = make_views(noise=0.3)
    eps = 0.3
    mass = batch_plans.positive_pair_mass(views, make_loss("gca_uot", eps=eps, n_iter=0))
    cosine = F.cosine_similarity(views[0], views[1], dim=1)
    torch.testing.assert_close(mass.cosine, cosine)
    torch.testing.assert_close(mass.pair_mass, torch.exp((cosine - 1) / eps))
    z = F.normalize(torch.cat(views), dim=1)
    kernel = torch.exp((z @ z.T - 1) / eps).fill_diagonal_(0.0)
    torch.testing.assert_close(mass.plan, kernel)
    torch.testing.assert_close(mass.row_mass, kernel.sum(1))


def test_converged_unbalanced_plan_matches_pot(make_views):
    views = make_views(batch=5, dim=4, noise=0.3)
    eps, rho = 0.5, 0.2
    mass = batch_plans.positive_pair_mass(views, make_loss("gca_uot", eps=eps, n_iter=400, reg_a=rho, reg_b=rho))
    z = F.normalize(torch.cat(views), dim=1).numpy()
    cost = 1.0 - z @ z.T
    np.fill_diagonal(cost, 1e4)  # exp(−1e4/ε) = 0: self-pairs carry nothing, as with C_rr = +∞
    ones = np.ones(len(z))
    reference = ot.unbalanced.sinkhorn_unbalanced(ones, ones, cost, eps, rho, numItermax=20000, stopThr=1e-14)
    np.testing.assert_allclose(mass.plan.numpy(), reference, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(mass.row_mass.numpy(), reference.sum(1), rtol=1e-7)
    # At convergence u_r = (K v)_r^{−κ}, so row r sends m_r = (K v)_r^{1−κ}, i.e. u = m^{−κ/(1−κ)}
    # (likewise v from the column masses c): P = diag(u) K diag(v), with κ = ρ/(ρ+ε).
    kappa = rho / (rho + eps)
    u = mass.row_mass.numpy() ** (-kappa / (1 - kappa))
    v = mass.plan.sum(0).numpy() ** (-kappa / (1 - kappa))
    np.testing.assert_allclose(u[:, None] * np.exp(-cost / eps) * v[None, :], reference, rtol=1e-6, atol=1e-12)
    assert float(mass.row_mass.max()) > 1.0  # at ε = 0.5 the entropy term creates mass


def test_balanced_plan_sends_one_unit_per_row_and_averages_every_ordered_positive_pair(make_views):
    views = make_views(batch=4, n_views=3, noise=0.3)
    mass = batch_plans.positive_pair_mass(views, make_loss("gca_ince", eps=0.5, n_iter=300))
    torch.testing.assert_close(mass.row_mass, torch.ones(12, dtype=torch.float64), atol=1e-8, rtol=0)
    torch.testing.assert_close(mass.plan.sum(0), torch.ones(12, dtype=torch.float64), atol=1e-8, rtol=0)
    z = F.normalize(torch.cat(views), dim=1)
    for b in range(4):
        rows = [b, b + 4, b + 8]
        pairs = [(r, s) for r in rows for s in rows if r != s]
        assert len(pairs) == 6
        assert mass.pair_mass[b] == pytest.approx(sum(float(mass.plan[r, s]) for r, s in pairs) / 6, rel=1e-12)
        assert mass.cosine[b] == pytest.approx(sum(float(z[r] @ z[s]) for r, s in pairs) / 6, rel=1e-12)


def test_a_broken_positive_pair_gets_the_least_mass_and_its_rows_send_less(make_views):
    views = make_views(batch=16, dim=32, noise=0.2, seed=3)
    gen = torch.Generator().manual_seed(7)
    views[1][5] = torch.randn(32, generator=gen, dtype=torch.float64) * views[1][5].norm() / math.sqrt(32)
    mass = batch_plans.positive_pair_mass(views, make_loss("gca_uot", eps=0.2))
    assert int(mass.pair_mass.argmin()) == 5
    assert int(mass.cosine.argmin()) == 5
    others = torch.ones(32, dtype=torch.bool)
    others[[5, 21]] = False
    assert float(mass.row_mass[[5, 21]].max()) < float(mass.row_mass[others].min())


def test_positive_pair_mass_checks_its_loss_argument(make_views):
    with pytest.raises(TypeError, match="loss must be a GCALoss"):
        batch_plans.positive_pair_mass(make_views(noise=0.3), "gca_uot")


def test_relative_pull_averages_to_one_and_follows_the_gradient_on_positive_pairs(make_views):
    z = make_views(batch=8, dim=6, noise=0.3)
    loss = make_loss("rince", eps=0.5)
    pull = batch_plans.relative_pull(loss, z)
    assert pull.shape == (8,) and float(pull.mean()) == pytest.approx(1.0)
    gradient = analysis.similarity_gradient(loss, *z)
    raw = -gradient[torch.arange(8), torch.arange(8) + 8]
    torch.testing.assert_close(pull, raw / raw.mean())
    with pytest.raises(TypeError, match="GCALoss"):
        batch_plans.relative_pull(lambda a, b: 0.0, z)


def test_broken_pairs_table_compares_broken_and_intact_pairs(make_views):
    z = make_views(batch=10, dim=8, noise=0.05)
    gen = torch.Generator().manual_seed(1)
    z[1][:3] = torch.randn(3, 8, generator=gen, dtype=z[1].dtype)  # three broken pairs
    corrupted = torch.arange(10) < 3
    mass = batch_plans.positive_pair_mass(z, make_loss("gca_uot", eps=0.5))
    pulls = {"rince": batch_plans.relative_pull(make_loss("rince", eps=0.5), z)}
    table = batch_plans.broken_pairs_table(mass, corrupted, pulls)
    assert list(table.index) == ["broken", "intact"] and list(table["pairs"]) == [3, 7]
    assert table.loc["broken", "cosine"] == pytest.approx(float(mass.cosine[:3].mean()))
    assert table.loc["broken", "pair mass"] < table.loc["intact", "pair mass"]
    assert table.loc["broken", "share of the k lowest-mass pairs"] == 1.0
    assert table.loc["intact", "share of the k lowest-mass pairs"] == 0.0
    assert table.loc["broken", "share of the k lowest-cosine pairs"] == 1.0
    assert table.loc["broken", "pull (rince)"] == pytest.approx(float(pulls["rince"][:3].mean()))
    with pytest.raises(ValueError, match="corrupted must have shape"):
        batch_plans.broken_pairs_table(mass, corrupted[:4])


def test_broken_pairs_table_ranks_by_mass_and_by_cosine_separately():
    # The plan puts least mass on samples 0 and 1, the cosine is lowest for samples 2 and 3.
    mass = batch_plans.PairMass(plan=torch.eye(4), row_mass=torch.ones(4), pair_mass=torch.tensor([0.1, 0.2, 0.3, 0.4]),
                                cosine=torch.tensor([0.9, 0.8, 0.1, 0.2]))
    table = batch_plans.broken_pairs_table(mass, torch.tensor([True, True, False, False]))
    assert table.loc["broken", "share of the k lowest-mass pairs"] == 1.0
    assert table.loc["broken", "share of the k lowest-cosine pairs"] == 0.0
    assert table.loc["intact", "share of the k lowest-cosine pairs"] == 1.0
