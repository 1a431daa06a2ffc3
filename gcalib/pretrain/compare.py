"""Compare pretraining methods over seeds with one set of settings: ``compare(config, losses, seeds, out_dir)``.

Every method of ``losses`` (plan-loss presets and ``"byol"``) is pretrained for every seed with the settings of
``config`` (a :class:`gcalib.pretrain.config.PretrainConfig`; its dataset may be a name or a dataset object) and
evaluated; a randomly initialised encoder (one per seed) and the raw pixels are evaluated as reference rows.
The result holds every run's metrics and prints as one table of mean ± sample std over seeds;
:meth:`CompareResult.save` writes ``compare.json`` and ``compare.png``. ``python -m gcalib compare`` runs it
from the command line.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

from .config import PretrainConfig
from ..validation import check_choice, check_sequence

__all__ = ["DEFAULT_COMPARE_LOSSES", "TABLE_METRICS", "CompareResult", "compare", "format_table", "mean_std_text",
           "method_names"]

DEFAULT_COMPARE_LOSSES = ("infonce", "gca_ince", "gca_rince", "gca_uot", "byol")
TABLE_METRICS = (("linear_acc", "linear"), ("knn_acc_k20", "kNN k=20"), ("knn_acc_k200", "kNN k=200"),
                 ("alignment", "alignment"), ("uniformity", "uniformity"), ("domain_acc", "domain"),
                 ("heldout_domain_acc", "held-out dom."), ("epoch_time_s", "s/epoch"))


def method_names() -> tuple[str, ...]:
    """The plan-loss presets of :data:`gcalib.losses.gca.LOSSES` and ``"byol"``."""
    from ..losses.gca import LOSSES

    return tuple(LOSSES) + ("byol",)


def mean_std_text(values: Sequence[Optional[float]]) -> str:
    """``"mean ± sample std"`` of the values that are not None or NaN (3 decimals; the mean alone for one
    value, ``"-"`` for none)."""
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.3f}"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.3f} ± {std:.3f}"


def format_table(runs: dict[str, list[dict]]) -> str:
    """Rows: methods; columns: the metrics present in any run, as mean ± std (sample std) over seeds."""
    columns = [(key, label) for key, label in TABLE_METRICS if any(key in m for ms in runs.values() for m in ms)]
    cells = [["method", "seeds"] + [label for _, label in columns]]
    for name, metrics in runs.items():
        cells.append([name, str(len(metrics))] + [mean_std_text([m.get(k) for m in metrics]) for k, _ in columns])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _compare_figure(runs: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    keys = [(k, label) for k, label in TABLE_METRICS if any(k in m for ms in runs.values() for m in ms)]
    rows = [{"method": name, "metric": label, "value": m[k]}
            for name, ms in runs.items() for m in ms for k, label in keys if m.get(k) is not None]
    frame = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.0 * len(keys), 3.6), squeeze=False)
    for ax, (key, label) in zip(axes[0], keys):
        panel = frame[frame.metric == label]
        sns.barplot(data=panel, x="method", y="value", hue="method", errorbar="sd", ax=ax, legend=False)
        if key.endswith("acc") or "_acc_" in key:  # zoom accuracies in on the range the methods span
            ax.set_ylim(max(0.0, panel.value.min() - 0.03), min(1.0, panel.value.max() + 0.01))
        ax.set_title(label)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(axis="x", rotation=60)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@dataclass
class CompareResult:
    """Outcome of :func:`compare`.

    ``runs``: method name → one metrics dict per seed (in seed order), then the reference rows
    ``"random-init"`` (one per seed) and ``"raw-pixels"`` (one); ``config``: each method's config (of the
    first seed) as a dict; ``dataset``: the dataset's name or :func:`gcalib.pretrain.config.describe_dataset` string.
    """

    dataset: str
    losses: list
    seeds: list
    runs: dict
    config: dict
    total_time_s: float
    out_dir: Optional[Path] = None
    files: dict = field(default_factory=dict)

    def table(self) -> str:
        """:func:`format_table` of ``runs``."""
        return format_table(self.runs)

    def to_dict(self) -> dict:
        """JSON-ready dict: dataset, losses, seeds, total_time_s, table (lines), runs, config."""
        return {"dataset": self.dataset, "losses": list(self.losses), "seeds": list(self.seeds),
                "total_time_s": self.total_time_s, "table": self.table().splitlines(), "runs": self.runs,
                "config": self.config}

    def save(self, out_dir: Union[str, Path]) -> dict:
        """Write ``compare.json`` and ``compare.png`` into ``out_dir``; return their paths."""
        from .trainer import write_json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.out_dir = out
        self.files = {"json": out / "compare.json", "figure": out / "compare.png"}
        write_json(self.to_dict(), self.files["json"])
        _compare_figure(self.runs, self.files["figure"])
        return dict(self.files)


def _reference_rows(run, seeds: Sequence[int]) -> dict[str, list[dict]]:
    """Metrics of a randomly initialised encoder for every seed, and of the raw pixels (deterministic
    features, evaluated once with the first seed's augmentation draws for the alignment)."""
    import torch

    from .evaluate import evaluate_encoder
    from .models import make_encoder
    from .trainer import load_test_set

    config = run.config
    test_set = load_test_set(config)

    def evaluate(encoder, seed):
        return evaluate_encoder(encoder, run.train_set, test_set, view_transform=run.view_transform,
                                device=run.device, seed=seed, workers=config.workers,
                                rendered=config.views == "rendered")

    random_init = []
    for seed in seeds:
        torch.manual_seed(seed)
        random_init.append(evaluate(make_encoder(config.arch, run.train_set.num_channels).to(run.device), seed))
    return {"random-init": random_init, "raw-pixels": [evaluate(torch.nn.Flatten(), seeds[0])]}


def _check_losses(losses: Sequence[str]) -> list[str]:
    names = check_sequence("losses", losses, lambda name, value: check_choice(name, value, method_names()))
    if len(set(names)) != len(names):
        raise ValueError(f"losses lists a method twice: {names!r}")
    return names


def compare(config: PretrainConfig, losses: Sequence[str] = DEFAULT_COMPARE_LOSSES, seeds: Sequence[int] = (0, 1),
            out_dir: Union[str, Path, None] = None, *, verbose: bool = True) -> CompareResult:
    """Pretrain every method of ``losses`` for every seed of ``seeds`` with the settings of ``config`` and
    evaluate them beside the reference rows (see the module docstring).

    ``config`` gives everything but the method and the seed (runs always evaluate); its ``loss_params`` apply
    to the plan losses (``byol``, which has no plan loss, runs without them). With a dataset object,
    ``config.test_dataset`` is the evaluation split. Each run gets ``checkpoint_every=0`` and, with ``out_dir``, writes its
    pretrain outputs to ``out_dir/<method>/seed<seed>/``; the comparison then writes ``compare.json`` and
    ``compare.png`` there. Every run is prepared (and its data checked) before the first one trains.
    """
    from .sweep import check_seeds
    from .trainer import prepare, pretrain

    if not isinstance(config, PretrainConfig):
        raise TypeError(f"config must be a PretrainConfig, got {type(config).__name__}")
    losses, seeds = _check_losses(losses), check_seeds(seeds)
    out = None if out_dir is None else Path(out_dir)
    runs = {}
    for loss in losses:
        for seed in seeds:
            base = next(iter(runs.values())).config if runs else config
            run_dir = None if out is None else str(out / loss / f"seed{seed}")
            runs[(loss, seed)] = prepare(dataclasses.replace(
                base, loss=loss, seed=seed, out_dir=run_dir, checkpoint_every=0, resume=False, evaluate=True,
                loss_params={} if loss == "byol" else config.loss_params))
    start = time.perf_counter()
    results: dict[str, list[dict]] = {loss: [] for loss in losses}
    for (loss, seed), run in runs.items():
        t0 = time.perf_counter()
        metrics = pretrain(run).metrics
        results[loss].append(metrics)
        if verbose:
            print(f"[{time.perf_counter() - start:6.0f}s] {loss} seed {seed}: linear {metrics['linear_acc']:.3f}, "
                  f"kNN {metrics['knn_acc']:.3f} ({time.perf_counter() - t0:.0f}s)", flush=True)
    first = next(iter(runs.values()))
    result = CompareResult(
        dataset=first.config.to_dict()["dataset"], losses=losses, seeds=seeds,
        runs={**results, **_reference_rows(first, seeds)},
        config={loss: runs[(loss, seeds[0])].config.to_dict() for loss in losses},
        total_time_s=time.perf_counter() - start)
    if out is not None:
        result.save(out)
    return result
