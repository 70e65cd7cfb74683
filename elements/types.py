"""``ImageElements``: the value that partition, encoding, editing and decoding pass around.

It is immutable in spirit: edit functions return a new value (``dataclasses.replace`` plus
copied arrays) and never modify their input, so undo is a list of values.

Shapes and conventions (N = number of elements, S = canvas side, 512 by default):

* ``sources``: the images elements were cut from. ``sources[0]`` is the image being edited;
  composition (Sec. 4.3) appends the other image. Each :class:`Source` holds the canvas
  ``image (S, S, 3) uint8``, its partition ``labels (S, S) int32`` (-1 = dropped or padding,
  else the element's id *within that source*) and its :class:`~elements.geometry.Geometry`.
* ``centroids (N, 2) float32`` — element centroid (x, y), normalised canvas coordinates [0, 1]
  (may leave [0, 1] after a move; see ``elements.edit``).
* ``sizes (N, 2) float32`` — bounding-box (w, h), normalised; > 0.
* ``areas (N,) int64`` — pixel count of the element in its source, at canvas resolution.
* ``patches (N, 3, 32, 32) float32`` in [0, 1] — the element's masked bounding-box crop
  (pixels of other elements zeroed) resized to 32 × 32 (App. C.1).
* ``source_index (N,) int32`` — which source each element comes from.
* ``source_label (N,) int32`` — the element's label value in that source's ``labels``.
* ``active (N,) bool`` — False once deleted (Sec. 3.3 zeroes its token; N is kept).
* ``edited (N,) bool`` — moved/resized/composed since partition (the UI's green dots).
* ``embeddings (N, D) float32 | None`` — content-encoder output, D = 32 (App. C.1).
* ``meta``: JSON-able dict (backend name and parameters, dropped fraction, ...).

The *original* centroid and size of an element are those computed from its source
labels; they are kept in ``source_centroids`` / ``source_sizes`` so that pixel editing
knows where to copy from.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from elements.atomic import atomic_write, write_text
from elements.geometry import Geometry

PATCH_SIZE = 32  # masked patches are resized to 32×32 before the content encoder, App. C.1
FORMAT_VERSION = 1
#: The per-element ``(N, ...)`` array fields of :class:`ImageElements` (``embeddings`` aside: it may be None).
ARRAY_FIELDS = (
    "centroids",
    "sizes",
    "areas",
    "patches",
    "source_index",
    "source_label",
    "source_centroids",
    "source_sizes",
    "active",
    "edited",
)


@dataclass(frozen=True)
class Source:
    """One image that elements were cut from, on the working canvas."""

    image: np.ndarray  # (S, S, 3) uint8
    labels: np.ndarray  # (S, S) int32, -1 = dropped/padding
    geometry: Geometry
    #: (h, w, 3) uint8: the input's pixels as decoded (its aspect ratio, at most image_io.MAX_DECODED_SIDE
    #: on the long side); the pixel decoders copy from it at full resolution. None = only the canvas is kept.
    full: np.ndarray | None = None

    @functools.cached_property
    def label_boxes(self) -> np.ndarray:
        """``(L, 4) int64`` bounding box (y0, y1, x0, x1), end-exclusive, of each label 0..L-1 of ``labels``.

        A label with no pixel has y0 > y1. Computed once per source and kept on it (labels are never
        modified): the collision rule asks for it on every edit, and a value owns its cache, so no
        cache is shared between threads or outlives its source.
        """
        from scipy import ndimage

        objs = ndimage.find_objects(self.labels.astype(np.int64) + 1)
        boxes = [[o[0].start, o[0].stop, o[1].start, o[1].stop] if o is not None else [1, 0, 1, 0] for o in objs]
        return np.array(boxes, dtype=np.int64).reshape(-1, 4)

    def validate(self) -> None:
        s = self.geometry.size
        if self.image.shape != (s, s, 3) or self.image.dtype != np.uint8:
            raise ValueError(f"source image must be ({s}, {s}, 3) uint8, got {self.image.shape} {self.image.dtype}")
        if self.full is not None:
            f, g = self.full, self.geometry
            if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8 or min(f.shape[:2]) < 1:
                raise ValueError(f"source full image must be (h, w, 3) uint8, got {f.shape} {f.dtype}")
            if abs(f.shape[1] / f.shape[0] - g.input_w / g.input_h) > 0.02 * g.input_w / g.input_h + 2.0 / min(
                f.shape[:2]
            ):
                raise ValueError(
                    f"source full image {f.shape[1]}x{f.shape[0]} has not the input's aspect ratio ({g.input_w}x{g.input_h})"
                )
        if self.labels.shape != (s, s) or self.labels.dtype != np.int32:
            raise ValueError(f"source labels must be ({s}, {s}) int32, got {self.labels.shape} {self.labels.dtype}")
        if self.labels.min(initial=0) < -1:
            raise ValueError("labels must be >= -1")


@dataclass(frozen=True, eq=False)
class ImageElements:
    sources: tuple[Source, ...]
    centroids: np.ndarray
    sizes: np.ndarray
    areas: np.ndarray
    patches: np.ndarray
    source_index: np.ndarray
    source_label: np.ndarray
    source_centroids: np.ndarray
    source_sizes: np.ndarray
    active: np.ndarray
    edited: np.ndarray
    embeddings: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    # --- convenience views ----------------------------------------------------------------
    @property
    def num_elements(self) -> int:
        return int(self.centroids.shape[0])

    def __len__(self) -> int:
        return self.num_elements

    @property
    def geometry(self) -> Geometry:
        """Geometry of the image being edited (``sources[0]``)."""
        return self.sources[0].geometry

    @property
    def image(self) -> np.ndarray:
        """Canvas image ``(S, S, 3) uint8`` of the image being edited."""
        return self.sources[0].image

    @property
    def labels(self) -> np.ndarray:
        """Partition ``(S, S) int32`` of the image being edited; -1 = dropped/padding."""
        return self.sources[0].labels

    @property
    def size(self) -> int:
        return self.geometry.size

    def replace(self, **changes) -> ImageElements:
        """A new value with some fields replaced (arrays are not copied: callers pass new ones)."""
        return dataclasses.replace(self, **changes)

    # --- validation -------------------------------------------------------------------------
    def validate(self) -> ImageElements:
        """Check shapes, dtypes and ranges; raise ValueError naming the first problem."""
        n = self.num_elements
        if not self.sources:
            raise ValueError("ImageElements needs at least one source")
        for s in self.sources:
            s.validate()
        expect = {
            "centroids": ((n, 2), np.float32),
            "sizes": ((n, 2), np.float32),
            "areas": ((n,), np.int64),
            "patches": ((n, 3, PATCH_SIZE, PATCH_SIZE), np.float32),
            "source_index": ((n,), np.int32),
            "source_label": ((n,), np.int32),
            "source_centroids": ((n, 2), np.float32),
            "source_sizes": ((n, 2), np.float32),
            "active": ((n,), np.bool_),
            "edited": ((n,), np.bool_),
        }
        for name, (shape, dtype) in expect.items():
            a = getattr(self, name)
            if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != dtype:
                got = (getattr(a, "shape", None), getattr(a, "dtype", None))
                raise ValueError(f"{name} must be {shape} {np.dtype(dtype).name}, got {got}")
        for name in ("centroids", "sizes", "patches", "source_centroids", "source_sizes"):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"{name} contains NaN or infinity")
        if (self.sizes <= 0).any() or (self.source_sizes <= 0).any():
            raise ValueError("element sizes must be positive")
        if self.patches.min(initial=0) < 0 or self.patches.max(initial=0) > 1:
            raise ValueError("patches must lie in [0, 1]")
        if n and (self.source_index.min() < 0 or self.source_index.max() >= len(self.sources)):
            raise ValueError("source_index out of range")
        for i, src in enumerate(self.sources):
            present = set(np.unique(src.labels[src.labels >= 0]).tolist())
            used = set(self.source_label[self.source_index == i].tolist())
            if not used <= present:
                raise ValueError(f"elements refer to labels missing from source {i}: {sorted(used - present)[:5]}")
        if self.embeddings is not None:
            e = self.embeddings
            if e.ndim != 2 or e.shape[0] != n or e.dtype != np.float32 or not np.isfinite(e).all():
                raise ValueError("embeddings must be finite (N, D) float32")
        return self

    # --- persistence ----------------------------------------------------------------------
    _ARRAYS = ARRAY_FIELDS

    def save(self, directory) -> Path:
        """Write ``elements.safetensors`` (arrays) and ``elements_meta.json`` into ``directory``.

        Both files are written to temporary names and renamed, so a crash leaves either the
        previous pair or the new pair. Round trip through :meth:`load` is exact.
        """
        from safetensors.numpy import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tensors = {k: np.ascontiguousarray(getattr(self, k)) for k in self._ARRAYS}
        tensors["active"] = tensors["active"].astype(np.uint8)
        tensors["edited"] = tensors["edited"].astype(np.uint8)
        if self.embeddings is not None:
            tensors["embeddings"] = np.ascontiguousarray(self.embeddings)
        for i, s in enumerate(self.sources):
            tensors[f"source{i}.image"] = np.ascontiguousarray(s.image)
            tensors[f"source{i}.labels"] = np.ascontiguousarray(s.labels)
            if s.full is not None:
                tensors[f"source{i}.full"] = np.ascontiguousarray(s.full)
        meta = {
            "format": "editable-image-elements",
            "version": FORMAT_VERSION,
            "num_elements": self.num_elements,
            "sources": [s.geometry.to_dict() for s in self.sources],
            "meta": self.meta,
        }
        atomic_write(d / "elements.safetensors", lambda p: save_file(tensors, str(p)))
        write_text(d / "elements_meta.json", json.dumps(meta, indent=2))
        return d

    @classmethod
    def load(cls, directory) -> ImageElements:
        """Load what :meth:`save` wrote, validating it; raises ValueError on a malformed folder."""
        from safetensors.numpy import load_file

        d = Path(directory)
        try:
            meta = json.loads((d / "elements_meta.json").read_text())
            arrays = load_file(str(d / "elements.safetensors"))
        except FileNotFoundError as err:
            raise ValueError(f"{d} holds no saved ImageElements ({Path(err.filename).name} missing)") from err
        except Exception as err:
            raise ValueError(f"{d} holds a corrupt ImageElements save ({type(err).__name__})") from err
        if meta.get("format") != "editable-image-elements" or meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"{d} is not an ImageElements save of format version {FORMAT_VERSION}")
        sources = []
        for i, g in enumerate(meta["sources"]):
            sources.append(
                Source(
                    arrays[f"source{i}.image"],
                    arrays[f"source{i}.labels"],
                    Geometry.from_dict(g),
                    arrays.get(f"source{i}.full"),
                )
            )
        kw = {k: arrays[k] for k in cls._ARRAYS}
        kw["active"] = kw["active"].astype(bool)
        kw["edited"] = kw["edited"].astype(bool)
        el = cls(sources=tuple(sources), embeddings=arrays.get("embeddings"), meta=meta.get("meta", {}), **kw)
        if el.num_elements != meta.get("num_elements"):
            raise ValueError(f"{d}: metadata says {meta.get('num_elements')} elements, arrays hold {el.num_elements}")
        return el.validate()

    # --- user-facing records ------------------------------------------------------------
    def records(self) -> list[dict]:
        """One dict per element in **input pixels** of ``sources[0]`` (id, centroid [x, y], bbox [w, h], area, active)."""
        g = self.geometry
        c = g.norm_to_input(self.centroids)
        wh = g.norm_to_input_size(self.sizes)
        px_area = 1.0 / float(np.prod(g.scale_xy))  # input pixels per canvas pixel
        return [
            {
                "id": i,
                "centroid": [round(float(c[i, 0]), 2), round(float(c[i, 1]), 2)],
                "bbox": [round(float(wh[i, 0]), 2), round(float(wh[i, 1]), 2)],
                "area": round(float(self.areas[i]) * px_area, 1),
                "active": bool(self.active[i]),
                "source": int(self.source_index[i]),
            }
            for i in range(self.num_elements)
        ]


def elements_json(el: ImageElements, labels: np.ndarray | None = None, *, pixels: np.ndarray | None = None) -> dict:
    """The ``elements.json`` document of an :class:`ImageElements` value, in **input pixels**.

    ``{"image_size": [W, H], "coordinates": ..., "partition": {...}, "dropped_fraction": float,
    "num_elements": N, "elements": [{"id", "centroid": [x, y], "bbox": [w, h], "area"}, ...]}``;
    written by ``python -m elements partition`` and returned by the app's ``/partition`` endpoint.
    With ``labels`` (the ``(H, W)`` map written as ``labels.png``,
    :func:`elements.partition.build.input_labels`) each element also gets ``"pixels"``: its pixel
    count in that file (0 = too thin to survive at the input's size); ``pixels`` ``(N,)`` gives those
    counts directly. An input over the output budget (:mod:`elements.image_io`) adds
    ``"reduced_from": [W, H]``, the file's own size: ``image_size`` is the size it was used at.
    """
    g = el.geometry
    records = [{k: r[k] for k in ("id", "centroid", "bbox", "area")} for r in el.records()]
    if labels is not None and pixels is None:
        pixels = np.bincount(labels[labels >= 0].ravel(), minlength=el.num_elements)
    if pixels is not None:
        for r in records:
            r["pixels"] = int(pixels[r["id"]])
    reduced = {"reduced_from": el.meta["reduced_from"]} if "reduced_from" in el.meta else {}
    return {
        "image_size": [g.input_w, g.input_h],
        **reduced,
        "coordinates": "input-image pixels, origin top-left, x right, y down",
        "partition": el.meta.get("partition", {}),
        "dropped_fraction": el.meta.get("dropped_fraction"),
        "num_elements": el.num_elements,
        "elements": records,
    }
