"""gcalib: Generalized Contrastive Alignment — contrastive learning as entropic optimal transport."""
from .losses import LOSSES, GCALoss, LossSpec, gca_loss, make_loss
from .ot import OTResult, sinkhorn
from .plans import domain_plan, from_labels, positive_pairs, validate_target

__version__ = "0.1.0"

__all__ = [
    "LOSSES",
    "GCALoss",
    "LossSpec",
    "OTResult",
    "domain_plan",
    "from_labels",
    "gca_loss",
    "make_loss",
    "positive_pairs",
    "sinkhorn",
    "validate_target",
]
