"""``gr.Image`` whose preprocessing failures become one ``gr.Error`` sentence.

Gradio opens an uploaded image with Pillow *before* any handler runs; a file that is not an
image (renamed text, a truncated header) would otherwise surface as a bare "Error" with the
traceback in the server log. The frontend is the stock image component.
"""

from __future__ import annotations

import gradio as gr

from gradio.events import Dependency

class UploadImage(gr.Image):
    def get_block_name(self) -> str:
        return "image"  # reuse gr.Image's Svelte component

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception:
            name = getattr(payload, "orig_name", None) or "The uploaded file"
            return UnreadableUpload(f"{name} is not an image file that can be read; upload a PNG, JPEG or WebP photo.")
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


__all__ = ["UploadImage"]