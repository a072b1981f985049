"""Atomic file writes: every stage writes through here, so a killed run never leaves half a file."""

import os
from contextlib import contextmanager
from pathlib import Path

PARTIAL = ".partial"
"""Marker in the name of a file still being written (``.<stem>.<pid>.partial<suffix>``)."""


@contextmanager
def atomic_path(path):
    """Yield a hidden temporary path beside ``path``; on success fsync it and move it into place.

    The temporary name keeps ``path``'s suffix, so writers that infer the format from it
    (soundfile, OpenCV) work; on failure it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}{PARTIAL}{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
