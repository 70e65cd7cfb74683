"""The two scriptable endpoints, ``/partition`` and ``/edit`` (docs/demo.md has a gradio_client example).

They use the same pieces as the UI: :func:`elements.ui.session.load_for_app` (same downscaling),
the shared partitioner, :class:`~elements.editor.EditorSession` for the spec and
:func:`elements.ui.generate.render_candidates` for decoding — so a spec downloaded from the UI
replays through ``/edit`` to the same image.
"""

from __future__ import annotations

import json

import numpy as np

from elements.errors import UserError, excerpt
from elements.spec import parse_spec
from elements.ui import backends
from elements.ui.generate import MAX_SEED, render_candidates
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
    from elements.editor import EditorSession

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
    if seed is None or seed == "":
        seed = spec.seed
    try:
        ok = float(seed).is_integer() and 0 <= float(seed) <= MAX_SEED
    except (TypeError, ValueError, OverflowError):  # a string, a list, an integer too big for a float
        ok = False
    if not ok:
        raise UserError(f"The seed must be an integer between 0 and {MAX_SEED}.")

    loaded, _ = load_for_app(image)
    el, _ = partition(loaded)
    editor = EditorSession(backends.partitioner())
    editor.set_elements(el)
    editor.apply(spec)
    (out,) = render_candidates(
        editor, name, prompt=spec.prompt, seeds=[int(seed)], steps=spec.steps, guidance=spec.guidance
    )
    return out


__all__ = ["MAX_API_EDITS", "api_edit", "api_partition"]
