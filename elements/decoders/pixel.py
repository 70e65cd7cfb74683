"""Pixel editing (App. A): copy each element's pixels to its current place and size.

The baseline "directly copies the image patches ... to the target location and resizes them
as desired". Each active element's source pixels (``labels == source_label`` in its source
image) are mapped by the element's map (:func:`elements.edit.transforms`), bilinearly, with a
Gaussian pre-filter when shrinking. Elements sharing a map are drawn from one warp; unedited
layers are drawn first, edited ones on top. Pixels that no active element covers are **holes**:
vacated source regions, deleted elements, the partition's dropped pixels, and cracks between
resized elements. They are set to :data:`HOLE_VALUE`.

Two resolutions:

* :func:`pixel_edit` works on the 512 canvas (the view's overlay and ``pixel+sdedit`` use it);
* :func:`render` works on the **output grid**, the input's decoded full resolution
  (``Source.full``): element masks are the canvas footprints upsampled (nearest, at output pixel
  centres), pixels are copied from the full-resolution sources, so an unedited region is the
  input exactly. The pixel decoders (``pixel``, ``pixel+inpaint``) return this.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import cv2
import numpy as np

from elements.decoders import Decoder, check_settings
from elements.decoders.result import DecodedImage
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


# --- full resolution (the decoders' output) ---------------------------------------------------------
def output_pixels(source) -> np.ndarray:
    """The pixels a source is copied from at full resolution: ``source.full`` (the decoded input),
    or, for elements saved without it, the canvas content box (canvas resolution)."""
    if source.full is not None:
        return source.full
    g = source.geometry
    return source.image[g.content_y : g.content_y + g.content_h, g.content_x : g.content_x + g.content_w]


@dataclass(frozen=True)
class RenderedLayer:
    """One layer (elements sharing a source and a map) on the output grid."""

    members: np.ndarray  # (M,) int64 element ids (active ones)
    edited: bool  # moved / resized / composed
    mask: np.ndarray  # (H, W) bool, the output pixels this layer covers (before later layers paint over it)
    pixels: np.ndarray  # (h, w, 3) uint8, the layer's source pixels (its full image or canvas content box)
    a: np.ndarray  # (2,) float64 (x, y): output-grid pixel = a * source pixel + b (continuous pixels)
    b: np.ndarray  # (2,) float64 (x, y)

    def warp(self, box=None) -> np.ndarray:
        """``(y1 - y0, x1 - x0, 3) uint8``: the layer's whole source mapped by its map, on the output-grid
        window ``box = (y0, y1, x0, x1)`` (default: the whole grid); warped on demand, not stored."""
        y0, y1, x0, x1 = box if box is not None else (0, *self.mask.shape[:1], 0, self.mask.shape[1])
        return _warp_affine(self.pixels, self.a, self.b - np.array([x0, y0], float), (y1 - y0, x1 - x0))

    @property
    def warped(self) -> np.ndarray:
        """``(H, W, 3) uint8``: :meth:`warp` on the whole grid."""
        return self.warp()


@dataclass(frozen=True)
class Rendered:
    """Pixel editing on the output grid: the input's decoded full resolution (``sources[0].full``).

    ``image (H, W, 3) uint8`` with holes = :data:`HOLE_VALUE`; ``holes (H, W) bool``; ``shown (H, W) int32``:
    index into ``layers`` of the layer shown at each pixel (-1 = hole); ``base_labels (H, W) int32``: the
    source-0 partition label at each output pixel before any edit (-1 = dropped); ``full_res``: False
    when source 0 carried no full image and the grid is the canvas content box; ``original (H, W, 3)
    uint8``: source 0's own pixels on the grid (the unedited input; a view, not a copy).
    """

    image: np.ndarray
    holes: np.ndarray
    shown: np.ndarray
    layers: list
    full_res: bool
    original: np.ndarray
    _labels0: np.ndarray  # (S, S) source 0's canvas labels
    _grid: tuple  # (scale (2,), offset (2,)): output-grid pixel = (canvas pixel - offset) * scale

    @functools.cached_property
    def base_labels(self) -> np.ndarray:
        """``(H, W) int32``: see the class docstring (sampled on first use)."""
        h, w = self.holes.shape
        return _sample(self._labels0.astype(np.int32), (1.0, 1.0, 0.0, 0.0), *self._grid, (0, h, 0, w), -1)

    @property
    def edited_cover(self) -> np.ndarray:
        """``(H, W) bool``: pixels shown by edited (moved, resized, composed) layers."""
        out = np.zeros(self.holes.shape, dtype=bool)
        for k, layer in enumerate(self.layers):
            if layer.edited:
                out |= self.shown == k
        return out


def _sample(canvas_map: np.ndarray, transform, grid_scale, grid_offset, box, fill) -> np.ndarray:
    """Nearest inverse lookup of a canvas map ``(S, S)`` (labels or a footprint; dtype kept) through
    ``transform`` at the centres of the output pixels in ``box = (y0, y1, x0, x1)``; ``fill`` outside it."""
    size = canvas_map.shape[0]
    sx, sy, tx, ty = (float(v) for v in transform)
    y0, y1, x0, x1 = box
    cx = (np.arange(x0, x1) + 0.5) / grid_scale[0] + grid_offset[0]  # canvas x of each output column
    cy = (np.arange(y0, y1) + 0.5) / grid_scale[1] + grid_offset[1]
    ix = np.floor((cx - tx) / sx).astype(np.int64)
    iy = np.floor((cy - ty) / sy).astype(np.int64)
    okx, oky = (ix >= 0) & (ix < size), (iy >= 0) & (iy < size)
    # columns first, then whole rows (one copy per output row): far faster than a 2-D fancy index
    out = np.take(canvas_map[:, np.clip(ix, 0, size - 1)], np.clip(iy, 0, size - 1), axis=0)
    if not okx.all():
        out[:, ~okx] = fill
    if not oky.all():
        out[~oky] = fill
    return out


def _footprint_box(footprint: np.ndarray, transform, grid_scale, grid_offset, shape):
    """The output-grid window ``(y0, y1, x0, x1)`` that holds a canvas ``footprint (S, S) bool`` mapped by
    ``transform`` (one pixel of slack each side), or None when it falls outside the grid."""
    rows, cols = np.flatnonzero(footprint.any(axis=1)), np.flatnonzero(footprint.any(axis=0))
    sx, sy, tx, ty = (float(v) for v in transform)
    xs = (np.array([cols[0], cols[-1] + 1]) * sx + tx - grid_offset[0]) * grid_scale[0]
    ys = (np.array([rows[0], rows[-1] + 1]) * sy + ty - grid_offset[1]) * grid_scale[1]
    h, w = shape
    x0, x1 = max(0, int(np.floor(xs.min())) - 1), min(w, int(np.ceil(xs.max())) + 1)
    y0, y1 = max(0, int(np.floor(ys.min())) - 1), min(h, int(np.ceil(ys.max())) + 1)
    return (y0, y1, x0, x1) if x0 < x1 and y0 < y1 else None


def _warp_affine(image: np.ndarray, a, b, shape) -> np.ndarray:
    """Map ``image`` by ``p_out = a * p_in + b`` per axis (continuous pixels) onto a ``shape`` grid; bilinear,
    Gaussian pre-filter when shrinking; an integer shift copies pixels exactly, and the identity returns
    ``image`` itself (read-only use)."""
    (ax, ay), (bx, by) = a, b
    h, w = shape
    if ax == 1.0 and ay == 1.0 and bx == 0.0 and by == 0.0 and image.shape[:2] == (h, w):
        return image
    src = image
    if ax < 1.0 or ay < 1.0:
        sig_x, sig_y = max(0.0, (1.0 / ax - 1.0) / 2.0), max(0.0, (1.0 / ay - 1.0) / 2.0)
        src = cv2.GaussianBlur(image, (0, 0), sigmaX=max(sig_x, 1e-3), sigmaY=max(sig_y, 1e-3))
    m = np.array([[ax, 0.0, bx + 0.5 * (ax - 1.0)], [0.0, ay, by + 0.5 * (ay - 1.0)]], dtype=np.float64)
    return cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def render(el: ImageElements, *, full_res: bool = True) -> Rendered:
    """Pixel editing at the input's full resolution (``full_res=False``: on the canvas content box).

    Element masks are the canvas footprints upsampled by nearest lookup at the output pixels' centres
    (so they agree with :func:`elements.edit.owner_map`), and pixels are copied from each source's full
    image by one bilinear warp per layer: an unedited layer reproduces the input exactly.
    """
    src0 = el.sources[0]
    full_res = full_res and src0.full is not None
    pix0 = output_pixels(src0) if full_res else output_pixels(dataclasses.replace(src0, full=None))
    shape = pix0.shape[:2]
    g0 = src0.geometry
    scale0 = np.array([shape[1] / g0.content_w, shape[0] / g0.content_h])
    off0 = g0.offset_xy
    image = np.full((*shape, 3), HOLE_VALUE, dtype=np.uint8)
    shown = np.full(shape, -1, dtype=np.int32)
    out_layers = []
    for layer in layers(el):
        src = el.sources[layer.source]
        act = layer.members[el.active[layer.members]]
        if act.size == 0:
            continue
        lut = np.zeros(int(src.labels.max(initial=-1)) + 2, dtype=bool)
        lut[el.source_label[act] + 1] = True
        footprint = lut[src.labels + 1]  # (S, S) on the source's canvas, before the layer's map
        box = _footprint_box(footprint, layer.transform, scale0, off0, shape) if footprint.any() else None
        if box is None:
            continue
        mask = np.zeros(shape, dtype=bool)
        mask[box[0] : box[1], box[2] : box[3]] = _sample(footprint, layer.transform, scale0, off0, box, False)
        if not mask.any():
            continue
        pix = output_pixels(src) if full_res else output_pixels(dataclasses.replace(src, full=None))
        scale_k = np.array([pix.shape[1] / src.geometry.content_w, pix.shape[0] / src.geometry.content_h])
        s, t = np.asarray(layer.transform[:2], float), np.asarray(layer.transform[2:], float)
        a = scale0 * s / scale_k
        b = scale0 * (s * src.geometry.offset_xy + t - off0)
        layer_out = RenderedLayer(act, bool(el.edited[act].any()), mask, pix, a, b)
        y0, y1, x0, x1 = box  # only the window the layer covers is warped and painted
        np.copyto(image[y0:y1, x0:x1], layer_out.warp(box), where=mask[y0:y1, x0:x1, None])
        np.copyto(shown[y0:y1, x0:x1], len(out_layers), where=mask[y0:y1, x0:x1])
        out_layers.append(layer_out)
    return Rendered(image, shown < 0, shown, out_layers, full_res, pix0, src0.labels, (scale0, off0))


def to_input_size(image: np.ndarray, el: ImageElements) -> np.ndarray:
    """Resize an output-grid image to the input's true size (only differs for inputs decoded smaller)."""
    g = el.geometry
    if image.shape[:2] == (g.input_h, g.input_w):
        return image
    interp = cv2.INTER_AREA if g.input_w < image.shape[1] else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(image), (g.input_w, g.input_h), interpolation=interp)


def grid_to_canvas(image: np.ndarray, el: ImageElements, fill: int = HOLE_VALUE) -> np.ndarray:
    """An output-grid image ``(H, W, 3)`` on the ``(S, S, 3)`` canvas (content box resized, padding = ``fill``)."""
    g = el.geometry
    canvas = np.full((g.size, g.size, 3), fill, dtype=np.uint8)
    if image.shape[:2] == (g.content_h, g.content_w):
        small = image
    else:
        interp = cv2.INTER_AREA if g.content_w < image.shape[1] else cv2.INTER_CUBIC
        small = cv2.resize(np.ascontiguousarray(image), (g.content_w, g.content_h), interpolation=interp)
    canvas[g.content_y : g.content_y + g.content_h, g.content_x : g.content_x + g.content_w] = small
    return canvas


class FullResDecoder(Decoder):
    """A decoder that renders on the output grid (full resolution) instead of the 512 canvas.

    Subclasses implement :meth:`decode_grid`; :meth:`__call__` returns a
    :class:`~elements.decoders.result.DecodedImage` at the input's size naming what ran.
    ``full_res=False`` (a constructor option) works on the canvas content box and upsamples, as the
    paper's 512-px baselines do (e.g. for a reconstruction benchmark at 512).
    """

    full_res: bool = True

    def decode_grid(self, el: ImageElements, *, full_res: bool, prompt, seed, steps, guidance, progress):
        """Returns ``(image (H, W, 3) uint8 on the output grid, ran: str, note: str)``."""
        raise NotImplementedError

    def decode_canvas(self, el, *, prompt, seed, steps, guidance, progress) -> np.ndarray:
        image, _, _ = self.decode_grid(
            el, full_res=False, prompt=prompt, seed=seed, steps=steps, guidance=guidance, progress=progress
        )
        return grid_to_canvas(image, el)

    def __call__(
        self,
        el: ImageElements,
        *,
        prompt: str = "",
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        progress=None,
    ) -> DecodedImage:
        """Decode ``el`` to ``(H_in, W_in, 3) uint8`` at the input's size, copied at full resolution."""
        seed, steps, guidance = check_settings(seed=seed, steps=steps, guidance=guidance)
        image, ran, note = self.decode_grid(
            el,
            full_res=self.full_res,
            prompt=prompt or "",
            seed=seed,
            steps=steps,
            guidance=guidance,
            progress=progress,
        )
        return DecodedImage(to_input_size(image, el), ran, note)


class PixelDecoder(FullResDecoder):
    """``pixel``: App. A's pixel editing; vacated regions stay black."""

    name = "pixel"

    def __init__(self, *, full_res: bool = True) -> None:
        self.full_res = bool(full_res)

    @classmethod
    def availability(cls, **options) -> tuple[bool, str]:
        return True, "always available (no weights)"

    def describe(self) -> str:
        return "pixel: pixel editing (App. A), copies element pixels to their edited place at full resolution; holes left black"

    def decode_grid(self, el, *, full_res, prompt, seed, steps, guidance, progress):
        r = render(el, full_res=full_res)
        h, w = r.holes.shape
        why = "no full-resolution pixels saved" if full_res else "full_res=False"
        where = f"at full resolution ({w}x{h})" if r.full_res else f"at canvas resolution ({w}x{h}; {why})"
        return r.image, "pixel", f"pixels copied {where}"
