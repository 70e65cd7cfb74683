"""Pixel value conversions between model outputs and images, defined once.

Models and pipelines produce float images in ``[0, 1]`` (diffusers' ``output_type="np"``) or
``[-1, 1]`` (the light decoder, the VAE's range); files and the UI hold ``uint8`` in [0, 255].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported only when a tensor is given, so CPU pixel paths stay torch-free
    import torch

UNIT = (0.0, 1.0)  # diffusers "np"/"pil" post-processed images
SIGNED = (-1.0, 1.0)  # VAE / light-decoder range, SD training convention


def to_uint8(image: np.ndarray | torch.Tensor, value_range: tuple[float, float] = UNIT) -> np.ndarray | torch.Tensor:
    """Float pixels in ``value_range`` -> uint8 [0, 255]: scale, round half to even, clip.

    Works on any shape; a NumPy array gives a NumPy array, a tensor a tensor on its device.
    """
    lo, hi = value_range
    scale = 255.0 / (hi - lo)
    if _is_tensor(image):
        import torch

        return ((image.float() - lo) * scale).round().clamp(0, 255).to(torch.uint8)
    arr = np.asarray(image, dtype=np.float32)
    return np.clip(np.rint((arr - lo) * scale), 0, 255).astype(np.uint8)


def from_uint8(image: np.ndarray | torch.Tensor, value_range: tuple[float, float] = SIGNED) -> torch.Tensor:
    """uint8 [0, 255] pixels -> float32 tensor in ``value_range`` (the inverse of :func:`to_uint8`)."""
    import torch

    lo, hi = value_range
    if _is_tensor(image):
        t = image
    else:
        arr = np.asarray(image)
        t = torch.from_numpy(arr if arr.flags.writeable else arr.copy())  # read-only arrays (PIL views) are copied
    return t.float() / (255.0 / (hi - lo)) + lo


def _is_tensor(x) -> bool:
    return type(x).__module__.split(".", 1)[0] == "torch"


__all__ = ["SIGNED", "UNIT", "from_uint8", "to_uint8"]
