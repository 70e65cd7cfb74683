"""Generate: decode the current elements into candidates, offer downloads, reuse a result as input.

Decoding runs through :meth:`elements.editor.EditorSession.render` with the process-wide
decoder (:func:`elements.ui.backends.decoder`), inside ``@spaces.GPU`` on ZeroGPU Spaces.
Candidates use seeds ``seed, seed + 1, ...``; identical candidates (``pixel``, Telea filling) are
shown once. The status names what actually ran (:attr:`elements.decoders.result.DecodedImage.ran`).
"""

from __future__ import annotations

import gradio as gr
import numpy as np

from elements.decoders.result import ran_of
from elements.errors import UserError
from elements.image_io import save_png
from elements.spec import EditSpec, check_prompt, check_setting
from elements.ui import backends
from elements.ui.handlers import MAX_CANDIDATES, need_image, status, user_errors
from elements.ui.session import AppSession


@backends.gpu(duration=120)
def render_candidates(
    editor,
    decoder_name: str,
    *,
    prompt: str,
    seeds: list[int],
    steps: int | None,
    guidance: float | None,
    progress=None,
) -> list[np.ndarray]:
    """Decode ``editor``'s current elements once per seed: ``[(H_in, W_in, 3) uint8, ...]``, duplicates removed.

    ``progress(fraction, desc)`` is called after each denoising step (diffusion decoders) and
    after each candidate.
    """
    dec = backends.decoder(decoder_name)
    out: list[np.ndarray] = []
    n = len(seeds)
    with backends.DECODE_LOCK:
        for k, seed in enumerate(seeds):

            def step(i, total, k=k):
                if progress is not None:
                    progress((k + i / max(total, 1)) / n, desc=f"candidate {k + 1}/{n}")

            img = editor.render(dec, prompt=prompt, seed=seed, steps=steps, guidance=guidance, progress=step)
            if progress is not None:
                progress((k + 1) / n, desc=f"candidate {k + 1}/{n}")
            if not any(np.array_equal(img, o) for o in out):
                out.append(img)
    return out


def export_spec(
    session: AppSession, *, decoder: str | None = None, steps: int | None = None, guidance: float | None = None
) -> EditSpec:
    """The visitor's edits as a spec; compose sources name the uploaded file instead of the session folder."""
    spec = session.editor.to_spec()
    edits = []
    for e in spec.edits:
        if e.get("op") == "compose":
            e = {**e, "source": session.compose_names.get(e["source"], e["source"])}
        edits.append(e)
    return EditSpec(tuple(edits), prompt=spec.prompt, seed=spec.seed, decoder=decoder, steps=steps, guidance=guidance)


def _check_settings(seed, steps, guidance, n) -> tuple[int, int, float, int]:
    """The Generate controls as numbers, within the spec schema's limits (:func:`elements.spec.check_setting`)."""
    seed, steps, guidance = (check_setting(k, v) for k, v in (("seed", seed), ("steps", steps), ("guidance", guidance)))
    try:
        n = int(n)
    except (TypeError, ValueError) as err:
        raise UserError("The number of candidates must be a number.") from err
    if not 1 <= n <= MAX_CANDIDATES:
        raise UserError(f"Ask for 1 to {MAX_CANDIDATES} candidates.")
    return seed, steps, guidance, n


def _write_downloads(session: AppSession, spec: EditSpec) -> tuple[str, str]:
    img = session.workdir / "edited.png"
    save_png(img, session.candidates[session.chosen])
    path = session.workdir / "edit_spec.json"
    spec.save(path)
    return str(img), str(path)


def _before(session: AppSession) -> np.ndarray:
    """The input as loaded (full resolution), the "before" of the before/after view."""
    if session.input_pixels is not None:
        return session.input_pixels
    el = session.editor.original
    return el.geometry.from_canvas(el.image)


def resolution_note(decoder_name: str, shape, size: int) -> str:
    """One line when the decoder works on the 512-px canvas and its result is upsampled ('' at full resolution)."""
    dec = backends.decoder(decoder_name)
    if getattr(dec, "full_res", False):
        return ""
    h, w = shape[:2]
    if max(h, w) <= size:
        return ""
    return f"`{decoder_name}` works on the {size}-px canvas (Sec. 3.1); its result is upsampled to {w}×{h}."


@user_errors
def generate(session, decoder_name: str, prompt: str, seed, steps, guidance, n_candidates, progress=gr.Progress()):
    """Decode the current elements.

    Returns (session, before/after pair, candidates, result PNG path, spec JSON path, status, tabs):
    the result replaces the canvas in place (the "Result" tab), the input beside it.
    Decoders that ignore prompt, seed and the rest (:func:`elements.ui.backends.decoder_settings`)
    get one candidate whatever the hidden controls hold.
    """
    session = need_image(session)
    uses, _ = backends.decoder_settings(decoder_name)
    if not uses:
        prompt, n_candidates = "", 1
    seed, steps, guidance, n = _check_settings(seed, steps, guidance, n_candidates)
    prompt = check_prompt((prompt or "").strip())
    with session.lock:
        session.editor.prompt, session.editor.seed = prompt, seed
        progress(0.0, desc="decoding")
        images = render_candidates(
            session.editor,
            decoder_name,
            prompt=prompt,
            seeds=[seed + k for k in range(n)],
            steps=steps if uses else None,
            guidance=guidance if uses else None,
            progress=progress,
        )
        session.candidates, session.chosen = images, 0
        spec = export_spec(
            session, decoder=decoder_name, steps=steps if uses else None, guidance=guidance if uses else None
        )
        result, spec_path = _write_downloads(session, spec)
        gallery = [(img, f"seed {seed + k}" if len(images) == n else f"seed {seed}") for k, img in enumerate(images)]
        ran = ran_of(images[0], decoder_name)  # what actually ran, e.g. "pixel+inpaint (PatchMatch)"
        notes = [f"Result of `{ran}` — drag the slider to compare with the input."]
        if len(images) < n:
            notes.append(f"`{decoder_name}` is deterministic here: one candidate.")
        res = getattr(images[0], "note", "") or resolution_note(
            decoder_name, images[0].shape, session.elements.geometry.size
        )
        if res:
            notes.append(res[0].upper() + res[1:] + ("" if res.endswith(".") else "."))
        return (
            session,
            (_before(session), images[0]),
            gr.update(value=gallery if len(images) > 1 else [], visible=len(images) > 1),
            result,
            spec_path,
            status(session, " ".join(notes)),
            gr.Tabs(selected="result"),
        )


@user_errors
def pick_candidate(session, evt: gr.SelectData):
    """A click on a candidate makes it the result shown, downloaded and taken by "use as input"."""
    session = need_image(session)
    with session.lock:
        if not session.candidates:
            raise UserError("Press Generate first.")
        k = int(evt.index)
        if not 0 <= k < len(session.candidates):
            raise UserError("That candidate no longer exists; press Generate again.")
        session.chosen = k
        img = session.workdir / "edited.png"
        save_png(img, session.candidates[k])
        return session, str(img), (_before(session), session.candidates[k])


@user_errors
def use_as_input(session):
    """The chosen candidate becomes the next input (multi-round editing); the input's change event re-partitions it.

    The image it replaces, with its edits, stays one Undo away (:meth:`AppSession.start`).
    """
    session = need_image(session)
    with session.lock:
        if not session.candidates:
            raise UserError("Press Generate first, then pick the candidate to continue from.")
        return session.candidates[session.chosen], gr.Tabs(selected="edit")


__all__ = [
    "export_spec",
    "generate",
    "pick_candidate",
    "render_candidates",
    "resolution_note",
    "use_as_input",
]
