"""SAM as the affinity of Algorithm 2: point-prompted mask logits at the query points.

The image embedding is computed once per image (``SamPredictor.set_image``); each call of
:meth:`SamAffinity.__call__` only runs the prompt encoder and the mask decoder, batched over
the queries (64 per call, SAM's ``points_per_batch``), and upsamples the *low-resolution*
logits (SAM's own ``postprocess_masks`` upsamples each prompt to 1024² and back, which would
dominate the cost). Coordinates: canvas S × S = 512² ↔ SAM input 1024² ↔ g × g = 64² tokens,
so one token is 8 canvas px and one low-res logit 2 canvas px.

Decode
------
The two-way transformer always runs over all g × g = 64 × 64 image tokens, so the logits are
SAM's own (to float rounding, ~2e-5 on logits of magnitude ~20). It is written to avoid
per-prompt copies of the per-image tensors: layer 0's image side (its keys, values and
image-to-token queries) does not depend on the prompt, so it is computed once per image and
its two attentions are batched matmuls against the shared ``(g*g, ·)`` tensors; attention is
``scaled_dot_product_attention`` (the same softmax(q kᵀ/√d) v, fused); the output upscaling
runs channels-last as matmuls (:func:`_upscale_dot`). About 1.6× faster than the first
version's decode on 2 CPU cores; onnxruntime runs the same batched decode 1.3-3× faster again,
to 6e-5, but is not wired in (``bench/partition.py --table ort``, docs/sam.md).

Upscaling window (exact inside)
-------------------------------
SAM's ``output_upscaling`` is ConvTranspose2d(k=2, s=2) → LayerNorm2d → GELU →
ConvTranspose2d(k=2, s=2) → GELU, and the mask is a per-pixel dot product with the hypernetwork
output: every low-res logit depends on exactly one transformed image token. So with
``window=w`` each prompt's w × w-token window of the *transformed* tokens, centred on the
prompt, is upscaled, and the logits inside it are identical to the full decode's; only the
outermost canvas pixel of the window differs (bilinear upsampling clamps at the window's
border). Outside the window the affinity is set to 0.

When is 0 outside the window exact for Eq. 1? (one iteration, T = 1, the paper's)
Affinities lie in [0, 1], so with the squared distance query n can take pixel m from the
nearest adjusted centroid only if β·(d_n(m)² − d_min(m)²) ≤ 1. In canvas px (S = 512, so d in
px is S·d): d_n(m)² ≤ d_min(m)² + S²/β. Every pixel is within ρ = half a cell diagonal of a
query (22.6 px for the 16 × 16 grid), and Alg. 2 line 6 moves a centroid off its query by
δ = β_c·|C_n − Q_n|; C_n, the centroid of the samples query n wins in the plain assignment
(lines 3-5), lies in n's window (it has affinity 0 elsewhere), so δ ≤ β_c·√2·(w/2 + 0.5)·8 px.
Hence d_min(m) ≤ ρ + δ, and query n can only win pixels within

    R(w) = δ + √((ρ + δ)² + S²/β)   of its query  (β·d: R = 2δ + ρ + S/β).

A window reaches at least (w/2 − 0.5)·8 − 1 px from its prompt on every side. ``"auto"``
(:func:`safe_window`) takes the smallest w with R(w) + 2 px ≤ that reach: w = 34
tokens at β = 64, β_c = 0.2, N = 256 on a square image (the upscaling then costs (34/64)² =
28 % of the full one), and ``"full"`` when no w < 64 qualifies or T > 1 (the prompts then move
with the previous labels). Given the centroids, Eq. 1's labels are then exactly those of the
full decode. The one remaining difference is the centroids themselves: the plain assignment
(lines 3-5) is an argmax over *all* queries, and a query whose mask also wins samples outside
its window (a large mask: sky, wall, table) no longer counts them, so its centroid, and with
weight β_c its adjusted centroid, moves (by up to 55 px on the coffee photo). On the 8 bench
photos the label maps then agree with the full decode's on only 72-92 % of the pixels
(``bench/partition.py``, docs/sam.md), below the 97 % bar, so ``"full"`` stays the default. The
plain assignment needs every prompt's mask everywhere, i.e. the full upscaling, which is all
that the window saves (and the transformer, not the upscaling, dominates the cost). The first
version's windows cropped the transformer too, which changes the logits inside the window and
agreed with the full decode on only 65-80 % of pixels; that mode is gone.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from elements import defaults
from elements.errors import UserError

_PROMPT_CHUNK = 64  # prompts per mask-decoder call (SAM's points_per_batch): bounds memory, same result
DECODE_WINDOW = (
    "full"  # exact; "auto" agrees on only 72-92 % of pixels: the plain-assignment centroids move (docs/sam.md)
)
_WINDOW_MARGIN_PX = 2.0  # canvas px of slack in that bound (float rounding of centroids and distances)
MODEL_TYPES = ("vit_b", "vit_l", "vit_h", "vit_t")  # vit_t: the distilled SAM (elements/partition/tinysam.py)


def load_sam(
    checkpoint: str | None = None,
    model_type: str | None = None,
    device: str = "cpu",
    *,
    tinysam: str | None = None,
    local_only: bool = False,
):
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


def window_reach(window: int, *, size: int = 512, tokens: int = 64) -> float:
    """Canvas px from a prompt to its window's edge (worst case), inside which the affinity is SAM's own.

    The window's top-left token is ``round(t - w/2)`` (clamped into the grid, which only moves
    it away from the edge the prompt is near), so it reaches at least ``w/2 - 0.5`` tokens on
    every side; 1 canvas px is lost to the bilinear upsampling at its border.
    """
    return size / tokens * (window / 2 - 0.5) - 1.0


def window_need(
    window: int,
    *,
    beta: float,
    beta_c: float,
    distance: str,
    cell: tuple[float, float],
    size: int = 512,
    tokens: int = 64,
) -> float:
    """Canvas px from a prompt within which its query can win a pixel in Eq. 1 (module docstring), for one iteration.

    ``cell``: the query grid's cell (width, height) in canvas px.
    """
    px = size / tokens
    delta = (
        beta_c * math.sqrt(2.0) * px * (window / 2 + 0.5)
    )  # centroid shift: β_c × (plain centroid lies in the window)
    rho = 0.5 * math.hypot(*cell)  # every pixel lies within half a cell diagonal of a query
    if distance == "squared":
        return delta + math.sqrt((rho + delta) ** 2 + size**2 / beta)
    return delta + rho + delta + size / beta


def safe_window(
    *,
    beta: float,
    beta_c: float,
    iterations: int,
    distance: str,
    cell: tuple[float, float],
    size: int = 512,
    tokens: int = 64,
) -> int | str:
    """The smallest decode window (tokens per side) whose reach covers every pixel a query can win, else ``"full"``.

    Only for one iteration of Alg. 2 (T = 1, the paper's): with T > 1 the prompts move with the
    previous labels, and the full decode is used.
    """
    if iterations != 1:
        return "full"
    for w in range(4, tokens):
        need = window_need(w, beta=beta, beta_c=beta_c, distance=distance, cell=cell, size=size, tokens=tokens)
        if need + _WINDOW_MARGIN_PX <= window_reach(w, size=size, tokens=tokens):
            return w
    return "full"


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
            img_size=img_size,
            patch_size=patch,
            in_chans=3,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=2,
            mlp_ratio=2.0,
            out_chans=out_chans,
            qkv_bias=True,
            use_rel_pos=False,
            window_size=0,
            global_attn_indexes=(),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=out_chans,
            image_embedding_size=(emb, emb),
            input_image_size=(img_size, img_size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=out_chans, mlp_dim=32, num_heads=2),
            transformer_dim=out_chans,
            iou_head_depth=1,
            iou_head_hidden_dim=16,
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


def _upscale_dot(ups, src, hyper):
    """SAM's ``output_upscaling`` then the hypernetwork dot product, channels-last: ``(B, h, w, C)`` -> ``(B, 4h, 4w)``.

    ``ups`` = ConvTranspose2d(k=2, s=2) → LayerNorm2d → GELU → ConvTranspose2d(k=2, s=2) → GELU.
    A stride-2, kernel-2 transposed convolution maps each input pixel to its own 2 × 2 output
    block, so each is one matmul ``(…, C_in) @ (C_in, 2·2·C_out)``; low-res pixel (4i + 2a + c,
    4j + 2b + d) reads token (i, j) only. Same maths as the modules, without their layout copies.
    """
    import torch
    import torch.nn.functional as F

    conv1, norm, act1, conv2, act2 = ups
    b, h, w, _ = src.shape

    def tconv(x, conv):  # (..., C_in) -> (..., 2, 2, C_out)
        wt = conv.weight.permute(0, 2, 3, 1).reshape(conv.weight.shape[0], -1)  # (C_in, 2*2*C_out), (a, b, o)
        return F.linear(x, wt.T, conv.bias.repeat(4)).unflatten(-1, (2, 2, -1))

    x = tconv(src, conv1)  # (B, h, w, 2, 2, C/4)
    x = act1(F.layer_norm(x, x.shape[-1:], norm.weight, norm.bias, norm.eps))  # LayerNorm2d: over channels
    x = act2(tconv(x, conv2))  # (B, h, w, 2, 2, 2, 2, C/8)
    low = torch.matmul(x.reshape(b, -1, x.shape[-1]), hyper[:, :, None])  # (B, h*w*16, 1)
    low = low.view(b, h, w, 2, 2, 2, 2).permute(0, 1, 3, 5, 2, 4, 6)  # (B, i, a, c, j, b, d)
    return low.reshape(b, 4 * h, 4 * w)


class SamAffinity:
    """Affinity s(m, n) in [0, 1] from SAM mask logits; one instance per model, any number of images.

    ``window``: tokens per side of the window of transformed image tokens that each query's
    mask is upscaled over (logits inside identical to the full decode's), ``"full"``, or
    ``"auto"``: the smallest window Eq. 1's bound allows, resolved by :meth:`window_for`; a
    plain call with ``"auto"`` decodes in full (module docstring). Default ``"full"``.
    """

    name = "sam"

    def __init__(self, sam, *, window: int | str = DECODE_WINDOW) -> None:
        from segment_anything import SamPredictor

        if window not in ("full", "auto") and not (isinstance(window, int) and 4 <= window <= 64):
            raise UserError(f"The SAM decode window must be 'auto', 'full' or a token count in 4..64, got {window!r}.")
        self.predictor = SamPredictor(sam)
        self.model = sam
        self.window = window
        self.last_window: int | str | None = None  # the window the last call decoded with ("auto" resolved)
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

    def window_for(
        self, *, beta: float, beta_c: float, iterations: int, distance: str, cell: tuple[float, float], size: int
    ) -> int | str:
        """The decode window Alg. 2 runs with: the instance's, with ``"auto"`` resolved by :func:`safe_window`."""
        if self.window != "auto":
            return self.window
        g = self.predictor.features.shape[-1] if self.predictor.is_image_set else 64
        return safe_window(
            beta=beta, beta_c=beta_c, iterations=iterations, distance=distance, cell=cell, size=size, tokens=g
        )

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
        if window == "auto":
            window = "full"  # "auto" needs Eq. 1's parameters: see window_for
        self.last_window = window
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
        hyper = md.output_hypernetworks_mlps[0](hs[:, 1])  # the single-mask output token (multimask_output=False)
        return _upscale_dot(md.output_upscaling, win, hyper), origin * 4

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
            self._side = (
                keys,
                pos,
                l0.cross_attn_token_to_image.k_proj(keys + pos),
                l0.cross_attn_token_to_image.v_proj(keys),
                l0.cross_attn_image_to_token.q_proj(keys + pos),
            )
            self._side_key = self._image_key
        return self._side

    def _two_way(self, tokens, side=None):
        """segment-anything's ``TwoWayTransformer.forward`` over all image tokens, same result up to float rounding.

        ``tokens (B, 7, C)``. Layer 0's image side is shared by the B prompts (:meth:`_image_side`):
        its attentions are batched matmuls against the shared ``(g*g, ·)`` tensors, so no
        per-prompt copy of the image tokens is made before layer 0's image-to-token update.
        Attention uses ``scaled_dot_product_attention`` (softmax(q kᵀ/√d) v, fused).
        ``side``: :meth:`_image_side`'s tensors, passed explicitly (ONNX export in the bench).
        Returns the output tokens ``(B, 7, C)`` and the image tokens ``(B, g*g, C)``.
        """
        import torch
        import torch.nn.functional as F

        tr = self.model.mask_decoder.transformer
        keys_all, pos_all, k0, v0, q0 = self._image_side() if side is None else side
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
        up = F.interpolate(
            torch.sigmoid(low.float())[:, None], size=(n_up, n_up), mode="bilinear", align_corners=False
        )[:, 0]
        up = up.cpu().numpy()
        offs = np.round(origin.cpu().numpy() * scale).astype(int)  # (B, 2) canvas (x, y)
        for k in range(len(out)):
            x0, y0 = offs[k]
            x1, y1 = min(x0 + n_up, size), min(y0 + n_up, size)
            if x1 > x0 and y1 > y0:
                out[k, y0:y1, x0:x1] = up[k, : y1 - y0, : x1 - x0]

    def mask(
        self, points: np.ndarray | None = None, labels: np.ndarray | None = None, box: np.ndarray | None = None
    ) -> np.ndarray:
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
            masks, scores, _ = self.predictor.predict(
                point_coords=points, point_labels=labels, box=box, multimask_output=multi
            )
        return masks[int(np.argmax(scores))].astype(bool)
