"""What a decoder returns: the image, naming what actually ran.

:class:`DecodedImage` is a plain ``(H_in, W_in, 3) uint8`` array (a NumPy subclass, so every
caller that expects an array keeps working) with two attributes the CLI and the demo print:

* ``ran``: the decoder and the engine that actually ran, e.g. ``"pixel+inpaint (PatchMatch)"``;
* ``note``: one line on how it ran, e.g. ``"holes filled at full resolution (1024x683)"``, or "".

``np.asarray(result)`` gives the bare array; views and copies keep the attributes.
"""

from __future__ import annotations

import numpy as np


class DecodedImage(np.ndarray):
    """A decoder's output image with :attr:`ran` and :attr:`note` (see the module docstring)."""

    ran: str
    note: str

    def __new__(cls, image: np.ndarray, ran: str, note: str = ""):
        obj = np.asarray(image).view(cls)
        obj.ran, obj.note = str(ran), str(note)
        return obj

    def __array_finalize__(self, obj) -> None:
        self.ran = getattr(obj, "ran", "")
        self.note = getattr(obj, "note", "")

    def __reduce__(self):
        # pickles (multiprocessing, gradio caches) as a plain array plus the names
        return (DecodedImage, (np.asarray(self), self.ran, self.note))


def ran_of(result, fallback: str) -> str:
    """``result.ran`` when the decoder named what ran, else ``fallback`` (e.g. ``decoder.describe()``)."""
    return getattr(result, "ran", "") or fallback


__all__ = ["DecodedImage", "ran_of"]
