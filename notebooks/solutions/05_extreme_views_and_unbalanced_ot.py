"""Solutions to the exercises of notebook 05 (checked by ``gcalib.notebook.exercises``; ``make test`` runs the checks)."""
import torch

import gcalib


def break_pairs(views, fraction, generator):
    """Exercise 1: exactly round(fraction·B) samples get the second view of another sample."""
    batch_size = views.shape[0] // 2
    broken = torch.zeros(batch_size, dtype=torch.bool)
    broken[torch.randperm(batch_size, generator=generator)[:round(fraction * batch_size)]] = True
    partner = torch.arange(batch_size)
    shift = torch.randint(1, batch_size, (batch_size,), generator=generator)
    partner[broken] = (partner[broken] + shift[broken]) % batch_size
    new_views = views.clone()
    new_views[batch_size:] = views[batch_size + partner]
    return new_views, broken


def unbalanced_row_mass(views, eps, rho, n_iter):
    """Exercise 2: the row masses of GCA-UOT's plan, unit marginals relaxed by ρ, self-pairs forbidden."""
    z = torch.cat([v / v.norm(dim=1, keepdim=True) for v in views])
    cost = 1 - z @ z.T
    cost.fill_diagonal_(float("inf"))
    ones = torch.ones(len(z), dtype=z.dtype)
    plan = gcalib.sinkhorn(cost, eps, ones, ones, reg_a=rho, reg_b=rho, n_iter=n_iter).plan
    return plan.sum(1)
