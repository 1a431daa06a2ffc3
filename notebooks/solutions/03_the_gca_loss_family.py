"""Solutions to the exercises of notebook 03 (checked by ``gcalib.notebook.exercises``; ``make test`` runs the checks)."""
import math

import torch


def infonce_gradient(plan, target, eps):
    """Exercise 1: ∂L/∂cos(z_r, z_s) of InfoNCE, G = (P̂ − T̂ + (P̂ − T̂)ᵀ) / (n ε)."""
    n = plan.shape[0]
    difference = plan - target
    return (difference + difference.T) / (n * eps)


def rince_loss(views, eps, q, lam):
    """Exercise 2: the robust (RINCE) term mean_r [−pos_r^q / q + (λ tot_r)^q / q] on K = exp((cos − 1)/ε)."""
    batch_size = views[0].shape[0]
    z = torch.cat(views)
    z = z / z.norm(dim=1, keepdim=True)
    n = z.shape[0]
    off_diagonal = ~torch.eye(n, dtype=torch.bool)
    kernel = torch.exp((z @ z.T - 1) / eps) * off_diagonal
    sample = torch.arange(n) % batch_size
    target = ((sample[:, None] == sample[None, :]) & off_diagonal).to(z.dtype)
    target = target / target.sum(1, keepdim=True)
    pos = (target * kernel).sum(1)
    tot = kernel.sum(1)
    return (-pos ** q / q + (lam * tot) ** q / q).mean()
