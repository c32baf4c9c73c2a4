"""Speed of the synthetic data generator on one core: frames/s drawn in memory and written to disk.

Usage::

    .venv/bin/python benchmarks/synth_speed.py [--size 480x853] [--frames 60] [--videos 4]

Pins the process to one CPU core and limits OpenCV/torch to one thread, then reports
* ``draw``: frames/s of :class:`vidseg.data.synth.SyntheticVideo` (image + labels in memory),
* ``write <kind>``: frames/s of :func:`vidseg.data.synth.generate` (JPEG + PNG files, official layout).
Both as wall-clock rate and as frames per second of process CPU time (the fair figure on a shared
machine: other processes on the same core stretch wall time, not CPU time).
The target of the issue is >= 50 frames/s at 480x853.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def _one_core() -> str:
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"core {core}"
    return "unpinned"


def bench_draw(size, frames, videos) -> float:
    from vidseg.data.synth import SyntheticVideo

    SyntheticVideo(size, 1, seed=123)[0]  # warm-up: class texture tiles are built once per process
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(videos):
        for _ in SyntheticVideo(size, frames, seed=0, index=i):
            pass
    n = videos * frames
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def bench_write(kind, size, frames, videos) -> float:
    from vidseg.data.synth import generate

    with tempfile.TemporaryDirectory() as tmp:
        generate(kind, os.path.join(tmp, "warm"), videos=1, frames=2, size=size, seed=1, progress=False)
        start, cpu = time.perf_counter(), time.process_time()
        generate(kind, os.path.join(tmp, "ds"), videos=videos, frames=frames, size=size, seed=0, progress=False)
        n = videos * frames
        return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def main() -> None:
    from vidseg.data.synth import parse_size
    from vidseg.tables import format_table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="480x853", help="frame size HxW")
    parser.add_argument("--frames", type=int, default=60, help="frames per video")
    parser.add_argument("--videos", type=int, default=4, help="videos")
    args = parser.parse_args()
    size = parse_size(args.size)
    where = _one_core()
    rows = [["draw (in memory)", *bench_draw(size, args.frames, args.videos)]]
    for kind in ("vspw", "vipseg", "davis"):
        rows.append([f"write {kind}", *bench_write(kind, size, args.frames, args.videos)])
    print(f"synthetic generator, {size[0]}x{size[1]}, {args.videos} videos x {args.frames} frames, {where}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(format_table(rows, ["what", "frames/s (wall)", "frames/s (CPU time)"]))


if __name__ == "__main__":
    main()
