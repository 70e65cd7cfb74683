"""Content encoder, light transformer decoder and element tokens (Sec. 3.2, App. C.1).

>>> from elements.models import build_content_encoder, build_light_decoder, collate
>>> enc, dec = build_content_encoder("tiny"), build_light_decoder("tiny")
>>> batch = collate([el])                        # ElementBatch, padded, (B, N, ...)
>>> content, tokens = enc.encode_batch(batch)    # (B, N, 32), (B, N, token_dim)
>>> image = dec(tokens, content, batch.active)   # (B, 3, 512, 512) in [-1, 1]
"""

from elements.models.content_encoder import CONTENT_ENCODER_DIR, ContentEncoder
from elements.models.light_decoder import LIGHT_DECODER_DIR, LightDecoderNet
from elements.models.positional import box_embedding, box_embedding_dim
from elements.models.presets import PRESETS, build_content_encoder, build_light_decoder
from elements.models.tokens import ElementBatch, collate, element_tokens, pad_elements, tokens_from_embeddings

__all__ = [
    "CONTENT_ENCODER_DIR", "LIGHT_DECODER_DIR", "PRESETS", "ContentEncoder", "ElementBatch", "LightDecoderNet",
    "box_embedding", "box_embedding_dim", "build_content_encoder", "build_light_decoder", "collate", "element_tokens",
    "pad_elements", "tokens_from_embeddings",
]
