"""Per-visitor state of the demo, kept in one ``gr.State`` per browser tab.

:class:`AppSession` wraps an :class:`~elements.editor.EditorSession` (elements, undo/redo
history, spec) with what only the UI needs: the selection, the SAM embedding of this image,
the cached :class:`~elements.ui.view.View`, the second image for composition, the generated
candidates and a private temporary folder for downloads. Models are *not* here — they are
process-wide singletons in :mod:`elements.ui.backends`.

Every handler holds ``session.lock`` while it reads or changes the session, so two events of
one tab (a fast double click) cannot interleave; different tabs never share a session.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from elements.errors import excerpt
from elements.image_io import MIN_SIDE, LoadedImage, load_image
from elements.types import ImageElements
from elements.ui import backends
from elements.ui.cache import BoundedCache
from elements.ui.view import View, build_view

#: Uploads larger than this on their long side are downscaled before partitioning; the UI says so.
#: Elements live on the 512 canvas (Sec. 3.1) whatever the input size; the pixel decoders paste
#: results at the input's full resolution, so the demo keeps photos up to this size as they are
#: (the canvas itself is sent at most elements.ui.canvas.DISPLAY_MAX_SIDE wide).
APP_MAX_SIDE = 4096
#: Replaced images a tab keeps for Undo (each holds its elements, full-resolution pixels, SAM
#: embedding and candidates: up to ~100 MB at APP_MAX_SIDE); older ones are dropped.
MAX_PAST_IMAGES = 3


def load_for_app(path_or_image, what: str = "The image") -> tuple[LoadedImage, str]:
    """Decode an upload and downscale it to at most :data:`APP_MAX_SIDE`; returns it and a note ('' if untouched).

    The downscaled pixels *are* the input from then on: clicks, specs and outputs use its size.
    The pixel budget, its refusal limits and their sentences are :mod:`elements.image_io`'s, as for
    the CLI; an unreadable file is named by its own file name (``broken.png is not an image
    (accepted: ...)``), never by its path on the server.
    """
    loaded = load_image(
        path_or_image, max_side=APP_MAX_SIDE, name=upload_name(path_or_image, what), min_side=MIN_SIDE
    )  # long side <= APP_MAX_SIDE after this
    note = ""
    if loaded.downscaled:
        h, w = loaded.pixels.shape[:2]
        tw, th = loaded.original_size or loaded.size  # the visitor's file, before any reduction
        note = f"{what} ({tw}×{th}) was downscaled to {w}×{h} for the demo; outputs have that size."
        loaded = LoadedImage(loaded.pixels, (w, h))
    return loaded, note


def upload_name(path_or_image, what: str = "The image") -> str:
    """How error sentences call an upload: its file name, sanitised (never its folder), else ``what``."""
    if isinstance(path_or_image, (str, Path)):
        name = excerpt(Path(path_or_image).name, 40).strip("'")
        if "." in name.strip("."):
            return name
        return "The uploaded file"
    return what


#: Partitions shared by every session, least recently used dropped first. An entry is the elements
#: (with the input's decoded pixels, ``Source.full``) and SAM's embedding: ~16 MB for a 2048 × 1536
#: photo, ~55 MB at :data:`APP_MAX_SIDE`; the budget bounds what a crowd sending many photos can hold.
PARTITIONS = BoundedCache("partitions", max_bytes=384 * 2**20, max_items=32)


def pixels_key(loaded: LoadedImage) -> tuple:
    """What identifies a decoded input: its size and a digest of its pixels (~20 ms for 2048 × 1536)."""
    px = np.ascontiguousarray(loaded.pixels)
    digest = hashlib.blake2b(memoryview(px).cast("B"), digest_size=16).hexdigest()
    return (px.shape, str(px.dtype), tuple(loaded.size), tuple(loaded.original_size or ()), digest)


def partition(loaded: LoadedImage) -> tuple[ImageElements, object]:
    """Partition with the shared partitioner; returns the elements and the SAM embedding (None without SAM).

    The same pixels are partitioned once (:data:`PARTITIONS`): ``/edit`` calls on the photo a
    ``/partition`` call or an upload has just partitioned reuse its elements, in any session.
    The values are shared, so they are never written to (edits are pure functions).
    """
    part = backends.partitioner()
    settings = (type(part).__name__, id(part), repr(getattr(part, "params", dict)()))  # what partitions, and how
    return PARTITIONS.get_or_compute((settings, *pixels_key(loaded)), lambda: _partition_now(part, loaded))


def _partition_now(part, loaded: LoadedImage) -> tuple[ImageElements, object]:
    with backends.MODEL_LOCK:
        el = part(loaded)
        emb = part.affinity.embedding_state() if part.affinity is not None else None
    return el, emb


@dataclass
class OtherImage:
    """The second image of a composition: its elements, saved as a compose source, and its selection."""

    elements: ImageElements
    folder: str  # ImageElements.save() folder, the compose edits' "source"
    name: str  # file name shown in the downloaded spec
    note: str = ""
    selection: tuple[int, ...] = ()
    view: View | None = None

    def current_view(self) -> View:
        if self.view is None:
            self.view = build_view(self.elements)
        return self.view


@dataclass
class Snapshot:
    """One image's editing state, kept when another image replaces it (undo goes back to it)."""

    editor: object
    note: str
    selection: tuple[int, ...]
    sam_embedding: object
    candidates: list
    chosen: int
    input_pixels: object = None


@dataclass
class AppSession:
    editor: object | None = None  # elements.editor.EditorSession once an image is loaded
    note: str = ""
    selection: tuple[int, ...] = ()
    sam_embedding: object = None
    other: OtherImage | None = None
    candidates: list = field(default_factory=list)  # [(H_in, W_in, 3) uint8, ...] of the last Generate
    chosen: int = 0
    compose_names: dict = field(default_factory=dict)  # compose-source folder -> file name for the spec
    seq: int = 0  # the last canvas gesture number handled (elements/ui/canvas.py)
    sent_rev: int = -1  # the view revision whose image the canvas already has
    view_rev: int = 0  # bumped whenever the view is rebuilt
    object_prompt: dict = field(default_factory=dict)  # the SAM prompt being built: points, box, base selection
    past: list = field(default_factory=list)  # [Snapshot] of replaced images, newest last (undo returns to them)
    future: list = field(default_factory=list)  # [Snapshot] undone back past (redo returns to them)
    input_key: str | None = None  # content hash of the current input file (a repeated change event is a no-op)
    pending_key: str | None = None  # content hash of the file being partitioned now (read without the lock)
    input_pixels: object = None  # (H_in, W_in, 3) uint8 the input as loaded: the "before" of the result view
    _view: View | None = None
    _workdir: str | None = None
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # --- image ---------------------------------------------------------------------------------
    @property
    def has_image(self) -> bool:
        return self.editor is not None

    def start(self, el: ImageElements, sam_embedding, note: str) -> None:
        """Begin editing ``el`` (history, selection, candidates and composition reset)."""
        from elements.editor import EditorSession

        if self.editor is not None:  # the image it replaces stays one undo away
            self.past = [*self.past, self.snapshot()][-MAX_PAST_IMAGES:]
            self.future = []
        editor = EditorSession(backends.partitioner())
        editor.set_elements(el)
        self.editor, self.note, self.sam_embedding = editor, note, sam_embedding
        self.selection, self.candidates, self.chosen, self._view, self.object_prompt = (), [], 0, None, {}

    def snapshot(self) -> Snapshot:
        return Snapshot(
            self.editor, self.note, self.selection, self.sam_embedding, self.candidates, self.chosen, self.input_pixels
        )

    def restore(self, snap: Snapshot) -> None:
        """Make ``snap`` the current image again (its history, selection and results)."""
        self.editor, self.note, self.selection, self.sam_embedding = (
            snap.editor,
            snap.note,
            snap.selection,
            snap.sam_embedding,
        )
        self.candidates, self.chosen, self._view, self.object_prompt, self.input_key = (
            snap.candidates,
            snap.chosen,
            None,
            {},
            None,
        )
        self.input_pixels = snap.input_pixels

    @property
    def elements(self) -> ImageElements:
        return self.editor.elements

    def view(self) -> View:
        """The cached view of the current elements (rebuilt only after an edit, undo or redo)."""
        el = self.elements
        if self._view is None or self._view.elements is not el:
            self._view = build_view(el, self.input_pixels)
            self.view_rev += 1
        return self._view

    def prune_selection(self) -> None:
        """Drop selected ids that are deleted (or gone after an undo) in the current value."""
        el = self.elements
        self.selection = tuple(i for i in self.selection if i < el.num_elements and el.active[i])

    # --- temporary files -------------------------------------------------------------------------
    @property
    def workdir(self) -> Path:
        """A private folder for this session's downloads and compose sources, removed by :meth:`cleanup`."""
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="eie-app-")
        return Path(self._workdir)

    def cleanup(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


def delete_session(session: AppSession | None) -> None:
    """``gr.State(delete_callback=...)``: remove a closed tab's temporary files."""
    if session is not None:
        session.cleanup()


__all__ = [
    "APP_MAX_SIDE",
    "PARTITIONS",
    "AppSession",
    "OtherImage",
    "Snapshot",
    "delete_session",
    "load_for_app",
    "partition",
]
