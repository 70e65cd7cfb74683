"""The two scriptable endpoints, ``/partition`` and ``/edit`` (docs/demo.md has a gradio_client example).

They use the same pieces as the UI: :func:`elements.ui.session.load_for_app` (same downscaling),
the shared partitioner and decoders, and :func:`elements.editor.edit_image` — the ``edit`` CLI's
path, and the demo editor's (:class:`~elements.editor.EditorSession`) — so a spec downloaded from
the UI replays through ``/edit`` to the same image.
"""

from __future__ import annotations

import json

import numpy as np

from elements.errors import UserError, excerpt
from elements.spec import EditSpec, parse_spec
from elements.types import ImageElements
from elements.ui import backends
from elements.ui.handlers import user_errors
from elements.ui.session import load_for_app, partition

#: Operations per ``/edit`` request: bounds the time one request holds the single decode slot.
MAX_API_EDITS = 500


@user_errors
def api_partition(image) -> tuple[np.ndarray, str]:
    """Image (file path) -> (overlay ``(H, W, 3) uint8``, elements JSON in input pixels).

    The JSON is the ``elements.json`` document of ``python -m elements partition`` plus
    ``"note"`` (downscaling, if any) and ``"backend"`` (what partitioned it).
    """
    from elements.types import elements_json
    from elements.visualize import overlay

    if image is None:
        raise UserError("Send an image to partition.")
    loaded, note = load_for_app(image)
    el, _ = partition(loaded)
    doc = elements_json(el)
    doc["backend"] = backends.partitioner().describe()
    if note:
        doc["note"] = note
    return overlay(el), json.dumps(doc)


@user_errors
def api_edit(image, spec_json: str, decoder_name: str | None = None, seed: float | None = None) -> np.ndarray:
    """Image + edit spec (JSON text) [+ decoder name, seed] -> edited image ``(H, W, 3) uint8``.

    The decoder defaults to the spec's ``decoder``, then to the demo's default; the seed to the
    spec's. The spec is JSON *text* only (:func:`elements.spec.parse_spec`: never a server
    path); compose edits are refused (their ``source`` would name a file on the server) and at
    most :data:`MAX_API_EDITS` edits are taken per request (docs/security.md).
    """
    if image is None:
        raise UserError("Send the image to edit.")
    if not isinstance(spec_json, str) or not spec_json.strip():
        raise UserError("Send an edit spec (JSON text); an empty edit list reconstructs the image.")
    spec = parse_spec(spec_json)  # text only: never a server path, never "~"
    if any(e.get("op") == "compose" for e in spec.edits):
        raise UserError(
            "The edit endpoint does not take compose edits (their source would be a file on the server); "
            "compose in the UI or with the CLI."
        )
    if len(spec.edits) > MAX_API_EDITS:
        raise UserError(
            f"The edit endpoint takes at most {MAX_API_EDITS} edits per request (got {len(spec.edits)}); "
            "split the spec or use the CLI."
        )
    if not isinstance(decoder_name, (str, type(None))):
        raise UserError("The decoder name must be text.")
    name = (decoder_name or "").strip() or spec.decoder or backends.default_decoder()
    if name not in backends.decoder_status():
        raise UserError(f"Unknown decoder {excerpt(name)}; choose one of {', '.join(backends.decoder_status())}.")
    spec = spec.override(seed=None if seed is None or seed == "" else seed)  # checked against the schema's range

    loaded, _ = load_for_app(image)
    el, _ = partition(loaded)
    return edit_on_device(el, spec, name)


@backends.gpu(duration=120)
def edit_on_device(el: ImageElements, spec: EditSpec, decoder_name: str) -> np.ndarray:
    """:func:`elements.editor.edit_image` of partitioned elements, in the single decode slot (on ZeroGPU, on the GPU).

    No compose loader: the endpoint refuses compose edits before this.
    """
    from elements.editor import edit_image

    with backends.DECODE_LOCK:
        return edit_image(el, spec, decoder=backends.decoder(decoder_name)).image


__all__ = ["MAX_API_EDITS", "api_edit", "api_partition", "edit_on_device"]
