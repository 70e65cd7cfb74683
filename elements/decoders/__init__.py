"""Decoders: from (edited) :class:`~elements.types.ImageElements` to an image, behind one interface.

>>> dec = get_decoder("pixel+inpaint")          # by name; options go to the constructor
>>> print(dec.describe())                       # one line for banners and logs
>>> out = dec(el, prompt="", seed=0)            # (H_in, W_in, 3) uint8, the input's size

=================  ==================================================================  =====================
name               what runs                                                          needs
=================  ==================================================================  =====================
``pixel``          pixel editing (App. A): copy/scale each element's pixels; holes = 0  nothing
``pixel+inpaint``  pixel editing, then SD-Inpaint on the holes (App. A); PatchMatch     SD-Inpaint (optional)
                   on the CPU when SD-Inpaint cannot be had (docs/cpu-editing.md)
``pixel+sdedit``   pixel editing, then SDEdit with SD-1.5 img2img, strength 0.5/0.7/0.9  SD-1.5 (GPU advised)
``light``          the stage-1 light transformer decoder (Sec. 3.2)                    stage-1 checkpoint
``diffusion``      the element-conditioned SD-1.5 decoder (Sec. 3.3), ours             stage-1 + 2, SD-1.5
=================  ==================================================================  =====================

Every decoder returns the image at the input's size and aspect ratio
(``el.geometry.from_canvas``) as a :class:`~elements.decoders.result.DecodedImage` naming what ran
(``.ran``, ``.note``), and is deterministic for a given seed. ``steps=None`` / ``guidance=None``
mean the decoder's own defaults, :func:`sampler_defaults` (``sampler_defaults("diffusion").steps``
is 50); the accepted ranges come from the spec's schema (:data:`elements.spec.LIMITS`).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from elements.decoders.result import DecodedImage
from elements.devices import torch_device  # re-exported: decoders take it from here
from elements.errors import UserError
from elements.types import ImageElements

#: ``progress(step, total)`` is called after each denoising step by the diffusion-based decoders.
Progress = Callable[[int, int], None]

#: name -> "module:Class"; modules are imported only when a decoder is asked for.
REGISTRY = {
    "pixel": "elements.decoders.pixel:PixelDecoder",
    "pixel+inpaint": "elements.decoders.inpaint:InpaintDecoder",
    "pixel+sdedit": "elements.decoders.sdedit:SDEditDecoder",
    "light": "elements.decoders.light:LightDecoder",
    "diffusion": "elements.decoders.diffusion:DiffusionDecoder",
}


@dataclass(frozen=True)
class SamplerDefaults:
    """What a decoder uses when ``steps`` / ``guidance`` are None; None = the decoder does not sample."""

    steps: int | None = None
    guidance: float | None = None


#: name -> sampler defaults: the one place each decoder's defaults are written (read them with
#: :func:`sampler_defaults`; the demo, the CLI and eval leave steps/guidance None to get them).
SAMPLER_DEFAULTS = {
    "pixel": SamplerDefaults(),
    # SD-Inpaint (the GPU engine): our decoder's step budget; guidance is diffusers' default for
    # SD-Inpaint, App. A states none. The CPU engines (PatchMatch, Telea) do not sample.
    "pixel+inpaint": SamplerDefaults(steps=50, guidance=7.5),
    # img2img runs int(steps * strength) of them; guidance: diffusers' img2img default (App. A states none)
    "pixel+sdedit": SamplerDefaults(steps=50, guidance=7.5),
    "light": SamplerDefaults(),  # one forward pass, no sampling
    "diffusion": SamplerDefaults(steps=50, guidance=3.0),  # 50 DDIM steps, w = 3 on text and elements, App. C.2
}


def _known(name: str) -> str:
    if name not in REGISTRY:
        raise UserError(f"Unknown decoder '{name}'; choose one of {', '.join(REGISTRY)}.")
    return name


def sampler_defaults(name: str) -> SamplerDefaults:
    """Decoder ``name``'s own sampler defaults (no module is imported)."""
    return SAMPLER_DEFAULTS[_known(name)]


def check_settings(*, seed: int, steps: int | None, guidance: float | None) -> tuple[int, int | None, float | None]:
    """``(seed, steps, guidance)`` within the spec schema's limits (:func:`elements.spec.check_setting`,
    their one owner), as ``(int, int, float)``; ``None`` steps/guidance pass through. UserError otherwise."""
    from elements.spec import check_setting

    return (
        check_setting("seed", seed),
        None if steps is None else check_setting("steps", steps),
        None if guidance is None else check_setting("guidance", guidance),
    )


class Decoder:
    """The interface every decoder implements.

    Subclasses set :attr:`name`, implement :meth:`decode_canvas` and may override
    :meth:`requirements`, :meth:`describe`, :meth:`availability` and :attr:`ran`.
    """

    name: str = ""

    @property
    def ran(self) -> str:
        """What runs, as results name it (``DecodedImage.ran``); a decoder with engines names the engine."""
        return self.name

    def sampler_settings(self, steps: int | None, guidance: float | None) -> tuple[int, float]:
        """``(steps, guidance)`` with this decoder's :func:`sampler_defaults` where None."""
        d = sampler_defaults(self.name)
        return int(d.steps if steps is None else steps), float(d.guidance if guidance is None else guidance)

    def run_note(self, steps: int | None, guidance: float | None) -> str:
        """One line on how it ran: the sampler settings used, "" for a decoder that does not sample."""
        if sampler_defaults(self.name).steps is None:
            return ""
        steps, guidance = self.sampler_settings(steps, guidance)
        return f"{steps} steps, guidance {guidance:g}"

    @classmethod
    def availability(cls, **options) -> tuple[bool, str]:
        """(can it run here, one-line reason). Must be cheap and never download."""
        return True, "ready"

    def requirements(self) -> dict:
        """``{"weights": [what, ...], "gpu": "no" | "advised" | "required"}``."""
        return {"weights": [], "gpu": "no"}

    def describe(self) -> str:
        """One line saying what runs (model and settings), for banners and the CLI."""
        return self.name

    def decode_canvas(
        self,
        el: ImageElements,
        *,
        prompt: str,
        seed: int,
        steps: int | None,
        guidance: float | None,
        progress: Progress | None,
    ) -> np.ndarray:
        """Decode to the working canvas ``(S, S, 3) uint8``."""
        raise NotImplementedError

    def __call__(
        self,
        el: ImageElements,
        *,
        prompt: str = "",
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        progress: Progress | None = None,
    ) -> DecodedImage:
        """Decode ``el`` to ``(H_in, W_in, 3) uint8`` at the input image's size, naming what ran."""
        seed, steps, guidance = check_settings(seed=seed, steps=steps, guidance=guidance)
        canvas = self.decode_canvas(
            el, prompt=prompt or "", seed=seed, steps=steps, guidance=guidance, progress=progress
        )
        canvas = np.asarray(canvas)
        s = el.size
        if canvas.shape != (s, s, 3) or canvas.dtype != np.uint8:
            raise RuntimeError(
                f"decoder {self.name} returned {canvas.shape} {canvas.dtype}, expected ({s}, {s}, 3) uint8"
            )
        return DecodedImage(el.geometry.from_canvas(canvas), self.ran, self.run_note(steps, guidance))


# --- shared helpers for the decoders --------------------------------------------------------------
def weights_status(ref: str | None, *, what: str, env: str | None = None) -> tuple[bool, str]:
    """Can the weights at ``ref`` (local folder/file or Hub id) be had? Never downloads.

    True for a local path, a Hub id already in the local cache, or a Hub id while the Hub is
    reachable (it will be downloaded on first use).
    """
    from pathlib import Path

    from elements.hub import hub_reachable, split_ref

    if not ref:
        hint = f" (set {env} or pass its flag)" if env else ""
        return False, f"no {what} given{hint}"
    if Path(ref).expanduser().exists():
        return True, f"{what} at {ref}"
    repo, _ = split_ref(ref)
    if repo.count("/") != 1:
        return False, f"{what} '{ref}' is neither a local path nor a Hub id"
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id=repo, local_files_only=True)
        return True, f"{what} {ref} (Hub cache)"
    except Exception:
        pass  # not in the local cache: whether it can be downloaded is decided below
    if hub_reachable():
        return True, f"{what} {ref} (downloaded from the Hub on first use)"
    hint = f"; set {env} to a local copy" if env else ""
    return False, f"{what} {ref} is not in the local cache and the Hub cannot be reached{hint}"


def load_sd_pipeline(cls_name: str, ref: str, *, what: str, env: str | None, device: str | None, dtype=None):
    """Load a diffusers SD pipeline class ``cls_name`` from a local folder or Hub id (no safety checker).

    fp16 on CUDA, fp32 elsewhere unless ``dtype`` says otherwise. Missing weights raise UserError.
    """
    from pathlib import Path

    import diffusers
    import torch

    from elements.hub import resolve_folder

    local, sub = resolve_folder(ref, what=what, env=env)
    path = str(Path(local) / sub) if sub else local
    device = torch_device(device)
    dtype = dtype or (torch.float16 if device.startswith("cuda") else torch.float32)
    try:
        pipe = getattr(diffusers, cls_name).from_pretrained(
            path, torch_dtype=dtype, safety_checker=None, requires_safety_checker=False
        )
    except (OSError, ValueError, KeyError) as err:
        raise UserError(
            f"{what} at '{ref}' could not be loaded as a {cls_name} ({type(err).__name__}: {str(err).splitlines()[0][:160]})."
        ) from err
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def diffusers_call_kwargs(seed: int, progress: Progress | None) -> dict:
    """The ``generator`` (a CPU generator, so a seed gives the same noise on any device) and step callback."""
    import torch

    kw = {"generator": torch.Generator("cpu").manual_seed(int(seed))}
    if progress is not None:

        def on_step_end(pipe, i, t, tensors):
            progress(i + 1, int(getattr(pipe, "num_timesteps", 0) or 0))
            return tensors

        kw["callback_on_step_end"] = on_step_end
    return kw


def _load_class(name: str) -> type[Decoder]:
    module, _, cls = REGISTRY[_known(name)].partition(":")
    return getattr(importlib.import_module(module), cls)


def get_decoder(name: str, **options) -> Decoder:
    """Build decoder ``name`` with its options (checkpoints, device, strength, ...).

    Raises UserError for an unknown name, a bad option, or weights that cannot be had.
    """
    cls = _load_class(name)
    try:  # checked against the signature, so a TypeError raised inside the constructor stays a bug
        inspect.signature(cls).bind(**options)
    except TypeError as err:
        takes = [p for p in inspect.signature(cls).parameters if p not in ("args", "kwargs")]
        raise UserError(
            f"Decoder '{name}' does not take these options ({err}); it takes {', '.join(takes) or 'none'}."
        ) from err
    return cls(**options)


def available_decoders(**options) -> dict[str, tuple[bool, str]]:
    """``{name: (available, reason)}`` for every registered decoder, without loading any model.

    ``options`` (e.g. ``stage1=...``) are passed to each decoder's ``availability`` when it takes them.
    """
    out = {}
    for name in REGISTRY:
        cls = _load_class(name)
        out[name] = cls.availability(**options)
    return out


def best_available(**options) -> str:
    """The strongest decoder that can run here: ``diffusion`` if its weights can be had, else ``pixel+inpaint``."""
    return "diffusion" if _load_class("diffusion").availability(**options)[0] else "pixel+inpaint"


__all__ = [
    "Decoder",
    "Progress",
    "REGISTRY",
    "SAMPLER_DEFAULTS",
    "SamplerDefaults",
    "available_decoders",
    "best_available",
    "check_settings",
    "diffusers_call_kwargs",
    "get_decoder",
    "load_sd_pipeline",
    "sampler_defaults",
    "torch_device",
    "weights_status",
]
