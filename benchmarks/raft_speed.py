"""RAFT frame pairs/s on CPU (vidseg vs the RAFT code the VSPW code ships) and TC frames/s with a warm flow cache.

RAFT (standard, 20 iterations, frames padded as TC_cal.py does) runs on random frames of --size with
random weights (speed does not depend on the weight values), at one torch thread and at all threads. If the
VSPW code is found (--official PATH or $VSPW_CODE: the folder holding RAFT_core/), its RAFT runs on the same
inputs in the same process, so both columns see the same machine load; otherwise that column is skipped.
TC: a synthetic VSPW val split at --size is scored with ``--flow raft --flow-cache`` after the cache was
filled (iterations set to 1 for the fill: a warm cache reads .flo files, whatever computed them).

    .venv/bin/python benchmarks/raft_speed.py [--size 480x853] [--pairs 2] [--official /path/to/VSPW_code] [--memory]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vidseg.flow.raft import build_raft
from vidseg.flow.raft_backend import RAFTFlow, padding_for


def _official_model(path: str | None):
    if not path or not (Path(path) / "RAFT_core" / "raft.py").is_file():
        return None
    sys.path[:0] = [path, str(Path(path) / "RAFT_core")]
    from RAFT_core.raft import RAFT  # the official module, imported from the given folder

    return RAFT().eval()


def _time_pairs(fn, frames, pairs: int) -> float:
    start = time.perf_counter()
    for i in range(pairs):
        fn(frames[i], frames[i + 1])
    return pairs / (time.perf_counter() - start)


def bench_raft(size: tuple[int, int], pairs: int, official: str | None, weights: Path) -> list[list]:
    h, w = size
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(pairs + 1)]
    ours = RAFTFlow(weights, iters=20)
    ref = _official_model(official)
    if ref is not None:
        ref.load_state_dict({k[len("module."):]: v for k, v in torch.load(weights, weights_only=True).items()})
    pad = padding_for(h, w)

    def official_pair(a, b):
        x = [torch.nn.functional.pad(torch.from_numpy(f).permute(2, 0, 1)[None].float(), pad) for f in (a, b)]
        with torch.no_grad():
            return ref(x[0], x[1], iters=20, test_mode=True)[1]

    rows = []
    for threads in (1, os.cpu_count() or 1):
        torch.set_num_threads(threads)
        ours(frames[0], frames[1])  # warm-up (allocator, weights)
        mine = _time_pairs(ours, frames, pairs)
        theirs = _time_pairs(official_pair, frames, pairs) if ref is not None else float("nan")
        rows.append([threads, mine, theirs, mine / theirs if ref is not None else float("nan")])
        print(f"threads {threads}: vidseg {mine:.3f} pairs/s, VSPW RAFT_core {theirs:.3f} pairs/s", flush=True)
    return rows


def bench_tc(size: tuple[int, int], weights: Path, videos: int, frames: int) -> float:
    from vidseg.data.synth import generate
    from vidseg.flow.cache import CachedFlow
    from vidseg.metrics.vspw import evaluate_vspw_folder

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "vspw"
        generate("vspw", root, videos=videos, frames=frames, size=size, seed=0, val_fraction=1.0, progress=False)
        pred = Path(tmp) / "pred"
        for mask in (root / "data").glob("*/mask/*.png"):
            (pred / mask.parent.parent.name).mkdir(parents=True, exist_ok=True)
            (pred / mask.parent.parent.name / mask.name).write_bytes(mask.read_bytes())
        cache = CachedFlow(RAFTFlow(weights, iters=1), Path(tmp) / "flows")
        evaluate_vspw_folder(root, pred, metrics="tc", flow=cache, progress=False)  # fills the cache
        n = sum(len(list((root / "data" / v / "origin").glob("*.jpg"))) for v in (root / "val.txt").read_text().split())
        warm = CachedFlow(RAFTFlow(weights, iters=1), cache.root)  # model load, weights digest: not timed
        start = time.perf_counter()
        evaluate_vspw_folder(root, pred, metrics="tc", flow=warm, progress=False)
        return n / (time.perf_counter() - start)


def bench_memory(size: tuple[int, int], corr: str, weights: Path, official: str | None = None) -> float:
    """Peak resident memory (MiB) of a fresh process computing one RAFT pair (2 iterations) at ``size``
    with vidseg (``corr`` mode) or, for ``corr="official"``, with the VSPW RAFT_core found in ``official``."""
    import subprocess

    if corr == "official":
        pad = padding_for(*size)
        code = (
            f"import resource, sys, torch\nsys.path[:0] = [{official!r}, {str(Path(str(official)) / 'RAFT_core')!r}]\n"
            "from RAFT_core.raft import RAFT\nm = RAFT().eval()\n"
            f"x = torch.nn.functional.pad(torch.zeros(1, 3, {size[0]}, {size[1]}), {list(pad)!r})\n"
            "with torch.no_grad():\n    m(x, x, iters=2, test_mode=True)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
        )
    else:
        code = (
            "import resource, numpy as np, torch\n"
            "from vidseg.flow.raft_backend import RAFTFlow\n"
            f"f = RAFTFlow({str(weights)!r}, iters=2, corr={corr!r})\n"
            f"a = np.zeros(({size[0]}, {size[1]}, 3), np.uint8)\n"
            "f(a, a)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
        )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="480x853", help="frame size HxW")
    ap.add_argument("--pairs", type=int, default=2, help="timed frame pairs per configuration")
    ap.add_argument("--official", default=os.environ.get("VSPW_CODE"),
                    help="VSPW_code folder holding RAFT_core/ (default: $VSPW_CODE); skipped if absent")
    ap.add_argument("--tc-videos", type=int, default=2, help="videos of the TC warm-cache run")
    ap.add_argument("--tc-frames", type=int, default=10, help="frames per video of the TC warm-cache run")
    ap.add_argument("--memory", action="store_true",
                    help="also measure peak memory of one pair at 480x853 and 720x1280 per correlation mode")
    ap.add_argument("--memory-only", action="store_true", help="only the memory measurement")
    ap.add_argument("--tc-only", action="store_true", help="only the TC warm-cache measurement")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "raft-random.pth"
        torch.manual_seed(0)
        torch.save({"module." + k: v for k, v in build_raft("standard").state_dict().items()}, weights)
        rows, tc, memory = [], float("nan"), []
        if not args.memory_only:
            rows = [] if args.tc_only else bench_raft(size, args.pairs, args.official, weights)
            tc = bench_tc(size, weights, args.tc_videos, args.tc_frames)
            print(f"TC with a warm flow cache: {tc:.1f} frames/s ({args.tc_videos} videos x {args.tc_frames} "
                  "frames)", flush=True)
        if (args.memory or args.memory_only) and not args.tc_only:
            modes = ["all-pairs", "on-demand", "auto"] + (["official"] if _official_model(args.official) else [])
            for msize in ((480, 853), (720, 1280)):
                for corr in modes:
                    mib = bench_memory(msize, corr, weights, args.official)
                    memory.append([f"{msize[0]}x{msize[1]}", corr, mib])
                    print(f"memory {memory[-1]}", flush=True)
    if rows:
        print(f"\nRAFT standard, 20 iterations, {size[0]}x{size[1]}, CPU; frame pairs/s")
        print("| threads | vidseg | VSPW RAFT_core | ratio |\n|---|---|---|---|")
        for t, a, b, r in rows:
            print(f"| {t} | {a:.3f} | {b:.3f} | {r:.2f} |")
    if memory:
        print("\n| frames | correlation | peak RSS of the process (MiB) |\n|---|---|---|")
        for row in memory:
            print(f"| {row[0]} | {row[1]} | {row[2]:.0f} |")


if __name__ == "__main__":
    main()
