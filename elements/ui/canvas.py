"""The demo's editing canvas: a ``gr.HTML`` custom component whose front end lives in its own files.

``canvas.html`` (the markup), ``canvas.css`` and ``canvas.js`` (the ``js_on_load`` body) are
read from this folder; there is no npm build step. The server sends the canvas one JSON value
(:func:`canvas_value`); the browser draws boundaries, selection, edited tint, hover, drag ghost
and marquee from it and sends back one small JSON event per gesture (``trigger("gesture", …)``),
which :func:`parse_gesture` checks and :func:`elements.ui.handlers.on_gesture` turns into one
spec edit. The gestures and keys are listed in ``docs/canvas.md``.

Value (``dict``, JSON)::

    {"rev": int,                 # changes whenever the shown elements change (an edit, undo, new image)
     "w": int, "h": int,         # size of the image sent, <= DISPLAY_MAX_SIDE on its long side
     "input_w": int, "input_h": int,   # the input's size; event coordinates are input pixels
     "image": str | None,        # data URL of the pixel-edit preview (None: unchanged since the last value)
     "labels": str,              # run-length label map (w*h, row-major) of the shown element per pixel, -1 = none:
                                 # base64 of int32 little-endian (id, run) pairs (decode_labels); None with "image"
     "centroids": [[x, y] | None, ...],  # current centre of each element, image px (None = deleted)
     "edited": [id, ...], "selection": [id, ...],
     "seq": int,                 # the last gesture number the server has handled
     "object": bool, "place": bool}      # whether object (SAM) mode and composing are available
"""

from __future__ import annotations

import base64
import math
from pathlib import Path

import cv2
import gradio as gr
import numpy as np

from elements.errors import UserError

HERE = Path(__file__).resolve().parent
#: The canvas is sent at most this many pixels on its long side (the elements live on a 512 canvas,
#: Sec. 3.1; more only costs transfer). Event coordinates are still input pixels.
DISPLAY_MAX_SIDE = 1024
#: JPEG quality of the preview photo; the thin marks are drawn in the browser, never compressed.
PHOTO_QUALITY = 92
GESTURES = ("selection", "move", "delete", "undo", "redo", "object", "place", "mode")
MAX_IDS = 100_000


def _read(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


#: Browser code run after Generate: scrolls the result into view when it is out of sight (a phone).
REVEAL_RESULT_JS = _read("reveal_result.js")


def make_canvas(**kwargs) -> gr.HTML:
    """The canvas component; bind its gestures with ``canvas.gesture(fn, inputs, outputs)``."""
    return gr.HTML(
        value=None,
        html_template=_read("canvas.html"),
        css_template=_read("canvas.css"),
        js_on_load=_read("canvas.js"),
        apply_default_css=False,
        container=False,
        padding=False,
        **kwargs,
    )


def _rle(labels: np.ndarray) -> str:
    """Run-length label map as base64 of little-endian int32 pairs (id, run); one string, not a long JSON list."""
    flat = labels.ravel()
    starts = np.r_[0, np.flatnonzero(np.diff(flat)) + 1]
    runs = np.diff(np.r_[starts, flat.size])
    pairs = np.stack([flat[starts], runs], 1).astype("<i4")
    return base64.b64encode(pairs.tobytes()).decode("ascii")


def decode_labels(value: dict) -> np.ndarray:
    """``(h, w) int32`` label map of a :func:`canvas_value` (what canvas.js decodes)."""
    pairs = np.frombuffer(base64.b64decode(value["labels"]), dtype="<i4").reshape(-1, 2)
    return np.repeat(pairs[:, 0], pairs[:, 1]).reshape(value["h"], value["w"])


def _data_url(rgb: np.ndarray) -> str:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, PHOTO_QUALITY])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 RGB image
        raise RuntimeError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def canvas_value(
    view,
    *,
    rev: int,
    selection=(),
    seq: int = 0,
    with_image: bool = True,
    object_mode: bool = False,
    place: bool = False,
) -> dict:
    """The JSON value for :func:`make_canvas` from a :class:`~elements.ui.view.View` (see the module docstring)."""
    h, w = view.labels.shape
    k = min(1.0, DISPLAY_MAX_SIDE / max(h, w))
    dw, dh = max(1, round(w * k)), max(1, round(h * k))
    labels, photo = view.labels, view.photo
    if (dw, dh) != (w, h):
        labels = cv2.resize(labels, (dw, dh), interpolation=cv2.INTER_NEAREST)
        photo = cv2.resize(photo, (dw, dh), interpolation=cv2.INTER_AREA)
    sx, sy = dw / w, dh / h
    cents = [
        None if not np.isfinite(c).all() else [round(float(c[0]) * sx, 2), round(float(c[1]) * sy, 2)]
        for c in view.dots
    ]
    el = view.elements
    return {
        "rev": int(rev),
        "w": dw,
        "h": dh,
        "input_w": w,
        "input_h": h,
        "image": _data_url(photo) if with_image else None,
        "labels": _rle(labels) if with_image else None,
        "centroids": cents,
        "edited": np.flatnonzero(el.edited & el.active).tolist(),
        "selection": [int(i) for i in selection],
        "seq": int(seq),
        "object": bool(object_mode),
        "place": bool(place),
    }


def _number(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise UserError(f"The canvas sent a {what} that is not a finite number.")
    return float(v)


def _ids(v) -> list[int]:
    if (
        not isinstance(v, list)
        or len(v) > MAX_IDS
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in v)
    ):
        raise UserError("The canvas sent a selection that is not a list of element ids.")
    return sorted(set(v))


def parse_gesture(data) -> dict:
    """Check one gesture event from the browser; returns it normalised, or raises UserError.

    ``{"type": "selection", "ids": [...]}``, ``{"type": "move", "ids": [...], "dx": px, "dy": px}``,
    ``{"type": "delete", "ids": [...]}``, ``{"type": "undo"}``, ``{"type": "redo"}``,
    ``{"type": "object", "points": [[x, y, positive], ...], "box": [x0, y0, x1, y1], "add": bool}``,
    ``{"type": "place", "x": px, "y": px}``, ``{"type": "mode", "mode": str}``; each with ``"seq": int``.
    Coordinates are input pixels.
    """
    if not isinstance(data, dict) or data.get("type") not in GESTURES:
        raise UserError("The canvas sent an event this server does not understand; reload the page.")
    t = data["type"]
    seq = data.get("seq", 0)
    out: dict = {"type": t, "seq": int(seq) if isinstance(seq, int) and not isinstance(seq, bool) else 0}
    if t in ("selection", "move", "delete"):
        out["ids"] = _ids(data.get("ids"))
    if t == "move":
        out["dx"], out["dy"] = _number(data.get("dx"), "move offset"), _number(data.get("dy"), "move offset")
    if t == "place":
        out["x"], out["y"] = _number(data.get("x"), "position"), _number(data.get("y"), "position")
    if t == "mode":
        out["mode"] = str(data.get("mode", "select"))[:16]
    if t == "object":
        points = data.get("points") or []
        if not isinstance(points, list) or len(points) > 64:
            raise UserError("The canvas sent object prompt points in a form this server does not understand.")
        out["points"] = []
        for p in points:
            if not isinstance(p, list) or len(p) != 3:
                raise UserError("The canvas sent object prompt points in a form this server does not understand.")
            out["points"].append((_number(p[0], "point"), _number(p[1], "point"), bool(p[2])))
        box = data.get("box")
        out["box"] = (
            None
            if box is None
            else tuple(_number(v, "box corner") for v in box)
            if isinstance(box, list) and len(box) == 4
            else None
        )
        if box is not None and out["box"] is None:
            raise UserError("The canvas sent an object box that is not four numbers.")
        out["add"] = bool(data.get("add", False))
        if not out["points"] and out["box"] is None:
            raise UserError("Click a point or drag a box on the object.")
    return out


__all__ = ["DISPLAY_MAX_SIDE", "GESTURES", "canvas_value", "decode_labels", "make_canvas", "parse_gesture"]
