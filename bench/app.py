"""Demo benchmark (issue 6). Prints server-side seconds of the demo's three interactions.

    python bench/app.py [--repeats 20]

On the offline CPU defaults (``auto`` partition: the distilled SAM when it can be had, else SLIC;
``pixel+inpaint`` with PatchMatch), with the
bundled photos (assets/astronaut.jpg is 512×512):

* **canvas gestures** (server side): ``handlers.on_gesture`` for a selection event and for a
  drag's ``move`` edit with the canvas value it returns (pixel-edit preview, JPEG, label map).
  What the visitor sees, measured in the browser, is ``bench/canvas.py``.
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
    ap = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    seq = iter(range(1, 10**9))

    def gesture(**data):
        return h.on_gesture(session, 1.0, gr.EventData(None, {**data, "seq": next(seq)}))

    def moves():  # a drag there and back: two coalesced move edits, each with its new canvas value
        gesture(type="move", ids=[k], dx=40, dy=0)
        gesture(type="move", ids=[k], dx=-40, dy=0)

    print()
    print(
        f"canvas gestures, server side ({session.elements.num_elements} elements; the browser's own figures: bench/canvas.py):"
    )
    print(fmt("  selection event (status only)", timed(lambda: gesture(type="selection", ids=[k]), args.repeats)))
    print(fmt("  drag end: move edit + preview + canvas value (x2)", timed(moves, args.repeats)))

    print("\nupload -> elements (decode, partition with the encoder, overlay):")
    reps = max(3, args.repeats // 5)

    def upload(path):
        sam = backends.partitioner().affinity
        if sam is not None:
            sam.clear()  # a first upload: the SAM encoder runs, as for a new image
        return h.on_image(None, path)

    print(fmt("  astronaut 512x512", timed(lambda: upload(astronaut), reps), "s"))
    print(fmt("  coffee 600x400", timed(lambda: upload(coffee), reps), "s"))

    print("\nedit (CPU default decoder: " + backends.decoder(backends.default_decoder()).describe() + "):")
    gesture(type="move", ids=[k], dx=48, dy=16)
    print(
        fmt(
            "  Generate, 1 candidate, after a move (512x512)",
            timed(lambda: gen.generate(session, backends.default_decoder(), "", 0, 50, 3.0, 1), reps),
            "s",
        )
    )
    spec = json.dumps({"version": 1, "edits": [{"op": "move", "elements": [k], "dx": 48, "dy": 16}]})
    print(
        fmt("  /edit endpoint end to end (partition + decode)", timed(lambda: api.api_edit(astronaut, spec), reps), "s")
    )
    print(
        fmt(
            "  undo + redo (two overlay rebuilds after an edit)",
            timed(lambda: (h.undo(session), h.redo(session)), args.repeats),
            "ms",
        )
    )


if __name__ == "__main__":
    main()
