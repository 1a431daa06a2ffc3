"""The α−β sweep of domain-aware target plans (the paper's PACS figure, on any multi-domain dataset).

For every value d of α − β and every seed, an encoder is pretrained with the domain plan
``T = [positive pair] + α·[same domain, not positive] + β·[other domain]`` (:func:`gcalib.losses.targets.domain_plan`),
where (α, β) follow from d by :func:`alpha_beta`:

    α = base + max(d, 0),   β = base + max(−d, 0)      (so α − β = d and min(α, β) = base).

Each frozen encoder is evaluated by :func:`gcalib.training.evaluate.evaluate_encoder`: class accuracy (linear
probe), domain accuracy (the same probe on domain labels) and held-out-domain class accuracy (the class probe
trained on the other domains, tested on one domain; mean over domains).
The encoder saw every domain, unlabelled, during pretraining; the held-out domain is held out from the
probe. The result holds one row per run, the mean ± sample std over seeds per d, the Spearman rank
correlation between d and the mean domain accuracy, the spread (max − min) of the mean class accuracy,
and the reference: the same metrics of a randomly initialised encoder of the same architecture (the
initial weights of the first seed's runs).
:meth:`SweepResult.save` writes ``sweep.json``, ``sweep.txt`` (the table) and ``sweep.png``;
:meth:`SweepResult.load` reads a ``sweep.json`` back.

``python -m gcalib domain-sweep`` runs it from the command line (:mod:`gcalib.cli`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from ..validation import check_bool, check_nonnegative, check_positive, check_real, check_sequence
from .config import RESUME_FREE_FIELDS, PretrainConfig
from .data import ImageDataset, load_dataset
from .evaluate import DEFAULT_CS, evaluate_encoder
from .experiment import ExperimentResult, check_seeds
from .figures import can_draw, pyplot
from .models import make_encoder
from .run_files import read_json, write_json
from .tables import mean_std, plus_minus, text_table
from .trainer import PreparedRun, prepare, pretrain

__all__ = [
    "DEFAULT_ALPHA_MINUS_BETA",
    "SWEEP_DEFAULTS",
    "SWEEP_METRICS",
    "SweepResult",
    "alpha_beta",
    "spearman",
    "domain_sweep",
    "random_init_reference",
    "plot_sweep",
]

DEFAULT_ALPHA_MINUS_BETA = (-0.5, -0.2, -0.1, 0.0, 0.1, 0.2, 0.5)
# Training settings of the sweep unless overridden (the rest are the dataset's recipe and PretrainConfig's
# defaults): 10 epochs per run, so that the default sweep (7 values x 3 seeds on clutter_digits) fits in about
# 20 minutes on a 2-core CPU. Three seeds by default: with one, the trend across alpha - beta is lost in the
# seed-to-seed spread (Spearman 0.79 with one seed, 0.96 with three on clutter_digits).
SWEEP_DEFAULTS: dict[str, Any] = {"epochs": 10, "checkpoint_every": 0}
# (metric key of evaluate_encoder, label in tables and figures)
SWEEP_METRICS = (("domain_acc", "domain accuracy"), ("linear_acc", "class accuracy"),
                 ("heldout_domain_acc", "held-out-domain class accuracy"))
# The metrics a run of the sweep records (and sweep_run.json holds).
_RUN_METRICS = tuple(key for key, _ in SWEEP_METRICS) + ("heldout_domain_acc_per_domain",)
# Key of each SWEEP_METRICS metric in the reference (the random-init encoder's metrics).
_REFERENCE_KEYS = {"domain_acc": "domain_acc", "linear_acc": "class_acc", "heldout_domain_acc": "heldout_domain_acc"}
# Fields the sweep sets itself; overriding them would break the sweep's meaning.
_RESERVED = ("dataset", "target", "alpha", "beta", "seed", "out_dir", "evaluate", "resume")


def alpha_beta(alpha_minus_beta: float, base: float = 0.0) -> tuple[float, float]:
    """(α, β) for a value d of α − β: ``α = base + max(d, 0)``, ``β = base + max(−d, 0)``.

    The smaller weight is ``base``, so both are non-negative and ``α − β = d`` exactly.

    Parameters
    ----------
    alpha_minus_beta : float
        The difference d, a finite number.
    base : float, default 0.0
        The smaller of the two weights, >= 0.

    Returns
    -------
    alpha : float
        Weight of same-domain pairs.
    beta : float
        Weight of cross-domain pairs.

    Raises
    ------
    TypeError
        When an argument is not a real number.
    ValueError
        When ``alpha_minus_beta`` is not finite or ``base`` is negative.

    Examples
    --------
    >>> alpha_beta(-0.2)
    (0.0, 0.2)
    """
    d = check_real("alpha_minus_beta", alpha_minus_beta)
    base = check_nonnegative("base", base)
    return base + max(d, 0.0), base + max(-d, 0.0)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: the Pearson correlation of the ranks (ties get their mean rank).

    Parameters
    ----------
    x, y : sequence of float
        Paired values, of the same length >= 2.

    Returns
    -------
    float
        ρ in [−1, 1]; NaN when either sequence is constant (no ranking to correlate).

    Raises
    ------
    ValueError
        When the sequences are not 1-d, differ in length or are shorter than 2.

    Examples
    --------
    >>> spearman([1, 2, 3], [10, 30, 20])
    0.5
    """
    from scipy.stats import rankdata

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"x and y must be 1-d sequences of the same length >= 2, got shapes {x.shape} and {y.shape}")
    rx, ry = rankdata(x) - (len(x) + 1) / 2, rankdata(y) - (len(y) + 1) / 2
    denominator = math.sqrt(float((rx ** 2).sum() * (ry ** 2).sum()))
    return float("nan") if denominator == 0 else float((rx * ry).sum() / denominator)


@dataclass
class SweepResult(ExperimentResult):
    """Outcome of :func:`domain_sweep`; :meth:`save` writes ``sweep.json``, ``sweep.txt`` and ``sweep.png``,
    :meth:`load` reads a ``sweep.json`` back.

    Parameters
    ----------
    dataset : str
        The dataset's name.
    base : float
        The smaller of α and β (:func:`alpha_beta`).
    seeds : list of int
        The seeds every value of α − β was trained with.
    runs : list of dict
        One dict per (α − β, seed) with ``alpha_minus_beta``, ``alpha``, ``beta``, ``seed``, the
        :data:`SWEEP_METRICS`, ``heldout_domain_acc_per_domain``, ``train_time_s`` and ``reused``.
    summary : list of dict
        One dict per α − β (in sweep order) with ``alpha``, ``beta``, ``n_seeds`` and ``<metric>_mean`` /
        ``<metric>_std`` (sample std over seeds; 0 with one seed).
    spearman_domain : float
        Rank correlation of α − β with the mean domain accuracy (NaN if constant).
    spearman_heldout : float
        The same with the mean held-out-domain class accuracy.
    class_acc_spread : float
        max − min of the mean class accuracy over α − β (a fraction, not points).
    config : dict
        The runs' shared config (without alpha, beta, seed, out_dir) and the probes' ``probe_Cs``.
    total_time_s : float
        Wall time of the sweep, in seconds.
    reference : dict
        The random-init encoder's ``domain_acc``, ``class_acc`` (linear class accuracy),
        ``heldout_domain_acc``, ``heldout_domain_acc_per_domain`` and its ``seed``.
    out_dir : pathlib.Path or None, default None
        Where the result was saved.
    files : dict, default {}
        ``"json"``, ``"table"`` and ``"figure"`` → the files :meth:`save` wrote.
    """

    JSON_NAME = "sweep.json"
    JSON_KEYS = ("dataset", "base", "seeds", "runs", "summary", "spearman_domain", "spearman_heldout",
                 "class_acc_spread", "reference", "config", "total_time_s", "table", "out_dir")

    dataset: str
    base: float
    seeds: list
    runs: list
    summary: list
    spearman_domain: float
    spearman_heldout: float
    class_acc_spread: float
    config: dict
    total_time_s: float
    reference: dict
    out_dir: Optional[Path] = None
    files: dict = field(default_factory=dict)

    def table(self) -> str:
        """The sweep as a plain-text table: one row per α − β (mean ± std over seeds), a ``random-init`` row
        (the reference), then the two acceptance numbers and the rank correlation of α − β with the
        held-out-domain accuracy.

        Returns
        -------
        str
        """
        rows = [["alpha-beta", "alpha", "beta", "seeds"] + [label for _, label in SWEEP_METRICS]]
        for row in self.summary:
            rows.append([f"{row['alpha_minus_beta']:+.2f}", f"{row['alpha']:.2f}", f"{row['beta']:.2f}",
                         str(row["n_seeds"])]
                        + [plus_minus(row[key + "_mean"], row[key + "_std"]) for key, _ in SWEEP_METRICS])
        rows.append(["random-init", "-", "-", "1"]
                    + [f"{self.reference[_REFERENCE_KEYS[key]]:.3f}" for key, _ in SWEEP_METRICS])
        return "\n".join([
            text_table(rows, align="right"),
            f"Spearman(alpha-beta, domain accuracy) = {self.spearman_domain:.3f}; "
            f"class accuracy spread (max - min) = {100 * self.class_acc_spread:.1f} points",
            f"Spearman(alpha-beta, held-out-domain class accuracy) = {self.spearman_heldout:.3f}",
        ])

    def _write_extra_files(self, out: Path) -> dict[str, Path]:
        files = {"table": out / "sweep.txt"}
        files["table"].write_text(self.table() + "\n")
        if can_draw(out / "sweep.png"):
            files["figure"] = out / "sweep.png"
            ax = plot_sweep(self)
            ax.figure.savefig(files["figure"], dpi=120, bbox_inches="tight")
            pyplot().close(ax.figure)
        return files


def plot_sweep(result: SweepResult, ax: Any = None) -> Any:
    """Domain, class and held-out-domain class accuracy versus α − β (the paper's figure).

    Each metric is drawn as its mean over seeds with a ±1 std band, and the random-init reference's value
    as a dashed horizontal line of the same colour.

    Parameters
    ----------
    result : SweepResult
        A sweep, e.g. of :func:`domain_sweep` or :meth:`SweepResult.load`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    TypeError
        When ``result`` is not a :class:`SweepResult`.
    ImportError
        When matplotlib is not installed.
    """
    if not isinstance(result, SweepResult):
        raise TypeError(f"result must be a SweepResult, got {type(result).__name__}")
    if ax is None:
        _, ax = pyplot().subplots(figsize=(7.6, 3.8))
    order = sorted(range(len(result.summary)), key=lambda i: result.summary[i]["alpha_minus_beta"])
    x = np.array([result.summary[i]["alpha_minus_beta"] for i in order])
    for (key, label), marker in zip(SWEEP_METRICS, "osd"):
        mean = np.array([result.summary[i][key + "_mean"] for i in order])
        std = np.array([result.summary[i][key + "_std"] for i in order])
        line, = ax.plot(x, mean, marker=marker, label=label)
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.axhline(result.reference[_REFERENCE_KEYS[key]], color=line.get_color(), linestyle="--", linewidth=1,
                   label=f"{label}, random init")
    seeds = len(result.seeds)
    ax.set_xlabel("α − β  (same-domain weight − cross-domain weight)")
    ax.set_ylabel("accuracy (linear probe)")
    ax.set_title(f"{result.dataset}: Spearman(α−β, domain acc.) = {result.spearman_domain:.2f}\n"
                 f"mean ± std over {seeds} seed{'s' if seeds > 1 else ''}", fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return ax


def _check_values(alpha_minus_beta: Sequence[float]) -> list[float]:
    values = check_sequence("alpha_minus_beta", alpha_minus_beta, check_real)
    if len(values) < 2:
        raise ValueError(f"alpha_minus_beta needs at least two values to sweep, got {values}")
    if len(set(values)) != len(values):
        raise ValueError(f"alpha_minus_beta lists a value twice: {values}")
    return values


def _run_name(d: float, seed: int) -> str:
    return f"amb{d:+.3f}_seed{seed}"


def _reusable(run_dir: Path, config_dict: dict, probe_Cs: list) -> Optional[dict]:
    """The metrics saved in ``run_dir/sweep_run.json`` by a finished run with this config and probe grid,
    else None (fields of :data:`gcalib.training.config.RESUME_FREE_FIELDS` may differ: they do not change
    the numbers)."""
    try:
        saved = read_json(run_dir / "sweep_run.json")
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        return None

    def fixed(config: dict) -> dict:
        return {k: v for k, v in config.items() if k not in RESUME_FREE_FIELDS}

    metrics = saved.get("metrics")
    if fixed(saved["config"]) != fixed(config_dict) or saved.get("probe_Cs") != probe_Cs:
        return None
    if not isinstance(metrics, dict):
        return None
    return metrics if all(key in metrics for key, _ in SWEEP_METRICS) else None


def _sweep_metrics(encoder: torch.nn.Module, train_set: ImageDataset, test_set: ImageDataset,
                   device: torch.device, seed: int, probe_Cs: Sequence[float]) -> dict:
    """The :data:`SWEEP_METRICS` and ``heldout_domain_acc_per_domain`` of :func:`evaluate_encoder`."""
    metrics = evaluate_encoder(encoder, train_set, test_set, device=device, seed=seed, Cs=probe_Cs)
    return {key: metrics[key] for key in _RUN_METRICS}


def random_init_reference(setup: PreparedRun, test_set: ImageDataset, seed: int,
                          probe_Cs: Optional[Sequence[float]] = None) -> dict:
    """The sweep's metrics of a randomly initialised encoder (the initial weights of a run with ``seed``).

    The global RNG state is left unchanged.

    Parameters
    ----------
    setup : gcalib.training.trainer.PreparedRun
        A prepared run: its ``config.arch``, train split and device are used.
    test_set : gcalib.training.data.ImageDataset
        The evaluation split, with domains.
    seed : int
        Seed of the initial weights.
    probe_Cs : sequence of float, optional
        The probes' grid of ``C`` (default :data:`gcalib.training.evaluate.DEFAULT_CS`).

    Returns
    -------
    dict
        ``{"seed", "domain_acc", "class_acc", "heldout_domain_acc", "heldout_domain_acc_per_domain"}``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = make_encoder(setup.config.arch, setup.train_set.num_channels).to(setup.device)
    metrics = _sweep_metrics(encoder, setup.train_set, test_set, setup.device, seed,
                             DEFAULT_CS if probe_Cs is None else probe_Cs)
    return {"seed": seed, "domain_acc": metrics["domain_acc"], "class_acc": metrics["linear_acc"],
            "heldout_domain_acc": metrics["heldout_domain_acc"],
            "heldout_domain_acc_per_domain": metrics["heldout_domain_acc_per_domain"]}


def _check_two_domains(train_set: ImageDataset, dataset: str) -> None:
    domains = getattr(train_set, "domains", None)
    if domains is None or len(torch.unique(torch.as_tensor(domains))) < 2:
        raise ValueError(f"the sweep needs a dataset whose train split holds at least two domains; {dataset!r} "
                         f"has fewer (try clutter_digits, digits_domains or domainfolder)")


def domain_sweep(
    dataset: str = "clutter_digits",
    alpha_minus_beta: Sequence[float] = DEFAULT_ALPHA_MINUS_BETA,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: Union[str, Path, None] = None,
    *,
    base: float = 0.0,
    probe_Cs: Optional[Sequence[float]] = None,
    reuse: bool = True,
    verbose: bool = True,
    **overrides: Any,
) -> SweepResult:
    """Pretrain with ``target="domain"`` for every α − β and every seed, evaluate each encoder, and summarise
    (see the module docstring).

    Every configuration is validated (and the data loaded) before the first run starts.

    Parameters
    ----------
    dataset : str, default "clutter_digits"
        A dataset name whose train split has at least two domains (``clutter_digits``, ``digits_domains``,
        ``domainfolder``).
    alpha_minus_beta : sequence of float, default :data:`DEFAULT_ALPHA_MINUS_BETA`
        At least two distinct values of α − β.
    seeds : sequence of int, default (0, 1, 2)
        Distinct seeds >= 0.
    out_dir : str, os.PathLike or None, default None
        With a directory, each run writes its pretrain outputs (``metrics.json``, ``history.json``,
        ``encoder.pt``) and ``sweep_run.json`` (config and sweep metrics) to ``out_dir/amb<α−β>_seed<seed>/``,
        and the sweep writes ``sweep.json``, ``sweep.txt`` and ``sweep.png``.
    base : float, default 0.0
        The smaller of α and β (:func:`alpha_beta`).
    probe_Cs : sequence of float, optional
        The probes' grid of ``C`` (default :data:`gcalib.training.evaluate.DEFAULT_CS`; a shorter grid
        evaluates faster).
    reuse : bool, default True
        Read back a run whose ``sweep_run.json`` holds the same config instead of retraining it.
    verbose : bool, default True
        Print a line per run.
    **overrides
        :class:`gcalib.training.config.PretrainConfig` fields (``epochs``, ``batch_size``, ``loss``,
        ``loss_params``, ``lr``, ``max_train_samples``, ``dataset_options``, ``device``, ``progress``, …) on
        top of :data:`SWEEP_DEFAULTS`; the sweep sets dataset, target, alpha, beta, seed, out_dir, evaluate
        and resume itself.

    Returns
    -------
    SweepResult

    Raises
    ------
    TypeError
        For an unknown override or an argument of the wrong type.
    ValueError
        For reserved overrides, repeated values or seeds, a dataset with fewer than two domains, and
        every problem :func:`gcalib.training.trainer.prepare` finds.
    """
    values = _check_values(alpha_minus_beta)
    seeds = check_seeds(seeds)
    probe_Cs = check_sequence("probe_Cs", DEFAULT_CS if probe_Cs is None else probe_Cs, check_positive)
    pairs = {d: alpha_beta(d, base) for d in values}
    base = float(base)
    reserved = sorted(set(overrides) & set(_RESERVED))
    if reserved:
        raise ValueError(f"domain_sweep sets {reserved} itself; got them as overrides {overrides!r}. "
                         f"Pass dataset= and seeds= as arguments and leave the others out.")
    check_bool("reuse", reuse)
    check_bool("verbose", verbose)
    settings = {**SWEEP_DEFAULTS, "progress": False, **overrides}
    if isinstance(settings.get("dataset_options"), dict) and "holdout_domain" in settings["dataset_options"]:
        raise ValueError(f"dataset_options must not set holdout_domain (got {settings['dataset_options']!r}): the "
                         f"sweep probes every domain and reports each held-out domain's class accuracy itself")
    out = None if out_dir is None else Path(out_dir)
    prepared = {}
    for d in values:
        alpha, beta = pairs[d]
        for seed in seeds:
            run_dir = None if out is None else str(out / _run_name(d, seed))
            try:
                config = PretrainConfig.for_dataset(dataset, target="domain", alpha=alpha, beta=beta, seed=seed,
                                                    out_dir=run_dir, evaluate=False, **settings)
            except TypeError as error:
                if "unexpected keyword argument" in str(error):
                    raise TypeError(f"unknown training override in {sorted(overrides)}: {error}") from None
                raise
            if not prepared:
                # Data, device and output directory are checked once, before any training.
                setup = prepare(config)
                _check_two_domains(setup.train_set, dataset)
                test_set = load_dataset(dataset, "test", root=config.root, **config.dataset_options)
            prepared[(d, seed)] = config

    start = time.perf_counter()
    runs = []
    for (d, seed), config in prepared.items():
        t0 = time.perf_counter()
        saved = _reusable(Path(config.out_dir), config.to_dict(), probe_Cs) if (reuse and config.out_dir) else None
        if saved is None:
            trained = pretrain(config)
            metrics = {**_sweep_metrics(trained.encoder, setup.train_set, test_set, setup.device, seed, probe_Cs),
                       "train_time_s": trained.metrics.get("train_time_s", float("nan"))}
            if config.out_dir is not None:
                write_json({"config": config.to_dict(), "probe_Cs": probe_Cs, "metrics": metrics},
                           Path(config.out_dir) / "sweep_run.json")
        else:
            metrics = saved
        run = {"alpha_minus_beta": d, "alpha": config.alpha, "beta": config.beta, "seed": seed,
               **{key: float(metrics[key]) for key, _ in SWEEP_METRICS},
               "heldout_domain_acc_per_domain": metrics["heldout_domain_acc_per_domain"],
               "train_time_s": float(metrics["train_time_s"]), "reused": saved is not None}
        runs.append(run)
        if verbose:
            print(f"[{time.perf_counter() - start:5.0f}s] alpha-beta={d:+.2f} (alpha={config.alpha:.2f}, "
                  f"beta={config.beta:.2f}) seed {seed}: domain {run['domain_acc']:.3f}, "
                  f"class {run['linear_acc']:.3f}, "
                  f"held-out domain {run['heldout_domain_acc']:.3f}"
                  + (" (reused)" if saved is not None else f" ({time.perf_counter() - t0:.0f}s)"), flush=True)

    summary = []
    for d in values:
        rows = [r for r in runs if r["alpha_minus_beta"] == d]
        entry = {"alpha_minus_beta": d, "alpha": pairs[d][0], "beta": pairs[d][1], "n_seeds": len(rows)}
        for key, _ in SWEEP_METRICS:
            entry[key + "_mean"], entry[key + "_std"] = mean_std([r[key] for r in rows])
        summary.append(entry)
    class_means = [s["linear_acc_mean"] for s in summary]
    first = next(iter(prepared.values())).to_dict()
    reference = random_init_reference(setup, test_set, seeds[0], probe_Cs)
    if verbose:
        print(f"random-init reference (seed {seeds[0]}): domain {reference['domain_acc']:.3f}, class "
              f"{reference['class_acc']:.3f}, held-out domain {reference['heldout_domain_acc']:.3f}", flush=True)
    result = SweepResult(
        dataset=dataset, base=base, seeds=seeds, runs=runs, summary=summary,
        spearman_domain=spearman(values, [s["domain_acc_mean"] for s in summary]),
        spearman_heldout=spearman(values, [s["heldout_domain_acc_mean"] for s in summary]),
        class_acc_spread=max(class_means) - min(class_means),
        config={**{k: v for k, v in first.items() if k not in ("alpha", "beta", "seed", "out_dir")},
                "probe_Cs": probe_Cs},
        total_time_s=time.perf_counter() - start,
        reference=reference,
    )
    if out is not None:
        result.save(out)
    return result
