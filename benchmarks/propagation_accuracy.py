"""Label accuracy of keyframe propagation vs copying the nearest key frame, by key-frame interval.

Synthetic VSPW-style videos (every frame has ground truth, ``vidseg.data.synth.SyntheticVideo``) get key frames
every K frames (0, K, 2K, ..., the last frame is always a key frame); the other frames are labelled by
(a) ``propagate_keyframes`` (bidirectional flow propagation, OpenCV DIS by default) and (b) copying the nearest
key frame (ties: the earlier one). Accuracy = share of valid (non-ignore) ground-truth pixels labelled
correctly, over the frames that are not key frames (``all frames`` adds the key frames, which both get right).

    .venv/bin/python benchmarks/propagation_accuracy.py [--size 96x160] [--frames 61] [--videos 3] [--flow dis]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vidseg.annotate.propagate_folder import make_pair_flow
from vidseg.annotate.propagation import propagate_keyframes
from vidseg.data.synth import SyntheticVideo
from vidseg.tables import format_table, parse_size


def key_indices(num_frames: int, interval: int) -> list[int]:
    """Key frames 0, K, 2K, ... plus the last frame."""
    return sorted(set(range(0, num_frames, interval)) | {num_frames - 1})


def copy_nearest(gt: list[np.ndarray], keys: list[int]) -> list[np.ndarray]:
    """Each frame takes the labels of its nearest key frame (ties: the earlier one)."""
    return [gt[min(keys, key=lambda k: (abs(k - t), k))] for t in range(len(gt))]


def hits(pred: list[np.ndarray], gt: list[np.ndarray], frames: list[int]) -> tuple[int, int]:
    """(correct, valid) pixel counts over ``frames``."""
    correct = valid = 0
    for t in frames:
        ok = gt[t] != 255
        correct += int(((pred[t] == gt[t]) & ok).sum())
        valid += int(ok.sum())
    return correct, valid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="96x160", help="HxW of the synthetic frames")
    parser.add_argument("--frames", type=int, default=61)
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--intervals", default="1,5,15,30")
    parser.add_argument("--flow", default="dis", help="dis | farneback (see vidseg annotate propagate --flow)")
    args = parser.parse_args()
    size = parse_size(args.size, "--size", "96x160", 16)
    intervals = [int(v) for v in args.intervals.split(",")]
    videos = []
    for index in range(args.videos):
        frames = list(SyntheticVideo(size, args.frames, seed=args.seed, index=index))
        videos.append(([f.image for f in frames], [f.semantic for f in frames]))
    rows = []
    for interval in intervals:
        totals = np.zeros(4, dtype=np.int64)  # prop correct, copy correct, valid (non-key), valid (all)
        totals_all = np.zeros(2, dtype=np.int64)
        start = time.perf_counter()
        for images, gt in videos:
            keys = key_indices(len(gt), interval)
            flow = make_pair_flow(args.flow, images)
            prop = propagate_keyframes(list(range(len(images))), {k: gt[k] for k in keys}, flow).labels
            copy = copy_nearest(gt, keys)
            others = [t for t in range(len(gt)) if t not in keys]
            p, v = hits(prop, gt, others)
            c, _ = hits(copy, gt, others)
            pa, va = hits(prop, gt, list(range(len(gt))))
            ca, _ = hits(copy, gt, list(range(len(gt))))
            totals += (p, c, v, va)
            totals_all += (pa, ca)
        seconds = time.perf_counter() - start
        non_key = (f"{100 * totals[0] / totals[2]:.2f}", f"{100 * totals[1] / totals[2]:.2f}") if totals[2] else ("-", "-")
        rows.append([interval, *non_key, f"{100 * totals_all[0] / totals[3]:.2f}",
                     f"{100 * totals_all[1] / totals[3]:.2f}", f"{seconds:.1f}"])
    print(f"{args.videos} synthetic videos, {args.frames} frames of {size[0]}x{size[1]}, flow {args.flow}")
    print(format_table(rows, ["interval", "propagate (%)", "copy nearest (%)", "propagate, all frames (%)",
                              "copy, all frames (%)", "propagate s"]))


if __name__ == "__main__":
    main()
