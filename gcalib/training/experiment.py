"""What the experiment drivers share: their seeds, and results saved as JSON, a table and a figure.

An experiment (:func:`gcalib.training.compare.compare`, :func:`gcalib.training.sweep.domain_sweep`)
pretrains one encoder per setting and seed, and keeps every run's metrics, a summary of mean ± sample
std over seeds (:mod:`gcalib.training.tables`) and reference rows. Its result class derives from
:class:`ExperimentResult`, which writes it to a directory and reads it back.
"""
from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence, TypeVar

from ..validation import check_int, check_sequence
from .run_files import PathLike, read_json, write_json

__all__ = ["ExperimentResult", "check_seeds"]

_Result = TypeVar("_Result", bound="ExperimentResult")


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """``seeds`` as a list, checked: a non-empty sequence of distinct ints >= 0.

    Parameters
    ----------
    seeds : sequence of int

    Returns
    -------
    list of int

    Raises
    ------
    TypeError
        When ``seeds`` is not a sequence, or holds something that is not an int.
    ValueError
        When it is empty, holds a negative seed or lists a seed twice.

    Examples
    --------
    >>> check_seeds((0, 3, 7))
    [0, 3, 7]
    """
    seeds = check_sequence("seeds", seeds, lambda name, seed: check_int(name, seed, 0))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds lists a seed twice: {seeds!r}")
    return seeds


class ExperimentResult(abc.ABC):
    """Base of the experiments' result dataclasses: the JSON file, the table and the figures they save.

    A subclass is a dataclass with the fields ``out_dir`` (``None`` until saved) and ``files`` (name → path
    of what :meth:`save` wrote), and sets :attr:`JSON_NAME` and :attr:`JSON_KEYS`; it implements
    :meth:`table` and :meth:`_write_extra_files`.

    Attributes
    ----------
    JSON_NAME : str
        Name of the JSON file :meth:`save` writes (``compare.json``, ``sweep.json``).
    JSON_KEYS : tuple of str
        The keys of :meth:`to_dict`, in order: fields of the dataclass, ``"table"`` (the lines of
        :meth:`table`) and ``"out_dir"`` (as a str).
    """

    JSON_NAME: ClassVar[str]
    JSON_KEYS: ClassVar[tuple[str, ...]]
    out_dir: Optional[Path]
    files: dict

    @abc.abstractmethod
    def table(self) -> str:
        """The result as a plain-text table.

        Returns
        -------
        str
        """

    @abc.abstractmethod
    def _write_extra_files(self, out: Path) -> dict[str, Path]:
        """Write the files other than the JSON (table, figure) into ``out``; return name → path."""

    def to_dict(self) -> dict:
        """The result as a JSON-ready dict with the keys :attr:`JSON_KEYS`.

        Returns
        -------
        dict
        """
        out: dict[str, Any] = {}
        for key in self.JSON_KEYS:
            if key == "table":
                out[key] = self.table().splitlines()
            elif key == "out_dir":
                out[key] = None if self.out_dir is None else str(self.out_dir)
            else:
                value = getattr(self, key)
                out[key] = list(value) if isinstance(value, (list, tuple)) else value
        return out

    def save(self, out_dir: PathLike) -> dict[str, Path]:
        """Write the JSON file (:meth:`to_dict`), the table and figures into ``out_dir``.

        Sets :attr:`out_dir` and :attr:`files`.

        Parameters
        ----------
        out_dir : str or os.PathLike
            The directory; created when missing.

        Returns
        -------
        dict of str to pathlib.Path
            ``"json"`` and the subclass's other files (``"figure"``, ``"table"``) → their paths.

        The JSON file is written first; without matplotlib the figures are skipped with a warning.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.out_dir = out
        self.files = {"json": out / self.JSON_NAME}
        write_json(self.to_dict(), self.files["json"])
        self.files.update(self._write_extra_files(out))
        return dict(self.files)

    @classmethod
    def load(cls: type[_Result], path: PathLike) -> _Result:
        """Read a result back from the JSON file its :meth:`save` wrote.

        Parameters
        ----------
        path : str or os.PathLike
            The JSON file (e.g. ``runs/sweep/sweep.json``).

        Returns
        -------
        ExperimentResult
            An instance of the class it is called on, with ``out_dir`` as saved (``None`` when the file has
            none) and no ``files``.

        Raises
        ------
        ValueError
            When the file is not JSON or lacks fields of the result (the message lists them).
        OSError
            When the file cannot be read.
        """
        data = read_json(path)
        names = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("out_dir", "files")]
        missing = [name for name in names if not isinstance(data, dict) or name not in data]
        if missing:
            raise ValueError(f"{path} is not a {cls.JSON_NAME} written by {cls.__name__}.save: it lacks {missing}")
        out_dir = data.get("out_dir")
        return cls(**{name: data[name] for name in names}, out_dir=None if out_dir is None else Path(out_dir))
