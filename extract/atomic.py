"""Atomic file writes: every stage writes through here, so a killed run never leaves half a file."""

import os
from contextlib import contextmanager
from pathlib import Path

PARTIAL = ".partial"
"""Marker in the name of a file still being written (see :func:`partial_path`)."""


def partial_path(path: Path, label: str = "") -> Path:
    """The hidden temporary name beside ``path`` (``.<stem>.<label><pid>.partial<suffix>``) that
    a file has while it is written; it keeps ``path``'s suffix, so writers that infer the
    format from it (soundfile, OpenCV, h5py) work."""
    return path.with_name(f".{path.stem}.{label}{os.getpid()}{PARTIAL}{path.suffix}")


def move_into_place(tmp: Path, path: Path) -> None:
    """fsync the written file ``tmp`` and rename it to ``path`` in one step."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@contextmanager
def atomic_path(path):
    """Yield a hidden temporary path beside ``path`` (:func:`partial_path`); on success fsync
    it and move it into place; on failure it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        yield tmp
        move_into_place(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
