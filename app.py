"""Gradio demo of "Editable Image Elements for Controllable Synthesis" (Mu et al., ECCV 2024).

    python app.py                      # http://127.0.0.1:7860, offline CPU defaults
    python app.py --host 0.0.0.0 --port 7861

Layout and event wiring only; what each event does lives in :mod:`elements.ui` (the canvas's
front end in ``elements/ui/canvas.{html,css,js}``, the page's layout in ``elements/ui/page.css``)
and the models in :mod:`elements`.
Gestures, keys and layout: docs/canvas.md. Hugging Face Spaces runs this file as is (docs/demo.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from elements import memory
from elements.errors import UserError
from elements.spec import GUIDANCE_RANGE, SEED_RANGE, STEPS_RANGE
from elements.ui import api, backends
from elements.ui import generate as gen
from elements.ui import handlers as h
from elements.ui.canvas import REVEAL_RESULT_JS, make_canvas
from elements.ui.png_output import PngImage
from elements.ui.session import delete_session
from elements.ui.upload import UploadImage

ASSETS = Path(__file__).resolve().parent / "assets"
EXAMPLES = sorted(ASSETS.glob("*.jpg"))
MAX_FILE_SIZE = "20mb"  # uploads above this are refused by the server before any handler runs
DELETE_CACHE = (1800, 3600)  # every 30 min, delete cached files older than 1 h
QUEUE_SIZE = 64
#: Concurrent uploads / partitions (SAM itself runs one at a time, backends.MODEL_LOCK; the second slot
#: decodes and hashes its file meanwhile) and concurrent /edit + Generate calls; chosen on bench/load.py.
PARTITION_SLOTS, DECODE_SLOTS = 2, 1

#: The page's layout rules (the canvas's own are elements/ui/canvas.css).
PAGE_CSS = Path(__file__).resolve().parent / "elements" / "ui" / "page.css"
#: Events that wait in the queue show the visitor their place in it and the expected wait.
QUEUED = {"show_progress": "full"}
PRIVATE = {"api_visibility": "private"}


def build_demo() -> gr.Blocks:
    """The page: header, canvas and result tabs, the tool panel, the hidden API row, then the events."""
    ui = SimpleNamespace(decoder0=backends.default_decoder())
    with gr.Blocks(title="Editable Image Elements", delete_cache=DELETE_CACHE) as demo:
        ui.state = gr.State(None, delete_callback=delete_session)
        _header(ui)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=340):
                _views(ui)
            with gr.Column(scale=2, min_width=300, elem_id="panel"):
                _panel(ui)
        _api_row(ui)
        _wire_editing(ui)
        _wire_generation(ui, demo)
        _wire_api(ui)
    demo.queue(default_concurrency_limit=4, max_size=QUEUE_SIZE)
    return demo


def _header(ui) -> None:
    """Title, the banner saying what runs (refreshed while the partition model loads) and the details."""
    with gr.Row(elem_id="title-row", equal_height=False):
        gr.Markdown("## Editable Image Elements", elem_id="title")
        ui.banner = gr.Markdown(backends.banner(ui.decoder0), elem_id="banner")
        # while the partition model loads (backends.start_loading) the banner says so, then what runs
        ui.loaded = gr.Timer(1.0, active=backends.loading())
        with gr.Accordion("Details", open=False, elem_id="details"):
            ui.details = gr.Markdown(backends.details(ui.decoder0))
            gr.Markdown(
                "[The paper](https://jitengmu.github.io/Editable_Image_Elements/) · gestures and keys: "
                "docs/canvas.md in the repository."
            )


def _views(ui) -> None:
    """The canvas (Edit tab), the before/after result and its candidates, and the status line."""
    with gr.Tabs(selected="edit", elem_id="view-tabs") as ui.tabs:
        with gr.Tab("Edit", id="edit"):
            ui.canvas = make_canvas(elem_id="canvas")
        with gr.Tab("Result (before / after)", id="result"):
            ui.result_view = gr.ImageSlider(
                label="Input / result", format="png", type="numpy", elem_id="result-view", max_height=520
            )
            ui.gallery = gr.Gallery(
                label="Candidates — click one to choose it",
                format="png",
                columns=4,
                height=140,
                object_fit="contain",
                allow_preview=False,
                visible=False,
                elem_id="candidates",
            )
    ui.info = gr.Markdown(h.status(None), elem_id="status")


def _panel(ui) -> None:
    """Input, scale, decoder and its sampler settings, Generate, downloads and the compose picker."""
    ui.image = UploadImage(
        label="Input image (upload, paste or pick below)",
        type="filepath",
        format="png",
        sources=["upload", "clipboard"],
        height=170,
        elem_id="input-image",
    )
    gr.Examples(
        [[str(p)] for p in EXAMPLES], inputs=ui.image, label="Examples (public domain / CC0)", examples_per_page=8
    )
    with gr.Row():
        ui.factor = gr.Slider(
            0.25, 3.0, value=1.0, step=0.05, label="Scale factor (also for pasting)", scale=3, min_width=160
        )
        ui.scale = gr.Button("Scale selection", scale=1, min_width=100)
    ui.decoder = gr.Dropdown(backends.available_decoder_names(), value=ui.decoder0, label="Decoder")
    uses, why = backends.decoder_settings(ui.decoder0)
    ui.settings_note = gr.Markdown(why, elem_id="settings-note", visible=not uses)
    steps0, guidance0 = sampler_settings(ui.decoder0)
    with gr.Group(visible=uses) as ui.settings:
        ui.prompt = gr.Textbox(label="Prompt (describes the scene; used for removal and variation)", max_lines=2)
        with gr.Row():
            ui.seed = gr.Number(
                0, precision=0, minimum=SEED_RANGE[0], maximum=SEED_RANGE[1], label="Seed", min_width=80
            )
            ui.n = gr.Slider(1, h.MAX_CANDIDATES, value=1, step=1, label="Candidates", min_width=120)
        with gr.Row():
            ui.steps = gr.Slider(STEPS_RANGE[0], 100, step=1, min_width=120, **steps0)
            ui.guidance = gr.Slider(GUIDANCE_RANGE[0], 15.0, step=0.5, min_width=120, **guidance0)
    ui.run = gr.Button("Generate", variant="primary", elem_id="generate")
    with gr.Row():
        ui.use = gr.Button("Use result as input", size="sm", elem_id="use-result")
        ui.reset = gr.Button("Reset edits", size="sm")
    with gr.Row():
        ui.result_file = gr.DownloadButton("Result (PNG)", size="sm", elem_id="download-result")
        ui.spec_file = gr.DownloadButton("Edit spec (JSON)", size="sm", elem_id="download-spec")
    with gr.Accordion("Compose: paste elements of a second image", open=False):
        ui.other = UploadImage(
            label="Second image", type="filepath", format="png", sources=["upload", "clipboard"], height=160
        )
        ui.other_overlay = gr.Image(label="Its elements — click to pick", interactive=False, format="png")
        ui.other_info = gr.Markdown()


def _api_row(ui) -> None:
    """The scriptable API's hidden components: /partition and /edit (docs/demo.md, "Scriptable API")."""
    with gr.Row(visible=False):
        ui.api_image, ui.api_overlay = UploadImage(type="filepath"), PngImage(format="png")
        ui.api_json, ui.api_spec, ui.api_decoder = gr.Textbox(), gr.Textbox(), gr.Textbox()
        ui.api_seed, ui.api_out = gr.Number(None), PngImage(format="png")
        ui.api_partition, ui.api_edit = gr.Button(), gr.Button()


def _wire_editing(ui) -> None:
    """Uploads (queued, partition slot) and the canvas gestures and edit buttons (never queued behind a decode)."""
    shown = [ui.state, ui.canvas, ui.info]
    ui.image.change(
        h.on_image,
        [ui.state, ui.image],
        [*shown, ui.result_view, ui.gallery, ui.image],
        concurrency_id="partition",
        concurrency_limit=PARTITION_SLOTS,
        **QUEUED,
        **PRIVATE,
    )
    # every gesture counts (none may be dropped while one is in flight); the session lock orders them
    ui.canvas.gesture(
        h.on_gesture,
        [ui.state, ui.factor],
        shown,
        show_progress="hidden",
        concurrency_limit=None,
        trigger_mode="multiple",
        **PRIVATE,
    )
    for button, fn, inputs in [(ui.scale, h.scale, [ui.factor]), (ui.reset, h.reset, [])]:
        button.click(fn, [ui.state, *inputs], shown, show_progress="minimal", concurrency_limit=None, **PRIVATE)
    compose = [ui.state, ui.other_overlay, ui.other_info, ui.canvas]
    ui.other.change(
        h.on_other_image,
        [ui.state, ui.other],
        compose,
        concurrency_id="partition",
        concurrency_limit=PARTITION_SLOTS,
        **QUEUED,
        **PRIVATE,
    )
    ui.other_overlay.select(
        h.on_other_click,
        ui.state,
        compose,
        show_progress="minimal",
        concurrency_limit=None,
        trigger_mode="multiple",
        **PRIVATE,
    )


def _wire_generation(ui, demo: gr.Blocks) -> None:
    """Generate (queued, decode slot), candidates, "use as input", the decoder choice and the loading banner."""
    ui.run.click(
        gen.generate,
        [ui.state, ui.decoder, ui.prompt, ui.seed, ui.steps, ui.guidance, ui.n],
        [ui.state, ui.result_view, ui.gallery, ui.result_file, ui.spec_file, ui.info, ui.tabs],
        concurrency_id="decode",
        concurrency_limit=DECODE_SLOTS,
        **QUEUED,
        **PRIVATE,
    ).then(None, js=REVEAL_RESULT_JS, **PRIVATE)
    ui.gallery.select(gen.pick_candidate, ui.state, [ui.state, ui.result_file, ui.result_view], **PRIVATE)
    ui.use.click(gen.use_as_input, ui.state, [ui.image, ui.tabs], **PRIVATE)
    ui.decoder.change(
        on_decoder, ui.decoder, [ui.banner, ui.details, ui.settings, ui.settings_note, ui.steps, ui.guidance], **PRIVATE
    )
    for event in (demo.load, ui.loaded.tick):
        event(on_loading, ui.decoder, [ui.banner, ui.details, ui.loaded], show_progress="hidden", **PRIVATE)


def _wire_api(ui) -> None:
    """``/partition`` and ``/edit``: the same slots as the page's upload and Generate."""
    ui.api_partition.click(
        api.api_partition,
        ui.api_image,
        [ui.api_overlay, ui.api_json],
        api_name="partition",
        concurrency_id="partition",
        concurrency_limit=PARTITION_SLOTS,
    )
    ui.api_edit.click(
        api.api_edit,
        [ui.api_image, ui.api_spec, ui.api_decoder, ui.api_seed],
        ui.api_out,
        api_name="edit",
        concurrency_id="decode",
        concurrency_limit=DECODE_SLOTS,
    )


def sampler_settings(name: str) -> tuple[dict, dict]:
    """Value and label of the steps and guidance sliders: the decoder's own defaults (the CLI's too).

    A decoder without a sampler leaves the sliders as they are (they are hidden with it).
    """
    steps, guidance = backends.sampler_defaults(name)
    if steps is None or guidance is None:
        return {"label": "Steps"}, {"label": "Guidance w"}
    return (
        {"value": steps, "label": f"Steps ({name} default: {steps})"},
        {"value": guidance, "label": f"Guidance w ({name} default: {guidance:g})"},
    )


def on_decoder(name: str):
    """Banner, details, which settings show for the chosen decoder, and its own steps and guidance."""
    uses, why = backends.decoder_settings(name)
    steps, guidance = sampler_settings(name)
    return (
        backends.banner(name),
        backends.details(name),
        gr.Group(visible=uses),
        gr.Markdown(why, visible=not uses),
        gr.Slider(**steps),
        gr.Slider(**guidance),
    )


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
        "css": PAGE_CSS.read_text(encoding="utf-8"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--host", help="interface to bind (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: GRADIO_SERVER_PORT or 7860)")
    args = parser.parse_args(argv)
    # before any worker thread exists: bounded malloc arenas, and freed memory goes back (elements/memory.py)
    memory.configure_allocator()
    memory.start_trimmer()
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
