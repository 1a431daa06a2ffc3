"""The fused loss function against the composite autograd formula (grad="unroll"), the reference."""
import math

import pytest
import torch

from gcalib.losses import fused as fused_loss
from gcalib.losses import targets as plans
from gcalib.ot import scaling
from gcalib.losses.fused import positive_pair_target
from gcalib.losses.gca import make_loss
from gcalib.losses.spec import LOSSES, PRESETS

# Small eps is what these tests are about: the robust-term scale warning is tested in test_gca.py.
pytestmark = pytest.mark.filterwarnings("ignore:.*the robust term and its gradients carry:UserWarning")


def _value_and_grads(name, views, target, **hparams):
    value = make_loss(name, **hparams)(*views, target=target)
    return value.detach(), torch.autograd.grad(value, views)


def _assert_same(name, views, target, tol=1e-10, **hparams):
    value, grads = _value_and_grads(name, views, target, **hparams)
    ref_value, ref_grads = _value_and_grads(name, views, target, grad="unroll", **hparams)
    assert abs(float(value - ref_value)) <= tol * max(1.0, abs(float(ref_value)))
    scale = max(float(g.abs().max()) for g in ref_grads)
    assert max(float((g - r).abs().max()) for g, r in zip(grads, ref_grads)) <= tol * max(scale, 1e-3)


def _target(kind, batch, n_views):
    if kind is None:
        return None
    if kind == "labels":
        return plans.from_labels(torch.arange(batch) % 3, n_views).double()
    return plans.domain_plan(torch.arange(batch) % 2, 0.3, 0.05, n_views).double()


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("n_iter", [0, 1, 3, 10])
@pytest.mark.parametrize("eps", [0.5, 0.1, 0.02])
def test_fused_loss_equals_composite_autograd_for_every_preset(make_views, name, n_iter, eps):
    for n_views, target in ((2, None), (3, None), (2, "domain"), (3, "labels")):
        views = make_views(6, 5, n_views, seed=n_iter, requires_grad=True)
        _assert_same(name, views, _target(target, 6, n_views), eps=eps, n_iter=n_iter)


@pytest.mark.parametrize("hparams", [
    dict(r1=0.5, r2=2.0, q=0.3, lam=0.2, reg_a=0.1, reg_b=3.0),
    dict(scored="sinkhorn", r2=0.5, uni_weight=0.3, reg_b=0.5),
    dict(scored="sinkhorn", r1=0.0, r2=1.0),
    dict(uni_weight=0.2, reg_a=0.4),
])
def test_fused_loss_equals_composite_for_mixed_hyper_parameters(make_views, hparams):
    for target in (None, "domain"):
        views = make_views(5, 4, 2, seed=1, requires_grad=True)
        _assert_same("gca_uot", views, _target(target, 5, 2), eps=0.2, n_iter=4, **hparams)


def test_log_domain_fallbacks_of_the_fused_loss_are_exact(make_views, monkeypatch):
    """Force every Sinkhorn half-step and the dense positive sums through their log-domain paths."""
    monkeypatch.setattr(scaling, "log_floor", lambda dtype: math.inf)
    monkeypatch.setattr(fused_loss, "log_floor", lambda dtype: math.inf)
    for name in ("gca_uot", "gca_rince", "iot_uni"):
        for target in (None, "domain"):
            views = make_views(5, 4, 2, seed=2, requires_grad=True)
            _assert_same(name, views, _target(target, 5, 2), eps=0.1, n_iter=3)


def test_small_eps_float32_fused_loss_tracks_the_float64_reference(make_views):
    base = make_views(32, 16, 2, seed=3, requires_grad=True)
    for name in ("gca_ince", "gca_uot", "iot"):
        ref_value, ref_grads = _value_and_grads(name, base, None, eps=0.02, grad="unroll")
        single = [v.detach().float().requires_grad_(True) for v in base]
        value, grads = _value_and_grads(name, single, None, eps=0.02)
        assert abs(float(value) - float(ref_value)) <= 1e-5 * abs(float(ref_value))
        scale = max(float(g.abs().max()) for g in ref_grads)
        assert max(float((g.double() - r).abs().max()) for g, r in zip(grads, ref_grads)) <= 1e-4 * scale


def test_target_with_gradient_uses_the_composite_path(make_views):
    views = make_views(4, 3, 2, seed=4, requires_grad=True)
    target = plans.domain_plan(torch.tensor([0, 0, 1, 1]), 0.5, 0.1).double().requires_grad_(True)
    for name in ("gca_ince", "gca_uot"):
        grads = {}
        for mode in ("fused", "unroll"):
            value = make_loss(name, grad=mode)(*views, target=target)
            grads[mode] = torch.autograd.grad(value, [target, *views])
        assert torch.isfinite(grads["fused"][0]).all()
        for ours, ref in zip(grads["fused"], grads["unroll"]):
            torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)


def test_positive_pair_target_matches_the_dense_plan():
    for batch, n_views in ((3, 2), (4, 3)):
        sparse = positive_pair_target(batch, n_views, torch.zeros(1, dtype=torch.float64))
        dense = torch.zeros(batch * n_views, batch * n_views, dtype=torch.float64)
        dense.scatter_(1, sparse.index, sparse.weight)
        expected = plans.positive_pairs(batch, n_views, dtype=torch.float64)
        torch.testing.assert_close(dense, expected / expected.sum(1, keepdim=True))


@pytest.mark.parametrize("mode", ["implicit", "detach"])
def test_other_gradient_modes_run_on_the_composite_path(make_views, mode):
    views = make_views(5, 4, 2, seed=5, requires_grad=True)
    value = make_loss("gca_ince", grad=mode, n_iter=200)(*views)
    grads = torch.autograd.grad(value, views)
    assert all(torch.isfinite(g).all() for g in grads)
    reference = make_loss("gca_ince", n_iter=200)(*views).detach()
    assert float(value.detach()) == pytest.approx(float(reference), rel=1e-12)


def test_default_grad_mode_is_fused():
    assert all(spec.grad == "fused" for spec in PRESETS.values())
