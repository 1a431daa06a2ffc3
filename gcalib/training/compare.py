"""Compare pretraining methods over seeds with one set of settings: ``compare(config, losses, seeds, out_dir)``.

Every method of ``losses`` (plan-loss presets and ``"byol"``) is pretrained for every seed with the settings of
``config`` (a :class:`gcalib.training.config.PretrainConfig`; its dataset may be a name or a dataset object) and
evaluated; a randomly initialised encoder (one per seed) and the raw pixels are evaluated as reference rows.
The result holds every run's metrics and prints as one table of mean ± sample std over seeds;
:meth:`CompareResult.save` writes ``compare.json`` and ``compare.png``. ``python -m gcalib compare`` runs it
from the command line.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from ..losses.gca import LOSSES
from ..validation import check_choice, check_sequence
from .config import PretrainConfig
from .evaluate import evaluate_encoder
from .experiment import ExperimentResult, check_seeds
from .figures import can_draw, method_bars
from .models import make_encoder
from .tables import mean_std_text, text_table
from .trainer import PreparedRun, load_test_set, prepare, pretrain

__all__ = ["DEFAULT_COMPARE_LOSSES", "TABLE_METRICS", "CompareResult", "compare", "format_table", "method_names"]

DEFAULT_COMPARE_LOSSES = ("infonce", "gca_ince", "gca_rince", "gca_uot", "byol")
TABLE_METRICS = (("linear_acc", "linear"), ("knn_acc_k20", "kNN k=20"), ("knn_acc_k200", "kNN k=200"),
                 ("alignment", "alignment"), ("uniformity", "uniformity"), ("domain_acc", "domain"),
                 ("heldout_domain_acc", "held-out dom."), ("epoch_time_s", "s/epoch"))


def method_names() -> tuple[str, ...]:
    """The methods :func:`compare` and :func:`gcalib.training.trainer.pretrain` train.

    Returns
    -------
    tuple of str
        The plan-loss presets of :data:`gcalib.losses.gca.LOSSES`, then ``"byol"``.

    Examples
    --------
    >>> method_names()[0], method_names()[-1]
    ('infonce', 'byol')
    """
    return tuple(LOSSES) + ("byol",)


def _present_metrics(runs: dict[str, list[dict]]) -> list[tuple[str, str]]:
    """The :data:`TABLE_METRICS` that some run reports."""
    return [(key, label) for key, label in TABLE_METRICS if any(key in m for ms in runs.values() for m in ms)]


def format_table(runs: dict[str, list[dict]]) -> str:
    """A table of methods × metrics, each cell the mean ± sample std over seeds.

    Cells are :func:`gcalib.training.tables.mean_std_text` of the seeds' values.

    Parameters
    ----------
    runs : dict of str to list of dict
        Method name → one metrics dict per seed; the columns are the :data:`TABLE_METRICS` that any run
        reports, in that order.

    Returns
    -------
    str
        A left-aligned plain-text table with the columns ``method`` and ``seeds`` first.

    Examples
    --------
    >>> table = format_table({"infonce": [{"linear_acc": 0.5}, {"linear_acc": 0.7}]})
    >>> table.splitlines()[2]
    'infonce  2      0.600 ± 0.141'
    """
    columns = _present_metrics(runs)
    rows = [["method", "seeds"] + [label for _, label in columns]]
    for name, metrics in runs.items():
        rows.append([name, str(len(metrics))] + [mean_std_text([m.get(k) for m in metrics]) for k, _ in columns])
    return text_table(rows, align="left")


@dataclass
class CompareResult(ExperimentResult):
    """Outcome of :func:`compare`; :meth:`save` writes ``compare.json`` and ``compare.png``.

    Parameters
    ----------
    dataset : str
        The dataset's name, or the :func:`gcalib.training.config.describe_dataset` string of a dataset object.
    losses : list of str
        The methods compared, in order.
    seeds : list of int
        The seeds every method was trained with.
    runs : dict of str to list of dict
        Method name → one metrics dict per seed (in seed order), then the reference rows ``"random-init"``
        (one per seed) and ``"raw-pixels"`` (one).
    config : dict of str to dict
        Each method's config (of the first seed) as a dict.
    total_time_s : float
        Wall time of the training and evaluation, in seconds.
    out_dir : pathlib.Path or None, default None
        Where the result was saved.
    files : dict, default {}
        ``"json"`` and ``"figure"`` → the files :meth:`save` wrote.
    """

    JSON_NAME = "compare.json"
    JSON_KEYS = ("dataset", "losses", "seeds", "total_time_s", "table", "runs", "config")

    dataset: str
    losses: list
    seeds: list
    runs: dict
    config: dict
    total_time_s: float
    out_dir: Optional[Path] = None
    files: dict = field(default_factory=dict)

    def table(self) -> str:
        """:func:`format_table` of :attr:`runs`.

        Returns
        -------
        str
        """
        return format_table(self.runs)

    def _write_extra_files(self, out: Path) -> dict[str, Path]:
        figure = out / "compare.png"
        return {"figure": method_bars(self.runs, _present_metrics(self.runs), figure)} if can_draw(figure) else {}


def _reference_rows(run: PreparedRun, seeds: Sequence[int]) -> dict[str, list[dict]]:
    """Metrics of a randomly initialised encoder for every seed, and of the raw pixels (deterministic
    features, evaluated once with the first seed's augmentation draws for the alignment)."""
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
    """Pretrain every method of ``losses`` for every seed with the settings of ``config``, and evaluate them
    beside the reference rows (see the module docstring).

    Each run gets ``checkpoint_every=0``; ``config``'s ``loss_params`` apply to the plan losses (``byol``, which
    has no plan loss, runs without them). Every run is prepared (and its data checked) before the first one
    trains.

    Parameters
    ----------
    config : PretrainConfig
        Every setting but the method and the seed (runs always evaluate). With a dataset object,
        ``config.test_dataset`` is the evaluation split.
    losses : sequence of str, default :data:`DEFAULT_COMPARE_LOSSES`
        Distinct names of :func:`method_names`.
    seeds : sequence of int, default (0, 1)
        Distinct seeds >= 0.
    out_dir : str, os.PathLike or None, default None
        With a directory, each run writes its pretrain outputs to ``out_dir/<method>/seed<seed>/`` and the
        comparison writes ``compare.json`` and ``compare.png`` there.
    verbose : bool, default True
        Print a line per finished run.

    Returns
    -------
    CompareResult

    Raises
    ------
    TypeError
        When ``config`` is not a :class:`PretrainConfig`, or ``losses``/``seeds`` hold values of the wrong type.
    ValueError
        For unknown or repeated methods or seeds, and every problem :func:`gcalib.training.trainer.prepare`
        finds (data, batch size, output directory).
    """
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
