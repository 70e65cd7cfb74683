"""The demo served on 127.0.0.1 and driven through its two named endpoints with gradio_client."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import serve_demo
from PIL import Image

from elements.apply import apply_spec
from elements.edit import footprint
from elements.image_io import load_image
from elements.partition import Partitioner

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "assets" / "astronaut.jpg"
COFFEE = ROOT / "assets" / "coffee.jpg"


@pytest.fixture(scope="module")
def client():
    from gradio_client import Client

    with serve_demo() as url:
        yield Client(url, verbose=False)


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_partition_endpoint(client):
    from gradio_client import handle_file

    overlay, doc = client.predict(handle_file(str(COFFEE)), api_name="/partition")
    doc = json.loads(doc)
    assert read(overlay).shape == (400, 600, 3)  # input size and aspect, not the 512 canvas
    assert doc["image_size"] == [600, 400] and doc["partition"]["backend"] == "slic"
    assert doc["num_elements"] == len(doc["elements"]) > 50
    c = np.array([e["centroid"] for e in doc["elements"]])
    assert (c[:, 0] >= 0).all() and (c[:, 0] < 600).all() and (c[:, 1] < 400).all()


def test_edit_endpoint_changes_only_what_the_spec_says(client):
    from gradio_client import handle_file

    el = Partitioner("slic")(ASTRONAUT)  # the server's partition: same backend, deterministic
    moved = [int(i) for i in np.argsort(-el.areas)[:2]]
    spec = {"version": 1, "seed": 0, "edits": [{"op": "move", "elements": moved, "dx": 48, "dy": 16}]}
    out = read(client.predict(handle_file(str(ASTRONAUT)), json.dumps(spec), "pixel+inpaint", 0, api_name="/edit"))
    inp = load_image(ASTRONAUT).pixels
    assert out.shape == inp.shape

    edited = apply_spec(el, spec)
    touched = el.labels < 0  # dropped pixels are holes the inpainting fills too
    for i in moved:
        touched |= footprint(el, i) | footprint(edited, i)  # where they were and where they are
    gone = np.flatnonzero(el.active & ~edited.active)
    assert gone.size > 0  # the collision rule deleted what the moved elements now cover
    for i in gone:
        touched |= footprint(el, i)
    from elements.decoders.blend import ghost_band
    from elements.decoders.pixel import render

    touched |= ghost_band(render(edited), edited)  # the hole band against ghosts (docs/cpu-editing.md)
    diff = np.abs(out.astype(int) - inp.astype(int)).max(axis=2)
    # a 512² input needs no resampling and the fill writes only hole and band pixels: everything else is exact
    assert diff[~touched].max() == 0, "pixels outside the edited footprints changed"
    # the first moved element's pixels are at their new place (integer shift: an exact copy, then Poisson-blended
    # into its new surroundings: a small smooth correction, measured mean 5.8 levels)
    ys, xs = np.nonzero(footprint(el, moved[0]))
    ok = (ys + 16 < 512) & (xs + 48 < 512)
    shift = np.abs(out[ys[ok] + 16, xs[ok] + 48].astype(int) - inp[ys[ok], xs[ok]])
    assert shift.mean() < 10 and np.median(shift) <= 5
    assert (diff[touched] > 10).mean() > 0.2  # and the edit did change the image there


def test_edit_endpoint_reports_bad_specs_as_sentences(client):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Unknown element id 99999"):
        client.predict(
            handle_file(str(ASTRONAUT)),
            json.dumps({"version": 1, "edits": [{"op": "delete", "elements": [99999]}]}),
            "",
            0,
            api_name="/edit",
        )
    with pytest.raises(AppError, match="JSON|json"):
        client.predict(handle_file(str(ASTRONAUT)), "{not json", "", 0, api_name="/edit")


def test_edit_endpoint_on_a_non_square_photo(client):
    """600×400: the output keeps the input's size; outside the edit it equals the reconstruction (empty spec)
    exactly, and the reconstruction equals the input up to the canvas round trip's resampling."""
    from gradio_client import handle_file

    el = Partitioner("slic")(COFFEE)
    k = int(np.argmax(el.areas))
    spec = {"version": 1, "edits": [{"op": "delete", "elements": [k]}]}
    out = read(client.predict(handle_file(str(COFFEE)), json.dumps(spec), "pixel+inpaint", 0, api_name="/edit"))
    rec = read(
        client.predict(
            handle_file(str(COFFEE)), json.dumps({"version": 1, "edits": []}), "pixel+inpaint", 0, api_name="/edit"
        )
    )
    inp = load_image(COFFEE).pixels
    assert out.shape == rec.shape == inp.shape == (400, 600, 3)
    assert np.abs(rec.astype(int) - inp.astype(int)).mean() < 3.0  # bicubic 600 -> 512 -> 600
    g = el.geometry
    hole = g.labels_to_input(np.where(footprint(el, k) | (el.labels < 0), 1, 0)) > 0
    from elements.decoders.blend import ghost_band
    from elements.decoders.pixel import render

    deleted = apply_spec(el, spec)
    hole |= ghost_band(render(deleted), deleted, 600 / 512)  # the hole band against ghosts, full resolution
    from scipy.ndimage import binary_dilation

    near = binary_dilation(hole, iterations=3)  # bicubic upsampling spreads a canvas pixel over ~2 input pixels
    diff = np.abs(out.astype(int) - rec.astype(int)).max(axis=2)
    assert diff[~near].max() <= 2 and diff[hole].mean() > 2


def test_uploads_over_the_size_limit_are_refused(client, tmp_path):
    import httpx
    from gradio_client import handle_file

    big = tmp_path / "huge.png"
    big.write_bytes(b"\0" * (21 * 1024 * 1024))  # over launch(max_file_size="20mb")
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # gradio_client checks the server's limit
        client.predict(handle_file(str(big)), api_name="/partition")
    with big.open("rb") as f:  # and the server refuses it from any other client
        r = httpx.post(
            client.src.rstrip("/") + "/gradio_api/upload", files={"files": ("huge.png", f, "image/png")}, timeout=60
        )
    assert r.status_code == 413
