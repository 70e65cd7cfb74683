"""``gr.Image`` whose unreadable uploads reach the handler as :class:`UnreadableUpload`, not an exception.

Gradio opens an uploaded image with Pillow *before* any handler runs; a file that is not an
image (renamed text, a truncated header) would otherwise surface as a bare "Error" with the
traceback in the server log, and the handler — which keeps the current image and its edits
and says why in the status line — would never run. The frontend is the stock image component.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import gradio as gr
from PIL import Image


@dataclass(frozen=True)
class UnreadableUpload:
    """What the handler receives instead of an image; ``message`` is one sentence for the visitor."""

    message: str


class UploadImage(gr.Image):
    """With ``type="filepath"`` the upload is passed on untouched (Gradio only reads its header), so
    :func:`elements.image_io.load_image` decodes it within the pixel budget; Gradio's own conversion
    to ``image_mode`` would decode a 12000x12000 upload at full size. (``__init__`` is not
    overridden: Gradio builds the frontend's config from its signature.)"""

    def get_block_name(self) -> str:
        return "image"  # reuse gr.Image's Svelte component

    def preprocess(self, payload):
        url = getattr(payload, "url", None)
        if self.type == "filepath" and isinstance(url, str) and url.startswith("data:"):
            return self._data_url_to_file(url)  # Gradio would decode (and re-encode) it at full size
        try:
            with warnings.catch_warnings():  # Pillow's bomb warning at open: our pixel budget decides, quietly
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                if self.type == "filepath":
                    from gradio import image_utils

                    return image_utils.preprocess_image(
                        payload, cache_dir=self.GRADIO_CACHE, format=self.format, image_mode=None, type="filepath"
                    )
                return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception as err:
            from elements.errors import excerpt

            name = getattr(payload, "orig_name", None)
            name = (
                excerpt(name, 40).strip("'") if name else "The uploaded file"
            )  # the visitor's own file name, shortened
            why = " (it is too large to decode safely)" if "DecompressionBomb" in type(err).__name__ else ""
            return UnreadableUpload(
                f"{name} is not an image file that can be read{why}; upload a PNG, JPEG or WebP photo."
            )

    def _data_url_to_file(self, url: str) -> str:
        """Write the bytes of a ``data:`` URL into Gradio's cache, undecoded; returns the path."""
        import base64
        import binascii
        import hashlib
        from pathlib import Path

        head, _, body = url.partition(",")
        if len(body) > MAX_DATA_URL_CHARS:
            raise gr.Error("The image is too large; upload a file of at most 20 MB.", print_exception=False)
        try:
            data = base64.b64decode(body, validate=False) if head.endswith(";base64") else body.encode()
        except (binascii.Error, ValueError):
            raise gr.Error(
                "The image data could not be read; upload a PNG, JPEG or WebP photo.", print_exception=False
            ) from None
        folder = Path(self.GRADIO_CACHE) / hashlib.sha256(data).hexdigest()[:32]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "image"
        path.write_bytes(data)
        return str(path)


#: Longest ``data:`` URL taken (base64 of the 20 MB upload limit).
MAX_DATA_URL_CHARS = 28 * 1024 * 1024


__all__ = ["MAX_DATA_URL_CHARS", "UploadImage"]
