"""The functions the demo's events call: plain Python, testable without a browser or a server.

Each handler takes the tab's :class:`~elements.ui.session.AppSession` (None before the first
upload) plus the event's inputs and returns the session first, then what the UI shows.
Edits are spec edit dicts applied through :class:`~elements.editor.EditorSession.apply`, the
same path the ``edit`` CLI and the ``edit`` API take, so the downloaded spec replays exactly
what the visitor did. A :class:`~elements.errors.UserError` — or any bug — reaches the browser
as one ``gr.Error`` sentence, never a traceback (:func:`user_errors`).

The main image is the canvas (:mod:`elements.ui.canvas`): each gesture arrives as one small
JSON event (:func:`on_gesture`) whose coordinates are input pixels, and becomes at most one
spec edit. Clicks on the second image of a composition (``gr.SelectData.index``) are pixels of
its overlay, drawn at its input size.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path

import gradio as gr
import numpy as np

from elements.errors import UserError
from elements.partition.objects import select_object as sam_select
from elements.ui import backends
from elements.ui.canvas import canvas_value, parse_gesture
from elements.ui.session import AppSession, OtherImage, load_for_app, partition
from elements.ui.view import draw, element_under

log = logging.getLogger("elements.app")

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
            raise gr.Error(str(err), print_exception=False) from err
        except Exception as err:  # a bug: keep the traceback in the server log, not in the browser
            log.exception("handler %s failed", fn.__name__)
            raise gr.Error(  # no exception class name: it tells a visitor nothing and the log has it all
                "Something went wrong on the server; please try again.", print_exception=False
            ) from err

    return wrapper


def need_image(session: AppSession | None) -> AppSession:
    if session is None or not session.has_image:
        raise UserError("Upload an image or pick an example first.")
    return session


def _need_selection(session: AppSession) -> tuple[int, ...]:
    if not session.selection:
        raise UserError("The selection is empty; click some elements first.")
    return session.selection


def status(session: AppSession | None, message: str = "") -> str:
    """One Markdown line about the current state (and any downscaling note or one-line message)."""
    if session is None or not session.has_image:
        text = "Upload an image or pick an example."
        return f"{message}\n\n{text}" if message else text
    el = session.elements
    deleted = int((~el.active).sum())
    parts = [
        f"{int(el.active.sum())} elements",
        f"{len(session.selection)} selected",
        f"{int((el.edited & el.active).sum())} edited",
        f"{deleted} deleted",
    ]
    ed = session.editor
    parts.append("undo ✓" if ed.can_undo or session.past else "undo –")
    parts.append("redo ✓" if ed.can_redo or session.future else "redo –")
    text = " · ".join(parts)
    for extra in (session.note, message):
        if extra:
            text += f"\n\n{extra}"
    return text


def _canvas(session: AppSession) -> dict:
    """The canvas value; the preview image travels only when the shown elements changed."""
    view = session.view()
    with_image = session.sent_rev != session.view_rev
    session.sent_rev = session.view_rev
    ok, _ = backends.object_mode_status()
    other = session.other
    return canvas_value(
        view,
        rev=session.view_rev,
        selection=session.selection,
        seq=session.seq,
        with_image=with_image,
        object_mode=ok and session.sam_embedding is not None,
        place=other is not None and bool(other.selection),
    )


def _shown(session: AppSession, message: str = ""):
    return session, _canvas(session), status(session, message)


# --- image -------------------------------------------------------------------------------------
def _file_key(image) -> str | None:
    """A content hash of an uploaded file, so the change event a widget reset fires is recognised."""
    if isinstance(image, (str, Path)) and Path(image).is_file():
        return hashlib.sha1(Path(image).read_bytes()).hexdigest()
    return None


def on_image(session: AppSession | None, image):
    """A new input (upload, example, "use as input"): partition it once.

    Returns (session, canvas, status, result, candidates, input widget). Never loses state: an
    empty widget (✕) changes nothing; a file that cannot be read, or a partition that fails,
    keeps the current image and its edits and says which of the two went wrong in the status
    line (:func:`_read_upload`, :func:`_partition_upload`); a replaced image stays one Undo away.
    """
    session = session or AppSession()
    keep = gr.skip()
    if image is None:
        return session, keep, keep, keep, keep, keep
    key = _file_key(image)
    # The image widget fires a second change event for one upload while the first is still being
    # partitioned: answered at once, so it holds neither an upload slot nor a worker thread meanwhile.
    if key is not None and key == session.pending_key:
        return session, keep, keep, keep, keep, keep
    with session.lock:
        if key is not None and key == session.input_key:
            return session, keep, keep, keep, keep, keep
        session.pending_key = key
        try:
            loaded, note = _read_upload(image)
            el, emb = _partition_upload(loaded)
        except UserError as err:
            kept = " The current image and its edits are kept." if session.has_image else ""
            return session, keep, status(session, f"**{str(err).rstrip('.')}.**{kept}"), keep, keep, None
        finally:
            session.pending_key = None
        replaced = session.has_image and (session.editor.can_undo or bool(session.candidates))
        session.start(el, emb, note)
        full = el.sources[0].full  # the decoded input, shared with the partition cache: no second copy
        session.input_key = key
        session.input_pixels = full if full is not None and full.shape == loaded.pixels.shape else loaded.pixels
        message = "The previous image and its edits are kept: Undo (Ctrl+Z) goes back to them." if replaced else ""
        return (*_shown(session, message), None, [], keep)


def _read_upload(image):
    """Decode an upload (:func:`load_for_app`); a failure that is not the file's is logged and said as the server's."""
    try:
        return load_for_app(image)
    except UserError:  # the file's own problem, in the pixel budget's sentence (not an image, empty, too many pixels)
        raise
    except MemoryError:
        log.exception("decoding an upload ran out of memory")
        raise UserError("The server ran out of memory while decoding that image; try a smaller one.") from None
    except Exception:  # a bug or the server's trouble, not the visitor's file: the log has the traceback
        log.exception("decoding an upload failed")
        raise UserError("Something went wrong on the server while decoding that file; please try again.") from None


def _partition_upload(loaded):
    """Partition a decoded upload; every failure names partitioning, never the file (the log has the traceback)."""
    try:
        return partition(loaded)
    except UserError as err:  # e.g. the partition model could not be loaded (its one sentence)
        why = str(err).rstrip(".")
        why = why[0].lower() + why[1:] if why[:1].isupper() and why[1:2].islower() else why
        raise UserError(f"The image could not be partitioned into elements: {why}.") from None
    except MemoryError:
        log.exception("partitioning an upload ran out of memory")
        raise UserError(
            "Partitioning the image into elements ran out of memory on the server; try a smaller image."
        ) from None
    except Exception:
        log.exception("partitioning an upload failed")
        raise UserError(
            "Partitioning the image into elements failed on the server; please try again (the file itself was read)."
        ) from None


# --- the canvas ----------------------------------------------------------------------------------
@user_errors
def on_gesture(session: AppSession | None, factor: float, evt: gr.EventData):
    """One canvas gesture (:func:`elements.ui.canvas.parse_gesture`) → at most one spec edit.

    Returns (session, canvas, status); the canvas is skipped when only the selection changed
    (the browser already shows it).
    """
    session = need_image(session)
    g = parse_gesture(getattr(evt, "_data", None))
    with session.lock:
        stale = g["seq"] < session.seq
        session.seq = max(session.seq, g["seq"])
        t = g["type"]
        if t == "selection":
            if not stale:
                el = session.elements
                session.selection = tuple(i for i in g["ids"] if 0 <= i < el.num_elements and el.active[i])
                session.object_prompt = {}
            return session, gr.skip(), status(session)
        if t == "mode":
            session.object_prompt = {}
            return session, gr.skip(), status(session)
        if t == "move":
            _apply(session, {"op": "move", "elements": g["ids"], "dx": g["dx"], "dy": g["dy"]})
            session.selection = tuple(g["ids"])
            session.prune_selection()
        elif t == "delete":
            if g["ids"]:
                _apply(session, {"op": "delete", "elements": g["ids"]})
            session.selection = ()
        elif t == "undo":
            _undo(session)
        elif t == "redo":
            _redo(session)
        elif t == "object":
            _object_gesture(session, g)
        elif t == "place":
            _place(session, g["x"], g["y"], factor)
        session.object_prompt = {} if t != "object" else session.object_prompt
        return _shown(session)


def _object_gesture(session: AppSession, g: dict) -> None:
    """Grow the SAM prompt (points accumulate, a box replaces the box) and select what it covers."""
    prompt = session.object_prompt
    if not prompt:
        prompt = {"points": [], "box": None, "base": session.selection if g["add"] else ()}
    points = prompt["points"] + list(g["points"])
    box = g["box"] if g["box"] is not None else prompt["box"]
    ids = select_object(session, points=points, box=box)
    session.object_prompt = {"points": points, "box": box, "base": prompt["base"]}
    session.selection = tuple(sorted(set(prompt["base"]) | set(ids.tolist())))


def select_object(session: AppSession, *, points=(), box=None) -> np.ndarray:
    """The one entry of every object gesture (point, box, negative point): element ids SAM's mask covers.

    ``points``: ``[(x, y, positive), ...]`` input pixels; ``box``: ``(x0, y0, x1, y1)`` input
    pixels or None. SAM's mask comes from :func:`elements.partition.objects.select_object`.
    """
    ok, why = backends.object_mode_status()
    if not ok or session.sam_embedding is None:
        raise UserError(f"Object selection is not available: {why}.")
    return sam_select(
        session.elements,
        backends.sam_affinity(),
        points=points,
        box=box,
        owner=session.view().owner,
        embedding=session.sam_embedding,
    )


def _undo(session: AppSession) -> None:
    """One step back; before the first edit of an image, back to the image it replaced."""
    if session.editor.can_undo:
        session.editor.undo()
    elif session.past:
        session.future.append(session.snapshot())
        session.restore(session.past.pop())
    session.prune_selection()


def _redo(session: AppSession) -> None:
    if session.editor.can_redo:
        session.editor.redo()
    elif session.future:
        session.past.append(session.snapshot())
        session.restore(session.future.pop())
    session.prune_selection()


def _apply(session: AppSession, edit: dict) -> None:
    try:
        session.editor.apply(edit)
    except UserError as err:  # the spec's "Edit 1 (op)" numbering means nothing to a clicking visitor
        raise UserError(err.message) from err
    session.future = []
    session.prune_selection()


def _place(session: AppSession, x: float, y: float, factor: float) -> None:
    other = session.other
    if other is None or not other.selection:
        raise UserError("To compose, load a second image below and click the elements to paste first.")
    n0 = session.elements.num_elements
    _apply(
        session,
        {
            "op": "compose",
            "source": other.folder,
            "elements": list(other.selection),
            "at": [x, y],
            "factor": float(factor),
        },
    )
    el = session.elements
    session.selection = tuple(i for i in range(n0, el.num_elements) if el.active[i])


# --- edit buttons ----------------------------------------------------------------------------
@user_errors
def scale(session, factor: float):
    """Scale the selection about its area-weighted centre (repeated scales coalesce like moves)."""
    session = need_image(session)
    with session.lock:
        sel = _need_selection(session)
        _apply(session, {"op": "scale", "elements": list(sel), "factor": float(factor)})
        return _shown(session)


@user_errors
def delete(session):
    session = need_image(session)
    with session.lock:
        sel = _need_selection(session)
        _apply(session, {"op": "delete", "elements": list(sel)})
        session.selection = ()
        return _shown(session)


@user_errors
def undo(session):
    session = need_image(session)
    with session.lock:
        _undo(session)
        return _shown(session)


@user_errors
def redo(session):
    session = need_image(session)
    with session.lock:
        _redo(session)
        return _shown(session)


@user_errors
def reset(session):
    session = need_image(session)
    with session.lock:
        session.editor.reset()
        session.selection = ()
        return _shown(session)


# --- composition -------------------------------------------------------------------------------
@user_errors
def on_other_image(session, image):
    """The second image of a composition: partition it and save it as this session's compose source."""
    session = need_image(session)
    with session.lock:
        if image is None:
            return session, gr.skip(), gr.skip(), gr.skip()
        loaded, note = load_for_app(image, what="The second image")
        el, _ = partition(loaded)
        k = len(list(session.workdir.glob("compose-*")))
        folder = session.workdir / f"compose-{k}"
        el.save(folder)
        name = Path(image).name if isinstance(image, (str, Path)) else f"compose-{k}.png"
        session.other = OtherImage(el, str(folder), name, note)
        session.compose_names[str(folder)] = name
        return session, draw(session.other.current_view()), _other_status(session), _canvas(session)


@user_errors
def on_other_click(session, evt: gr.SelectData):
    """Toggle an element of the second image in the paste selection."""
    session = need_image(session)
    with session.lock:
        other = session.other
        if other is None:
            raise UserError("Load a second image first.")
        x, y = (float(v) for v in evt.index)
        k = element_under(other.current_view(), x, y)
        if k is None:
            raise UserError(f"No element lies under ({x:g}, {y:g}) in the second image.")
        other.selection = tuple(sorted(set(other.selection) ^ {k}))
        return session, draw(other.current_view(), other.selection), _other_status(session), _canvas(session)


def _other_status(session: AppSession) -> str:
    o = session.other
    text = (
        f"{len(o.selection)} elements of the second image selected; choose **Place** under the canvas "
        "and click where they should go."
    )
    return f"{text}\n\n{o.note}" if o.note else text


__all__ = [
    "MAX_CANDIDATES",
    "delete",
    "on_gesture",
    "on_image",
    "on_other_click",
    "on_other_image",
    "redo",
    "reset",
    "scale",
    "select_object",
    "status",
    "undo",
    "user_errors",
]
