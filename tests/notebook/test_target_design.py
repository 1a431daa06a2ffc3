"""Target-plan design: named plans, lifting sample weights, target-mass shares."""
import pytest
import torch

from gcalib.losses import targets as plans
from gcalib.notebook import target_design


def test_build_plan_dispatches_to_the_plan_builders():
    labels, domains = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 1])
    assert torch.equal(target_design.build_plan("positive", batch_size=4, n_views=3), plans.positive_pairs(4, 3))
    assert torch.equal(target_design.build_plan("positive", domains=domains), plans.positive_pairs(4))
    assert torch.equal(target_design.build_plan("labels", labels=labels), plans.from_labels(labels))
    assert torch.equal(target_design.build_plan("domain", domains=domains, alpha=0.3, beta=0.1), plans.domain_plan(domains, 0.3, 0.1))
    with pytest.raises(ValueError, match="unknown plan kind 'hospital'; valid: positive, labels, domain"):
        target_design.build_plan("hospital", domains=domains)
    with pytest.raises(ValueError, match="kind='domain' needs domains="):
        target_design.build_plan("domain", labels=labels)
    with pytest.raises(ValueError, match="kind='positive' needs batch_size="):
        target_design.build_plan("positive")
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        target_design.build_plan("labels", labels=torch.tensor([0.0, 1.0]))


def test_lift_sample_weights_exact_two_views():
    w = torch.tensor([[9.0, 0.2, 0.0], [0.2, 9.0, 0.5], [0.0, 0.5, 9.0]])  # the diagonal is not used
    a, b = 0.2, 0.5
    expected = torch.tensor([
        [0, a, 0, 1, a, 0],
        [a, 0, b, a, 1, b],
        [0, b, 0, 0, b, 1],
        [1, a, 0, 0, a, 0],
        [a, 1, b, a, 0, b],
        [0, b, 1, 0, b, 0],
    ])
    torch.testing.assert_close(target_design.lift_sample_weights(w), expected)
    torch.testing.assert_close(target_design.lift_sample_weights(w, positive=2.0).diagonal(3), torch.full((3,), 2.0))


def test_lift_sample_weights_reproduces_the_domain_plan():
    domains = torch.tensor([0, 2, 2, 1, 0])
    same = (domains[:, None] == domains[None, :]).float()
    lifted = target_design.lift_sample_weights(0.4 * same + 0.1 * (1 - same), n_views=3)
    torch.testing.assert_close(lifted, plans.domain_plan(domains, 0.4, 0.1, n_views=3))


def test_lift_sample_weights_errors():
    with pytest.raises(ValueError, match=r"square \(B, B\).*got shape \(3, 2\)"):
        target_design.lift_sample_weights(torch.zeros(3, 2))
    with pytest.raises(TypeError, match="floating-point.*int64"):
        target_design.lift_sample_weights(torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="positive must be a finite number >= 0.*-1"):
        target_design.lift_sample_weights(torch.zeros(3, 3), positive=-1.0)
    alone = torch.tensor([[0.0, 0.3, 0.0], [0.3, 0.0, 0.0], [0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"every target row needs positive mass; rows \[2, 5\] sum to zero"):
        target_design.lift_sample_weights(alone, positive=0.0)
    with pytest.raises(ValueError, match="non-negative"):
        target_design.lift_sample_weights(-torch.ones(3, 3))


def _closed_form_shares(domains, alpha, beta, n_views):
    """Mean over rows of (positive, same-domain, other-domain) shares from the formula in the docstring."""
    batch = len(domains)
    shares = []
    for d in domains.tolist():
        m = int((domains == d).sum())
        z = (n_views - 1) + alpha * n_views * (m - 1) + beta * n_views * (batch - m)
        shares.append(((n_views - 1) / z, alpha * n_views * (m - 1) / z, beta * n_views * (batch - m) / z))
    return [sum(s[i] for s in shares) / batch for i in range(3)]


@pytest.mark.parametrize("alpha, beta, n_views", [(0.5, 0.1, 2), (0.0, 0.3, 3), (0.2, 0.0, 2)])
def test_target_mass_matches_closed_form_for_domain_plans(alpha, beta, n_views):
    domains = torch.tensor([0, 0, 0, 1, 2, 2, 1, 0])  # unequal domain sizes
    mass = target_design.target_mass(plans.domain_plan(domains, alpha, beta, n_views), n_views, domains=domains)
    expected = _closed_form_shares(domains, alpha, beta, n_views)
    assert [mass["positive"], mass["same_domain"], mass["other_domain"]] == pytest.approx(expected, abs=1e-6)
    assert sum(mass.values()) == pytest.approx(1.0, abs=1e-6)


def test_target_mass_of_class_plan_and_labels_keys():
    labels = torch.tensor([0, 1, 0, 1, 1])
    mass = target_design.target_mass(plans.from_labels(labels), labels=labels)
    # Row of class 0: partners 1 positive + 2 same class (other sample of class 0, both views) -> 1/3 positive.
    # Row of class 1: 1 positive + 4 same class -> 1/5 positive. Nothing goes to other classes.
    assert mass["positive"] == pytest.approx((2 * 1 / 3 + 3 * 1 / 5) / 5, abs=1e-6)
    assert mass["other_class"] == 0.0
    assert set(mass) == {"positive", "same_class", "other_class"}
    assert target_design.target_mass(plans.positive_pairs(4)) == {"positive": pytest.approx(1.0)}


def test_target_mass_errors():
    with pytest.raises(ValueError, match="n divisible by n_views=3"):
        target_design.target_mass(plans.positive_pairs(2), n_views=3)
    with pytest.raises(ValueError, match="zero diagonal"):
        target_design.target_mass(torch.ones(4, 4))
    with pytest.raises(ValueError, match=r"domains must hold one id per sample \(3\), got 2"):
        target_design.target_mass(plans.positive_pairs(3), domains=torch.tensor([0, 1]))
