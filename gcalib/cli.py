"""Command line interface: ``python -m gcalib pretrain|compare|robustness|domain-sweep``.

* ``pretrain --dataset D --loss L [...] --out DIR`` trains one encoder and writes DIR/metrics.json
  (linear_acc, knn_acc, alignment, uniformity, epoch_time_s, domain metrics when the dataset has
  domains, and the full config), DIR/history.json, the checkpoints, DIR/encoder.pt and DIR/curves.png.
* ``compare --dataset D --losses a,b,... --seeds S [...] --out DIR`` trains every method for every
  seed with the same settings and prints one table (mean ± std over seeds), with a random-init encoder
  and the raw pixels as reference rows; DIR/compare.json and DIR/compare.png hold the same
  (:func:`gcalib.training.compare.compare`, which also takes dataset objects).
* ``robustness --settings s,... [...] --out DIR`` runs ``compare`` once per setting of
  :data:`gcalib.training.robustness.ROBUSTNESS_SETTINGS` (broken positives, extreme views) and prints methods × settings
  tables; DIR/robustness.json holds the grid.
* ``domain-sweep --alpha-minus-beta -0.5,0,0.5 --seeds S [...] --out DIR`` pretrains with the domain plan for
  every value of α − β and seed (:func:`gcalib.training.sweep.domain_sweep`) and prints the sweep's table;
  DIR/sweep.json, sweep.txt and sweep.png hold the same.

``--seeds`` is a count N (seeds 0..N-1) or a comma-separated list such as ``0,3,7``. A list of numbers may
start with a minus sign (``--alpha-minus-beta -0.5,0.5``, or ``--alpha-minus-beta=-0.5,0.5``).

``pretrain`` also runs data-parallel under ``torchrun --nproc_per_node=N -m gcalib pretrain ...``
(``--batch-size`` per process, ``--lr-scaling``, ``--sync-bn``, ``--shard-plan``); rank 0 prints and writes
the outputs. With ``--resume`` and ``--checkpoint-every-steps K`` a group that ``torchrun --max-restarts``
restarts after a lost worker continues from the newest checkpoint, also in the middle of an epoch.

Usage errors (bad names, out-of-range values, missing data, unwritable DIR, incompatible resume)
exit with code 2 and a one-line message; a non-finite loss exits with code 1.
"""
from __future__ import annotations

import argparse
import contextlib
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

from .losses import distributed
from .losses.gca import LOSSES
from .training.augment import AUGMENTATIONS
from .training.compare import DEFAULT_COMPARE_LOSSES, TABLE_METRICS, compare, method_names
from .losses.targets import TARGET_KINDS
from .training.config import LR_SCALINGS, OPTIMIZERS, PRECISIONS, VIEWS, PretrainConfig
from .training.data import DATASETS
from .training.figures import can_draw, training_curves
from .training.models import ARCHS
from .training.robustness import ROBUSTNESS_SETTINGS, robustness, robustness_table
from .training.sweep import DEFAULT_ALPHA_MINUS_BETA, SWEEP_DEFAULTS, domain_sweep
from .training.trainer import NonFiniteLossError, PreparedRun, prepare, pretrain

__all__ = ["main", "build_parser"]

# Loss hyper-parameter flags: (flag, LossSpec field(s), type).
_LOSS_FLAGS = (("eps", ("eps",), float), ("n_iter", ("n_iter",), int), ("q", ("q",), float), ("lam", ("lam",), float),
               ("rho", ("reg_a", "reg_b"), float), ("reg_a", ("reg_a",), float), ("reg_b", ("reg_b",), float),
               ("r1", ("r1",), float), ("r2", ("r2",), float))
_SEEDS_HELP = "N for seeds 0..N-1, or a comma-separated list such as 0,3,7 (default %(default)s)"
# Flags whose value is a comma-separated list of numbers, which may start with a minus sign.
_NUMBER_LIST_FLAGS = ("--alpha-minus-beta",)
# What argparse would take for an option although it is a value: a minus sign, then a digit or a point.
_STARTS_NEGATIVE = re.compile(r"^-\.?\d")


class _UsageError(Exception):
    """A problem with the command line; reported with exit code 2."""


@contextlib.contextmanager
def _usage_errors() -> Iterator[None]:
    """Report the library's usage errors (bad values, missing data, unwritable directories) as command-line
    errors (:class:`_UsageError`)."""
    try:
        yield
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise _UsageError(str(error)) from error


def _join_number_lists(argv: Sequence[str]) -> list[str]:
    """``argv`` with each value of a :data:`_NUMBER_LIST_FLAGS` flag that starts with a minus sign joined to
    its flag: argparse reads ``--alpha-minus-beta -0.5,0.5`` as two options, ``--alpha-minus-beta=-0.5,0.5``
    as a flag and its value."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in _NUMBER_LIST_FLAGS and _STARTS_NEGATIVE.match(arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


class _ArgumentParser(argparse.ArgumentParser):
    """argparse's parser that also reads a number list starting with a minus sign as its flag's value."""

    def parse_known_args(self, args: Optional[Sequence[str]] = None,
                         namespace: Optional[argparse.Namespace] = None) -> tuple[argparse.Namespace, list[str]]:
        """:meth:`argparse.ArgumentParser.parse_known_args` of ``args`` (default ``sys.argv[1:]``) after
        :func:`_join_number_lists`."""
        return super().parse_known_args(_join_number_lists(sys.argv[1:] if args is None else args), namespace)


def _seed_list(text: str) -> list[int]:
    """``--seeds``: a count N (seeds 0..N-1) or a comma-separated list of distinct seeds >= 0."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()] if "," in text else list(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count N (seeds 0..N-1) or a comma-separated list such as "
                                         f"0,3,7, got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected at least one seed, all distinct and >= 0, got {text!r}")
    return seeds


def _float_list(text: str) -> list[float]:
    """A comma-separated list of numbers such as ``-0.5,0,0.5``."""
    try:
        values = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as -0.5,0,0.5, got {text!r}")
    return values


def _name_list(valid: Sequence[str]) -> Callable[[str], list[str]]:
    """The argparse type of a comma-separated list of distinct names of ``valid``."""
    def names(text: str) -> list[str]:
        found = [s.strip() for s in text.split(",") if s.strip()]
        unknown = [n for n in found if n not in valid]
        if not found or unknown:
            raise argparse.ArgumentTypeError(f"unknown name(s) {unknown or text!r}; valid: {', '.join(valid)}")
        if len(set(found)) != len(found):
            raise argparse.ArgumentTypeError(f"lists a name twice: {text!r}")
        return found

    return names


def _wrote(paths: Sequence[Any]) -> str:
    """``"wrote a, b and c"``."""
    names = [str(p) for p in paths]
    return "wrote " + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0])


def _add_training_flags(p: argparse.ArgumentParser, defaults: PretrainConfig) -> None:
    """The flags of a training run shared by ``pretrain``, ``compare`` and ``robustness``."""
    g = p.add_argument_group("data and views")
    g.add_argument("--dataset", default=defaults.dataset, choices=DATASETS, help="dataset name (default %(default)s)")
    g.add_argument("--root", default=None, help="data directory (default: $GCALIB_DATA, else ./data)")
    g.add_argument("--download", action="store_true", help="let torchvision download a missing dataset into the root")
    g.add_argument("--max-train-samples", type=int, default=None, help="pretrain on the first N train samples only")
    g.add_argument("--holdout-domain", default=None,
                   help="leave this domain out of the train split (multi-domain datasets)")
    g.add_argument("--aug", default=None, choices=AUGMENTATIONS,
                   help=f"view augmentation (default: the dataset's recipe, else {defaults.augmentation})")
    g.add_argument("--strength", type=float, default=defaults.strength,
                   help="colour-jitter strength s (default %(default)s)")
    g.add_argument("--blur", action="store_true", help="add Gaussian blur to the views")
    g.add_argument("--n-views", type=int, default=defaults.n_views, help="views per sample (default %(default)s)")
    g.add_argument("--views", default=None, choices=VIEWS,
                   help="augment: augmentations of one image; rendered: distinct renderings of the sample, each "
                        f"augmented (datasets with renderings) (default: the dataset's recipe, else {defaults.views})")
    g.add_argument("--corrupt-pairs", type=float, default=defaults.corrupt_pairs, metavar="P",
                   help="probability that views 2..V of a sample come from another sample (default %(default)s)")
    g = p.add_argument_group("model")
    g.add_argument("--arch", default=defaults.arch, choices=ARCHS, help="encoder (default %(default)s)")
    g.add_argument("--projector-hidden", type=int, default=defaults.projector_hidden_dim, help="(default %(default)s)")
    g.add_argument("--projector-out", type=int, default=defaults.projector_out_dim, help="(default %(default)s)")
    g = p.add_argument_group("loss hyper-parameters (default: the preset's)")
    for flag, fields, kind in _LOSS_FLAGS:
        g.add_argument("--" + flag.replace("_", "-"), dest=flag, type=kind, default=None,
                       help=f"sets {' and '.join(fields)}")
    g.add_argument("--target", default=defaults.target, choices=TARGET_KINDS, help="target plan (default %(default)s)")
    g.add_argument("--alpha", type=float, default=defaults.alpha, help="same-domain weight of target=domain")
    g.add_argument("--beta", type=float, default=defaults.beta, help="cross-domain weight of target=domain")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", default=defaults.optimizer, choices=OPTIMIZERS, help="(default %(default)s)")
    g.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate (default %(default)s)")
    g.add_argument("--momentum", type=float, default=defaults.momentum, help="(default %(default)s)")
    g.add_argument("--wd", type=float, default=defaults.weight_decay, help="weight decay (default %(default)s)")
    g.add_argument("--warmup-epochs", type=int, default=defaults.warmup_epochs, help="(default %(default)s)")
    g.add_argument("--batch-size", type=int, default=defaults.batch_size, help="(default %(default)s)")
    g.add_argument("--epochs", type=int, default=defaults.epochs, help="(default %(default)s)")
    g = p.add_argument_group("execution")
    g.add_argument("--device", default=defaults.device, help="auto, cpu, cuda, cuda:N (default %(default)s)")
    g.add_argument("--precision", default=defaults.precision, choices=PRECISIONS, help="(default %(default)s)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--workers", type=int, default=defaults.workers, help="data-loading processes (default %(default)s)")
    g.add_argument("--deterministic", action="store_true", help="deterministic kernels (bit-exact resume)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m gcalib`` with its four subcommands.

    Each subcommand sets ``run``, the function that runs it (``run(args) -> exit status``).

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> args = build_parser().parse_args(["domain-sweep", "--alpha-minus-beta", "-0.5,0.5", "--seeds", "2"])
    >>> args.alpha_minus_beta, args.seeds
    ([-0.5, 0.5], [0, 1])
    """
    parser = _ArgumentParser(prog="python -m gcalib", description="Generalized Contrastive Alignment: "
                             "pretrain encoders with OT-based contrastive losses and compare them.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{pretrain,compare,robustness,domain-sweep}")
    defaults = PretrainConfig()
    _add_pretrain_parser(sub, defaults)
    _add_compare_parser(sub, defaults)
    _add_robustness_parser(sub, defaults)
    _add_domain_sweep_parser(sub, defaults)
    return parser


def _add_pretrain_parser(sub: Any, defaults: PretrainConfig) -> None:
    """The ``pretrain`` subcommand."""
    p = sub.add_parser("pretrain", help="pretrain one encoder and evaluate it",
                       description="Pretrain one encoder, evaluate it, and write metrics, history, checkpoints "
                                   "and curves to --out.")
    p.add_argument("--loss", default=defaults.loss, choices=method_names(),
                   help="loss preset, or byol (default %(default)s)")
    _add_training_flags(p, defaults)
    p.add_argument("--seed", type=int, default=defaults.seed, help="(default %(default)s)")
    p.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every,
                   help="epochs between checkpoints (0: none; default %(default)s)")
    p.add_argument("--checkpoint-every-steps", type=int, default=defaults.checkpoint_every_steps, metavar="K",
                   help="also checkpoint every K optimizer steps inside an epoch (0: none; default %(default)s)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in --out (start afresh when there is none)")
    p.add_argument("--no-evaluate", action="store_true",
                   help="train only: skip the evaluation of the encoder (metrics.json holds the training summary)")
    p.add_argument("--skip-nonfinite", action="store_true",
                   help="skip steps with a non-finite loss instead of stopping")
    g = p.add_argument_group("multi-process (under torchrun)")
    g.add_argument("--lr-scaling", default=defaults.lr_scaling, choices=LR_SCALINGS,
                   help="with N processes: lr as given, for the global batch (none), lr x N (linear) or "
                        "lr x sqrt(N) (sqrt), for an lr tuned on one process (default %(default)s)")
    g.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across processes (CUDA only)")
    g.add_argument("--shard-plan", action="store_true",
                   help="each process holds only its samples' rows of the global plan (memory per process "
                        "~ 1/N of the replicated plan's; no effect in one process)")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(run=_run_pretrain)


def _add_compare_parser(sub: Any, defaults: PretrainConfig) -> None:
    """The ``compare`` subcommand."""
    c = sub.add_parser("compare", help="compare methods over seeds (this is `make demo`)",
                       description="Pretrain every method of --losses for every seed with the same settings and "
                                   "print mean ± std over seeds, with random-init and raw-pixel reference rows.")
    c.add_argument("--losses", type=_name_list(method_names()), default=",".join(DEFAULT_COMPARE_LOSSES),
                   help="comma-separated methods (default %(default)s)")
    c.add_argument("--seeds", type=_seed_list, default="2", help=_SEEDS_HELP)
    _add_training_flags(c, defaults)
    c.add_argument("--out", default="runs/compare", help="output directory (default %(default)s)")
    c.set_defaults(run=_run_compare)


def _add_robustness_parser(sub: Any, defaults: PretrainConfig) -> None:
    """The ``robustness`` subcommand."""
    r = sub.add_parser("robustness", help="compare methods under broken positives and extreme views",
                       description="Run compare once per setting (the configured views; --corrupt-pairs 0.2 and "
                                   "0.4; the views large_erase, strong_crop, brightness) and print methods x "
                                   "settings tables; write DIR/robustness.json and one comparison per setting. "
                                   "Settings already in DIR with the same configuration are read back.")
    r.add_argument("--losses", type=_name_list(method_names()), default=",".join(DEFAULT_COMPARE_LOSSES),
                   help="comma-separated methods (default %(default)s)")
    r.add_argument("--seeds", type=_seed_list, default="3", help=_SEEDS_HELP)
    r.add_argument("--settings", type=_name_list(tuple(ROBUSTNESS_SETTINGS)), default=",".join(ROBUSTNESS_SETTINGS),
                   help="comma-separated settings (default %(default)s)")
    _add_training_flags(r, defaults)
    r.add_argument("--out", default="runs/robustness", help="output directory (default %(default)s)")
    r.set_defaults(run=_run_robustness)


def _add_domain_sweep_parser(sub: Any, defaults: PretrainConfig) -> None:
    """The ``domain-sweep`` subcommand."""
    s = sub.add_parser(
        "domain-sweep", help="sweep alpha-beta of the domain-aware target plan",
        description="Pretrain with the domain plan T = positives + alpha*[same domain] + beta*[other domain] for "
                    "every alpha-beta (alpha = base + max(d, 0), beta = base + max(-d, 0)) and seed; report domain "
                    "accuracy, class accuracy and held-out-domain class accuracy; write DIR/sweep.json, sweep.txt, "
                    "sweep.png.")
    s.add_argument("--dataset", default="clutter_digits", choices=DATASETS,
                   help="a dataset with domain labels (default %(default)s)")
    s.add_argument("--root", default=None, help="data directory (default: $GCALIB_DATA, else ./data)")
    s.add_argument("--image-size", type=int, default=None,
                   help="image side for folder datasets such as domainfolder (default: the loader's, 224)")
    s.add_argument("--alpha-minus-beta", type=_float_list, default=",".join(map(str, DEFAULT_ALPHA_MINUS_BETA)),
                   help="comma-separated values of alpha-beta (default %(default)s)")
    s.add_argument("--base", type=float, default=0.0, help="the smaller of alpha and beta (default %(default)s)")
    s.add_argument("--seeds", type=_seed_list, default="3", help=_SEEDS_HELP)
    s.add_argument("--loss", default=defaults.loss, choices=LOSSES, help="loss preset (default %(default)s)")
    s.add_argument("--eps", type=float, default=None, help="loss temperature eps (default: the preset's)")
    s.add_argument("--epochs", type=int, default=SWEEP_DEFAULTS["epochs"], help="(default %(default)s)")
    s.add_argument("--batch-size", type=int, default=defaults.batch_size, help="(default %(default)s)")
    s.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate (default %(default)s)")
    s.add_argument("--max-train-samples", type=int, default=None, help="pretrain on the first N train samples only")
    s.add_argument("--device", default=defaults.device, help="auto, cpu, cuda, cuda:N (default %(default)s)")
    s.add_argument("--workers", type=int, default=defaults.workers, help="data-loading processes (default %(default)s)")
    s.add_argument("--no-reuse", action="store_true", help="retrain runs whose results are already in --out")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--out", default="runs/domain-sweep", help="output directory (default %(default)s)")
    s.set_defaults(run=_run_domain_sweep)


def _config(args: argparse.Namespace, loss: str, seed: int, out_dir: Optional[str], **extra: Any) -> PretrainConfig:
    """The :class:`PretrainConfig` of the training flags for ``loss`` and ``seed`` (the dataset's recipe fills
    the flags left unset)."""
    loss_params = {}
    if loss != "byol":
        for flag, fields, _ in _LOSS_FLAGS:
            value = getattr(args, flag)
            if value is not None:
                loss_params.update({f: value for f in fields})
    elif any(getattr(args, flag) is not None for flag, _, _ in _LOSS_FLAGS):
        raise _UsageError("loss hyper-parameter flags (--eps, --n-iter, ...) do not apply to byol")
    options = {} if args.holdout_domain is None else {"holdout_domain": args.holdout_domain}
    # Flags left unset fall back to the dataset's recipe, then to PretrainConfig's defaults.
    given = {name: value for name, value in (("views", args.views), ("augmentation", args.aug)) if value is not None}
    return PretrainConfig.for_dataset(
        args.dataset, root=args.root, download=args.download, dataset_options=options,
        max_train_samples=args.max_train_samples, n_views=args.n_views, corrupt_pairs=args.corrupt_pairs, **given,
        strength=args.strength, blur=args.blur, arch=args.arch, projector_hidden_dim=args.projector_hidden,
        projector_out_dim=args.projector_out, loss=loss, loss_params=loss_params, target=args.target, alpha=args.alpha,
        beta=args.beta, optimizer=args.optimizer, lr=args.lr, momentum=args.momentum, weight_decay=args.wd,
        warmup_epochs=args.warmup_epochs, batch_size=args.batch_size, epochs=args.epochs, seed=seed,
        device=args.device, precision=args.precision, compile=args.compile, workers=args.workers, out_dir=out_dir,
        deterministic=args.deterministic, progress=not args.no_progress, **extra)


def _run_pretrain(args: argparse.Namespace) -> int:
    """``pretrain``: :func:`gcalib.training.trainer.pretrain` of one config, then its curves and a summary line."""
    with _usage_errors():
        run: PreparedRun = prepare(_config(
            args, args.loss, args.seed, args.out, checkpoint_every=args.checkpoint_every,
            checkpoint_every_steps=args.checkpoint_every_steps, resume=args.resume,
            skip_nonfinite=args.skip_nonfinite, lr_scaling=args.lr_scaling, sync_bn=args.sync_bn,
            shard_plan=args.shard_plan, evaluate=not args.no_evaluate))
    if run.resume_path is not None and distributed.rank() == 0:
        print(f"resuming from {run.resume_path}", flush=True)
    result = pretrain(run)
    if distributed.rank() != 0:
        return 0
    curves = run.out_dir / "curves.png"
    drawn = can_draw(curves)
    if drawn:
        training_curves(result.history, curves)
    m = result.metrics
    print(f"{args.loss}: " + ", ".join(f"{k}={m[k]:.4f}" for k, _ in TABLE_METRICS if isinstance(m.get(k), float)))
    print(f"wrote {run.out_dir}/metrics.json, history.json, {'curves.png, ' if drawn else ''}encoder.pt and checkpoints")
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    """``compare``: :func:`gcalib.training.compare.compare` with the command line's settings, then the table."""
    with _usage_errors():
        result = compare(_config(args, args.losses[0], args.seeds[0], None), args.losses, args.seeds, args.out)
    print(f"\n{args.dataset}: {len(args.losses)} methods x {len(args.seeds)} seed(s), {args.epochs} epochs each, "
          f"mean ± std over seeds; total {result.total_time_s:.0f}s\n{result.table()}")
    print(_wrote([result.files["json"], result.files["figure"]]))
    return 0


def _run_robustness(args: argparse.Namespace) -> int:
    """``robustness``: :func:`gcalib.training.robustness.robustness` with the command line's settings, then
    the tables."""
    settings = {name: ROBUSTNESS_SETTINGS[name] for name in args.settings}
    with _usage_errors():
        grid = robustness(_config(args, args.losses[0], args.seeds[0], None), settings, args.losses, args.seeds,
                          args.out)
    for metric, label in (("linear_acc", "linear probe"), ("knn_acc_k20", "kNN k=20")):
        print(f"\n{args.dataset}, {label}: mean ± std over {len(args.seeds)} seed(s), {args.epochs} epochs each\n"
              f"{robustness_table(grid, metric)}")
    print(_wrote([Path(args.out) / "robustness.json"]))
    return 0


def _run_domain_sweep(args: argparse.Namespace) -> int:
    """``domain-sweep``: :func:`gcalib.training.sweep.domain_sweep` with the command line's settings, then the table."""
    overrides: dict[str, Any] = {
        "loss": args.loss, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "max_train_samples": args.max_train_samples, "device": args.device, "workers": args.workers,
        "root": args.root, "progress": not args.no_progress}
    if args.image_size is not None:
        overrides["dataset_options"] = {"image_size": args.image_size}
    if args.eps is not None:
        overrides["loss_params"] = {"eps": args.eps}
    with _usage_errors():
        result = domain_sweep(args.dataset, args.alpha_minus_beta, args.seeds, args.out, base=args.base,
                              reuse=not args.no_reuse, **overrides)
    print(f"\n{args.dataset}: {len(args.alpha_minus_beta)} values of alpha-beta x {len(args.seeds)} seed(s), "
          f"{args.epochs} epochs each; total {result.total_time_s:.0f}s\n{result.table()}")
    print(_wrote([result.files["json"], result.files["table"], result.files["figure"]]))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``python -m gcalib`` with the arguments ``argv``.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 1 when a non-finite loss stopped training.

    Raises
    ------
    SystemExit
        With status 2 on a usage error (a one-line message on stderr), and 0 after ``--help``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command != "pretrain" and distributed.env_world_size() > 1:
            raise _UsageError(f"{args.command} runs in one process; under torchrun (WORLD_SIZE="
                              f"{distributed.env_world_size()}) use `python -m gcalib pretrain`")
        return args.run(args)
    except _UsageError as error:
        parser.error(str(error))
    except NonFiniteLossError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        distributed.shutdown()
