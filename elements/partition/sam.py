"""SAM as the affinity of Algorithm 2: point-prompted mask logits at the query points.

The image embedding is computed once per image (``SamPredictor.set_image``); each call of
:meth:`SamAffinity.__call__` only runs the prompt encoder and the mask decoder, batched over
the queries (64 per call, SAM's ``points_per_batch``), and upsamples the *low-resolution*
logits (SAM's own ``postprocess_masks`` upsamples each prompt to 1024² and back, which would
dominate the cost).

Windowed decoding
-----------------
Eq. 1 only reads a query's affinity near its own cell: with the squared distance a query can win
a pixel only within ~1/√β of the nearest centroid (64 px, two grid cells, at β = 64). So with
``window=w`` each prompt is decoded over a w × w-token window of the 64 × 64 image embedding
centred on the prompt (with the matching crop of the dense positional encoding), and only that
window is upscaled; the affinity is 0 outside it. The two-way transformer and the upscaling
then cost (w/64)² of the full decode. ``window="full"`` (the default) is SAM's exact decode over
all tokens. Windows are *not* the default: the mask token attends to every image token, so a
window changes the logits inside it too (mean |Δs| ≈ 0.02-0.04 at w = 16-32), and Eq. 1's
boundaries between two confident queries move with small affinity differences; the label maps
then agree with the full decode's on only ~80 % of the pixels (``bench/partition.py``).

Layer 0 of the two-way transformer sees the same image tokens for every prompt, so its
image-side projections are computed once per image and shared (exact).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from elements import defaults
from elements.errors import UserError

_PROMPT_CHUNK = 64  # prompts per mask-decoder call (SAM's points_per_batch): bounds memory, same result
DECODE_WINDOW = "full"  # exact; windows agree with it on only ~80 % of pixels (bench/partition.py, docs/sam.md)
MODEL_TYPES = ("vit_b", "vit_l", "vit_h", "vit_t")  # vit_t: the distilled SAM (elements/partition/tinysam.py)


def load_sam(checkpoint: str | None = None, model_type: str | None = None, device: str = "cpu", *,
             tinysam: str | None = None, local_only: bool = False):
    """Build a SAM model from a local checkpoint or a Hub reference (``repo_id:path``).

    ``model_type="vit_t"`` is the distilled SAM (:func:`elements.partition.tinysam.load_tinysam`,
    found through ``tinysam`` / ``EIE_TINYSAM``, the cache or npm). The returned model carries
    ``model_type``, ``model_file`` and ``source`` (one sentence saying where it came from).
    Weights are loaded with ``torch.load(weights_only=True)``: the official ``.pth`` files are
    plain state dicts, and nothing else should be unpickled. ``local_only``: never download.
    """
    import torch
    from segment_anything import sam_model_registry

    from elements.hub import local_file, resolve_file

    ref = defaults.SAM_CHECKPOINT.get(checkpoint)
    model_type = defaults.SAM_MODEL_TYPE.get(model_type)
    if model_type == "vit_t":
        from elements.partition.tinysam import load_tinysam

        return load_tinysam(tinysam, device, allow_npm=not local_only)
    if model_type not in sam_model_registry or model_type == "default":
        raise UserError(f"Unknown SAM model type '{model_type}'; use one of {', '.join(MODEL_TYPES)}.")
    if local_only:
        path = local_file(ref)
        if path is None:
            raise UserError(f"the SAM {model_type} checkpoint '{ref}' is not on this machine")
    else:
        path = resolve_file(ref, what="The SAM checkpoint", env=defaults.SAM_CHECKPOINT.env)
    # The random init is overwritten by the checkpoint; fork the RNG so that loading SAM never
    # shifts the caller's random stream (exact resume of training that partitions with SAM).
    with torch.random.fork_rng(devices=[]):
        sam = sam_model_registry[model_type]()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        sam.load_state_dict(state)
    except Exception as err:
        raise UserError(f"'{path}' is not a {model_type} SAM checkpoint ({type(err).__name__}).") from None
    sam = sam.to(device).eval()
    sam.model_type, sam.model_file, sam.source = model_type, str(path), f"SAM {model_type} from {path}"
    return sam


def build_tiny_sam(*, img_size: int = 256, embed_dim: int = 32, depth: int = 1, out_chans: int = 32, seed: int = 0):
    """A random-init SAM with the real architecture at toy size, for tests and benchmarks."""
    import torch
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    torch.manual_seed(seed)
    patch = 16
    emb = img_size // patch
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size, patch_size=patch, in_chans=3, embed_dim=embed_dim, depth=depth, num_heads=2,
            mlp_ratio=2.0, out_chans=out_chans, qkv_bias=True, use_rel_pos=False, window_size=0, global_attn_indexes=(),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=out_chans, image_embedding_size=(emb, emb), input_image_size=(img_size, img_size), mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=out_chans, mlp_dim=32, num_heads=2),
            transformer_dim=out_chans, iou_head_depth=1, iou_head_hidden_dim=16,
        ),
    )
    return sam.eval()


def _sdpa(attn, q, k, v):
    """segment-anything's ``Attention.forward`` with the fused ``scaled_dot_product_attention`` (same maths)."""
    import torch.nn.functional as F

    q, k, v = attn.q_proj(q), attn.k_proj(k), attn.v_proj(v)
    q, k, v = (attn._separate_heads(t, attn.num_heads) for t in (q, k, v))
    return attn.out_proj(attn._recombine_heads(F.scaled_dot_product_attention(q, k, v)))


def _block(layer, queries, keys, query_pe, key_pe):
    """segment-anything's ``TwoWayAttentionBlock.forward`` (not the first layer) with :func:`_sdpa`."""
    q = queries + query_pe
    queries = layer.norm1(queries + _sdpa(layer.self_attn, q, q, queries))
    q, k = queries + query_pe, keys + key_pe
    queries = layer.norm2(queries + _sdpa(layer.cross_attn_token_to_image, q, k, keys))
    queries = layer.norm3(queries + layer.mlp(queries))
    q = queries + query_pe
    keys = layer.norm4(keys + _sdpa(layer.cross_attn_image_to_token, k, q, queries))
    return queries, keys


class SamAffinity:
    """Affinity s(m, n) in [0, 1] from SAM mask logits; one instance per model, any number of images.

    ``window``: tokens per side of the embedding window each query is decoded over, or
    ``"full"`` for SAM's exact decode (module docstring).
    """

    name = "sam"

    def __init__(self, sam, *, window: int | str = DECODE_WINDOW) -> None:
        from segment_anything import SamPredictor

        if window != "full" and not (isinstance(window, int) and 4 <= window <= 64):
            raise UserError(f"The SAM decode window must be 'full' or a token count in 4..64, got {window!r}.")
        self.predictor = SamPredictor(sam)
        self.model = sam
        self.window = window
        self._image_key: str | None = None

    @property
    def device(self):
        return self.predictor.device

    @property
    def model_type(self) -> str:
        return getattr(self.model, "model_type", "custom")

    @property
    def model_file(self) -> str | None:
        return getattr(self.model, "model_file", None)

    def set_image(self, canvas: np.ndarray) -> None:
        """Compute (or reuse) the image embedding of a ``(S, S, 3) uint8`` canvas."""
        key = hashlib.sha1(canvas.tobytes()).hexdigest()
        if key != self._image_key:
            self.predictor.set_image(canvas, image_format="RGB")
            self._image_key = key

    def embedding_state(self):
        """The cached embedding (to keep in a UI session), or None."""
        if self._image_key is None:
            return None
        p = self.predictor
        return (self._image_key, p.features, p.original_size, p.input_size)

    def restore_embedding(self, state) -> None:
        key, feats, orig, inp = state
        p = self.predictor
        p.features, p.original_size, p.input_size, p.is_image_set = feats, orig, inp, True
        self._image_key = key

    def __call__(self, points: np.ndarray, size: int, window: int | str | None = None) -> np.ndarray:
        """``points (N, 2)`` normalised (x, y) -> affinity ``(N, size, size) float32`` in [0, 1].

        ``window`` overrides the instance's decode window for this call. Outside a query's
        window the affinity is 0.
        """
        import torch

        if self._image_key is None:
            raise RuntimeError("call set_image first")
        window = self.window if window is None else window
        p = self.predictor
        coords = p.transform.apply_coords(np.asarray(points, dtype=np.float64) * size, p.original_size)
        coords_t = torch.as_tensor(coords, dtype=torch.float32, device=p.device)[:, None, :]  # (N, 1, 2), SAM input px
        out = np.zeros((len(coords), size, size), dtype=np.float32)  # calloc: untouched pages cost nothing
        with torch.inference_mode():
            for i in range(0, coords_t.shape[0], _PROMPT_CHUNK):
                chunk = coords_t[i : i + _PROMPT_CHUNK]
                low, origin = self._decode_windows(chunk, window)  # (B, h, w) logits, (B, 2) low-res (x0, y0)
                self._paste(out[i : i + _PROMPT_CHUNK], low, origin, size)
        return out

    def _decode_windows(self, coords, window):
        """SAM's ``MaskDecoder.predict_masks``, with the upscaling restricted to a token window per prompt.

        ``coords``: ``(B, 1, 2)`` in SAM input pixels. The two-way transformer runs over all
        g × g image tokens (exact); then each prompt's w × w-token window of its transformed
        tokens, centred on the prompt, is upscaled (the whole grid for ``"full"``). Returns the
        single-mask logits ``(B, 4w, 4w)`` at SAM's low resolution and each window's top-left
        ``(B, 2)`` (x, y) in that grid.
        """
        import torch

        pe, md = self.model.prompt_encoder, self.model.mask_decoder
        g = self.predictor.features.shape[-1]
        w = g if window == "full" else min(int(window), g)
        b = coords.shape[0]
        labels = torch.ones(coords.shape[:2], dtype=torch.int64, device=coords.device)
        sparse, _ = pe(points=(coords, labels), boxes=None, masks=None)  # (B, 2, C)
        out_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens[None].expand(b, -1, -1), sparse], dim=1)  # (B, 7, C)
        hs, src = self._two_way(tokens)  # (B, 7, C), (B, g*g, C)
        src = src.view(b, g, g, -1)
        if w == g:
            origin = torch.zeros((b, 2), dtype=torch.int64, device=coords.device)
            win = src
        else:
            token = coords[:, 0] * (g / self.model.image_encoder.img_size)  # (B, 2) in token units
            origin = torch.clamp(torch.round(token - w / 2).long(), 0, g - w)  # window's top-left token (x, y)
            o = origin.tolist()
            win = torch.stack([src[k, y : y + w, x : x + w] for k, (x, y) in enumerate(o)])  # (B, w, w, C)
        up = md.output_upscaling(win.permute(0, 3, 1, 2))  # (B, C/8, 4w, 4w): pixel (i, j) reads token (i//4, j//4) only
        hyper = md.output_hypernetworks_mlps[0](hs[:, 1])  # the single-mask output token (multimask_output=False)
        low = torch.einsum("bc,bchw->bhw", hyper, up)
        return low, origin * 4

    def _image_side(self):
        """Per image: image tokens (+ no-mask embedding), their positional encoding, layer 0's image projections.

        All ``(g*g, C)``; shared by every prompt (the transformer's input image side does not
        depend on the prompt), so they are computed once per image and never copied per prompt.
        """
        if getattr(self, "_side_key", None) != self._image_key:
            pe, tr = self.model.prompt_encoder, self.model.mask_decoder.transformer
            keys = (self.predictor.features + pe.no_mask_embed.weight.reshape(1, -1, 1, 1))[0].flatten(1).T.contiguous()
            pos = pe.get_dense_pe()[0].flatten(1).T.contiguous()
            l0 = tr.layers[0]
            self._side = (keys, pos, l0.cross_attn_token_to_image.k_proj(keys + pos),
                          l0.cross_attn_token_to_image.v_proj(keys), l0.cross_attn_image_to_token.q_proj(keys + pos))
            self._side_key = self._image_key
        return self._side

    def _two_way(self, tokens):
        """segment-anything's ``TwoWayTransformer.forward`` over all image tokens, same result up to float rounding.

        ``tokens (B, 7, C)``. Layer 0's image side is shared by the B prompts (:meth:`_image_side`):
        its attentions are batched matmuls against the shared ``(g*g, ·)`` tensors, so no
        per-prompt copy of the image tokens is made before layer 0's image-to-token update.
        Attention uses ``scaled_dot_product_attention`` (softmax(q kᵀ/√d) v, fused).
        Returns the output tokens ``(B, 7, C)`` and the image tokens ``(B, g*g, C)``.
        """
        import torch
        import torch.nn.functional as F

        tr = self.model.mask_decoder.transformer
        keys_all, pos_all, k0, v0, q0 = self._image_side()
        b, n_tok, _ = tokens.shape
        t = keys_all.shape[0]
        l0 = tr.layers[0]  # skip_first_layer_pe: its self-attention has no positional term
        queries = l0.norm1(_sdpa(l0.self_attn, tokens, tokens, tokens))
        # token -> image, keys/values shared: heads as the batch, the B*7 queries as rows
        a = l0.cross_attn_token_to_image
        h = a.num_heads
        q = a.q_proj(queries + tokens)  # (B, 7, Ci)
        d = q.shape[-1] // h
        qh = q.reshape(b * n_tok, h, d).transpose(0, 1)  # (H, B*7, d)
        kh, vh = (x.view(t, h, d).transpose(0, 1) for x in (k0, v0))  # (H, T, d) views
        att = F.scaled_dot_product_attention(qh, kh, vh)  # (H, B*7, d)
        att = a.out_proj(att.transpose(0, 1).reshape(b, n_tok, h * d))
        queries = l0.norm2(queries + att)
        queries = l0.norm3(queries + l0.mlp(queries))
        # image -> token, queries shared: logits (H, T, B*7), softmax over each prompt's 7 tokens
        a = l0.cross_attn_image_to_token
        k = a.k_proj(queries + tokens).reshape(b * n_tok, h, d).permute(1, 2, 0)  # (H, d, B*7)
        v = a.v_proj(queries).reshape(b, n_tok, h, d).permute(0, 2, 1, 3)  # (B, H, 7, d)
        logits = torch.matmul(q0.view(t, h, d).transpose(0, 1), k).mul_(1.0 / math.sqrt(d))  # (H, T, B*7)
        wts = torch.softmax(logits.view(h, t, b, n_tok), dim=-1).permute(2, 0, 1, 3)  # (B, H, T, 7)
        att = torch.matmul(wts, v)  # (B, H, T, d)
        att = a.out_proj(att.transpose(1, 2).reshape(b, t, h * d))
        keys = l0.norm4(att.add_(keys_all))
        key_pe = pos_all
        for layer in tr.layers[1:]:
            queries, keys = _block(layer, queries, keys, tokens, key_pe)
        attn = _sdpa(tr.final_attn_token_to_image, queries + tokens, keys + key_pe, keys)
        return tr.norm_final_attn(queries + attn), keys

    def _paste(self, out: np.ndarray, low, origin, size: int) -> None:
        """sigmoid + bilinear upsampling of each window onto the canvas, in place into ``out (B, S, S)``."""
        import torch
        import torch.nn.functional as F

        p = self.predictor
        low_size = 4 * self.predictor.features.shape[-1]  # SAM's low-res grid covers its padded input square
        h_in, w_in = p.input_size
        scale = size * self.model.image_encoder.img_size / (low_size * max(h_in, w_in))  # canvas px per low-res px
        win = low.shape[-1]
        n_up = round(win * scale)
        # sigmoid at low resolution (4× fewer values); bilinear interpolation keeps [0, 1]
        up = F.interpolate(torch.sigmoid(low.float())[:, None], size=(n_up, n_up), mode="bilinear", align_corners=False)[:, 0]
        up = up.cpu().numpy()
        offs = np.round(origin.cpu().numpy() * scale).astype(int)  # (B, 2) canvas (x, y)
        for k in range(len(out)):
            x0, y0 = offs[k]
            x1, y1 = min(x0 + n_up, size), min(y0 + n_up, size)
            if x1 > x0 and y1 > y0:
                out[k, y0:y1, x0:x1] = up[k, : y1 - y0, : x1 - x0]

    def mask(self, points: np.ndarray | None = None, labels: np.ndarray | None = None, box: np.ndarray | None = None) -> np.ndarray:
        """SAM's mask for a prompt on the current canvas: ``(S, S) bool``.

        ``points``: ``(K, 2)`` canvas pixels (x, y); ``labels``: ``(K,)`` 1 = positive, 0 = negative;
        ``box``: ``(4,)`` canvas pixels (x0, y0, x1, y1). A lone point is ambiguous (part, object,
        whole), so SAM's three masks are asked for and the one with the best predicted IoU is
        kept, as SAM's predictor recommends; with more prompts SAM's single mask is used.
        """
        if self._image_key is None:
            raise RuntimeError("call set_image first")
        k = 0 if points is None else len(points)
        multi = k == 1 and box is None
        import torch

        with torch.inference_mode():
            masks, scores, _ = self.predictor.predict(point_coords=points, point_labels=labels, box=box, multimask_output=multi)
        return masks[int(np.argmax(scores))].astype(bool)
