"""SAM as the affinity of Algorithm 2: point-prompted mask logits at the query points.

The image embedding is computed once per image (``SamPredictor.set_image``). Alg. 2 then asks
:class:`SamAffinity`, its :class:`~elements.partition.algorithm.AffinityProvider`, twice per
iteration, and only for what it reads:

1. :meth:`SamAffinity.samples`: every prompt's logit at one low-res pixel per token (the plain
   assignment, Alg. 2 lines 3-5);
2. :meth:`SamAffinity.dense`: every prompt's affinity in [0, 1] inside its candidate box of Eq. 1
   (line 7), 0 elsewhere, where Eq. 1 never reads it.

Both come from one pass of the mask decoder per prompt (:mod:`elements.partition.sam_decode`:
SAM's own decoder, exact to float rounding, in low-rank form); its per-prompt state is kept
between the two calls. The logits are segment-anything's ``MaskDecoder`` single-mask logits
(``multimask_output=False``) to float rounding, so the partition is the full decode's
(identical label maps on the 8 photos of ``bench/partition.py --table decode``).

Coordinates: canvas S × S = 512² ↔ SAM input 1024² ↔ g × g = 64² tokens ↔ 256² low-res logits;
one token is 8 canvas px and one low-res logit 2 canvas px. The dense affinity is the sigmoid
of the low-res logits, bilinearly upsampled to the canvas (SAM's ``postprocess_masks`` goes
through 1024² and back, which would dominate the cost).
"""

from __future__ import annotations

import hashlib

import numpy as np

from elements import defaults
from elements.errors import UserError
from elements.partition.algorithm import BoxAffinity

#: prompts per decoder pass. Any size gives the same logits; 16 keeps its (B, K, T) tensors
#: cache-sized on a CPU. On a GPU, SAM's own points_per_batch (64) fills the device better.
PROMPT_CHUNK = {"cpu": 16, "cuda": 64}
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


def build_tiny_sam(
    *,
    img_size: int = 256,
    embed_dim: int = 32,
    depth: int = 1,
    out_chans: int = 32,
    decoder_depth: int = 1,
    seed: int = 0,
):
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
            transformer=TwoWayTransformer(depth=decoder_depth, embedding_dim=out_chans, mlp_dim=32, num_heads=2),
            transformer_dim=out_chans,
            iou_head_depth=1,
            iou_head_hidden_dim=16,
        ),
    )
    return sam.eval()


class SamAffinity:
    """SAM as Alg. 2's affinity provider; one instance per model, any number of images.

    :meth:`samples` and :meth:`dense` are asked in turn for the same prompts (Alg. 2's current
    centroids); the decoder runs once, in :meth:`samples`, and its per-prompt state (about
    2 MB per prompt) is kept for :meth:`dense` and dropped after it.
    """

    name = "sam"

    def __init__(self, sam) -> None:
        from segment_anything import SamPredictor

        self.predictor = SamPredictor(sam)
        self.model = sam
        self._image_key: str | None = None
        self._side = None  # (image key, sam_decode.ImageSide)
        self._decoded = None  # (points bytes, [(TokenRep, hyper)] per chunk)

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
            self._decoded = None

    def clear(self) -> None:
        """Forget the image: its embedding, per-image decoder tensors and any prompts' state.

        The next :meth:`set_image` runs the encoder even for the same canvas (benchmarks time a
        first upload this way) and the memory is freed.
        """
        self.predictor.reset_image()
        self._image_key = None
        self._side = None
        self._decoded = None

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
        self._side = None  # rebuilt from the restored embedding when a partition needs it
        self._decoded = None

    def geometry(self) -> tuple[int, int, float]:
        """(canvas size S, tokens per side g, canvas px per low-res logit)."""
        p = self.predictor
        size = p.original_size[0]
        g = p.features.shape[-1]
        return size, g, size * self.model.image_encoder.img_size / (4 * g * max(p.input_size))

    def _decode(self, points: np.ndarray) -> list:
        """Run the mask decoder for ``points (N, 2)`` normalised (x, y): per chunk, (TokenRep, hyper (B, C/8))."""
        import torch

        from elements.partition.sam_decode import ImageSide, two_way

        if self._image_key is None:
            raise RuntimeError("call set_image first")
        key = np.asarray(points, dtype=np.float32).tobytes()
        if self._decoded is not None and self._decoded[0] == key:
            return self._decoded[1]
        self._decoded = None  # free the previous prompts' state first
        p = self.predictor
        if self._side is None or self._side[0] != self._image_key:
            with torch.inference_mode():
                self._side = (self._image_key, ImageSide(self.model, p.features))
        side = self._side[1]
        size = self.geometry()[0]
        coords = p.transform.apply_coords(np.asarray(points, dtype=np.float64) * size, p.original_size)
        coords_t = torch.as_tensor(coords, dtype=torch.float32, device=p.device)[:, None, :]  # (N, 1, 2) SAM input px
        pe, md = self.model.prompt_encoder, self.model.mask_decoder
        chunk = PROMPT_CHUNK.get(torch.device(p.device).type, 64)
        out = []
        with torch.inference_mode():
            out_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], dim=0)
            for i in range(0, len(coords_t), chunk):
                c = coords_t[i : i + chunk]
                sparse, _ = pe(
                    points=(c, torch.ones(c.shape[:2], dtype=torch.int64, device=c.device)), boxes=None, masks=None
                )
                tokens = torch.cat([out_tokens[None].expand(len(c), -1, -1), sparse], dim=1)  # (B, 7, C)
                hs, rep = two_way(side, tokens)
                out.append((rep, md.output_hypernetworks_mlps[0](hs)))
        self._decoded = (key, out)
        return out

    def samples(
        self, points: np.ndarray, region: tuple[int, int, int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """SAM's logits at one low-res pixel per token: ``(N, g*g) float32`` and its canvas positions ``(g*g, 2)``.

        Token (i, j) (raster order) gives low-res pixel (4i + 2, 4j + 2) (``sam_decode.SAMPLE_POS``);
        positions are (x, y) normalised canvas coordinates of that pixel's centre. Token rows
        wholly outside ``region`` (canvas px x0, y0, x1, y1: the content box) are not computed
        (-inf); Alg. 2 reads no sample outside it.
        """
        import torch

        from elements.partition.sam_decode import SAMPLE_POS, sample_logits

        size, g, scale = self.geometry()
        (a, _), (c, _) = SAMPLE_POS
        centre = ((4 * np.arange(g) + 2 * a + c + 0.5) * scale) / size
        gx, gy = np.meshgrid(centre, centre)
        xy = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
        decoded = self._decode(points)
        rows = slice(0, g)
        if region is not None:  # token rows whose samples lie in the content box; the padding's are skipped
            inside = np.flatnonzero((np.floor(centre * size) >= region[1]) & (np.floor(centre * size) < region[3]))
            rows = slice(int(inside[0]), int(inside[-1]) + 1) if len(inside) else slice(0, 0)
        with torch.inference_mode():
            part = torch.cat(
                [sample_logits(rep, hyper, slice(rows.start * g, rows.stop * g)) for rep, hyper in decoded]
            )
        logits = np.full((len(part), g * g), -np.inf, dtype=np.float32)
        logits[:, rows.start * g : rows.stop * g] = part.float().cpu().numpy()
        return logits, xy

    def dense(self, points: np.ndarray, boxes: np.ndarray) -> BoxAffinity:
        """The affinity in [0, 1] inside each of ``boxes (N, 4)`` canvas px (x0, y0, x1, y1), ends exclusive.

        A :class:`~elements.partition.algorithm.BoxAffinity`: per prompt, the values of its box
        only. Inside a box they equal the full decode's (sigmoid of the low-res logits, bilinearly
        upsampled): each prompt's window of tokens covers its box plus one token, and each
        low-res logit depends on one token only. The decoder state is dropped afterwards.
        """
        import torch
        import torch.nn.functional as F

        from elements.partition.sam_decode import window_logits

        decoded = self._decode(points)
        size, g, scale = self.geometry()
        tok = 4 * scale  # canvas px per token
        boxes = np.clip(np.asarray(boxes, dtype=np.int64), 0, size)
        empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        boxes[empty] = 0
        h, w = max(1, int((boxes[:, 3] - boxes[:, 1]).max())), max(1, int((boxes[:, 2] - boxes[:, 0]).max()))
        values = np.zeros((len(boxes), h, w), dtype=np.float32)
        lo = np.clip(np.floor(boxes[:, :2] / tok).astype(np.int64) - 1, 0, g)  # (N, 2) token (x, y)
        hi = np.clip(np.ceil(boxes[:, 2:] / tok).astype(np.int64) + 1, 0, g)
        start = 0
        with torch.inference_mode():
            for rep, hyper in decoded:
                sl = slice(start, start + len(hyper))
                start += len(hyper)
                live = np.flatnonzero(~empty[sl])
                if not len(live):
                    continue
                ww, wh = (hi[sl] - lo[sl])[live].max(axis=0)
                origin = np.minimum(lo[sl], [g - ww, g - wh])  # (B, 2): the window holds [lo, hi)
                low = window_logits(rep, hyper, torch.as_tensor(origin, device=hyper.device), (int(wh), int(ww)))
                up = F.interpolate(
                    torch.sigmoid(low.float())[:, None], scale_factor=scale, mode="bilinear", align_corners=False
                )[:, 0]
                up = up.cpu().numpy()
                offs = np.round(origin * tok).astype(np.int64)  # canvas (x, y) of each window
                for k in live:
                    x0, y0, x1, y1 = boxes[sl.start + k]
                    ox, oy = offs[k]
                    values[sl.start + k, : y1 - y0, : x1 - x0] = up[k, y0 - oy : y1 - oy, x0 - ox : x1 - ox]
        self._decoded = None
        return BoxAffinity(values, boxes[:, :2], size)

    def __call__(self, points: np.ndarray, size: int | None = None) -> np.ndarray:
        """The full affinity ``(N, S, S) float32`` in [0, 1] for ``points (N, 2)`` normalised (benchmarks, tests)."""
        s = self.geometry()[0]
        if size is not None and size != s:
            raise ValueError(f"the canvas is {s} px, not {size}")
        self._decode(points)
        return self.dense(points, np.tile([0, 0, s, s], (len(points), 1))).values

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
