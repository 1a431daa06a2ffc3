"""Layer 3 — pretraining.

Owns the configuration, the trainer and its checkpoints, the models, datasets (including the embedded
``clutter_digits`` benchmark), augmentation, evaluation of frozen encoders, and the experiment drivers.
May import :mod:`gcalib.losses` and :mod:`gcalib.ot`, never :mod:`gcalib.notebook`.

* Training: :mod:`~gcalib.pretrain.config` (``PretrainConfig``), :mod:`~gcalib.pretrain.trainer`
  (``prepare``, ``pretrain``), :mod:`~gcalib.pretrain.trainable` (what the trainer needs of a model),
  :mod:`~gcalib.pretrain.contrastive` and :mod:`~gcalib.pretrain.byol` (the two models),
  :mod:`~gcalib.pretrain.models` (encoders, projector), :mod:`~gcalib.pretrain.checkpoint`.
* Data and views: :mod:`~gcalib.pretrain.data`, :mod:`~gcalib.pretrain.splits`,
  :mod:`~gcalib.pretrain.clutter`, :mod:`~gcalib.pretrain.augment`, :mod:`~gcalib.pretrain.batch_augment`,
  :mod:`~gcalib.pretrain.threads`.
* Evaluation: :mod:`~gcalib.pretrain.evaluate`.
* Experiments: :mod:`~gcalib.pretrain.compare`, :mod:`~gcalib.pretrain.robustness`,
  :mod:`~gcalib.pretrain.sweep`, sharing :mod:`~gcalib.pretrain.experiment` (results saved and read back),
  :mod:`~gcalib.pretrain.tables` (mean ± std tables) and :mod:`~gcalib.pretrain.figures`.
* Files: :mod:`~gcalib.pretrain.run_files` (atomic writes, JSON).

Third-party modules: torch and numpy at import; torchvision, Pillow, scikit-learn, threadpoolctl, scipy,
tqdm and matplotlib (figures only) when first needed.
"""
from .evaluate import alignment, knn_accuracy, linear_probe, uniformity
from .models import Projector, make_encoder
from .trainer import PretrainConfig, pretrain

__all__ = [
    "PretrainConfig", "Projector", "alignment", "knn_accuracy", "linear_probe", "make_encoder", "pretrain",
    "uniformity",
]
