"""Pixel editing (App. A): copy each element's pixels to its current place and size.

The baseline "directly copies the image patches ... to the target location and resizes them
as desired". Each active element's source pixels (``labels == source_label`` in its source
image) are mapped by the element's map (:func:`elements.edit.transforms`), bilinearly, with a
Gaussian pre-filter when shrinking. Elements sharing a map are drawn from one warp; unedited
layers are drawn first, edited ones on top. Canvas pixels in the content box that no active
element covers are **holes**: vacated source regions, deleted elements, the partition's
dropped pixels, and cracks between resized elements. They are set to :data:`HOLE_VALUE`.
"""

from __future__ import annotations

import cv2
import numpy as np

from elements.decoders import Decoder
from elements.edit import layer_masks, layers
from elements.types import ImageElements

HOLE_VALUE = 0  # black: what "left empty" means in App. A's pixel editing


def warp_image(image: np.ndarray, transform) -> np.ndarray:
    """Map ``image (S, S, 3) uint8`` by ``(sx, sy, tx, ty)`` (``p_now = s * p_src + t``, continuous pixels).

    Bilinear; when shrinking, a Gaussian with sigma = (1/s - 1)/2 per axis suppresses aliasing.
    Pure integer translations copy pixels exactly.
    """
    sx, sy, tx, ty = (float(v) for v in transform)
    if sx == 1.0 and sy == 1.0 and tx == 0.0 and ty == 0.0:
        return image.copy()
    src = image
    if sx < 1.0 or sy < 1.0:
        sig_x = max(0.0, (1.0 / sx - 1.0) / 2.0)
        sig_y = max(0.0, (1.0 / sy - 1.0) / 2.0)
        src = cv2.GaussianBlur(image, (0, 0), sigmaX=max(sig_x, 1e-3), sigmaY=max(sig_y, 1e-3))
    # continuous p' = s p + t  <=>  index i' = s i + (t + (s - 1) / 2)  (pixel centres at integers)
    m = np.array([[sx, 0.0, tx + 0.5 * (sx - 1.0)], [0.0, sy, ty + 0.5 * (sy - 1.0)]], dtype=np.float64)
    size = image.shape[0]
    return cv2.warpAffine(src, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def pixel_edit(el: ImageElements) -> tuple[np.ndarray, np.ndarray]:
    """Pixel editing on the canvas.

    Returns ``image (S, S, 3) uint8`` (holes and letterbox padding = :data:`HOLE_VALUE`) and
    ``holes (S, S) bool`` (True on content-box pixels no active element covers).
    """
    s = el.size
    out = np.full((s, s, 3), HOLE_VALUE, dtype=np.uint8)
    covered = np.zeros((s, s), dtype=bool)
    for layer in layers(el):
        mask = layer_masks(layer, el)
        if not mask.any():
            continue
        warped = warp_image(el.sources[layer.source].image, layer.transform)
        out[mask] = warped[mask]
        covered |= mask
    holes = el.geometry.content_mask() & ~covered
    return out, holes


class PixelDecoder(Decoder):
    """``pixel``: App. A's pixel editing; vacated regions stay black."""

    name = "pixel"

    @classmethod
    def availability(cls, **options) -> tuple[bool, str]:
        return True, "always available (no weights)"

    def describe(self) -> str:
        return "pixel: pixel editing (App. A), copies element pixels to their edited place; holes left black"

    def decode_canvas(self, el, *, prompt, seed, steps, guidance, progress) -> np.ndarray:
        return pixel_edit(el)[0]
