"""Partition benchmark with the real distilled SAM (vit_t). Prints its figures; see docs/sam.md.

    python bench/partition.py --table windows [--modes legacy,full,auto] [--repeats 1]
    python bench/partition.py --table eq1

``windows`` (Alg. 2 decode, on 8 real photos: the 4 bundled ones and 4 scikit-image
photos): per photo and mode, the seconds of upload → elements (encoder + Alg. 2, the encoder
timed once per photo and added; ``legacy`` is the first version's full decode, ``full`` today's
exact one, ``auto``/N the upscaling window), the pixel agreement of the label map with the full decode's
(fraction of content pixels whose element is the same query), boundary-F at 2 px against the
full decode's boundaries, and N. Modes of one photo run interleaved, so machine load hits
them alike; the ratio full / mode is the robust figure.

``eq1`` (Eq. 1 distance form, 4 bundled photos, full decode): dropped pixels and the object
error of each variant — for each reference object (SAM's own mask for a hand-drawn box), the
union U of the elements >= 50 % inside the reference mask R; error = |U Δ R| / |R|. pixel SLIC
is scored the same way for comparison.

``ort``: the batched full decoder exported to ONNX (image-side tensors as inputs) and run in
onnxruntime, against torch: time per 64 prompts and max |Δlogit|, on two bundled photos.

``rocket``: clicks needed to select the rocket in assets/rocket.jpg with SLIC cells (one per cell
>= 50 % inside SAM's rocket mask) and with one object click; writes docs/images/sam_vs_slic.png.

Targets: upload → elements <= 3 s at 512² on a 2-core CPU; a window is the default only if its
pixel agreement is >= 97 % on every photo.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

#: Hand-drawn boxes (input pixels, x0 y0 x1 y1) around objects of the bundled photos.
OBJECTS = {
    "astronaut": {
        "hair": (150, 12, 300, 125),
        "patch": (133, 348, 208, 425),
        "helmet": (275, 343, 505, 512),
        "shuttle": (350, 0, 470, 285),
    },
    "rocket": {"rocket": (295, 125, 340, 405)},
    "coffee": {"cup": (172, 18, 410, 300), "spoon": (322, 65, 425, 325)},
    "chelsea": {"eye": (135, 85, 205, 145), "nose": (235, 220, 295, 265)},
}


def photos(extra: bool = True) -> dict[str, np.ndarray]:
    """The bundled photos, then real photos from scikit-image (grey ones made RGB)."""
    from PIL import Image
    from skimage import data

    out = {p.stem: np.asarray(Image.open(p).convert("RGB")) for p in sorted((ROOT / "assets").glob("*.jpg"))}
    if extra:
        for name in ("camera", "coins", "clock", "immunohistochemistry"):
            img = getattr(data, name)()
            out[name] = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
    return out


def boundary_f(a: np.ndarray, b: np.ndarray, valid: np.ndarray, tol: int = 2) -> float:
    """Boundary F-measure of label maps ``a`` vs ``b`` with a ``tol``-pixel match radius."""
    from scipy import ndimage

    def edges(lab):
        e = np.zeros(lab.shape, bool)
        e[:, 1:] |= lab[:, 1:] != lab[:, :-1]
        e[1:] |= lab[1:] != lab[:-1]
        return e & valid

    ea, eb = edges(a), edges(b)
    if not ea.any() and not eb.any():
        return 1.0
    da, db = ndimage.distance_transform_edt(~ea), ndimage.distance_transform_edt(~eb)
    prec = (db[ea] <= tol).mean() if ea.any() else 0.0
    rec = (da[eb] <= tol).mean() if eb.any() else 0.0
    return float(2 * prec * rec / max(prec + rec, 1e-12))


def agreement(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> float:
    """Fraction of content pixels with the same label (labels are query-ordered, so ids are comparable)."""
    from scipy.optimize import linear_sum_assignment

    # ids are renumbered after clean-up; match them by maximum overlap to be safe
    m = valid & (a >= 0) & (b >= 0)
    na, nb = a.max() + 1, b.max() + 1
    conf = np.zeros((na, nb), np.int64)
    np.add.at(conf, (a[m], b[m]), 1)
    r, c = linear_sum_assignment(-conf)
    return float(conf[r, c].sum() / valid.sum())


def legacy_affinity(sam):
    """The first version's exact full decode (commit feb96f0), for the speed comparison only.

    It gathers per-image tensors per prompt (``keys_all[idx]``, ``k0[idx]``, …: 64 × 4096 × 256
    floats per chunk) and runs segment-anything's attention and ``output_upscaling`` modules.
    """
    import math

    import torch

    from elements.partition.sam import SamAffinity

    def attend(attn, q, k, v):
        q, k, v = (attn._separate_heads(t, attn.num_heads) for t in (q, k, v))
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        return attn.out_proj(attn._recombine_heads(w @ v))

    class Legacy(SamAffinity):
        def _decode_windows(self, coords, window):
            pe, md = self.model.prompt_encoder, self.model.mask_decoder
            g = self.predictor.features.shape[-1]
            b = coords.shape[0]
            labels = torch.ones(coords.shape[:2], dtype=torch.int64)
            sparse, _ = pe(points=(coords, labels), boxes=None, masks=None)
            idx = torch.arange(g * g)[None].expand(b, -1)
            out_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], dim=0)
            tokens = torch.cat([out_tokens[None].expand(b, -1, -1), sparse], dim=1)
            tr = md.transformer
            keys_all, pos_all, k0, v0, q0 = self._image_side()
            keys, key_pe = keys_all[idx], pos_all[idx]
            l0 = tr.layers[0]
            queries = l0.norm1(l0.self_attn(q=tokens, k=tokens, v=tokens))
            a = l0.cross_attn_token_to_image
            queries = l0.norm2(queries + attend(a, a.q_proj(queries + tokens), k0[idx], v0[idx]))
            queries = l0.norm3(queries + l0.mlp(queries))
            a = l0.cross_attn_image_to_token
            keys = l0.norm4(keys + attend(a, q0[idx], a.k_proj(queries + tokens), a.v_proj(queries)))
            for layer in tr.layers[1:]:
                queries, keys = layer(queries=queries, keys=keys, query_pe=tokens, key_pe=key_pe)
            attn = tr.final_attn_token_to_image(q=queries + tokens, k=keys + key_pe, v=keys)
            hs = tr.norm_final_attn(queries + attn)
            up = md.output_upscaling(keys.transpose(1, 2).reshape(b, -1, g, g))
            low = torch.einsum("bc,bchw->bhw", md.output_hypernetworks_mlps[0](hs[:, 1]), up)
            return low, torch.zeros((b, 2), dtype=torch.int64)

    return Legacy(sam, window="full")


def run_windows(args, part_cls, load_tinysam) -> None:
    import torch

    from elements.image_io import load_image
    from elements.partition import to_canvas

    sam = load_tinysam(allow_npm=False)
    modes = [m if m in ("full", "auto", "legacy") else int(m) for m in args.modes.split(",")]
    parts = {m: part_cls("sam", sam_model=sam, sam_window="full" if m == "legacy" else m) for m in modes}
    if "legacy" in parts:
        parts["legacy"].affinity = legacy_affinity(sam)
    print(
        f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f} at start "
        f"(machine shared with other jobs: compare modes by ratio)"
    )
    print(
        f"{'photo':<22}{'encoder s':>10}"
        + "".join(f"{f'{m} s':>9}{f'{m} agree':>11}{f'{m} bF2':>9}{f'{m} N':>6}{f'{m} drop':>9}" for m in modes)
    )
    worst = dict.fromkeys(modes, 1.0)
    tot = dict.fromkeys(modes, 0.0)
    for name, img in photos().items():
        loaded = load_image(img)
        geometry, canvas = to_canvas(loaded)
        valid = geometry.content_mask()
        aff = parts[modes[0]].affinity
        aff._image_key = None
        t = time.perf_counter()
        aff.set_image(canvas)
        t_enc = time.perf_counter() - t
        feats = aff.embedding_state()
        res = {}
        for _ in range(args.repeats):
            for m in modes:  # interleaved
                parts[m].affinity.restore_embedding(feats)
                t = time.perf_counter()
                lab = parts[m].labels(canvas, geometry)
                dt = time.perf_counter() - t
                res[m] = (min(dt, res.get(m, (np.inf,))[0]), lab)
        ref = res["full"][1] if "full" in res else None
        row = f"{name:<22}{t_enc:>10.2f}"
        for m in modes:
            dt, lab = res[m]
            agree = agreement(lab, ref, valid) if ref is not None else float("nan")
            bf = boundary_f(lab, ref, valid) if ref is not None else float("nan")
            worst[m] = min(worst[m], agree)
            tot[m] += dt + t_enc
            drop = ((lab < 0) & valid).sum() / valid.sum()
            row += f"{dt + t_enc:>9.2f}{100 * agree:>10.2f}%{bf:>9.3f}{lab.max() + 1:>6}{100 * drop:>8.2f}%"
        resolved = {m: parts[m].affinity.last_window for m in modes if m == "auto"}
        print(row + "".join(f"  (auto = {w})" for w in resolved.values()), flush=True)
    print("worst pixel agreement with full decode: " + ", ".join(f"{m}: {100 * w:.2f}%" for m, w in worst.items()))
    base = "legacy" if "legacy" in tot else "full" if "full" in tot else None
    if base:
        print(
            "mean upload→elements s: "
            + ", ".join(f"{m}: {t / len(photos()):.2f}" for m, t in tot.items())
            + f"; speed-up vs {base}: "
            + ", ".join(f"{m}: {tot[base] / t:.2f}x" for m, t in tot.items())
        )
    print(f"load average at end {os.getloadavg()[0]:.1f}")


def run_ort(args, part_cls, load_tinysam) -> None:
    """The batched full decode (transformer + upscaling) exported to ONNX and run in onnxruntime vs torch.

    The per-image tensors are graph inputs, so one export serves every image. Prints the
    export time, interleaved times per 64 prompts and max |Δlogit| (target: 1e-4).
    """
    import onnxruntime as ort
    import torch
    from PIL import Image

    from elements.partition.algorithm import query_grid
    from elements.partition.sam import SamAffinity, _upscale_dot

    sam = load_tinysam(allow_npm=False)
    aff = SamAffinity(sam, window="full")
    md = sam.mask_decoder

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sam = sam  # its weights become the graph's initializers

        def forward(self, sparse, keys, pos, k0, v0, q0):  # (B, 2, C) prompt embeddings, the (4096, ·) image side
            b = sparse.shape[0]
            out_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], dim=0)
            tokens = torch.cat([out_tokens[None].expand(b, -1, -1), sparse], dim=1)
            hs, src = aff._two_way(tokens, (keys, pos, k0, v0, q0))
            return _upscale_dot(md.output_upscaling, src.view(b, 64, 64, -1), md.output_hypernetworks_mlps[0](hs[:, 1]))

    dec = Decoder().eval()
    p = aff.predictor
    names = ["sparse", "keys", "pos", "k0", "v0", "q0"]
    print(f"load average {os.getloadavg()[0]:.1f} at start (machine shared with other jobs)")
    sess = None
    for name, img in list(photos(extra=False).items())[:2]:
        canvas = np.asarray(Image.fromarray(img).resize((512, 512)))
        aff.set_image(canvas)
        q = query_grid((0.0, 0.0, 1.0, 1.0), 256)[:64]
        coords = torch.tensor(p.transform.apply_coords(q * 512.0, p.original_size), dtype=torch.float32)[:, None]
        with torch.no_grad():
            aff._side_key = None  # recompute outside inference mode (the exporter traces through it)
            side = aff._image_side()
            sparse, _ = sam.prompt_encoder(
                points=(coords, torch.ones(len(q), 1, dtype=torch.int64)), boxes=None, masks=None
            )
            inputs = (sparse, *side)
            if sess is None:
                import io

                buf = io.BytesIO()
                t = time.perf_counter()
                torch.onnx.export(
                    dec,
                    inputs,
                    buf,
                    input_names=names,
                    output_names=["low"],
                    opset_version=17,
                    dynamic_axes={"sparse": {0: "b"}, "low": {0: "b"}},
                    dynamo=False,
                )
                so = ort.SessionOptions()
                so.intra_op_num_threads = torch.get_num_threads()
                sess = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
                print(f"export + session: {time.perf_counter() - t:.1f} s (once per model)")
            feed = {k: v.numpy() for k, v in zip(names, inputs)}
            for _ in range(args.repeats + 1):
                t = time.perf_counter()
                ref = dec(*inputs)
                t_torch = time.perf_counter() - t
                t = time.perf_counter()
                out = sess.run(None, feed)[0]
                t_ort = time.perf_counter() - t
                small = sess.run(None, {**feed, "sparse": feed["sparse"][:5]})[0]
                print(
                    f"{name:<10} 64 prompts: torch {t_torch:.2f} s, onnxruntime {t_ort:.2f} s ({t_torch / t_ort:.2f}x); "
                    f"max |dlogit| {np.abs(out - ref.numpy()).max():.1e} (batch 5: {np.abs(small - out[:5]).max():.1e}), "
                    f"|logit| <= {np.abs(out).max():.0f}",
                    flush=True,
                )
    print(f"load average at end {os.getloadavg()[0]:.1f}")


def run_eq1(args, part_cls, load_tinysam) -> None:
    from elements.image_io import load_image
    from elements.partition import to_canvas
    from elements.partition.algorithm import (
        adjust_centroids,
        assign_with_distance,
        cleanup,
        plain_assignment_from_samples,
        query_grid,
    )
    from elements.partition.backends import slic_labels
    from elements.partition.objects import elements_in_mask

    sam = load_tinysam(allow_npm=False)
    part = part_cls("sam", sam_model=sam)
    aff = part.affinity
    variants = [("euclidean", 64.0), ("squared", 64.0)]
    rows: dict[str, list] = {f"{d}, beta={b:g}": [] for d, b in variants}
    rows["pixel SLIC"] = []
    drops: dict[str, list] = {k: [] for k in rows}
    for name in ("astronaut", "rocket", "coffee", "chelsea"):
        loaded = load_image(ROOT / "assets" / f"{name}.jpg")
        g, canvas = to_canvas(loaded)
        valid = g.content_mask()
        aff.set_image(canvas)
        q = query_grid(g.content_box_norm(), 256)
        logits, xy = aff.samples(q)  # Alg. 2's two phases by hand, so that every variant shares one decode
        c = adjust_centroids(plain_assignment_from_samples(logits, xy, q, valid), q)
        s = aff.dense(q, np.tile(np.array([0, 0, g.size, g.size], dtype=np.int64), (len(q), 1)))  # full boxes
        refs = {}
        for obj, box in OBJECTS[name].items():
            b = (g.input_to_norm(np.array(box, float).reshape(2, 2)) * g.size).reshape(4)
            refs[obj] = aff.mask(None, None, b) & valid
        labs = {f"{d}, beta={b:g}": cleanup(assign_with_distance(s, c, valid, b, d)) for d, b in variants}
        labs["pixel SLIC"] = slic_labels(canvas, valid, 256)
        for key, lab in labs.items():
            drops[key].append(((lab < 0) & valid).sum() / valid.sum())
            for obj, ref in refs.items():
                ids = elements_in_mask(lab.astype(np.int64), ref, int(lab.max()) + 1)
                union = np.isin(lab, ids)
                err = (union ^ ref).sum() / max(ref.sum(), 1)
                rows[key].append((f"{name}/{obj} ({ref.sum() / 1024:.1f} cells)", err))
        del s
    objs = [o for o, _ in rows["pixel SLIC"]]
    print("Eq. 1 variant | dropped pixels (4 photos) | mean error | " + " | ".join(objs))
    for key, vals in rows.items():
        d = drops[key]
        print(
            f"{key} | {100 * min(d):.3f}-{100 * max(d):.3f} % | {np.mean([e for _, e in vals]):.3f} | "
            + " | ".join(f"{e:.2f}" for _, e in vals)
        )


def run_rocket(args, part_cls, load_tinysam) -> None:
    """Clicks to select the rocket: SLIC cells vs one object click; writes docs/images/sam_vs_slic.png."""
    import cv2
    from PIL import Image

    from elements.edit import owner_map
    from elements.partition.objects import elements_in_mask, object_mask, select_object
    from elements.visualize import overlay

    img = np.asarray(Image.open(ROOT / "assets" / "rocket.jpg").convert("RGB"))
    part = part_cls("sam", sam_model=load_tinysam(allow_npm=False))
    el_sam, el_slic = part(img), part_cls("slic")(img)
    part.affinity.set_image(el_sam.image)
    click = (318, 260, True)  # input pixels, on the rocket's body
    ids_sam = select_object(el_sam, part.affinity, points=[click])
    rocket = object_mask(el_sam, part.affinity, points=[click])  # SAM's mask for that click (canvas)
    ids_slic = elements_in_mask(owner_map(el_slic), rocket, el_slic.num_elements)

    def cover(el, frac=0.9):  # fewest elements whose pixels hold `frac` of the rocket's
        m = rocket & (el.labels >= 0)
        counts = np.sort(np.bincount(el.labels[m], minlength=el.num_elements))[::-1]
        return int(np.searchsorted(np.cumsum(counts), frac * m.sum()) + 1)

    print(f"rocket mask: {rocket.sum()} canvas px")
    for name, el, ids, clicks in (
        ("pixel SLIC", el_slic, ids_slic, len(ids_slic)),
        ("distilled SAM", el_sam, ids_sam, 1),
    ):
        u = np.isin(el.labels, ids)
        print(
            f"{name:<14} clicks to select the rocket: {clicks:>2} ({len(ids)} elements >= 50 % inside; "
            f"{cover(el)} elements hold 90 % of it); leaked {(u & ~rocket).sum()} px, left behind {(~u & rocket).sum()} px"
        )

    def titled(im, text):
        im = im.copy()
        cv2.rectangle(im, (0, 0), (im.shape[1], 26), (0, 0, 0), -1)
        cv2.putText(im, text, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
        return im

    a = titled(
        overlay(el_slic, selected=ids_slic),
        f"pixel SLIC: {el_slic.num_elements} elements, rocket = {len(ids_slic)} clicks",
    )
    b = titled(
        overlay(el_sam, selected=ids_sam), f"distilled SAM, Alg. 2: {el_sam.num_elements} elements, rocket = 1 click"
    )
    gap = np.full((a.shape[0], 8, 3), 255, np.uint8)
    out = ROOT / "docs" / "images" / "sam_vs_slic.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    from elements.atomic import atomic_write

    atomic_write(
        out, lambda tmp: Image.fromarray(np.concatenate([a, gap, b], 1)).save(tmp, format="PNG", optimize=True)
    )
    print(f"wrote {out.relative_to(ROOT)}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    ap.add_argument(
        "--table",
        choices=["windows", "eq1", "rocket", "ort"],
        default="windows",
        help="which table to print (default windows); rocket also writes docs/images/sam_vs_slic.png",
    )
    ap.add_argument(
        "--modes",
        default="legacy,full,auto",
        help="decodes to compare, comma-separated: legacy (the first version's full decode), full, auto or a "
        "window in tokens (default legacy,full,auto)",
    )
    ap.add_argument("--repeats", type=int, default=1, help="interleaved runs per mode and photo; the best is reported")
    args = ap.parse_args()

    from elements.partition import Partitioner
    from elements.partition.tinysam import load_tinysam

    {"windows": run_windows, "eq1": run_eq1, "rocket": run_rocket, "ort": run_ort}[args.table](
        args, Partitioner, load_tinysam
    )


if __name__ == "__main__":
    main()
