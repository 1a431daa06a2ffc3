"""gcalib: Generalized Contrastive Alignment — contrastive learning as entropic optimal transport."""
from .losses import LOSSES, GCALoss, LossSpec, gca_loss, make_loss
from .ot import OTResult, sinkhorn
from .evaluate import alignment, knn_accuracy, linear_probe, uniformity
from .models import Projector, make_encoder
from .plans import domain_plan, from_labels, positive_pairs, validate_target
from .train import PretrainConfig, pretrain

__version__ = "0.1.0"

__all__ = [
    "LOSSES",
    "PretrainConfig",
    "Projector",
    "alignment",
    "knn_accuracy",
    "linear_probe",
    "make_encoder",
    "pretrain",
    "uniformity",
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
