"""Old home of the light decoder, kept for one release: use :mod:`elements.decoders.light`.

``LightReconstructor`` is now :class:`~elements.decoders.light.LightDecoder` (the ``light`` decoder);
this alias keeps the old behaviour of calling it (the working canvas, not the input's size) and the
old ``.decoder`` name of the network (now ``.net``).
"""

from __future__ import annotations

import numpy as np

from elements.decoders.light import LightDecoder, encode
from elements.types import ImageElements


class LightReconstructor(LightDecoder):
    """Deprecated name of :class:`LightDecoder`."""

    @property
    def decoder(self):
        return self.net

    def __call__(self, el: ImageElements, **_) -> np.ndarray:  # the canvas, as before
        return self.decode([el])[0]


__all__ = ["LightReconstructor", "encode"]
