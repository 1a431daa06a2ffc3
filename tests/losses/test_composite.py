"""The composite formula (the reference the fused loss is tested against): its pieces and their identities."""
import math

import pytest
import torch

from gcalib.losses import targets as plans
from gcalib.losses.composite import composite_loss, cross_entropy, scored_log_plan
from gcalib.losses.gca import make_loss
from gcalib.losses.kernel import contrastive_log_kernel, embed_views, similarity_log_kernel
from gcalib.losses.spec import LOSSES


def test_cross_entropy_is_kl_plus_the_entropy_of_the_target():
    gen = torch.Generator().manual_seed(0)
    target = plans.domain_plan(torch.tensor([0, 0, 1]), 0.4, 0.1, n_views=3).double()
    target = target / target.sum(1, keepdim=True)
    plan = torch.rand(9, 9, generator=gen, dtype=torch.float64).fill_diagonal_(0.0)
    log_plan = (plan / plan.sum(1, keepdim=True)).log()
    entropy = -torch.special.xlogy(target, target).sum(1).mean()
    kl = (torch.special.xlogy(target, target) - torch.where(target > 0, target * log_plan, 0.0)).sum(1).mean()
    torch.testing.assert_close(cross_entropy(target, log_plan), kl + entropy)


def test_log_kernel_of_unit_rows_is_that_of_their_cosines(make_views):
    z = embed_views(make_views(4, 3))
    log_kernel = contrastive_log_kernel(z, 0.3)
    torch.testing.assert_close(log_kernel, similarity_log_kernel(z @ z.T, 0.3))
    assert (log_kernel.diagonal() == -math.inf).all()
    torch.testing.assert_close(log_kernel.fill_diagonal_(0.0), ((z @ z.T - 1) / 0.3).fill_diagonal_(0.0))


@pytest.mark.parametrize("name", LOSSES)
def test_composite_loss_is_the_unrolled_gca_loss(make_views, name):
    views = make_views(5, 4, 2, seed=1)
    spec = make_loss(name, n_iter=3, eps=0.4, grad="unroll").spec
    target = plans.positive_pairs(5, 2, dtype=torch.float64)
    ours = composite_loss(contrastive_log_kernel(embed_views(views), spec.eps), target / target.sum(1, keepdim=True), spec)
    torch.testing.assert_close(ours, make_loss(name, n_iter=3, eps=0.4, grad="unroll")(*views), rtol=0, atol=0)


@pytest.mark.parametrize("scored", ["projected", "sinkhorn"])
def test_scored_plan_is_row_stochastic_or_the_sinkhorn_plan(make_views, scored):
    z = embed_views(make_views(4, 3, seed=2))
    spec = make_loss("gca_ince", n_iter=500, scored=scored).spec
    log_weights, log_plan = scored_log_plan(contrastive_log_kernel(z, spec.eps), spec)
    plan = log_plan.exp()
    torch.testing.assert_close(plan.sum(1), torch.ones(8, dtype=torch.float64))
    if scored == "sinkhorn":
        assert torch.equal(log_weights, log_plan)
        torch.testing.assert_close(plan.sum(0), torch.ones(8, dtype=torch.float64))
