"""Fourier-feature positional embeddings of element boxes and of the decoder's query grid.

An element's spatial information is its box ``p_n = (x, y, w, h)`` (Sec. 3.2): centroid and
bounding-box size in normalised canvas coordinates. The content encoder never sees it (patches
are resized to 32 × 32), so it is added back as a positional embedding and concatenated to the
content vector to form the element token (App. C.1, Fig. 13).

We use NeRF-style Fourier features: for every scalar ``v`` the embedding holds ``v`` itself and
``sin(2^k π v), cos(2^k π v)`` for ``k = 0 .. F-1``. For a ``D``-dimensional input that is
``D · (1 + 2F)`` numbers; the lowest frequency has period 2, so every value in [0, 1] (and a
moved element's centroid slightly outside it) maps to a distinct embedding, and the highest
frequency resolves ``2^-F`` of the canvas (F = 8 → 2 px at 512).
"""

from __future__ import annotations

import math

import torch


def fourier_dim(num_dims: int, num_freqs: int) -> int:
    """Width of :func:`fourier_features` for ``num_dims`` inputs: ``num_dims · (1 + 2 · num_freqs)``."""
    return num_dims * (1 + 2 * num_freqs)


def fourier_features(x: torch.Tensor, num_freqs: int) -> torch.Tensor:
    """Fourier features of the last axis.

    Args:
        x: ``(..., D)`` float, any range (normalised coordinates in this package).
        num_freqs: F, number of octaves (frequencies ``2^k π``, k < F).

    Returns:
        ``(..., D · (1 + 2F))`` same dtype as ``x``, laid out as ``[x, sin(x·f_0..f_{F-1}) per dim,
        cos(...) per dim]``; values of the sin/cos part lie in [-1, 1].
    """
    if num_freqs < 0:
        raise ValueError("num_freqs must be >= 0")
    freqs = math.pi * (2.0 ** torch.arange(num_freqs, device=x.device, dtype=torch.float32))  # (F,)
    angles = (x.float()[..., :, None] * freqs).flatten(-2)  # (..., D·F)
    out = torch.cat([x.float(), torch.sin(angles), torch.cos(angles)], dim=-1)
    return out.to(x.dtype)


def box_embedding_dim(num_freqs: int) -> int:
    """P, the width of :func:`box_embedding`: ``4 · (1 + 2 · num_freqs)`` (68 for F = 8)."""
    return fourier_dim(4, num_freqs)


def box_embedding(boxes: torch.Tensor, num_freqs: int) -> torch.Tensor:
    """Positional embedding of element boxes.

    Args:
        boxes: ``(B, N, 4)`` float, ``(cx, cy, w, h)`` in normalised canvas coordinates
            (centroid in [0, 1] before edits, may leave it after a move; sizes > 0).
        num_freqs: F.

    Returns:
        ``(B, N, P)`` with ``P = 4 · (1 + 2F)`` (see :func:`box_embedding_dim`).
    """
    if boxes.shape[-1] != 4:
        raise ValueError(f"boxes must end in 4 numbers (cx, cy, w, h), got shape {tuple(boxes.shape)}")
    return fourier_features(boxes, num_freqs)


def grid_coordinates(grid_size: int, device=None) -> torch.Tensor:
    """Centres of a ``grid_size × grid_size`` grid of cells: ``(grid_size², 2)`` float32 (x, y) in (0, 1).

    Row-major (y outer, x inner), matching the decoder's un-patchify order.
    """
    c = (torch.arange(grid_size, dtype=torch.float32, device=device) + 0.5) / grid_size
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=-1)
