"""The letterbox mapping between an input image and the 512×512 working canvas.

The paper works at H × W = 512 × 512 (Sec. 3.1). Inputs of another shape are never distorted:
the image is scaled so that its longer side is 512 and centred on the canvas, and the rest of
the canvas is padding that belongs to no element. Every output is cropped back to the content
box and resized to the input's size, so it has the input's aspect ratio.

Coordinate conventions (used throughout the package):

* **input pixels** — pixels of the user's image, origin top-left, x right, y down; what any
  file or spec a user sees contains. A pixel's centre is at (i + 0.5, j + 0.5).
* **working pixels** — the same on the 512×512 canvas.
* **normalised** — working pixels divided by the canvas side, so the canvas is [0, 1]².
  This is what :class:`~elements.types.ImageElements` stores internally.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

WORKING_SIZE = 512  # H = W = 512, Sec. 3.1


@dataclass(frozen=True)
class Geometry:
    """Where an ``input_w × input_h`` image sits on the ``size × size`` canvas.

    ``content_*`` is the box (in working pixels, integer) that holds the scaled image; the scale
    per axis is ``content_w / input_w`` and ``content_h / input_h`` (equal up to rounding).
    """

    input_w: int
    input_h: int
    size: int
    content_x: int
    content_y: int
    content_w: int
    content_h: int

    @classmethod
    def fit(cls, input_w: int, input_h: int, size: int = WORKING_SIZE) -> Geometry:
        """Letterbox an ``input_w × input_h`` image into a ``size``² canvas, centred."""
        if input_w <= 0 or input_h <= 0:
            raise ValueError("image size must be positive")
        scale = size / max(input_w, input_h)
        cw = max(1, min(size, round(input_w * scale)))
        ch = max(1, min(size, round(input_h * scale)))
        return cls(input_w, input_h, size, (size - cw) // 2, (size - ch) // 2, cw, ch)

    # --- scales -------------------------------------------------------------------------
    @property
    def scale_xy(self) -> np.ndarray:
        """Working pixels per input pixel, ``(2,) float64`` as (sx, sy)."""
        return np.array([self.content_w / self.input_w, self.content_h / self.input_h])

    @property
    def offset_xy(self) -> np.ndarray:
        return np.array([self.content_x, self.content_y], dtype=np.float64)

    @property
    def is_square(self) -> bool:
        return self.content_w == self.size and self.content_h == self.size

    # --- point and size mapping ---------------------------------------------------------
    def input_to_norm(self, xy) -> np.ndarray:
        """Input-pixel points ``(..., 2)`` (x, y) -> normalised canvas coordinates ``(..., 2)``."""
        xy = np.asarray(xy, dtype=np.float64)
        return (xy * self.scale_xy + self.offset_xy) / self.size

    def norm_to_input(self, xy) -> np.ndarray:
        """Normalised canvas points ``(..., 2)`` -> input pixels ``(..., 2)``."""
        xy = np.asarray(xy, dtype=np.float64)
        return (xy * self.size - self.offset_xy) / self.scale_xy

    def input_to_norm_size(self, wh) -> np.ndarray:
        """Input-pixel lengths ``(..., 2)`` (w, h) -> normalised lengths."""
        return np.asarray(wh, dtype=np.float64) * self.scale_xy / self.size

    def norm_to_input_size(self, wh) -> np.ndarray:
        return np.asarray(wh, dtype=np.float64) * self.size / self.scale_xy

    def content_mask(self) -> np.ndarray:
        """``(size, size) bool``: True on canvas pixels that hold the image, False on padding."""
        m = np.zeros((self.size, self.size), dtype=bool)
        m[self.content_y : self.content_y + self.content_h, self.content_x : self.content_x + self.content_w] = True
        return m

    def content_box_norm(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the content box in normalised coordinates."""
        s = self.size
        return (
            self.content_x / s,
            self.content_y / s,
            (self.content_x + self.content_w) / s,
            (self.content_y + self.content_h) / s,
        )

    # --- image mapping ------------------------------------------------------------------
    def to_canvas(self, image: np.ndarray, fill: int = 0) -> np.ndarray:
        """Input image ``(H_in, W_in, 3) uint8`` -> canvas ``(size, size, 3) uint8`` (bicubic, area when shrinking)."""
        import cv2

        interp = cv2.INTER_AREA if self.content_w < self.input_w else cv2.INTER_CUBIC
        scaled = cv2.resize(image, (self.content_w, self.content_h), interpolation=interp)
        canvas = np.full((self.size, self.size, 3), fill, dtype=np.uint8)
        canvas[self.content_y : self.content_y + self.content_h, self.content_x : self.content_x + self.content_w] = (
            scaled
        )
        return canvas

    def from_canvas(self, canvas: np.ndarray) -> np.ndarray:
        """Canvas image ``(size, size, C)`` -> input-size image ``(H_in, W_in, C)``, same dtype (bicubic)."""
        import cv2

        crop = canvas[
            self.content_y : self.content_y + self.content_h, self.content_x : self.content_x + self.content_w
        ]
        interp = cv2.INTER_AREA if self.input_w < self.content_w else cv2.INTER_CUBIC
        out = cv2.resize(np.ascontiguousarray(crop), (self.input_w, self.input_h), interpolation=interp)
        return out.reshape(self.input_h, self.input_w, *canvas.shape[2:])

    def input_pixel_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Canvas row and column of each input pixel's centre: ``ys (input_h,)``, ``xs (input_w,)`` int64."""
        xs = ((np.arange(self.input_w) + 0.5) * self.scale_xy[0] + self.content_x).astype(np.int64)
        ys = ((np.arange(self.input_h) + 0.5) * self.scale_xy[1] + self.content_y).astype(np.int64)
        return np.clip(ys, 0, self.size - 1), np.clip(xs, 0, self.size - 1)

    def labels_to_input(self, labels: np.ndarray) -> np.ndarray:
        """Canvas label map ``(size, size) int`` -> input-size map by nearest neighbour (pixel centres)."""
        ys, xs = self.input_pixel_index()
        return np.take(labels[:, xs], ys, axis=0)  # columns first, then whole rows: one copy per output row

    # --- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Geometry:
        g = cls(**{k: int(d[k]) for k in cls.__dataclass_fields__})
        g.validate()
        return g

    def validate(self) -> None:
        ok = (
            self.input_w > 0
            and self.input_h > 0
            and self.size > 0
            and 0 <= self.content_x
            and 0 <= self.content_y
            and 0 < self.content_w
            and 0 < self.content_h
            and self.content_x + self.content_w <= self.size
            and self.content_y + self.content_h <= self.size
        )
        if not ok:
            raise ValueError(f"inconsistent geometry {json.dumps(self.to_dict())}")
