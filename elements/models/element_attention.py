"""Element cross-attention: the fused attention block of Alg. 1 (App. C.1), as diffusers processors.

Every text cross-attention (``attn2``) of a Stable Diffusion UNet gets an
:class:`ElementAttnProcessor`. It runs the UNet's own text cross-attention and a *new*
cross-attention over the image-element tokens on the same normed features, and returns their
sum; the transformer block then adds that sum to the self-attention features (Sec. 3.3, Fig. 3):

    y = [text_on] · CrossAttn_text(norm2(x), C) + [elements_on] · CrossAttn_elem(norm2(x), S)

All four cases of Alg. 1 (both, elements only, text only, neither) follow from the two
switches, per sample, so the ∅/∅ and C/S halves of a classifier-free-guidance batch run in one
UNet call. The element branch reads ``norm2(x)`` — the input the processor is handed — rather
than a separate ``norm_image(x)`` as written in Alg. 1: a processor cannot reach the block's
un-normalised input without patching ``BasicTransformerBlock.forward``. IP-Adapter makes the
same choice.

Per-call inputs travel in ``cross_attention_kwargs`` (see :data:`ELEMENT_KWARGS`); without autograd
the samples a switch turns off are skipped rather than computed and zeroed (see :func:`_branch`):

* ``element_tokens``: ``(B, N, D) float`` element tokens already projected to the element
  cross-attention width ``D`` (:meth:`ElementAdapter.project`); ``None`` = S = ∅ for the batch.
  Deleted elements are zero rows and stay in the sequence (Sec. 3.3 keeps N fixed).
* ``element_mask``: ``(B,) bool``; False = S = ∅ for that sample. ``None`` = all True.
* ``text_mask``: ``(B,) bool``; False = C = ∅ for that sample. ``None`` = all True. Passing
  ``encoder_hidden_states=None`` to the UNet switches text off for the whole batch.

The element layers themselves are diffusers :class:`~diffusers.models.attention_processor.Attention`
modules owned by :class:`ElementAdapter` (a ``ModelMixin``); processors only *refer* to them, so
the UNet's ``state_dict`` stays a vanilla SD UNet and the adapter saves on its own.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention_processor import Attention, AttnProcessor2_0, SlicedAttnProcessor
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

#: The keyword arguments our processors understand; every processor in an element UNet accepts them.
ELEMENT_KWARGS = ("element_tokens", "element_mask", "text_mask")


def _base_processor(slice_size: int | None):
    return SlicedAttnProcessor(slice_size) if slice_size else AttnProcessor2_0()


class _Sliceable:
    """Shared attention-slicing switch: the actual attention math is diffusers' own processors."""

    slice_size: int | None = None

    def set_slice_size(self, slice_size: int | None) -> None:
        """Compute attention ``slice_size`` heads × batch at a time (``None``: one SDPA call)."""
        self.slice_size = int(slice_size) if slice_size else None
        self.base = _base_processor(self.slice_size)


class PassThroughAttnProcessor(_Sliceable):
    """Standard attention that accepts and ignores the element kwargs.

    Diffusers hands ``cross_attention_kwargs`` to *every* attention module, ``attn1`` included,
    and logs a warning on each call when a processor's signature lacks a key. Self-attention
    gets this processor so that the element kwargs are silently ignored there.
    """

    def __init__(self, slice_size: int | None = None) -> None:
        self.set_slice_size(slice_size)

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states=None,
        attention_mask=None,
        temb=None,
        element_tokens=None,
        element_mask=None,
        text_mask=None,
    ):
        extra = {} if temb is None else {"temb": temb}  # SlicedAttnProcessor takes no temb
        return self.base(attn, hidden_states, encoder_hidden_states, attention_mask, **extra)


class ElementAttnProcessor(_Sliceable):
    """Text cross-attention + element cross-attention, added with equal weight (Alg. 1).

    ``layer`` is the element cross-attention (an :class:`Attention` with its own to_q/to_k/to_v/to_out).
    Returns ``(B, L, hidden)`` — the cross-attention update the block adds to ``x``.
    """

    def __init__(self, layer: Attention, slice_size: int | None = None) -> None:
        self.layer = layer
        self.set_slice_size(slice_size)

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states=None,
        attention_mask=None,
        temb=None,
        element_tokens=None,
        element_mask=None,
        text_mask=None,
    ):
        out = None
        if encoder_hidden_states is not None:  # text branch: exactly the UNet's own cross-attention
            out = _branch(
                lambda h, c, m: self.base(attn, h, c, m),
                hidden_states,
                encoder_hidden_states,
                attention_mask,
                text_mask,
            )
        if element_tokens is not None:
            if element_tokens.shape[0] != hidden_states.shape[0]:
                raise ValueError(
                    f"element_tokens batch {element_tokens.shape[0]} != features batch {hidden_states.shape[0]}"
                )
            y = _branch(
                lambda h, c, m: self.base(self.layer, h, c),
                hidden_states,
                element_tokens.to(hidden_states.dtype),
                None,
                element_mask,
            )
            out = y if out is None else out + y
        if out is None:  # neither C nor S: the block keeps its self-attention features unchanged
            out = torch.zeros_like(hidden_states)
        return out


def _branch(fn, hidden: torch.Tensor, context: torch.Tensor, attention_mask, mask: torch.Tensor | None) -> torch.Tensor:
    """``fn(hidden, context, attention_mask)`` for the samples whose ``mask (B,) bool`` is True, zero elsewhere.

    With autograd on (training) every sample is computed and the off ones are zeroed: static
    shapes, and every parameter is used on every rank (DDP). Without autograd (sampling) the
    off samples are skipped, so the ∅ half of a guidance batch costs no cross-attention;
    pass the mask on the CPU to pick the rows without a device sync.
    """
    if mask is None:
        return fn(hidden, context, attention_mask)
    if torch.is_grad_enabled():
        return _gate(fn(hidden, context, attention_mask), mask)
    rows = mask.to("cpu", torch.bool).nonzero().flatten()
    if len(rows) == hidden.shape[0]:
        return fn(hidden, context, attention_mask)
    out = torch.zeros_like(hidden)
    if len(rows):
        idx = rows.to(hidden.device)
        out[idx] = fn(hidden[idx], context[idx], None if attention_mask is None else attention_mask[idx])
    return out


def _gate(y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the samples whose ``mask (B,) bool`` is False (that conditioning is ∅ for them)."""
    if mask is None:
        return y
    return torch.where(
        mask.to(device=y.device, dtype=torch.bool).view(-1, *([1] * (y.ndim - 1))), y, torch.zeros_like(y)
    )


class ElementAdapter(ModelMixin, ConfigMixin):
    """The new parameters θ_S of Sec. 3.3: token projection + one element cross-attention per ``attn2``.

    Args:
        token_dim: width of the content-encoder tokens (content 32 + positional embedding, Fig. 3).
        cross_attention_dim: width ``D`` the tokens are projected to; the UNet's text width by
            default (768 for SD-1.5), so the element layers mirror the text layers' shapes.
        attn_names: the UNet's ``attn2`` module names, in ``unet.attn_processors`` order.
        hidden_sizes / num_heads / head_dims: query width and head layout of each ``attn2``.
        upcast_attention: mirrors the UNet's setting (SD-2 style fp32 softmax).
        init: ``"random"`` — PyTorch default init of every new weight, as the paper says
            (Sec. 3.3); ``"zero_out"`` — output projections start at zero, so before any step
            the element UNet equals the base UNet exactly (IP-Adapter/ControlNet practice: the
            pretrained prior is not disturbed by random element features at step 0).
    """

    @register_to_config
    def __init__(
        self,
        *,
        token_dim: int,
        cross_attention_dim: int,
        attn_names: list[str],
        hidden_sizes: list[int],
        num_heads: list[int],
        head_dims: list[int],
        upcast_attention: bool = False,
        init: str = "random",
    ) -> None:
        super().__init__()
        if not (len(attn_names) == len(hidden_sizes) == len(num_heads) == len(head_dims)):
            raise ValueError("attn_names, hidden_sizes, num_heads and head_dims must have one entry per attn2")
        if init not in ("random", "zero_out"):
            raise ValueError(f"init must be 'random' or 'zero_out', got {init!r}")
        # Linear + LayerNorm, as diffusers' IP-Adapter ImageProjection: puts 32+P-dim tokens on
        # the scale of CLIP text states so the element keys start in the same range as text keys.
        self.proj = nn.Linear(token_dim, cross_attention_dim)
        self.norm = nn.LayerNorm(cross_attention_dim)
        self.layers = nn.ModuleList(
            Attention(
                query_dim=h,
                cross_attention_dim=cross_attention_dim,
                heads=n,
                dim_head=d,
                upcast_attention=upcast_attention,
                out_bias=True,
            )
            for h, n, d in zip(hidden_sizes, num_heads, head_dims)
        )
        if init == "zero_out":
            self.zero_output()

    @classmethod
    def from_unet(
        cls, unet, *, token_dim: int, cross_attention_dim: int | None = None, init: str = "random"
    ) -> ElementAdapter:
        """Build an adapter that fits every ``attn2`` of ``unet`` (a ``UNet2DConditionModel``)."""
        names, hidden, heads, dims, upcast = [], [], [], [], False
        for name, module in unet.named_modules():
            if isinstance(module, Attention) and name.endswith("attn2"):
                if module.residual_connection or module.group_norm is not None or module.spatial_norm is not None:
                    raise ValueError(f"{name}: only plain transformer-block cross-attention is supported")
                names.append(name)
                hidden.append(module.query_dim)
                heads.append(module.heads)
                dims.append(module.inner_dim // module.heads)
                upcast = upcast or module.upcast_attention
        if not names:
            raise ValueError("the UNet has no attn2 cross-attention layers")
        return cls(
            token_dim=token_dim,
            cross_attention_dim=cross_attention_dim or unet.config.cross_attention_dim,
            attn_names=names,
            hidden_sizes=hidden,
            num_heads=heads,
            head_dims=dims,
            upcast_attention=upcast,
            init=init,
        )

    def zero_output(self) -> None:
        """Zero every element branch's output projection: the element UNet becomes the base UNet."""
        with torch.no_grad():
            for layer in self.layers:
                layer.to_out[0].weight.zero_()
                layer.to_out[0].bias.zero_()

    def layer_for(self, attn_name: str) -> Attention:
        return self.layers[self.config.attn_names.index(attn_name)]

    def forward(self, tokens: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """Same as :meth:`project` (the element layers themselves run inside the UNet's processors)."""
        return self.project(tokens, active)

    def project(self, tokens: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """Element tokens -> cross-attention context.

        Args:
            tokens: ``(B, N, token_dim)`` content + positional tokens (zero rows for deleted elements).
            active: ``(B, N) bool``; inactive rows are zero *after* projection too, so a deleted
                element contributes zero keys and values (Sec. 3.3: zeroed, N kept fixed).
                ``None``: rows that are all zero in ``tokens`` count as inactive.
        Returns:
            ``(B, N, cross_attention_dim)`` in the adapter's dtype.
        """
        if tokens.shape[-1] != self.config.token_dim:
            raise ValueError(f"tokens have width {tokens.shape[-1]}, adapter expects {self.config.token_dim}")
        if active is None:
            active = tokens.abs().amax(dim=-1) > 0
        x = self.norm(self.proj(tokens.to(self.proj.weight.dtype)))
        return x * active.to(x.dtype).unsqueeze(-1)


def element_processors(unet, adapter: ElementAdapter, slice_size: int | None = None) -> dict:
    """A fresh processor dict for ``unet.set_attn_processor``: element processors on ``attn2``, pass-through elsewhere.

    Built anew on every call because ``set_attn_processor`` pops entries from the dict it is given.
    """
    names = list(unet.attn_processors.keys())
    attn2 = [n.removesuffix(".processor") for n in names if n.endswith("attn2.processor")]
    if attn2 != list(adapter.config.attn_names):
        raise ValueError(
            "the element adapter was built for a UNet with different cross-attention layers "
            f"({len(adapter.config.attn_names)} in the adapter, {len(attn2)} in this UNet)"
        )
    return {
        n: ElementAttnProcessor(adapter.layer_for(n.removesuffix(".processor")), slice_size)
        if n.endswith("attn2.processor")
        else PassThroughAttnProcessor(slice_size)
        for n in names
    }


def install(unet, adapter: ElementAdapter, slice_size: int | None = None) -> None:
    """Attach ``adapter`` to ``unet`` in place through ``set_attn_processor`` (no forward patching)."""
    unet.set_attn_processor(element_processors(unet, adapter, slice_size))


def set_slice_size(unet, slice_size: int | str | None) -> None:
    """Attention slicing for an element UNet: ``"auto"`` halves the heads, an int fixes the slice, None disables."""
    for module in unet.modules():
        if isinstance(module, Attention) and isinstance(module.processor, _Sliceable):
            size = max(1, module.heads // 2) if slice_size == "auto" else slice_size
            module.processor.set_slice_size(size)
