"""The light transformer decoder D_light (Sec. 3.2, App. C.1, Fig. 13).

MAE-style: the queries are positional embeddings of a ``grid_size × grid_size`` grid of
coordinates (32 × 32 in the paper); ``num_blocks`` blocks (4) each run one cross-attention to
the elements (512 channels, 1 head) and ``self_attn_per_block`` (2) ViT blocks of
self-attention + MLP (512 channels, 16 heads), so 8 self-attention layers with 4 cross-attention
layers in between (Sec. 3.2). The cross-attention's keys are the full element tokens
(content + box embedding) and its values are the content vectors alone, so what is copied to
a location is appearance, while where it goes is decided by the keys. A linear head turns
each grid cell into a ``(image_size / grid_size)²`` RGB patch, un-patchified to the image.

All elements of an image are decoded jointly. Inactive elements (deleted or padding) are
masked out of the cross-attention; the output therefore does not depend on them at all: it is
the same as if they had been removed from the set, and the same as giving their tokens as zero
rows with ``active=None`` (then activity is read off the tokens). Nothing depends on element order.

Activation checkpointing (diffusers' ``enable_gradient_checkpointing``) recomputes each
cross-attention and each ViT block in the backward pass; autograd keeps only their inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from elements.models.positional import fourier_dim, fourier_features, grid_coordinates

#: subfolder of a stage-1 checkpoint that holds the light decoder (``save_pretrained`` form)
LIGHT_DECODER_DIR = "light_decoder"


class ElementCrossAttention(nn.Module):
    """Pre-norm cross-attention from grid queries to elements with separate key and value inputs.

    diffusers' ``Attention`` projects keys and values from one context tensor; here they come
    from different inputs (tokens vs. content, App. C.1), so the projections are explicit and the
    product itself is PyTorch's fused ``scaled_dot_product_attention``.
    """

    def __init__(self, dim: int, key_dim: int, value_dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(key_dim, dim)
        self.to_v = nn.Linear(value_dim, dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """``x (B, Q, D)``, ``keys (B, N, Dk)``, ``values (B, N, Dv)``, ``active (B, N)`` bool -> residual update ``(B, Q, D)``.

        Images with no active element get a zero update (the grid then only sees itself).
        """
        b, q, d = x.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, t.shape[1], h, d // h).transpose(1, 2)  # (B, h, L, D/h)

        any_active = active.any(dim=1)  # (B,)
        # A fully masked row would make softmax NaN: let it attend to everything, then drop the result.
        mask = active | ~any_active[:, None]
        out = F.scaled_dot_product_attention(
            split(self.to_q(self.norm(x))),
            split(self.to_k(keys)),
            split(self.to_v(values)),
            attn_mask=mask[:, None, None, :],
        )
        out = self.to_out(out.transpose(1, 2).reshape(b, q, d))
        return torch.where(any_active[:, None, None], out, torch.zeros((), dtype=out.dtype, device=out.device))


class LightDecoderNet(ModelMixin, ConfigMixin):
    """Element tokens → RGB image.

    Args (keyword-only, saved in ``config.json``):
        token_dim: width of an element token (``ContentEncoder.token_dim``).
        content_dim: width of the content vector (32, App. C.1).
        hidden_dim: channels of every attention layer (512, App. C.1).
        num_blocks: cross-attention blocks (4, App. C.1).
        self_attn_per_block: self-attention layers per block (2, App. C.1).
        num_heads: self-attention heads (16, App. C.1).
        cross_attn_heads: cross-attention heads (1, App. C.1).
        grid_size: query grid side (32, App. C.1).
        image_size: output side (512, Sec. 3.1); must be a multiple of ``grid_size``.
        query_freqs: Fourier octaves of the query coordinates.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        *,
        token_dim: int,
        content_dim: int = 32,
        hidden_dim: int = 512,
        num_blocks: int = 4,
        self_attn_per_block: int = 2,
        num_heads: int = 16,
        cross_attn_heads: int = 1,
        grid_size: int = 32,
        image_size: int = 512,
        query_freqs: int = 8,
    ) -> None:
        super().__init__()
        if image_size % grid_size:
            raise ValueError(f"image_size {image_size} must be a multiple of grid_size {grid_size}")
        self.patch = image_size // grid_size
        self.register_buffer("grid", fourier_features(grid_coordinates(grid_size), query_freqs), persistent=False)
        self.query_proj = nn.Linear(fourier_dim(2, query_freqs), hidden_dim)
        self.cross = nn.ModuleList(
            [ElementCrossAttention(hidden_dim, token_dim, content_dim, cross_attn_heads) for _ in range(num_blocks)]
        )
        self.self_attn = nn.ModuleList(
            [
                nn.ModuleList(
                    [
                        BasicTransformerBlock(
                            hidden_dim, num_heads, hidden_dim // num_heads, activation_fn="gelu", attention_bias=True
                        )  # a ViT/MAE block: self-attention + MLP
                        for _ in range(self_attn_per_block)
                    ]
                )
                for _ in range(num_blocks)
            ]
        )
        self.norm_out = nn.LayerNorm(hidden_dim)
        self.to_pixels = nn.Linear(hidden_dim, 3 * self.patch * self.patch)
        self.gradient_checkpointing = False

    def forward(self, tokens: torch.Tensor, content: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """Decode all elements of each image jointly.

        Args:
            tokens: ``(B, N, token_dim)`` element tokens (keys).
            content: ``(B, N, content_dim)`` content vectors, no spatial information (values).
            active: ``(B, N)`` bool, False = ignore the element (deleted or padding). ``None`` means
                "active iff its token row is not all zero", so zeroing a token deletes the element.

        Returns:
            ``(B, 3, image_size, image_size)`` float, RGB in [-1, 1] (the training target's range; not
            clamped here: clamp before converting to pixels).
        """
        if active is None:
            active = tokens.ne(0).any(dim=-1)
        b = tokens.shape[0]
        g, p = self.config.grid_size, self.patch
        tokens, content = tokens.to(self.dtype), content.to(self.dtype)
        x = self.query_proj(self.grid.to(self.dtype)).expand(b, -1, -1)  # (B, g², D)
        ckpt = self.gradient_checkpointing and torch.is_grad_enabled()
        for cross, selfs in zip(self.cross, self.self_attn):
            x = x + (
                self._gradient_checkpointing_func(cross, x, tokens, content, active)
                if ckpt
                else cross(x, tokens, content, active)
            )
            for block in selfs:
                x = self._gradient_checkpointing_func(block, x) if ckpt else block(x)
        x = self.to_pixels(self.norm_out(x))  # (B, g², 3·p·p)
        x = x.reshape(b, g, g, 3, p, p).permute(0, 3, 1, 4, 2, 5)  # (B, 3, g, p, g, p)
        return x.reshape(b, 3, g * p, g * p)
