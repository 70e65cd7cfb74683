"""``ElementsPipeline``: image elements (+ a prompt) -> image, with the element-conditioned SD UNet (Sec. 3.3).

>>> pipe = ElementsPipeline.from_elements_checkpoint(stage1="ckpt/stage1", stage2="ckpt/stage2", device="cuda")
>>> canvas = pipe(el, prompt="a photo of a cat", generator=torch.Generator().manual_seed(0)).images[0]
>>> image = pipe.to_input_size(np.asarray(canvas), el)      # back to the input's size and aspect

Defaults follow App. C.2: classifier-free guidance with one weight on text and elements,
ε̂ = ε(z, ∅, ∅) + w · [ε(z, C, S) − ε(z, ∅, ∅)], w = 3, and 50 DDIM steps. Both halves of the
guidance run in one UNet call (per-sample ∅ switches, see ``elements.models.element_attention``).
An empty prompt means C = ∅ (the text branch is off, as for the 40 % of training samples whose
text is dropped, App. C.2), not the CLIP encoding of "".
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from elements import defaults
from elements.decoders import sampler_defaults
from elements.errors import UserError
from elements.models.content_encoder import CONTENT_ENCODER_DIR
from elements.models.element_attention import ElementAdapter, install, set_slice_size
from elements.models.element_unet import ADAPTER_DIR, UNET_DIR
from elements.models.tokens import collate, tokens_from_embeddings
from elements.pixels import to_uint8
from elements.types import ImageElements

#: 50 DDIM steps, w = 3 on C and S (App. C.2): the ``diffusion`` decoder's defaults, written once
PAPER_SAMPLER = sampler_defaults("diffusion")

#: name -> (scheduler class, extra config); ``ddim`` is the paper's sampler, ``dpm++`` the fast mode
#: (DPM-Solver++ reaches DDIM-50 quality in about 20 steps, Lu et al. 2022).
SCHEDULERS = {
    "ddim": (DDIMScheduler, {}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
}


def make_scheduler(name: str, config):
    """Build scheduler ``name`` (see :data:`SCHEDULERS`) from another scheduler's config (same noise schedule)."""
    if name not in SCHEDULERS:
        raise UserError(f"Unknown scheduler '{name}'; choose one of {', '.join(SCHEDULERS)}.")
    cls, extra = SCHEDULERS[name]
    return cls.from_config(config, **extra)


def guide(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """ε(z, ∅, ∅) + w · [ε(z, C, S) − ε(z, ∅, ∅)] (App. C.2)."""
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


class ElementsPipeline(DiffusionPipeline):
    """Stable Diffusion conditioned on image elements.

    Components: ``vae`` (AutoencoderKL), ``text_encoder`` (CLIPTextModel), ``tokenizer``
    (CLIPTokenizer), ``unet`` (UNet2DConditionModel), ``scheduler``, ``content_encoder``
    (:class:`~elements.models.content_encoder.ContentEncoder`) and ``element_adapter``
    (:class:`~elements.models.element_attention.ElementAdapter`, installed into ``unet`` here).
    """

    model_cpu_offload_seq = "text_encoder->content_encoder->unet->vae"
    # The adapter's layers run inside the UNet's forward, so they must stay on the device with it.
    _exclude_from_cpu_offload = ["element_adapter"]
    _callback_tensor_inputs = ["latents"]

    def __init__(self, vae, text_encoder, tokenizer, unet, scheduler, content_encoder, element_adapter: ElementAdapter):
        super().__init__()
        if content_encoder.token_dim != element_adapter.config.token_dim:
            raise UserError(
                f"The content encoder makes {content_encoder.token_dim}-wide tokens but the element adapter "
                f"expects {element_adapter.config.token_dim}; the stage-1 and stage-2 checkpoints do not match."
            )
        self.register_modules(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            content_encoder=content_encoder,
            element_adapter=element_adapter,
        )
        try:
            install(unet, element_adapter)
        except ValueError as err:
            raise UserError(f"The stage-2 element adapter does not fit this UNet ({err}).") from err
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)

    # --- loading -------------------------------------------------------------------------
    @classmethod
    def from_elements_checkpoint(
        cls,
        base: str | None = None,
        stage1: str | None = None,
        stage2: str | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        scheduler: str = "ddim",
    ) -> ElementsPipeline:
        """Assemble the pipeline from an SD-1.5 base and our checkpoints (local folders or Hub ids).

        ``base`` / ``stage1`` / ``stage2`` default to ``elements.defaults`` (flag > env var > built-in).
        The stage-2 checkpoint (``unet/``, ``element_adapter/`` and usually ``content_encoder/``) is
        required; ``stage1`` is needed only when stage 2 carries no ``content_encoder/``.
        Raises UserError naming whatever cannot be had (offline, missing folder, mismatch).
        """
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        from elements.models.content_encoder import ContentEncoder

        base_dir = model_folder(defaults.SD_BASE, base)
        stage2_ref = defaults.STAGE2_CHECKPOINT.get(stage2)
        if not stage2_ref:
            raise UserError(
                f"The element pipeline needs {defaults.STAGE2_CHECKPOINT.what}; "
                f"pass it or set {defaults.STAGE2_CHECKPOINT.env}."
            )
        stage2_dir = model_folder(defaults.STAGE2_CHECKPOINT, stage2_ref)
        if (stage2_dir / CONTENT_ENCODER_DIR).is_dir():
            encoder_dir = stage2_dir
        else:
            if not defaults.STAGE1_CHECKPOINT.get(stage1):
                raise UserError(
                    f"The stage-2 checkpoint has no {CONTENT_ENCODER_DIR}/ folder, so the pipeline needs "
                    f"{defaults.STAGE1_CHECKPOINT.what}; pass it or set {defaults.STAGE1_CHECKPOINT.env}."
                )
            encoder_dir = model_folder(defaults.STAGE1_CHECKPOINT, stage1)
        kw = {"torch_dtype": dtype} if dtype is not None else {}
        parts = {
            "vae": (AutoencoderKL, base_dir, "vae"),
            "text_encoder": (CLIPTextModel, base_dir, "text_encoder"),
            "tokenizer": (CLIPTokenizer, base_dir, "tokenizer"),
            "unet": (UNet2DConditionModel, stage2_dir, UNET_DIR),
            "element_adapter": (ElementAdapter, stage2_dir, ADAPTER_DIR),
            "content_encoder": (ContentEncoder, encoder_dir, CONTENT_ENCODER_DIR),
        }
        loaded = {}
        for name, (klass, root, sub) in parts.items():
            if not (root / sub).is_dir():
                raise UserError(f"'{root}' has no {sub}/ folder, so the {name.replace('_', ' ')} cannot be loaded.")
            extra = {} if name == "tokenizer" else kw
            try:
                loaded[name] = klass.from_pretrained(str(root), subfolder=sub, **extra)
            except (OSError, ValueError) as err:
                raise UserError(
                    f"Could not load the {name.replace('_', ' ')} from '{root / sub}' ({_short(err)})."
                ) from err
        sched_cfg = DDIMScheduler.load_config(str(base_dir), subfolder="scheduler")
        pipe = cls(scheduler=make_scheduler(scheduler, sched_cfg), **loaded)
        if device is not None:
            pipe.to(device)
        return pipe

    # --- memory switches -----------------------------------------------------------------
    def set_attention_slice(self, slice_size: int | str | None) -> None:
        """Attention slicing that keeps our processors (diffusers' default would replace them)."""
        set_slice_size(self.unet, slice_size)

    def set_use_memory_efficient_attention_xformers(self, valid: bool, attention_op=None) -> None:
        raise NotImplementedError(
            "xFormers processors would remove the element attention; PyTorch SDPA is used instead "
            "and is already memory-efficient on GPU."
        )

    # --- conditioning --------------------------------------------------------------------
    def encode_prompt(self, prompts: list[str], device) -> torch.Tensor | None:
        """CLIP text states ``(B, 77, C_text)`` for the non-empty prompts; ``None`` when all are empty (C = ∅)."""
        if not any(prompts):
            return None
        ids = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(device)
        return self.text_encoder(ids)[0].to(self.unet.dtype)

    @torch.no_grad()
    def encode_elements(self, elements: list[ImageElements], device, use_cached_embeddings: bool = True):
        """Element tokens ``(B, N, token_dim)`` and ``active (B, N) bool``; N padded to the largest set.

        When every ``ImageElements`` carries ``embeddings`` of the encoder's width (encoded once on
        upload, SAM-style) those are used and only the positional part is recomputed from the
        (edited) boxes; otherwise the content encoder runs on the patches.
        """
        enc = self.content_encoder
        cached = use_cached_embeddings and all(
            el.embeddings is not None and el.embeddings.shape[1] == enc.content_dim for el in elements
        )
        if cached:
            tokens, _, active = tokens_from_embeddings(
                elements, [el.embeddings for el in elements], enc.config.num_freqs, device=device, dtype=enc.dtype
            )
            return tokens, active
        batch = collate(elements).to(device, enc.dtype)
        return enc.tokens(batch), batch.active

    # --- sampling ------------------------------------------------------------------------
    @property
    def num_timesteps(self) -> int:
        return getattr(self, "_num_timesteps", 0)

    @torch.no_grad()
    def __call__(
        self,
        elements: ImageElements | list[ImageElements],
        prompt: str | list[str] = "",
        *,
        num_inference_steps: int = PAPER_SAMPLER.steps,
        guidance_scale: float = PAPER_SAMPLER.guidance,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_images_per_prompt: int = 1,
        height: int | None = None,
        width: int | None = None,
        eta: float = 0.0,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs: tuple[str, ...] = ("latents",),
        use_cached_embeddings: bool = True,
        return_dict: bool = True,
    ):
        """Decode image elements to images.

        Args:
            elements: one :class:`ImageElements` or a list (one image each).
            prompt: a caption per element set (or one for all); ``""`` = no text (C = ∅).
            num_inference_steps: sampler steps (50 DDIM steps in the paper, App. C.2).
            guidance_scale: w of classifier-free guidance on text and elements together; ``<= 1``
                runs the conditional prediction only (w = 1 is exactly ε(z, C, S)).
            generator: torch generator(s) for the initial noise (and DDIM's η-noise): same seed, same image.
            num_images_per_prompt: samples per element set.
            height / width: output pixels, default the elements' canvas (512); any multiple of 8
                works because element boxes are normalised.
            latents: ``(B·k, 4, height/8, width/8)`` starting noise instead of drawing it.
            output_type: ``"pil"``, ``"np"`` (float in [0, 1], ``(B, H, W, 3)``), ``"pt"`` or ``"latent"``.
            callback_on_step_end: ``fn(pipe, i, t, tensors) -> tensors`` after each step (progress, edits of latents).
            use_cached_embeddings: use ``el.embeddings`` when present instead of re-running the encoder.
        Returns:
            ``ImagePipelineOutput(images)`` (or a tuple): canvas images, element set-major order.
        """
        els, prompts = self.check_inputs(elements, prompt, output_type, num_inference_steps, num_images_per_prompt)
        height = height or els[0].size
        width = width or els[0].size
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise UserError(f"height and width must be multiples of {self.vae_scale_factor}, got {height}x{width}.")
        device, do_cfg = self._execution_device, guidance_scale > 1.0
        text, cond_kwargs, b = self.conditioning(
            els, prompts, device, num_images_per_prompt, do_cfg, use_cached_embeddings
        )
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        self._num_timesteps = len(self.scheduler.timesteps)
        shape = (b, self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        latents = self.prepare_latents(shape, generator, device, latents)
        latents = self.denoise(
            latents,
            text,
            cond_kwargs,
            guidance_scale=guidance_scale if do_cfg else None,
            step_kwargs=self._step_kwargs(generator, eta),
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
        )
        if output_type == "latent":
            images = latents
        else:
            decoded = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor, return_dict=False)[0]
            images = self.image_processor.postprocess(decoded, output_type=output_type)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    @staticmethod
    def check_inputs(elements, prompt, output_type: str, num_inference_steps: int, num_images_per_prompt: int):
        """``(element sets, one prompt per set)``; UserError for anything the sampler cannot take."""
        els = [elements] if isinstance(elements, ImageElements) else list(elements)
        if not els or not all(isinstance(e, ImageElements) for e in els):
            raise UserError("The pipeline needs one ImageElements value or a non-empty list of them.")
        prompts = [prompt] * len(els) if isinstance(prompt, str) or prompt is None else list(prompt)
        if len(prompts) != len(els):
            raise UserError(f"Got {len(prompts)} prompts for {len(els)} element sets; pass one prompt or one per set.")
        if output_type not in ("pil", "np", "pt", "latent"):
            raise UserError(f"output_type must be pil, np, pt or latent, got '{output_type}'.")
        if num_inference_steps < 1 or num_images_per_prompt < 1:
            raise UserError("num_inference_steps and num_images_per_prompt must be at least 1.")
        return els, [p or "" for p in prompts]

    def conditioning(self, els, prompts, device, k: int, do_cfg: bool, use_cached_embeddings: bool = True):
        """``(text states or None, cross_attention_kwargs, batch size B·k)`` for the UNet.

        With guidance, both halves go in one call: the first half ∅/∅, the second C/S (Alg. 1 switches
        per sample); a sample with an empty prompt has its text branch off in both halves (C = ∅).
        """
        text = self.encode_prompt(prompts, device)
        tokens, active = self.encode_elements(els, device, use_cached_embeddings)
        has_text = torch.tensor([bool(p) for p in prompts])  # masks stay on the CPU: row picks need no sync
        text, tokens, active, has_text = (
            None if x is None else x.repeat_interleave(k, dim=0) for x in (text, tokens, active, has_text)
        )
        context = self.element_adapter.project(tokens, active).to(self.unet.dtype)
        b = tokens.shape[0]
        if not do_cfg:
            text_mask = None if text is None or bool(has_text.all()) else has_text
            return text, {"element_tokens": context, "element_mask": None, "text_mask": text_mask}, b
        off = torch.zeros(b, dtype=torch.bool)
        cond_kwargs = {
            "element_tokens": torch.cat([context, context]),
            "element_mask": torch.cat([off, torch.ones_like(off)]),
            "text_mask": None if text is None else torch.cat([off, has_text]),
        }
        return (None if text is None else torch.cat([text, text])), cond_kwargs, b

    def prepare_latents(self, shape: tuple, generator, device, latents: torch.Tensor | None) -> torch.Tensor:
        """Starting noise ``shape`` (drawn from ``generator``, or ``latents`` checked), scaled for the scheduler."""
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        elif tuple(latents.shape) != shape:
            raise UserError(f"latents must have shape {shape}, got {tuple(latents.shape)}.")
        return latents.to(device, self.unet.dtype) * self.scheduler.init_noise_sigma

    def denoise(
        self,
        latents: torch.Tensor,
        text: torch.Tensor | None,
        cond_kwargs: dict,
        *,
        guidance_scale: float | None,
        step_kwargs: dict,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
    ) -> torch.Tensor:
        """The sampling loop over ``self.scheduler.timesteps``; ``guidance_scale`` None = conditional only."""
        timesteps = self.scheduler.timesteps
        with self.progress_bar(total=len(timesteps)) as bar:
            for i, t in enumerate(timesteps):
                z = torch.cat([latents, latents]) if guidance_scale is not None else latents
                z = self.scheduler.scale_model_input(z, t)
                eps = self.unet(
                    z, t, encoder_hidden_states=text, cross_attention_kwargs=cond_kwargs, return_dict=False
                )[0]
                if guidance_scale is not None:
                    eps = guide(*eps.chunk(2), guidance_scale)
                latents = self.scheduler.step(eps, t, latents, **step_kwargs, return_dict=False)[0]
                if callback_on_step_end is not None:
                    local = {"latents": latents}
                    out = callback_on_step_end(self, i, t, {n: local[n] for n in callback_on_step_end_tensor_inputs})
                    latents = (out or {}).get("latents", latents)
                bar.update()
        return latents

    def _step_kwargs(self, generator, eta: float) -> dict:
        params = set(inspect.signature(self.scheduler.step).parameters)
        return {k: v for k, v in (("eta", eta), ("generator", generator)) if k in params}

    # --- output mapping ------------------------------------------------------------------
    @staticmethod
    def to_input_size(image: np.ndarray, elements: ImageElements) -> np.ndarray:
        """Canvas image ``(S', S', 3)`` (any square size) -> the input's ``(H_in, W_in, 3)``, same dtype.

        Crops the letterbox padding and resizes with ``elements.geometry.from_canvas``; a float
        image in [0, 1] (``output_type="np"``) is converted to uint8 first.
        """
        import cv2

        image = np.asarray(image)
        if image.dtype != np.uint8:
            image = to_uint8(image)
        g = elements.geometry
        if image.shape[:2] != (g.size, g.size):
            image = cv2.resize(image, (g.size, g.size), interpolation=cv2.INTER_CUBIC)
        return g.from_canvas(image)


def model_folder(default: defaults.Default, ref: str | None) -> Path:
    """Local folder for a ``save_pretrained`` reference (path, ``repo`` or ``repo:subfolder``), or UserError."""
    from elements.hub import resolve_folder

    value = default.get(ref)
    if not value:
        raise UserError(f"No {default.what} given; pass it or set {default.env}.")
    root, sub = resolve_folder(value, what=default.what, env=default.env)
    path = Path(root) / sub if sub else Path(root)
    if not path.is_dir():
        raise UserError(f"{default.what}: '{value}' has no folder '{sub}'.")
    return path


def _short(err: Exception) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__
