"""Networks: content encoder, light transformer decoder, element attention and tokens (Sec. 3.2-3.3, App. C.1).

One module per component, imported from its module (as in segment-anything's ``modeling/``)::

    from elements.models.presets import build_content_encoder, build_light_decoder
    from elements.models.tokens import collate

    enc, dec = build_content_encoder("tiny"), build_light_decoder("tiny")
    batch = collate([el])                        # ElementBatch, padded, (B, N, ...)
    content, tokens = enc.encode_batch(batch)    # (B, N, 32), (B, N, token_dim)
    image = dec(tokens, content, batch.active)   # (B, 3, 512, 512) in [-1, 1]

* :mod:`~elements.models.content_encoder` — :class:`ContentEncoder` (E, diffusers ``ModelMixin``);
* :mod:`~elements.models.light_decoder` — :class:`LightDecoderNet` (D_light, the network);
* :mod:`~elements.models.tokens` — :class:`ElementBatch`, ``collate``, ``element_tokens`` (torch only);
* :mod:`~elements.models.positional` — Fourier features of boxes and grids (torch only);
* :mod:`~elements.models.element_attention` / :mod:`~elements.models.element_unet` — Alg. 1 in the SD UNet;
* :mod:`~elements.models.presets` — the ``"tiny"`` and ``"paper"`` sizes.

The package re-exports nothing, so ``elements.models.tokens`` needs torch but not diffusers.
"""
