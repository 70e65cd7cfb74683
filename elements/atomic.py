"""Atomic file writes: a crash or a kill leaves either the old file or the new one, never half of one.

Every output a person or a resumable job relies on (saved elements, PNGs, specs, CSVs, caches)
goes through :func:`atomic_write`: write to a unique temporary name in the same folder, then
``os.replace`` onto the target (atomic on POSIX and Windows within one filesystem).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def atomic_write(path, write) -> Path:
    """Call ``write(tmp_path: str)`` then rename the temporary file onto ``path``; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text(path, text: str) -> Path:
    return atomic_write(path, lambda p: Path(p).write_text(text, encoding="utf-8"))


def copy_file(src, dst) -> Path:
    return atomic_write(dst, lambda p: shutil.copyfile(src, p))
