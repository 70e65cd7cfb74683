"""Issue 10 through the running demo: non-image and bomb uploads to /partition and /edit are one
sentence (not Gradio's generic "upstream app raised an exception"), and /edit reads no server file."""

import json
from pathlib import Path

import pytest
from conftest import serve_demo
from odd_inputs import SECRET, bomb_jpeg, bomb_png

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "assets" / "astronaut.jpg"


@pytest.fixture(scope="module")
def client():
    from gradio_client import Client

    with serve_demo() as url:
        yield Client(url, verbose=False)


@pytest.mark.parametrize(
    "name, data",
    [
        ("notes.png", b"just some text\n" * 20),
        ("page.jpg", b"<!doctype html><html><body>hi</body></html>"),
        ("empty.png", b""),
        ("bomb.png", bomb_png()),
        ("bomb.jpg", bomb_jpeg()),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_non_image_uploads_are_one_sentence(client, tmp_path, name, data):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    path = tmp_path / name
    path.write_bytes(data)
    for api_name, args in (("/partition", ()), ("/edit", (json.dumps({"version": 1, "edits": []}), "pixel", 0))):
        with pytest.raises(AppError) as err:
            client.predict(handle_file(str(path)), *args, api_name=api_name)
        msg = str(err.value)
        assert "upstream" not in msg and "Something went wrong" not in msg, (api_name, msg)
        assert "image" in msg and str(tmp_path) not in msg, (api_name, msg)


def test_edit_reads_no_server_file(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps({"version": SECRET, "edits": []}))
    valid = tmp_path / "valid.json"
    valid.write_text(json.dumps({"version": 1, "edits": []}))
    messages = set()
    for text in (str(planted), str(valid), str(tmp_path / "missing.json"), "~/.bashrc"):
        with pytest.raises(AppError) as err:
            client.predict(handle_file(str(ASTRONAUT)), text, "pixel", 0, api_name="/edit")
        messages.add(str(err.value))
    assert len(messages) == 1 and SECRET not in messages.pop()
