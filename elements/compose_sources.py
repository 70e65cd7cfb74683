"""Loading the other image of a ``compose`` edit (Sec. 4.3): a saved elements folder, or an image to partition.

Applying edits (:mod:`elements.apply`) never reads files or builds models itself: whoever applies
a spec passes a loader ``source -> ImageElements``. The command line and the editor session pass
:func:`compose_loader`; the demo's ``/edit`` endpoint passes none (it refuses compose edits,
whose ``source`` would name a file on the server).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from elements.errors import UserError, excerpt
from elements.types import ImageElements

#: ``source -> ImageElements``: what :func:`elements.apply.apply_edits` calls for each compose edit.
LoadOther = Callable[[str], ImageElements]


def _partitioner_like(like: ImageElements | None):
    """A partitioner with the backend and element count recorded in ``like.meta["partition"]``."""
    from elements.partition import Partitioner
    from elements.partition.options import BACKENDS

    info = like.meta.get("partition", {}) if like is not None else {}
    backend = info.get("backend", "auto")
    return Partitioner(backend if backend in BACKENDS else "auto", num_elements=int(info.get("num_elements", 256)))


def compose_loader(partitioner=None, base_dir=None, like: ImageElements | None = None) -> LoadOther:
    """``source -> ImageElements`` for compose: a folder saved by ``ImageElements.save`` or an image to partition.

    ``source`` is a path; relative ones are looked up in ``base_dir`` (default: the working
    directory; ``~`` is not expanded). Images are partitioned with ``partitioner`` or, by default,
    with the backend and element count recorded in ``like.meta["partition"]``, so both images are
    cut the same way (that partitioner is built on the first image source). Each source is read
    once per loader. Problems raise UserError with one sentence.
    """
    cache: dict[str, ImageElements] = {}
    part = [partitioner]

    def load(source: str) -> ImageElements:
        try:  # a name too long or with NUL is one sentence, not OSError/ValueError
            path = Path(source)
            if not path.is_absolute():
                path = Path(base_dir or ".") / path
            key = str(path.resolve())
            is_dir, exists = path.is_dir(), path.exists()
        except (OSError, ValueError) as err:
            raise UserError(f"Compose source {excerpt(source)} is not a usable file name.") from err
        if key in cache:
            return cache[key]
        if is_dir:
            try:
                other = ImageElements.load(path)
            except ValueError as err:
                raise UserError(f"Compose source '{source}': {err}.") from err
        else:
            if not exists:
                raise UserError(f"Compose source '{source}' does not exist (looked for {path}).")
            if part[0] is None:
                part[0] = _partitioner_like(like)
            other = part[0](path)
        cache[key] = other
        return other

    return load


__all__ = ["LoadOther", "compose_loader"]
