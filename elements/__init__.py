"""Editable Image Elements (Mu et al., ECCV 2024): an open reference implementation.

The package is organised by stage:

* :mod:`elements.image_io` / :mod:`elements.geometry` — reading any input image and the
  letterbox mapping between input pixels and the 512×512 working canvas.
* :mod:`elements.types` — :class:`ImageElements`, the value every later stage passes around.
* :mod:`elements.partition` — Algorithm 2 (SAM-feature SLIC) and the baseline partitions.

Heavy dependencies (torch, segment-anything, diffusers) are imported lazily by the modules
that need them, so ``import elements`` stays cheap.
"""

from elements.errors import UserError
from elements.geometry import Geometry
from elements.types import ImageElements, Source

__all__ = ["Geometry", "ImageElements", "Source", "UserError"]
__version__ = "0.1.0"
