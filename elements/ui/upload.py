"""``gr.Image`` whose unreadable uploads reach the handler as :class:`UnreadableUpload`, not an exception.

Gradio opens an uploaded image with Pillow *before* any handler runs; a file that is not an
image (renamed text, a truncated header) would otherwise surface as a bare "Error" with the
traceback in the server log, and the handler — which keeps the current image and its edits
and says why in the status line — would never run. The frontend is the stock image component.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr


@dataclass(frozen=True)
class UnreadableUpload:
    """What the handler receives instead of an image; ``message`` is one sentence for the visitor."""

    message: str


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


__all__ = ["UnreadableUpload", "UploadImage"]
