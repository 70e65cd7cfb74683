"""The element-conditioned UNet 𝒰(z_t, t, C, S; θ_U, θ_S) of Sec. 3.3 and its checkpoint format.

A stage-2 checkpoint folder holds, each in diffusers ``save_pretrained`` form::

    unet/              the fine-tuned SD UNet (a vanilla UNet2DConditionModel; θ_U)
    element_adapter/   the new layers (:class:`~elements.models.element_attention.ElementAdapter`; θ_S)
    content_encoder/   the content encoder the tokens came from (frozen copy, or trained in ablations)

``unet/`` loads in any diffusers code as a plain SD UNet; ``element_adapter/`` also loads on its
own (``ElementAdapter.from_pretrained(path, subfolder="element_adapter")``), e.g. to put our
element layers on a different fine-tune of SD-1.5.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from torch import nn

from elements.models.element_attention import ElementAdapter, install

#: subfolders of a stage-2 checkpoint (``unet`` is also the SD-1.5 base layout's name)
UNET_DIR = "unet"
ADAPTER_DIR = "element_adapter"


class ElementUNet(nn.Module):
    """A ``UNet2DConditionModel`` with an :class:`ElementAdapter` installed, as one trainable module.

    One module so that ``accelerator.prepare`` (DDP/FSDP) sees every trained parameter and
    every forward. The UNet itself stays a diffusers UNet (its processors only *refer* to the
    adapter's layers), so ``unet`` is saved and reloaded with plain diffusers calls.
    """

    def __init__(self, unet, adapter: ElementAdapter) -> None:
        super().__init__()
        self.unet = unet
        self.adapter = adapter
        install(unet, adapter)

    def forward(
        self,
        sample: torch.Tensor,
        timestep,
        encoder_hidden_states: torch.Tensor | None,
        element_tokens: torch.Tensor | None,
        element_active: torch.Tensor | None = None,
        *,
        text_mask: torch.Tensor | None = None,
        element_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the noise ε̂ (Eq. 5).

        Args:
            sample: ``(B, 4, h, w)`` noisy latents z_t.
            timestep: ``(B,)`` or scalar int timesteps in [0, 1000).
            encoder_hidden_states: ``(B, 77, C_text)`` text states C, or ``None`` (C = ∅ for all).
            element_tokens: ``(B, N, token_dim)`` content + positional tokens S (zero rows for
                deleted elements), or ``None`` (S = ∅ for all).
            element_active: ``(B, N) bool``; ``None`` infers it from all-zero rows.
            text_mask / element_mask: ``(B,) bool``; False makes C / S = ∅ for that sample (Alg. 1).
        Returns:
            ``(B, 4, h, w)`` predicted noise, dtype of ``sample``.
        """
        return self.unet(
            sample,
            timestep,
            encoder_hidden_states=encoder_hidden_states,
            cross_attention_kwargs=self.attention_kwargs(
                element_tokens, element_active, text_mask=text_mask, element_mask=element_mask
            ),
            return_dict=False,
        )[0]

    def attention_kwargs(self, element_tokens, element_active=None, *, text_mask=None, element_mask=None) -> dict:
        """``cross_attention_kwargs`` for a UNet call: projected element tokens plus the ∅ switches."""
        context = None if element_tokens is None else self.adapter.project(element_tokens, element_active)
        return {"element_tokens": context, "element_mask": element_mask, "text_mask": text_mask}

    def save_pretrained(self, directory, **kwargs) -> Path:
        """Write ``unet/`` and ``element_adapter/`` (safetensors) under ``directory``."""
        d = Path(directory)
        self.unet.save_pretrained(d / UNET_DIR, **kwargs)
        self.adapter.save_pretrained(d / ADAPTER_DIR, **kwargs)
        return d

    @classmethod
    def from_base(cls, unet, *, token_dim: int, init: str = "random") -> ElementUNet:
        """Start of stage 2: a pretrained UNet plus freshly initialised element layers (Sec. 3.3)."""
        return cls(unet, ElementAdapter.from_unet(unet, token_dim=token_dim, init=init))

    @classmethod
    def from_pretrained(cls, path: str, *, subfolder: str | None = None, torch_dtype=None, **kwargs) -> ElementUNet:
        """Load a stage-2 checkpoint (local folder or Hub repo; ``subfolder`` = the checkpoint inside it)."""

        def sub(name):
            return f"{subfolder}/{name}" if subfolder else name

        unet = UNet2DConditionModel.from_pretrained(path, subfolder=sub(UNET_DIR), torch_dtype=torch_dtype, **kwargs)
        adapter = ElementAdapter.from_pretrained(path, subfolder=sub(ADAPTER_DIR), torch_dtype=torch_dtype, **kwargs)
        return cls(unet, adapter)
