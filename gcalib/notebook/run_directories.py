"""Where a pretraining run lives: ``root/<name>-<digest>``, the digest covering every config field that
changes the computed numbers.

So ``pretrain(replace(config, out_dir=run_directory(root, config), resume=True))`` is *load-or-train*: a
finished run is loaded (only re-evaluated), an interrupted one continues from its newest checkpoint, and a
changed config gets a fresh directory. A dataset object is identified by the content of its data (its
:meth:`gcalib.training.data.ImageDataset.fingerprint` and normalisation), never by its repr.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Optional, Union

from ..training.config import RESUME_FREE_FIELDS, PretrainConfig
from ..training.data import ImageDataset
from ..validation import check_int

__all__ = ["config_digest", "run_directory"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _data_identity(dataset: Any) -> str:
    """A dataset object's content: the fingerprint of its labels, domains, images and renderings, and its
    normalisation constants (the numbers a run computes depend on both)."""
    data = ImageDataset.from_dataset(dataset)
    return f"sha1:{data.fingerprint()} mean:{list(data.mean)} std:{list(data.std)}"


def _dataset_name(dataset: Any) -> str:
    """A dataset's name as a file name: the name itself, or a dataset object's ``name`` attribute (else its
    type's name) with every run of other characters than letters, digits, '.', '_', '-' replaced by '_'."""
    if isinstance(dataset, str):
        return dataset
    name = _UNSAFE.sub("_", str(getattr(dataset, "name", type(dataset).__name__))).lstrip("._-")
    return name or "dataset"


def config_digest(config: PretrainConfig, length: int = 10) -> str:
    """Hex digest of the config fields that change a run's numbers.

    SHA-256 of ``config.to_dict()`` as sorted JSON, without the fields a resumed run may change
    (:data:`gcalib.training.config.RESUME_FREE_FIELDS`: progress, out_dir, device, …). A dataset object (in
    ``dataset`` or ``test_dataset``) enters through its content (fingerprint of the data and its
    normalisation), so equal data gives equal digests and different data different ones; a dataset object
    that is not a :class:`gcalib.training.data.ImageDataset` is read once to fingerprint it, as
    :func:`gcalib.training.trainer.pretrain` reads it before training.

    Parameters
    ----------
    config : PretrainConfig
        The run's configuration.
    length : int
        Number of hex characters kept, in [1, 64].

    Returns
    -------
    str
        The first ``length`` hex characters of the digest.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`gcalib.PretrainConfig`.
    ValueError
        If ``length`` is outside [1, 64].
    """
    if not isinstance(config, PretrainConfig):
        raise TypeError(f"config must be a PretrainConfig, got {type(config).__name__}")
    check_int("length", length, 1, 64)
    fields = {k: v for k, v in config.to_dict().items() if k not in RESUME_FREE_FIELDS}
    for key in ("dataset", "test_dataset"):
        value = getattr(config, key)
        if value is not None and not isinstance(value, str):
            fields[key] = _data_identity(value)
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def run_directory(root: Union[str, os.PathLike], config: PretrainConfig, name: Optional[str] = None) -> Path:
    """The directory of the run of ``config``: ``root / f"{name}-{config_digest(config)}"``. Creates nothing.

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding the runs.
    config : PretrainConfig
        The run's configuration.
    name : str, optional
        A file name of letters, digits, '.', '_' or '-'; defaults to ``"{dataset}-{arch}-{loss}"``, where a
        dataset object contributes its ``name`` attribute (else its type's name) as a file name.

    Returns
    -------
    pathlib.Path
        The run's directory.

    Raises
    ------
    TypeError
        If ``root`` is not a path or ``config`` not a :class:`gcalib.PretrainConfig`.
    ValueError
        If ``name`` is not a plain file name.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path, got {type(root).__name__}")
    digest = config_digest(config)
    if name is None:
        name = f"{_dataset_name(config.dataset)}-{config.arch}-{config.loss}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name must be a non-empty file name of letters, digits, '.', '_' or '-', got {name!r}")
    return Path(root) / f"{name}-{digest}"
