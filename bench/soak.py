"""Reliability figures of issue 10 (docs/security.md). Prints every number it measures.

    python bench/soak.py [--requests 300] [--max-seconds 900] [--skip-app]

1. **Bombs through the CLI**: ``python -m elements partition`` on the 17 KB 12000x12000 1-bit PNG
   and the 1.3 KB truncated JPEG that claims 12000x12000 (tests/odd_inputs.py makes both):
   exit status, wall time and the child's peak RSS.
2. **10,000 moves through the CLI**: ``python -m elements edit`` with a spec of 10,000
   one-element moves (the schema's maximum) on chelsea, grid partition, ``pixel`` decoder.
3. **The demo**: starts ``app.py`` on 127.0.0.1 (a free port) in a child process, and with
   gradio_client sends both bombs to ``/partition`` and ``/edit`` (server peak RSS and time per
   call), then ``--requests`` calls (``/partition`` and ``/edit`` on the bundled photos, bad
   specs, non-image uploads), and prints the server's RSS before and after, and its peak.
   Bounded: stops after ``--max-seconds`` whatever the count.

The machine is shared (five helpers at once when these figures were taken): times are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the odd-input generator
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def child_run(args: list[str], timeout: float = 600) -> tuple[int, float, float, str]:
    """Run ``python -m elements ...``; returns (exit code, seconds, peak RSS MB of the child, last stderr line)."""
    # VmHWM is this process image's own peak (ru_maxrss would carry the parent's peak across exec)
    wrapper = (
        "import runpy, sys; from pathlib import Path; sys.argv = ['elements'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('elements', run_name='__main__')\n"
        "finally:\n    print('PEAK', next(l.split()[1] for l in Path('/proc/self/status').read_text().splitlines()"
        " if l.startswith('VmHWM')), file=sys.stderr)"
    )
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-c", wrapper, *args], check=False, capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )
    dt = time.perf_counter() - t0
    lines = p.stderr.strip().splitlines()
    peak = next((int(x.split()[1]) / 1024 for x in lines if x.startswith("PEAK")), float("nan"))
    other = [x for x in lines if not x.startswith("PEAK")]
    return p.returncode, dt, peak, (other[-1] if other else "")


def bombs(tmp: Path) -> dict[str, Path]:
    from odd_inputs import bomb_jpeg, bomb_png

    out = {"png_1bit_12000": tmp / "bomb.png", "jpeg_trunc_12000": tmp / "bomb.jpg"}
    out["png_1bit_12000"].write_bytes(bomb_png())
    out["jpeg_trunc_12000"].write_bytes(bomb_jpeg())
    return out


def cli_figures(tmp: Path) -> None:
    for name, path in bombs(tmp).items():
        code, dt, peak, err = child_run(["partition", str(path), "--out", str(tmp / "out"), "--backend", "grid"])
        print(
            f"CLI bomb {name} ({path.stat().st_size:,} bytes): exit {code}, {dt:.2f} s, peak RSS {peak:.0f} MB; {err}"
        )
    from PIL import Image
    from skimage import data

    img = tmp / "chelsea.png"
    Image.fromarray(data.chelsea()).save(img)
    spec = tmp / "moves.json"
    spec.write_text(
        json.dumps(
            {
                "version": 1,
                "edits": [
                    {"op": "move", "elements": [100], "dx": 1 if i % 2 == 0 else -1, "dy": 0} for i in range(10_000)
                ],
            }
        )
    )
    code, dt, peak, err = child_run(
        ["edit", str(img), "--spec", str(spec), "--out", str(tmp / "o.png"), "--backend", "grid", "--decoder", "pixel"]
    )
    print(
        f"CLI 10,000 one-element moves: exit {code}, {dt:.1f} s in all (start-up, partition, edits, decode), "
        f"peak RSS {peak:.0f} MB {err}"
    )
    from elements.apply import apply_spec
    from elements.partition import Partitioner
    from elements.spec import load_spec

    el = Partitioner("grid")(img)
    s = load_spec(spec)
    t0 = time.perf_counter()
    apply_spec(el, s)
    print(f"  of which apply_spec (edits only, validated spec): {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    load_spec(spec)
    print(f"  and load_spec (JSON Schema validation of 10,000 edits): {time.perf_counter() - t0:.1f} s")


def collision_ratio(moves: int = 400, repeats: int = 3) -> None:
    """The windowed collision rule against the full-canvas one it replaced (same moves, interleaved repeats)."""
    from skimage import data

    sys.path.insert(0, str(ROOT / "tests"))
    from test_security import (
        _collide_reference,  # the rule as first written, kept as the tests' reference
    )

    from elements import edit
    from elements.partition import Partitioner

    el0 = Partitioner("grid")(data.chelsea())

    def run(rule) -> float:
        el, t = el0, 0.0
        for i in range(moves):
            moved = edit.move(el, [100], 1.0 if i % 2 == 0 else -1.0, 0.0, collide=False)
            t0 = time.perf_counter()
            active = rule(moved)
            t += time.perf_counter() - t0
            el = moved.replace(active=active)
        return t

    new = lambda m: edit.collide_with(m, [100]).active
    old = lambda m: _collide_reference(m, [100])
    times = {"windowed": [], "full canvas": []}
    for _ in range(repeats):
        times["full canvas"].append(run(old))
        times["windowed"].append(run(new))
    a, b = min(times["full canvas"]), min(times["windowed"])
    print(
        f"collision rule, {moves} one-element moves (best of {repeats}, interleaved): full canvas {1000 * a / moves:.2f} ms "
        f"per move, windowed {1000 * b / moves:.2f} ms per move ({a / b:.1f}x faster)"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_figures(tmp: Path, requests: int, max_seconds: float) -> None:
    import psutil
    from gradio_client import Client, handle_file

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        proc = psutil.Process(server.pid)
        client = None
        for _ in range(240):
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                time.sleep(0.5)
        if client is None:
            print("the app did not start")
            return

        def rss() -> float:
            return proc.memory_info().rss / 2**20

        def hwm() -> float:  # the server's peak RSS so far (Linux)
            for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM"):
                    return int(line.split()[1]) / 1024
            return float("nan")

        photos = sorted((ROOT / "assets").glob("*.jpg"))
        client.predict(handle_file(str(photos[0])), api_name="/partition")  # warm-up: models, caches
        print(f"demo: RSS after start-up and one warm-up call {rss():.0f} MB (peak {hwm():.0f} MB)")
        empty = json.dumps({"version": 1, "edits": []})
        for name, path in bombs(tmp).items():
            for api_name, args in (("/partition", ()), ("/edit", (empty, "pixel", 0))):
                t0 = time.perf_counter()
                try:
                    client.predict(handle_file(str(path)), *args, api_name=api_name)
                    what = "accepted"
                except Exception as err:  # gradio_client raises AppError with the sentence
                    what = f"refused: {str(err)[:90]}"
                print(
                    f"demo bomb {name} -> {api_name}: {time.perf_counter() - t0:.2f} s, server RSS {rss():.0f} MB, "
                    f"peak {hwm():.0f} MB; {what}"
                )
        text = tmp / "notes.png"
        text.write_bytes(b"not an image\n" * 50)
        calls = [
            lambda p: client.predict(handle_file(str(p)), api_name="/partition"),
            lambda p: client.predict(
                handle_file(str(p)),
                json.dumps({"version": 1, "edits": [{"op": "delete", "points": [[100, 100]]}]}),
                "pixel+inpaint",
                0,
                api_name="/edit",
            ),
            lambda p: client.predict(
                handle_file(str(p)), '{"version": 1, "edits": [{"op": "spin"}]}', "", 0, api_name="/edit"
            ),
            lambda p: client.predict(handle_file(str(text)), api_name="/partition"),
        ]
        before = rss()
        t_start = time.perf_counter()
        done = ok = refused = errors = 0
        for i in range(requests):
            if time.perf_counter() - t_start > max_seconds:
                break
            try:
                calls[i % len(calls)](photos[i % len(photos)])
                ok += 1
            except Exception as err:
                if "upstream" in str(err) or "Something went wrong" in str(err):
                    errors += 1
                else:
                    refused += 1
            done += 1
        dt = time.perf_counter() - t_start
        print(
            f"demo: {done} requests in {dt:.0f} s ({ok} answered, {refused} refused with a sentence, {errors} generic "
            f"errors); server RSS before {before:.0f} MB, after {rss():.0f} MB, peak {hwm():.0f} MB"
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--requests", type=int, default=300, help="requests sent to the demo (default 300)")
    p.add_argument("--max-seconds", type=float, default=900, help="stop sending after this many seconds (default 900)")
    p.add_argument("--skip-app", action="store_true", help="only the CLI figures")
    p.add_argument("--skip-cli", action="store_true", help="only the demo figures")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not args.skip_cli:
            collision_ratio()
            cli_figures(tmp)
        if not args.skip_app:
            app_figures(tmp, args.requests, args.max_seconds)
    print(
        f"(bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; shared machine, "
        "times are noisy)"
    )


if __name__ == "__main__":
    main()
