"""Solutions to the exercises of notebook 01 (checked by ``gcalib.notebook.exercises``; ``make test`` runs the checks)."""
import torch


def log_sinkhorn(cost, eps, a, b, n_iter):
    """Exercise 1: log-domain Sinkhorn. One iteration = a row update then a column update, from g = 0."""
    f = torch.zeros_like(a)
    g = torch.zeros_like(b)
    for _ in range(n_iter):
        f = eps * (a.log() - torch.logsumexp((g[None, :] - cost) / eps, dim=1))
        g = eps * (b.log() - torch.logsumexp((f[:, None] - cost) / eps, dim=0))
    return f, g


def unbalanced_sinkhorn(cost, eps, a, b, rho, n_iter):
    """Exercise 2: the unbalanced update multiplies each balanced update by κ = ρ / (ρ + ε)."""
    kappa = rho / (rho + eps)
    f = torch.zeros_like(a)
    g = torch.zeros_like(b)
    for _ in range(n_iter):
        f = kappa * eps * (a.log() - torch.logsumexp((g[None, :] - cost) / eps, dim=1))
        g = kappa * eps * (b.log() - torch.logsumexp((f[:, None] - cost) / eps, dim=0))
    return f, g
