"""Exercises of notebooks 01–05 and 07: every check passes on its solution, fails on a wrong answer, and says
"not solved yet" (without raising) on the starter code the notebook ships."""
import ast
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import pytest
import torch

import gcalib
from gcalib.losses import targets as plans
from gcalib.notebook import analysis
from gcalib.notebook import exercises
from gcalib.notebook import target_design

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
STEMS = ["01_entropic_ot_and_sinkhorn", "02_infonce_is_one_sinkhorn_step", "03_the_gca_loss_family",
         "04_pretraining_on_cpu", "05_extreme_views_and_unbalanced_ot", "07_custom_target_plans"]


def _solutions(stem):
    spec = importlib.util.spec_from_file_location(f"solutions_{stem[:2]}", NOTEBOOKS / "solutions" / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- wrong answers, one per exercise

def _sinkhorn_without_eps(cost, eps, a, b, n_iter):  # forgets the factor ε in front of the log-sum-exp
    f, g = torch.zeros_like(a), torch.zeros_like(b)
    for _ in range(n_iter):
        f = a.log() - torch.logsumexp((g[None, :] - cost) / eps, dim=1)
        g = b.log() - torch.logsumexp((f[:, None] - cost) / eps, dim=0)
    return f, g


def _sinkhorn_in_the_kernel_domain(cost, eps, a, b, n_iter):  # right for moderate ε, NaN at ε = 0.0001
    kernel, v = torch.exp(-cost / eps), torch.ones_like(b)
    for _ in range(n_iter):
        u = a / (kernel @ v)
        v = b / (kernel.T @ u)
    return eps * u.log(), eps * v.log()


def _unbalanced_wrong_kappa(cost, eps, a, b, rho, n_iter):  # κ = ε/(ρ+ε) instead of ρ/(ρ+ε)
    kappa = eps / (rho + eps)
    f, g = torch.zeros_like(a), torch.zeros_like(b)
    for _ in range(n_iter):
        f = kappa * eps * (a.log() - torch.logsumexp((g[None, :] - cost) / eps, dim=1))
        g = kappa * eps * (b.log() - torch.logsumexp((f[:, None] - cost) / eps, dim=0))
    return f, g


def _infonce_with_self_pairs(views, eps):  # keeps K_rr = e^0 in the row sums
    batch_size = views[0].shape[0]
    z = torch.cat(views)
    z = z / z.norm(dim=1, keepdim=True)
    plan = torch.softmax(z @ z.T / eps, dim=1)
    n = z.shape[0]
    partner = (torch.arange(n) + batch_size) % n
    return -plan[torch.arange(n), partner].log().mean()


def _target_with_diagonal(batch_size):  # forgets to exclude r = s
    sample = torch.arange(3 * batch_size) % batch_size
    return (sample[:, None] == sample[None, :]).double()


def _gradient_without_transpose(plan, target, eps):
    return (plan - target) / (plan.shape[0] * eps)


def _rince_with_unnormalised_target(views, eps, q, lam):  # pos sums K over positives without T̂
    z = torch.cat(views)
    z = z / z.norm(dim=1, keepdim=True)
    n, batch_size = z.shape[0], views[0].shape[0]
    off = ~torch.eye(n, dtype=torch.bool)
    kernel = torch.exp((z @ z.T - 1) / eps) * off
    sample = torch.arange(n) % batch_size
    positive = (sample[:, None] == sample[None, :]) & off
    pos, tot = (kernel * positive).sum(1), kernel.sum(1)
    return (-(pos ** q) / q + (lam * tot) ** q / q).mean() * 1.5


def _knn_majority_vote(train_features, train_labels, test_features, test_labels, k, temperature):  # ignores τ
    train = train_features / train_features.norm(dim=1, keepdim=True)
    test = test_features / test_features.norm(dim=1, keepdim=True)
    neighbours = (test @ train.T).topk(k, dim=1).indices
    votes = torch.nn.functional.one_hot(train_labels[neighbours], 4).sum(1)
    return float((votes.argmax(1) == test_labels).double().mean())


def _knn_without_normalising(train_features, train_labels, test_features, test_labels, k, temperature):
    similarities, neighbours = (test_features @ train_features.T).topk(k, dim=1)
    weights = ((similarities - similarities[:, :1]) / temperature).exp()
    votes = torch.zeros(len(test_features), 4, dtype=weights.dtype).scatter_add_(1, train_labels[neighbours], weights)
    return float((votes.argmax(1) == test_labels).double().mean())


def _uniformity_with_the_diagonal(z1, z2):  # averages over all n² pairs, i = j included
    z1, z2 = z1 / z1.norm(dim=1, keepdim=True), z2 / z2.norm(dim=1, keepdim=True)
    return float((z1 - z2).pow(2).sum(1).mean()), float(torch.exp(-2 * torch.cdist(z1, z1).pow(2)).mean().log())


def _alignment_without_normalising(z1, z2):
    z = z1 / z1.norm(dim=1, keepdim=True)
    off = ~torch.eye(len(z), dtype=torch.bool)
    return float((z1 - z2).pow(2).sum(1).mean()), float(torch.exp(-2 * torch.cdist(z, z).pow(2)[off]).mean().log())


def _break_the_first_views(views, fraction, generator):
    batch_size = views.shape[0] // 2
    broken = torch.zeros(batch_size, dtype=torch.bool)
    broken[torch.randperm(batch_size, generator=generator)[:round(fraction * batch_size)]] = True
    new_views = views.clone()
    new_views[:batch_size][broken] = views[:batch_size].roll(1, 0)[broken]
    return new_views, broken


def _break_pairs_maybe_with_itself(views, fraction, generator):  # the partner may be the sample itself
    batch_size = views.shape[0] // 2
    broken = torch.zeros(batch_size, dtype=torch.bool)
    broken[torch.randperm(batch_size, generator=generator)[:round(fraction * batch_size)]] = True
    partner = torch.arange(batch_size)
    partner[broken] = torch.randint(0, batch_size, (int(broken.sum()),), generator=generator)
    new_views = views.clone()
    new_views[batch_size:] = views[batch_size + partner]
    return new_views, broken


def _row_mass_with_uniform_marginals(views, eps, rho, n_iter):  # gcalib.sinkhorn's default a = b = 1/n
    z = torch.cat([v / v.norm(dim=1, keepdim=True) for v in views])
    cost = (1 - z @ z.T).fill_diagonal_(float("inf"))
    return gcalib.sinkhorn(cost, eps, reg_a=rho, reg_b=rho, n_iter=n_iter).plan.sum(1)


def _row_mass_with_self_pairs(views, eps, rho, n_iter):  # keeps C_rr = 0
    z = torch.cat([v / v.norm(dim=1, keepdim=True) for v in views])
    ones = torch.ones(len(z), dtype=z.dtype)
    return gcalib.sinkhorn(1 - z @ z.T, eps, ones, ones, reg_a=rho, reg_b=rho, n_iter=n_iter).plan.sum(1)


def _domain_plan_positive_plus_alpha(domains, alpha, beta):  # the positive pair gets 1 + α
    sample = torch.arange(2 * len(domains)) % len(domains)
    same_domain = domains[sample][:, None] == domains[sample][None, :]
    plan = torch.where(same_domain, alpha, beta) + (sample[:, None] == sample[None, :]).float()
    return plan.fill_diagonal_(0.0)


def _hospital_plan_without_findings(hospital, finding, weight):  # pulls every scan of the hospital
    return plans.domain_plan(hospital, weight, 0.0)


CASES = [
    ("01_entropic_ot_and_sinkhorn", "log_sinkhorn", exercises.check_log_sinkhorn, [_sinkhorn_without_eps, _sinkhorn_in_the_kernel_domain]),
    ("01_entropic_ot_and_sinkhorn", "unbalanced_sinkhorn", exercises.check_unbalanced_sinkhorn, [_unbalanced_wrong_kappa]),
    ("02_infonce_is_one_sinkhorn_step", "infonce_from_kernel", exercises.check_infonce_from_kernel, [_infonce_with_self_pairs]),
    ("02_infonce_is_one_sinkhorn_step", "three_view_target", exercises.check_three_view_target, [_target_with_diagonal]),
    ("03_the_gca_loss_family", "infonce_gradient", exercises.check_infonce_gradient, [_gradient_without_transpose]),
    ("03_the_gca_loss_family", "rince_loss", exercises.check_rince_loss, [_rince_with_unnormalised_target]),
    ("04_pretraining_on_cpu", "knn_accuracy_by_hand", exercises.check_knn_accuracy,
     [_knn_majority_vote, _knn_without_normalising]),
    ("04_pretraining_on_cpu", "alignment_uniformity", exercises.check_alignment_uniformity,
     [_uniformity_with_the_diagonal, _alignment_without_normalising]),
    ("05_extreme_views_and_unbalanced_ot", "break_pairs", exercises.check_break_pairs,
     [_break_the_first_views, _break_pairs_maybe_with_itself]),
    ("05_extreme_views_and_unbalanced_ot", "unbalanced_row_mass", exercises.check_unbalanced_row_mass,
     [_row_mass_with_uniform_marginals, _row_mass_with_self_pairs]),
    ("07_custom_target_plans", "domain_plan_by_hand", exercises.check_domain_plan, [_domain_plan_positive_plus_alpha]),
    ("07_custom_target_plans", "hospital_plan", exercises.check_hospital_plan, [_hospital_plan_without_findings]),
]


@pytest.mark.parametrize("stem, name, check, wrong", CASES, ids=[case[1] for case in CASES])
def test_check_passes_on_the_solution_and_fails_on_wrong_answers(stem, name, check, wrong, capsys):
    assert check(getattr(_solutions(stem), name)) is True
    assert f"{name}: solved" in capsys.readouterr().out
    for answer in wrong:
        assert check(answer) is False
        out = capsys.readouterr().out
        assert "✗" in out or "raised" in out, out
        assert "solved, well done" not in out


def test_check_reports_the_numbers_and_never_raises_on_a_crashing_answer(capsys):
    assert exercises.check_log_sinkhorn(_sinkhorn_in_the_kernel_domain) is False
    out = capsys.readouterr().out
    assert "✓ plan after 50 iterations at ε = 0.05" in out          # right where the kernel does not underflow
    assert "✗ plan after 20 iterations at ε = 0.0001" in out and "NaN or inf" in out

    def crashes(views, eps):
        raise RuntimeError("shapes do not match")

    assert exercises.check_infonce_from_kernel(crashes) is False
    assert "your code raised RuntimeError: shapes do not match" in capsys.readouterr().out


def test_log_sinkhorn_check_says_so_when_pot_is_missing(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ot", None)  # makes `import ot` raise ImportError
    assert exercises.check_log_sinkhorn(_solutions(STEMS[0]).log_sinkhorn) is True
    assert "POT is not installed" in capsys.readouterr().out


@pytest.mark.parametrize("placeholder", [None, ..., lambda *args: ..., lambda *args: (..., None)])
def test_placeholders_are_not_solved_yet(placeholder, capsys):
    assert exercises.check_rince_loss(placeholder) is False
    assert capsys.readouterr().out.startswith(f"rince_loss: {exercises.NOT_SOLVED}")


def _cells(stem):
    return json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text())["cells"]


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("stem", STEMS)
def test_notebook_exercises_run_unsolved_and_their_checks_say_not_solved_yet(stem, capsys):
    cells = _cells(stem)
    exercise_cells = [i for i, cell in enumerate(cells) if "exercise" in _tags(cell)]
    assert len(exercise_cells) >= 2
    solutions = _solutions(stem)
    for index in exercise_cells:
        exercise = "".join(cells[index]["source"])
        assert "..." in exercise, "the starter code leaves a marked ... to fill in"
        assert cells[index].get("outputs") == []
        defined = [node.name for node in ast.parse(exercise).body if isinstance(node, ast.FunctionDef)]
        assert len(defined) == 1 and hasattr(solutions, defined[0]), defined
        checks = [i for i in range(index + 1, len(cells)) if "check" in _tags(cells[i])]
        check_index = checks[0]
        assert all(cells[i]["cell_type"] == "markdown" for i in range(index + 1, check_index))
        assert check_index > index + 1, "prose before the check cell"
        check = "".join(cells[check_index]["source"])
        assert re.search(rf"exercises\.check_\w+\({defined[0]}\)", check), check
        assert not check.startswith("# NBVAL_CHECK_OUTPUT") and cells[check_index].get("outputs") == []
        namespace = {"torch": torch, "math": math, "gcalib": gcalib, "analysis": analysis, "exercises": exercises,
                     "plans": plans, "target_design": target_design}
        exec(compile(exercise, f"{stem} exercise", "exec"), namespace)
        exec(compile(check, f"{stem} check", "exec"), namespace)
        assert f"{defined[0]}: {exercises.NOT_SOLVED}" in capsys.readouterr().out
        namespace[defined[0]] = getattr(solutions, defined[0])
        exec(compile(check, f"{stem} check", "exec"), namespace)
        assert f"{defined[0]}: solved" in capsys.readouterr().out
