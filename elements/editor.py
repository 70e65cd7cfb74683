"""An editing session: partition and encode once, then edit and re-render many times.

Like ``SamPredictor.set_image``, :meth:`EditorSession.set_image` does the heavy work (the
partition, with SAM when available, and the content encoder) exactly once per image. Every
edit afterwards is a pure function on a small :class:`~elements.types.ImageElements` value,
and rendering only runs the chosen decoder. The history is a list of values, so undo/redo
are list moves, and :meth:`EditorSession.to_spec` gives back the edits made so far as an
:class:`~elements.spec.EditSpec` that reproduces them from the command line.

>>> s = EditorSession(Partitioner("auto"))
>>> s.set_image("photo.jpg")
>>> s.apply({"op": "move", "points": [[120, 88]], "dx": 40, "dy": 0})
>>> img = s.render("pixel+inpaint")          # (H_in, W_in, 3) uint8
>>> s.undo(); s.redo(); s.to_spec().save("edit.json")

A session is single-user state (the Gradio app keeps one per browser tab in ``gr.State``);
models (partitioner, encoder, decoders) can be shared between sessions.

:func:`edit_image` is the one-shot form, image + spec -> image, that the ``edit`` CLI and the
demo's ``/edit`` endpoint call: a session set to the image, the spec applied, one render. The
demo's editor keeps its session instead and applies one gesture at a time; the same spec gives
the same image on all three (``tests/test_edit_image.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from elements.apply import OpenRun, apply_edits, select
from elements.compose_sources import LoadOther, compose_loader
from elements.errors import UserError
from elements.spec import EditSpec, load_spec
from elements.types import ImageElements


class EditorSession:
    """Per-image editing state.

    Args:
        partitioner: ``image -> ImageElements`` (e.g. :class:`elements.partition.Partitioner`);
            default ``Partitioner("auto")`` (SAM if a checkpoint can be had, else SLIC), made on first use.
        encoder: optional stage-1 content encoder — either a callable ``ImageElements ->
            ImageElements`` that fills ``embeddings``, or a model accepted by
            :func:`elements.decoders.light.encode`. Without one, elements carry no embeddings and a
            decoder that needs them lends its own encoder on the first render (encoding once).
        decoder_options: options passed to :func:`elements.decoders.get_decoder` when
            :meth:`render` is given a decoder *name*; decoders are built once and cached.
        load_other: ``source -> ImageElements`` for compose edits (:mod:`elements.compose_sources`);
            default :func:`~elements.compose_sources.compose_loader` with this session's partitioner
            (or one like the image's), made for each image.

    Consecutive moves/scales of the same elements coalesce (:mod:`elements.apply`, "Re-moving
    repositions"): each is still its own undo step, but the value after each is the run's
    placement with collisions computed once, so a second drag does not punch a second hole.
    """

    def __init__(
        self,
        partitioner=None,
        *,
        encoder=None,
        decoder_options: dict | None = None,
        load_other: LoadOther | None = None,
    ) -> None:
        self._partitioner = partitioner
        self._load_other = load_other
        self._encode = self._as_encode(encoder)
        self.decoder_options = dict(decoder_options or {})
        self._decoders: dict[str, object] = {}
        self._values: list[ImageElements] = []  # _values[0] = as partitioned; one per applied step
        self._steps: list[tuple[dict, ...]] = []  # the edits that led from _values[k] to _values[k + 1]
        self._runs: list[OpenRun | None] = []  # the coalescing run open at _values[k] (elements.apply, "Re-moving")
        self._pos = -1
        self._others: Callable[[str], ImageElements] | None = None
        self.prompt = ""
        self.seed = 0

    # --- setup -------------------------------------------------------------------------------
    @staticmethod
    def _as_encode(encoder):
        if encoder is None:
            return None
        if hasattr(encoder, "content_dim") or hasattr(encoder, "config"):
            from elements.decoders.light import encode

            return lambda el: encode(el, encoder)
        if callable(encoder):
            return encoder
        raise TypeError("encoder must be a content-encoder model or a callable ImageElements -> ImageElements")

    @property
    def partitioner(self):
        if self._partitioner is None:
            from elements.partition import Partitioner

            self._partitioner = Partitioner("auto")
        return self._partitioner

    def set_image(self, image) -> ImageElements:
        """Partition (and encode) ``image`` — a path, PIL image, array or LoadedImage — and reset the history."""
        return self.set_elements(self.partitioner(image))

    def set_elements(self, el: ImageElements) -> ImageElements:
        """Start from already-partitioned elements (e.g. ``ImageElements.load(dir)``); encodes them if needed."""
        el.validate()
        if self._encode is not None and el.embeddings is None:
            el = self._encode(el)
        self._values, self._steps, self._runs, self._pos = [el], [], [None], 0
        loader = self._load_other or compose_loader(self._partitioner, like=el)  # caches each compose source
        encoded: dict[str, ImageElements] = {}  # keyed by the source as written: the loader's own key

        def load_other(source: str) -> ImageElements:
            other = loader(source)
            if self._encode is None or other.embeddings is not None:
                return other
            if source not in encoded:  # encode each compose source once, like the image itself
                encoded[source] = self._encode(other)
            return encoded[source]

        self._others = load_other
        return el

    def release_partitioner(self) -> None:
        """Drop the partitioner and the compose loader (no more :meth:`set_image` or compose edits after this),
        so a one-shot run can give their memory back before decoding."""
        self._partitioner = self._load_other = self._others = None

    def _require(self) -> None:
        if self._pos < 0:
            raise UserError("No image has been loaded yet; upload an image first.")

    # --- state ---------------------------------------------------------------------------------
    @property
    def elements(self) -> ImageElements:
        """The current (edited) value."""
        self._require()
        return self._values[self._pos]

    @property
    def original(self) -> ImageElements:
        """The value as partitioned, before any edit."""
        self._require()
        return self._values[0]

    @property
    def can_undo(self) -> bool:
        return self._pos > 0

    @property
    def can_redo(self) -> bool:
        return 0 <= self._pos < len(self._values) - 1

    def undo(self) -> ImageElements:
        """Go back one :meth:`apply` call (no-op at the start)."""
        self._require()
        self._pos = max(0, self._pos - 1)
        return self.elements

    def redo(self) -> ImageElements:
        """Re-apply the step :meth:`undo` took back (no-op at the end)."""
        self._require()
        self._pos = min(len(self._values) - 1, self._pos + 1)
        return self.elements

    def reset(self) -> ImageElements:
        """Back to the unedited elements (undoable)."""
        self._require()
        return self._push(self._values[0], ({"op": "reset"},)) if self._pos else self.elements

    # --- editing ---------------------------------------------------------------------------------
    def select(self, *, ids=None, points=None, rect=None) -> np.ndarray:
        """Element ids by ids / input-pixel points / input-pixel rectangle (see :mod:`elements.spec`)."""
        given = {k: v for k, v in (("elements", ids), ("points", points), ("rect", rect)) if v is not None}
        if len(given) != 1:
            raise UserError("Select elements with exactly one of ids, points or rect.")
        return select(self.elements, given)

    def apply(self, spec_or_edit) -> ImageElements:
        """Apply an edit dict, a list of edit dicts, or a spec (path / JSON text / dict / :class:`EditSpec`).

        One call is one undo step; applying after an undo drops the redo branch. A spec's
        ``prompt`` and ``seed`` become the session's. Returns the new current value; on a
        UserError nothing changes.
        """
        self._require()
        spec = None
        if isinstance(spec_or_edit, dict) and "op" in spec_or_edit:
            spec_or_edit = [spec_or_edit]
        if isinstance(spec_or_edit, (list, tuple)):
            checked = load_spec({"version": 1, "edits": list(spec_or_edit)}).edits  # same validation as a spec file
        else:  # load_spec validates a path, text or dict; an EditSpec is already checked
            spec = load_spec(spec_or_edit)
            checked = tuple(_anchor(e, spec.base_dir) for e in spec.edits)
        # a move/scale of the elements the previous step moved/scaled continues its run: collisions
        # are computed once against the final placement, exactly as apply_spec replays the spec
        el, run = apply_edits(
            self.elements,
            checked,
            load_other=self._others,
            run=self._runs[self._pos],
            first=1 if spec is not None or len(checked) > 1 else 0,  # a spec's edits are numbered
        )
        if spec is not None:
            self.prompt, self.seed = spec.prompt, spec.seed
        return self._push(el, checked, run) if checked else self.elements

    def _push(self, el: ImageElements, edits: tuple[dict, ...], run: OpenRun | None = None) -> ImageElements:
        del self._values[self._pos + 1 :]
        del self._steps[self._pos :]
        del self._runs[self._pos + 1 :]
        self._values.append(el)
        self._steps.append(tuple(dict(e) for e in edits))
        self._runs.append(run)
        self._pos += 1
        return el

    def to_spec(self) -> EditSpec:
        """The edits applied so far (up to the current undo position) as a reproducible spec."""
        self._require()
        edits: list[dict] = []
        for step in self._steps[: self._pos]:
            if step and step[0].get("op") == "reset":
                edits = []
            else:
                edits.extend(step)
        return EditSpec(tuple(edits), prompt=self.prompt, seed=self.seed)

    # --- rendering ---------------------------------------------------------------------------------
    def decoder(self, name_or_decoder):
        """A decoder by name (built once with ``decoder_options`` and cached) or the decoder given."""
        if not isinstance(name_or_decoder, str):
            return name_or_decoder
        if name_or_decoder not in self._decoders:
            from elements.decoders import get_decoder

            self._decoders[name_or_decoder] = get_decoder(name_or_decoder, **self.decoder_options)
        return self._decoders[name_or_decoder]

    def render(
        self,
        decoder="pixel+inpaint",
        *,
        prompt: str | None = None,
        seed: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        progress=None,
    ) -> np.ndarray:
        """Decode the current elements: ``(H_in, W_in, 3) uint8`` at the input's size.

        Never re-partitions or re-encodes: a decoder that needs embeddings, meeting elements
        without any, lends its encoder once and the encoded value replaces the current one.
        """
        self._require()
        dec = self.decoder(decoder)
        el = self.elements
        lent = getattr(dec, "encoder", None)
        if el.embeddings is None and lent is not None:
            if self._encode is None:
                self._encode = self._as_encode(lent)
            el = self._encode(el)
            self._values[self._pos] = el
            run = self._runs[self._pos]
            if run is not None:  # embeddings do not depend on placement; keep the run's copy encoded too
                self._runs[self._pos] = OpenRun(run.ids, run.placed.replace(embeddings=el.embeddings))
        return dec(
            el,
            prompt=self.prompt if prompt is None else prompt,
            seed=self.seed if seed is None else seed,
            steps=steps,
            guidance=guidance,
            progress=progress,
        )


@dataclass(frozen=True)
class EditResult:
    """What :func:`edit_image` made: the decoded ``image`` (``(H_in, W_in, 3) uint8``, a
    :class:`~elements.decoders.result.DecodedImage` where the decoder says what ran), the elements
    as partitioned (``original``) and after the spec's edits (``elements``)."""

    image: np.ndarray
    original: ImageElements
    elements: ImageElements


def edit_image(
    image,
    spec: EditSpec,
    *,
    decoder,
    partitioner=None,
    load_other: LoadOther | None = None,
    encoder=None,
    release_partitioner: bool = False,
    progress=None,
) -> EditResult:
    """Image + edit spec -> edited image: the one path of the ``edit`` CLI, the demo's ``/edit`` endpoint
    and (one step at a time) the demo's editor.

    ``image``: a path, PIL image, ``(H, W, 3) uint8`` array or LoadedImage, partitioned with
    ``partitioner`` (default ``Partitioner("auto")``); or :class:`ImageElements` already
    partitioned (e.g. ``ImageElements.load(dir)``, or under the demo's model lock). ``spec``: a
    parsed :class:`~elements.spec.EditSpec` (``load_spec`` for trusted input, ``parse_spec`` for
    untrusted text); its ``prompt``, ``seed``, ``steps`` and ``guidance`` go to the decoder
    (:meth:`EditSpec.override` sets them from flags). ``decoder``: a decoder or its name.
    ``load_other``: the compose loader (:mod:`elements.compose_sources`; default: one that cuts
    sources with ``partitioner``, or like the image; sources relative to the spec file are found).
    ``release_partitioner``: after the edits, drop the partitioner and the loader and give their
    memory back before decoding (a one-shot command; never where the partitioner is shared).

    It is :class:`EditorSession`'s path — :meth:`~EditorSession.set_elements`,
    :meth:`~EditorSession.apply`, :meth:`~EditorSession.render` — so the demo, which keeps a
    session and applies one gesture at a time, decodes the same image from the same edits.
    """
    if not isinstance(spec, EditSpec):
        raise TypeError(f"edit_image takes a parsed EditSpec (elements.spec.load_spec), not {type(spec).__name__}")
    session = EditorSession(partitioner, encoder=encoder, load_other=load_other)
    if isinstance(image, ImageElements):
        session.set_elements(image)
    else:
        session.set_image(image)
    session.apply(spec)
    if release_partitioner:
        from elements.memory import release_memory

        del partitioner, load_other
        session.release_partitioner()
        release_memory()
    out = session.render(
        decoder, prompt=spec.prompt, seed=spec.seed, steps=spec.steps, guidance=spec.guidance, progress=progress
    )
    return EditResult(out, session.original, session.elements)


def _anchor(e: dict, base_dir: str | None) -> dict:
    """Make a compose source relative to a spec file absolute, so the session's loader finds it."""
    if e.get("op") != "compose" or not base_dir or not isinstance(e.get("source"), str):
        return e
    from pathlib import Path

    src = Path(e["source"]).expanduser()
    return e if src.is_absolute() else {**e, "source": str(Path(base_dir) / src)}


__all__ = ["EditResult", "EditorSession", "edit_image"]
