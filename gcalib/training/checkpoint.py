"""Training checkpoints that survive crashes.

* Writes are atomic: the state goes to a temporary file in the same directory, is flushed and
  fsync'ed, then renamed over the final name with ``os.replace`` (a reader sees the old file or the
  new one, never a partial one).
* Files are named ``checkpoint-EEEEE.pt`` after the number of completed epochs, and a checkpoint written
  in the middle of an epoch (``state["step_in_epoch"]`` > 0) ``checkpoint-EEEEE-stepSSSSSSS.pt`` after
  the completed epochs and the global step ``state["step"]``. Files are ordered by (epoch, step), an
  epoch's end before the steps of the next epoch; the last ``keep`` (default two) are kept, so a corrupt
  latest file still leaves a good previous one.
* :func:`load_latest` tries the newest file first; a file that cannot be read is reported with a
  warning and the previous one is used.
* :func:`rng_state` / :func:`set_rng_state` capture and restore the python, numpy, torch and CUDA
  generators.
"""
from __future__ import annotations

import random
import re
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np
import torch

from ..validation import check_int
from .run_files import PathLike, atomic_write

__all__ = [
    "CHECKPOINT_KEYS",
    "checkpoint_path",
    "list_checkpoints",
    "atomic_save",
    "save_checkpoint",
    "load_latest",
    "rng_state",
    "set_rng_state",
    "config_differences",
]

CHECKPOINT_KEYS = ("epoch", "step", "model", "optimizer", "scheduler", "scaler", "rng", "config", "history")
_PATTERN = re.compile(r"^checkpoint-(\d{5,})(?:-step(\d{7,}))?\.pt$")


def checkpoint_path(directory: PathLike, epoch: int, step: Optional[int] = None) -> Path:
    """The file of the checkpoint after ``epoch`` completed epochs (and ``step`` global steps).

    Parameters
    ----------
    directory : str or os.PathLike
        The run directory.
    epoch : int
        Completed epochs.
    step : int, optional
        The global step of a checkpoint in the middle of the next epoch.

    Returns
    -------
    pathlib.Path
        ``directory/checkpoint-{epoch:05d}.pt``, or ``directory/checkpoint-{epoch:05d}-step{step:07d}.pt``
        with ``step``.

    Examples
    --------
    >>> checkpoint_path("run", 3, 170).name
    'checkpoint-00003-step0000170.pt'
    """
    suffix = "" if step is None else f"-step{step:07d}"
    return Path(directory) / f"checkpoint-{epoch:05d}{suffix}.pt"


def list_checkpoints(directory: PathLike) -> list[Path]:
    """The checkpoint files of ``directory``, oldest first.

    Parameters
    ----------
    directory : str or os.PathLike
        The run directory (need not exist).

    Returns
    -------
    list of pathlib.Path
        Ordered by completed epochs, then by global step (an epoch's end first); empty when there are none.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    matches = [(m, p) for p in directory.iterdir() if (m := _PATTERN.match(p.name))]
    return [p for _, p in sorted(((int(m.group(1)), int(m.group(2) or -1)), p) for m, p in matches)]


def atomic_save(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (:func:`gcalib.training.run_files.atomic_write`).

    Parameters
    ----------
    obj : Any
        What to save (a state dict, a checkpoint).
    path : str or os.PathLike
        The file to create or replace.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def save_checkpoint(state: Mapping[str, Any], directory: PathLike, keep: int = 2) -> Path:
    """Write a checkpoint atomically, then delete all but the newest ``keep`` checkpoint files.

    Parameters
    ----------
    state : dict
        Holds :data:`CHECKPOINT_KEYS`; it is the checkpoint of ``state["epoch"]`` completed epochs, or, when
        its optional ``state["step_in_epoch"]`` is > 0, of global step ``state["step"]`` in the next epoch.
    directory : str or os.PathLike
        The run directory; created when missing.
    keep : int, default 2
        Checkpoint files to keep, >= 1.

    Returns
    -------
    pathlib.Path
        The file written (:func:`checkpoint_path`).

    Raises
    ------
    ValueError
        When ``state`` lacks checkpoint keys or ``keep`` < 1.
    """
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise ValueError(f"state is missing checkpoint keys {missing}; expected all of {CHECKPOINT_KEYS}")
    check_int("keep", keep, 1)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    step = int(state["step"]) if state.get("step_in_epoch", 0) else None
    path = atomic_save(dict(state), checkpoint_path(directory, int(state["epoch"]), step))
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink()
    return path


def load_latest(directory: PathLike, map_location: Union[str, torch.device] = "cpu") -> Optional[tuple[dict, Path]]:
    """The newest readable checkpoint of ``directory``.

    An unreadable or incomplete file is reported with a ``RuntimeWarning`` and skipped in favour of the
    previous one.

    Parameters
    ----------
    directory : str or os.PathLike
        The run directory.
    map_location : str or torch.device, default "cpu"
        Where the tensors are loaded (``torch.load``'s ``map_location``).

    Returns
    -------
    tuple of (dict, pathlib.Path) or None
        ``(state, path)``, or ``None`` when there is no checkpoint file.

    Raises
    ------
    RuntimeError
        When checkpoint files exist but none can be read, so that a run never silently restarts over them.
    """
    paths = list_checkpoints(directory)
    for path in reversed(paths):
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
            missing = [k for k in CHECKPOINT_KEYS if k not in state]
            if missing:
                raise ValueError(f"missing keys {missing}")
        except Exception as error:  # any unreadable file is skipped, and reported
            warnings.warn(f"checkpoint {path} is corrupt or incomplete ({type(error).__name__}: {error}); "
                          f"falling back to the previous checkpoint", RuntimeWarning, stacklevel=2)
            continue
        return state, path
    if paths:
        raise RuntimeError(f"none of the checkpoints in {directory} can be read ({[p.name for p in paths]}); "
                           f"move them away to start afresh")
    return None


def rng_state() -> dict:
    """The states of the python, numpy, torch CPU and (when available) CUDA generators.

    Returns
    -------
    dict
        ``{"python", "numpy", "torch", "cuda"}``, loadable with ``torch.load(weights_only=True)`` once saved.
    """
    algorithm, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"algorithm": algorithm, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the generators captured by :func:`rng_state`.

    Parameters
    ----------
    state : dict
        A result of :func:`rng_state` (also after a save and load).
    """
    random.setstate(_as_tuple(state["python"]))
    np_state = state["numpy"]
    np.random.set_state((np_state["algorithm"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> list[str]:
    """The fields whose values differ between two config dicts.

    Parameters
    ----------
    saved, current : dict
        Configs as dicts (:meth:`gcalib.training.config.PretrainConfig.to_dict`); a field missing from one
        counts as ``"<absent>"``.
    ignore : tuple of str, default ()
        Fields not compared.

    Returns
    -------
    list of str
        ``"name: saved -> current"`` (values as repr), sorted by name.

    Examples
    --------
    >>> config_differences({"lr": 0.1, "seed": 0}, {"lr": 0.2, "seed": 0})
    ['lr: 0.1 -> 0.2']
    """
    out = []
    for key in sorted(set(saved) | set(current)):
        if key in ignore:
            continue
        if saved.get(key, "<absent>") != current.get(key, "<absent>"):
            out.append(f"{key}: {saved.get(key, '<absent>')!r} -> {current.get(key, '<absent>')!r}")
    return out
