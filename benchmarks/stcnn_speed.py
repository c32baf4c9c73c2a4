"""Frames/s of STCNN semi-supervised inference (the full streaming step: temporal stack, both branches,
sigmoid, 80x80 elliptical gating, merge) on CPU, random weights, random frames at 480x854.

Times ``StcnnVosPredictor.stream`` over ``--frames`` frames after ``--warmup`` frames, as wall-clock time and
as this process's CPU time (time.process_time; on a shared machine wall time is inflated by other load).

    .venv/bin/python benchmarks/stcnn_speed.py [--frames 4] [--warmup 1] [--threads 2] [--objects 1]
        [--size 480 854] [--small] [--bn-mode official|eval]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vidseg.inference.vos import StcnnVosPredictor
from vidseg.models.vos.stcnn import build_stcnn

SMALL = {"layers": (2, 2, 2, 2), "width": 16, "fpn_dim": 64, "ppm_dim": 64}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=4, help="timed frames")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first frames")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--objects", type=int, default=1)
    parser.add_argument("--size", type=int, nargs=2, default=(480, 854))
    parser.add_argument("--small", action="store_true", help="the small CPU variant instead of ResNet-101")
    parser.add_argument("--bn-mode", default="official", choices=("official", "eval"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_stcnn(bn_mode=args.bn_mode, **(SMALL if args.small else {})).eval()
    h, w = args.size
    rng = np.random.default_rng(0)
    n = args.warmup + args.frames
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(max(n, model.frame_nums))]
    mask = np.zeros((h, w), np.uint8)
    for k in range(args.objects):
        mask[40 + 60 * k:100 + 60 * k, 100:300] = k + 1
    stream = StcnnVosPredictor(model).stream(frames, mask)
    for _ in range(args.warmup):
        next(stream)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.frames):
        next(stream)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    name = "small (ResNet [2,2,2,2], width 16)" if args.small else "stcnn_r101"
    print(f"{name} {h}x{w}, {args.objects} object(s), {args.threads} thread(s), bn_mode {args.bn_mode}: "
          f"{args.frames / wall:.3f} frames/s wall ({wall / args.frames:.2f} s/frame), "
          f"CPU {cpu / args.frames:.2f} s/frame")


if __name__ == "__main__":
    main()
