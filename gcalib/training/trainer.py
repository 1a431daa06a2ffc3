"""The pretraining loop: data → V views → model → loss(out, target) → optimizer.

``pretrain(PretrainConfig(...)) -> PretrainResult``. The model is a
:class:`gcalib.training.trainable.TrainableModel` (:class:`gcalib.training.contrastive.ContrastiveModel` for
the plan losses, :class:`gcalib.training.byol.BYOL`); the trainer uses nothing else of it. Per step: the V
views of B samples (drawn for the whole batch on the device by
:class:`gcalib.training.batch_augment.BatchAugment` when the data is in memory, else per image in the
DataLoader) are stacked blocked (V·B images), passed through the model under autocast (bf16 on CUDA by
default, fp32 on CPU), and scored by the model's loss in fp32, against the batch's target plan when the
model uses one (positive pairs, class labels or domains, built with :mod:`gcalib.losses.targets`); after
the optimizer step the model is told of it (BYOL moves its target network). The learning rate warms up
linearly, then follows a cosine to zero, per step. After every ``checkpoint_every`` epochs, and after every
``checkpoint_every_steps`` optimizer steps inside an epoch, a checkpoint is written atomically
(:mod:`gcalib.training.checkpoint`); ``resume=True`` continues bit for bit from the newest readable one, also
in the middle of an epoch: the epoch's batches are drawn again from the loader's generator state at the
epoch's start, the ones already trained on are dropped (with a per-image pipeline they are loaded and
augmented again, so worker RNG streams match), and then every generator is restored to its state at the
checkpoint.
A non-finite loss stops the run (or, with ``skip_nonfinite=True``, skips the step) before the
weights are touched, so the last checkpoint stays good. At the end the frozen encoder is evaluated
(:mod:`gcalib.training.evaluate`).

Under ``torchrun`` (``WORLD_SIZE`` > 1) the same call trains data-parallel: :func:`prepare` joins the
process group (nccl on CUDA, gloo on CPU), every rank draws its own shard of each epoch
(``DistributedSampler``, reshuffled per epoch from ``seed``) and its own augmentation stream, the model
is wrapped in ``DistributedDataParallel``, and the loss solves its plan over the global batch
(``gather_distributed``), with targets built from the gathered labels/domains; with ``shard_plan=True``
each rank holds only its samples' rows of that plan (:mod:`gcalib.losses.sharded`) and builds only those rows
of the target (``rows=`` :func:`gcalib.losses.sharded.shard_rows`). ``batch_size`` is per process; the
learning rate is scaled by ``lr_scaling``. Only rank 0 shows progress, writes outputs and checkpoints
(which hold every rank's RNG state and, in the middle of an epoch, every rank's statistics of the epoch so
far) and evaluates. Under ``torchrun --max-restarts=K`` with ``resume=True`` a group restarted after a lost
worker continues from the newest checkpoint (the first start, with no checkpoint, starts afresh).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np
import torch
from torch import nn

from ..losses import distributed
from ..losses import targets as plans
from ..losses.gca import make_loss
from ..losses.sharded import shard_rows
from . import checkpoint as ckpt
from .augment import make_view_transform
from .batch_augment import BatchAugment
from .byol import BYOL
from .config import RESUME_FREE_FIELDS, PretrainConfig
from .contrastive import ContrastiveModel
from .data import ImageDataset, MultiViewDataset, blocked_views, draw_view_sources, load_dataset
from .evaluate import evaluate_encoder
from .models import Projector, make_encoder
from .run_files import check_out_dir, write_json
from .threads import iterate_loader, limit_threads
from .trainable import TrainableModel

__all__ = [
    "PretrainConfig", "PreparedRun", "PretrainResult", "NonFiniteLossError", "WarmupCosine",
    "pretrain", "prepare", "load_test_set", "resolve_device", "resolve_precision",
]


class NonFiniteLossError(RuntimeError):
    """A training step produced a NaN/inf loss, gradient or projector output; the weights were not updated.

    The message names the step, the loss terms, the last good checkpoint and what to try.
    """


@dataclass
class PretrainResult:
    """Outcome of :func:`pretrain`.

    Parameters
    ----------
    encoder : torch.nn.Module
        The trained encoder.
    projector : torch.nn.Module
        The trained projection head.
    model : torch.nn.Module
        The whole model (:class:`gcalib.training.trainable.TrainableModel`), e.g. with BYOL's target network.
    history : list of dict
        One dict per epoch: ``epoch``, ``loss``, ``lr``, ``time_s``, ``images_per_s``, ``grad_norm``,
        ``skipped_steps``.
    metrics : dict
        The training summary (``epoch_time_s``, ``images_per_s``, ``train_time_s``, ``final_loss``,
        ``world_size``) and, when evaluated, the metrics of :func:`gcalib.training.evaluate.evaluate_encoder`.
    config : PretrainConfig
        The config trained with (dataset objects as :class:`gcalib.training.data.ImageDataset`).
    out_dir : pathlib.Path or None
        The run directory.
    """

    encoder: nn.Module
    projector: nn.Module
    model: nn.Module
    history: list
    metrics: dict
    config: PretrainConfig
    out_dir: Optional[Path]


class WarmupCosine:
    """Learning-rate multiplier of step k: ``(k+1)/W`` for ``k < W``, then ``½(1 + cos(π (k−W)/(K−W)))``.

    A linear warm-up over W steps, then a cosine from 1 to 0 at step K (and 0 after it).

    Parameters
    ----------
    warmup_steps : int
        W, with ``0 <= W <= K``.
    total_steps : int
        K, >= 1.

    Raises
    ------
    ValueError
        When the steps are out of range.

    Examples
    --------
    >>> schedule = WarmupCosine(warmup_steps=2, total_steps=6)
    >>> [round(schedule(k), 3) for k in range(7)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146, 0.0]
    """

    def __init__(self, warmup_steps: int, total_steps: int) -> None:
        if not 0 <= warmup_steps <= total_steps or total_steps < 1:
            raise ValueError(f"need 0 <= warmup_steps <= total_steps and total_steps >= 1, "
                             f"got warmup_steps={warmup_steps}, total_steps={total_steps}")
        self.warmup_steps, self.total_steps = warmup_steps, total_steps

    def __call__(self, step: int) -> float:
        """The multiplier at optimizer step ``step`` (0-based).

        Parameters
        ----------
        step : int

        Returns
        -------
        float
        """
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(step - self.warmup_steps, span) / span))


def resolve_device(device: str) -> torch.device:
    """The torch device of a config's ``device`` string.

    ``"auto"`` is CUDA when available, else the CPU; other strings must name an available device. Under
    torchrun, ``"cuda"`` without an index means GPU ``LOCAL_RANK``.

    Parameters
    ----------
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        When CUDA is requested but not available.
    """
    if device == "auto":
        resolved = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available; use device='cpu' or 'auto'")
    if resolved.type == "cuda" and resolved.index is None and distributed.env_world_size() > 1:
        resolved = torch.device("cuda", distributed.local_rank())
    return resolved


def resolve_precision(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype of a config's ``precision`` on ``device``.

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16", "fp16"}
        ``"auto"`` is bf16 on CUDA and fp32 elsewhere.
    device : torch.device
        The training device.

    Returns
    -------
    torch.dtype or None
        ``None`` for plain fp32.

    Raises
    ------
    ValueError
        For ``"fp16"`` on a device other than CUDA.
    """
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision='fp16' needs a CUDA device, got device {str(device)!r}; use 'bf16' or 'fp32'")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def _determinism(enabled: bool, device: torch.device) -> Iterator[None]:
    previous = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = device.type == "cuda"
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark = previous[1]


@dataclass
class PreparedRun:
    """Everything :func:`prepare` checked and built, ready for :func:`pretrain`.

    Parameters
    ----------
    config : PretrainConfig
        The config, with dataset objects as :class:`gcalib.training.data.ImageDataset`.
    device : torch.device
        The training device.
    amp_dtype : torch.dtype or None
        The autocast dtype (``None``: fp32).
    train_set : gcalib.training.data.ImageDataset
        The whole train split (evaluated on).
    pretrain_set : torch.utils.data.Dataset
        The part of it pretrained on (its first ``max_train_samples``).
    view_transform : callable
        The per-image view augmentation.
    out_dir : pathlib.Path or None
        The checked run directory.
    resume_state : dict, optional
        The checkpoint to continue from (``None``: start afresh).
    resume_path : pathlib.Path, optional
        Its file.
    """

    config: PretrainConfig
    device: torch.device
    amp_dtype: Optional[torch.dtype]
    train_set: Any
    pretrain_set: Any
    view_transform: Any
    out_dir: Optional[Path]
    resume_state: Optional[dict] = None
    resume_path: Optional[Path] = None


def prepare(config: PretrainConfig) -> PreparedRun:
    """Check ``config`` against the environment before training, and build what training needs.

    Checks the device, the dataset (loaded), the batch size, the output directory and, with
    ``resume=True``, the newest readable checkpoint, whose config must match (except
    :data:`gcalib.training.config.RESUME_FREE_FIELDS`). Under torchrun it joins the process group.

    Parameters
    ----------
    config : PretrainConfig

    Returns
    -------
    PreparedRun

    Raises
    ------
    TypeError
        When ``config`` is not a :class:`PretrainConfig`.
    ValueError
        For every usage problem (including :class:`gcalib.training.data.DatasetNotFoundError` and
        :class:`gcalib.training.data.DatasetCorruptError`), so that callers can tell them apart from
        failures during training.
    """
    if not isinstance(config, PretrainConfig):
        raise TypeError(f"config must be a PretrainConfig, got {type(config).__name__}")
    config.validate()
    config, train_set = _with_dataset_objects(config)
    device = resolve_device(config.device)
    distributed.init_from_env(device.type)
    world = distributed.world_size()
    if config.sync_bn and world > 1 and device.type != "cuda":
        raise ValueError(f"sync_bn=True needs CUDA devices (torch's SyncBatchNorm runs on GPUs only), got device "
                         f"{str(device)!r}; drop sync_bn on CPU, where each process normalises its own batch")
    amp_dtype = resolve_precision(config.precision, device)
    label = _dataset_label(config)
    pretrain_set = train_set
    if config.max_train_samples is not None and config.max_train_samples < len(train_set):
        pretrain_set = torch.utils.data.Subset(train_set, range(config.max_train_samples))
    if config.batch_size * world > len(pretrain_set):
        per_process = f" per process x {world} processes" if world > 1 else ""
        raise ValueError(f"batch_size={config.batch_size}{per_process} is larger than the {len(pretrain_set)} samples "
                         f"available for pretraining ({label} train split); use batch_size <= "
                         f"{len(pretrain_set) // world}")
    if config.target == "domain" and getattr(train_set, "domains", None) is None:
        raise ValueError(f"target='domain' needs a dataset with domain labels; {label!r} has none "
                         f"(try clutter_digits, digits_domains or domainfolder)")
    if config.views == "rendered":
        _check_renderings(train_set, config.n_views, label)
    transform = make_view_transform(config.augmentation, train_set.image_size, train_set.mean, train_set.std,
                                    strength=config.strength, blur=config.blur)
    out_dir = None if config.out_dir is None else check_out_dir(config.out_dir)
    run = PreparedRun(config, device, amp_dtype, train_set, pretrain_set, transform, out_dir)
    if config.resume:
        found = ckpt.load_latest(out_dir, map_location="cpu")
        if found is not None:
            run.resume_state, run.resume_path = found
            state = run.resume_state
            # Checkpoints of earlier versions hold one RNG dict and lack the fields added since (at their defaults).
            if isinstance(state["rng"], dict):
                state["rng"] = [state["rng"]]
            saved = {**PretrainConfig().to_dict(), **state["config"]}
            diff = ckpt.config_differences(saved, config.to_dict(), ignore=RESUME_FREE_FIELDS)
            if diff:
                raise ValueError(f"cannot resume from {run.resume_path}: the config differs in {len(diff)} field(s): "
                                 f"{'; '.join(diff)}. Resume with the saved config or choose a new out_dir.")
            if len(state["rng"]) != world:
                raise ValueError(f"cannot resume from {run.resume_path}: it was written by {len(state['rng'])} "
                                 f"process(es), this run has {world}; resume with the same number of processes "
                                 f"(torchrun --nproc_per_node) or choose a new out_dir.")
    return run


def _with_dataset_objects(config: PretrainConfig) -> tuple[PretrainConfig, ImageDataset]:
    """The train split, and ``config`` with its dataset objects as ImageDatasets (the test split must have
    the train split's image shape, and takes its mean/std when it has none)."""
    if isinstance(config.dataset, str):
        train_set = load_dataset(config.dataset, "train", root=config.root, download=config.download,
                                 **config.dataset_options)
    else:
        train_set = ImageDataset.from_dataset(config.dataset, split="train")
    if isinstance(config.dataset, str) and config.test_dataset is None:
        return config, train_set
    test_set = None if config.test_dataset is None else ImageDataset.from_dataset(config.test_dataset, split="test",
                                                                                  like=train_set)
    dataset = config.dataset if isinstance(config.dataset, str) else train_set
    return dataclasses.replace(config, dataset=dataset, test_dataset=test_set), train_set


def _dataset_label(config: PretrainConfig) -> str:
    """The dataset's name in messages: the config's name, or the dataset object's ``name``."""
    return config.dataset if isinstance(config.dataset, str) else str(getattr(config.dataset, "name", "dataset"))


def _check_renderings(train_set: Any, n_views: int, label: str) -> None:
    """``views="rendered"`` needs ``train_set.renderings`` with at least ``n_views`` renderings per sample."""
    renderings = getattr(train_set, "renderings", None)
    if renderings is None:
        raise ValueError(f"views='rendered' needs a dataset with renderings (K renderings of each sample, "
                         f"ImageDataset(renderings=...)); {label!r} has none. Use views='augment' or a dataset "
                         f"that ships renderings")
    if renderings.shape[1] < n_views:
        raise ValueError(f"views='rendered' draws n_views={n_views} distinct renderings per sample, but {label!r} "
                         f"has {renderings.shape[1]}; use n_views <= {renderings.shape[1]} or views='augment'")


def load_test_set(config: PretrainConfig) -> ImageDataset:
    """The evaluation split of ``config``.

    Parameters
    ----------
    config : PretrainConfig
        Best the config of a :func:`prepare` result, whose ``test_dataset`` already is an ImageDataset with
        the train split's mean/std when it had none.

    Returns
    -------
    gcalib.training.data.ImageDataset
        ``config.test_dataset`` as an ImageDataset when given, else the test split of the named dataset.

    Raises
    ------
    ValueError
        When the dataset cannot be found or read.
    """
    if config.test_dataset is not None:
        return ImageDataset.from_dataset(config.test_dataset, split="test")
    return load_dataset(config.dataset, "test", root=config.root, **config.dataset_options)


def _loss_options(config: PretrainConfig) -> dict:
    """``make_loss`` keyword arguments in this process group: with several processes the plan loss gathers
    the global batch (``loss_params={"gather_distributed": False}`` keeps per-process plans) and, with
    ``shard_plan``, holds only this process's rows of it; in one process neither applies."""
    several = distributed.world_size() > 1
    return config.loss_options(gather=several, sharded=config.shard_plan and several)


def _build_model(config: PretrainConfig, in_channels: int) -> TrainableModel:
    """The model of ``config.method``: BYOL, or encoder + projector + plan loss (:func:`_loss_options`)."""
    encoder = make_encoder(config.arch, in_channels)
    projector = Projector(encoder.feature_dim, config.projector_hidden_dim, config.projector_out_dim)
    if config.method == "byol":
        return BYOL(encoder, projector, config.byol_predictor_hidden_dim, config.byol_momentum)
    return ContrastiveModel(encoder, projector, make_loss(config.loss, **_loss_options(config)))


def _build_optimizer(config: PretrainConfig, model: TrainableModel) -> torch.optim.Optimizer:
    params = [p for p in model.online_parameters() if p.requires_grad]
    lr = config.peak_lr(distributed.world_size())
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, nesterov=config.momentum > 0,
                               weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)


def _batch_target(config: PretrainConfig, labels: torch.Tensor, domains: torch.Tensor, device: torch.device):
    """The target plan of the batch from the per-sample labels/domains: of the global batch when the loss
    gathers, and then, when it shards the plan, only this process's rows ``shard_rows(batch_size, n_views)``."""
    if config.target == "positive":
        return None
    options = _loss_options(config)
    labels, domains = labels.to(device), domains.to(device)
    if options["gather_distributed"]:
        labels, domains = distributed.gather_nograd(labels), distributed.gather_nograd(domains)
    rows = shard_rows(config.batch_size, config.n_views, device=device) if options.get("shard_plan") else None
    return plans.target_plan(config.target, labels=labels, domains=domains, alpha=config.alpha, beta=config.beta,
                             n_views=config.n_views, rows=rows)


@dataclass
class _EpochProgress:
    """This process's statistics of the epoch in progress (mid-epoch checkpoints keep every rank's)."""

    losses: list = dataclasses.field(default_factory=list)
    grad_norms: list = dataclasses.field(default_factory=list)
    skipped: int = 0
    time_s: float = 0.0


def _all_finite(out) -> bool:
    tensors = out if isinstance(out, (tuple, list)) else (out,)
    return all(bool(torch.isfinite(t).all()) for t in tensors)


class _Trainer:
    """State of one run: model, optimizer, schedule, RNG, history; one method per phase."""

    def __init__(self, setup: PreparedRun) -> None:
        self.setup, self.config, self.device = setup, setup.config, setup.device
        config = self.config
        self.rank, self.world = distributed.rank(), distributed.world_size()
        _seed_everything(config.seed)
        self.model: TrainableModel = _build_model(config, setup.train_set.num_channels)
        if config.sync_bn and self.world > 1:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model = self.model.to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.forward = self._parallel(self.model)
        if config.compile:
            self.forward = torch.compile(self.forward)
        self.optimizer = _build_optimizer(config, self.model)
        # Each rank draws its own augmentations (and DataLoader worker seeds) from seed + 1000·rank.
        stream_seed = config.seed + 1000 * self.rank
        self.generator = torch.Generator().manual_seed(stream_seed)
        base, n = setup.train_set, len(setup.pretrain_set)
        self.augment = None
        if config.batch_augment and getattr(base, "images", None) is not None:
            # Views drawn per batch on the device; the loader only shuffles indices into the first n samples.
            self.augment = BatchAugment(config.augmentation, base.image_size, base.mean, base.std,
                                        strength=config.strength, blur=config.blur).to(self.device)
            self.augment_generator = torch.Generator(device=self.device).manual_seed(stream_seed)
            self.images = base.images[:n].to(self.device)
            self.renderings = base.renderings[:n].to(self.device) if config.views == "rendered" else None
            self.labels = base.labels[:n]
            self.domains = base.domains[:n] if base.domains is not None else torch.full((n,), -1, dtype=torch.long)
            dataset, loader_options = range(n), {}
        else:
            renderings = base.renderings[:n] if config.views == "rendered" else None
            dataset = MultiViewDataset(setup.pretrain_set, setup.view_transform, config.n_views, renderings=renderings,
                                       corrupt_pairs=config.corrupt_pairs)
            loader_options = {"num_workers": config.workers, "pin_memory": self.device.type == "cuda"}
        self.sampler = None
        if self.world > 1:
            self.sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=self.world, rank=self.rank,
                                                               shuffle=True, seed=config.seed, drop_last=True)
            loader_options["sampler"] = self.sampler
        else:
            loader_options["shuffle"] = True
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, drop_last=True,
                                                  generator=self.generator, **loader_options)
        self.steps_per_epoch = len(self.loader)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, WarmupCosine(config.warmup_epochs * self.steps_per_epoch, self.total_steps))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=setup.amp_dtype == torch.float16)
        self.epoch, self.step, self.history = 0, 0, []
        self.progress = _EpochProgress()
        self.loader_epoch_start = self.generator.get_state()
        self.pending_rng: Optional[dict] = None
        self.last_checkpoint: Optional[Path] = None

    @property
    def step_in_epoch(self) -> int:
        """Optimizer steps taken (or skipped) in the epoch in progress: ``step − epoch · steps_per_epoch``."""
        return self.step - self.epoch * self.steps_per_epoch

    def _parallel(self, model: nn.Module) -> nn.Module:
        """``model`` itself in one process; else wrapped in DistributedDataParallel (parameters
        broadcast from rank 0, gradients averaged)."""
        if self.world == 1:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    # -- checkpoints -------------------------------------------------------------------------------
    def state(self) -> dict:
        """The checkpoint (a collective). ``rng`` lists every rank's generator states in rank order, with
        ``"loader_epoch_start"``, the loader generator's state when the epoch in progress drew its batches;
        ``epoch_progress`` every rank's :class:`_EpochProgress`; ``step_in_epoch`` > 0 in the middle of an epoch."""
        rng = ckpt.rng_state()
        rng["loader"] = self.generator.get_state()
        rng["loader_epoch_start"] = self.loader_epoch_start if self.step_in_epoch else rng["loader"]
        if self.augment is not None:
            rng["augment"] = self.augment_generator.get_state()
        per_rank = distributed.gather_objects((rng, dataclasses.asdict(self.progress)))
        return {"epoch": self.epoch, "step": self.step, "step_in_epoch": self.step_in_epoch,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": [r for r, _ in per_rank], "epoch_progress": [e for _, e in per_rank],
                "config": self.config.to_dict(), "history": list(self.history)}

    def resume(self, state: dict, path: Path) -> None:
        """Continue from ``state``. In the middle of an epoch the loader generator goes back to the epoch's
        start and the other generators are restored once :meth:`batches` has dropped the batches done."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        rng = state["rng"][self.rank]
        self._set_rng(rng)
        self.epoch, self.step, self.history = int(state["epoch"]), int(state["step"]), list(state["history"])
        if self.step_in_epoch:
            self.progress = _EpochProgress(**state["epoch_progress"][self.rank])
            self.generator.set_state(rng["loader_epoch_start"])
            self.pending_rng = rng
        self.last_checkpoint = path

    def _set_rng(self, rng: dict) -> None:
        ckpt.set_rng_state(rng)
        self.generator.set_state(rng["loader"])
        if self.augment is not None:
            self.augment_generator.set_state(rng["augment"])

    def save_checkpoint(self) -> None:
        """Write the checkpoint of the current step (rank 0 writes; every rank gathers its RNG states)."""
        out_dir = self.setup.out_dir
        state = self.state()
        if self.rank == 0:
            ckpt.save_checkpoint(state, out_dir)
        self.last_checkpoint = ckpt.checkpoint_path(out_dir, self.epoch, self.step if self.step_in_epoch else None)

    # -- one step ---------------------------------------------------------------------------------
    def _nonfinite(self, images, out, out_finite: bool, target, loss, problem: str,
                   step_in_epoch: int) -> NonFiniteLossError:
        config = self.config
        if out_finite:
            try:
                parts = self.model.loss_terms(out, config.n_views, target)
                terms = "; ".join(f"{k}={v:.6g}" for k, v in parts.items())
            except ValueError as error:
                terms = f"not computable ({error})"
        else:
            rows = out if isinstance(out, torch.Tensor) else out[0]
            bad = int((~torch.isfinite(rows)).any(dim=1).sum())
            terms = f"not computable: {bad} of {len(rows)} projector outputs contain NaN/inf"
        advice = "".join(f"{item}, " for item in self.model.nonfinite_advice())
        where = (f"the last good checkpoint {self.last_checkpoint} was left untouched" if self.last_checkpoint
                 else "no checkpoint has been written yet")
        return NonFiniteLossError(
            f"non-finite {problem} (loss {loss.item():.6g}) at epoch {self.epoch + 1}, step {step_in_epoch + 1} "
            f"of the epoch (global step {self.step + 1}); loss terms: {terms}; input images finite: "
            f"{bool(torch.isfinite(images).all())}. The weights were not updated and {where}. Suggestions: lower "
            f"the learning rate (lr={config.lr}), {advice}check the inputs for NaN/inf or bad "
            f"normalisation, or pass skip_nonfinite=True to skip such steps."
        )

    def batches(self, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One epoch of ``(V·B blocked views on the device, labels, domains)`` from batch ``skip`` on; the
        loader's first ``skip`` batches are drawn and dropped, then the generators awaiting a mid-epoch
        resume (:meth:`resume`) are restored."""
        loader = iterate_loader(self.loader)
        for _ in range(skip):
            next(loader)
        if self.pending_rng is not None:
            self._set_rng(self.pending_rng)
            self.pending_rng = None
        for batch in loader:
            if self.augment is None:
                views, labels, domains = batch
                yield blocked_views(views).to(self.device, non_blocking=True), labels, domains
            else:
                with limit_threads(1 if self.device.type == "cpu" else None):
                    views = self.augment(self.view_sources(batch.to(self.device)), self.augment_generator)
                yield views, self.labels[batch], self.domains[batch]

    def view_sources(self, index: torch.Tensor) -> torch.Tensor:
        """The uint8 source image of every view of the in-memory samples ``index`` (B,), blocked (V·B, C, H, W):
        :func:`gcalib.training.data.draw_view_sources` with the augmentation generator."""
        config = self.config
        n_renderings = None if self.renderings is None else self.renderings.shape[1]
        samples, renderings = draw_view_sources(index, len(self.images), config.n_views, n_renderings=n_renderings,
                                                corrupt_pairs=config.corrupt_pairs, generator=self.augment_generator)
        if renderings is None:
            return self.images[samples.flatten()]
        return self.renderings[samples.flatten(), renderings.flatten()]

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor, step_in_epoch: int):
        """One optimizer step on V·B blocked views; returns (loss, grad norm), or ``None`` when a non-finite
        step was skipped."""
        config = self.config
        if self.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        target = _batch_target(config, labels, domains, self.device) if self.model.uses_target_plan else None
        amp = self.setup.amp_dtype
        with torch.autocast(self.device.type, dtype=amp) if amp is not None else contextlib.nullcontext():
            out = self.forward(images)
        # Ranks agree on every branch below: one rank skipping a collective (the loss's gather,
        # DDP's gradient all-reduce) while the others enter it would hang the job.
        out_finite = distributed.all_ranks(_all_finite(out), self.device)
        loss = self.model.loss(out, config.n_views, target) if out_finite else torch.tensor(float("nan"))
        self.optimizer.zero_grad(set_to_none=True)
        problem = None if distributed.all_ranks(bool(torch.isfinite(loss)), self.device) else "loss"
        if problem is None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.get_total_norm(
                [p.grad for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None])
            # With fp16 loss scaling an overflowing gradient is normal: the scaler skips that step itself.
            if not torch.isfinite(grad_norm) and not self.scaler.is_enabled():
                problem = "gradient"
        if problem is not None:
            self.optimizer.zero_grad(set_to_none=True)
            if not config.skip_nonfinite:
                raise self._nonfinite(images, out, out_finite, target, loss, problem, step_in_epoch)
            self.scheduler.step()
            self.step += 1
            return None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        self.model.after_optimizer_step(self.step, self.total_steps)
        return loss.item(), grad_norm.item()

    # -- the loop ---------------------------------------------------------------------------------
    def run_epoch(self, bar) -> dict:
        """Train the epoch in progress (from step :attr:`step_in_epoch` on), with a checkpoint after every
        ``checkpoint_every_steps`` steps before its end; the returned loss is averaged over steps and ranks,
        ``images_per_s`` counts the views of all ranks."""
        self.model.train()
        if self.sampler is not None:
            self.sampler.set_epoch(self.epoch)
        self.loader_epoch_start = self.generator.get_state()
        progress, skip = self.progress, self.step_in_epoch
        start = time.perf_counter() - progress.time_s
        for i, (images, labels, domains) in enumerate(self.batches(skip), start=skip):
            done = self.train_step(images, labels, domains, i)
            if done is None:
                progress.skipped += 1
            else:
                progress.losses.append(done[0])
                progress.grad_norms.append(done[1])
            progress.time_s = time.perf_counter() - start
            bar.update(1)
            losses = progress.losses
            bar.set_postfix(epoch=self.epoch + 1, loss=f"{np.mean(losses) if losses else float('nan'):.4f}",
                            img_s=f"{(i + 1) * len(images) / progress.time_s:.0f}")
            if self._step_checkpoint_due():
                self.save_checkpoint()
        if progress.skipped:
            warnings.warn(f"epoch {self.epoch + 1}: skipped {progress.skipped} step(s) with a non-finite loss",
                          RuntimeWarning)
        images = self.steps_per_epoch * self.config.batch_size * self.config.n_views * self.world
        losses, norms = progress.losses, progress.grad_norms
        loss = distributed.mean_over_ranks(float(np.mean(losses)) if losses else float("nan"), self.device)
        return {"epoch": self.epoch + 1, "loss": loss, "lr": float(self.scheduler.get_last_lr()[0]),
                "time_s": progress.time_s, "images_per_s": images / progress.time_s,
                "grad_norm": float(np.mean(norms)) if norms else float("nan"), "skipped_steps": progress.skipped}

    def _step_checkpoint_due(self) -> bool:
        """A step checkpoint after a multiple of ``checkpoint_every_steps`` steps, except at an epoch's end
        (that one is the epoch's checkpoint)."""
        every = self.config.checkpoint_every_steps
        return (self.setup.out_dir is not None and every > 0 and self.step % every == 0
                and self.step_in_epoch < self.steps_per_epoch)

    def _epoch_checkpoint_due(self) -> bool:
        """After a multiple of ``checkpoint_every`` epochs, at a multiple of ``checkpoint_every_steps`` steps,
        and after the last epoch when either is set."""
        config = self.config
        by_epoch, by_step = config.checkpoint_every, config.checkpoint_every_steps
        if self.epoch == config.epochs:
            return bool(by_epoch or by_step)
        return bool(by_epoch and self.epoch % by_epoch == 0) or bool(by_step and self.step % by_step == 0)

    def fit(self) -> None:
        from tqdm.auto import tqdm

        config, out_dir = self.config, self.setup.out_dir
        show = config.progress and self.rank == 0
        with tqdm(total=self.total_steps, initial=self.step, disable=not show, leave=False,
                  desc=f"pretrain {config.loss} seed {config.seed}", unit="step") as bar:
            while self.epoch < config.epochs:
                self.history.append(self.run_epoch(bar))
                self.epoch += 1
                self.progress = _EpochProgress()
                if out_dir is None:
                    continue
                if self._epoch_checkpoint_due():
                    self.save_checkpoint()
                if self.rank == 0:
                    write_json(self.history, out_dir / "history.json")


def _summary(history: list) -> dict:
    if not history:
        return {}
    return {"epoch_time_s": float(np.mean([h["time_s"] for h in history])),
            "images_per_s": float(np.mean([h["images_per_s"] for h in history])),
            "train_time_s": float(np.sum([h["time_s"] for h in history])),
            "final_loss": history[-1]["loss"]}


def pretrain(config: Union[PretrainConfig, PreparedRun]) -> PretrainResult:
    """Pretrain an encoder as ``config`` says, then evaluate it frozen (see the module docstring).

    With ``out_dir``, checkpoints, ``history.json`` (per epoch), and at the end ``metrics.json`` (metrics
    and the config) and ``encoder.pt`` (the encoder's state dict) are written there. Under torchrun only
    rank 0 evaluates and writes; the other ranks return the training summary.

    Parameters
    ----------
    config : PretrainConfig or PreparedRun
        What to train, or the result of :func:`prepare` (which checks everything that can be checked
        before training).

    Returns
    -------
    PretrainResult

    Raises
    ------
    TypeError, ValueError
        For usage problems, as :func:`prepare`.
    NonFiniteLossError
        When a step's loss or gradient is not finite (unless ``skip_nonfinite=True``).

    Examples
    --------
    One epoch of InfoNCE on 256 digits, without the evaluation:

    >>> config = PretrainConfig(dataset="digits", epochs=1, batch_size=64, max_train_samples=256,
    ...                         arch="small_cnn", workers=0, progress=False, evaluate=False)
    >>> result = pretrain(config)
    >>> len(result.history), sorted(result.history[0])
    (1, ['epoch', 'grad_norm', 'images_per_s', 'loss', 'lr', 'skipped_steps', 'time_s'])
    >>> result.encoder.feature_dim
    128
    """
    setup = config if isinstance(config, PreparedRun) else prepare(config)
    config = setup.config
    with _determinism(config.deterministic, setup.device):
        trainer = _Trainer(setup)
        if setup.resume_state is not None:
            trainer.resume(setup.resume_state, setup.resume_path)
        trainer.fit()
    model = trainer.model
    metrics = {**_summary(trainer.history), "world_size": trainer.world}
    if trainer.rank != 0:
        return PretrainResult(model.encoder, model.projector, model, trainer.history, metrics, config, setup.out_dir)
    if config.evaluate:
        test_set = load_test_set(config)
        metrics.update(evaluate_encoder(model.encoder, setup.train_set, test_set, view_transform=setup.view_transform,
                                        device=setup.device, seed=config.seed, workers=config.workers,
                                        rendered=config.views == "rendered"))
    if setup.out_dir is not None:
        write_json({**metrics, "config": config.to_dict()}, setup.out_dir / "metrics.json")
        write_json(trainer.history, setup.out_dir / "history.json")
        ckpt.atomic_save(model.encoder.state_dict(), setup.out_dir / "encoder.pt")
    return PretrainResult(model.encoder, model.projector, model, trainer.history, metrics, config, setup.out_dir)
