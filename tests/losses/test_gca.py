"""The GCA loss family: closed forms, independent references, gradients and input validation."""
import math

import pytest
import torch

from gcalib.losses import targets as plans
from gcalib.losses.composite import cross_entropy, plan_log_weights
from gcalib.losses.gca import make_loss
from gcalib.losses.kernel import contrastive_log_kernel, embed_views
from gcalib.losses.spec import LOSSES, PRESETS, LossSpec, robust_scale


def _cosines(views):
    z = [v / v.norm(dim=1, keepdim=True) for v in views]
    rows = [zi[b] for zi in z for b in range(views[0].shape[0])]
    return torch.stack([torch.stack([a @ b for b in rows]) for a in rows])


def nt_xent_reference(views, temperature):
    """NT-Xent (SimCLR) with every other view of a sample as a positive, loops for clarity."""
    cos = _cosines(views)
    n, batch = cos.shape[0], views[0].shape[0]
    total = 0.0
    for r in range(n):
        denominator = sum(math.exp(cos[r, s] / temperature) for s in range(n) if s != r)
        positives = [s for s in range(n) if s != r and s % batch == r % batch]
        total += sum(-math.log(math.exp(cos[r, p] / temperature) / denominator) for p in positives) / len(positives)
    return total / n


def rince_reference(views, temperature, q, lam):
    """Chuang et al. (2022) RINCE, two views: −e^{q s⁺}/q + (λ(e^{s⁺} + Σ e^{s⁻}))^q/q, s = cos/τ."""
    cos = _cosines(views)
    n, batch = cos.shape[0], views[0].shape[0]
    total = 0.0
    for r in range(n):
        pos = (r + batch) % n
        s_pos = cos[r, pos] / temperature
        negatives = sum(math.exp(cos[r, s] / temperature) for s in range(n) if s not in (r, pos))
        total += -math.exp(q * s_pos) / q + (lam * (math.exp(s_pos) + negatives)) ** q / q
    return total / n


@pytest.mark.parametrize("n_views", [2, 3])
@pytest.mark.parametrize("eps", [0.1, 0.5, 1.0])
def test_infonce_equals_independent_nt_xent(make_views, n_views, eps):
    views = make_views(n_views=n_views)
    expected = nt_xent_reference(views, eps)
    assert float(make_loss("infonce", eps=eps)(*views)) == pytest.approx(expected, abs=1e-6)
    assert float(make_loss("hs_ince", eps=eps)(*views)) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("eps,q,lam", [(0.5, 0.6, 0.01), (0.2, 0.3, 0.1), (1.0, 1.0, 0.5)])
def test_rince_equals_chuang_et_al_times_constant(make_views, eps, q, lam):
    views = make_views(seed=1)
    expected = math.exp(-q / eps) * rince_reference(views, eps, q, lam)
    assert float(make_loss("rince", eps=eps, q=q, lam=lam)(*views)) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert float(make_loss("gca_rince", eps=eps, q=q, lam=lam, n_iter=0)(*views)) == pytest.approx(expected, rel=1e-9)


def test_gca_uot_with_zero_iterations_is_infonce_plus_weighted_rince(make_views):
    views = make_views(seed=2)
    uot = make_loss("gca_uot", n_iter=0, r1=1.0, r2=0.2)(*views)
    combined = make_loss("infonce")(*views) + 0.2 * make_loss("rince")(*views)
    torch.testing.assert_close(uot, combined)


def _clustered_views(seed, batch=8, dim=4):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, dim, generator=gen, dtype=torch.float64)
    base = centres[torch.randint(0, 3, (batch,), generator=gen)]
    return [base + 0.3 * torch.randn(batch, dim, generator=gen, dtype=torch.float64) for _ in range(2)]


@pytest.mark.parametrize("eps", [1.0, 0.5, 0.1, 0.05])
def test_cross_entropy_never_increases_from_infonce_to_converged_plan(make_views, eps):
    """20 batches solved at once: the functional pieces of the loss on a batch of log-kernels."""
    cases = [views for seed in range(10) for views in (make_views(batch=8, seed=seed), _clustered_views(seed))]
    log_kernels = torch.stack([contrastive_log_kernel(embed_views(views), eps) for views in cases])
    target = plans.positive_pairs(8, dtype=torch.float64)
    spec = LossSpec(eps=eps, n_iter=3000)
    converged_weights, _ = plan_log_weights(log_kernels, spec)
    for index, views in enumerate(cases):
        one_step = float(make_loss("gca_ince", eps=eps, n_iter=0)(*views))
        converged = float(cross_entropy(target, torch.log_softmax(converged_weights[index], dim=1)))
        assert converged <= one_step + 1e-9
    assert float(make_loss("gca_ince", eps=eps, n_iter=3000)(*cases[0])) == pytest.approx(
        float(cross_entropy(target, torch.log_softmax(converged_weights[0], dim=1))), rel=1e-12)


def test_multi_step_plan_is_balanced_after_convergence(make_views):
    views = make_views(batch=5)
    plan = make_loss("gca_ince", eps=0.3, n_iter=2000).plan(*views)
    torch.testing.assert_close(plan.sum(0), torch.ones(10, dtype=torch.float64), atol=1e-8, rtol=0)
    torch.testing.assert_close(plan.sum(1), torch.ones(10, dtype=torch.float64))
    assert (plan.diagonal() == 0).all()


def test_custom_target_changes_the_loss_and_positive_pairs_is_the_default(make_views):
    views = make_views(batch=4)
    loss = make_loss("gca_ince")
    torch.testing.assert_close(loss(*views), loss(*views, target=plans.positive_pairs(4, 2, dtype=torch.float64)))
    domain = plans.domain_plan(torch.tensor([0, 0, 1, 1]), 0.5, 0.1).double()
    assert not torch.allclose(loss(*views), loss(*views, target=domain))


@pytest.mark.parametrize("name", LOSSES)
def test_gradcheck_every_preset(make_views, name):
    views = [v.requires_grad_(True) for v in make_views(batch=3, dim=3, seed=3)]
    loss = make_loss(name, n_iter=3) if PRESETS[name].n_iter else make_loss(name)
    assert torch.autograd.gradcheck(lambda *v: loss(*v), tuple(views))


@pytest.mark.parametrize("name", LOSSES)
def test_gradcheck_with_custom_target_and_three_views(make_views, name):
    views = [v.requires_grad_(True) for v in make_views(batch=3, dim=3, n_views=3, seed=4)]
    target = plans.domain_plan(torch.tensor([0, 1, 1]), 0.4, 0.2, n_views=3).double()
    loss = make_loss(name, n_iter=2) if PRESETS[name].n_iter else make_loss(name)
    assert torch.autograd.gradcheck(lambda *v: loss(*v, target=target), tuple(views))


def _finite_loss_and_grad(name, eps, batch, autocast=False):
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(batch, 16, generator=gen)
    layer = torch.nn.Linear(16, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        views = [layer(base + 0.1 * torch.randn(batch, 16, generator=gen)) for _ in range(2)]
        value = make_loss(name, eps=eps)(*views)
    value.backward()
    return torch.isfinite(value).item() and all(torch.isfinite(p.grad).all() for p in layer.parameters())


@pytest.mark.filterwarnings("ignore:.*the robust term and its gradients carry:UserWarning")  # small eps on purpose
@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("eps", [0.005, 0.01, 0.05, 0.5, 2.0])
def test_finite_loss_and_gradients_across_eps(name, eps):
    assert _finite_loss_and_grad(name, eps, batch=32)


@pytest.mark.filterwarnings("ignore:.*the robust term and its gradients carry:UserWarning")  # small eps on purpose
@pytest.mark.parametrize("name", LOSSES)
def test_finite_at_n_2048_smallest_eps_under_bf16_autocast(name):
    assert _finite_loss_and_grad(name, 0.005, batch=1024, autocast=True)


def test_autocast_runs_the_transport_in_float32():
    views = [torch.randn(8, 4, dtype=torch.bfloat16) for _ in range(2)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plan = make_loss("gca_ince").plan(*views)
        value = make_loss("gca_ince")(*views)
    assert plan.dtype == torch.float32 and value.dtype == torch.float32


@pytest.mark.filterwarnings("ignore:.*the robust term and its gradients carry:UserWarning")  # small eps on purpose
def test_identical_and_collinear_embeddings_are_finite():
    same = torch.ones(6, 4, requires_grad=True)
    for name in LOSSES:
        value = make_loss(name, eps=0.01)(same, same * 2)
        (grad,) = torch.autograd.grad(value, same)
        assert torch.isfinite(value) and torch.isfinite(grad).all()


def _good():
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(4, 3, generator=gen) for _ in range(2)]


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: make_loss("infonce")(torch.randn(4, 3), torch.randn(4, 5)), ValueError, "same shape"),
        (lambda: make_loss("infonce")(torch.randn(4, 3)), ValueError, "at least two views"),
        (lambda: make_loss("infonce")(torch.randn(1, 3), torch.randn(1, 3)), ValueError, "at least two samples"),
        (lambda: make_loss("infonce")(torch.full((4, 3), math.nan), torch.randn(4, 3)), ValueError, "NaN or inf"),
        (lambda: make_loss("infonce")(torch.full((4, 3), math.inf), torch.randn(4, 3)), ValueError, "NaN or inf"),
        (lambda: make_loss("infonce")(torch.ones(4, 3, dtype=torch.int64), torch.ones(4, 3, dtype=torch.int64)), TypeError, "floating-point"),
        (lambda: make_loss("infonce")(torch.randn(4, 3), torch.randn(4, 3, dtype=torch.float64)), ValueError, "share a dtype"),
        (lambda: make_loss("infonce")(torch.randn(4), torch.randn(4)), ValueError, r"shape \(batch, dim\)"),
        (lambda: make_loss("infonce")(torch.zeros(4, 3), torch.randn(4, 3)), ValueError, "zero norm"),
        (lambda: make_loss("infonce", eps=0.0), ValueError, "eps must be a finite number > 0"),
        (lambda: make_loss("infonce", eps=-0.5), ValueError, "eps must be a finite number > 0"),
        (lambda: make_loss("gca_ince", n_iter=-1), ValueError, "n_iter must be an int >= 0, got -1"),
        (lambda: make_loss("gca_ince", n_iter=2.5), TypeError, "n_iter must be an int"),
        (lambda: make_loss("rince", q=0.0), ValueError, r"q must be a number in \(0, 1\]"),
        (lambda: make_loss("rince", q=1.5), ValueError, r"q must be a number in \(0, 1\]"),
        (lambda: make_loss("rince", lam=0.0), ValueError, "lam must be a finite number > 0"),
        (lambda: make_loss("gca_uot", reg_a=-1.0), ValueError, "reg_a must be a number > 0"),
        (lambda: make_loss("gca_uot", r1=-1.0), ValueError, "r1 must be a finite number >= 0"),
        (lambda: make_loss("gca_uot", r1=0.0, r2=0.0), ValueError, "both 0"),
        (lambda: make_loss("simclr"), ValueError, "unknown loss 'simclr'; valid: infonce, hs_ince, gca_ince"),
        (lambda: make_loss("infonce", temperature=0.1), TypeError, "unknown hyper-parameter"),
        (lambda: make_loss("infonce")(*_good(), target=-plans.positive_pairs(4)), ValueError, "non-negative"),
        (lambda: make_loss("infonce")(*_good(), target=plans.positive_pairs(4).fill_diagonal_(1)), ValueError, "zero diagonal"),
        (lambda: make_loss("infonce")(*_good(), target=plans.positive_pairs(4).index_fill_(0, torch.tensor([1]), 0)), ValueError, "sum to zero"),
        (lambda: make_loss("infonce")(*_good(), target=plans.positive_pairs(3)), ValueError, r"shape \(8, 8\)"),
        (lambda: make_loss("infonce")(*_good(), target=plans.positive_pairs(4).long()), TypeError, "floating-point"),
        (lambda: make_loss("infonce")(*_good(), target=plans.positive_pairs(4) * math.inf), ValueError, "finite"),
    ],
)
def test_bad_input_raises_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_gather_distributed_without_process_group_is_a_clear_error():
    with pytest.raises((RuntimeError, ValueError), match="process group"):
        make_loss("infonce", gather_distributed=True)(*_good())


@pytest.mark.parametrize("name", ["rince", "gca_rince"])
def test_robust_only_loss_warns_when_its_scale_vanishes(name):
    q = PRESETS[name].q
    with pytest.warns(UserWarning, match=rf"{name} at eps=0.01, q={q}: .* e\^\(-q/eps\) = {math.exp(-q / 0.01):.2g} "
                                         r".*use eps >= 0.0434 at this q, or add a cross-entropy term \(r1 > 0\)"):
        make_loss(name, eps=0.01)


@pytest.mark.parametrize("name, hparams", [("rince", dict(eps=0.5)), ("gca_rince", dict(eps=0.05)),
                                           ("gca_uot", dict(eps=0.005)), ("infonce", dict(eps=0.005))])
def test_no_scale_warning_with_a_kl_term_or_a_usable_eps(name, hparams, recwarn):
    make_loss(name, **hparams)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_robust_scale_is_the_rince_constant():
    spec = LossSpec(eps=0.25, q=0.5, r1=0.0, r2=1.0)
    assert robust_scale(spec) == pytest.approx(math.exp(-2.0))
