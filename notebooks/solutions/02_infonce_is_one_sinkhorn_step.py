"""Solutions to the exercises of notebook 02 (checked by ``gcalib.notebook.exercises``; ``make test`` runs the checks)."""
import torch


def infonce_from_kernel(views, eps):
    """Exercise 1: InfoNCE as the cross-entropy of the target against the row-normalised Gibbs kernel."""
    batch_size, n_views = views[0].shape[0], len(views)
    z = torch.cat(views)
    z = z / z.norm(dim=1, keepdim=True)
    n = z.shape[0]
    kernel = torch.exp((z @ z.T - 1) / eps) * (1 - torch.eye(n, dtype=z.dtype))  # K_rr = 0: no self-pairs
    plan = kernel / kernel.sum(1, keepdim=True)                                   # one row projection
    sample = torch.arange(n) % batch_size
    target = ((sample[:, None] == sample[None, :]) & ~torch.eye(n, dtype=torch.bool)).to(z.dtype)
    target = target / target.sum(1, keepdim=True)                                 # T̂: (V − 1) positives per row
    log_plan = torch.where(target > 0, plan.log(), torch.zeros_like(plan))
    return -(target * log_plan).sum(1).mean()


def three_view_target(batch_size):
    """Exercise 2: the (3B, 3B) positive-pair target of three views in the blocked layout."""
    n = 3 * batch_size
    sample = torch.arange(n) % batch_size
    same = sample[:, None] == sample[None, :]
    return (same & ~torch.eye(n, dtype=torch.bool)).to(torch.float64)
