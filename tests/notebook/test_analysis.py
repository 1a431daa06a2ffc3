"""Numerical helpers behind the notebooks: exact OT, Sinkhorn traces, batches, pair gradients."""
import math

import numpy as np
import ot
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from gcalib import make_loss, sinkhorn
from gcalib.notebook import analysis
from gcalib.losses import targets as plans
from gcalib.losses.gca import gca_loss
from gcalib.losses.kernel import embed_views
from gcalib.losses.spec import LOSSES


def test_two_clouds_shapes_seed_and_far_outliers():
    x, y = analysis.two_clouds(6, 5, n_outliers=2, seed=3)
    assert x.shape == (6, 2) and y.shape == (7, 2)
    x2, y2 = analysis.two_clouds(6, 5, n_outliers=2, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, analysis.two_clouds(6, 5, n_outliers=2, seed=4)[0])
    assert float(torch.cdist(y[-2:], y[:-2]).min()) > 2.0


def test_squared_distances_matches_cdist_and_normalises():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 3, generator=gen, dtype=torch.float64), torch.randn(5, 3, generator=gen, dtype=torch.float64)
    raw = analysis.squared_distances(x, y, normalize=False)
    torch.testing.assert_close(raw, torch.cdist(x, y) ** 2)
    scaled = analysis.squared_distances(x, y)
    assert float(scaled.max()) == pytest.approx(1.0)
    torch.testing.assert_close(scaled * raw.max(), raw)
    with pytest.raises(ValueError, match="same dimension"):
        analysis.squared_distances(x, y[:, :2])
    with pytest.raises(ValueError, match="coincides"):
        analysis.squared_distances(torch.zeros(2, 2), torch.zeros(3, 2))


def test_exact_plan_uniform_is_the_assignment_permutation():
    x, y = analysis.two_clouds(7, 7, seed=1)
    cost = analysis.squared_distances(x, y)
    plan = analysis.exact_plan(cost)
    rows, cols = linear_sum_assignment(cost.numpy())
    permutation = torch.zeros(7, 7, dtype=torch.float64)
    permutation[rows, cols] = 1.0 / 7
    torch.testing.assert_close(plan, permutation, atol=1e-9, rtol=0)


def test_exact_plan_with_weights_agrees_with_pot_emd():
    gen = torch.Generator().manual_seed(2)
    cost = torch.rand(5, 6, generator=gen, dtype=torch.float64)
    a = torch.rand(5, generator=gen, dtype=torch.float64) + 0.1
    b = torch.rand(6, generator=gen, dtype=torch.float64) + 0.1
    a, b = a / a.sum(), b / b.sum()
    plan = analysis.exact_plan(cost, a, b)
    reference = ot.emd(a.numpy(), b.numpy(), cost.numpy())
    assert analysis.transport_cost(plan, cost) == pytest.approx(float((reference * cost.numpy()).sum()), abs=1e-10)
    torch.testing.assert_close(plan.sum(1), a)
    torch.testing.assert_close(plan.sum(0), b)
    assert (plan >= 0).all()
    with pytest.raises(ValueError, match="same mass"):
        analysis.exact_plan(cost, a, 2 * b)
    with pytest.raises(ValueError, match="finite"):
        analysis.exact_plan(cost.fill_diagonal_(math.inf))


def test_transport_cost_and_entropy_closed_forms():
    cost = torch.tensor([[0.0, math.inf], [2.0, 1.0]], dtype=torch.float64)
    plan = torch.tensor([[0.5, 0.0], [0.25, 0.25]], dtype=torch.float64)
    assert analysis.transport_cost(plan, cost) == pytest.approx(0.75)
    uniform = torch.full((3, 4), 1 / 12, dtype=torch.float64)
    assert analysis.plan_entropy(uniform) == pytest.approx(math.log(12))
    assert analysis.plan_entropy(plan) == pytest.approx(-(0.5 * math.log(0.5) + 0.5 * math.log(0.25)))
    with pytest.raises(ValueError, match="same shape"):
        analysis.transport_cost(plan, cost[:1])
    with pytest.raises(ValueError, match="non-negative"):
        analysis.plan_entropy(-plan)


@pytest.mark.parametrize("reg", [math.inf, 0.3])
def test_marginal_errors_trace_matches_separate_solves(reg):
    x, y = analysis.two_clouds(6, 5, n_outliers=1)
    cost = analysis.squared_distances(x, y)
    trace = analysis.marginal_errors(cost, 0.05, 30, reg_a=reg, reg_b=reg)
    assert len(trace) == 30
    for k in (1, 2, 7, 30):
        expected = sinkhorn(cost, 0.05, reg_a=reg, reg_b=reg, n_iter=k).marginal_error
        assert trace[k - 1] == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert trace[-1] < 1e-2 * trace[0]
    stopped = analysis.marginal_errors(cost, 0.05, 1000, reg_a=reg, reg_b=reg, tol=1e-6)
    assert stopped[-1] < 1e-6 <= min(stopped[:-1])
    shared = min(len(stopped), len(trace))
    assert stopped[:shared] == pytest.approx(trace[:shared], rel=1e-12)
    with pytest.raises(ValueError, match="n_iter"):
        analysis.marginal_errors(cost, 0.05, 0)


def test_eps_sweep_gap_shrinks_and_entropy_grows_with_eps():
    x, y = analysis.two_clouds(6, 6, seed=5)
    cost = analysis.squared_distances(x, y)
    table = analysis.eps_sweep(cost, [0.003, 0.03, 0.3, 3.0])
    assert table["eps"] == [0.003, 0.03, 0.3, 3.0]
    assert all(g >= -1e-9 for g in table["gap"])
    assert table["gap"][0] < 1e-3 < table["gap"][-1]
    assert table["gap"] == sorted(table["gap"])
    assert table["entropy"] == sorted(table["entropy"])
    assert table["entropy"][-1] == pytest.approx(math.log(36), abs=0.05)
    assert table["iterations"][0] > table["iterations"][-1]


def test_contrastive_batch_shapes_seed_and_structure():
    views = analysis.contrastive_batch(12, 8, n_views=3, n_clusters=2, seed=1)
    assert len(views) == 3 and all(v.shape == (12, 8) for v in views)
    again = analysis.contrastive_batch(12, 8, n_views=3, n_clusters=2, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(views, again))
    z = embed_views(views[:2])
    cos = z @ z.T
    positives = cos[torch.arange(12), torch.arange(12) + 12]
    assert float(positives.mean()) > float(cos[:12, 12:].mean()) + 0.1
    assert views[0].dtype == torch.float64
    with pytest.raises(ValueError, match="batch_size"):
        analysis.contrastive_batch(1, 8)
    with pytest.raises(ValueError, match="view_noise"):
        analysis.contrastive_batch(4, 8, view_noise=-1.0)


def test_batch_cost_is_one_minus_cosine_with_forbidden_diagonal():
    views = analysis.contrastive_batch(3, 4)
    cost = analysis.batch_cost(views)
    z = torch.cat(views)
    z = z / z.norm(dim=1, keepdim=True)
    expected = 1 - z @ z.T
    off = ~torch.eye(6, dtype=torch.bool)
    torch.testing.assert_close(cost[off], expected[off])
    assert torch.isinf(cost.diagonal()).all()


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_nt_xent_matches_a_loop_and_the_infonce_preset(temperature):
    z1, z2 = analysis.contrastive_batch(5, 6, seed=2)
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    total = 0.0
    for r in range(10):
        logits = [float(z[r] @ z[s]) / temperature for s in range(10) if s != r]
        partner = float(z[r] @ z[(r + 5) % 10]) / temperature
        total += -(partner - math.log(sum(math.exp(v) for v in logits)))
    assert float(analysis.nt_xent(z1, z2, temperature)) == pytest.approx(total / 10, rel=1e-10)
    assert float(analysis.nt_xent(z1, z2, temperature)) == pytest.approx(float(make_loss("infonce", eps=temperature)(z1, z2)), rel=1e-10)
    with pytest.raises(ValueError, match="temperature"):
        analysis.nt_xent(z1, z2, 0.0)


def test_loss_vs_iterations_values_and_the_papers_inequality():
    views = analysis.contrastive_batch(8, 8, seed=3)
    curves = analysis.loss_vs_iterations(views, [0.5, 0.1], [0, 1, 500])
    assert list(curves) == [0.5, 0.1]
    for eps, curve in curves.items():
        assert curve[0] == pytest.approx(float(make_loss("infonce", eps=eps)(*views)), rel=1e-12)
        assert curve[1] == pytest.approx(float(make_loss("gca_ince", eps=eps, n_iter=1)(*views)), rel=1e-12)
        assert curve[2] <= curve[0]
    relative = {eps: (c[0] - c[2]) / c[0] for eps, c in curves.items()}
    assert relative[0.1] > 3 * relative[0.5]


def _custom_target(batch, n_views):
    gen = torch.Generator().manual_seed(7)
    target = plans.positive_pairs(batch, n_views, dtype=torch.float64)
    return target + 0.3 * torch.rand(target.shape, generator=gen, dtype=torch.float64).fill_diagonal_(0.0)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("n_views", [2, 3])
def test_loss_from_similarity_equals_gca_loss(name, n_views):
    views = analysis.contrastive_batch(5, 6, n_views=n_views, seed=4)
    z = embed_views(views)
    target = _custom_target(5, n_views)
    spec = make_loss(name, eps=0.3).spec
    expected = gca_loss(*views, target=target, spec=spec)
    torch.testing.assert_close(analysis.loss_from_similarity(z @ z.T, spec, target), expected, rtol=1e-12, atol=1e-12)


def test_infonce_pair_gradient_closed_form():
    eps, batch = 0.4, 6
    views = analysis.contrastive_batch(batch, 5, seed=5)
    loss = make_loss("infonce", eps=eps)
    plan = loss.plan(*views)
    target = plans.positive_pairs(batch, 2, dtype=torch.float64)
    target = target / target.sum(1, keepdim=True)
    per_entry = (plan - target) / (2 * batch * eps)
    expected = (per_entry + per_entry.T).fill_diagonal_(0.0)
    torch.testing.assert_close(analysis.similarity_gradient(loss, *views), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["rince", "gca_uot", "iot_uni"])
def test_pair_gradient_matches_finite_differences(name):
    views = analysis.contrastive_batch(4, 5, seed=6)
    loss = make_loss(name, eps=0.3)
    gradient = analysis.similarity_gradient(loss, *views)
    z = embed_views(views)
    target = plans.positive_pairs(4, 2, dtype=torch.float64)
    h = 1e-6
    for r, s in [(0, 4), (1, 2), (3, 6)]:
        bump = torch.zeros(8, 8, dtype=torch.float64)
        bump[r, s] = bump[s, r] = h
        up = analysis.loss_from_similarity(z @ z.T + bump, loss.spec, target)
        down = analysis.loss_from_similarity(z @ z.T - bump, loss.spec, target)
        assert float(gradient[r, s]) == pytest.approx(float(up - down) / (2 * h), rel=1e-5, abs=1e-9)


def test_positive_pair_indices_and_pull_push_sums():
    rows, cols = analysis.positive_pair_indices(plans.positive_pairs(3, 2))
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 3), (1, 4), (2, 5)]
    target = plans.positive_pairs(2, 2)
    gradient = torch.tensor([[0.0, 0.1, -0.5, 0.2], [0.1, 0.0, 0.3, -0.7], [-0.5, 0.3, 0.0, 0.4], [0.2, -0.7, 0.4, 0.0]])
    split = analysis.pull_and_push(gradient, target)
    assert split["pull"] == pytest.approx(1.2)
    assert split["push"] == pytest.approx(0.1 + 0.2 + 0.3 + 0.4)


def test_kl_row_softmax_losses_pull_exactly_as_hard_as_they_push():
    views = analysis.contrastive_batch(8, 6, seed=8)
    target = plans.positive_pairs(8, 2, dtype=torch.float64)
    for name in ("infonce", "gca_ince"):
        split = analysis.pull_and_push(analysis.similarity_gradient(make_loss(name, eps=0.3), *views), target)
        assert split["pull"] == pytest.approx(split["push"], rel=1e-10)
    robust = analysis.pull_and_push(analysis.similarity_gradient(make_loss("rince", eps=0.3), *views), target)
    assert robust["pull"] > 2 * robust["push"]


def test_corrupt_views_replaces_only_the_chosen_last_views():
    views = analysis.contrastive_batch(8, 5, n_views=3, seed=9)
    corrupted, mask = analysis.corrupt_views(views, 0.25, seed=1)
    assert mask.dtype == torch.bool and int(mask.sum()) == 2
    assert torch.equal(corrupted[0], views[0]) and torch.equal(corrupted[1], views[1])
    assert torch.equal(corrupted[2][~mask], views[2][~mask])
    assert not torch.isclose(corrupted[2][mask], views[2][mask]).all(dim=1).any()
    torch.testing.assert_close(corrupted[2].norm(dim=1), views[2].norm(dim=1))
    again, mask_again = analysis.corrupt_views(views, 0.25, seed=1)
    assert torch.equal(mask, mask_again) and torch.equal(again[2], corrupted[2])
    untouched, none = analysis.corrupt_views(views, 0.0)
    assert not none.any() and torch.equal(untouched[2], views[2])
    with pytest.raises(ValueError, match="fraction"):
        analysis.corrupt_views(views, 1.5)


def test_corrupted_rows_are_the_last_view_of_flagged_samples():
    mask = torch.tensor([False, True, False, True])
    rows = analysis.corrupted_rows(mask, 3)
    assert rows.nonzero().flatten().tolist() == [9, 11]
    with pytest.raises(TypeError, match="mask"):
        analysis.corrupted_rows(torch.tensor([0, 1]), 2)


def test_pull_share_by_hand():
    target = plans.positive_pairs(2, 2)
    gradient = torch.tensor([[0.0, 0.1, -0.5, 0.2], [0.1, 0.0, 0.3, -1.5], [-0.5, 0.3, 0.0, 0.4], [0.2, -1.5, 0.4, 0.0]])
    assert analysis.pull_share(gradient, target, torch.tensor([False, False, False, True])) == pytest.approx(0.75)
    assert analysis.pull_share(gradient, target, torch.tensor([True, False, False, False])) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="not pulled together"):
        analysis.pull_share(-gradient, target, torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="rows must be"):
        analysis.pull_share(gradient, target, torch.ones(3, dtype=torch.bool))


def test_robust_loss_spends_less_pull_on_corrupted_pairs_than_infonce():
    views, mask = analysis.corrupt_views(analysis.contrastive_batch(16, 32, seed=0), 0.25, seed=1)
    target = plans.positive_pairs(16, 2, dtype=torch.float64)
    rows = analysis.corrupted_rows(mask, 2)

    def corrupted_share(name):
        return analysis.pull_share(analysis.similarity_gradient(make_loss(name, eps=0.2), *views), target, rows)

    assert corrupted_share("infonce") > 0.25
    assert corrupted_share("rince") < 0.5 * corrupted_share("infonce")
    assert corrupted_share("gca_rince") < 0.5 * corrupted_share("gca_ince")


def test_bad_arguments_name_the_argument():
    views = analysis.contrastive_batch(4, 3)
    with pytest.raises(TypeError, match="loss must be a GCALoss"):
        analysis.similarity_gradient(torch.nn.MSELoss(), *views)
    with pytest.raises(TypeError, match="spec"):
        analysis.loss_from_similarity(torch.eye(8, dtype=torch.float64), "infonce", plans.positive_pairs(4))
    with pytest.raises(ValueError, match="square"):
        analysis.loss_from_similarity(torch.zeros(8, 7, dtype=torch.float64), make_loss("infonce").spec, plans.positive_pairs(4))
    with pytest.raises(TypeError, match="n_source"):
        analysis.two_clouds(2.5)
    with pytest.raises(ValueError, match="a must be a tensor of shape"):
        analysis.exact_plan(torch.rand(2, 2, dtype=torch.float64), torch.ones(3, dtype=torch.float64))
    np.testing.assert_array_equal(analysis.positive_pair_indices(torch.zeros(3, 3))[0].numpy(), [])


def test_entropic_entropy_is_shannon_plus_mass_and_the_sweep_reports_it():
    uniform = torch.full((3, 4), 1 / 12, dtype=torch.float64)
    assert analysis.entropic_entropy(uniform) == pytest.approx(math.log(12) + 1)
    plan = torch.tensor([[0.5, 0.0], [0.25, 0.25]], dtype=torch.float64)
    assert analysis.entropic_entropy(plan) == pytest.approx(-sum(p * (math.log(p) - 1) for p in (0.5, 0.25, 0.25)))
    x, y = analysis.two_clouds(5, 5, seed=1)
    table = analysis.eps_sweep(analysis.squared_distances(x, y), [0.01, 10.0])
    assert table["H"] == pytest.approx([e + 1 for e in table["entropy"]], abs=1e-9)
    assert table["H"][-1] == pytest.approx(math.log(25) + 1, abs=1e-3)


def test_marginal_deviation_is_the_balanced_marginal_error_and_positive_for_unbalanced_plans():
    x, y = analysis.two_clouds(5, 4, n_outliers=1)
    cost = analysis.squared_distances(x, y)
    balanced = sinkhorn(cost, 0.1, n_iter=3)
    assert analysis.marginal_deviation(balanced.plan) == pytest.approx(balanced.marginal_error, rel=1e-9)
    unbalanced = sinkhorn(cost, 0.05, reg_a=0.1, reg_b=0.1, tol=1e-12, max_iter=5000)
    assert unbalanced.marginal_error < 1e-10 < 0.05 < analysis.marginal_deviation(unbalanced.plan)
    a = torch.tensor([0.5, 0.5], dtype=torch.float64)
    assert analysis.marginal_deviation(torch.tensor([[0.5, 0.0], [0.0, 0.25]], dtype=torch.float64), a, a) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"a must be a tensor of shape \(2,\)"):
        analysis.marginal_deviation(torch.eye(2, dtype=torch.float64), torch.ones(3, dtype=torch.float64))


def test_convergence_summary_reports_the_first_iteration_below_tol_or_the_last_error():
    assert analysis.convergence_summary([1.0, 1e-3, 1e-13, 1e-14], 1e-12) == "below 1e-12 after 3 iterations"
    assert analysis.convergence_summary([1.0, 7.62e-4], 1e-12) == "7.6e-04 after 2 iterations (not converged)"
    with pytest.raises(ValueError, match="at least one"):
        analysis.convergence_summary([], 1e-12)


def test_nt_xent_with_three_views_is_the_multi_positive_cross_entropy_of_the_infonce_preset():
    views = analysis.contrastive_batch(4, 6, n_views=3, seed=2)
    z = embed_views(views)
    total = 0.0
    for r in range(12):
        log_norm = math.log(sum(math.exp(float(z[r] @ z[s]) / 0.5) for s in range(12) if s != r))
        partners = [s for s in range(12) if s != r and s % 4 == r % 4]
        total += sum(-(float(z[r] @ z[s]) / 0.5 - log_norm) for s in partners) / 2
    assert float(analysis.nt_xent(*views, temperature=0.5)) == pytest.approx(total / 12, rel=1e-10)
    assert float(analysis.nt_xent(*views, temperature=0.5)) == pytest.approx(float(make_loss("infonce", eps=0.5)(*views)), rel=1e-10)
    with pytest.raises(TypeError, match="needs a temperature"):
        analysis.nt_xent(*views)


def test_cross_entropy_and_kl_differ_by_the_target_entropy():
    views = analysis.contrastive_batch(5, 6, n_views=3, seed=4)
    target = plans.positive_pairs(5, 3, dtype=torch.float64)
    plan = make_loss("infonce", eps=0.5).plan(*views)
    values = analysis.cross_entropy_and_kl(target, plan)
    assert values["cross_entropy"] == pytest.approx(float(make_loss("infonce", eps=0.5)(*views)), rel=1e-10)
    assert values["target_entropy"] == pytest.approx(math.log(2))
    hat = target / target.sum(1, keepdim=True)
    kl = float(sum((hat[r][hat[r] > 0] * (hat[r][hat[r] > 0] / plan[r][hat[r] > 0]).log()).sum() for r in range(15)) / 15)
    assert values["kl"] == pytest.approx(kl, rel=1e-10)
    two = analysis.cross_entropy_and_kl(plans.positive_pairs(5, 2, dtype=torch.float64),
                                        make_loss("infonce").plan(*views[:2]))
    assert two["target_entropy"] == 0.0 and two["kl"] == two["cross_entropy"]


def test_first_iteration_share_of_the_loss_change():
    assert analysis.first_iteration_share([1.0, 0.6, 0.55, 0.5], [0, 1, 10, 100]) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="contain 0 and 1"):
        analysis.first_iteration_share([1.0, 0.5], [0, 2])
    with pytest.raises(ValueError, match="undefined"):
        analysis.first_iteration_share([1.0, 1.0], [0, 1])


def test_gained_mass_share_counts_the_gain_on_target_pairs():
    reference = torch.full((2, 2), 0.25, dtype=torch.float64)
    plan = torch.tensor([[0.35, 0.15], [0.2, 0.3]], dtype=torch.float64)  # gains 0.1 at (0, 0), 0.05 at (1, 1)
    target = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    assert analysis.gained_mass_share(plan, reference, target) == pytest.approx(0.0)
    assert analysis.gained_mass_share(plan, reference, 1 - target) == pytest.approx(1.0)
    assert analysis.gained_mass_share(plan, reference, torch.eye(2, dtype=torch.float64)[[0, 0]] * torch.tensor([1.0, 0.0])) == pytest.approx(0.1 / 0.15)
    with pytest.raises(ValueError, match="undefined"):
        analysis.gained_mass_share(reference, reference, target)
