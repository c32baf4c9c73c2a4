"""Speed of VSPW (mIoU + WIoU + mVC8 + mVC16) and DAVIS (J&F) folder scoring on synthetic data of real size.

Writes PNGs to a temporary folder, then times (a) merely decoding every GT and prediction PNG once and
(b) the full evaluation with one worker. Prints frames/s (VSPW) and object-frames/s (DAVIS) per core,
measured as CPU time of this process (time.process_time), so that other load on a shared machine
inflates the figures less than wall-clock time would. OpenCV runs single-threaded here.

    .venv/bin/python benchmarks/eval_speed.py [--frames 60] [--videos 2] [--objects 3] [--only davis] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def _blobs(rng, h, w, n, base=0):
    import cv2

    m = np.full((h, w), base, np.uint8)
    for k in range(n):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        ax = (int(rng.integers(20, 250)), int(rng.integers(20, 200)))
        cv2.ellipse(m, c, ax, float(rng.integers(0, 180)), 0, 360, int(k + 1), -1)
    return m


def _moved(m, dx, dy):
    return np.roll(np.roll(m, dy, 0), dx, 1)


def make_vspw(root: Path, videos: int, frames: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    h, w = 480, 853
    names = [f"video{i}" for i in range(videos)]
    (root / "VSPW").mkdir(parents=True)
    (root / "VSPW" / "val.txt").write_text("\n".join(names) + "\n")
    for v in names:
        lut = rng.permutation(124).astype(np.uint8) + 1
        base = _blobs(rng, h, w, 12)
        for t in range(frames):
            g = lut[_moved(base, t, t // 2)]
            g[:8] = 255
            p = g.copy() - 1
            p[g == 255] = 0
            p[100 + t: 160 + t, 200:300] = 5
            d = root / "VSPW" / "data" / v / "mask"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(g, "L").save(d / f"{t + 1:08d}.png")
            (root / "pred" / v).mkdir(parents=True, exist_ok=True)
            Image.fromarray(p.astype(np.uint8), "L").save(root / "pred" / v / f"{t + 1:08d}.png")


def make_davis(root: Path, videos: int, frames: int, objects: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    h, w = 480, 854
    names = [f"seq{i}" for i in range(videos)]
    (root / "DAVIS" / "ImageSets" / "2017").mkdir(parents=True)
    (root / "DAVIS" / "ImageSets" / "2017" / "val.txt").write_text("\n".join(names) + "\n")
    # Pillow saves a "P" image without a palette as 1 bit (ids > 1 collapse to 1), so give it one, as the
    # DAVIS indexed PNGs have
    palette = [c for i in range(256) for c in (i, 37 * i % 256, 91 * i % 256)]
    for s in names:
        base = _blobs(rng, h, w, objects)
        for t in range(frames):
            g = _moved(base, 2 * t, t)
            p = _moved(base, 2 * t + 3, t - 2)
            for arr, d in ((g, root / "DAVIS" / "Annotations" / "480p" / s), (p, root / "res" / s)):
                d.mkdir(parents=True, exist_ok=True)
                img = Image.fromarray(arr, "P")
                img.putpalette(palette)
                img.save(d / f"{t:05d}.png")


def _decode_all(paths) -> float:
    t0 = time.process_time()
    for p in paths:
        with Image.open(p) as im:
            np.asarray(im)
    return time.process_time() - t0


def _bench_vspw(tmp: Path, args) -> None:
    from vidseg.metrics.vspw import evaluate_vspw_folder

    make_vspw(tmp, args.videos, args.frames)
    n = args.videos * args.frames
    dec = _decode_all(sorted((tmp / "VSPW").rglob("*.png")) + sorted((tmp / "pred").rglob("*.png")))
    t0 = time.process_time()
    res = evaluate_vspw_folder(tmp / "VSPW", tmp / "pred", metrics="miou,wiou,vc8,vc16", progress=False)
    ev = time.process_time() - t0
    print(f"VSPW 480x853, {n} frames: decode GT+pred {n / dec:.1f} frames/s; "
          f"mIoU+WIoU+mVC8+mVC16 {n / ev:.1f} frames/s (1 worker); eval/decode time {ev / dec:.2f}x; "
          f"mIoU {res['mIoU']:.4f} mVC16 {res['mVC16']:.4f}")


def _bench_davis(tmp: Path, args) -> None:
    """DAVIS semi-supervised folder scoring; each repeat decodes and scores everything again."""
    from vidseg.metrics.davis_folder import _read_index_png, evaluate_davis_folder

    make_davis(tmp, args.videos, args.frames, args.objects)
    pngs = sorted((tmp / "DAVIS").rglob("*.png")) + sorted((tmp / "res").rglob("*.png"))
    nf = args.videos * args.frames
    rates, walls, ratios = [], [], []
    for rep in range(args.repeat):
        dec = _decode_all(pngs)  # plain Pillow decode (np.asarray), the reference "merely decode" time
        t0 = time.process_time()
        for p in pngs:
            _read_index_png(p)  # the reader the evaluation uses (decodes straight into the array)
        dec_own = time.process_time() - t0
        t0, w0 = time.process_time(), time.perf_counter()
        res = evaluate_davis_folder(tmp / "DAVIS", tmp / "res", progress=False, csv_dir=None)
        ev, wall = time.process_time() - t0, time.perf_counter() - w0
        of = res["num_objects"] * (args.frames - 2)  # object-frames scored (first and last frame excluded)
        rates.append(of / ev)
        walls.append(of / wall)
        ratios.append(ev / dec)
        print(f"DAVIS 480x854, {args.videos} seqs x {args.frames} frames, {res['num_objects']} objects "
              f"(run {rep + 1}/{args.repeat}): decode GT+results {nf / dec:.1f} frames/s "
              f"(evaluator's reader {nf / dec_own:.1f}); "
              f"J&F {of / ev:.1f} object-frames/s CPU ({1e3 * ev / of:.2f} ms each), {of / wall:.1f} wall "
              f"(1 worker); eval/decode time {ev / dec:.2f}x; J&F-Mean {res['J&F-Mean']:.6f}")
    if args.repeat > 1:
        print(f"DAVIS summary over {args.repeat} runs: J&F object-frames/s CPU best {max(rates):.1f} median "
              f"{np.median(rates):.1f}; wall best {max(walls):.1f} median {np.median(walls):.1f}; "
              f"eval/decode median {np.median(ratios):.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60, help="frames per video / sequence")
    ap.add_argument("--videos", type=int, default=2, help="videos / sequences")
    ap.add_argument("--objects", type=int, default=3, help="DAVIS objects per sequence")
    ap.add_argument("--only", choices=("vspw", "davis"), default=None, help="run one benchmark only")
    ap.add_argument("--repeat", type=int, default=1, help="DAVIS: timed runs (each decodes and scores again)")
    args = ap.parse_args()
    import cv2

    cv2.setNumThreads(1)
    import scipy.optimize  # noqa: F401  (one-time import cost kept out of the timings)
    import scipy.spatial  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.only in (None, "vspw"):
            _bench_vspw(tmp, args)
        if args.only in (None, "davis"):
            _bench_davis(tmp, args)


if __name__ == "__main__":
    main()
