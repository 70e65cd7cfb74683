"""Element dropout for stage 2 (Sec. 3.3): random object masks and the elements they knock out.

The paper overlays "a random object mask" (from a database of Semantic-SAM masks) on the
training image and drops the image elements that overlap it; with **random partition** the
elements are first re-cut along the partition of *another* image, so that the hole's outline
never follows this image's own element boundaries. Here:

* :class:`ObjectMaskSampler` draws masks: from SAM automatic masks when a SAM model is given
  (kept in a bank, so a mask usually comes from an earlier image, like the paper's database),
  otherwise from random blobs (thresholded smooth noise) or random star-shaped polygons.
* :func:`drop_overlapping` deactivates the elements that overlap a mask.
* :class:`ElementDropout` puts the two together per training sample (random partition on or off).
* :class:`ElementDropoutDataset` applies it inside the data workers, after the partition.

All masks are ``(S, S) bool`` canvas masks, True = covered.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np
from segment_anything import SamAutomaticMaskGenerator
from torch.utils.data import get_worker_info

from elements.data.dataset import ElementsDataset
from elements.errors import UserError
from elements.partition import random_partition
from elements.partition.sam import load_sam
from elements.types import ImageElements

MIN_AREA = 0.02  # mask area bounds, fractions of the canvas: object-sized holes, never the whole image
MAX_AREA = 0.5


def random_blob_mask(
    size: int, rng: np.random.Generator, *, min_area: float = MIN_AREA, max_area: float = MAX_AREA
) -> np.ndarray:
    """One connected blob: smoothed white noise thresholded at the quantile that gives a random area."""
    target = rng.uniform(min_area, max_area)
    low = max(4, size // 16)
    noise = cv2.resize(rng.standard_normal((low, low)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=size / 32)
    mask = noise > np.quantile(noise, 1.0 - target)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=4)
    if n > 1:  # keep the largest piece: an object is one region
        mask = comp == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return mask


def random_polygon_mask(
    size: int, rng: np.random.Generator, *, min_area: float = MIN_AREA, max_area: float = MAX_AREA
) -> np.ndarray:
    """A star-shaped polygon (random radii around a random centre) of roughly random area."""
    area = rng.uniform(min_area, max_area) * size * size
    k = int(rng.integers(5, 13))
    # jittered even angles: every gap < π, so the centre is inside and the polygon is a simple star
    angles = (np.arange(k) + rng.uniform(-0.3, 0.3, k)) * (2 * np.pi / k) + rng.uniform(0, 2 * np.pi)
    radii = rng.uniform(0.5, 1.0, k)
    x, y = radii * np.cos(angles), radii * np.sin(angles)
    unit = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))  # shoelace area at unit scale
    scale = np.sqrt(area / unit)
    centre = rng.uniform(0.2, 0.8, 2) * size
    pts = np.stack([centre[0] + scale * x, centre[1] + scale * y], axis=1)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask.astype(bool)


class ObjectMaskSampler:
    """Random object masks, from SAM when available.

    Args:
        sam: a segment-anything ``Sam`` model, or ``None`` for synthetic blob/polygon masks.
        rng: numpy generator (seed it per worker for reproducible training).
        points_per_side: SAM automatic-mask grid (8² prompts: cheap, object-level masks).
        bank_size: SAM masks kept from recent images; a draw picks any of them.
        refresh_prob: chance that a draw first runs SAM on the current image (always while the
            bank is empty); SAM on every sample would dominate a data worker's time.
    """

    def __init__(
        self,
        sam=None,
        *,
        rng: np.random.Generator,
        min_area: float = MIN_AREA,
        max_area: float = MAX_AREA,
        points_per_side: int = 8,
        bank_size: int = 256,
        refresh_prob: float = 0.1,
        **sam_kwargs,
    ) -> None:
        self.rng, self.min_area, self.max_area = rng, float(min_area), float(max_area)
        self.refresh_prob = float(refresh_prob)
        self.generator = None
        if sam is not None:
            self.generator = SamAutomaticMaskGenerator(sam, points_per_side=points_per_side, **sam_kwargs)
        self.bank: deque[np.ndarray] = deque(maxlen=bank_size)

    @property
    def source(self) -> str:
        return "sam" if self.generator is not None else "random"

    def add_image(self, canvas: np.ndarray) -> int:
        """Run SAM on a ``(S, S, 3) uint8`` canvas and bank its object-sized masks; returns how many were kept."""
        if self.generator is None:
            return 0
        s = canvas.shape[0] * canvas.shape[1]
        kept = 0
        for m in self.generator.generate(canvas):
            if self.min_area <= m["area"] / s <= self.max_area:
                self.bank.append(np.asarray(m["segmentation"], dtype=bool))
                kept += 1
        return kept

    def __call__(self, canvas: np.ndarray) -> np.ndarray:
        """A ``(S, S) bool`` object mask for this canvas (SAM bank if it has masks of this size, else synthetic)."""
        size = canvas.shape[0]
        if self.generator is not None and (not self.bank or self.rng.random() < self.refresh_prob):
            self.add_image(canvas)
        fitting = [m for m in self.bank if m.shape == (size, size)]
        if fitting:
            return fitting[int(self.rng.integers(len(fitting)))]
        make = random_blob_mask if self.rng.random() < 0.5 else random_polygon_mask
        return make(size, self.rng, min_area=self.min_area, max_area=self.max_area)


def drop_overlapping(el: ImageElements, mask: np.ndarray) -> ImageElements:
    """Deactivate the elements of ``el`` (cut from ``sources[0]``) that share at least one pixel with ``mask``."""
    hit = np.unique(el.labels[mask & (el.labels >= 0)])
    drop = (el.source_index == 0) & np.isin(el.source_label, hit)
    return el.replace(active=el.active & ~drop)


class ElementDropout:
    """Per-sample element dropout of stage 2 (Sec. 3.3).

    With probability ``prob`` a sample's elements are re-cut along the partition of the previous
    image this worker saw (``random_partition=True``; the flipped own partition for the very first
    image) and those overlapping a random object mask are dropped. Otherwise, or for the
    ``--no-random-partition`` ablation, the image keeps its own partition (the ablation still
    drops the masked elements, as the paper's Semantic-SAM baseline does).

    Call as ``dropout(el, canvas) -> ImageElements``; the training target stays the full image.
    """

    def __init__(self, masks: ObjectMaskSampler, *, prob: float, random_partition: bool = True) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"element dropout probability must lie in [0, 1], got {prob}")
        self.masks, self.prob, self.random_partition = masks, float(prob), bool(random_partition)
        self.donor: np.ndarray | None = None
        self.applied = 0
        self.seen = 0

    def __call__(self, el: ImageElements, canvas: np.ndarray) -> ImageElements:
        own = el.labels
        self.seen += 1
        out = el
        if self.masks.rng.random() < self.prob:
            self.applied += 1
            if self.random_partition:
                donor = self.donor if self.donor is not None and self.donor.shape == own.shape else own[::-1, ::-1].T
                out = random_partition(canvas, donor)
            out = drop_overlapping(out, self.masks(canvas))
        self.donor = own.copy()
        return out


class ElementDropoutDataset(ElementsDataset):
    """:class:`~elements.data.dataset.ElementsDataset` whose elements pass through :class:`ElementDropout`.

    The target ``pixel_values`` stay the full image. Masks come from SAM (``mask_source="sam"``,
    or ``"auto"`` when a checkpoint can be had) or are synthetic (``"random"``). The SAM model and
    the per-worker RNG (seeded by seed, rank, worker and epoch) are built lazily in each worker.
    """

    def __init__(
        self,
        source,
        *,
        dropout_prob: float,
        random_partition: bool = True,
        mask_source: str = "auto",
        sam_checkpoint: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(source, **kwargs)
        if mask_source not in ("auto", "sam", "random"):
            raise ValueError(f"mask_source must be auto, sam or random, got {mask_source!r}")
        self.dropout_prob, self.random_partition = float(dropout_prob), bool(random_partition)
        self.mask_source, self.sam_checkpoint = mask_source, sam_checkpoint
        self.mask_note = ""
        self._dropper: ElementDropout | None = None

    @property
    def builds_models(self) -> bool:
        """SAM object masks load a model in the workers, as a SAM partition does."""
        return super().builds_models or self.mask_source in ("sam", "auto")

    def _elements_of(self, sample):
        """The sample's elements (stored or partitioned, :class:`~elements.data.dataset.SampleElements`), then
        element dropout; the dropout state (RNG, donor partition) is made once per worker."""
        canvas, el = super()._elements_of(sample)
        if self._dropper is None:
            self._dropper = self._dropout()
        return canvas, self._dropper(el, canvas)

    def _dropout(self) -> ElementDropout:
        info = get_worker_info()
        rng = np.random.default_rng([self.seed, self.rank, info.id if info is not None else 0, self.epoch])
        sam = None
        if self.mask_source in ("sam", "auto"):
            try:
                sam = load_sam(self.sam_checkpoint)
            except UserError as err:
                if self.mask_source == "sam":
                    raise
                self.mask_note = f"random blob/polygon masks ({err})"
        return ElementDropout(
            ObjectMaskSampler(sam, rng=rng), prob=self.dropout_prob, random_partition=self.random_partition
        )
