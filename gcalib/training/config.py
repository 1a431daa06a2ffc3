"""``PretrainConfig``: every field that defines a pretraining run, validated on construction.

Each check raises ``ValueError``/``TypeError`` naming the field, the value received and what is expected.
Checks that need the environment (device, dataset files, output directory, resume) live in
:func:`gcalib.training.trainer.prepare`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import torch

from ..losses import make_loss
from ..losses.spec import LOSSES
from ..losses.targets import TARGET_KINDS
from ..validation import check_bool, check_choice, check_int, check_nonnegative, check_positive, check_real, fail
from .augment import AUGMENTATIONS, recipe
from .data import DATASETS
from .models import ARCHS

__all__ = ["VIEWS", "OPTIMIZERS", "PRECISIONS", "LR_SCALINGS", "DATASET_RECIPES", "RESUME_FREE_FIELDS",
           "PretrainConfig", "describe_dataset"]

VIEWS = ("augment", "rendered")
OPTIMIZERS = ("sgd", "adam")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LR_SCALINGS = ("linear", "sqrt", "none")
# Fields that may differ between a run and its resumption (they do not change the computed numbers,
# except that another device gives other rounding; `workers` is not free: it changes the view RNG streams).
# The settings each embedded dataset is meant to be pretrained with; PretrainConfig.for_dataset and the command
# line apply them under whatever the user sets. clutter_digits: the rendered views carry the nuisances; SimCLR
# crops on top of them hide the digit, and InfoNCE learns faster at eps 0.2 than at 0.5 (both measured with
# InfoNCE alone, data/README.md).
DATASET_RECIPES: dict[str, dict[str, Any]] = {
    "clutter_digits": {"views": "rendered", "augmentation": "none", "loss_params": {"eps": 0.2}},
}
RESUME_FREE_FIELDS = ("resume", "download", "progress", "checkpoint_every", "checkpoint_every_steps", "compile", "out_dir",
                      "evaluate", "device")


@dataclass
class PretrainConfig:
    """Everything that defines a pretraining run, validated on construction.

    Defaults are the digits recipe: small CNN, SimCLR views (s = 0.5), projector 512 → 128, InfoNCE
    at ε = 0.5, AdamW lr 2e-3 with one warm-up epoch and a cosine, batch 128, 20 epochs.
    :meth:`for_dataset` applies a dataset's recipe (:data:`DATASET_RECIPES`).

    Parameters
    ----------
    dataset : str or dataset, default "digits"
        A name of :data:`gcalib.training.data.DATASETS` (its train split; ``root``, ``download`` and
        ``dataset_options`` go to :func:`gcalib.training.data.load_dataset`), or a dataset object: an
        :class:`gcalib.training.data.ImageDataset`, or any map-style dataset (``len`` and ``getitem``) whose
        items are ``(uint8 image (C, H, H), label[, domain])``, read into memory by
        :meth:`gcalib.training.data.ImageDataset.from_dataset` (optional ``classes``, ``domain_names``,
        ``mean``/``std`` attributes are used; without ``mean``/``std`` the per-channel statistics of its
        images are).
    test_dataset : dataset, optional
        The evaluation split, a dataset object as above (without ``mean``/``std`` it takes the train
        split's). Required with a dataset object when ``evaluate=True``; with a name it replaces the named
        test split. :meth:`to_dict` stores dataset objects as :func:`describe_dataset` strings, so a resumed
        run must be given a dataset with the same content.
    root : str or os.PathLike, optional
        The data directory (default ``$GCALIB_DATA``, else ``./data``).
    download : bool, default False
        Let torchvision download a missing dataset into ``root``.
    dataset_options : dict, default {}
        Options of the named dataset (``holdout_domain``, ``image_size``, ``seed``, …).
    max_train_samples : int, optional
        Pretrain on the first N >= 2 train samples only (smoke tests, quick looks); evaluation still uses
        the whole split.
    n_views : int, default 2
        Views V per sample, >= 2.
    views : {"augment", "rendered"}, default "augment"
        ``"augment"``: the V views are V draws of the augmentation of one image; ``"rendered"``: V
        *distinct* renderings of the sample, chosen at random among the K of the dataset's ``renderings``
        (needs K >= ``n_views``), each then augmented as usual.
    corrupt_pairs : float, default 0.0
        P in [0, 1): with probability P, independently per sample and step, views 2..V (every view after
        the first) of a sample come from one other training sample drawn uniformly among the rest,
        rendered and augmented in the same way (broken positive pairs; the batch's labels and domains stay
        those of the first view).
    augmentation : str, default "simclr"
        A view preset of :data:`gcalib.training.augment.AUGMENTATIONS`.
    strength : float, default 0.5
        Colour-jitter strength s of the views.
    blur : bool, default False
        Add Gaussian blur to the views.
    arch : str, default "small_cnn"
        An encoder of :data:`gcalib.training.models.ARCHS`.
    projector_hidden_dim, projector_out_dim : int, default 512, 128
        Widths of the projection head.
    loss : str, default "infonce"
        A name of :data:`gcalib.losses.gca.LOSSES`, or ``"byol"`` (EMA target network + predictor,
        :mod:`gcalib.training.byol`); :attr:`method` tells the two kinds apart.
    loss_params : dict, default {}
        Keyword arguments of :func:`gcalib.losses.gca.make_loss` (eps, n_iter, q, lam, reg_a, reg_b, r1, r2,
        …); empty for BYOL.
    target : {"positive", "labels", "domain"}, default "positive"
        The target plan: positive pairs, the class-aware plan, or positives + α·same domain + β·other
        domain, built per batch with :mod:`gcalib.losses.targets`.
    alpha, beta : float, default 0.0
        Same-domain and cross-domain weights of ``target="domain"``, >= 0.
    byol_momentum : float, default 0.99
        BYOL's base EMA momentum, in [0, 1].
    byol_predictor_hidden_dim : int, default 512
        Hidden width of BYOL's predictor.
    optimizer : {"sgd", "adam"}, default "adam"
        SGD with Nesterov momentum, or AdamW (decoupled weight decay).
    lr : float, default 2e-3
        Peak learning rate, > 0.
    lr_scaling : {"none", "linear", "sqrt"}, default "none"
        With W processes the peak lr is ``lr`` (``"none"``: ``lr`` is meant for the global batch
        ``W·batch_size``), ``lr·W`` (``"linear"``, Goyal et al.'s rule for SGD: ``lr`` was tuned for
        ``batch_size`` on one process) or ``lr·√W`` (``"sqrt"``, common for Adam); one process uses ``lr``.
    momentum : float, default 0.9
        SGD momentum, in [0, 1).
    weight_decay : float, default 1e-5
        Weight decay, >= 0.
    warmup_epochs : int, default 1
        Epochs of linear warm-up, at most ``epochs``.
    batch_size : int, default 128
        Samples per step (per process under torchrun), >= 2.
    epochs : int, default 20
        Training epochs, >= 1.
    seed : int, default 0
        Seed of the weights, the sample order and the views.
    device : str, default "auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    precision : {"auto", "fp32", "bf16", "fp16"}, default "auto"
        Autocast of the model: ``"auto"`` is bf16 on CUDA and fp32 elsewhere (the loss always runs in fp32).
    compile : bool, default False
        ``torch.compile`` the model.
    workers : int, default 2
        Data-loading processes of the per-image pipeline; it changes the augmentation RNG streams, so a
        resumed run must keep it.
    out_dir : str or os.PathLike, optional
        Where checkpoints, ``history.json``, ``metrics.json`` and ``encoder.pt`` go.
    checkpoint_every : int, default 1
        Epochs between checkpoints (0: none).
    checkpoint_every_steps : int, default 0
        Also write a checkpoint after every that many optimizer steps inside an epoch (0: none), from
        which ``resume`` continues in the middle of the epoch.
    resume : bool, default False
        Continue from the newest readable checkpoint in ``out_dir`` (start afresh when there is none).
    deterministic : bool, default False
        Ask torch for deterministic kernels (bit-exact resume on CPU).
    skip_nonfinite : bool, default False
        Skip steps with a non-finite loss instead of raising
        :class:`gcalib.training.trainer.NonFiniteLossError`.
    sync_bn : bool, default False
        SyncBatchNorm over all ranks (CUDA only; a no-op in one process).
    shard_plan : bool, default False
        With W > 1 processes each holds only its own samples' n/W rows of the plan over the global batch
        (:mod:`gcalib.losses.sharded`), so the plan's memory per process falls like n²/W; the loss and
        gradients equal the replicated plan's up to rounding. Needs a plan loss with the fused gradient;
        in one process it changes nothing.
    batch_augment : bool, default True
        When the train split is held in memory, draw the views for a whole batch at once on the training
        device with :class:`gcalib.training.batch_augment.BatchAugment` (same parameter distributions as the
        per-image pipeline, many times faster); otherwise, or with ``False``, each image goes through
        :func:`gcalib.training.augment.make_view_transform` in the DataLoader.
    evaluate : bool, default True
        Evaluate the frozen encoder after training (:func:`gcalib.training.evaluate.evaluate_encoder`).
    progress : bool, default True
        Show a progress bar.

    Raises
    ------
    TypeError
        When a field has the wrong type (the message names the field, the value and what is expected).
    ValueError
        When a field is out of range or fields contradict each other.

    Examples
    --------
    >>> config = PretrainConfig(loss="gca_uot", loss_params={"eps": 0.2}, epochs=5)
    >>> config.method, config.to_dict()["loss_params"]
    ('gca', {'eps': 0.2})
    """

    dataset: Union[str, Any] = "digits"
    test_dataset: Optional[Any] = None
    root: Optional[str] = None
    download: bool = False
    dataset_options: dict = field(default_factory=dict)
    max_train_samples: Optional[int] = None
    n_views: int = 2
    views: str = "augment"
    corrupt_pairs: float = 0.0
    augmentation: str = "simclr"
    strength: float = 0.5
    blur: bool = False
    arch: str = "small_cnn"
    projector_hidden_dim: int = 512
    projector_out_dim: int = 128
    loss: str = "infonce"
    loss_params: dict = field(default_factory=dict)
    target: str = "positive"
    alpha: float = 0.0
    beta: float = 0.0
    byol_momentum: float = 0.99
    byol_predictor_hidden_dim: int = 512
    optimizer: str = "adam"
    lr: float = 2e-3
    lr_scaling: str = "none"
    momentum: float = 0.9
    weight_decay: float = 1e-5
    warmup_epochs: int = 1
    batch_size: int = 128
    epochs: int = 20
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    workers: int = 2
    out_dir: Optional[str] = None
    checkpoint_every: int = 1
    checkpoint_every_steps: int = 0
    resume: bool = False
    deterministic: bool = False
    skip_nonfinite: bool = False
    sync_bn: bool = False
    shard_plan: bool = False
    batch_augment: bool = True
    evaluate: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def for_dataset(cls, dataset: Any, **fields: Any) -> "PretrainConfig":
        """A config for ``dataset`` with its recipe (:data:`DATASET_RECIPES`) under ``fields``.

        A field given wins over the recipe, ``loss_params`` are merged key by key, and BYOL, which has no
        plan loss, takes none of the recipe's. Other names and dataset objects have no recipe.

        Parameters
        ----------
        dataset : str or dataset
            As the ``dataset`` field.
        **fields
            Other fields of :class:`PretrainConfig`.

        Returns
        -------
        PretrainConfig

        Raises
        ------
        TypeError, ValueError
            As the constructor.

        Examples
        --------
        >>> PretrainConfig.for_dataset("clutter_digits", loss="gca_uot").loss_params
        {'eps': 0.2}
        """
        recipe = DATASET_RECIPES.get(dataset, {}) if isinstance(dataset, str) else {}
        loss_params = {**recipe.get("loss_params", {}), **fields.get("loss_params", {})}
        if fields.get("loss", cls.loss) == "byol":
            loss_params = dict(fields.get("loss_params", {}))
        return cls(dataset=dataset, **{**recipe, **fields, "loss_params": loss_params})

    def validate(self) -> None:
        """Check every field (the constructor calls it).

        Raises
        ------
        TypeError
            When a field has the wrong type; the message names the field, the value and what is expected.
        ValueError
            When a field is out of range or fields contradict each other.
        """
        self._validate_datasets(DATASETS)
        if self.root is not None and not isinstance(self.root, (str, os.PathLike)):
            fail("root", self.root, "None or a path", TypeError)
        if not isinstance(self.dataset_options, dict):
            fail("dataset_options", self.dataset_options, "a dict of load_dataset options", TypeError)
        if self.max_train_samples is not None:
            check_int("max_train_samples", self.max_train_samples, 2)
        check_int("n_views", self.n_views, 2)
        check_choice("views", self.views, VIEWS)
        check_real("corrupt_pairs", self.corrupt_pairs, lambda v: 0 <= v < 1, "a number in [0, 1)")
        check_choice("augmentation", self.augmentation, AUGMENTATIONS)
        recipe(self.augmentation, self.strength, self.blur)
        check_choice("arch", self.arch, ARCHS)
        check_int("projector_hidden_dim", self.projector_hidden_dim, 1)
        check_int("projector_out_dim", self.projector_out_dim, 1)
        if not isinstance(self.loss_params, dict):
            fail("loss_params", self.loss_params, "a dict of loss hyper-parameters", TypeError)
        check_choice("target", self.target, TARGET_KINDS)
        check_nonnegative("alpha", self.alpha)
        check_nonnegative("beta", self.beta)
        if self.target != "domain" and (self.alpha or self.beta):
            raise ValueError(f"alpha={self.alpha} and beta={self.beta} only apply to target='domain', "
                             f"got target={self.target!r}")
        check_choice("loss", self.loss, tuple(LOSSES) + ("byol",))
        check_bool("shard_plan", self.shard_plan)
        if self.loss != "byol":
            if "shard_plan" in self.loss_params:
                fail("loss_params", self.loss_params, "a dict without a 'shard_plan' key (set "
                     "PretrainConfig.shard_plan, on the command line --shard-plan)")
            with warnings.catch_warnings():  # hyper-parameter warnings come once, when the model is built
                warnings.simplefilter("ignore", UserWarning)
                make_loss(self.loss, **self.loss_options(sharded=self.shard_plan))
        else:
            if self.shard_plan:
                fail("shard_plan", self.shard_plan, "False with loss='byol' (BYOL has no transport plan to shard)")
            if self.loss_params:
                raise ValueError(f"loss_params must be empty for loss='byol' (it has no plan loss), "
                                 f"got {self.loss_params!r}")
            if self.target != "positive":
                raise ValueError(f"loss='byol' has no target plan: target must be 'positive', got {self.target!r}")
        check_real("byol_momentum", self.byol_momentum, lambda v: 0 <= v <= 1, "a number in [0, 1]")
        check_int("byol_predictor_hidden_dim", self.byol_predictor_hidden_dim, 1)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_positive("lr", self.lr)
        check_choice("lr_scaling", self.lr_scaling, LR_SCALINGS)
        check_real("momentum", self.momentum, lambda v: 0 <= v < 1, "a number in [0, 1)")
        check_nonnegative("weight_decay", self.weight_decay)
        check_int("epochs", self.epochs, 1)
        check_int("warmup_epochs", self.warmup_epochs, 0)
        if self.warmup_epochs > self.epochs:
            fail("warmup_epochs", self.warmup_epochs, f"at most epochs={self.epochs}")
        check_int("batch_size", self.batch_size, 2)
        check_int("seed", self.seed, 0)
        check_int("workers", self.workers, 0)
        check_int("checkpoint_every", self.checkpoint_every, 0)
        check_int("checkpoint_every_steps", self.checkpoint_every_steps, 0)
        if not isinstance(self.device, str):
            fail("device", self.device, "a str such as 'auto', 'cpu' or 'cuda:0'", TypeError)
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                fail("device", self.device, "'auto' or a torch device string such as 'cpu' or 'cuda:0'")
        check_choice("precision", self.precision, PRECISIONS)
        for name in ("download", "blur", "compile", "resume", "deterministic", "skip_nonfinite", "sync_bn",
                     "batch_augment", "evaluate", "progress"):
            check_bool(name, getattr(self, name))
        if self.out_dir is not None and not isinstance(self.out_dir, (str, os.PathLike)):
            fail("out_dir", self.out_dir, "None or a directory path", TypeError)
        if self.resume and self.out_dir is None:
            raise ValueError("resume=True needs out_dir (the directory holding the checkpoints), got out_dir=None")

    def _validate_datasets(self, names: tuple[str, ...]) -> None:
        """``dataset`` is a name of ``names`` or a map-style dataset; ``test_dataset`` None or one, and given
        when a dataset object is evaluated; ``dataset_options`` only with a name."""
        map_style = "a map-style dataset (len and getitem) of (uint8 image (C, H, H), label[, domain])"
        if isinstance(self.dataset, str):
            check_choice("dataset", self.dataset, names)
        elif not _is_map_style(self.dataset):
            fail("dataset", self.dataset, f"a name of {', '.join(names)} or {map_style}", TypeError)
        if self.test_dataset is not None and not _is_map_style(self.test_dataset):
            fail("test_dataset", self.test_dataset, f"None or {map_style}", TypeError)
        if isinstance(self.dataset, str):
            return
        if self.evaluate and self.test_dataset is None:
            raise ValueError("test_dataset must be given with a dataset object when evaluate=True (the split to "
                             "evaluate on), got None; pass test_dataset=... or evaluate=False")
        if self.dataset_options:
            raise ValueError(f"dataset_options only apply to a dataset name, got {self.dataset_options!r} with a "
                             "dataset object")

    def peak_lr(self, world_size: int = 1) -> float:
        """The peak learning rate with W processes: ``lr·W`` (linear), ``lr·√W`` (sqrt) or ``lr`` (none).

        Parameters
        ----------
        world_size : int, default 1
            Number of training processes W.

        Returns
        -------
        float

        Examples
        --------
        >>> PretrainConfig(lr=0.1, lr_scaling="sqrt").peak_lr(4)
        0.2
        """
        factor = {"linear": float(world_size), "sqrt": math.sqrt(world_size), "none": 1.0}[self.lr_scaling]
        return self.lr * factor

    def loss_options(self, gather: bool = False, sharded: bool = False) -> dict:
        """Keyword arguments of :func:`gcalib.losses.gca.make_loss`: ``loss_params`` over the process-group defaults.

        Parameters
        ----------
        gather : bool, default False
            Default of ``gather_distributed`` (solve the plan over the global batch).
        sharded : bool, default False
            Add ``shard_plan=True`` (with ``gather_distributed`` defaulting to True).

        Returns
        -------
        dict
        """
        if sharded:
            return {"gather_distributed": True, **self.loss_params, "shard_plan": True}
        return {"gather_distributed": gather, **self.loss_params}

    @property
    def method(self) -> str:
        """The kind of method: ``"byol"`` (EMA target network + predictor) or ``"gca"`` (a plan loss).

        Returns
        -------
        str
        """
        return "byol" if self.loss == "byol" else "gca"

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict (paths as str, dataset objects as :func:`describe_dataset`).

        Returns
        -------
        dict
        """
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("dataset", "test_dataset"):
            if out[key] is not None:
                out[key] = describe_dataset(out[key])
        for key in ("root", "out_dir"):
            if out[key] is not None:
                out[key] = str(out[key])
        return json.loads(json.dumps(out))


def _is_map_style(dataset: Any) -> bool:
    """Whether ``dataset`` has ``len`` and ``getitem`` (and is not a str or bytes)."""
    return not isinstance(dataset, (str, bytes)) and hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")


def describe_dataset(dataset: Any) -> str:
    """A dataset as a str for configs saved as JSON.

    Parameters
    ----------
    dataset : str or dataset
        A dataset name or object.

    Returns
    -------
    str
        A name as it is; an :class:`gcalib.training.data.ImageDataset` as its repr and content fingerprint
        (equal strings for equal content); any other dataset object as its type and length.

    Examples
    --------
    >>> describe_dataset([(0, 1), (2, 3)])
    'builtins.list of 2 items'
    """
    if isinstance(dataset, str):
        return dataset
    fingerprint = getattr(dataset, "fingerprint", None)
    if callable(fingerprint):
        return f"{dataset!r} sha1:{fingerprint()}"
    return f"{type(dataset).__module__}.{type(dataset).__qualname__} of {len(dataset)} items"
