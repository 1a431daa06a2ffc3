"""Figures a run writes beside its numbers: training curves (``curves.png``) and method bars (``compare.png``).

matplotlib is imported only when a figure is drawn (:func:`pyplot`), so that training and evaluation
work without it; it comes with ``pip install 'gcalib[notebooks]'``.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

from .run_files import PathLike
from .tables import mean_std

__all__ = ["can_draw", "method_bars", "pyplot", "training_curves"]


def pyplot(headless: bool = False) -> Any:
    """``matplotlib.pyplot``, imported on first use.

    Parameters
    ----------
    headless : bool, default False
        Switch matplotlib to the non-interactive ``Agg`` backend first (for figures written to files).

    Returns
    -------
    module
        ``matplotlib.pyplot``.

    Raises
    ------
    ImportError
        When matplotlib is not installed; the message says how to install it.
    """
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError("gcalib draws its figures with matplotlib, which is not installed: "
                          "pip install 'gcalib[notebooks]' (or pip install matplotlib)") from error
    if headless:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def can_draw(path: PathLike) -> bool:
    """Whether matplotlib is installed to draw the figure ``path``; when it is not, warn that ``path`` is
    skipped and how to get it, so that a run without the ``notebooks`` extra still writes its numbers.

    Parameters
    ----------
    path : str or os.PathLike
        The image file a caller is about to write.

    Returns
    -------
    bool
        True when matplotlib can be imported.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        warnings.warn(f"matplotlib is not installed, so {path} is not drawn (the numbers are written as usual); "
                      "pip install 'gcalib[notebooks]' (or pip install matplotlib) to get the figures",
                      stacklevel=2)
        return False
    return True


def training_curves(history: Sequence[Mapping[str, float]], path: PathLike) -> Path:
    """Write the training loss, learning rate and throughput per epoch side by side as an image.

    Parameters
    ----------
    history : sequence of dict
        One dict per epoch with ``epoch``, ``loss``, ``lr`` and ``images_per_s``
        (:attr:`gcalib.training.trainer.PretrainResult.history`).
    path : str or os.PathLike
        The image file (its suffix picks the format, e.g. ``curves.png``).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ImportError
        When matplotlib is not installed.
    """
    plt = pyplot(headless=True)
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, key, label in zip(axes, ("loss", "lr", "images_per_s"), ("training loss", "learning rate", "images / s")):
        ax.plot(epochs, [h[key] for h in history], marker="o")
        ax.set_xlabel("epoch")
        ax.set_title(label)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def _is_accuracy(key: str) -> bool:
    return key.endswith("acc") or "_acc_" in key


def method_bars(runs: Mapping[str, Sequence[Mapping[str, Any]]], metrics: Sequence[tuple[str, str]],
                path: PathLike) -> Path:
    """Write one panel per metric, one bar per method: the mean over seeds with a ±1 sample std error bar.

    Accuracy panels are zoomed in on the range the methods span.

    Parameters
    ----------
    runs : dict of str to list of dict
        Method name → one metrics dict per seed (:attr:`gcalib.training.compare.CompareResult.runs`).
    metrics : sequence of (str, str)
        ``(metric key, panel title)`` of the panels, in order; values that are None or NaN are left out,
        and a method without any value of a metric has no bar in its panel.
    path : str or os.PathLike
        The image file (e.g. ``compare.png``).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ImportError
        When matplotlib is not installed.
    """
    plt = pyplot(headless=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics), 3.6), squeeze=False)
    for ax, (key, label) in zip(axes[0], metrics):
        names, means, stds, values = [], [], [], []
        for name, seeds in runs.items():
            found = [m[key] for m in seeds if m.get(key) is not None and not math.isnan(m[key])]
            if found:
                mean, std = mean_std(found)
                names.append(name)
                means.append(mean)
                stds.append(std)
                values += found
        positions = range(len(names))
        ax.bar(positions, means, yerr=stds, capsize=3, color=[colours[i % len(colours)] for i in positions])
        ax.set_xticks(list(positions), names, rotation=60)
        if _is_accuracy(key) and values:
            ax.set_ylim(max(0.0, min(values) - 0.03), min(1.0, max(values) + 0.01))
        ax.set_title(label)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
