"""The α−β sweep of domain-aware target plans (the paper's PACS figure, on any multi-domain dataset).

For every value d of α − β and every seed, an encoder is pretrained with the domain plan
``T = [positive pair] + α·[same domain, not positive] + β·[other domain]`` (:func:`gcalib.losses.targets.domain_plan`),
where (α, β) follow from d by :func:`alpha_beta`:

    α = base + max(d, 0),   β = base + max(−d, 0)      (so α − β = d and min(α, β) = base).

Each frozen encoder is evaluated by :func:`evaluate_run` with :mod:`gcalib.pretrain.evaluate`'s probes: class
accuracy (linear probe), domain accuracy (the same probe on domain labels) and held-out-domain
class accuracy (the class probe trained on the other domains, tested on one domain; mean over domains).
The encoder saw every domain, unlabelled, during pretraining; the held-out domain is held out from the
probe. The result holds one row per run, the mean ± sample std over seeds per d, the Spearman rank
correlation between d and the mean domain accuracy, the spread (max − min) of the mean class accuracy,
and the reference: the same metrics of a randomly initialised encoder of the same architecture (the
initial weights of the first seed's runs).
:meth:`SweepResult.save` writes ``sweep.json``, ``sweep.txt`` (the table) and ``sweep.png``.

``python -m gcalib domain-sweep`` runs it from the command line (:func:`register`).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..validation import check_bool, check_int, check_nonnegative, check_positive, check_real, check_sequence

__all__ = [
    "DEFAULT_ALPHA_MINUS_BETA",
    "SWEEP_DEFAULTS",
    "SWEEP_METRICS",
    "SweepResult",
    "alpha_beta",
    "spearman",
    "domain_sweep",
    "evaluate_run",
    "random_init_reference",
    "plot_sweep",
    "register",
]

DEFAULT_ALPHA_MINUS_BETA = (-0.5, -0.2, -0.1, 0.0, 0.1, 0.2, 0.5)
# Training settings of the sweep unless overridden (the rest are the dataset's recipe and PretrainConfig's
# defaults): sized so that the default sweep (7 values x 1 seed on clutter_digits) fits in 10 minutes on a
# 2-core CPU.
SWEEP_DEFAULTS: dict[str, Any] = {"epochs": 10, "checkpoint_every": 0}
# (metric key of evaluate_run, label in tables and figures)
SWEEP_METRICS = (("domain_acc", "domain accuracy"), ("linear_acc", "class accuracy"),
                 ("heldout_domain_acc", "held-out-domain class accuracy"))
# Key of each SWEEP_METRICS metric in the reference (the random-init encoder's metrics).
_REFERENCE_KEYS = {"domain_acc": "domain_acc", "linear_acc": "class_acc", "heldout_domain_acc": "heldout_domain_acc"}
# Fields the sweep sets itself; overriding them would break the sweep's meaning.
_RESERVED = ("dataset", "target", "alpha", "beta", "seed", "out_dir", "evaluate", "resume")


def alpha_beta(alpha_minus_beta: float, base: float = 0.0) -> tuple[float, float]:
    """(α, β) for a value d of α − β: ``α = base + max(d, 0)``, ``β = base + max(−d, 0)``.

    The smaller weight is ``base`` (≥ 0), so both are non-negative and ``α − β = d`` exactly.
    """
    d = check_real("alpha_minus_beta", alpha_minus_beta)
    base = check_nonnegative("base", base)
    return base + max(d, 0.0), base + max(-d, 0.0)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: the Pearson correlation of the ranks (ties get their mean rank).

    NaN when either sequence is constant (no ranking to correlate).
    """
    from scipy.stats import rankdata

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"x and y must be 1-d sequences of the same length >= 2, got shapes {x.shape} and {y.shape}")
    rx, ry = rankdata(x) - (len(x) + 1) / 2, rankdata(y) - (len(y) + 1) / 2
    denominator = math.sqrt(float((rx ** 2).sum() * (ry ** 2).sum()))
    return float("nan") if denominator == 0 else float((rx * ry).sum() / denominator)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


@dataclass
class SweepResult:
    """Outcome of :func:`domain_sweep`.

    ``runs``: one dict per (α−β, seed) with ``alpha_minus_beta``, ``alpha``, ``beta``, ``seed``, the
    :data:`SWEEP_METRICS`, ``heldout_domain_acc_per_domain``, ``train_time_s`` and ``reused``.
    ``summary``: one dict per α−β (in sweep order) with ``alpha``, ``beta``, ``n_seeds`` and
    ``<metric>_mean`` / ``<metric>_std`` (sample std over seeds; 0 with one seed).
    ``spearman_domain``: rank correlation of α−β with the mean domain accuracy (NaN if constant);
    ``spearman_heldout``: the same with the mean held-out-domain class accuracy.
    ``class_acc_spread``: max − min of the mean class accuracy over α−β (a fraction, not points).
    ``reference``: the random-init encoder's ``domain_acc``, ``class_acc`` (linear class accuracy),
    ``heldout_domain_acc``, ``heldout_domain_acc_per_domain`` and its ``seed``.
    """

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
        """Plain-text table: one row per α−β, mean ± std over seeds, a ``random-init`` row (the reference),
        then the two acceptance numbers and the rank correlation of α−β with the held-out-domain accuracy."""
        header = ["alpha-beta", "alpha", "beta", "seeds"] + [label for _, label in SWEEP_METRICS]
        cells = [header]
        for row in self.summary:
            cells.append([f"{row['alpha_minus_beta']:+.2f}", f"{row['alpha']:.2f}", f"{row['beta']:.2f}",
                          str(row["n_seeds"])]
                         + [f"{row[key + '_mean']:.3f} ± {row[key + '_std']:.3f}" for key, _ in SWEEP_METRICS])
        cells.append(["random-init", "-", "-", "1"]
                     + [f"{self.reference[_REFERENCE_KEYS[key]]:.3f}" for key, _ in SWEEP_METRICS])
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"Spearman(alpha-beta, domain accuracy) = {self.spearman_domain:.3f}; "
                     f"class accuracy spread (max - min) = {100 * self.class_acc_spread:.1f} points")
        lines.append(f"Spearman(alpha-beta, held-out-domain class accuracy) = {self.spearman_heldout:.3f}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dict of every field (paths as str)."""
        return {"dataset": self.dataset, "base": self.base, "seeds": list(self.seeds), "runs": self.runs,
                "summary": self.summary, "spearman_domain": self.spearman_domain,
                "spearman_heldout": self.spearman_heldout,
                "class_acc_spread": self.class_acc_spread, "reference": self.reference, "config": self.config,
                "total_time_s": self.total_time_s,
                "table": self.table().splitlines(),
                "out_dir": None if self.out_dir is None else str(self.out_dir)}

    def save(self, out_dir: Union[str, Path]) -> dict:
        """Write ``sweep.json``, ``sweep.txt`` and ``sweep.png`` into ``out_dir``; return their paths."""
        import matplotlib.pyplot as plt

        from .trainer import write_json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.out_dir = out
        self.files = {"json": out / "sweep.json", "table": out / "sweep.txt", "figure": out / "sweep.png"}
        (out / "sweep.txt").write_text(self.table() + "\n")
        ax = plot_sweep(self)
        ax.figure.savefig(self.files["figure"], dpi=120, bbox_inches="tight")
        plt.close(ax.figure)
        write_json(self.to_dict(), self.files["json"])
        return dict(self.files)


def plot_sweep(result: SweepResult, ax=None):
    """Domain, class and held-out-domain class accuracy versus α − β: mean over seeds with a ±1 std
    band (the paper's figure), and each metric of the random-init reference as a dashed horizontal line
    of the same colour. Returns the axes."""
    import matplotlib.pyplot as plt

    if not isinstance(result, SweepResult):
        raise TypeError(f"result must be a SweepResult, got {type(result).__name__}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7.6, 3.8))
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


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """``seeds`` as a list of distinct ints >= 0 (a non-empty sequence)."""
    seeds = check_sequence("seeds", seeds, lambda name, seed: check_int(name, seed, 0))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds lists a seed twice: {seeds!r}")
    return seeds


def _run_name(d: float, seed: int) -> str:
    return f"amb{d:+.3f}_seed{seed}"


def _reusable(run_dir: Path, config_dict: dict, probe_Cs: list) -> Optional[dict]:
    """The metrics saved in ``run_dir/sweep_run.json`` by a finished run with this config and probe grid,
    else None (fields of :data:`gcalib.pretrain.config.RESUME_FREE_FIELDS` may differ: they do not change the numbers)."""
    from .config import RESUME_FREE_FIELDS

    try:
        saved = json.loads((run_dir / "sweep_run.json").read_text())
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


def _distinct(ids) -> list[int]:
    """Sorted distinct ids of a tensor, as Python ints."""
    return sorted(set(int(i) for i in ids.tolist()))


def evaluate_run(encoder, train_set, test_set, *, device="cpu", seed: int = 0,
                 probe_Cs: Optional[Sequence[float]] = None) -> dict:
    """Sweep metrics of a frozen encoder (with :mod:`gcalib.pretrain.evaluate`'s probes):
    ``linear_acc`` (class probe), ``domain_acc`` (domain probe), ``heldout_domain_acc`` (mean over test
    domains of the class probe trained on the other domains' train samples, tested on that domain's test
    samples) and ``heldout_domain_acc_per_domain`` (by domain name). ``probe_Cs``: the grid from which
    each probe selects its ``C`` on a held-out part of train (default :data:`gcalib.pretrain.evaluate.DEFAULT_CS`)."""
    from .evaluate import DEFAULT_CS, domain_accuracy, extract_features, heldout_domain_accuracy, linear_probe

    probe = {"seed": seed, "Cs": tuple(DEFAULT_CS if probe_Cs is None else probe_Cs)}

    (xtr, ytr, dtr), (xte, yte, dte) = (extract_features(encoder, s, device=device) for s in (train_set, test_set))
    if dtr is None or dte is None or len(_distinct(dtr)) < 2:
        raise ValueError("the sweep needs a dataset whose train split holds at least two domains")
    names = getattr(test_set, "domain_names", None)
    per_domain = {}
    for d in _distinct(dte):
        name = names[d] if names is not None else str(d)
        per_domain[name] = heldout_domain_accuracy(xtr, ytr, dtr, xte, yte, dte, d, **probe).accuracy
    return {"linear_acc": linear_probe(xtr, ytr, xte, yte, **probe).accuracy,
            "domain_acc": domain_accuracy(xtr, dtr, xte, dte, **probe).accuracy,
            "heldout_domain_acc": float(np.mean(list(per_domain.values()))),
            "heldout_domain_acc_per_domain": per_domain}


def random_init_reference(setup, test_set, seed: int, probe_Cs: Optional[Sequence[float]] = None) -> dict:
    """:func:`evaluate_run` of a randomly initialised encoder of ``setup.config.arch`` (the initial weights of a
    run with ``seed``), on ``setup``'s train split (a :class:`gcalib.pretrain.trainer.PreparedRun`) and ``test_set``:
    ``{"seed", "domain_acc", "class_acc", "heldout_domain_acc", "heldout_domain_acc_per_domain"}``.
    The global RNG state is left unchanged."""
    import torch

    from .models import make_encoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = make_encoder(setup.config.arch, setup.train_set.num_channels).to(setup.device)
    metrics = evaluate_run(encoder, setup.train_set, test_set, device=setup.device, seed=seed, probe_Cs=probe_Cs)
    return {"seed": seed, "domain_acc": metrics["domain_acc"], "class_acc": metrics["linear_acc"],
            "heldout_domain_acc": metrics["heldout_domain_acc"],
            "heldout_domain_acc_per_domain": metrics["heldout_domain_acc_per_domain"]}


def domain_sweep(
    dataset: str = "clutter_digits",
    alpha_minus_beta: Sequence[float] = DEFAULT_ALPHA_MINUS_BETA,
    seeds: Sequence[int] = (0,),
    out_dir: Union[str, Path, None] = None,
    *,
    base: float = 0.0,
    probe_Cs: Optional[Sequence[float]] = None,
    reuse: bool = True,
    verbose: bool = True,
    **overrides: Any,
) -> SweepResult:
    """Pretrain with ``target="domain"`` for every α − β in ``alpha_minus_beta`` and every seed, evaluate
    each encoder, and summarise (see the module docstring).

    ``overrides`` are :class:`gcalib.pretrain.config.PretrainConfig` fields (``epochs``, ``batch_size``, ``loss``,
    ``loss_params``, ``lr``, ``max_train_samples``, ``dataset_options``, ``device``, ``progress``, …) on
    top of :data:`SWEEP_DEFAULTS`; the sweep sets dataset, target, alpha, beta, seed, out_dir, evaluate
    and resume itself. Every configuration is validated (and the data loaded) before the first run starts.
    ``probe_Cs`` is the probes' grid of ``C`` (:func:`evaluate_run`; a shorter grid evaluates faster).

    With ``out_dir``, each run writes its pretrain outputs (``metrics.json``, ``history.json``,
    ``encoder.pt``) and ``sweep_run.json`` (config and sweep metrics) to ``out_dir/amb<α−β>_seed<seed>/``,
    and the sweep writes ``sweep.json``, ``sweep.txt`` and ``sweep.png``; with ``reuse=True`` a run whose
    ``sweep_run.json`` holds the same config is read back instead of retrained.
    """
    from .data import load_dataset
    from .evaluate import DEFAULT_CS
    from .trainer import PretrainConfig, prepare, pretrain, write_json

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
                test_set = load_dataset(dataset, "test", root=config.root, **config.dataset_options)
            prepared[(d, seed)] = config

    start = time.perf_counter()
    runs = []
    for (d, seed), config in prepared.items():
        t0 = time.perf_counter()
        saved = _reusable(Path(config.out_dir), config.to_dict(), probe_Cs) if (reuse and config.out_dir) else None
        if saved is None:
            trained = pretrain(config)
            metrics = {**evaluate_run(trained.encoder, setup.train_set, test_set, device=setup.device, seed=seed,
                                      probe_Cs=probe_Cs),
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
            entry[key + "_mean"], entry[key + "_std"] = _mean_std([r[key] for r in rows])
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


# ---- command line ---------------------------------------------------------------------------------

# argparse reads an option value such as "-0.5,-0.2,0" as an unknown option: its own pattern for
# negative numbers only matches single numbers. The domain-sweep parser gets one that also matches lists.
_NEGATIVE_NUMBERS = re.compile(r"^-\.?\d.*$")


def _floats(text: str) -> list[float]:
    try:
        values = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as -0.5,0,0.5, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as -0.5,0,0.5, got {text!r}")
    return values


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()] if "," in text else list(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count N (seeds 0..N-1) or a comma-separated list such as 0,3,7, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"expected at least one seed, got {text!r}")
    return seeds


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``domain-sweep`` subcommand to ``subparsers``; its handler is ``args.handler(args) -> int``."""
    from .data import DATASETS
    from ..losses.gca import LOSSES
    from .config import PretrainConfig

    defaults = PretrainConfig()
    p = subparsers.add_parser(
        "domain-sweep",
        help="sweep alpha-beta of the domain-aware target plan",
        description="Pretrain with the domain plan T = positives + alpha*[same domain] + beta*[other domain] for "
                    "every alpha-beta (alpha = base + max(d, 0), beta = base + max(-d, 0)) and seed; report domain "
                    "accuracy, class accuracy and held-out-domain class accuracy; write DIR/sweep.json, sweep.txt, "
                    "sweep.png.")
    p.add_argument("--dataset", default="clutter_digits", choices=DATASETS,
                   help="a dataset with domain labels (default %(default)s)")
    p.add_argument("--root", default=None, help="data directory (default: $GCALIB_DATA, else ./data)")
    p.add_argument("--image-size", type=int, default=None,
                   help="image side for folder datasets such as domainfolder (default: the loader's, 224)")
    p.add_argument("--alpha-minus-beta", type=_floats, default=list(DEFAULT_ALPHA_MINUS_BETA),
                   help="comma-separated values of alpha-beta (default "
                        + ",".join(map(str, DEFAULT_ALPHA_MINUS_BETA)) + ")")
    p.add_argument("--base", type=float, default=0.0, help="the smaller of alpha and beta (default %(default)s)")
    p.add_argument("--seeds", type=_seeds, default=[0], help="N for seeds 0..N-1, or a list such as 0,3,7 (default 1)")
    p.add_argument("--loss", default=defaults.loss, choices=LOSSES, help="loss preset (default %(default)s)")
    p.add_argument("--eps", type=float, default=None, help="loss temperature eps (default: the preset's)")
    p.add_argument("--epochs", type=int, default=SWEEP_DEFAULTS["epochs"], help="(default %(default)s)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="(default %(default)s)")
    p.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate (default %(default)s)")
    p.add_argument("--max-train-samples", type=int, default=None, help="pretrain on the first N train samples only")
    p.add_argument("--device", default=defaults.device, help="auto, cpu, cuda, cuda:N (default %(default)s)")
    p.add_argument("--workers", type=int, default=defaults.workers, help="data-loading processes (default %(default)s)")
    p.add_argument("--no-reuse", action="store_true", help="retrain runs whose results are already in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", default="runs/domain-sweep", help="output directory (default %(default)s)")
    p._negative_number_matcher = _NEGATIVE_NUMBERS
    p.set_defaults(handler=functools.partial(_run_cli, parser=p))
    return p


def _run_cli(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Handler of ``domain-sweep``: usage errors exit through ``parser.error`` (code 2)."""
    from .trainer import NonFiniteLossError

    overrides = {"loss": args.loss, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                 "max_train_samples": args.max_train_samples, "device": args.device, "workers": args.workers,
                 "root": args.root, "progress": not args.no_progress}
    if args.image_size is not None:
        overrides["dataset_options"] = {"image_size": args.image_size}
    if args.eps is not None:
        overrides["loss_params"] = {"eps": args.eps}
    try:
        result = domain_sweep(args.dataset, args.alpha_minus_beta, args.seeds, args.out, base=args.base,
                              reuse=not args.no_reuse, **overrides)
    except (ValueError, TypeError, FileNotFoundError) as error:
        parser.error(str(error))
    except NonFiniteLossError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"\n{args.dataset}: {len(args.alpha_minus_beta)} values of alpha-beta x {len(args.seeds)} seed(s), "
          f"{args.epochs} epochs each; total {result.total_time_s:.0f}s\n{result.table()}")
    print(f"wrote {result.files['json']}, {result.files['table']} and {result.files['figure']}")
    return 0
