"""segment-anything's model classes and SAM's input transform, without torchvision.

segment-anything's package ``__init__`` imports its predictor and automatic mask generator, and
through them torchvision: 164 MB of resident memory that partitioning never uses (docs/sam.md,
"Memory"). :func:`sam_modeling` imports the model classes without that ``__init__``;
:class:`LongestSide` is ``ResizeLongestSide`` without torchvision.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading

import numpy as np

from elements.errors import UserError

_IMPORT_LOCK = threading.Lock()


def sam_modeling():
    """``segment_anything.modeling`` (Sam, MaskDecoder, PromptEncoder, ...), imported without the package ``__init__``.

    When segment-anything is not imported yet, its package is put in ``sys.modules`` unexecuted
    while ``modeling`` (which imports only its own siblings) loads, then taken out again, so a
    later ``import segment_anything`` (SamPredictor, the ViT checkpoints, training masks) runs the
    real ``__init__`` and reuses this ``modeling`` module.
    """
    with _IMPORT_LOCK:
        if "segment_anything" in sys.modules or "segment_anything.modeling" in sys.modules:
            return importlib.import_module("segment_anything.modeling")
        spec = importlib.util.find_spec("segment_anything")
        if spec is None:
            raise UserError("segment-anything is not installed; pip install -r requirements.txt.")
        sys.modules["segment_anything"] = importlib.util.module_from_spec(spec)
        try:
            return importlib.import_module("segment_anything.modeling")
        finally:
            del sys.modules["segment_anything"]


class LongestSide:
    """segment-anything's ``ResizeLongestSide`` (``utils/transforms.py``) for numpy inputs, without torchvision.

    The same arithmetic and the same resize (``torchvision.transforms.functional.resize`` of a PIL
    image is Pillow's bilinear ``Image.resize``); ``tests/test_partition.py`` checks the two agree.
    ``original_size`` is ``(H, W)``; coordinates are ``(x, y)`` pixels, boxes ``(x0, y0, x1, y1)``.
    """

    def __init__(self, target_length: int) -> None:
        self.target_length = target_length

    @staticmethod
    def get_preprocess_shape(oldh: int, oldw: int, long_side_length: int) -> tuple[int, int]:
        scale = long_side_length * 1.0 / max(oldh, oldw)
        return int(oldh * scale + 0.5), int(oldw * scale + 0.5)

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3) uint8`` -> the same resized so that its long side is ``target_length``."""
        from PIL import Image

        h, w = self.get_preprocess_shape(image.shape[0], image.shape[1], self.target_length)
        return np.array(Image.fromarray(image).resize((w, h), Image.BILINEAR))

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
        """``(..., 2)`` (x, y) in ``original_size`` pixels -> the same in the resized image."""
        old_h, old_w = original_size
        new_h, new_w = self.get_preprocess_shape(old_h, old_w, self.target_length)
        coords = np.array(coords, dtype=float)
        coords[..., 0] = coords[..., 0] * (new_w / old_w)
        coords[..., 1] = coords[..., 1] * (new_h / old_h)
        return coords

    def apply_boxes(self, boxes: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
        """``(B, 4)`` boxes -> the same in the resized image."""
        return self.apply_coords(np.asarray(boxes).reshape(-1, 2, 2), original_size).reshape(-1, 4)


__all__ = ["LongestSide", "sam_modeling"]
