"""Every method under broken positives and extreme views: one :func:`gcalib.training.compare.compare` per setting.

``robustness(config, settings, losses, seeds, out_dir)`` runs the comparison once for each named setting of
:data:`ROBUSTNESS_SETTINGS` (``PretrainConfig`` fields replacing those of ``config``): ``config`` as it is,
``corrupt_pairs`` 0.2 and 0.4 (that fraction of positive pairs joins two different handwriting samples),
and the three extreme views ``large_erase``, ``strong_crop`` and ``brightness``. With ``out_dir`` each
setting writes its comparison and ``setting.json`` (configuration, methods, seeds) to ``out_dir/<setting>/``
and the whole grid to ``out_dir/robustness.json``; a setting whose ``setting.json`` matches is read back
instead of retrained, so an interrupted grid continues where it stopped. :func:`robustness_table` prints one metric as a table of
methods × settings (mean ± sample std over seeds). ``python -m gcalib robustness`` runs it from the shell.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from .compare import DEFAULT_COMPARE_LOSSES, compare
from .config import PretrainConfig
from .run_files import read_json, write_json
from .tables import markdown_table, mean_std_text

__all__ = ["ROBUSTNESS_SETTINGS", "robustness", "robustness_table", "load_robustness"]

ROBUSTNESS_SETTINGS: dict[str, dict[str, Any]] = {
    "clean": {},
    "corrupt_0.2": {"corrupt_pairs": 0.2},
    "corrupt_0.4": {"corrupt_pairs": 0.4},
    "large_erase": {"augmentation": "large_erase"},
    "strong_crop": {"augmentation": "strong_crop"},
    "brightness": {"augmentation": "brightness"},
}


def _saved(where: Path, record: dict) -> Optional[dict]:
    """The comparison saved in ``where`` if its ``setting.json`` equals ``record`` (config, losses, seeds)."""
    if not (where / "setting.json").is_file() or not (where / "compare.json").is_file():
        return None
    if read_json(where / "setting.json") != json.loads(json.dumps(record, default=str)):
        return None
    return read_json(where / "compare.json")


def robustness(
    config: PretrainConfig,
    settings: Optional[Mapping[str, Mapping[str, Any]]] = None,
    losses: Sequence[str] = DEFAULT_COMPARE_LOSSES,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: Union[str, Path, None] = None,
    *,
    verbose: bool = True,
) -> dict:
    """Compare ``losses`` over ``seeds`` with ``config`` changed by each setting (see the module docstring).

    Parameters
    ----------
    config : PretrainConfig
        The settings every comparison starts from.
    settings : dict of str to dict, optional
        Setting name → :class:`gcalib.training.config.PretrainConfig` fields to replace; default
        :data:`ROBUSTNESS_SETTINGS`.
    losses : sequence of str, default :data:`gcalib.training.compare.DEFAULT_COMPARE_LOSSES`
        The methods (:func:`gcalib.training.compare.method_names`).
    seeds : sequence of int, default (0, 1, 2)
        Distinct seeds >= 0.
    out_dir : str, os.PathLike or None, default None
        Where each setting's comparison, ``setting.json`` and the grid's ``robustness.json`` go; settings
        already saved there with the same configuration are read back.
    verbose : bool, default True
        Print a line per setting and per run.

    Returns
    -------
    dict
        ``{"dataset", "losses", "seeds", "settings": {name: fields}, "runs": {name: {method: [metrics per
        seed]}}}``, the reference rows ``random-init`` and ``raw-pixels`` included.

    Raises
    ------
    TypeError
        When ``config`` is not a :class:`PretrainConfig`.
    ValueError
        When ``settings`` is empty, and for every problem :func:`gcalib.training.compare.compare` finds.

    Examples
    --------
    >>> sorted(ROBUSTNESS_SETTINGS["corrupt_0.4"].items())
    [('corrupt_pairs', 0.4)]
    """
    if not isinstance(config, PretrainConfig):
        raise TypeError(f"config must be a PretrainConfig, got {type(config).__name__}")
    settings = dict(ROBUSTNESS_SETTINGS if settings is None else settings)
    if not settings:
        raise ValueError("settings must name at least one setting, got none")
    losses, seeds = list(losses), list(seeds)
    out = None if out_dir is None else Path(out_dir)
    grid = {"dataset": config.to_dict()["dataset"], "losses": losses, "seeds": seeds,
            "settings": {name: dict(fields) for name, fields in settings.items()}, "runs": {}}
    for name, fields in settings.items():
        setting = dataclasses.replace(config, **fields)
        where = None if out is None else out / name
        record = {"config": setting.to_dict(), "losses": losses, "seeds": seeds}
        saved = None if where is None else _saved(where, record)
        if saved is None:
            if verbose:
                print(f"== {name}: {dict(fields) or 'as configured'}", flush=True)
            saved = compare(setting, losses, seeds, where, verbose=verbose).to_dict()
            if where is not None:
                write_json(record, where / "setting.json")
        elif verbose:
            print(f"== {name}: read back from {where / 'compare.json'}", flush=True)
        grid["runs"][name] = saved["runs"]
        if out is not None:
            write_json(grid, out / "robustness.json")
    return grid


def load_robustness(path: Union[str, Path]) -> dict:
    """A grid written by :func:`robustness` (its ``robustness.json``).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict
        The grid, as :func:`robustness` returns it.

    Raises
    ------
    ValueError
        When the file is not JSON or not such a grid (it lacks ``settings`` or ``runs``).
    OSError
        When the file cannot be read.
    """
    grid = read_json(path)
    missing = [key for key in ("settings", "runs") if not isinstance(grid, dict) or key not in grid]
    if missing:
        raise ValueError(f"{path} is not a robustness.json written by gcalib.training.robustness.robustness: "
                         f"it lacks {missing}")
    return grid


def robustness_table(grid: Mapping[str, Any], metric: str = "linear_acc") -> str:
    """A Markdown table of ``metric``: one row per method (reference rows last), one column per setting.

    Parameters
    ----------
    grid : dict
        A grid of :func:`robustness` or :func:`load_robustness`.
    metric : str, default "linear_acc"
        A key of the runs' metrics.

    Returns
    -------
    str
        Each cell the mean ± sample std over seeds (:func:`gcalib.training.tables.mean_std_text`); ``-`` where
        a method did not run in a setting.
    """
    names = list(grid["runs"])
    methods = list(dict.fromkeys(m for runs in grid["runs"].values() for m in runs))
    rows = [[method] + [mean_std_text([m.get(metric) for m in grid["runs"][name].get(method, [])]) for name in names]
            for method in methods]
    return markdown_table(["method", *names], rows)
