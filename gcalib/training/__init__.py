"""Layer 3 — pretraining (named ``training`` so that ``gcalib.pretrain`` stays the function that trains).

Owns the configuration, the trainer and its checkpoints, the models, datasets (including the embedded
``clutter_digits`` benchmark), augmentation, evaluation of frozen encoders, and the experiment drivers.
May import :mod:`gcalib.losses` and :mod:`gcalib.ot`, never :mod:`gcalib.notebook`.

* Training: :mod:`~gcalib.training.config` (``PretrainConfig``), :mod:`~gcalib.training.trainer`
  (``prepare``, ``pretrain``), :mod:`~gcalib.training.trainable` (what the trainer needs of a model),
  :mod:`~gcalib.training.contrastive` and :mod:`~gcalib.training.byol` (the two models),
  :mod:`~gcalib.training.models` (encoders, projector), :mod:`~gcalib.training.checkpoint`.
* Data and views: :mod:`~gcalib.training.data`, :mod:`~gcalib.training.splits`,
  :mod:`~gcalib.training.clutter`, :mod:`~gcalib.training.augment`, :mod:`~gcalib.training.batch_augment`,
  :mod:`~gcalib.training.threads`.
* Evaluation: :mod:`~gcalib.training.evaluate`.
* Experiments: :mod:`~gcalib.training.compare`, :mod:`~gcalib.training.robustness`,
  :mod:`~gcalib.training.sweep`, sharing :mod:`~gcalib.training.experiment` (results saved and read back),
  :mod:`~gcalib.training.tables` (mean ± std tables) and :mod:`~gcalib.training.figures`.
* Files: :mod:`~gcalib.training.run_files` (atomic writes, JSON).

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
