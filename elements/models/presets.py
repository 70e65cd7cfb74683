"""Named model sizes, one registry (like segment-anything's ``sam_model_registry``).

``paper`` holds the sizes of App. C.1 / Sec. 3.2; ``tiny`` is for tests and CPU smoke runs
(same structure, a few thousand parameters, same 512² output and 32-d content vectors).
"""

from __future__ import annotations

from elements.errors import UserError
from elements.models.content_encoder import ContentEncoder
from elements.models.light_decoder import LightDecoderNet
from elements.models.positional import box_embedding_dim

PRESETS: dict[str, dict[str, dict]] = {
    "paper": {
        "content_encoder": {
            # SD KL-AE channels (Sec. 3.2 "follows the KL auto-encoder"), one more level for the
            # paper's 4 downsampling layers (32² -> 2²), 1 ResBlock per level ("fewer", App. C.1).
            "block_out_channels": (128, 256, 512, 512, 512),
            "layers_per_block": 1,
            "norm_num_groups": 32,
            "content_dim": 32,  # App. C.1
            "num_freqs": 8,  # box embedding resolves 2^-8 of the canvas (2 px at 512)
        },
        "light_decoder": {
            "hidden_dim": 512,  # App. C.1
            "num_blocks": 4,  # App. C.1
            "self_attn_per_block": 2,  # App. C.1 (8 self-attention layers, Sec. 3.2)
            "num_heads": 16,  # App. C.1
            "cross_attn_heads": 1,  # App. C.1
            "grid_size": 32,  # 32 × 32 × 2 query coordinates, App. C.1
            "image_size": 512,  # Sec. 3.1
            "query_freqs": 8,
        },
    },
    "tiny": {
        "content_encoder": {
            "block_out_channels": (16, 32),
            "layers_per_block": 1,
            "norm_num_groups": 8,
            "content_dim": 32,
            "num_freqs": 4,
        },
        "light_decoder": {
            "hidden_dim": 64,
            "num_blocks": 2,
            "self_attn_per_block": 1,
            "num_heads": 4,
            "cross_attn_heads": 1,
            "grid_size": 16,
            "image_size": 512,
            "query_freqs": 6,
        },
    },
}


def _preset(name: str) -> dict[str, dict]:
    if name not in PRESETS:
        raise UserError(f"Unknown model preset '{name}'; choose one of {', '.join(PRESETS)}.")
    return PRESETS[name]


def build_content_encoder(preset: str = "paper") -> ContentEncoder:
    """A freshly initialised :class:`ContentEncoder` of the named size."""
    return ContentEncoder(**_preset(preset)["content_encoder"])


def build_light_decoder(preset: str = "paper") -> LightDecoderNet:
    """A freshly initialised :class:`LightDecoderNet` matching :func:`build_content_encoder` of the same preset."""
    enc = _preset(preset)["content_encoder"]
    token_dim = enc["content_dim"] + box_embedding_dim(enc["num_freqs"])
    return LightDecoderNet(token_dim=token_dim, content_dim=enc["content_dim"], **_preset(preset)["light_decoder"])
