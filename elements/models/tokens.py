"""Batching image elements and turning them into tokens (Sec. 3.2-3.3, App. C.1).

An element token is ``concat(E(a_n), PE(p_n))``: the 32-d content vector of the element's
masked patch followed by the Fourier embedding of its box ``p_n = (x, y, w, h)``.
Deleted elements (``active = False``) keep their slot, so N is unchanged, but their whole
token row is exactly zero, appearance *and* spatial part (Sec. 3.3). Padding slots added by
:func:`collate` to batch images with different N are inactive in the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from elements.models.positional import box_embedding
from elements.types import PATCH_SIZE, ImageElements


@dataclass
class ElementBatch:
    """Elements of B images, padded to a common N.

    ``patches``: ``(B, N, 3, 32, 32)`` float32 in [0, 1], masked patches (zero in padding slots).
    ``boxes``: ``(B, N, 4)`` float32 ``(cx, cy, w, h)``, normalised canvas coordinates (zero in padding).
    ``active``: ``(B, N)`` bool; False for deleted elements and padding.
    """

    patches: torch.Tensor
    boxes: torch.Tensor
    active: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def num_elements(self) -> int:
        return int(self.boxes.shape[1])

    def to(self, device=None, dtype: torch.dtype | None = None) -> ElementBatch:
        """Move to ``device``; ``dtype`` applies to the float tensors only."""
        return ElementBatch(
            self.patches.to(device=device, dtype=dtype),
            self.boxes.to(device=device, dtype=dtype),
            self.active.to(device=device),
        )


def token_boxes(el: ImageElements) -> np.ndarray:
    """``(N, 4) float32`` ``(cx, cy, w, h)`` of an :class:`ImageElements` (its *edited* centroids and sizes)."""
    return np.concatenate([el.centroids, el.sizes], axis=1).astype(np.float32)


def pad_elements(
    patches: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray],
    active: Sequence[np.ndarray],
    num_elements: int | None = None,
) -> ElementBatch:
    """Stack per-image arrays, padding to ``num_elements`` (default: the largest N) with inactive slots.

    Args:
        patches: per image ``(N_i, 3, 32, 32)`` float32 in [0, 1].
        boxes: per image ``(N_i, 4)`` float32 ``(cx, cy, w, h)``.
        active: per image ``(N_i,)`` bool.
        num_elements: pad to this N (must be >= every N_i).
    """
    b = len(boxes)
    n = max((len(x) for x in boxes), default=0) if num_elements is None else int(num_elements)
    out_p = np.zeros((b, n, 3, PATCH_SIZE, PATCH_SIZE), dtype=np.float32)
    out_b = np.zeros((b, n, 4), dtype=np.float32)
    out_a = np.zeros((b, n), dtype=bool)
    for i, (p, x, a) in enumerate(zip(patches, boxes, active)):
        k = len(x)
        if k > n:
            raise ValueError(f"image {i} has {k} elements, more than num_elements={n}")
        out_p[i, :k], out_b[i, :k], out_a[i, :k] = p, x, a
    return ElementBatch(torch.from_numpy(out_p), torch.from_numpy(out_b), torch.from_numpy(out_a))


def collate(elements: Sequence[ImageElements], num_elements: int | None = None) -> ElementBatch:
    """Batch several :class:`ImageElements` (boxes from ``el.centroids`` / ``el.sizes``, activity from ``el.active``)."""
    return pad_elements(
        [el.patches for el in elements],
        [token_boxes(el) for el in elements],
        [el.active for el in elements],
        num_elements,
    )


def tokens_from_embeddings(
    elements: Sequence[ImageElements],
    embeddings: Sequence[np.ndarray],
    num_freqs: int,
    *,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Element tokens from content vectors computed earlier (encode once, edit many; Sec. 3.2).

    Only the positional part is recomputed, from each set's *edited* boxes and activity.

    Args:
        elements: B element sets (their ``centroids``/``sizes``/``active`` are used, not their patches).
        embeddings: per set ``(N_i, C)`` float32 content vectors, row i = element i.
        num_freqs: F of the Fourier box embedding.

    Returns:
        ``tokens (B, N, C + P)``, ``content (B, N, C)`` in ``dtype`` on ``device`` and ``active (B, N)``
        bool on ``device``; N = the largest N_i, padding rows inactive and zero.
    """
    b, n = len(elements), max((el.num_elements for el in elements), default=0)
    width = embeddings[0].shape[1] if len(embeddings) else 0
    content = torch.zeros(b, n, width, dtype=torch.float32)
    boxes = torch.zeros(b, n, 4, dtype=torch.float32)
    active = torch.zeros(b, n, dtype=torch.bool)
    for i, (el, emb) in enumerate(zip(elements, embeddings)):
        if emb.shape != (el.num_elements, width):
            raise ValueError(
                f"element set {i}: embeddings {emb.shape} do not match {el.num_elements} elements of width {width}"
            )
        k = el.num_elements
        content[i, :k] = torch.from_numpy(np.asarray(emb, dtype=np.float32))
        boxes[i, :k] = torch.from_numpy(token_boxes(el))
        active[i, :k] = torch.from_numpy(el.active)
    content, boxes, active = content.to(device, dtype), boxes.to(device, dtype), active.to(device)
    return element_tokens(content, boxes, active, num_freqs), content, active


def element_tokens(content: torch.Tensor, boxes: torch.Tensor, active: torch.Tensor, num_freqs: int) -> torch.Tensor:
    """Element tokens ``concat(content, box_embedding(boxes))`` with inactive rows zeroed.

    Args:
        content: ``(B, N, C)`` content-encoder output (C = 32, App. C.1).
        boxes: ``(B, N, 4)`` ``(cx, cy, w, h)`` normalised canvas coordinates.
        active: ``(B, N)`` bool; False rows come out exactly zero (Sec. 3.3).
        num_freqs: F of the Fourier embedding.

    Returns:
        ``(B, N, C + P)`` in ``content``'s dtype, ``P = 4 · (1 + 2F)``.
    """
    pos = box_embedding(boxes.to(content.dtype), num_freqs)
    tokens = torch.cat([content, pos], dim=-1)
    return torch.where(active[..., None], tokens, torch.zeros((), dtype=tokens.dtype, device=tokens.device))
