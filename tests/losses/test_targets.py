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


def test_target_plan_dispatches_each_kind_to_its_builder():
    labels, domains = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 1])
    assert plans.TARGET_KINDS == ("positive", "labels", "domain")
    assert torch.equal(plans.target_plan("positive", 4, n_views=3), plans.positive_pairs(4, 3))
    assert torch.equal(plans.target_plan("positive", domains=domains), plans.positive_pairs(4))
    assert torch.equal(plans.target_plan("positive", labels=[0, 1, 1]), plans.positive_pairs(3))
    assert torch.equal(plans.target_plan("labels", labels=labels), plans.from_labels(labels))
    assert torch.equal(plans.target_plan("domain", domains=domains, alpha=0.3, beta=0.1, n_views=3),
                       plans.domain_plan(domains, 0.3, 0.1, 3))
    plan = plans.target_plan("domain", 4, domains=domains, alpha=0.3, dtype=torch.float64, device="cpu")
    assert plan.dtype == torch.float64 and torch.equal(plan, plans.domain_plan(domains, 0.3, 0.0, dtype=torch.float64))


@pytest.mark.parametrize("kind", plans.TARGET_KINDS)
def test_target_plan_rows_are_the_rows_of_the_whole_plan(kind):
    ids = torch.tensor([0, 1, 1, 0, 2])
    rows = torch.tensor([7, 0, 3])
    whole = plans.target_plan(kind, 5, labels=ids, domains=ids, alpha=0.2, beta=0.1, n_views=2)
    assert torch.equal(plans.target_plan(kind, 5, labels=ids, domains=ids, alpha=0.2, beta=0.1, rows=rows), whole[rows])


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: plans.target_plan("hospital", 4), ValueError,
         "unknown target kind 'hospital'; valid: positive, labels, domain"),
        (lambda: plans.target_plan("labels", 4), ValueError, r"kind='labels' needs labels= \(one class id per sample\)"),
        (lambda: plans.target_plan("domain", labels=[0, 1]), ValueError, r"kind='domain' needs domains= \(one domain id"),
        (lambda: plans.target_plan("positive"), ValueError,
         r"kind='positive' needs batch_size= \(or labels= or domains="),
        (lambda: plans.target_plan("labels", 3, labels=[0, 1]), ValueError,
         r"labels must hold one class id per sample \(3\), got 2"),
        (lambda: plans.target_plan("domain", domains=torch.tensor([0.0, 1.0])), TypeError,
         r"domains must be an integer tensor \(one domain id per sample\), got dtype torch.float32; pass integer ids"),
        (lambda: plans.target_plan("positive", 4, rows=torch.tensor([8])), ValueError,
         r"rows must hold indices in \[0, 8\)"),
    ],
)
def test_target_plan_errors_say_what_is_missing(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: plans.from_labels(torch.tensor([True, False])), TypeError,
         "labels must be an integer tensor .* torch.bool"),
        (lambda: plans.from_labels(torch.tensor([3])), ValueError, r"labels must hold at least 2 ids"),
        (lambda: plans.domain_plan([[0, 1]], 0.1, 0.1), ValueError,
         r"domains must be one-dimensional .* shape \(1, 2\)"),
        (lambda: plans.from_labels(torch.tensor([0, 1]), rows=torch.tensor([0.0])), TypeError,
         r"rows must be an integer tensor \(global row indices\), got dtype torch.float32"),
        (lambda: plans.from_labels(torch.tensor([0, 1]), rows=[0]), TypeError,
         "rows must be an integer tensor of global row indices, got list"),
        (lambda: plans.from_labels(torch.tensor([0, 1]), rows=torch.tensor([1, 1])), ValueError, "distinct"),
    ],
)
def test_ids_are_checked_by_the_shared_policy(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_builders_accept_ids_as_lists():
    assert torch.equal(plans.from_labels([0, 1, 0]), plans.from_labels(torch.tensor([0, 1, 0])))
