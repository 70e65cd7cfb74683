"""Applying an edit spec's edits to :class:`~elements.types.ImageElements`, in order.

>>> spec = load_spec("edit.json")                                    # elements.spec: parsing only
>>> edited = apply_spec(el, spec, load_other=compose_loader(base_dir=spec.base_dir, like=el))

Each edit dict (already validated by :mod:`elements.spec`) selects elements (ids, points or a
rectangle, :func:`select`) and calls one pure edit of :mod:`elements.edit`. Compose edits read
their other image through ``load_other`` (:mod:`elements.compose_sources`), which the caller
passes in: applying edits reads no file and builds no model. Without a loader compose edits are
refused with one sentence.

Re-moving repositions (coalescing rule)
----------------------------------------
Consecutive ``move`` / ``scale`` edits of the **same elements** (the same resolved ids), with
``collide`` on and no other edit between them, form one *run*: the collision rule of
:mod:`elements.edit` is applied once, against the run's final placement, not after every step.
Dragging a selection twice therefore moves it from its first drop point to its second without
punching a second hole, and the elements the first drop covered come back when the second drop
uncovers them. :func:`apply_spec`, :func:`elements.editor.edit_image` (the ``edit`` CLI and the
demo's ``/edit`` endpoint) and :class:`~elements.editor.EditorSession` (one undo step per edit,
same result) all go through :func:`apply_edits`, so a replayed spec gives exactly what the session
showed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from elements import edit as ops
from elements.compose_sources import LoadOther
from elements.errors import UserError
from elements.selection import select_ids, select_points, select_rect
from elements.spec import OPS, load_spec
from elements.types import ImageElements

#: Ops whose consecutive edits of the same elements are coalesced into one run (module docstring).
COALESCED_OPS = ("move", "scale")


def select(el: ImageElements, e: dict, *, allow_deleted: bool = False) -> np.ndarray:
    """The element ids ``(M,) int64`` an edit dict selects (``elements`` / ``points`` / ``rect``, input pixels)."""
    if "elements" in e:
        return select_ids(el, e["elements"], allow_deleted=allow_deleted)
    if "points" in e:
        return select_points(el, e["points"])
    return select_rect(el, e["rect"])


@dataclass(frozen=True)
class OpenRun:
    """A coalescing run still open after some edits: its element ids and their placement *before* collisions.

    ``ids``: sorted int ids the run moves/scales. ``placed``: the value with every edit of the run
    applied with ``collide=False``; the visible value is ``collide_with(placed, ids)``.
    """

    ids: tuple[int, ...]
    placed: ImageElements


def _transform(el: ImageElements, e: dict, ids) -> ImageElements:
    if e["op"] == "move":
        return ops.move(el, ids, float(e["dx"]), float(e["dy"]), collide=False)
    return ops.scale(el, ids, float(e["factor"]), collide=False)


def _no_loader(source: str) -> ImageElements:
    raise UserError("Compose edits are not accepted here: nothing was given to load their other image.")


def _one(el: ImageElements, e: dict, load_other: LoadOther) -> ImageElements:
    """One edit that does not continue a coalescing run."""
    op, collide = e["op"], bool(e.get("collide", True))
    if op == "move":
        return ops.move(el, select(el, e), float(e["dx"]), float(e["dy"]), collide=collide)
    if op == "scale":
        return ops.scale(el, select(el, e), float(e["factor"]), collide=collide)
    if op == "delete":
        return ops.delete(el, select(el, e, allow_deleted=True))
    if op == "compose":
        other = load_other(e["source"])
        return ops.compose(el, other, select(other, e), e["at"], float(e.get("factor", 1.0)), collide=collide)
    raise UserError(f"Unknown op {op!r}; choose one of {', '.join(OPS)}.")


def apply_edits(
    el: ImageElements,
    edits,
    *,
    load_other: LoadOther | None = None,
    run: OpenRun | None = None,
    first: int = 1,
) -> tuple[ImageElements, OpenRun | None]:
    """Apply validated edit dicts in order with the coalescing rule; returns ``(value, open run or None)``.

    ``load_other``: ``source -> ImageElements`` for compose edits (None: compose edits are refused).
    ``run``: the run left open by earlier edits of ``el`` (from a previous call), so that edits
    applied one call at a time give the same value as all of them at once. ``first``: the number
    of the first edit in error messages (``Edit 3 (move): ...``); 0 = no prefix.
    """
    load_other = load_other or _no_loader
    for i, e in enumerate(edits, first):
        try:
            if e["op"] in COALESCED_OPS and bool(e.get("collide", True)):
                ids = select(el, e)
                key = tuple(int(v) for v in ids)
                placed = run.placed if run is not None and run.ids == key else el
                placed = _transform(placed, e, ids)
                run = OpenRun(key, placed)
                el = ops.collide_with(placed, ids)
            else:
                run = None
                el = _one(el, e, load_other)
        except UserError as err:
            if not first:
                raise
            raise err.for_edit(i, e["op"]) from err
    return el, run


def apply_edit(el: ImageElements, e: dict, *, load_other: LoadOther | None = None) -> ImageElements:
    """Apply one validated edit dict on its own (no coalescing); raises UserError (without the edit number)."""
    return apply_edits(el, [e], load_other=load_other, first=0)[0]


def apply_spec(el: ImageElements, spec, *, load_other: LoadOther | None = None) -> ImageElements:
    """Apply every edit of ``spec`` to ``el``, in order, coalescing runs.

    ``spec``: an :class:`~elements.spec.EditSpec`, or anything :func:`~elements.spec.load_spec`
    reads (a trusted path, JSON text or dict; it is parsed first). ``load_other`` as in
    :func:`apply_edits`; relative compose sources are the loader's business
    (``compose_loader(base_dir=spec.base_dir)``). An empty edit list returns ``el`` itself
    (reconstruction).
    """
    return apply_edits(el, load_spec(spec).edits, load_other=load_other)[0]


__all__ = ["COALESCED_OPS", "OpenRun", "apply_edit", "apply_edits", "apply_spec", "select"]
