"""Saved results read back: a robustness grid (:func:`gcalib.training.robustness.robustness`) as each
method's mean ± std against a baseline, read against the seed-to-seed spread.
:func:`gcalib.notebook.figures.plot_robustness_grid` draws a grid; a saved ``sweep.json`` is read back with
:meth:`gcalib.training.sweep.SweepResult.load`."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

__all__ = ["versus_baseline"]


def _grid_runs(grid: Mapping) -> Mapping:
    """The ``runs`` mapping ``{setting: {method: [metrics per seed]}}`` of a robustness grid."""
    runs = grid.get("runs") if isinstance(grid, Mapping) else None
    if not isinstance(runs, Mapping) or not runs:
        raise ValueError("grid must be a robustness grid with a non-empty 'runs' mapping {setting: {method: [metrics]}}")
    return runs


def _settings(runs: Mapping, settings: Optional[Sequence[str]]) -> list[str]:
    """The settings of ``settings`` present in ``runs``, in that order (default: all, in grid order)."""
    return list(runs) if settings is None else [name for name in settings if name in runs]


def _finite_values(metrics: Sequence[Mapping], metric: str) -> list[float]:
    """The finite values of ``metric`` over the seeds' metrics (missing and NaN values left out)."""
    values = [m.get(metric) for m in metrics]
    return [float(v) for v in values if v is not None and np.isfinite(float(v))]


def versus_baseline(grid: Mapping, baseline: str = "infonce", metric: str = "linear_acc", *,
                    settings: Optional[Sequence[str]] = None):
    """Each method of a robustness grid against a baseline, read against the seed-to-seed spread.

    For each (setting, method): ``seeds``, ``mean`` and ``std`` (sample std) of ``metric``; against
    ``baseline``'s runs in the same setting, ``minus baseline`` (difference of the means) and ``spread``
    (``√((std² + std_baseline²)/2)``). ``reading`` is ``"within seed spread"`` when
    ``|minus baseline| <= spread``, else ``"above"``/``"below"``, and ``"-"`` for the baseline itself and
    where a std is missing (one seed).

    Parameters
    ----------
    grid : mapping
        ``{"runs": {setting: {method: [metrics per seed]}}}``, as written by
        :func:`gcalib.training.robustness.robustness`.
    baseline : str
        The method compared against.
    metric : str
        The key of each seed's metrics.
    settings : sequence of str, optional
        The settings to show, those present in the grid (default: all).

    Returns
    -------
    pandas.DataFrame
        Indexed by (setting, method); columns ``seeds``, ``mean``, ``std``, ``minus baseline``, ``spread``,
        ``reading``.

    Raises
    ------
    ValueError
        If ``grid`` has no non-empty ``runs`` mapping.
    """
    import pandas as pd

    runs = _grid_runs(grid)
    rows = []
    for name in _settings(runs, settings):
        base = _finite_values(runs[name].get(baseline, []), metric)
        base_mean = float(np.mean(base)) if base else float("nan")
        base_std = float(np.std(base, ddof=1)) if len(base) > 1 else float("nan")
        for method, metrics in runs[name].items():
            values = _finite_values(metrics, metric)
            if not values:
                continue
            mean = float(np.mean(values))
            std = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
            diff = mean - base_mean if method != baseline else float("nan")
            spread = float(np.sqrt((std ** 2 + base_std ** 2) / 2))
            if method == baseline or not np.isfinite(diff) or not np.isfinite(spread):
                reading = "-"
            elif abs(diff) <= spread:
                reading = "within seed spread"
            else:
                reading = "above" if diff > 0 else "below"
            rows.append({"setting": name, "method": method, "seeds": len(values), "mean": mean, "std": std,
                         "minus baseline": diff, "spread": spread if method != baseline else float("nan"),
                         "reading": reading})
    columns = ["setting", "method", "seeds", "mean", "std", "minus baseline", "spread", "reading"]
    return pd.DataFrame(rows, columns=columns).set_index(["setting", "method"])
