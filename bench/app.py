"""Demo benchmark (issue 6). Prints server-side seconds of the demo's three interactions.

    python bench/app.py [--repeats 20]

On the offline CPU defaults (SLIC partition, ``pixel+inpaint`` with OpenCV Telea), with the
bundled photos (assets/astronaut.jpg is 512×512):

* **click → overlay**: ``handlers.on_click`` (select/deselect one element) plus what Gradio does
  with the returned image before sending it (``gr.Image(format="jpeg").postprocess``: encode
  and write to its cache). Target ≤ 50 ms at 512².
* **upload → elements**: ``handlers.on_image`` on a file: decode, letterbox, partition,
  first view and overlay (what happens between the upload and the overlay appearing).
* **edit**: after a move of the largest element, ``Generate`` with one candidate
  (``generate.generate``: pixel editing + inpainting, PNG + spec written for download), and
  ``api_edit`` end to end (partition + spec + decode) as the ``/edit`` endpoint runs it.

Each figure is the median over ``--repeats`` runs (p90 in brackets); the first run of each
is a warm-up and not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return statistics.median(ts), ts[min(len(ts) - 1, int(0.9 * len(ts)))]


def fmt(name: str, t: tuple[float, float], unit: str = "ms") -> str:
    k, d = (1000.0, 1) if unit == "ms" else (1.0, 2)
    return f"{name:<52} {t[0] * k:9.{d}f} {unit}  (p90 {t[1] * k:.{d}f})"


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20, help="timed runs per interaction (the median is reported)")
    args = ap.parse_args()

    import gradio as gr
    import numpy as np

    from elements.ui import api, backends
    from elements.ui import generate as gen
    from elements.ui import handlers as h

    print(backends.startup_summary().splitlines()[0])
    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, cpus={os.cpu_count()}")
    astronaut = str(ROOT / "assets" / "astronaut.jpg")
    coffee = str(ROOT / "assets" / "coffee.jpg")

    session, overlay, *_ = h.on_image(None, astronaut)
    view = session.view()
    ids, counts = np.unique(view.owner[view.owner >= 0], return_counts=True)
    k = int(ids[np.argmax(counts)])
    ys, xs = np.nonzero(session.elements.geometry.labels_to_input(view.owner) == k)
    evt = gr.SelectData(None, {"index": [int(xs[len(xs) // 2]), int(ys[len(ys) // 2])], "value": None})
    display = gr.Image(interactive=False, format="jpeg")

    def click_handler():
        h.on_click(session, "select", 1.0, evt)

    def click_full():
        _, img, _ = h.on_click(session, "select", 1.0, evt)
        display.postprocess(img)

    print()
    print(f"click -> overlay at {overlay.shape[1]}x{overlay.shape[0]} ({session.elements.num_elements} elements):")
    print(fmt("  handler (hit test + redraw dots)", timed(click_handler, args.repeats)))
    print(fmt("  handler + Gradio JPEG encode/cache  [target <= 50]", timed(click_full, args.repeats)))

    print("\nupload -> elements (decode, partition, overlay):")
    reps = max(3, args.repeats // 5)
    print(fmt("  astronaut 512x512", timed(lambda: h.on_image(None, astronaut), reps), "s"))
    print(fmt("  coffee 600x400", timed(lambda: h.on_image(None, coffee), reps), "s"))

    print("\nedit (CPU default decoder: " + backends.decoder(backends.default_decoder()).describe() + "):")
    session.selection = (k,)
    h.move_by(session, 48, 16)
    print(fmt("  Generate, 1 candidate, after a move (512x512)",
              timed(lambda: gen.generate(session, backends.default_decoder(), "", 0, 50, 3.0, 1), reps), "s"))
    spec = json.dumps({"version": 1, "edits": [{"op": "move", "elements": [k], "dx": 48, "dy": 16}]})
    print(fmt("  /edit endpoint end to end (partition + decode)", timed(lambda: api.api_edit(astronaut, spec), reps), "s"))
    print(fmt("  undo + redo (two overlay rebuilds after an edit)",
              timed(lambda: (h.undo(session), h.redo(session)), args.repeats), "ms"))


if __name__ == "__main__":
    main()
