"""Speed of VIPSeg evaluation (VPQ k=1,2,4,6,8 + STQ) on synthetic 720p submissions, versus decoding alone.

Writes GT and prediction RGB-id PNGs + JSON (about 20 segments per frame, ids stable over time, predictions
shifted and partly relabelled) to a temporary folder, then times, on one core:

* decode: reading every GT and prediction PNG once (the same decoder the evaluator uses; PIL for reference);
* eval: ``evaluate_vipseg_folder(..., workers=1)`` (all k and STQ, validation included).

Run: ``.venv/bin/python benchmarks/eval_speed_vipseg.py [--videos 4 --frames 12 --height 720 --width 1280]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_video(rng: np.random.Generator, n_frames: int, h: int, w: int, n_segments: int):
    """(gt frames, pred frames, gt categories, pred categories) with Voronoi regions drifting over time."""
    from vidseg.categories import vipseg_categories

    cats = vipseg_categories()
    seeds = rng.uniform([0, 0], [h, w], size=(n_segments, 2))
    velocity = rng.normal(0, 4, size=(n_segments, 2))
    cat_of = rng.choice([c.id for c in cats], size=n_segments)
    thing = {c.id: c.isthing for c in cats}
    gt_ids = np.array([(int(c) + 1) * 1000 + i if thing[int(c)] else int(c) + 1 for i, c in enumerate(cat_of)])
    gt_ids = np.unique(gt_ids, return_index=True)[1]  # keep unique ids only
    seeds, velocity, cat_of = seeds[gt_ids], velocity[gt_ids], cat_of[gt_ids]
    ids = np.arange(1, len(seeds) + 1) * 4099  # spread over several bytes
    yy, xx = np.mgrid[0:h:4, 0:w:4]
    gt_frames, pred_frames = [], []
    pred_ids = ids + 7
    for t in range(n_frames):
        s = seeds + velocity * t
        d = (yy[..., None] - s[:, 0]) ** 2 + (xx[..., None] - s[:, 1]) ** 2
        lab = np.repeat(np.repeat(d.argmin(-1), 4, 0), 4, 1)[:h, :w]
        g = ids[lab]
        g[:16] = 0  # a void band
        p = np.roll(pred_ids[lab], shift=(3, 5), axis=(0, 1))
        if t % 5 == 4:
            p[p == pred_ids[0]] = pred_ids[-1]  # an id switch now and then
        gt_frames.append(g)
        pred_frames.append(p)
    gcat = {int(i): int(c) for i, c in zip(ids, cat_of, strict=True)}
    pcat = {int(i): int(c) for i, c in zip(pred_ids, cat_of, strict=True)}
    return gt_frames, pred_frames, gcat, pcat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=4, help="number of videos")
    ap.add_argument("--frames", type=int, default=12, help="frames per video")
    ap.add_argument("--height", type=int, default=720, help="frame height")
    ap.add_argument("--width", type=int, default=1280, help="frame width")
    ap.add_argument("--segments", type=int, default=20, help="segments per frame")
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats (best is reported)")
    args = ap.parse_args()

    import cv2
    from PIL import Image

    from vidseg.metrics.panoptic_tables import read_rgb_ids
    from vidseg.metrics.vipseg_eval import evaluate_vipseg_folder, write_vipseg_folders

    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    gt, pred, gcat, pcat = {}, {}, {}, {}
    for v in range(args.videos):
        g, p, gc, pc = synthetic_video(rng, args.frames, args.height, args.width, args.segments)
        gt[f"video{v:03d}"], pred[f"video{v:03d}"] = g, p
        gcat.update(gc)
        pcat.update(pc)
    n_frames = args.videos * args.frames
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_vipseg_folders(tmp, gt, pred, gcat, pcat)
        pngs = sorted(Path(paths["gt_dir"]).rglob("*.png")) + sorted(Path(paths["submit_dir"]).rglob("*.png"))

        def decode_cv2():
            for f in pngs:
                read_rgb_ids(f)

        def decode_pil():
            for f in pngs:
                np.asarray(Image.open(f))

        def evaluate():
            return evaluate_vipseg_folder(paths["gt_json"], paths["gt_dir"], paths["submit_dir"], workers=1,
                                          progress=False)

        times = {}
        for name, fn in (("decode (evaluator's decoder)", decode_cv2), ("decode (PIL)", decode_pil),
                         ("eval VPQ k=1,2,4,6,8 + STQ", evaluate)):
            best_wall = best_cpu = float("inf")
            for _ in range(args.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                res = fn()
                best_wall = min(best_wall, time.perf_counter() - t0)
                best_cpu = min(best_cpu, time.process_time() - c0)
            times[name] = (best_wall, best_cpu)
        print(f"{n_frames} frames ({args.videos} videos x {args.frames}) at {args.height}x{args.width}, "
              f"~{args.segments} segments/frame, one process (best of {args.repeats}; wall and CPU time)")
        for name, (wall, cpu) in times.items():
            print(f"  {name:30s} wall {wall:6.2f} s = {n_frames / wall:6.1f} frames/s | "
                  f"CPU {cpu:6.2f} s = {n_frames / cpu:6.1f} frames/s ({1000 * cpu / n_frames:5.1f} ms/frame)")
        ev, dec = times["eval VPQ k=1,2,4,6,8 + STQ"], times["decode (evaluator's decoder)"]
        print(f"  eval / decode = {ev[0] / dec[0]:.2f}x wall, {ev[1] / dec[1]:.2f}x CPU   "
              f"(VPQ^1 {100 * res['VPQ']['1']['all']:.2f}, STQ {100 * res['STQ']:.2f})")


if __name__ == "__main__":
    main()
