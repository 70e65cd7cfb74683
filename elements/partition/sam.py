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
import threading
from dataclasses import dataclass

import numpy as np

from elements.partition.algorithm import BoxAffinity
from elements.partition.sam_models import MODEL_TYPES, build_tiny_sam, load_sam  # noqa: F401 (their home until now)

#: tokens per side of the window around its query on which each prompt's decoder state is kept between
#: Alg. 2's two phases: 39 tokens = 312 canvas px, centred; a candidate box leaves it for
#: 0-1 of 256 prompts on the photos of ``bench/partition.py`` (those are decoded again).
CROP = 39
#: prompts per decoder pass. Any size gives the same logits; 16 keeps its (B, K, T) tensors
#: cache-sized on a CPU. On a GPU, SAM's own points_per_batch (64) fills the device better.
PROMPT_CHUNK = {"cpu": 8, "cuda": 64}


@dataclass(frozen=True)
class SamEmbedding:
    """One canvas's SAM image embedding: ``features`` (1, C, g, g) for the canvas whose sha1 is ``key``.

    ``original_size``: the canvas (H, W) px; ``input_size``: its size resized to SAM's input (long side 1024).
    """

    key: str
    features: object  # torch.Tensor
    original_size: tuple[int, int]
    input_size: tuple[int, int]


def canvas_key(canvas: np.ndarray) -> str:
    """The sha1 of a canvas's bytes: which canvas an embedding belongs to."""
    return hashlib.sha1(np.ascontiguousarray(canvas).tobytes()).hexdigest()


def describe_model(model_type: str) -> str:
    """The SAM model in words, for every place that names it (CLI, banner, benchmarks)."""
    if model_type == "vit_t":
        return "the distilled SAM vit_t, MobileSAM's TinyViT approximating the paper's ViT-B"
    return f"SAM {model_type}"


def release_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``; a no-op elsewhere).

    The encoder's activations and the decoder's per-chunk temporaries are freed by onnxruntime and
    torch but stay resident in glibc's heaps; a partition's peak RSS is the sum of the phases'
    unless they are trimmed in between (``bench/budget.py``).
    """
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM = None


def _in_threads(fn, items: list, device) -> list:
    """``[fn(x) for x in items]`` under ``torch.inference_mode``; on a CPU, in torch's threads count of
    Python threads, each running torch single-threaded.

    The prompt chunks are independent. Splitting them between threads needs no synchronisation
    between the cores, unlike torch's intra-op threads, which meet after every operation: on a
    shared 2-core machine under load, 2 intra-op threads made the decode 5-9x slower than one
    (docs/sam.md). torch's thread setting is per thread; the caller's is restored afterwards.
    """
    import torch

    workers = min(torch.get_num_threads(), len(items))
    if torch.device(device).type != "cpu" or workers < 2:
        with torch.inference_mode():
            return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    def work(x):
        torch.set_num_threads(1)
        with torch.inference_mode():
            return fn(x)

    threads = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="eie-sam-decode") as pool:
            return list(pool.map(work, items))
    finally:
        torch.set_num_threads(threads)  # the default for threads started later


class SamAffinity:
    """SAM as Alg. 2's affinity provider and object selector; one instance per model, any number of images.

    Holds one image embedding at a time (:attr:`embedding`); :attr:`lock` serialises everything
    that sets or reads it (a partition, an object selection), so that threads sharing the model
    never interleave. :meth:`samples` and :meth:`dense` are asked in turn for the same prompts
    (Alg. 2's current centroids); the decoder runs once, in :meth:`samples`, and keeps each
    prompt's state on a :data:`CROP` × :data:`CROP`-token window around its query for
    :meth:`dense` (:class:`~elements.partition.sam_readout.TokenCrop`, ~0.4 MB per prompt: 99 MB for 256);
    a prompt whose candidate box leaves its window is decoded again.
    """

    name = "sam"

    def __init__(self, sam) -> None:
        from elements.partition.sam_modules import LongestSide

        self.model = sam
        self.transform = LongestSide(sam.image_encoder.img_size)  # segment-anything's ResizeLongestSide
        self.lock = threading.RLock()
        self.embedding: SamEmbedding | None = None
        self.redecoded = 0  # prompts decoded again by the latest dense(): their box left their window
        self._side = None  # (image key, sam_decode.ImageSide)
        self._decoded = None  # (points bytes, coords (N, 1, 2), [(TokenCrop, hyper)] per chunk)

    @property
    def device(self):
        return self.model.device

    @property
    def model_type(self) -> str:
        return getattr(self.model, "model_type", "custom")

    @property
    def model_file(self) -> str | None:
        return getattr(self.model, "model_file", None)

    @property
    def description(self) -> str:
        return describe_model(self.model_type)

    def _encode(self, canvas: np.ndarray, key: str) -> SamEmbedding:
        """Run SAM's image encoder on a ``(S, S, 3) uint8`` RGB canvas (as ``SamPredictor.set_image``)."""
        import torch

        x = self.transform.apply_image(canvas)
        t = torch.as_tensor(x, device=self.device).permute(2, 0, 1).contiguous()[None]
        with torch.inference_mode():
            features = self.model.image_encoder(self.model.preprocess(t))
        return SamEmbedding(key, features, tuple(canvas.shape[:2]), tuple(t.shape[-2:]))

    def set_image(self, canvas: np.ndarray) -> None:
        """Compute (or reuse) the image embedding of a ``(S, S, 3) uint8`` canvas."""
        key = canvas_key(canvas)
        with self.lock:
            if self.embedding is None or self.embedding.key != key:
                self.clear()
                self.embedding = self._encode(canvas, key)
                release_memory()

    def use_image(self, canvas: np.ndarray, embedding: SamEmbedding | None = None) -> None:
        """Make the embedding that of ``canvas``: ``embedding`` if it belongs to it (a UI session's copy), the
        current one if it does, else the encoder runs. An embedding of another canvas is never used."""
        key = canvas_key(canvas)
        with self.lock:
            if self.embedding is not None and self.embedding.key == key:
                return
            if embedding is not None and embedding.key == key:
                self.restore_embedding(embedding)
            else:
                self.set_image(canvas)

    def clear(self) -> None:
        """Forget the image: its embedding, per-image decoder tensors and any prompts' state.

        The next :meth:`set_image` runs the encoder even for the same canvas (benchmarks time a
        first upload this way) and the memory is freed.
        """
        with self.lock:
            self.embedding = None
            self._side = None
            self._decoded = None

    def embedding_state(self) -> SamEmbedding | None:
        """The current embedding (to keep in a UI session), or None."""
        return self.embedding

    def restore_embedding(self, state: SamEmbedding) -> None:
        with self.lock:
            if self.embedding is None or self.embedding.key != state.key:
                self._side = None  # rebuilt from the restored embedding when a partition needs it
            self.embedding = state
            self._decoded = None

    def geometry(self) -> tuple[int, int, float]:
        """(canvas size S, tokens per side g, canvas px per low-res logit)."""
        e = self.embedding
        size = e.original_size[0]
        g = e.features.shape[-1]
        return size, g, size * self.model.image_encoder.img_size / (4 * g * max(e.input_size))

    def _prompts(self, points: np.ndarray):
        """Point prompts ``(N, 1, 2)`` float32 in SAM input px for ``points (N, 2)`` normalised canvas (x, y)."""
        import torch

        size = self.geometry()[0]
        coords = self.transform.apply_coords(np.asarray(points, dtype=np.float64) * size, self.embedding.original_size)
        return torch.as_tensor(coords, dtype=torch.float32, device=self.device)[:, None, :]

    def _image_side(self):
        from elements.partition.sam_decode import ImageSide

        if self.embedding is None:
            raise RuntimeError("call set_image first")
        if self._side is None or self._side[0] != self.embedding.key:
            import torch

            with torch.inference_mode():
                self._side = (self.embedding.key, ImageSide(self.model, self.embedding.features))
        return self._side[1]

    def _two_way(self, coords):
        """The decoder for prompts ``coords (B, 1, 2)``: (TokenRep, hyper (B, C/8))."""
        import torch

        from elements.partition.sam_decode import two_way

        pe, md = self.model.prompt_encoder, self.model.mask_decoder
        labels = torch.ones(coords.shape[:2], dtype=torch.int64, device=coords.device)
        sparse, _ = pe(points=(coords, labels), boxes=None, masks=None)
        out_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens[None].expand(len(coords), -1, -1), sparse], dim=1)  # (B, 7, C)
        hs, rep = two_way(self._image_side(), tokens)
        return rep, md.output_hypernetworks_mlps[0](hs)

    def _chunks(self, n: int) -> list[slice]:
        import torch

        chunk = PROMPT_CHUNK.get(torch.device(self.device).type, 64)
        return [slice(i, min(n, i + chunk)) for i in range(0, n, chunk)]

    def samples(
        self, points: np.ndarray, region: tuple[int, int, int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """SAM's logits at one low-res pixel per token: ``(N, g*g) float32`` and its canvas positions ``(g*g, 2)``.

        Token (i, j) (raster order) gives low-res pixel (4i + 2, 4j + 2) (``sam_readout.SAMPLE_POS``);
        positions are (x, y) normalised canvas coordinates of that pixel's centre. Token rows
        wholly outside ``region`` (canvas px x0, y0, x1, y1: the content box) are not computed
        (-inf); Alg. 2 reads no sample outside it. The decoder runs here, once per prompt, in
        parallel chunks (:func:`_in_threads`), and each prompt's state on its window is kept for
        :meth:`dense`.
        """
        import torch

        from elements.partition.sam_readout import SAMPLE_POS, TokenCrop, sample_logits

        size, g, scale = self.geometry()
        (a, _), (c, _) = SAMPLE_POS
        centre = ((4 * np.arange(g) + 2 * a + c + 0.5) * scale) / size
        gx, gy = np.meshgrid(centre, centre)
        xy = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
        rows = slice(0, g)
        if region is not None:  # token rows whose samples lie in the content box; the padding's are skipped
            inside = np.flatnonzero((np.floor(centre * size) >= region[1]) & (np.floor(centre * size) < region[3]))
            rows = slice(int(inside[0]), int(inside[-1]) + 1) if len(inside) else slice(0, 0)
        self._decoded = None  # free the previous prompts' state first
        coords = self._prompts(points)
        w = min(CROP, g)
        qtok = np.clip(np.floor(np.asarray(points, dtype=np.float64) * g).astype(np.int64), 0, g - 1)  # (N, 2) (x, y)
        origin = torch.as_tensor(np.clip(qtok - w // 2, 0, g - w), device=self.device)

        def chunk(sl: slice):
            rep, hyper = self._two_way(coords[sl])
            part = sample_logits(rep, hyper, slice(rows.start * g, rows.stop * g)).float().cpu().numpy()
            return part, (TokenCrop(rep, origin[sl], w), hyper)

        done = _in_threads(chunk, self._chunks(len(coords)), self.device)
        logits = np.full((len(coords), g * g), -np.inf, dtype=np.float32)
        logits[:, rows.start * g : rows.stop * g] = np.concatenate([p for p, _ in done])
        self._decoded = (np.asarray(points, dtype=np.float32).tobytes(), coords, [s for _, s in done])
        del done
        release_memory()
        return logits, xy

    def dense(self, points: np.ndarray, boxes: np.ndarray) -> BoxAffinity:
        """The affinity in [0, 1] inside each of ``boxes (N, 4)`` canvas px (x0, y0, x1, y1), ends exclusive.

        A :class:`~elements.partition.algorithm.BoxAffinity`: per prompt, the values of its box
        only. Inside a box they equal the full decode's (sigmoid of the low-res logits, bilinearly
        upsampled), to float rounding: each prompt's window of tokens covers its box plus one
        token, and each low-res logit depends on one token only. The windows are read from the
        state :meth:`samples` kept for the same ``points``; prompts whose window leaves it are
        decoded again (:attr:`redecoded` counts them). The state is dropped afterwards.
        """
        key = np.asarray(points, dtype=np.float32).tobytes()
        if self._decoded is None or self._decoded[0] != key:
            self.samples(points)
        _, coords, kept = self._decoded
        self._decoded = None
        size, g, scale = self.geometry()
        tok = 4 * scale  # canvas px per token
        boxes = np.clip(np.asarray(boxes, dtype=np.int64), 0, size)
        empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        boxes[empty] = 0
        h, w = max(1, int((boxes[:, 3] - boxes[:, 1]).max())), max(1, int((boxes[:, 2] - boxes[:, 0]).max()))
        values = np.zeros((len(boxes), h, w), dtype=np.float32)
        lo = np.clip(np.floor(boxes[:, :2] / tok).astype(np.int64) - 1, 0, g)  # (N, 2) token (x, y)
        hi = np.clip(np.ceil(boxes[:, 2:] / tok).astype(np.int64) + 1, 0, g)
        every = np.arange(len(coords))
        done = _in_threads(
            lambda job: self._windows(kept[job[0]], every[job[1]], lo, hi, empty),
            list(enumerate(self._chunks(len(coords)))),
            self.device,
        )
        todo = np.concatenate([m for _, m in done]) if done else every[:0]
        self.redecoded = len(todo)
        if len(todo):
            done += _in_threads(
                lambda idx: self._windows(self._two_way(coords[idx]), idx, lo, hi, empty),
                [todo[sl] for sl in self._chunks(len(todo))],
                self.device,
            )
        for wins, _ in done:
            for n, (ox, oy, win) in wins.items():
                x0, y0, x1, y1 = boxes[n]
                values[n, : y1 - y0, : x1 - x0] = win[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
        del done
        kept.clear()  # the crops: this call was their last reader
        release_memory()
        return BoxAffinity(values, boxes[:, :2], size)

    def _windows(self, state, idx: np.ndarray, lo: np.ndarray, hi: np.ndarray, empty: np.ndarray):
        """Affinity windows of prompts ``idx`` from ``state`` ((TokenCrop or TokenRep, hyper), in ``idx`` order).

        ``lo``, ``hi``: (N, 2) token (x, y) bounds of every prompt's window, ends exclusive; ``empty``:
        (N,) prompts with no box. Returns ``({n: (canvas x0, canvas y0, (h, w) float32 affinity)}, missed)``,
        ``missed`` the prompts of ``idx`` whose window is not inside their crop.
        """
        import torch
        import torch.nn.functional as F

        from elements.partition.sam_readout import TokenCrop, window_logits

        src, hyper = state
        size, g, scale = self.geometry()
        ext = hi[idx] - lo[idx]  # (B, 2) tokens (x, y) each window needs
        use = ~empty[idx]
        if isinstance(src, TokenCrop):
            use &= (ext <= src.w).all(axis=1)
        if not use.any():
            return {}, idx[~empty[idx]]
        ww, wh = ext[use].max(axis=0)
        origin = lo[idx]
        if isinstance(src, TokenCrop):  # inside the crop where the window fits there
            origin = np.minimum(np.maximum(src.origin.cpu().numpy(), hi[idx] - [ww, wh]), origin)
        origin = np.clip(origin, 0, [g - ww, g - wh])
        origin_t = torch.as_tensor(origin, device=hyper.device)
        if isinstance(src, TokenCrop):
            use &= src.holds(origin_t, (int(wh), int(ww))).cpu().numpy()
            keep = torch.as_tensor(np.flatnonzero(use), device=hyper.device)
            src, hyper, origin_t = src.select(keep), hyper[keep], origin_t[keep]
            picked = np.flatnonzero(use)
        else:
            picked = np.arange(len(idx))
        missed = idx[~use & ~empty[idx]]
        if not len(picked):
            return {}, missed
        low = window_logits(src, hyper, origin_t, (int(wh), int(ww)))
        up = F.interpolate(
            torch.sigmoid(low.float())[:, None], scale_factor=scale, mode="bilinear", align_corners=False
        )
        up = up[:, 0].cpu().numpy()
        offs = np.round(origin * (4 * scale)).astype(np.int64)  # canvas (x, y) of each window
        wins = {int(idx[k]): (int(offs[k, 0]), int(offs[k, 1]), up[j]) for j, k in enumerate(picked) if use[k]}
        return wins, missed

    def __call__(self, points: np.ndarray, size: int | None = None) -> np.ndarray:
        """The full affinity ``(N, S, S) float32`` in [0, 1] for ``points (N, 2)`` normalised (benchmarks, tests)."""
        s = self.geometry()[0]
        if size is not None and size != s:
            raise ValueError(f"the canvas is {s} px, not {size}")
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
        import torch

        e = self.embedding
        if e is None:
            raise RuntimeError("call set_image first")
        k = 0 if points is None else len(points)
        multi = k == 1 and box is None
        pts = None
        if k:
            xy = self.transform.apply_coords(np.asarray(points, dtype=np.float64), e.original_size)
            pts = (
                torch.as_tensor(xy, dtype=torch.float32, device=self.device)[None],
                torch.as_tensor(np.asarray(labels), dtype=torch.int64, device=self.device)[None],
            )
        boxes = None
        if box is not None:
            b = self.transform.apply_boxes(np.asarray(box, dtype=np.float64).reshape(1, 4), e.original_size)
            boxes = torch.as_tensor(b, dtype=torch.float32, device=self.device)
        pe, md = self.model.prompt_encoder, self.model.mask_decoder
        with torch.inference_mode():  # as SamPredictor.predict_torch
            sparse, dense = pe(points=pts, boxes=boxes, masks=None)
            low, scores = md(
                image_embeddings=e.features,
                image_pe=pe.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multi,
            )
            masks = self.model.postprocess_masks(low, e.input_size, e.original_size) > self.model.mask_threshold
        return masks[0, int(scores[0].argmax())].cpu().numpy()
