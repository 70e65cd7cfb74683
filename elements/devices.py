"""Which torch device a model runs on: the one rule every package uses (partition, decoders, UI).

>>> torch_device(None)      # "cuda" when a GPU is visible, else "cpu"
>>> torch_device("cuda:1")  # an explicit device is kept as given

It sits at the top of the package, below both ``elements.partition`` and ``elements.decoders``, so
neither has to import the other for it (``tools/import_graph.py`` fails on such a package cycle).
torch is imported only when a device is chosen, so ``import elements.devices`` stays cheap.
"""

from __future__ import annotations


def torch_device(device: str | None) -> str:
    """``device`` or, when None or empty, ``"cuda"`` if a GPU is visible else ``"cpu"``."""
    if device:
        return str(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


__all__ = ["torch_device"]
