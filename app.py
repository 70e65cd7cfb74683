"""Gradio demo of "Editable Image Elements for Controllable Synthesis" (Mu et al., ECCV 2024).

    python app.py                      # http://127.0.0.1:7860, offline CPU defaults
    python app.py --host 0.0.0.0 --port 7861

Layout and event wiring only; what each event does lives in :mod:`elements.ui` and the
models in :mod:`elements`. Hugging Face Spaces runs this file as is (see the README, "The demo").
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import gradio as gr

from elements.errors import UserError
from elements.ui import api, backends
from elements.ui import generate as gen
from elements.ui import handlers as h
from elements.ui.session import APP_MAX_SIDE, delete_session
from elements.ui.upload import UploadImage

ASSETS = Path(__file__).resolve().parent / "assets"
EXAMPLES = sorted(ASSETS.glob("*.jpg"))
MAX_FILE_SIZE = "20mb"  # uploads above this are refused by the server before any handler runs
DELETE_CACHE = (1800, 3600)  # every 30 min, delete cached files older than 1 h
QUEUE_SIZE = 64

INTRO = f"""# Editable Image Elements
Upload a photo (or pick an example). It is cut into image elements; **click** elements to select them
(red dots), then move, scale, delete or compose them (edited elements get green dots, as in Fig. 4-5 of
[the paper](https://jitengmu.github.io/Editable_Image_Elements/)) and press **Generate**. Photos over {APP_MAX_SIDE} px are downscaled."""


def build_demo() -> gr.Blocks:
    sam_ok, sam_why = backends.object_mode_status()
    modes = [m for m in h.MODES if m[1] != "object" or sam_ok]
    mode_info = "" if sam_ok else f"Select object (SAM) is off: {sam_why}."
    with gr.Blocks(title="Editable Image Elements", delete_cache=DELETE_CACHE) as demo:
        state = gr.State(None, delete_callback=delete_session)
        gr.Markdown(INTRO)
        banner = gr.Markdown(backends.banner(), elem_id="banner")
        with gr.Row():
            with gr.Column():
                image = UploadImage(label="Input image", type="filepath", format="png", sources=["upload", "clipboard"],
                                    elem_id="input-image")
                gr.Examples([[str(p)] for p in EXAMPLES], inputs=image, label="Examples (public domain / CC0)")
            with gr.Column():
                overlay = gr.Image(label="Elements — click here", interactive=False, format="jpeg", elem_id="overlay")
                info = gr.Markdown(h.status(None), elem_id="status")
        with gr.Row():
            mode = gr.Radio(modes, value="select", label="Click mode", info=mode_info, scale=3)
            clear = gr.Button("Clear selection", scale=1)
        with gr.Row():
            dx = gr.Number(0, label="dx (px, right)")
            dy = gr.Number(0, label="dy (px, down)")
            move = gr.Button("Move by dx/dy")
            factor = gr.Slider(0.25, 3.0, value=1.0, step=0.05, label="Scale factor (also for pasting)")
            scale = gr.Button("Scale selection")
            delete = gr.Button("Delete selection", variant="stop")
        with gr.Row():
            undo, redo, reset = gr.Button("Undo"), gr.Button("Redo"), gr.Button("Reset edits")
        with gr.Accordion("Compose: paste elements of a second image", open=False):
            with gr.Row():
                other = UploadImage(label="Second image", type="filepath", format="png", sources=["upload", "clipboard"])
                other_overlay = gr.Image(label="Its elements — click to pick", interactive=False, format="jpeg")
            other_info = gr.Markdown()
        prompt = gr.Textbox(label="Prompt (describes the scene; used for removal and variation)", max_lines=2)
        with gr.Row():
            names = backends.available_decoder_names()
            decoder = gr.Dropdown(names, value=backends.default_decoder(), label="Decoder")
            seed = gr.Number(0, precision=0, minimum=0, maximum=gen.MAX_SEED, label="Seed")
            steps = gr.Slider(1, 100, value=50, step=1, label="Steps (50 DDIM, App. C.2)")
            guidance = gr.Slider(0.0, 15.0, value=3.0, step=0.5, label="Guidance w (3.0, App. C.2)")
            n = gr.Slider(1, h.MAX_CANDIDATES, value=1, step=1, label="Candidates")
        run = gr.Button("Generate", variant="primary", elem_id="generate")
        gallery = gr.Gallery(label="Candidates — click one to choose it", format="png", columns=4, height=400,
                             object_fit="contain", allow_preview=False, fit_columns=False,
                             elem_id="candidates")
        with gr.Row():
            use = gr.Button("Use chosen candidate as input")
            result_file = gr.DownloadButton("Download result (PNG)", elem_id="download-result")
            spec_file = gr.DownloadButton("Download edit spec (JSON)", elem_id="download-spec")
        with gr.Row(visible=False):  # the scriptable API: /partition and /edit (README, "Scriptable API")
            api_image, api_overlay = UploadImage(type="filepath"), gr.Image(format="png")
            api_json, api_spec, api_decoder = gr.Textbox(), gr.Textbox(), gr.Textbox()
            api_seed, api_out = gr.Number(None), gr.Image(format="png")
            api_partition, api_edit = gr.Button(), gr.Button()

        shown = [state, overlay, info]
        private = {"api_visibility": "private"}
        image.change(h.on_image, [state, image], [*shown, gallery], concurrency_id="partition", concurrency_limit=2,
                     **private)
        # every click counts (toggles must not be dropped while one is in flight); the session lock orders them
        overlay.select(h.on_click, [state, mode, factor], shown, show_progress="minimal", concurrency_limit=None,
                       trigger_mode="multiple", **private)
        for button, fn, inputs in [(clear, h.clear_selection, []), (move, h.move_by, [dx, dy]), (scale, h.scale, [factor]),
                                   (delete, h.delete, []), (undo, h.undo, []), (redo, h.redo, []), (reset, h.reset, [])]:
            button.click(fn, [state, *inputs], shown, show_progress="minimal", concurrency_limit=None, **private)
        other.change(h.on_other_image, [state, other], [state, other_overlay, other_info], concurrency_id="partition",
                     concurrency_limit=2, **private)
        other_overlay.select(h.on_other_click, state, [state, other_overlay, other_info], show_progress="minimal",
                             concurrency_limit=None, trigger_mode="multiple", **private)
        run.click(gen.generate, [state, decoder, prompt, seed, steps, guidance, n],
                  [state, gallery, result_file, spec_file, info], concurrency_id="decode", concurrency_limit=1, **private)
        gallery.select(gen.pick_candidate, state, [state, result_file], **private)
        use.click(gen.use_as_input, state, image, **private)
        decoder.change(backends.banner, decoder, banner, **private)
        api_partition.click(api.api_partition, api_image, [api_overlay, api_json], api_name="partition",
                            concurrency_id="partition", concurrency_limit=2)
        api_edit.click(api.api_edit, [api_image, api_spec, api_decoder, api_seed], api_out, api_name="edit",
                       concurrency_id="decode", concurrency_limit=1)
    demo.queue(default_concurrency_limit=4, max_size=QUEUE_SIZE)
    return demo


def launch_kwargs(host: str | None = None, port: int | None = None) -> dict:
    """Local by default: 127.0.0.1 unless --host or GRADIO_SERVER_NAME says otherwise; never share=True."""
    return {
        "server_name": host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        "server_port": port or int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
        "max_file_size": MAX_FILE_SIZE,
        "allowed_paths": [str(ASSETS)],
        "share": False,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="interface to bind (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: GRADIO_SERVER_PORT or 7860)")
    args = parser.parse_args(argv)
    try:
        print(backends.startup_summary(), flush=True)
        demo = build_demo()
    except UserError as err:  # e.g. a bad EIE_APP_PARTITION or checkpoint path
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
    demo.launch(**launch_kwargs(args.host, args.port))


if __name__ == "__main__":
    main()
