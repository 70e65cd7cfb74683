"""The testable logic behind ``app.py`` (the Gradio demo): no layout, no model code.

* :mod:`elements.ui.backends` — process-wide partitioner/SAM/decoders and the backend banner;
* :mod:`elements.ui.session` — per-tab state (``gr.State``);
* :mod:`elements.ui.view` — the overlay (preview + boundaries + red/green dots, Fig. 4-5);
* :mod:`elements.ui.handlers` — upload, click, edit, undo/redo, compose handlers;
* :mod:`elements.ui.generate` — decoding into candidates, downloads, "use as input";
* :mod:`elements.ui.api` — the ``/partition`` and ``/edit`` API endpoints;
* :mod:`elements.ui.upload` — an image upload whose decode errors read as one sentence.
"""
