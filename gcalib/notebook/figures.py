"""Static figures of the notebook series: plans, transport lines, curves, bars, embeddings, robustness grids,
target plans, and pictures (image grids, views of a batch, domains, renderings).

Every ``plot_*`` function that draws one panel draws on ``ax`` (a new figure when ``ax`` is None) and returns
the axes it drew on; those that draw several panels return their figure. Notebooks stay one call per figure
and tests read the artists back. Tensors may live on any device and may require grad; they are detached and
copied to the CPU. Each loss keeps one colour in every figure (:data:`LOSS_COLORS`).
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence, Union

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..training.tables import mean_std
from ..validation import check_choice, check_int, check_positive
from .dataset_views import ViewPairs, _in_memory, _index, domain_examples
from .saved_results import _finite_values, _grid_runs, _settings
from .target_design import target_mass

__all__ = [
    "LOSS_COLORS",
    "loss_color",
    "to_numpy",
    "plot_plan",
    "plot_plans",
    "plot_transport",
    "plot_curves",
    "plot_bars",
    "plot_mass",
    "plot_embedding",
    "plot_alignment_uniformity",
    "plot_robustness_grid",
    "plot_target",
    "plot_image_grid",
    "plot_view_pairs",
    "plot_domains",
    "plot_renderings",
]

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence[float]]

# One colour per loss preset (and baseline), used by every figure that shows several losses, so a colour
# keeps its meaning across figures and notebooks. ``hs_ince`` is an alias of ``infonce``.
LOSS_COLORS: dict[str, str] = {
    "infonce": "tab:blue",
    "hs_ince": "tab:blue",
    "gca_ince": "tab:orange",
    "rince": "tab:green",
    "gca_rince": "tab:red",
    "gca_uot": "tab:purple",
    "iot": "tab:brown",
    "iot_uni": "tab:pink",
    "byol": "tab:gray",
}


def loss_color(name: str) -> str:
    """The colour of a loss in every figure of the series.

    Parameters
    ----------
    name : str
        A loss preset or ``"byol"``.

    Returns
    -------
    str
        Its matplotlib colour in :data:`LOSS_COLORS`.

    Raises
    ------
    ValueError
        If ``name`` has no colour.
    """
    return LOSS_COLORS[check_choice("loss", name, tuple(LOSS_COLORS))]


def to_numpy(value: ArrayLike, name: str = "value") -> np.ndarray:
    """A float64 NumPy array from a tensor (any device; detached, copied to the CPU), array or sequence.

    Parameters
    ----------
    value : torch.Tensor, numpy.ndarray or sequence of float
        The numbers.
    name : str
        The argument's name in the error message.

    Returns
    -------
    numpy.ndarray
        A float64 copy (or view) of ``value``.

    Raises
    ------
    TypeError
        If ``value`` does not hold numbers.
    """
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu", torch.float64).numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a tensor, array or sequence of numbers, got {type(value).__name__}") from error
    return array


def _matrix(value: ArrayLike, name: str) -> np.ndarray:
    array = to_numpy(value, name)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a matrix (n, m), got shape {array.shape}")
    return array


def _axes(ax: Optional[Axes], figsize: tuple[float, float]) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    elif not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax


# ----------------------------------------------------------------------------------------- plans and transport

def plot_plan(
    plan: ArrayLike,
    ax: Optional[Axes] = None,
    *,
    title: Optional[str] = None,
    n_views: Optional[int] = None,
    vmax: Optional[float] = None,
    cmap: Optional[str] = None,
    colorbar: bool = True,
    signed: bool = False,
) -> Axes:
    """Heatmap of an (n, m) plan, row ``i`` top to bottom, column ``j`` left to right.

    Parameters
    ----------
    plan : array-like
        The (n, m) plan.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    title : str, optional
        Title of the axes.
    n_views : int, optional
        Draws the view blocks of the blocked layout (lines every ``n / n_views`` rows and columns).
    vmax : float, optional
        Top of the colour scale (default: the largest entry; ``max |entry|`` when ``signed``).
    cmap : str, optional
        Colour map (default ``"viridis"``, ``"RdBu_r"`` when ``signed``).
    colorbar : bool
        Draw a colour bar.
    signed : bool
        Draw a difference of plans: a diverging map on ``[−vmax, vmax]`` instead of ``[0, vmax]``.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Raises
    ------
    ValueError
        If ``plan`` is not a matrix or does not split into ``n_views`` blocks.
    TypeError
        If ``ax`` is not an Axes.
    """
    array = _matrix(plan, "plan")
    ax = _axes(ax, (4.2, 3.6))
    if signed:
        top = float(np.abs(array).max()) if vmax is None else vmax
        limits, cmap = (-top, top), cmap or "RdBu_r"
    else:
        limits, cmap = (0.0, vmax), cmap or "viridis"
    image = ax.imshow(array, cmap=cmap, vmin=limits[0], vmax=limits[1], interpolation="nearest", aspect="equal")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if n_views is not None:
        check_int("n_views", n_views, 1)
        if array.shape[0] % n_views or array.shape[1] % n_views:
            raise ValueError(f"plan shape {array.shape} is not divisible into n_views={n_views} blocks")
        for k in range(1, n_views):
            ax.axhline(k * array.shape[0] / n_views - 0.5, color="white", linewidth=0.8)
            ax.axvline(k * array.shape[1] / n_views - 0.5, color="white", linewidth=0.8)
    ax.set_xlabel("column j (receives)")
    ax.set_ylabel("row i (sends)")
    if title is not None:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return ax


def plot_plans(
    plans: Mapping[str, ArrayLike],
    *,
    ncols: Optional[int] = None,
    n_views: Optional[int] = None,
    shared_scale: bool = False,
    signed: bool = False,
    panel_size: float = 3.2,
) -> Figure:
    """Several plans side by side, one titled :func:`plot_plan` panel each.

    Parameters
    ----------
    plans : mapping of str to array-like
        Title → plan.
    ncols : int, optional
        Panels per row (default: all in one row).
    n_views : int, optional
        Draws the view blocks (see :func:`plot_plan`).
    shared_scale : bool
        One colour scale (and colour bar) for all panels.
    signed : bool
        Draw differences of plans (see :func:`plot_plan`).
    panel_size : float
        Size of a panel in inches.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ValueError
        If ``plans`` is empty or holds something other than matrices.
    """
    if not isinstance(plans, Mapping) or not plans:
        raise ValueError("plans must be a non-empty mapping {title: plan}")
    arrays = {title: _matrix(plan, f"plans[{title!r}]") for title, plan in plans.items()}
    ncols = ncols or len(arrays)
    nrows = math.ceil(len(arrays) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols + 0.6, panel_size * nrows), squeeze=False,
                             layout="constrained")
    vmax = max(float(np.abs(a).max() if signed else a.max()) for a in arrays.values()) if shared_scale else None
    for ax, (title, array) in zip(axes.flat, arrays.items()):
        plot_plan(array, ax, title=title, n_views=n_views, vmax=vmax, colorbar=not shared_scale, signed=signed)
    for ax in list(axes.flat)[len(arrays):]:
        ax.set_visible(False)
    if shared_scale:
        fig.colorbar(axes.flat[0].images[0], ax=list(axes.flat), fraction=0.02, pad=0.02)
    return fig


def plot_transport(
    x: ArrayLike,
    y: ArrayLike,
    plan: ArrayLike,
    ax: Optional[Axes] = None,
    *,
    threshold: float = 0.01,
    vmax: Optional[float] = None,
    title: Optional[str] = None,
) -> Axes:
    """Two 2-D point clouds and a segment from ``x_i`` to ``y_j`` for each pair carrying more than
    ``threshold · vmax``, with opacity ``min(P_ij / vmax, 1)``; point sizes ∝ mass sent/received.

    Parameters
    ----------
    x, y : array-like
        The source (n, 2) and target (m, 2) clouds.
    plan : array-like
        The (n, m) plan.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    threshold : float
        Fraction of ``vmax`` in [0, 1) below which a pair is not drawn.
    vmax : float, optional
        The entry drawn opaque (default: the plan's largest; pass the largest possible entry, e.g. ``1/n``,
        to compare plans).
    title : str, optional
        Title of the axes.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Raises
    ------
    ValueError
        If the clouds are not 2-D, the plan's shape does not match them, or ``threshold``/``vmax`` is out
        of range.
    """
    xs, ys, array = _matrix(x, "x"), _matrix(y, "y"), _matrix(plan, "plan")
    if xs.shape[1] != 2 or ys.shape[1] != 2:
        raise ValueError(f"x and y must be 2-D point clouds (n, 2), got {xs.shape} and {ys.shape}")
    if array.shape != (xs.shape[0], ys.shape[0]):
        raise ValueError(f"plan must have shape ({xs.shape[0]}, {ys.shape[0]}) to match x and y, got {array.shape}")
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    ax = _axes(ax, (4.5, 4.0))
    top = float(array.max()) if vmax is None else vmax
    if not top >= 0:
        raise ValueError(f"vmax must be >= 0, got {vmax}")
    segments, alphas = [], []
    if top > 0:
        for i, j in zip(*np.nonzero(array > threshold * top)):
            segments.append([xs[i], ys[j]])
            alphas.append(min(float(array[i, j] / top), 1.0))
    colours = np.zeros((len(segments), 4))
    colours[:, 3] = alphas
    ax.add_collection(LineCollection(segments, colors=colours, linewidths=1.5))
    sent, received = array.sum(1), array.sum(0)
    scale = 60.0 / max(float(sent.mean()), float(received.mean()), 1e-12)
    ax.scatter(xs[:, 0], xs[:, 1], s=10 + scale * sent, color="tab:blue", label="source x", zorder=3)
    ax.scatter(ys[:, 0], ys[:, 1], s=10 + scale * received, color="tab:orange", label="target y", zorder=3)
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="best", fontsize="small")
    if title is not None:
        ax.set_title(title)
    return ax


# ----------------------------------------------------------------------------------------- curves and bars

def plot_curves(
    curves: Mapping[str, ArrayLike],
    x: Optional[ArrayLike] = None,
    ax: Optional[Axes] = None,
    *,
    logx: bool = False,
    logy: bool = False,
    xlabel: str = "iteration",
    ylabel: str = "",
    title: Optional[str] = None,
    marker: Optional[str] = None,
    colors: Optional[Mapping[str, str]] = None,
) -> Axes:
    """One line per curve against ``x``, optionally log-scaled.

    Parameters
    ----------
    curves : mapping of str to array-like
        Label → values.
    x : array-like, optional
        Abscissae shared by the curves (default ``1, 2, …``).
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    logx, logy : bool
        Log-scale an axis.
    xlabel, ylabel, title : str
        Axis labels and title.
    marker : str, optional
        Matplotlib marker of the points.
    colors : mapping of str to str, optional
        Label → colour (e.g. :data:`LOSS_COLORS`); labels not in it use the colour cycle.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Raises
    ------
    ValueError
        If ``curves`` is empty, a curve's length differs from ``x``'s, or a log-scaled curve has values <= 0.
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves must be a non-empty mapping {label: values}")
    ax = _axes(ax, (5.0, 3.5))
    for label, values in curves.items():
        ys = to_numpy(values, f"curves[{label!r}]")
        xs = np.arange(1, len(ys) + 1) if x is None else to_numpy(x, "x")
        if xs.shape != ys.shape:
            raise ValueError(f"curve {label!r} has {ys.shape} values but x has {xs.shape}")
        if logy and (ys <= 0).any():
            raise ValueError(f"curve {label!r} has values <= 0, which a log-scaled y axis cannot show")
        ax.plot(xs, ys, label=str(label), marker=marker, color=(colors or {}).get(label))
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    return ax


def plot_bars(
    table: Mapping[str, Mapping[str, float]],
    ax: Optional[Axes] = None,
    *,
    ylabel: str = "",
    title: Optional[str] = None,
    reference: Optional[float] = None,
    group_colors: Optional[Mapping[str, str]] = None,
) -> Axes:
    """Grouped bars: one group per outer key, one bar per inner key (the same inner keys in every group).

    Parameters
    ----------
    table : mapping of str to mapping of str to float
        Group → {bar: height}.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    ylabel, title : str
        Axis label and title.
    reference : float, optional
        Height of a dashed horizontal line.
    group_colors : mapping of str to str, optional
        Group → colour (e.g. :data:`LOSS_COLORS`): every bar of a group alike, the inner keys told apart by
        hatching. Default: one colour per inner key.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Raises
    ------
    ValueError
        If ``table`` is empty or its groups have different bars.
    """
    if not isinstance(table, Mapping) or not table:
        raise ValueError("table must be a non-empty mapping {group: {bar: value}}")
    groups = list(table)
    series = list(table[groups[0]])
    for group in groups:
        if list(table[group]) != series:
            raise ValueError(f"every group needs the bars {series}; group {group!r} has {list(table[group])}")
    ax = _axes(ax, (min(11.0, max(4.0, 0.4 * len(groups) * len(series))), 3.5))
    width = 0.8 / len(series)
    positions = np.arange(len(groups))
    hatches = ("", "//", "..", "xx", "\\\\", "oo")
    for k, name in enumerate(series):
        heights = [float(table[group][name]) for group in groups]
        offset = positions + (k - (len(series) - 1) / 2) * width
        if group_colors is None:
            ax.bar(offset, heights, width, label=str(name))
        else:
            colours = [group_colors.get(str(group), "tab:gray") for group in groups]
            ax.bar(offset, heights, width, color=colours, hatch=hatches[k % len(hatches)], edgecolor="white")
            ax.bar([np.nan], [np.nan], color="lightgray", hatch=hatches[k % len(hatches)], edgecolor="white",
                   label=str(name))
    labels = [str(g) for g in groups]
    crowded = len(groups) > 4 and max(len(label) for label in labels) > 3
    ax.set_xticks(positions)
    ax.set_xticklabels(labels, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    if reference is not None:
        ax.axhline(reference, color="black", linestyle="--", linewidth=1)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize="small")
    return ax


def plot_mass(
    masses: Mapping[str, ArrayLike],
    ax: Optional[Axes] = None,
    *,
    reference: Optional[ArrayLike] = None,
    highlight: Sequence[int] = (),
    xlabel: str = "point",
    title: Optional[str] = None,
) -> Axes:
    """Mass per point of several plans as grouped bars (e.g. ``plan.sum(0)``, what each point receives).

    Parameters
    ----------
    masses : mapping of str to array-like
        Label → mass per point, vectors of one length.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    reference : array-like, optional
        The marginal asked for, drawn as black ticks.
    highlight : sequence of int
        Points of interest (outliers), shaded.
    xlabel, title : str
        Axis label and title.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Raises
    ------
    ValueError
        If ``masses`` is empty or its vectors (or ``reference``) differ in length.
    """
    if not isinstance(masses, Mapping) or not masses:
        raise ValueError("masses must be a non-empty mapping {label: mass per point}")
    arrays = {label: to_numpy(mass, f"masses[{label!r}]") for label, mass in masses.items()}
    size = next(iter(arrays.values())).shape
    if any(a.shape != size or a.ndim != 1 for a in arrays.values()):
        raise ValueError(f"every mass must be a vector of the same length; got shapes {[a.shape for a in arrays.values()]}")
    table = {str(i): {label: float(a[i]) for label, a in arrays.items()} for i in range(size[0])}
    ax = plot_bars(table, ax, ylabel="mass", title=title)
    ax.set_xlabel(xlabel)
    if reference is not None:
        ref = to_numpy(reference, "reference")
        if ref.shape != size:
            raise ValueError(f"reference must have shape {size}, got {ref.shape}")
        ax.scatter(np.arange(size[0]), ref, marker="_", s=300, color="black", label="marginal", zorder=3)
        ax.legend(fontsize="small")
    for i in highlight:
        ax.axvspan(i - 0.5, i + 0.5, color="red", alpha=0.1)
    return ax


# ----------------------------------------------------------------------------------------- embeddings and runs

def plot_embedding(
    z: ArrayLike,
    labels: Optional[ArrayLike] = None,
    ax: Optional[Axes] = None,
    *,
    title: Optional[str] = None,
    cmap: str = "tab10",
) -> Axes:
    """Scatter of embeddings on their first two principal components (as is when D = 2).

    Parameters
    ----------
    z : array-like
        (N, D) embeddings, D >= 2.
    labels : array-like, optional
        (N,) labels colouring the points.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    title : str, optional
        Title of the axes.
    cmap : str
        Colour map of the labels.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Raises
    ------
    ValueError
        If ``z`` has fewer than two dimensions or ``labels`` is not one per point.
    """
    array = _matrix(z, "z")
    if array.shape[1] < 2:
        raise ValueError(f"z needs at least two dimensions to plot, got shape {array.shape}")
    centred = array - array.mean(0)
    if array.shape[1] > 2:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        centred = centred @ vt[:2].T
    ax = _axes(ax, (4.5, 4.0))
    colours = None
    if labels is not None:
        colours = to_numpy(labels, "labels")
        if colours.shape != (array.shape[0],):
            raise ValueError(f"labels must have shape ({array.shape[0]},), got {colours.shape}")
    points = ax.scatter(centred[:, 0], centred[:, 1], c=colours, cmap=cmap if labels is not None else None, s=8)
    if labels is not None and len(np.unique(colours)) <= 20:
        ax.legend(*points.legend_elements(), fontsize="x-small", loc="best", title="label")
    ax.set_xlabel("PC 1" if array.shape[1] > 2 else "dim 1")
    ax.set_ylabel("PC 2" if array.shape[1] > 2 else "dim 2")
    if title is not None:
        ax.set_title(title)
    return ax


def plot_alignment_uniformity(
    points: Mapping[str, tuple[float, float]], ax: Optional[Axes] = None, *, title: Optional[str] = None
) -> Axes:
    """Wang & Isola's plane: one labelled point at (uniformity, alignment) per run, lower is better on both.

    Alignment is ``E‖z − z⁺‖²``, uniformity ``log E exp(−2‖z − z'‖²)``.

    Parameters
    ----------
    points : mapping of str to (float, float)
        Label → (alignment, uniformity).
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    title : str, optional
        Title of the axes.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Raises
    ------
    ValueError
        If ``points`` is empty or an entry is not a pair.
    """
    if not isinstance(points, Mapping) or not points:
        raise ValueError("points must be a non-empty mapping {label: (alignment, uniformity)}")
    ax = _axes(ax, (4.5, 3.8))
    for label, pair in points.items():
        if len(pair) != 2:
            raise ValueError(f"points[{label!r}] must be (alignment, uniformity), got {pair!r}")
        align, unif = float(pair[0]), float(pair[1])
        ax.scatter([unif], [align], s=40)
        ax.annotate(str(label), (unif, align), textcoords="offset points", xytext=(4, 4), fontsize="small")
    ax.set_xlabel("uniformity  log E exp(−2‖z−z'‖²)")
    ax.set_ylabel("alignment  E‖z−z⁺‖²")
    if title is not None:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return ax


def _mean_std(metrics: Sequence[Mapping], metric: str) -> tuple[float, float]:
    """Mean and sample std (0 for one value) of the finite values of ``metric``; (nan, nan) for none."""
    finite = _finite_values(metrics, metric)
    if not finite:
        return math.nan, math.nan
    return mean_std(finite)


def plot_robustness_grid(
    grid: Mapping,
    metric: str = "linear_acc",
    ax: Optional[Axes] = None,
    *,
    settings: Optional[Sequence[str]] = None,
    references: Sequence[str] = ("random-init", "raw-pixels"),
    ylabel: Optional[str] = None,
    title: Optional[str] = None,
) -> Axes:
    """A robustness grid as grouped bars: one group per setting, one bar per trained method at the mean
    of ``metric`` over seeds with a ±1 sample-std error bar, each reference as a dashed segment.

    Settings that lack a method leave its bar out.

    Parameters
    ----------
    grid : mapping
        ``{"runs": {setting: {method: [metrics per seed]}}}`` of :func:`gcalib.training.robustness.robustness`
        (``dataset`` and ``seeds`` make the default title).
    metric : str
        The key of each seed's metrics.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    settings : sequence of str, optional
        The settings to draw, those present in the grid (default: all, in grid order).
    references : sequence of str
        Rows drawn as a dashed segment across their group at their mean over seeds.
    ylabel : str, optional
        Label of the y axis (default: ``metric``).
    title : str, optional
        Title (default: the dataset and the number of seeds).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Raises
    ------
    ValueError
        If the grid has no runs, none of ``settings`` is in it, or the settings have no runs.
    """
    runs = _grid_runs(grid)
    names = _settings(runs, settings)
    if not names:
        raise ValueError(f"none of the settings {list(settings)} is in the grid, which has {list(runs)}")
    methods = list(dict.fromkeys(m for name in names for m in runs[name] if m not in references))
    refs = [r for r in references if any(r in runs[name] for name in names)]
    if not methods and not refs:
        raise ValueError(f"the grid has no runs for the settings {names}")
    ax = _axes(ax, (min(12.0, max(4.5, 0.5 * len(names) * max(1, len(methods)) + 1.5)), 3.8))
    width = 0.8 / max(1, len(methods))
    positions = np.arange(len(names))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, method in enumerate(methods):
        stats = [_mean_std(runs[name].get(method, []), metric) for name in names]
        x = positions + (k - (len(methods) - 1) / 2) * width
        keep = [i for i, (mean, _) in enumerate(stats) if math.isfinite(mean)]
        ax.bar(x[keep], [stats[i][0] for i in keep], width, yerr=[stats[i][1] for i in keep], capsize=3,
               label=str(method), color=colours[k % len(colours)])
    for k, ref in enumerate(refs):
        style = ("--", ":", "-.")[k % 3]
        label = str(ref)
        for i, name in enumerate(names):
            mean, _ = _mean_std(runs[name].get(ref, []), metric)
            if math.isfinite(mean):
                ax.hlines(mean, i - 0.45, i + 0.45, colors="black", linestyles=style, linewidth=1.2, label=label)
                label = None
    ax.set_xticks(positions)
    ax.set_xticklabels(names, rotation=20 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center")
    ax.set_ylabel(metric if ylabel is None else ylabel)
    seeds = grid.get("seeds")
    if title is None and seeds is not None:
        title = f"{grid.get('dataset', '')}: mean ± std over {len(seeds)} seed{'s' if len(seeds) != 1 else ''}"
    if title:
        ax.set_title(title, fontsize="medium")
    ax.grid(True, axis="y", alpha=0.3)
    handles = dict(zip(*reversed(ax.get_legend_handles_labels())))
    order = [name for name in [*methods, *refs] if name in handles]
    ax.legend([handles[name] for name in order], order, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


# ----------------------------------------------------------------------------------------- target plans

def plot_target(target: torch.Tensor, n_views: int = 2, *, domains=None, labels=None, title: Optional[str] = None,
                figure: Optional[Figure] = None) -> Figure:
    """A target plan's heatmap (with the view blocks) beside a bar chart of where its rows put their mass
    (:func:`gcalib.notebook.target_design.target_mass`).

    Parameters
    ----------
    target : torch.Tensor
        (n, n) target plan in the blocked layout.
    n_views : int
        Number of views V per sample.
    domains, labels : sequence of int, optional
        One domain / class id per sample, adding the same/other-domain (class) shares.
    title : str, optional
        Title of the heatmap.
    figure : matplotlib.figure.Figure, optional
        An empty figure to draw in (default: a new pyplot figure).

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn in.

    Raises
    ------
    TypeError
        If ``figure`` is not a Figure.
    ValueError
        If ``target`` or the ids are invalid (see :func:`gcalib.notebook.target_design.target_mass`).
    """
    mass = target_mass(target, n_views, domains=domains, labels=labels)
    if figure is None:
        figure = plt.figure(figsize=(9.0, 3.8))
    elif not isinstance(figure, Figure):
        raise TypeError(f"figure must be a matplotlib Figure or None, got {type(figure).__name__}")
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": (1.1, 1.0)})
    plot_plan(target, left, title=title, n_views=n_views)
    names = list(mass)
    bars = right.barh(range(len(names)), [mass[k] for k in names], color="tab:purple")
    right.bar_label(bars, fmt="%.3f", padding=2, fontsize="small")
    right.set_yticks(range(len(names)), [k.replace("_", " ") for k in names])
    right.invert_yaxis()
    right.set_xlim(0, 1.15)
    right.set_xlabel("mean share of a row's target mass (T̂ = T / T𝟙)")
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------------------- pictures

def plot_image_grid(images: torch.Tensor, *, row_labels: Optional[Sequence[str]] = None,
                    col_labels: Optional[Sequence[str]] = None, title: Optional[str] = None,
                    panel_size: float = 1.1) -> Figure:
    """A grid of pictures, one axis per image without ticks.

    Parameters
    ----------
    images : torch.Tensor
        (rows, cols, C, H, W) with C in (1, 3) and values in [0, 1] (see
        :func:`gcalib.notebook.dataset_views.denormalise`); one channel is drawn in gray.
    row_labels : sequence of str, optional
        One label per row, on the left.
    col_labels : sequence of str, optional
        One label per column, above it.
    title : str, optional
        Title of the figure.
    panel_size : float
        Size of a picture in inches, > 0.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ValueError
        If ``images`` has the wrong shape or values outside [0, 1], or a label list has the wrong length.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 5 or images.shape[2] not in (1, 3):
        raise ValueError(f"images must be a tensor (rows, cols, C, H, W) with C in (1, 3), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    rows, cols = images.shape[:2]
    if images.numel() and not bool(((images >= 0) & (images <= 1)).all()):
        raise ValueError("images must lie in [0, 1]; pass normalised views through denormalise first")
    for label, labels, size in (("row_labels", row_labels, rows), ("col_labels", col_labels, cols)):
        if labels is not None and len(labels) != size:
            raise ValueError(f"{label} must have {size} entries, got {len(labels)}")
    check_positive("panel_size", panel_size)
    fig, axes = plt.subplots(rows, cols, figsize=(panel_size * cols + 0.8, panel_size * rows + 0.4), squeeze=False)
    pictures = images.detach().to("cpu", torch.float32).permute(0, 1, 3, 4, 2).numpy()
    for i in range(rows):
        for j in range(cols):
            ax = axes[i, j]
            picture = pictures[i, j]
            if picture.shape[-1] == 1:
                ax.imshow(picture[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
            else:
                ax.imshow(np.ascontiguousarray(picture), vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if col_labels is not None and i == 0:
                ax.set_title(str(col_labels[j]), fontsize="small")
            if row_labels is not None and j == 0:
                ax.set_ylabel(str(row_labels[i]), fontsize="small")
    if title is not None:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _describe(dataset, sample: int) -> str:
    """``"<label>"`` or ``"<label> · <domain name>"`` of one sample."""
    text = str(dataset.classes[int(dataset.labels[sample])]) if getattr(dataset, "classes", None) else \
        str(int(dataset.labels[sample]))
    domains = getattr(dataset, "domains", None)
    if domains is not None and int(domains[sample]) >= 0:
        text += f" · {dataset.domain_names[int(domains[sample])]}"
    return text


def plot_view_pairs(pairs: ViewPairs, dataset, *, title: Optional[str] = None, panel_size: float = 1.1) -> Figure:
    """The pictures of :func:`gcalib.notebook.dataset_views.draw_views`: one column per sample, titled with
    its label (and domain), one row per view; a broken pair's column says which labels its views show and
    is marked ``broken``.

    Parameters
    ----------
    pairs : ViewPairs
        The views drawn.
    dataset : gcalib.training.data.ImageDataset
        The in-memory dataset they were drawn from.
    title : str, optional
        Title of the figure.
    panel_size : float
        Size of a picture in inches.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    TypeError
        If ``pairs`` is not a :class:`gcalib.notebook.dataset_views.ViewPairs` or ``dataset`` not in memory.
    """
    if not isinstance(pairs, ViewPairs):
        raise TypeError(f"pairs must be a ViewPairs (from draw_views), got {type(pairs).__name__}")
    _in_memory(dataset)
    titles = []
    for b in range(pairs.samples.shape[1]):
        column = pairs.samples[:, b].tolist()
        if len(set(column)) == 1:
            titles.append(_describe(dataset, column[0]))
        else:
            titles.append("broken\n" + " / ".join(str(int(dataset.labels[s])) for s in column))
    rows = [f"view {v + 1}" for v in range(pairs.samples.shape[0])]
    return plot_image_grid(pairs.pictures, row_labels=rows, col_labels=titles, title=title, panel_size=panel_size)


def plot_domains(dataset, per_domain: int = 8, *, title: Optional[str] = None, panel_size: float = 1.0) -> Figure:
    """One row per domain of a dataset: its first ``per_domain`` images, labelled with the domain on the left.

    Domains with fewer than ``per_domain`` samples are left out.

    Parameters
    ----------
    dataset : gcalib.training.data.ImageDataset
        An in-memory dataset with domains.
    per_domain : int
        Images per row, >= 1.
    title : str, optional
        Title of the figure.
    panel_size : float
        Size of a picture in inches.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    TypeError
        If ``dataset`` is not in memory.
    ValueError
        If the dataset has no domains or none with ``per_domain`` samples.
    """
    _in_memory(dataset)
    index = domain_examples(dataset, per_domain)
    domains = dataset.domains[index]
    ids = [d for d in dict.fromkeys(domains.tolist()) if int((domains == d).sum()) == per_domain]
    if not ids:
        raise ValueError(f"no domain has {per_domain} samples; lower per_domain")
    grid = torch.stack([dataset.images[index[domains == d]] for d in ids]).float() / 255
    return plot_image_grid(grid, row_labels=[dataset.domain_names[d] for d in ids], title=title,
                           panel_size=panel_size)


def plot_renderings(dataset, index, n_renderings: int = 4, *, title: Optional[str] = None,
                    panel_size: float = 1.0) -> Figure:
    """The renderings of some samples: one row per rendering, one column per sample titled with its label
    and domain.

    Parameters
    ----------
    dataset : gcalib.training.data.ImageDataset
        An in-memory dataset with ``renderings``.
    index : sequence of int or torch.Tensor
        The sample ids.
    n_renderings : int
        The first renderings shown, >= 1.
    title : str, optional
        Title of the figure.
    panel_size : float
        Size of a picture in inches.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    TypeError
        If ``dataset`` is not in memory.
    ValueError
        If the dataset has no renderings or fewer than ``n_renderings``, or ``index`` is out of range.
    """
    _in_memory(dataset)
    renderings = getattr(dataset, "renderings", None)
    if renderings is None:
        raise ValueError("dataset has no renderings (load a dataset that ships them, e.g. clutter_digits train)")
    index = _index(dataset, index)
    check_int("n_renderings", n_renderings, 1)
    if n_renderings > renderings.shape[1]:
        raise ValueError(f"n_renderings={n_renderings} but the dataset has {renderings.shape[1]} per sample")
    grid = renderings[index, :n_renderings].transpose(0, 1).float() / 255
    return plot_image_grid(grid, row_labels=[f"rendering {k + 1}" for k in range(n_renderings)],
                           col_labels=[_describe(dataset, int(i)) for i in index], title=title, panel_size=panel_size)
