"""Gradio demo of "Editable Image Elements for Controllable Synthesis" (Mu et al., ECCV 2024).

    python app.py                      # http://127.0.0.1:7860, offline CPU defaults
    python app.py --host 0.0.0.0 --port 7861

Layout and event wiring only; what each event does lives in :mod:`elements.ui` (the canvas's
front end in ``elements/ui/canvas.{html,css,js}``) and the models in :mod:`elements`.
Gestures, keys and layout: docs/canvas.md. Hugging Face Spaces runs this file as is (docs/demo.md).
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
from elements.ui.canvas import REVEAL_RESULT_JS, make_canvas
from elements.ui.session import delete_session
from elements.ui.upload import UploadImage

ASSETS = Path(__file__).resolve().parent / "assets"
EXAMPLES = sorted(ASSETS.glob("*.jpg"))
MAX_FILE_SIZE = "20mb"  # uploads above this are refused by the server before any handler runs
DELETE_CACHE = (1800, 3600)  # every 30 min, delete cached files older than 1 h
QUEUE_SIZE = 64

#: Page layout: one screen at 1280×800 (canvas beside the tool panel), canvas first on a phone.
APP_CSS = """
.gradio-container { max-width: 1400px !important; padding-top: 6px !important; }
#title-row { align-items: center; gap: 12px; }
#title-row > * { min-width: 0 !important; }
#title { flex: 0 0 auto !important; }
#title h2 { margin: 0; font-size: 20px; white-space: nowrap; }
#banner { flex: 1 1 380px !important; }
#banner p { margin: 0; font-size: 14px; }
#details { flex: 0 1 260px !important; }
#panel { gap: 8px; }
#canvas > .html-container { padding: 0 !important; }
#input-image { max-height: 190px; }
#status p { margin: 2px 0; font-size: 14px; }
#settings-note p { margin: 0; font-size: 13px; }
/* Gradio keeps top-level rules as written but scopes @media blocks under .contain, so the phone
   rules are nested inside top-level rules to reach the page padding. */
.gradio-container > .main.fillable {
  @media (max-width: 640px) { padding-left: 6px !important; padding-right: 6px !important; }
}
#title h2 { @media (max-width: 640px) { font-size: 17px; } }
"""


def build_demo() -> gr.Blocks:
    decoder0 = backends.default_decoder()
    uses0, why0 = backends.decoder_settings(decoder0)
    with gr.Blocks(title="Editable Image Elements", delete_cache=DELETE_CACHE) as demo:
        state = gr.State(None, delete_callback=delete_session)
        with gr.Row(elem_id="title-row", equal_height=False):
            gr.Markdown("## Editable Image Elements", elem_id="title")
            banner = gr.Markdown(backends.banner(decoder0), elem_id="banner")
            # while the partition model loads (backends.start_loading) the banner says so, then what runs
            loaded = gr.Timer(1.0, active=backends.loading())
            with gr.Accordion("Details", open=False, elem_id="details"):
                details = gr.Markdown(backends.details(decoder0))
                gr.Markdown(
                    "[The paper](https://jitengmu.github.io/Editable_Image_Elements/) · gestures and keys: "
                    "docs/canvas.md in the repository."
                )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=340):
                with gr.Tabs(selected="edit", elem_id="view-tabs") as tabs:
                    with gr.Tab("Edit", id="edit"):
                        canvas = make_canvas(elem_id="canvas")
                    with gr.Tab("Result (before / after)", id="result"):
                        result_view = gr.ImageSlider(
                            label="Input / result", format="png", type="numpy", elem_id="result-view", max_height=520
                        )
                        gallery = gr.Gallery(
                            label="Candidates — click one to choose it",
                            format="png",
                            columns=4,
                            height=140,
                            object_fit="contain",
                            allow_preview=False,
                            visible=False,
                            elem_id="candidates",
                        )
                info = gr.Markdown(h.status(None), elem_id="status")
            with gr.Column(scale=2, min_width=300, elem_id="panel"):
                image = UploadImage(
                    label="Input image (upload, paste or pick below)",
                    type="filepath",
                    format="png",
                    sources=["upload", "clipboard"],
                    height=170,
                    elem_id="input-image",
                )
                gr.Examples(
                    [[str(p)] for p in EXAMPLES],
                    inputs=image,
                    label="Examples (public domain / CC0)",
                    examples_per_page=8,
                )
                with gr.Row():
                    factor = gr.Slider(
                        0.25, 3.0, value=1.0, step=0.05, label="Scale factor (also for pasting)", scale=3, min_width=160
                    )
                    scale = gr.Button("Scale selection", scale=1, min_width=100)
                names = backends.available_decoder_names()
                decoder = gr.Dropdown(names, value=decoder0, label="Decoder")
                settings_note = gr.Markdown(why0, elem_id="settings-note", visible=not uses0)
                with gr.Group(visible=uses0) as settings:
                    prompt = gr.Textbox(
                        label="Prompt (describes the scene; used for removal and variation)", max_lines=2
                    )
                    with gr.Row():
                        seed = gr.Number(0, precision=0, minimum=0, maximum=gen.MAX_SEED, label="Seed", min_width=80)
                        n = gr.Slider(1, h.MAX_CANDIDATES, value=1, step=1, label="Candidates", min_width=120)
                    with gr.Row():
                        steps = gr.Slider(1, 100, value=50, step=1, label="Steps (50 DDIM, App. C.2)", min_width=120)
                        guidance = gr.Slider(
                            0.0, 15.0, value=3.0, step=0.5, label="Guidance w (3.0, App. C.2)", min_width=120
                        )
                run = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Row():
                    use = gr.Button("Use result as input", size="sm", elem_id="use-result")
                    reset = gr.Button("Reset edits", size="sm")
                with gr.Row():
                    result_file = gr.DownloadButton("Result (PNG)", size="sm", elem_id="download-result")
                    spec_file = gr.DownloadButton("Edit spec (JSON)", size="sm", elem_id="download-spec")
                with gr.Accordion("Compose: paste elements of a second image", open=False):
                    other = UploadImage(
                        label="Second image", type="filepath", format="png", sources=["upload", "clipboard"], height=160
                    )
                    other_overlay = gr.Image(label="Its elements — click to pick", interactive=False, format="png")
                    other_info = gr.Markdown()
        with gr.Row(visible=False):  # the scriptable API: /partition and /edit (docs/demo.md, "Scriptable API")
            api_image, api_overlay = UploadImage(type="filepath"), gr.Image(format="png")
            api_json, api_spec, api_decoder = gr.Textbox(), gr.Textbox(), gr.Textbox()
            api_seed, api_out = gr.Number(None), gr.Image(format="png")
            api_partition, api_edit = gr.Button(), gr.Button()

        shown = [state, canvas, info]
        private = {"api_visibility": "private"}
        image.change(
            h.on_image,
            [state, image],
            [*shown, result_view, gallery, image],
            concurrency_id="partition",
            concurrency_limit=2,
            **private,
        )
        # every gesture counts (none may be dropped while one is in flight); the session lock orders them
        canvas.gesture(
            h.on_gesture,
            [state, factor],
            shown,
            show_progress="hidden",
            concurrency_limit=None,
            trigger_mode="multiple",
            **private,
        )
        for button, fn, inputs in [(scale, h.scale, [factor]), (reset, h.reset, [])]:
            button.click(fn, [state, *inputs], shown, show_progress="minimal", concurrency_limit=None, **private)
        other.change(
            h.on_other_image,
            [state, other],
            [state, other_overlay, other_info, canvas],
            concurrency_id="partition",
            concurrency_limit=2,
            **private,
        )
        other_overlay.select(
            h.on_other_click,
            state,
            [state, other_overlay, other_info, canvas],
            show_progress="minimal",
            concurrency_limit=None,
            trigger_mode="multiple",
            **private,
        )
        run.click(
            gen.generate,
            [state, decoder, prompt, seed, steps, guidance, n],
            [state, result_view, gallery, result_file, spec_file, info, tabs],
            concurrency_id="decode",
            concurrency_limit=1,
            **private,
        ).then(None, js=REVEAL_RESULT_JS, **private)
        gallery.select(gen.pick_candidate, state, [state, result_file, result_view], **private)
        use.click(gen.use_as_input, state, [image, tabs], **private)
        decoder.change(on_decoder, decoder, [banner, details, settings, settings_note], **private)
        for event in (demo.load, loaded.tick):
            event(on_loading, decoder, [banner, details, loaded], show_progress="hidden", **private)
        api_partition.click(
            api.api_partition,
            api_image,
            [api_overlay, api_json],
            api_name="partition",
            concurrency_id="partition",
            concurrency_limit=2,
        )
        api_edit.click(
            api.api_edit,
            [api_image, api_spec, api_decoder, api_seed],
            api_out,
            api_name="edit",
            concurrency_id="decode",
            concurrency_limit=1,
        )
    demo.queue(default_concurrency_limit=4, max_size=QUEUE_SIZE)
    return demo


def on_decoder(name: str):
    """Banner, details and which settings show for the chosen decoder."""
    uses, why = backends.decoder_settings(name)
    return (backends.banner(name), backends.details(name), gr.Group(visible=uses), gr.Markdown(why, visible=not uses))


def on_loading(name: str):
    """Banner and details now, and the timer kept running only while the partition model is still loading."""
    return backends.banner(name), backends.details(name), gr.Timer(active=backends.loading())


def launch_kwargs(host: str | None = None, port: int | None = None) -> dict:
    """Local by default: 127.0.0.1 unless --host or GRADIO_SERVER_NAME says otherwise; never share=True."""
    return {
        "server_name": host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        "server_port": port or int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
        "max_file_size": MAX_FILE_SIZE,
        "allowed_paths": [str(ASSETS)],
        "share": False,
        "css": APP_CSS,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--host", help="interface to bind (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: GRADIO_SERVER_PORT or 7860)")
    args = parser.parse_args(argv)
    try:
        backends.partition_backend()  # a bad EIE_APP_PARTITION stops here; a model that fails to load says so in the banner
        backends.start_loading()  # the partition model loads and warms up while the server starts
        print("Loading the partition model in the background…", flush=True)
        demo = build_demo()
    except UserError as err:  # e.g. a bad EIE_APP_PARTITION or EIE_APP_DECODER
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
    demo.launch(**launch_kwargs(args.host, args.port))


if __name__ == "__main__":
    main()
