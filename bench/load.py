"""Load check of the demo (issue 22): N concurrent visitors of the scriptable API, R rounds.

    python bench/load.py                           # 4 sessions x 4 rounds against a fresh `python app.py`
    python bench/load.py --sessions 20 --rounds 2
    python bench/load.py --url http://127.0.0.1:7860/ [--server-pid PID]   # a server already running
    python bench/load.py --app /elsewhere/app.py   # start another checkout's app.py (an A/B against main)

Each session is one ``gradio_client.Client`` in its own thread. In every round each session
uploads one photo to ``/partition`` and then sends the same photo to ``/edit`` five times
(``--edits``), its spec growing by one random edit each time (a move, a scale or a delete of
one to three elements of that photo that are still there, ids from the ``/partition`` answer;
:func:`random_edit`), as a visitor refining an edit would. Photos cycle through the bundled
ones resized to mixed sizes (:data:`SIZES`, long side), each upload marked so that no two
sessions or rounds send the same picture (:func:`unique_copy`): the server cannot reuse one
visitor's work for another. The rounds are synchronised: a round ends when every session has
finished it; then the server's RSS is read.

Per round it prints: calls, failures, p50/p95 latency of ``/partition`` and ``/edit`` (as the
client sees it: queue wait included), calls/s (the round's calls over its wall time) and the
server's RSS after the round; at the end the server's peak RSS and the load average. A
server it started is stopped by its PID (SIGTERM, then SIGKILL after 20 s). How to read the
table: docs/demo.md, "Serving a crowd".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

#: Long sides of the test photos (the bundled photos resized, aspect kept): a phone thumbnail to a 12 Mpx photo.
SIZES = (320, 640, 1024, 2048)
PHOTOS = ("astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg")


def make_photos(folder: Path) -> list[Path]:
    """The bundled photos at :data:`SIZES` (JPEG q90); photo ``k`` pairs photo ``k % 4`` with size ``k % len(SIZES)``."""
    from PIL import Image

    out = []
    for k in range(max(len(PHOTOS), len(SIZES))):
        name, side = PHOTOS[k % len(PHOTOS)], SIZES[k % len(SIZES)]
        with Image.open(ROOT / "assets" / name) as im:
            im = im.convert("RGB")
            s = side / max(im.size)
            im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)
        path = folder / f"{Path(name).stem}-{side}.jpg"
        im.save(path, quality=90)
        out.append(path)
    return out


def unique_copy(photo: Path, k: int, rnd: int, folder: Path) -> Path:
    """``photo`` with a 4 × 4 corner mark that encodes (session, round): every upload is a new picture.

    So the server partitions every ``/partition`` anew (no visitor sends another's photo); only
    the session's own later ``/edit`` calls on it can reuse that work.
    """
    from PIL import Image

    with Image.open(photo) as im:
        im = im.convert("RGB")
    mark = Image.new("RGB", (4, 4), ((37 * k) % 256, (91 * rnd) % 256, (k * 7 + rnd * 13) % 256))
    im.paste(mark, (0, 0))
    path = folder / f"{photo.stem}-s{k}-r{rnd}.jpg"
    im.save(path, quality=90)
    return path


def random_edit(rng: random.Random, ids: list[int], size: tuple[int, int]) -> dict:
    """One random move, scale or delete of 1-3 of ``ids``; offsets in input pixels (up to 15 % of the side).

    Moves and scales do not delete the elements they cover (``"collide": false``), so a later
    edit of the same spec never names an element that an earlier one removed; the caller drops
    deleted ids from ``ids``.
    """
    pick = sorted(rng.sample(ids, min(len(ids), rng.randint(1, 3))))
    op = rng.choice(("move", "move", "scale", "delete"))
    if op == "move":
        w, h = size
        dx, dy = round(rng.uniform(-0.15, 0.15) * w, 1), round(rng.uniform(-0.15, 0.15) * h, 1)
        return {"op": "move", "elements": pick, "dx": dx, "dy": dy, "collide": False}
    if op == "scale":
        factor = round(rng.choice((rng.uniform(0.6, 0.9), rng.uniform(1.1, 1.6))), 2)
        return {"op": "scale", "elements": pick, "factor": factor, "collide": False}
    return {"op": "delete", "elements": pick}


class Session(threading.Thread):
    """One visitor: per round, ``/partition`` then ``edits`` × ``/edit`` on one photo; records (round, endpoint, s, error)."""

    def __init__(self, k: int, url: str, photos: list[Path], args, barrier: threading.Barrier, records: list) -> None:
        super().__init__(name=f"session-{k}", daemon=True)
        self.k, self.url, self.photos, self.args, self.barrier, self.records = k, url, photos, args, barrier, records
        self.rng = random.Random(args.seed * 1000 + k)

    def call(self, rnd: int, endpoint: str, *inputs):
        t0 = time.perf_counter()
        try:
            out = self.client.predict(*inputs, api_name=endpoint)
            self.records.append((rnd, endpoint, time.perf_counter() - t0, None))
            if self.args.verbose:
                print(f"  session {self.k} round {rnd} {endpoint} {time.perf_counter() - t0:.1f} s", flush=True)
            return out
        except Exception as err:  # gradio_client raises AppError (the server's sentence) or a transport error
            why = f"{type(err).__name__}: {str(err)[:160]}"
            self.records.append((rnd, endpoint, time.perf_counter() - t0, why))
            if self.args.verbose:
                print(f"  session {self.k} round {rnd} {endpoint} FAILED: {why}", flush=True)
            return None

    def run(self) -> None:
        from gradio_client import Client, handle_file

        self.client = Client(self.url, verbose=False)
        for rnd in range(1, self.args.rounds + 1):
            photo = unique_copy(self.photos[(self.k + rnd) % len(self.photos)], self.k, rnd, self.photos[0].parent)
            out = self.call(rnd, "/partition", handle_file(str(photo)))
            if out is not None:
                doc = json.loads(out[1])
                ids = [e["id"] for e in doc["elements"]]
                size = tuple(doc["image_size"])  # (W, H) input pixels
                edits = []
                for _ in range(self.args.edits):
                    edits.append(random_edit(self.rng, ids, size))
                    if edits[-1]["op"] == "delete":
                        ids = [i for i in ids if i not in edits[-1]["elements"]]
                    spec = {"version": 1, "edits": edits, "seed": self.rng.randrange(1000)}
                    self.call(rnd, "/edit", handle_file(str(photo)), json.dumps(spec), self.args.decoder, None)
            self.barrier.wait()  # the round ends for everyone
            self.barrier.wait()  # ... and the main thread has read the RSS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.setdefault("HF_HUB_OFFLINE", "1")
    log = open(log_path, "w")
    server = subprocess.Popen(
        [sys.executable, str(app), "--port", str(port)], cwd=app.parent, stdout=log, stderr=subprocess.STDOUT, env=env
    )
    return server, f"http://127.0.0.1:{port}/"


def wait_ready(url: str, server: subprocess.Popen | None, timeout: float = 300) -> None:
    """Until the page answers and a first ``/partition`` returns (the partition model loaded)."""
    import urllib.request

    from gradio_client import Client, handle_file

    t0 = time.time()
    while True:
        if server is not None and server.poll() is not None:
            raise SystemExit(f"error: the server exited with status {server.returncode} before it was ready")
        try:
            urllib.request.urlopen(url, timeout=5).read(1)
            break
        except OSError:
            if time.time() - t0 > timeout:
                raise SystemExit(f"error: {url} did not answer within {timeout:.0f} s") from None
            time.sleep(0.5)
    Client(url, verbose=False).predict(handle_file(str(ROOT / "assets" / "astronaut.jpg")), api_name="/partition")


def stop_server(pid: int) -> None:
    """SIGTERM the server by its PID; SIGKILL after 20 s."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(200):
        try:
            os.waitpid(pid, os.WNOHANG)
            os.kill(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def rss_mb(pid: int | None) -> tuple[float, float]:
    """(RSS, peak RSS) in MB of process ``pid`` from /proc (Linux); NaN when unknown."""
    if pid is None:
        return float("nan"), float("nan")
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return float("nan"), float("nan")
    get = lambda key: next((int(x.split()[1]) / 1024 for x in lines if x.startswith(key)), float("nan"))
    return get("VmRSS:"), get("VmHWM:")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--sessions", type=int, default=4, help="concurrent visitors (default 4)")
    p.add_argument("--rounds", type=int, default=4, help="rounds per visitor (default 4)")
    p.add_argument("--edits", type=int, default=5, help="/edit calls per round after its /partition (default 5)")
    p.add_argument("--decoder", default="", help="decoder named in /edit (default: the server's default)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random edits (default 0)")
    p.add_argument("--url", help="a running demo to load instead of starting app.py")
    p.add_argument("--server-pid", type=int, help="with --url: the server's PID, to read its RSS")
    p.add_argument("--app", type=Path, default=ROOT / "app.py", help="the app.py to start (default: this checkout's)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every call as it returns")
    p.add_argument("--label", default="", help="a name printed on every row (to tell interleaved runs apart)")
    args = p.parse_args(argv)
    if args.sessions < 1 or args.rounds < 1 or args.edits < 0:
        p.error("--sessions and --rounds must be at least 1, --edits at least 0")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed run still stops its server (finally)
    server = None
    with tempfile.TemporaryDirectory(prefix="eie-load-") as tmp:
        photos = make_photos(Path(tmp))
        try:
            if args.url:
                url, pid = args.url, args.server_pid
            else:
                server, url = start_server(args.app.resolve(), Path(tmp) / "server.log")
                pid = server.pid
            t_start = time.perf_counter()
            wait_ready(url, server)
            rss0, _ = rss_mb(pid)
            print(
                f"server {url} (pid {pid}) ready in {time.perf_counter() - t_start:.0f} s, RSS {rss0:.0f} MB; "
                f"{args.sessions} sessions x {args.rounds} rounds x (1 /partition + {args.edits} /edit); "
                f"photos {', '.join(ph.name for ph in photos)}; cpus {os.cpu_count()}, "
                f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
                flush=True,
            )
            failures = run_rounds(args, url, pid, photos)
            _, peak = rss_mb(pid)
            print(f"server peak RSS {peak:.0f} MB; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        finally:
            if server is not None:
                stop_server(server.pid)
                if server.returncode not in (None, 0, -signal.SIGTERM):
                    tail = (Path(tmp) / "server.log").read_text(errors="replace").splitlines()[-20:]
                    print("server log (last lines):\n" + "\n".join(tail), file=sys.stderr)
    return 1 if failures else 0


def run_rounds(args, url: str, pid: int | None, photos: list[Path]) -> int:
    records: list = []
    barrier = threading.Barrier(args.sessions + 1)
    sessions = [Session(k, url, photos, args, barrier, records) for k in range(args.sessions)]
    head = f"{'round':>5} {'calls':>5} {'fail':>4} {'part p50':>9} {'p95':>7} {'edit p50':>9} {'p95':>7} {'calls/s':>8} {'RSS MB':>7}"
    print((args.label + " " if args.label else "") + head, flush=True)
    t_round = time.perf_counter()
    for s in sessions:
        s.start()
    failures, errors = 0, []
    total_calls, t_all = 0, 0.0
    for rnd in range(1, args.rounds + 1):
        barrier.wait()
        dt = time.perf_counter() - t_round
        rss, _ = rss_mb(pid)
        rows = [r for r in records if r[0] == rnd]
        fails = [r for r in rows if r[3] is not None]
        failures += len(fails)
        errors += [r[3] for r in fails]
        lat = {e: [r[2] for r in rows if r[1] == e and r[3] is None] for e in ("/partition", "/edit")}
        total_calls, t_all = total_calls + len(rows), t_all + dt
        print(
            (args.label + " " if args.label else "")
            + f"{rnd:>5} {len(rows):>5} {len(fails):>4} {pct(lat['/partition'], 0.5):>8.1f}s {pct(lat['/partition'], 0.95):>6.1f}s"
            f" {pct(lat['/edit'], 0.5):>8.1f}s {pct(lat['/edit'], 0.95):>6.1f}s {len(rows) / dt:>8.3f} {rss:>7.0f}",
            flush=True,
        )
        t_round = time.perf_counter()
        barrier.wait()
    for s in sessions:
        s.join(timeout=60)
    print(
        f"all rounds: {total_calls} calls, {failures} failures, {total_calls / t_all:.3f} calls/s; "
        f"median latency /partition {statistics.median([r[2] for r in records if r[1] == '/partition']):.1f} s, "
        f"/edit {statistics.median([r[2] for r in records if r[1] == '/edit'] or [float('nan')]):.1f} s"
    )
    for e in sorted(set(errors))[:5]:
        print(f"  failure: {e}")
    return failures


if __name__ == "__main__":
    raise SystemExit(main())
