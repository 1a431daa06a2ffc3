"""Every method under broken positives and extreme views: one :func:`gcalib.pretrain.compare.compare` per setting.

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

from .compare import DEFAULT_COMPARE_LOSSES, compare, mean_std_text
from .config import PretrainConfig
from .trainer import write_json

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
    if json.loads((where / "setting.json").read_text()) != json.loads(json.dumps(record, default=str)):
        return None
    return json.loads((where / "compare.json").read_text())


def robustness(
    config: PretrainConfig,
    settings: Optional[Mapping[str, Mapping[str, Any]]] = None,
    losses: Sequence[str] = DEFAULT_COMPARE_LOSSES,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: Union[str, Path, None] = None,
    *,
    verbose: bool = True,
) -> dict:
    """Compare ``losses`` over ``seeds`` with ``config`` changed by each setting (default
    :data:`ROBUSTNESS_SETTINGS`; a setting maps :class:`gcalib.pretrain.config.PretrainConfig` fields to values).

    Returns ``{"dataset", "losses", "seeds", "settings": {name: fields}, "runs": {name: {method: [metrics per
    seed]}}}``, the reference rows ``random-init`` and ``raw-pixels`` included.

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
    """A grid written by :func:`robustness` (``robustness.json``)."""
    return json.loads(Path(path).read_text())


def robustness_table(grid: Mapping[str, Any], metric: str = "linear_acc") -> str:
    """Markdown table of ``metric``: one row per method (reference rows last), one column per setting,
    mean ± sample std over seeds."""
    names = list(grid["runs"])
    methods = list(dict.fromkeys(m for runs in grid["runs"].values() for m in runs))
    lines = ["| method | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for method in methods:
        cells = [mean_std_text([m.get(metric) for m in grid["runs"][name].get(method, [])]) for name in names]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
