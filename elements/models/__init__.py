"""Content encoder, light transformer decoder and element tokens (Sec. 3.2, App. C.1).

>>> from elements.models import build_content_encoder, build_light_decoder, collate
>>> enc, dec = build_content_encoder("tiny"), build_light_decoder("tiny")
>>> batch = collate([el])                        # ElementBatch, padded, (B, N, ...)
>>> content, tokens = enc.encode_batch(batch)    # (B, N, 32), (B, N, token_dim)
>>> image = dec(tokens, content, batch.active)   # (B, 3, 512, 512) in [-1, 1]

Names are imported lazily so that ``elements.models.tokens`` does not pull in diffusers.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ContentEncoder": "elements.models.content_encoder",
    "LightDecoderNet": "elements.models.light_decoder",
    "PRESETS": "elements.models.presets",
    "build_content_encoder": "elements.models.presets",
    "build_light_decoder": "elements.models.presets",
    "ElementBatch": "elements.models.tokens",
    "collate": "elements.models.tokens",
    "pad_elements": "elements.models.tokens",
    "element_tokens": "elements.models.tokens",
    "box_embedding": "elements.models.positional",
    "box_embedding_dim": "elements.models.positional",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'elements.models' has no attribute {name!r}")
