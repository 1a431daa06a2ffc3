"""Layer 3 — pretraining.

Owns the configuration, the trainer and its checkpoints, the encoders, BYOL, datasets (including the
embedded ``clutter_digits`` benchmark), augmentation, evaluation of frozen encoders, and the
experiment drivers (``compare``, ``robustness``, the domain sweep). May import :mod:`gcalib.losses`
and :mod:`gcalib.ot`, never :mod:`gcalib.notebook`.
"""
from .evaluate import alignment, knn_accuracy, linear_probe, uniformity
from .models import Projector, make_encoder
from .trainer import PretrainConfig, pretrain

__all__ = [
    "PretrainConfig", "Projector", "alignment", "knn_accuracy", "linear_probe", "make_encoder", "pretrain",
    "uniformity",
]
