"""Rebuild the example strips of the README section "Examples": ``python docs/examples/make_examples.py`` from the repo root.

Runs ``python -m elements edit`` once per example spec with ``pixel`` and ``pixel+inpaint``
(SLIC partition, the offline default) and writes ``docs/examples/<op>.png``: input | pixel |
pixel+inpaint, scaled to 40 % and palette-quantised to keep the repository small.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
IMAGE = ROOT / "assets" / "astronaut.jpg"


def main() -> None:
    src = np.asarray(Image.open(IMAGE).convert("RGB"))
    with tempfile.TemporaryDirectory() as tmp:
        for op in ("move", "scale", "delete", "compose"):
            outs = []
            for decoder in ("pixel", "pixel+inpaint"):
                out = Path(tmp) / f"{op}_{decoder}.png"
                subprocess.run([sys.executable, "-m", "elements", "edit", str(IMAGE), "--spec", str(HERE / f"{op}.json"),
                                "--out", str(out), "--decoder", decoder, "--backend", "slic"], cwd=ROOT, check=True)
                outs.append(np.asarray(Image.open(out)))
            gap = np.full((src.shape[0], 8, 3), 255, np.uint8)
            strip = Image.fromarray(np.concatenate([src, gap, outs[0], gap, outs[1]], axis=1))
            strip = strip.resize((strip.width * 2 // 5, strip.height * 2 // 5), Image.LANCZOS)
            strip.quantize(colors=160, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(HERE / f"{op}.png", optimize=True)


if __name__ == "__main__":
    main()
