"""The scaling-domain solve: its potentials equal the log-domain iterations', and its trace."""
import dataclasses
import math

import pytest
import torch

from gcalib.ot.scaling import ALL_ROWS, RowReduction, Trace, solve
from gcalib.ot.solver import iterate


@pytest.mark.parametrize("n_iter", [0, 1, 7])
@pytest.mark.parametrize("factors", [(1.0, 1.0), (0.6, 0.9)])
def test_potentials_equal_the_log_domain_iterations(problem, n_iter, factors):
    cost, log_a, log_b, _ = problem((2, 6, 5), seed=n_iter)
    trace = solve(-cost / 0.2, log_a, log_b, *factors, n_iter)
    phi, gamma = iterate(-cost / 0.2, log_a, log_b, *factors, n_iter)
    torch.testing.assert_close(trace.phi, phi, rtol=0, atol=1e-12)
    torch.testing.assert_close(trace.gamma, gamma, rtol=0, atol=1e-12)
    assert trace.iterations == n_iter and trace.converged is None and len(trace.steps) == 2 * n_iter


def test_projection_step_gives_the_row_normaliser_of_the_projected_plan(problem):
    cost, _, _, _ = problem((5, 5), seed=4, forbid_diagonal=True)
    log_kernel = -cost / 0.3
    trace = solve(log_kernel.clone(), 0.0, 0.0, 1.0, 1.0, 3, project=True)
    assert trace.projected and len(trace.steps) == 7
    expected = torch.logsumexp(log_kernel + trace.gamma.unsqueeze(-2), dim=-1)
    torch.testing.assert_close(trace.lse(trace.steps[-1]), expected, rtol=0, atol=1e-12)


def test_a_consumed_kernel_is_regenerated_on_demand(problem):
    cost, _, _, _ = problem((4, 6), seed=5)
    trace = solve(-cost / 0.5, 0.0, 0.0, 1.0, 1.0, 2, consume=True, regenerate=lambda: -cost / 0.5)
    assert trace.log_kernel is None
    torch.testing.assert_close(trace.kernel(), -cost / 0.5)


def test_trace_is_a_keyword_built_dataclass_of_every_field(problem):
    cost, _, _, _ = problem((3, 3), seed=6)
    trace = solve(-cost, 0.0, 0.0, 1.0, 1.0, 1)
    assert isinstance(trace, Trace) and trace.rows is ALL_ROWS
    assert all(getattr(trace, field.name) is not None for field in dataclasses.fields(Trace)
               if field.name not in ("regenerate", "converged"))


def test_solve_refuses_inconsistent_requests(problem):
    cost, _, _, _ = problem((3, 3), seed=7)
    with pytest.raises(ValueError, match="consume=True needs regenerate"):
        solve(-cost, 0.0, 0.0, 1.0, 1.0, 2, consume=True)
    sharded = RowReduction(sum=lambda t: t, max=lambda t: t)
    with pytest.raises(ValueError, match=r"n_iter must be an int for a row-sharded solve \(rows=...\), got None"):
        solve(-cost, 0.0, 0.0, 1.0, 1.0, None, rows=sharded)
    assert math.isfinite(float(solve(-cost, 0.0, 0.0, 1.0, 1.0, None).phi.sum()))
