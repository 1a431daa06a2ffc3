"""Target-plan builders: exact values in the blocked layout and validation messages."""
import math

import pytest
import torch

from gcalib.losses import targets as plans


def test_positive_pairs_two_views_exact():
    expected = torch.tensor(
        [
            [0, 0, 0, 1, 0, 0],
            [0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 1],
            [1, 0, 0, 0, 0, 0],
            [0, 1, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0],
        ],
        dtype=torch.float32,
    )
    torch.testing.assert_close(plans.positive_pairs(3, 2), expected)


def test_positive_pairs_three_views_has_two_positives_per_row_at_offsets_of_b():
    plan = plans.positive_pairs(4, 3)
    assert plan.shape == (12, 12)
    assert (plan.sum(1) == 2).all()
    for r in range(12):
        assert {s for s in range(12) if plan[r, s] == 1} == {s for s in range(12) if s != r and s % 4 == r % 4}


def test_from_labels_matches_same_class_pairs():
    labels = torch.tensor([0, 1, 0])
    plan = plans.from_labels(labels, n_views=2)
    rows = [0, 1, 0, 0, 1, 0]
    for r in range(6):
        for s in range(6):
            assert plan[r, s] == float(r != s and rows[r] == rows[s])


def test_domain_plan_values_symmetry_and_reduction_to_positive_pairs():
    domains = torch.tensor([0, 0, 1])
    plan = plans.domain_plan(domains, alpha=0.3, beta=0.1, n_views=2)
    # sample 0 (rows 0, 3); sample 1 same domain (rows 1, 4); sample 2 other domain (rows 2, 5)
    assert plan[0, 3] == 1 and plan[0, 1] == pytest.approx(0.3) and plan[0, 4] == pytest.approx(0.3)
    assert plan[0, 2] == pytest.approx(0.1) and plan[0, 5] == pytest.approx(0.1)
    assert (plan.diagonal() == 0).all()
    torch.testing.assert_close(plan, plan.T)
    torch.testing.assert_close(plans.domain_plan(domains, 0.0, 0.0), plans.positive_pairs(3, 2))


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: plans.positive_pairs(1), ValueError, "batch_size must be an int >= 2, got 1"),
        (lambda: plans.positive_pairs(4, 1), ValueError, "n_views must be an int >= 2, got 1"),
        (lambda: plans.positive_pairs(4.0), TypeError, "batch_size must be an int"),
        (lambda: plans.from_labels(torch.tensor([0.0, 1.0])), TypeError, "integer tensor"),
        (lambda: plans.from_labels(torch.tensor([[0, 1]])), ValueError, "one-dimensional"),
        (lambda: plans.domain_plan(torch.tensor([0, 1]), -0.1, 0.0), ValueError, "alpha must be a finite number >= 0"),
        (lambda: plans.domain_plan(torch.tensor([0, 1]), 0.1, math.nan), ValueError, "beta must be a finite number >= 0"),
    ],
)
def test_builder_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _valid(n=4):
    return plans.positive_pairs(n // 2, 2)


@pytest.mark.parametrize(
    "mutate,error,match",
    [
        (lambda t: t[:3], ValueError, r"shape \(4, 4\)"),
        (lambda t: t.long(), TypeError, "floating-point"),
        (lambda t: t.index_put_((torch.tensor([0]), torch.tensor([1])), torch.tensor(-1.0)), ValueError, "non-negative"),
        (lambda t: t.index_put_((torch.tensor([0]), torch.tensor([1])), torch.tensor(math.nan)), ValueError, "finite"),
        (lambda t: t.fill_diagonal_(1.0), ValueError, "zero diagonal"),
        (lambda t: t.index_fill_(0, torch.tensor([2]), 0.0), ValueError, r"rows \[2\] sum to zero"),
        (lambda t: t.tolist(), TypeError, "torch.Tensor"),
    ],
)
def test_validate_target_errors(mutate, error, match):
    with pytest.raises(error, match=match):
        plans.validate_target(mutate(_valid()), 4)


def test_validate_target_accepts_and_returns_a_valid_plan():
    target = plans.domain_plan(torch.tensor([0, 1, 1]), 0.5, 0.2, n_views=3)
    assert plans.validate_target(target, 9) is target
