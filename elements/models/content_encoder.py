"""The content encoder E (Sec. 3.2, App. C.1, Fig. 13).

Stable Diffusion's KL-autoencoder encoder (diffusers' ``Encoder``) with fewer residual blocks
per level and a 32-channel output: per level ``layers_per_block`` ResNet blocks, then a stride-2
conv downsampling (not after the last level); a middle block of 2 ResNet blocks and 1
attention layer; GroupNorm-SiLU-conv to ``content_dim`` channels. The paper uses 4
downsampling layers (Sec. 3.2), i.e. 5 levels: 32² → 2². The 2 × 2 output map is averaged to
one vector per element. Each patch is encoded on its own, so the vector knows nothing about
where the element is or how big it is.

Activation checkpointing (diffusers' ``enable_gradient_checkpointing``) recomputes the encoder by
chunks of :data:`CHECKPOINT_CHUNK` patches: autograd then keeps only each chunk's input, and the
backward pass recomputes one chunk at a time. At the paper's size a patch's activations are
~6.4 MB in float32 (``python -m elements.train.memory_plan`` prints them), so a batch of 16 images
× 256 elements holds ~26 GB without it and one chunk's ~1.6 GB with it.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import Encoder
from diffusers.models.modeling_utils import ModelMixin

from elements.models.positional import box_embedding_dim
from elements.models.tokens import ElementBatch, element_tokens
from elements.types import PATCH_SIZE

#: subfolder of a stage-1 or stage-2 checkpoint that holds the content encoder (``save_pretrained`` form)
CONTENT_ENCODER_DIR = "content_encoder"
#: patches recomputed together under activation checkpointing: one image's elements (Sec. 3.1's N = 256)
CHECKPOINT_CHUNK = 256


class ContentEncoder(ModelMixin, ConfigMixin):
    """Masked 32 × 32 patch → ``content_dim`` vector.

    Args (all keyword-only, saved in ``config.json``):
        block_out_channels: channels per level; ``len - 1`` stride-2 downsamplings.
        layers_per_block: ResNet blocks per level (SD uses 2; the paper uses fewer, App. C.1).
        norm_num_groups: GroupNorm groups (must divide every channel count).
        content_dim: output width C (32, App. C.1).
        num_freqs: F of the box embedding appended by :meth:`tokens` (``token_dim = C + 4(1 + 2F)``).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        *,
        block_out_channels: tuple[int, ...] = (128, 256, 512, 512, 512),
        layers_per_block: int = 1,
        norm_num_groups: int = 32,
        content_dim: int = 32,
        num_freqs: int = 8,
    ) -> None:
        super().__init__()
        self.encoder = Encoder(
            in_channels=3,
            out_channels=content_dim,
            down_block_types=("DownEncoderBlock2D",) * len(block_out_channels),
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            norm_num_groups=norm_num_groups,
            double_z=False,  # a deterministic feature, not a Gaussian posterior
            mid_block_add_attention=True,
        )
        self.gradient_checkpointing = False

    def _set_gradient_checkpointing(self, enable: bool = True, gradient_checkpointing_func=None) -> None:
        """diffusers' hook behind ``enable/disable_gradient_checkpointing``: chunks of patches are checkpointed
        whole in :meth:`forward`, so the inner ``Encoder``'s per-block checkpoints (which would recompute
        each block a second time) stay off."""
        self.gradient_checkpointing = enable
        if gradient_checkpointing_func is not None:
            self._gradient_checkpointing_func = gradient_checkpointing_func

    @property
    def content_dim(self) -> int:
        return int(self.config.content_dim)

    @property
    def token_dim(self) -> int:
        """Width of an element token: ``content_dim + 4 · (1 + 2 · num_freqs)``."""
        return self.content_dim + box_embedding_dim(self.config.num_freqs)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Encode masked patches.

        Args:
            patches: ``(..., 3, 32, 32)`` float in [0, 1] (pixels outside the element are 0).

        Returns:
            ``(..., content_dim)`` in the model's dtype.
        """
        if patches.shape[-3:] != (3, PATCH_SIZE, PATCH_SIZE):
            raise ValueError(f"patches must end in (3, {PATCH_SIZE}, {PATCH_SIZE}), got {tuple(patches.shape)}")
        lead = patches.shape[:-3]
        x = patches.reshape(-1, 3, PATCH_SIZE, PATCH_SIZE).to(self.dtype) * 2.0 - 1.0  # SD encoders take [-1, 1]
        if x.shape[0] == 0:
            return x.new_zeros(*lead, self.content_dim)
        if self.gradient_checkpointing and torch.is_grad_enabled():
            # each chunk's activations exist only while it is computed, forward and again backward
            maps = torch.cat([self._gradient_checkpointing_func(self.encoder, c) for c in x.split(CHECKPOINT_CHUNK)])
        else:
            maps = self.encoder(x)
        feat = maps.mean(dim=(-2, -1))  # (M, C): average the final 2×2 map
        return feat.reshape(*lead, self.content_dim)

    def encode_batch(self, batch: ElementBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Content vectors and tokens of a batch; only active slots are run through the network.

        Returns:
            ``content``: ``(B, N, C)``, zero in inactive slots;
            ``tokens``: ``(B, N, token_dim)``, inactive rows exactly zero (Sec. 3.3).
        """
        active = batch.active.to(batch.boxes.device)
        feats = self.forward(batch.patches[active])  # (M, C); dtype follows autocast
        content = feats.new_zeros(*active.shape, self.content_dim).index_put((active,), feats)  # differentiable scatter
        return content, element_tokens(content, batch.boxes, active, self.config.num_freqs)

    def tokens(self, batch: ElementBatch) -> torch.Tensor:
        """``(B, N, token_dim)`` element tokens of a batch (see :meth:`encode_batch`)."""
        return self.encode_batch(batch)[1]
