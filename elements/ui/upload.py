"""``gr.Image`` that hands uploads to the handler as files, undecoded.

Gradio opens an uploaded image with Pillow *before* any handler runs (and, for a ``data:`` URL,
decodes and re-encodes it at full size). A file that is not an image, an empty file or a bomb
would then fail inside Gradio, where only a bare "Error" reaches the visitor. Here the upload
is passed on as a path: :func:`elements.ui.session.load_for_app` decodes it within the pixel
budget (:mod:`elements.image_io`), and every unreadable file becomes the one sentence that
budget owns ("... is not an image / is empty / has 1,600 Mpx, too many pixels to decode
(accepted: ...)"), shown in the status line or as ``gr.Error`` like any other user error.
A failure that is the server's (its disk) is logged with its traceback and said as the server's.
The frontend is the stock image component.
"""

from __future__ import annotations

import logging
import re

import gradio as gr

log = logging.getLogger("elements.app")

#: Longest ``data:`` URL taken (base64 of the 20 MB upload limit).
MAX_DATA_URL_CHARS = 28 * 1024 * 1024
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class UploadImage(gr.Image):
    """With ``type="filepath"`` the upload is passed on untouched, so
    :func:`elements.image_io.load_image` decodes it within the pixel budget; Gradio's own
    ``Image.open`` and conversion would run first and decode a 12000x12000 upload at full size.
    Other types behave as ``gr.Image``. (``__init__`` is not overridden: Gradio builds the
    frontend's config from its signature.)"""

    def get_block_name(self) -> str:
        return "image"  # reuse gr.Image's Svelte component

    def preprocess(self, payload):
        if payload is None or self.type != "filepath":
            return super().preprocess(payload)
        url = getattr(payload, "url", None)
        if isinstance(url, str) and url.startswith("data:"):
            return self._data_url_to_file(url, getattr(payload, "orig_name", None))
        if payload.path is None:
            raise gr.Error("The upload did not arrive; please upload the image again.", print_exception=False)
        return str(payload.path)

    def _data_url_to_file(self, url: str, orig_name: str | None) -> str:
        """Write the bytes of a ``data:`` URL into Gradio's cache, undecoded; returns the path.

        The file keeps the visitor's own file name (sanitised), so error sentences can name it.
        """
        import base64
        import binascii
        import hashlib
        from pathlib import Path

        head, _, body = url.partition(",")
        if len(body) > MAX_DATA_URL_CHARS:
            raise gr.Error("The image is too large; upload a file of at most 20 MB.", print_exception=False)
        try:
            data = base64.b64decode(body, validate=False) if head.endswith(";base64") else body.encode()
        except (binascii.Error, ValueError) as err:
            raise gr.Error(
                "The image data could not be read; upload a PNG, JPEG or WebP photo.", print_exception=False
            ) from err
        folder = Path(self.GRADIO_CACHE) / hashlib.sha256(data).hexdigest()[:32]
        name = _UNSAFE_NAME.sub("_", Path(orig_name or "").name)[:80].lstrip(".") or "upload"
        path = folder / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError:  # the server's disk, not the visitor's file: the log has the traceback
            log.exception("storing a pasted image in %s failed", folder)
            raise gr.Error(
                "The server could not store the pasted image; please try again.", print_exception=False
            ) from None
        return str(path)


__all__ = ["MAX_DATA_URL_CHARS", "UploadImage"]
