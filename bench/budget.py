"""Pixel-budget figures (issue 19; docs/security.md, "Pixel budget"): peak RSS and time per file.

    python bench/budget.py [--commands partition-slic,edit-slic,partition,edit] [--repeats 1] [--files ...]

Makes the files with tests/odd_inputs.py:

* ``sof12000.jpg``: the ~1.3 KB JPEG, a 64x64 image whose SOF header declares 12000x12000 (refused);
* ``photo40.jpg``: a real photo (assets/rocket.jpg) upscaled to 40 Mpx (kept at its full size);
* ``photo108.jpg``: the same photo at ~108 Mpx, a 12000x9000-class camera file (decoded at 1/4,
  used at 40 Mpx, and said so);
* ``photo40.png``: the 40 Mpx photo as PNG, the refusal limit of the formats decoded whole;
* ``bomb40000.png``: issue 22's 40000x40000 1-bit PNG bomb (refused);
* ``trunc8.tif``: a TIFF truncated after 8 bytes (refused);
* ``photo.jpg``: the photo itself (640x427), the reference a large file is compared with.

Each command runs in a fresh child (``python -m elements ...``, as a user runs it); the figures
are the child's own, from ``os.wait4``: peak RSS (``ru_maxrss``), CPU seconds (user + system)
and wall seconds, with the exit status, the number of stderr lines and the output's size. Files
and commands are interleaved, repeat after repeat; the table gives the median wall time and the
largest peak. The machine is shared: the load average is printed before and after, and CPU
seconds are the figure that load does not inflate. Targets (issue 19): at most 1 GB and 6 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the odd-input generators

COMMANDS = {
    "partition-slic": ("partition", ["--backend", "slic"]),
    "edit-slic": ("edit", ["--backend", "slic"]),
    "partition": ("partition", []),  # defaults: auto (the distilled SAM on a CPU when it can be had)
    "edit": ("edit", []),  # defaults: auto partition, auto decoder
}
LIMIT_MB, LIMIT_S = 1024, 6.0


def make_files(folder: Path, names: list[str]) -> dict[str, Path]:
    import warnings

    from odd_inputs import bomb_png_40000, photo_jpeg, sof_jpeg
    from PIL import Image

    warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # reading sizes of files we made

    photo = ROOT / "assets" / "rocket.jpg"
    makers = {
        "photo.jpg": lambda: photo.read_bytes(),
        "sof12000.jpg": lambda: sof_jpeg(12000, 12000),
        "photo40.jpg": lambda: photo_jpeg(photo, 40),
        "photo108.jpg": lambda: photo_jpeg(photo, 108),
        "photo40.png": None,
        "bomb40000.png": bomb_png_40000,
        "trunc8.tif": lambda: _tiff_bytes()[:8],
    }
    out = {}
    for name in names:
        path = folder / name
        if name == "photo40.png":
            src = out.get("photo40.jpg") or make_files(folder, ["photo40.jpg"])["photo40.jpg"]
            with Image.open(src) as im:
                im.save(path, compress_level=1)
        else:
            path.write_bytes(makers[name]())
        out[name] = path
    return out


def _tiff_bytes() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    b = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(b, "TIFF")
    return b.getvalue()


def spec_for(path: Path, folder: Path) -> Path:
    """A one-element move at the image's centre, 1/20 of its width to the right (any spec for refused files)."""
    import warnings

    from PIL import Image

    warnings.simplefilter("ignore")  # the sizes of files made to be odd

    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception:
        w, h = 100, 100
    spec = folder / f"{path.name}.spec.json"
    move = {"op": "move", "points": [[w / 2, h / 2]], "dx": round(w / 20), "dy": 0}
    spec.write_text(json.dumps({"version": 1, "edits": [move]}))
    return spec


#: Runs one command and prints its rusage. The bench's own process is large (it made the files), and
#: Linux carries the parent's peak RSS into a forked child's ru_maxrss across exec; this launcher
#: imports nothing heavy (~10 MB), so the child's figure is its own.
LAUNCHER = """
import json, os, subprocess, sys, time
err = open(sys.argv[1], "w")
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=err)
_, status, ru = os.wait4(proc.pid, 0)
wall = time.perf_counter() - t0
proc.returncode = os.waitstatus_to_exitcode(status)
print(json.dumps({"code": proc.returncode, "wall": wall, "cpu": ru.ru_utime + ru.ru_stime,
                  "peak_mb": ru.ru_maxrss / 1024}))
"""


def child(args: list[str], folder: Path, timeout: float = 600) -> dict:
    """Run ``python -m elements ARGS``; returns its exit status, wall and CPU seconds, peak RSS (MB) and stderr."""
    err_path = folder / "stderr.txt"
    cmd = [sys.executable, "-c", LAUNCHER, str(err_path), sys.executable, "-m", "elements", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout, check=True)
    r = json.loads(out.stdout)
    r["stderr"] = err_path.read_text().strip().splitlines()
    return r


def output_size(command: str, out: Path) -> str:
    from PIL import Image

    target = out / "labels.png" if command == "partition" else out
    if not target.exists():
        return "-"
    with Image.open(target) as im:
        return f"{im.size[0]}x{im.size[1]}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--commands", default=",".join(COMMANDS), help=f"comma-separated, of {', '.join(COMMANDS)}")
    p.add_argument(
        "--files", default="photo.jpg,sof12000.jpg,photo40.jpg,photo108.jpg,photo40.png,bomb40000.png,trunc8.tif"
    )
    p.add_argument("--repeats", type=int, default=1, help="interleaved repeats (median wall, largest peak)")
    p.add_argument("--json", default=None, help="also write the raw figures to this file")
    p.add_argument("--keep", default=None, metavar="DIR", help="make the files and outputs in DIR and keep them")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    commands = [c for c in args.commands.split(",") if c]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="budget-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        files = make_files(folder, args.files.split(","))
        runs: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.repeats):
            for name, path in files.items():
                for c in commands:
                    verb, flags = COMMANDS[c]
                    out = folder / (f"{name}.{c}" + (".png" if verb == "edit" else ""))
                    extra = ["--spec", str(spec_for(path, folder))] if verb == "edit" else []
                    r = child([verb, str(path), *extra, "--out", str(out), *flags], folder)
                    r["output"] = output_size(verb, out) if r["code"] == 0 else "-"
                    runs.setdefault((name, c), []).append(r)
        print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        head = f"{'file':<14} {'bytes':>11} {'command':<15} {'exit':>4} {'err':>3} {'wall s':>7} {'cpu s':>6} {'peak MB':>8}  {'output':<11} verdict"
        print(head)
        print("-" * len(head))
        table = []
        for (name, c), rs in runs.items():
            wall = statistics.median(r["wall"] for r in rs)
            cpu = statistics.median(r["cpu"] for r in rs)
            peak = max(r["peak_mb"] for r in rs)
            r = rs[-1]
            ok = peak <= LIMIT_MB and wall <= LIMIT_S
            verdict = "ok" if ok else ("over (cpu ok)" if peak <= LIMIT_MB and cpu <= LIMIT_S else "over")
            size = files[name].stat().st_size
            print(
                f"{name:<14} {size:>11,} {c:<15} {r['code']:>4} {len(r['stderr']):>3} {wall:>7.2f} {cpu:>6.2f} "
                f"{peak:>8.0f}  {r['output']:<11} {verdict}"
            )
            table.append(
                {
                    "file": name,
                    "bytes": size,
                    "command": c,
                    **{k: r[k] for k in ("code", "output")},
                    "stderr": r["stderr"],
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "peak_mb": peak,
                }
            )
        notes = {(t["file"], t["command"]): t["stderr"] for t in table if t["stderr"]}
        print("\nstderr (last run of each):")
        for (name, c), lines in notes.items():
            for line in lines:
                print(f"  {name} {c}: {line[:200]}")
        if args.json:
            Path(args.json).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
