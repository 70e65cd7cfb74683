"""The testable logic behind ``app.py`` (the Gradio demo): no layout, no model code.

* :mod:`elements.ui.backends` — process-wide partitioner/SAM/decoders and the backend banner;
* :mod:`elements.ui.session` — per-tab state (``gr.State``);
* :mod:`elements.ui.canvas` — the editing canvas (``gr.HTML``; its front end is canvas.html/css/js here);
* :mod:`elements.ui.view` — what the canvas shows: pixel-edit preview and label map of the current elements;
* :mod:`elements.ui.handlers` — upload, canvas gestures, edit, undo/redo, compose handlers;
* :mod:`elements.ui.generate` — decoding into candidates, downloads, "use as input";
* :mod:`elements.ui.api` — the ``/partition`` and ``/edit`` API endpoints;
* :mod:`elements.ui.upload` — an image upload whose unreadable files reach the handler, which keeps the state.
"""
