"""Partition benchmark (issue: Foundation and partition). Prints seconds per 512² image.

    python bench/partition.py [--repeats 3] [--sam-img-size 1024]

Reports, on skimage.data.astronaut() (512×512):
* the steps after the affinity (Alg. 2 lines 4-8: plain assignment + centroids, centroid
  adjustment, Eq. 1 assignment, mode filter, connected components), N = 256;
* each backend end to end (sam with a tiny random SAM of the real architecture, slic, grid);
* the dropped-pixel fraction of each;
* the peers on the same image: skimage.segmentation.slic(n_segments=256), and SAM's own
  SamAutomaticMaskGenerator(points_per_side=32) with the same SAM model.

Targets: post-affinity ≤ 0.15 s; sam end to end ≤ 0.5× the automatic mask generator.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def best_of(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="runs per measurement; the best is reported")
    ap.add_argument("--sam-img-size", type=int, default=1024, help="input size of the tiny SAM (real SAM: 1024)")
    args = ap.parse_args()

    import torch
    from segment_anything import SamAutomaticMaskGenerator
    from skimage import data
    from skimage.segmentation import slic

    from elements.geometry import Geometry
    from elements.partition import Partitioner
    from elements.partition.algorithm import (
        adjust_centroids, assign_with_distance, cleanup, plain_assignment_centroids, query_grid,
    )
    from elements.partition.sam import SamAffinity, build_tiny_sam

    print(f"torch threads: {torch.get_num_threads()}, repeats: {args.repeats} (best of)")
    image = data.astronaut()
    g = Geometry.fit(512, 512)
    valid = g.content_mask()
    q = query_grid(g.content_box_norm(), 256)

    sam = build_tiny_sam(img_size=args.sam_img_size, embed_dim=32, depth=1)
    aff = SamAffinity(sam)
    aff.set_image(image)
    s = aff(q, 512)

    def post_affinity():
        c = plain_assignment_centroids(s, q, valid)
        c = adjust_centroids(c, q)
        return cleanup(assign_with_distance(s, c, valid))

    t_post, labels = best_of(post_affinity, args.repeats)
    t_aff, _ = best_of(lambda: aff(q, 512), args.repeats)
    print(f"post-affinity steps (N=256, 512²):        {t_post:.3f} s   (target <= 0.150 s)")
    print(f"  sam affinity (prompts + decoder + upsample, embedding cached): {t_aff:.3f} s")

    rows = []
    for backend in ("sam", "slic", "grid"):
        part = Partitioner(backend, sam_model=sam if backend == "sam" else None)

        def run():
            if backend == "sam":
                part.affinity._image_key = None  # force the image embedding to be recomputed: true end to end
            return part(image)

        t, el = best_of(run, args.repeats)
        rows.append((backend, t, el.num_elements, el.meta["dropped_fraction"]))
    for backend, t, n, dropped in rows:
        print(f"backend {backend:<5} end to end:             {t:.3f} s   {n} elements, dropped {100 * dropped:.4f}%")

    t_slic, seg = best_of(lambda: slic(image, n_segments=256, start_label=0), args.repeats)
    print(f"peer skimage slic(n_segments=256):        {t_slic:.3f} s   {seg.max() + 1} segments")
    gen = SamAutomaticMaskGenerator(sam, points_per_side=32)
    t_amg, masks = best_of(lambda: gen.generate(image), 1)
    print(f"peer SamAutomaticMaskGenerator(32):       {t_amg:.3f} s   {len(masks)} masks (same tiny SAM)")
    t_sam = rows[0][1]
    print(f"sam end to end / automatic mask generator: {t_sam / t_amg:.3f}x   (target <= 0.5x)")


if __name__ == "__main__":
    main()
