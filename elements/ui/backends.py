"""What the demo runs, loaded once per process, and the banner that says so.

The partitioner, SAM and every decoder are module-level singletons, shared by every visitor.
``python app.py`` loads the partitioner (SAM and its onnxruntime encoder session) at start-up
in a background thread (:func:`start_loading`) and runs it once on a synthetic picture, so
that the first upload pays neither for loading nor for first-run costs; until then the banner
says "Loading…", and a request that arrives meanwhile waits for that one load. A failed load
is logged with its traceback and shown in the banner as one sentence; every partition then
says that sentence. Without :func:`start_loading` (tests, benchmarks) the first caller loads
it. Anything that touches a shared model holds :data:`MODEL_LOCK` (SAM's predictor keeps the
current image embedding as state, so two sessions must not interleave restore-embedding and
prompt).

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
import logging
import os
import threading
import time

import numpy as np

from elements.errors import UserError, excerpt

log = logging.getLogger("elements.app")

#: Serialises use of the shared SAM model (its predictor holds one image embedding at a time).
MODEL_LOCK = threading.RLock()
#: Serialises decoding (diffusers pipelines keep scheduler state and are not thread-safe).
DECODE_LOCK = threading.Lock()
_INIT_LOCK = threading.Lock()
#: Held while the partitioner loads: a request that arrives meanwhile waits here (one load per process).
_PARTITIONER_LOCK = threading.Lock()
_partitioner = None
_partitioner_error: str | None = None  # the one sentence saying why the load failed
_loader: threading.Thread | None = None  # the start-up load (start_loading), None when none was started
_ready = threading.Event()  # set when the start-up load and warm-up are over (either way)
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
    """The process-wide :class:`~elements.partition.Partitioner` (SAM loads here, once).

    Raises UserError with the load's one-sentence reason when it failed (then and every time after).
    """
    global _partitioner, _partitioner_error
    with _PARTITIONER_LOCK:
        if _partitioner is None:
            if _partitioner_error is not None:
                raise UserError(_partitioner_error)
            try:
                from elements.decoders import torch_device
                from elements.partition import Partitioner

                device = torch_device(os.environ.get("EIE_APP_DEVICE", "").strip() or None)
                _partitioner = Partitioner(partition_backend(), device=device)
            except Exception as err:
                log.exception("loading the partition model failed")
                _partitioner_error = (
                    str(err).rstrip(".") + "."
                    if isinstance(err, UserError)
                    else f"The partition model could not be loaded ({type(err).__name__}); the server log says why."
                )
                raise UserError(_partitioner_error) from err
        return _partitioner


def start_loading() -> threading.Thread:
    """Load and warm the partitioner in a background thread (once per process); ``python app.py`` calls it
    before ``launch``. Prints what runs (or why nothing does) when done."""
    global _loader
    with _INIT_LOCK:
        if _loader is None:
            _loader = threading.Thread(target=_load_and_warm, name="eie-load-partitioner", daemon=True)
            _loader.start()
        return _loader


def loading() -> bool:
    """Whether the start-up load (:func:`start_loading`) is still running."""
    return _loader is not None and not _ready.is_set()


def wait_until_loaded(timeout: float | None = None) -> bool:
    """Block until the start-up load is over (at once if none was started); False on timeout."""
    return _loader is None or _ready.wait(timeout)


def _load_and_warm() -> None:
    t0 = time.perf_counter()
    try:
        part = partitioner()
        with MODEL_LOCK:
            warm_up(part)
    except UserError:  # already logged with its traceback by partitioner(); the banner says it
        pass
    except Exception:  # the warm-up run failed, not the load: uploads will still try
        log.exception("warming up the partition model failed")
    finally:
        _ready.set()
    if _partitioner_error is not None:
        print(f"error: {_partitioner_error} Uploads say so until the demo is restarted.", flush=True)
    else:
        print(f"{startup_summary()}\n  ready in {time.perf_counter() - t0:.1f} s (loaded and warmed up)", flush=True)


#: The warm-up picture: 512 × 384, so the letterbox, Alg. 2's windows and the encoder all run once.
WARM_UP_SIZE = (512, 384)


def warm_up(part) -> None:
    """Partition one synthetic picture and forget it: onnxruntime's first run (arena, kernels), torch's first
    use of each operator and the lazy imports of the partition path are paid here, not by the first visitor."""
    w, h = WARM_UP_SIZE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w * 200, yy / h * 200, (xx + yy) / (w + h) * 120], axis=-1)
    img[(xx - w * 0.35) ** 2 + (yy - h * 0.5) ** 2 < (h * 0.22) ** 2] = (230, 60, 40)  # a disc and a bar:
    img[int(h * 0.2) : int(h * 0.8), int(w * 0.65) : int(w * 0.8)] = (30, 140, 220)  # boundaries to follow
    part(img.astype(np.uint8))
    if part.affinity is not None:
        part.affinity.clear()  # the warm-up's embedding is nobody's; free it


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


def sampler_defaults(name: str) -> tuple[int | None, float | None]:
    """``(steps, guidance)`` the decoder ``name`` samples with when given none, as its CLI does; None without a sampler.

    Read from the decoder's one table (:data:`elements.decoders.SAMPLER_DEFAULTS`), never copied here:
    the demo and ``python -m elements edit`` give the same image from the same spec.
    """
    from elements.decoders import REGISTRY
    from elements.decoders import sampler_defaults as own

    if name not in REGISTRY:
        raise UserError(f"Unknown decoder '{name}'; choose one of {', '.join(REGISTRY)}.")
    d = own(name)
    return (None if d.steps is None else int(d.steps)), (None if d.guidance is None else float(d.guidance))


@functools.cache
def _decoder_line(name: str) -> str:
    return decoder(name).describe()


#: What each decoder does to the picture, in plain words, for the banner's one line.
PLAIN_DECODERS = {
    "diffusion": "the paper's element-conditioned diffusion decoder draws the result",
    "light": "the paper's light decoder draws the result (blurry by design)",
    "pixel": "pixels are moved, holes are left black",
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

    Nothing is called the paper's method unless it is: SAM ViT-B/L/H's Alg. 2 partition with
    the ``light`` / ``diffusion`` decoders; with the distilled SAM (or refined borders) the
    headline says it approximates it.
    """
    part = partitioner()
    name = selected_decoder or default_decoder()
    if part.backend == "sam":
        elements = f"elements from {part.affinity.description} ({part.method})"
    elif part.note:
        elements = f"elements from {part.backend.upper()} superpixels (no SAM could be loaded; see Details)"
    else:
        elements = f"elements from a {part.backend.upper()} partition"
    sam = part.backend == "sam"
    paper_partition = sam and part.affinity.model_type != "vit_t" and part.refine != "borders"
    if name in PAPER_DECODERS and paper_partition:
        head, tail = "The paper's method", ""
    elif name in PAPER_DECODERS and sam:  # a distilled SAM or refined borders: close to Alg. 2, not it
        head, tail = "Approximation of the paper's method", " — the partition is not the paper's ViT-B Alg. 2"
    elif name in PAPER_DECODERS:
        head, tail = "Baseline mode", " — not the paper's full method"
    elif name == "pixel+sdedit" or "Stable Diffusion" in _plain_decoder(name):
        head, tail = "Baseline mode", " — not the paper's diffusion decoder"
    else:
        head, tail = "Fast CPU mode", " — not the paper's diffusion decoder"
    return head, f"{elements}, {_plain_decoder(name)}{tail}."


def _partition_line() -> str:
    if loading():
        return "Partition: loading…"
    if _partitioner_error is not None:
        return f"Partition: could not be loaded — {_partitioner_error}"
    part = partitioner()
    return f"Partition: {part.describe()}" + (f" — {part.note}" if part.note else "")


def _detail_lines(selected_decoder: str | None) -> list[tuple[str | None, str]]:
    """The "Details" lines as ``(decoder name to set as code or None, text)``: partition, decoder, unavailable ones."""
    name = selected_decoder or default_decoder()
    lines = [
        (None, _partition_line()),
        (None, f"Decoder: {_decoder_line(name)}"),
    ]
    lines += [(n, f"unavailable: {why}") for n, (ok, why) in decoder_status().items() if not ok]
    return lines


#: The banner while the start-up load runs (:func:`start_loading`).
LOADING_BANNER = "**Loading…** the partition model is starting; an upload now waits for it, then shows its elements."


def banner(selected_decoder: str | None = None) -> str:
    """One plain-language Markdown line saying what runs, e.g. "**Fast CPU mode:** elements from SLIC superpixels …".

    :data:`LOADING_BANNER` while the start-up load runs; the failure's one sentence if it failed.
    """
    if loading():
        return LOADING_BANNER
    if _partitioner_error is not None:
        return f"**Elements cannot be made:** {_partitioner_error}"
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
    global _partitioner, _partitioner_error, _availability, _loader
    if _loader is not None:
        _ready.wait()
    with _INIT_LOCK, _PARTITIONER_LOCK:
        _partitioner, _partitioner_error, _availability, _loader = None, None, None, None
        _decoders.clear()
        _ready.clear()
    _decoder_line.cache_clear()


__all__ = [
    "DECODE_LOCK",
    "LOADING_BANNER",
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
    "loading",
    "object_mode_status",
    "partition_backend",
    "partitioner",
    "sam_affinity",
    "sampler_defaults",
    "start_loading",
    "startup_summary",
    "wait_until_loaded",
    "warm_up",
]
