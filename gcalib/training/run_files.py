"""Files of a run directory: atomic writes, JSON in and out, and the check that a directory is writable.

Every file a run writes (checkpoints, ``history.json``, ``metrics.json``, the experiment summaries) goes
through :func:`atomic_write`: the bytes go to a temporary file in the same directory, are flushed and
fsync'ed, then renamed over the final name with ``os.replace``, so a reader sees the old file or the new
one, never a partial one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any, Callable, Union

__all__ = ["PathLike", "atomic_write", "check_out_dir", "read_json", "write_json"]

PathLike = Union[str, os.PathLike]


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file atomically: ``write(handle)`` into a temporary file beside ``path``, then rename it.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace; its directory must exist.
    write : callable
        Called once with a binary file handle open for writing (e.g. ``lambda f: torch.save(obj, f)``).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_directory(path.parent)
    return path


def write_json(obj: Any, path: PathLike) -> Path:
    """Write ``obj`` as indented JSON, atomically (:func:`atomic_write`).

    Parameters
    ----------
    obj : Any
        A JSON-serialisable object; values JSON cannot represent (paths, dtypes) are written as ``str(value)``.
    path : str or os.PathLike
        The file to create or replace.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     read_json(write_json({"loss": 0.5}, Path(folder) / "metrics.json"))
    {'loss': 0.5}
    """
    text = json.dumps(obj, indent=2, default=str) + "\n"
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def read_json(path: PathLike) -> Any:
    """The object held by the JSON file ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        A JSON file, e.g. one written by :func:`write_json`.

    Returns
    -------
    Any
        The decoded object.

    Raises
    ------
    OSError
        When the file cannot be read.
    ValueError
        When it does not hold valid JSON (``json.JSONDecodeError``).
    """
    return json.loads(Path(path).read_text())


def check_out_dir(out_dir: PathLike) -> Path:
    """Create ``out_dir`` if needed and check that a file can be written in it.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The output directory of a run.

    Returns
    -------
    pathlib.Path
        ``out_dir`` as a path.

    Raises
    ------
    ValueError
        When the directory cannot be created or written to (the message names it and the reason).
    """
    path = Path(out_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"out_dir {str(out_dir)!r} is not a writable directory ({error.strerror or error})") from error
    return path
