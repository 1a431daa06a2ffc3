"""Solutions to the exercises of notebook 04 (checked by ``gcalib.notebook.exercises``; ``make test`` runs the checks)."""
import torch


def knn_accuracy_by_hand(train_features, train_labels, test_features, test_labels, k, temperature):
    """Exercise 1: weighted cosine kNN. The k most similar train points vote with weight exp(cos / τ)."""
    train = train_features / train_features.norm(dim=1, keepdim=True)
    test = test_features / test_features.norm(dim=1, keepdim=True)
    similarities, neighbours = (test @ train.T).topk(k, dim=1)
    weights = (similarities / temperature).exp()
    n_classes = int(max(train_labels.max(), test_labels.max())) + 1
    votes = torch.zeros(len(test), n_classes, dtype=weights.dtype).scatter_add_(1, train_labels[neighbours], weights)
    return float((votes.argmax(1) == test_labels).float().mean())


def alignment_uniformity(z1, z2):
    """Exercise 2: alignment E‖z₁ − z₂‖² and uniformity log E_{i≠j} exp(−2‖z_i − z_j‖²), rows normalised."""
    z1 = z1 / z1.norm(dim=1, keepdim=True)
    z2 = z2 / z2.norm(dim=1, keepdim=True)
    alignment = (z1 - z2).pow(2).sum(1).mean()
    n = len(z1)
    distances = torch.cdist(z1, z1).pow(2)
    off_diagonal = ~torch.eye(n, dtype=torch.bool)
    uniformity = torch.exp(-2 * distances[off_diagonal]).mean().log()
    return float(alignment), float(uniformity)
