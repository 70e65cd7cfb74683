"""What the demo runs, loaded once per process, and the banner that says so.

The partitioner, SAM and every decoder are module-level lazy singletons: the first visitor
pays for loading them, everyone after shares them. Anything that touches a shared model
holds :data:`MODEL_LOCK` (SAM's predictor keeps the current image embedding as state, so two
sessions must not interleave restore-embedding and prompt).

Choices come from the environment, so a Space is configured in its settings page:

* ``EIE_APP_PARTITION`` — ``auto`` (default: on a GPU SAM ViT-B when it can be had; on a CPU
  the distilled SAM, else a local ViT-B, else SLIC — :func:`elements.partition.choose_auto`),
  ``sam``, ``slic`` or ``grid``;
* ``EIE_APP_DEVICE`` — torch device for SAM (default: cuda if a GPU is visible, else cpu);
* ``EIE_APP_DECODER`` — the decoder selected at start (default: the strongest available,
  :func:`elements.decoders.best_available`);
* the checkpoint variables of :mod:`elements.defaults` (``EIE_SAM_CHECKPOINT``, ``EIE_SD_BASE``,
  ``EIE_SD_INPAINT``, ``EIE_STAGE1_CHECKPOINT``, ``EIE_STAGE2_CHECKPOINT``).
"""

from __future__ import annotations

import functools
import os
import threading

from elements.errors import UserError, excerpt

#: Serialises use of the shared SAM model (its predictor holds one image embedding at a time).
MODEL_LOCK = threading.RLock()
#: Serialises decoding (diffusers pipelines keep scheduler state and are not thread-safe).
DECODE_LOCK = threading.Lock()
_INIT_LOCK = threading.Lock()
_partitioner = None
_decoders: dict = {}
_availability: dict | None = None

#: Decoders that implement the paper's method (Sec. 3.2-3.3); everything else is a baseline.
PAPER_DECODERS = {
    "diffusion": "the paper's element-conditioned diffusion decoder (Sec. 3.3)",
    "light": "the paper's stage-1 light decoder (Sec. 3.2; blurry by design)",
}


def gpu(duration: int = 60):
    """``spaces.GPU(duration=...)`` on ZeroGPU Spaces (package ``spaces`` importable), identity elsewhere."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def partition_backend() -> str:
    name = os.environ.get("EIE_APP_PARTITION", "auto").strip() or "auto"
    from elements.partition.options import BACKEND_CHOICES

    if name not in BACKEND_CHOICES:
        raise UserError(f"EIE_APP_PARTITION must be one of {', '.join(BACKEND_CHOICES)}, not {excerpt(name)}.")
    return name


def partitioner():
    """The process-wide :class:`~elements.partition.Partitioner` (SAM loads here, once)."""
    global _partitioner
    with _INIT_LOCK:
        if _partitioner is None:
            from elements.decoders import torch_device
            from elements.partition import Partitioner

            device = torch_device(os.environ.get("EIE_APP_DEVICE", "").strip() or None)
            _partitioner = Partitioner(partition_backend(), device=device)
        return _partitioner


def sam_affinity():
    """The shared :class:`~elements.partition.sam.SamAffinity`, or None when the partition is not SAM's."""
    return partitioner().affinity


def decoder_status() -> dict[str, tuple[bool, str]]:
    """``{name: (available, reason)}`` for every decoder, computed once (it probes caches, never downloads)."""
    global _availability
    with _INIT_LOCK:
        if _availability is None:
            from elements.decoders import available_decoders

            _availability = available_decoders()
        return dict(_availability)


def available_decoder_names() -> list[str]:
    return [name for name, (ok, _) in decoder_status().items() if ok]


def default_decoder() -> str:
    """``EIE_APP_DECODER`` if it is available, else the strongest available decoder."""
    from elements.decoders import best_available

    wanted = os.environ.get("EIE_APP_DECODER", "").strip()
    names = available_decoder_names()
    if wanted:
        if wanted not in decoder_status():
            raise UserError(
                f"EIE_APP_DECODER names an unknown decoder '{wanted}'; choose one of {', '.join(decoder_status())}."
            )
        if wanted in names:
            return wanted
    best = best_available()
    return best if best in names else names[0]


def decoder(name: str):
    """The shared decoder ``name``, built on first use; an unavailable one raises UserError with the reason."""
    status = decoder_status()
    if name not in status:
        raise UserError(f"Unknown decoder '{name}'; choose one of {', '.join(status)}.")
    ok, why = status[name]
    if not ok:
        raise UserError(f"The '{name}' decoder cannot run here: {why}.")
    with _INIT_LOCK:
        if name not in _decoders:
            from elements.decoders import get_decoder

            _decoders[name] = get_decoder(name)
        return _decoders[name]


@functools.cache
def _decoder_line(name: str) -> str:
    return decoder(name).describe()


#: What each decoder does to the picture, in plain words, for the banner's one line.
PLAIN_DECODERS = {
    "diffusion": "the paper's element-conditioned diffusion decoder draws the result",
    "light": "the paper's light decoder draws the result (blurry by design)",
    "pixel": "pixels are moved, holes are left grey",
    "pixel+sdedit": "pixels are moved, then SDEdit redraws the picture",
    "pixel+inpaint": "holes filled by classic inpainting",
}


def _plain_decoder(name: str) -> str:
    if name == "pixel+inpaint" and getattr(decoder(name), "backend", "") == "sd":
        return "holes filled by Stable Diffusion inpainting"
    return PLAIN_DECODERS.get(name, name)


def decoder_settings(name: str) -> tuple[bool, str]:
    """Whether ``name`` uses prompt, seed, steps, guidance and candidates; else one line saying why not."""
    if name in ("diffusion", "pixel+sdedit") or (
        name == "pixel+inpaint" and getattr(decoder(name), "backend", "") == "sd"
    ):
        return True, ""
    why = {"light": "it decodes in one pass, without sampling", "pixel": "it only copies pixels"}.get(
        name, "it fills holes with a classical method: one fixed-seed result"
    )
    return False, f"Prompt, seed, steps, guidance and candidates are hidden: `{name}` ignores them ({why})."


def _banner_parts(selected_decoder: str | None) -> tuple[str, str]:
    """``(headline, what runs)`` of the banner, as data; :func:`banner` and :func:`startup_summary` render it.

    Nothing is called the paper's method unless it is: the SAM partition (Alg. 2) with the
    ``light`` / ``diffusion`` decoders.
    """
    part = partitioner()
    name = selected_decoder or default_decoder()
    if part.backend == "sam":
        kind = part.affinity.model_type
        elements = (
            f"elements from a small distilled SAM ({part.method}; approximates the paper's ViT-B)"
            if kind == "vit_t"
            else f"elements from SAM {kind} ({part.method})"
        )
    elif part.note:
        elements = f"elements from {part.backend.upper()} superpixels (no SAM could be loaded; see Details)"
    else:
        elements = f"elements from a {part.backend.upper()} partition"
    paper = part.backend == "sam" and name in PAPER_DECODERS
    if paper:
        head = "The paper's method"
    elif name in PAPER_DECODERS or name == "pixel+sdedit" or "Stable Diffusion" in _plain_decoder(name):
        head = "Baseline mode"
    else:
        head = "Fast CPU mode"
    tail = (
        ""
        if paper
        else " — not the paper's full method"
        if name in PAPER_DECODERS
        else " — not the paper's diffusion decoder"
    )
    return head, f"{elements}, {_plain_decoder(name)}{tail}."


def _detail_lines(selected_decoder: str | None) -> list[tuple[str | None, str]]:
    """The "Details" lines as ``(decoder name to set as code or None, text)``: partition, decoder, unavailable ones."""
    part = partitioner()
    name = selected_decoder or default_decoder()
    lines = [
        (None, f"Partition: {part.describe()}" + (f" — {part.note}" if part.note else "")),
        (None, f"Decoder: {_decoder_line(name)}"),
    ]
    lines += [(n, f"unavailable: {why}") for n, (ok, why) in decoder_status().items() if not ok]
    return lines


def banner(selected_decoder: str | None = None) -> str:
    """One plain-language Markdown line saying what runs, e.g. "**Fast CPU mode:** elements from SLIC superpixels …"."""
    head, body = _banner_parts(selected_decoder)
    return f"**{head}:** {body}"


def details(selected_decoder: str | None = None) -> str:
    """Markdown list for the collapsed "Details": partition, decoder and why others are unavailable."""
    return "\n".join(f"- `{n}` {text}" if n else f"- {text}" for n, text in _detail_lines(selected_decoder))


def object_mode_status() -> tuple[bool, str]:
    """Whether the "object" click mode can run (it needs SAM), with a short reason when it cannot."""
    aff = sam_affinity()
    if aff is not None:
        return True, f"SAM ({aff.model_type}) selects every element of the object under the click or inside the box"
    part = partitioner()
    why = "no SAM is available" if part.note else f"the partition backend is {part.backend}"
    return False, f"object mode needs SAM, and {why} (see the banner)"


def startup_summary() -> str:
    """Plain-text lines printed by ``python app.py``: the same data as :func:`banner` and :func:`details`."""
    head, body = _banner_parts(None)
    lines = [f"{head}: {body}"] + [f"  {n} {text}" if n else f"  {text}" for n, text in _detail_lines(None)]
    return "\n".join(lines)


def _reset_for_tests() -> None:
    """Forget the singletons (tests that change EIE_APP_* between cases)."""
    global _partitioner, _availability
    with _INIT_LOCK:
        _partitioner, _availability = None, None
        _decoders.clear()
    _decoder_line.cache_clear()


__all__ = [
    "DECODE_LOCK",
    "MODEL_LOCK",
    "PAPER_DECODERS",
    "available_decoder_names",
    "banner",
    "decoder",
    "decoder_settings",
    "decoder_status",
    "default_decoder",
    "details",
    "gpu",
    "object_mode_status",
    "partition_backend",
    "partitioner",
    "sam_affinity",
    "startup_summary",
]
