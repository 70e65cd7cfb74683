"""The reference for ``bench/partition.py``: Alg. 2's affinity provider on segment-anything's own mask decoder."""

from __future__ import annotations

import numpy as np

REFERENCE_BATCH = 64  # prompts per mask_decoder call: SAM's points_per_batch


class ReferenceAffinity:
    """Alg. 2's affinity provider on segment-anything's own mask decoder: the full decode, for reference.

    Each prompt is decoded by ``sam.mask_decoder`` (``multimask_output=False``, batches of
    :data:`REFERENCE_BATCH` prompts), over every image token, giving low-res logits
    ``(N, 4g, 4g)`` = (N, 256, 256). :meth:`samples` reads them at low-res pixel
    (4i + ``offset``, 4j + ``offset``) of token (i, j) (``offset`` 2 is where
    :meth:`SamAffinity.samples <elements.partition.sam.SamAffinity.samples>` reads); :meth:`dense`
    is their sigmoid bilinearly upsampled (``align_corners=False``) to the whole S × S canvas,
    boxes ignored. The image embedding lives in a :class:`~elements.partition.sam.SamAffinity`
    (``set_image``, ``embedding_state``, ``restore_embedding`` delegate to it); the latest
    prompts' logits are kept (64 MB for 256 prompts).
    """

    name = "sam"

    def __init__(self, sam) -> None:
        from elements.partition.sam import SamAffinity

        self.base = SamAffinity(sam)
        self.lock = self.base.lock
        self.model = sam
        self._low = None  # ((image key, points bytes), (N, 4g, 4g) float32 tensor)

    @property
    def model_type(self) -> str:
        return self.base.model_type

    @property
    def model_file(self) -> str | None:
        return self.base.model_file

    def set_image(self, canvas: np.ndarray) -> None:
        self.base.set_image(canvas)

    def embedding_state(self):
        return self.base.embedding_state()

    def restore_embedding(self, state) -> None:
        self.base.restore_embedding(state)
        self._low = None

    def low_res(self, points: np.ndarray):
        """segment-anything's single-mask low-res logits for ``points (N, 2)`` normalised (x, y): ``(N, 4g, 4g)`` tensor."""
        import torch

        state = self.base.embedding_state()
        if state is None:
            raise RuntimeError("call set_image first")
        key = (state.key, np.asarray(points, dtype=np.float32).tobytes())
        if self._low is not None and self._low[0] == key:
            return self._low[1]
        self._low = None
        features = self.base.embedding.features
        coords_t = self.base._prompts(points)  # (N, 1, 2) SAM input px
        pe, md = self.model.prompt_encoder, self.model.mask_decoder
        out = []
        with torch.inference_mode():
            image_pe = pe.get_dense_pe()
            for i in range(0, len(coords_t), REFERENCE_BATCH):
                c = coords_t[i : i + REFERENCE_BATCH]
                sparse, dense = pe(
                    points=(c, torch.ones(c.shape[:2], dtype=torch.int64, device=c.device)), boxes=None, masks=None
                )
                low, _ = md(
                    image_embeddings=features,
                    image_pe=image_pe,
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=False,
                )
                out.append(low[:, 0].float())  # (B, 4g, 4g)
            low = torch.cat(out)
        self._low = (key, low)
        return low

    def sample_xy(self, offset: int = 2) -> np.ndarray:
        """``(g*g, 2) float32``: canvas positions (x, y) normalised of low-res pixels (4i + offset, 4j + offset), raster order."""
        size, g, scale = self.base.geometry()
        centre = ((4 * np.arange(g) + offset + 0.5) * scale) / size  # the same arithmetic as SamAffinity.samples
        gx, gy = np.meshgrid(centre, centre)
        return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)

    def samples(self, points: np.ndarray, region=None, *, offset: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """SAM's logits at low-res pixel (4i + offset, 4j + offset) of each token: ``(N, g*g) float32``, and :meth:`sample_xy`."""
        low = self.low_res(points)
        g = self.base.geometry()[1]
        vals = low[:, offset::4, offset::4][:, :g, :g].reshape(len(low), -1)
        return vals.cpu().numpy(), self.sample_xy(offset)

    def dense(self, points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """The full affinity ``(N, S, S) float32`` in [0, 1] on the whole canvas (``boxes`` ignored)."""
        import torch
        import torch.nn.functional as F

        size, g, scale = self.base.geometry()
        up_size = int(round(4 * g * scale))
        low = self.low_res(points)
        with torch.inference_mode():
            up = F.interpolate(
                torch.sigmoid(low)[:, None], size=(up_size, up_size), mode="bilinear", align_corners=False
            )[:, 0, :size, :size]
        return np.ascontiguousarray(up.cpu().numpy())
