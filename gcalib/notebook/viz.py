"""Figures for the notebooks: plan heatmaps, transport lines, curves, bars, embeddings, explorers.

Every ``plot_*`` function draws on ``ax`` (a new figure when ``ax`` is None) and returns the axes or
figure it drew on, so notebooks stay one call per figure and tests can read the artists back.
Tensors may live on any device and may require grad; they are detached and copied to the CPU.

:class:`Explorer` ties ipywidgets controls to a drawing function and shows each figure as PNG bytes in
an ``ipywidgets.Image``. It deliberately uses no ``Output`` widget: a headless client (nbclient, so
nbconvert, papermill, nbval and notebook-executing docs builds) mimics an ``Output`` widget by writing
each captured output back to the kernel on its shell socket while the cell runs, and in some runs it
then misses the cell's ``execute_reply``, waiting for the cell timeout, or forever without one.
Setting an ``Image``'s value only sends a widget-state update from the kernel, which the client stores
in the notebook's widget state, so an executed notebook keeps the explorer's first figure.
"""
from __future__ import annotations

import math
from io import BytesIO
from typing import Callable, Mapping, Optional, Sequence, Union

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..losses.gca import LOSSES, PRESETS, make_loss
from ..ot.solver import sinkhorn
from ..validation import check_choice, check_int

__all__ = [
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
    "LOSS_COLORS",
    "loss_color",
    "Explorer",
    "sinkhorn_explorer",
    "loss_plan_explorer",
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
    """The colour of a loss preset (or ``"byol"``) in every figure: :data:`LOSS_COLORS`."""
    return LOSS_COLORS[check_choice("loss", name, tuple(LOSS_COLORS))]


def to_numpy(value: ArrayLike, name: str = "value") -> np.ndarray:
    """A float64 NumPy array from a tensor (any device; detached, copied to the CPU), array or sequence."""
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

    ``n_views`` draws the view blocks of the blocked layout (lines every ``n / n_views`` rows and
    columns); ``vmax`` fixes the top of the colour scale (default: the largest entry). ``signed``
    draws a difference of plans: a diverging map on ``[−vmax, vmax]`` (default ``vmax = max |entry|``);
    otherwise the scale is ``[0, vmax]``.
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
    """Several plans side by side, one titled panel each (``shared_scale`` uses one colour scale;
    ``signed`` draws differences of plans, see :func:`plot_plan`)."""
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
    """Two 2-D point clouds with a segment from ``x_i`` to ``y_j`` for each pair carrying more than
    ``threshold · vmax``; opacity ``min(P_ij / vmax, 1)`` with ``vmax`` the plan's largest entry by
    default (pass the largest possible entry, e.g. ``1/n``, to compare plans); point sizes ∝ mass
    sent/received."""
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
    """One line per entry of ``curves`` against ``x`` (default ``1, 2, …``), optionally log-scaled;
    ``colors`` maps a label to its colour (e.g. :data:`LOSS_COLORS`; labels not in it use the cycle)."""
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
    """Grouped bars: one group per outer key, one coloured bar per inner key (same inner keys in
    every group). ``reference`` draws a dashed horizontal line. ``group_colors`` (e.g.
    :data:`LOSS_COLORS`) colours every bar of a group alike and tells the inner keys apart by hatching."""
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
    """Mass per point (e.g. ``plan.sum(0)``, what each target point receives) for several plans as
    grouped bars; ``reference`` (the marginal asked for) is drawn as black ticks, ``highlight``
    shades points of interest (outliers)."""
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


def plot_embedding(
    z: ArrayLike,
    labels: Optional[ArrayLike] = None,
    ax: Optional[Axes] = None,
    *,
    title: Optional[str] = None,
    cmap: str = "tab10",
) -> Axes:
    """Scatter of embeddings (N, D) on their first two principal components (as is when D = 2),
    coloured by ``labels`` when given."""
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
    """Wang & Isola's plane: one labelled point ``(uniformity, alignment)`` per run (lower is better
    on both axes). ``points`` maps a label to ``(alignment, uniformity)``."""
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


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value) of the finite values; (nan, nan) for none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return math.nan, math.nan
    return float(np.mean(finite)), float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0


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
    """A grid of :func:`gcalib.pretrain.robustness.robustness` (``{"runs": {setting: {method: [metrics per seed]}}}``)
    as grouped bars: one group per setting (those of ``settings`` present in the grid, default all, in grid
    order), one bar per trained method at the mean of ``metric`` over seeds with a ±1 sample-std error bar,
    and each row of ``references`` present as a dashed segment across its group (its mean over seeds).
    Settings that lack a method leave its bar out."""
    runs = grid.get("runs") if isinstance(grid, Mapping) else None
    if not isinstance(runs, Mapping) or not runs:
        raise ValueError("grid must be a robustness grid with a non-empty 'runs' mapping {setting: {method: [metrics]}}")
    names = list(runs) if settings is None else [name for name in settings if name in runs]
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
        stats = [_mean_std([m.get(metric) for m in runs[name].get(method, [])]) for name in names]
        x = positions + (k - (len(methods) - 1) / 2) * width
        keep = [i for i, (mean, _) in enumerate(stats) if math.isfinite(mean)]
        ax.bar(x[keep], [stats[i][0] for i in keep], width, yerr=[stats[i][1] for i in keep], capsize=3,
               label=str(method), color=colours[k % len(colours)])
    for k, ref in enumerate(refs):
        style = ("--", ":", "-.")[k % 3]
        label = str(ref)
        for i, name in enumerate(names):
            mean, _ = _mean_std([m.get(metric) for m in runs[name].get(ref, [])])
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


def _png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes at its own size and dpi (rendered by Agg, whatever the backend)."""
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi="figure")
    return buffer.getvalue()


class Explorer(widgets.VBox):
    """Widget controls above an image; any change of a control calls ``draw(**values)`` (``values``
    maps each control's name to its value) and shows the figure it returns as a PNG in ``image``.

    The first figure is drawn at construction; ``figure`` is the latest one. Drawing never goes
    through an ``Output`` widget (see the module docstring), so headless runs do not block.

    ``active(**values)``, when given, returns ``{control name: bool}`` before every drawing; a control
    mapped to False is disabled (greyed out) because it does nothing in the current state, and is
    enabled again when it is mapped to True. Controls it does not name are left as they are.
    """

    def __init__(self, draw: Callable[..., Figure], controls: Mapping[str, widgets.ValueWidget],
                 active: Optional[Callable[..., Mapping[str, bool]]] = None) -> None:
        if not callable(draw):
            raise TypeError(f"draw must be callable, got {type(draw).__name__}")
        if not isinstance(controls, Mapping) or not controls:
            raise ValueError("controls must be a non-empty mapping {argument name: widget}")
        for name, control in controls.items():
            if not isinstance(control, widgets.ValueWidget):
                raise TypeError(f"control {name!r} must be an ipywidgets ValueWidget, got {type(control).__name__}")
        if active is not None and not callable(active):
            raise TypeError(f"active must be callable or None, got {type(active).__name__}")
        self._draw = draw
        self._active = active
        self.controls = dict(controls)
        self.image = widgets.Image(format="png")
        self.figure: Optional[Figure] = None
        super().__init__([widgets.HBox(list(self.controls.values())), self.image])
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.redraw()

    @property
    def values(self) -> dict:
        """The current value of every control, by argument name."""
        return {name: control.value for name, control in self.controls.items()}

    def _on_change(self, change) -> None:
        self.redraw()

    def redraw(self) -> Figure:
        """Draw with the current values, show the figure in ``image`` and return it.

        A figure made with pyplot is closed once rendered, so the inline backend does not show it
        a second time below the explorer."""
        if self._active is not None:
            for name, enabled in self._active(**self.values).items():
                if name not in self.controls:
                    raise KeyError(f"active returned {name!r}, which is not a control ({', '.join(self.controls)})")
                self.controls[name].disabled = not enabled
        figure = self._draw(**self.values)
        if not isinstance(figure, Figure):
            raise TypeError(f"draw must return a matplotlib Figure, got {type(figure).__name__}")
        self.image.value = _png_bytes(figure)
        plt.close(figure)
        self.figure = figure
        return figure


# Controls size their description to its text, so labels such as "α (same domain)" are never cut off.
CONTROL_STYLE = {"description_width": "initial"}

# Presets defined by a single row projection of the kernel (n_iter = 0): drawn with n_iter = 0 always.
ROW_PROJECTION_PRESETS = tuple(name for name, spec in PRESETS.items() if spec.n_iter == 0)


def _log_slider(description: str, value: float, low: float, high: float) -> widgets.FloatLogSlider:
    if not low <= value <= high:
        raise ValueError(f"{description} must be in [{low}, {high}], got {value}")
    return widgets.FloatLogSlider(value=value, base=10, min=math.log10(low), max=math.log10(high), step=0.05,
                                  description=description, continuous_update=False, readout_format=".3g",
                                  style=CONTROL_STYLE)


def sinkhorn_explorer(
    cost: torch.Tensor,
    a: Optional[torch.Tensor] = None,
    b: Optional[torch.Tensor] = None,
    *,
    x: Optional[ArrayLike] = None,
    y: Optional[ArrayLike] = None,
    eps: float = 0.05,
    n_iter: int = 20,
    reg: float = 1.0,
    unbalanced: bool = False,
    max_iter: int = 300,
) -> Explorer:
    """Sliders for ε, the number of Sinkhorn iterations (one iteration = a row update then a column
    update) and ρ (used on both sides when ``unbalanced`` is ticked, otherwise the marginals are hard
    and the ρ slider is disabled) redrawing the plan heatmap and, given the clouds ``x``, ``y``, the
    transport lines.

    The heatmap's title gives the marginal error ``‖P𝟙 − a‖₁ + ‖Pᵀ𝟙 − b‖₁``
    (:func:`gcalib.notebook.analysis.marginal_deviation`): Sinkhorn's convergence measure for a balanced plan.
    An unbalanced plan keeps a deviation at its optimum on purpose, so in unbalanced mode the title adds
    the distance to that optimum, the residual of its optimality condition (``OTResult.marginal_error``)."""
    from .analysis import marginal_deviation

    if (x is None) != (y is None):
        raise ValueError("give both x and y (the point clouds) or neither")
    controls = {
        "eps": _log_slider("ε", eps, 1e-3, 10.0),
        "n_iter": widgets.IntSlider(value=n_iter, min=0, max=max_iter, description="iterations", continuous_update=False,
                                    style=CONTROL_STYLE),
        "reg": _log_slider("ρ", reg, 1e-3, 1e3),
        "unbalanced": widgets.Checkbox(value=unbalanced, description="unbalanced", style=CONTROL_STYLE),
    }

    def active(eps: float, n_iter: int, reg: float, unbalanced: bool) -> dict[str, bool]:
        return {"reg": bool(unbalanced)}

    def draw(eps: float, n_iter: int, reg: float, unbalanced: bool) -> Figure:
        rho = reg if unbalanced else math.inf
        result = sinkhorn(cost, eps, a, b, reg_a=rho, reg_b=rho, n_iter=n_iter)
        figure = Figure(figsize=(9.0 if x is not None else 4.5, 3.8))
        axes = figure.subplots(1, 2 if x is not None else 1, squeeze=False).flat
        deviation = marginal_deviation(result.plan, a, b)
        if unbalanced:
            title = (f"unbalanced ρ={reg:.3g}, ε={eps:.3g}, {n_iter} it.\nmarginal error {deviation:.2e} "
                     f"(kept by design)\noptimality residual {result.marginal_error:.2e}")
        else:
            title = f"balanced, ε={eps:.3g}, {n_iter} it.\nmarginal error {deviation:.2e}"
        plot_plan(result.plan, axes[0], title=title)
        if x is not None:
            plot_transport(x, y, result.plan, axes[1], title=f"mass moved {float(result.plan.sum()):.3f}")
        figure.tight_layout()
        return figure

    return Explorer(draw, controls, active)


def loss_plan_explorer(
    views: Sequence[torch.Tensor],
    *,
    names: Sequence[str] = LOSSES,
    name: str = "gca_ince",
    eps: float = 0.5,
    n_iter: int = 10,
    max_iter: int = 100,
) -> Explorer:
    """A loss menu and sliders for ε and ``n_iter`` redrawing the plan the loss scores on ``views``
    (``GCALoss.plan``) and the mass each column receives (hubs stand out; Sinkhorn levels them).

    Each preset is drawn as its loss computes it: the presets defined by a single row projection
    (``n_iter = 0``: ``infonce``, ``hs_ince``, ``rince``, see ``ROW_PROJECTION_PRESETS``) always use
    ``n_iter = 0``, and the ``n_iter`` slider is disabled while one of them is selected."""
    names = list(names)
    check_choice("loss", name, names)
    n_views = len(views)
    controls = {
        "name": widgets.Dropdown(options=names, value=name, description="loss", style=CONTROL_STYLE),
        "eps": _log_slider("ε", eps, 1e-2, 10.0),
        "n_iter": widgets.IntSlider(value=n_iter, min=0, max=max_iter, description="n_iter", continuous_update=False,
                                    style=CONTROL_STYLE),
    }

    def active(name: str, eps: float, n_iter: int) -> dict[str, bool]:
        return {"n_iter": name not in ROW_PROJECTION_PRESETS}

    def draw(name: str, eps: float, n_iter: int) -> Figure:
        fixed = name in ROW_PROJECTION_PRESETS
        iterations = 0 if fixed else n_iter
        plan = make_loss(name, eps=eps, n_iter=iterations).plan(*views)
        figure = Figure(figsize=(9.0, 3.8))
        left, right = figure.subplots(1, 2)
        suffix = " (fixed)" if fixed else ""
        plot_plan(plan, left, title=f"{name}: ε={eps:.3g}, n_iter={iterations}{suffix}", n_views=n_views)
        received = to_numpy(plan.sum(0))
        right.bar(np.arange(received.size), received, color=LOSS_COLORS.get(name, "tab:gray"))
        right.axhline(1.0, color="black", linestyle="--", linewidth=1)
        right.set_xlabel("column j")
        right.set_ylabel("mass received  Σ_i P_ij")
        right.set_title(f"largest column {received.max():.2f}, smallest {received.min():.2f}")
        figure.tight_layout()
        return figure

    return Explorer(draw, controls, active)
