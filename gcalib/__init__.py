"""gcalib: Generalized Contrastive Alignment — contrastive learning as entropic optimal transport.

Four layers, each importing only those below it: :mod:`gcalib.ot` (the Sinkhorn solver) ←
:mod:`gcalib.losses` (target plans and GCA losses) ← :mod:`gcalib.training` (training, data, evaluation,
experiments) ← :mod:`gcalib.notebook` (figures and widgets for the notebook series).
:mod:`gcalib.validation` (argument checks) sits under all of them; :mod:`gcalib.cli` drives the
training layer from the command line.
"""
from .losses import LOSSES, GCALoss, LossSpec, domain_plan, from_labels, gca_loss, make_loss, positive_pairs, validate_target
from .ot import OTResult, sinkhorn
from .training import PretrainConfig, Projector, alignment, knn_accuracy, linear_probe, make_encoder, pretrain, uniformity

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
