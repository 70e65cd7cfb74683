"""The functions the demo's events call: plain Python, testable without a browser or a server.

Each handler takes the tab's :class:`~elements.ui.session.AppSession` (None before the first
upload) plus the event's inputs and returns the session first, then what the UI shows.
Edits are spec edit dicts applied through :class:`~elements.editor.EditorSession.apply`, the
same path the ``edit`` CLI and the ``edit`` API take, so the downloaded spec replays exactly
what the visitor did. A :class:`~elements.errors.UserError` — or any bug — reaches the browser
as one ``gr.Error`` sentence, never a traceback (:func:`user_errors`).

Click positions (``gr.SelectData.index``) are ``[x, y]`` pixels of the displayed overlay,
which is drawn at the input's size, so they are input pixels.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import gradio as gr
import numpy as np

from elements import edit as ops
from elements.errors import UserError
from elements.ui import backends
from elements.ui.session import AppSession, OtherImage, load_for_app, partition
from elements.ui.view import draw, element_under, elements_in_mask

log = logging.getLogger("elements.app")

#: Click modes of the main image: (label, value).
MODES = [("Select element", "select"), ("Select object (SAM)", "object"),
         ("Move selection here", "move"), ("Place composed elements here", "place")]
MAX_CANDIDATES = 4


def user_errors(fn):
    """Turn UserError into ``gr.Error(sentence)``; log anything else and show one generic sentence."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except UserError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception as err:  # a bug: keep the traceback in the server log, not in the browser
            log.exception("handler %s failed", fn.__name__)
            raise gr.Error(f"Something went wrong on the server ({type(err).__name__}); please try again.",
                           print_exception=False) from None

    return wrapper


def _need_image(session: AppSession | None) -> AppSession:
    if session is None or not session.has_image:
        raise UserError("Upload an image or pick an example first.")
    return session


def _need_selection(session: AppSession) -> tuple[int, ...]:
    if not session.selection:
        raise UserError("The selection is empty; click some elements first.")
    return session.selection


def status(session: AppSession | None) -> str:
    """One Markdown line about the current state (and any downscaling note)."""
    if session is None or not session.has_image:
        return "Upload an image or pick an example."
    el = session.elements
    deleted = int((~el.active).sum())
    parts = [f"{int(el.active.sum())} elements", f"{len(session.selection)} selected",
             f"{int((el.edited & el.active).sum())} edited", f"{deleted} deleted"]
    ed = session.editor
    parts.append("undo ✓" if ed.can_undo else "undo –")
    parts.append("redo ✓" if ed.can_redo else "redo –")
    text = " · ".join(parts)
    return f"{text}\n\n{session.note}" if session.note else text


def _shown(session: AppSession):
    return session, draw(session.view(), session.selection), status(session)


# --- image -------------------------------------------------------------------------------------
@user_errors
def on_image(session: AppSession | None, image):
    """A new input (upload, example, "use as input"): partition it once. Returns (session, overlay, status, gallery)."""
    session = session or AppSession()
    with session.lock:
        if image is None:
            session.editor, session.note, session.selection, session.candidates = None, "", (), []
            return session, None, status(session), []
        loaded, note = load_for_app(image)
        el, emb = partition(loaded)
        session.start(el, emb, note)
        return (*_shown(session), [])


@user_errors
def on_click(session: AppSession | None, mode: str, factor: float, evt: gr.SelectData):
    """A click on the overlay, by mode: toggle an element, select a SAM object, move there, or place the paste."""
    session = _need_image(session)
    with session.lock:
        x, y = (float(v) for v in evt.index)
        if mode == "select":
            k = element_under(session.view(), x, y)
            if k is None:
                raise UserError(f"No element lies under ({x:g}, {y:g}); that pixel is empty.")
            sel = set(session.selection)
            sel ^= {k}
            session.selection = tuple(sorted(sel))
        elif mode == "object":
            session.selection = tuple(sorted(set(session.selection) | set(_object_at(session, x, y).tolist())))
        elif mode == "move":
            sel = _need_selection(session)
            el = session.elements
            cx, cy = el.geometry.norm_to_input(ops.selection_centroid(el, sel))
            _apply(session, {"op": "move", "elements": list(sel), "dx": x - cx, "dy": y - cy})
        elif mode == "place":
            _place(session, x, y, factor)
        else:
            raise UserError(f"Unknown click mode '{mode}'.")
        return _shown(session)


def _object_at(session: AppSession, x: float, y: float) -> np.ndarray:
    """Elements mostly inside SAM's mask for a point prompt at input pixel (x, y)."""
    ok, why = backends.object_mode_status()
    if not ok or session.sam_embedding is None:
        raise UserError(f"Object selection is not available: {why}.")
    view = session.view()
    g = session.elements.geometry
    point = g.input_to_norm([x, y])[None]
    affinity = backends.sam_affinity()
    with backends.MODEL_LOCK:
        affinity.restore_embedding(session.sam_embedding)
        mask = affinity(point, g.size)[0] > 0.5  # sigmoid(logit) > 0.5: SAM's own mask threshold
    ids = elements_in_mask(view, mask)
    if ids.size == 0:
        raise UserError(f"SAM found no object at ({x:g}, {y:g}).")
    return ids


def _apply(session: AppSession, edit: dict) -> None:
    try:
        session.editor.apply(edit)
    except UserError as err:  # the spec's "Edit 1 (op)" numbering means nothing to a clicking visitor
        raise UserError(err.message) from None
    session.prune_selection()


def _place(session: AppSession, x: float, y: float, factor: float) -> None:
    other = session.other
    if other is None or not other.selection:
        raise UserError("To compose, load a second image below and click the elements to paste first.")
    n0 = session.elements.num_elements
    _apply(session, {"op": "compose", "source": other.folder, "elements": list(other.selection),
                     "at": [x, y], "factor": float(factor)})
    el = session.elements
    session.selection = tuple(i for i in range(n0, el.num_elements) if el.active[i])


# --- selection and edit buttons ----------------------------------------------------------------
@user_errors
def clear_selection(session):
    session = _need_image(session)
    with session.lock:
        session.selection = ()
        return _shown(session)


@user_errors
def move_by(session, dx: float, dy: float):
    """Move the selection by (dx, dy) input pixels."""
    session = _need_image(session)
    with session.lock:
        sel = _need_selection(session)
        if not dx and not dy:
            raise UserError("Set dx or dy to a non-zero number of pixels first.")
        _apply(session, {"op": "move", "elements": list(sel), "dx": float(dx), "dy": float(dy)})
        return _shown(session)


@user_errors
def scale(session, factor: float):
    """Scale the selection about its area-weighted centre."""
    session = _need_image(session)
    with session.lock:
        sel = _need_selection(session)
        _apply(session, {"op": "scale", "elements": list(sel), "factor": float(factor)})
        return _shown(session)


@user_errors
def delete(session):
    session = _need_image(session)
    with session.lock:
        sel = _need_selection(session)
        _apply(session, {"op": "delete", "elements": list(sel)})
        session.selection = ()
        return _shown(session)


@user_errors
def undo(session):
    session = _need_image(session)
    with session.lock:
        session.editor.undo()
        session.prune_selection()
        return _shown(session)


@user_errors
def redo(session):
    session = _need_image(session)
    with session.lock:
        session.editor.redo()
        session.prune_selection()
        return _shown(session)


@user_errors
def reset(session):
    session = _need_image(session)
    with session.lock:
        session.editor.reset()
        session.selection = ()
        return _shown(session)


# --- composition -------------------------------------------------------------------------------
@user_errors
def on_other_image(session, image):
    """The second image of a composition: partition it and save it as this session's compose source."""
    session = _need_image(session)
    with session.lock:
        if image is None:
            session.other = None
            return session, None, status(session)
        loaded, note = load_for_app(image, what="The second image")
        el, _ = partition(loaded)
        k = len(list(session.workdir.glob("compose-*")))
        folder = session.workdir / f"compose-{k}"
        el.save(folder)
        name = Path(image).name if isinstance(image, (str, Path)) else f"compose-{k}.png"
        session.other = OtherImage(el, str(folder), name, note)
        session.compose_names[str(folder)] = name
        return session, draw(session.other.current_view()), _other_status(session)


@user_errors
def on_other_click(session, evt: gr.SelectData):
    """Toggle an element of the second image in the paste selection."""
    session = _need_image(session)
    with session.lock:
        other = session.other
        if other is None:
            raise UserError("Load a second image first.")
        x, y = (float(v) for v in evt.index)
        k = element_under(other.current_view(), x, y)
        if k is None:
            raise UserError(f"No element lies under ({x:g}, {y:g}) in the second image.")
        other.selection = tuple(sorted(set(other.selection) ^ {k}))
        return session, draw(other.current_view(), other.selection), _other_status(session)


def _other_status(session: AppSession) -> str:
    o = session.other
    text = (f"{len(o.selection)} elements of the second image selected; choose 'Place composed elements here' "
            "and click the main image where they should go.")
    return f"{text}\n\n{o.note}" if o.note else text


__all__ = ["MAX_CANDIDATES", "MODES", "clear_selection", "delete", "move_by", "on_click", "on_image", "on_other_click",
           "on_other_image", "redo", "reset", "scale", "status", "undo", "user_errors"]
