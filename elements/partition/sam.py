"""SAM as the affinity of Algorithm 2: point-prompted mask logits at the query points.

The image embedding is computed once per image (``SamPredictor.set_image``); each call of
:meth:`SamAffinity.__call__` only runs the prompt encoder and the mask decoder, batched over
all queries, and upsamples the *low-resolution* logits of all prompts in one interpolate call
(SAM's own ``postprocess_masks`` upsamples each prompt to 1024² and back, which would
dominate the cost).
"""

from __future__ import annotations

import hashlib

import numpy as np

from elements import defaults
from elements.errors import UserError

_PROMPT_CHUNK = 64  # prompts per mask-decoder call: bounds memory, same result


def load_sam(checkpoint: str | None = None, model_type: str | None = None, device: str = "cpu"):
    """Build a SAM model from a local checkpoint or a Hub reference (``repo_id:path``).

    Weights are loaded with ``torch.load(weights_only=True)``: the official ``.pth`` files are
    plain state dicts, and nothing else should be unpickled.
    """
    import torch
    from segment_anything import sam_model_registry

    from elements.hub import resolve_file

    ref = defaults.SAM_CHECKPOINT.get(checkpoint)
    model_type = defaults.SAM_MODEL_TYPE.get(model_type)
    if model_type not in sam_model_registry or model_type == "default":
        raise UserError(f"Unknown SAM model type '{model_type}'; use one of vit_b, vit_l, vit_h.")
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
    return sam.to(device).eval()


def build_tiny_sam(*, img_size: int = 256, embed_dim: int = 32, depth: int = 1, out_chans: int = 32, seed: int = 0):
    """A random-init SAM with the real architecture at toy size, for tests and benchmarks."""
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

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


class SamAffinity:
    """Affinity s(m, n) in [0, 1] from SAM mask logits; one instance per model, any number of images."""

    name = "sam"

    def __init__(self, sam) -> None:
        from segment_anything import SamPredictor

        self.predictor = SamPredictor(sam)
        self.model = sam
        self._image_key: str | None = None

    @property
    def device(self):
        return self.predictor.device

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

    def __call__(self, points: np.ndarray, size: int) -> np.ndarray:
        """``points (N, 2)`` normalised (x, y) -> affinity ``(N, size, size) float32`` in [0, 1]."""
        import torch
        import torch.nn.functional as F

        if self._image_key is None:
            raise RuntimeError("call set_image first")
        p = self.predictor
        coords = p.transform.apply_coords(np.asarray(points, dtype=np.float64) * size, p.original_size)
        coords_t = torch.as_tensor(coords, dtype=torch.float32, device=p.device)[:, None, :]  # (N, 1, 2)
        labels_t = torch.ones(coords_t.shape[:2], dtype=torch.int64, device=p.device)
        dense_pe = self.model.prompt_encoder.get_dense_pe()
        lows = []
        with torch.inference_mode():
            for i in range(0, coords_t.shape[0], _PROMPT_CHUNK):
                sparse, dense = self.model.prompt_encoder(points=(coords_t[i : i + _PROMPT_CHUNK], labels_t[i : i + _PROMPT_CHUNK]), boxes=None, masks=None)
                low, _ = self.model.mask_decoder(
                    image_embeddings=p.features, image_pe=dense_pe,
                    sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False,
                )
                lows.append(low[:, 0])
            low = torch.cat(lows)  # (N, h, w) logits over SAM's padded input square
            # our canvas is square, so SAM's input has no padding: the low-res map covers the canvas
            h_in, w_in = p.input_size
            lh = low.shape[-2] * h_in // self.model.image_encoder.img_size
            lw = low.shape[-1] * w_in // self.model.image_encoder.img_size
            low = low[:, :lh, :lw]
            # sigmoid at low resolution (4× fewer values); bilinear interpolation keeps [0, 1]
            up = F.interpolate(torch.sigmoid(low.float())[None], size=(size, size), mode="bilinear", align_corners=False)[0]
            return up.cpu().numpy()
