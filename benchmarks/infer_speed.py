"""Streaming inference speed and memory on CPU.

Three measurements (each can be run alone):

1. ``speed``: frames/s of registered models through :class:`vidseg.inference.VideoPredictor` on random
   480x853 frames (one warm-up frame not timed). ``--models`` picks the models (default: every registered
   segmentation model), ``--frames`` the timed frames per model.
2. ``ratio``: streaming CFFM-B0 per-frame time over SegFormer-B0 per-frame time (target <= 1.3), and the
   official non-caching CFFM cost (backbone on all four frames for every target) for comparison.
3. ``memory``: peak resident memory of a streaming run against video length (default 100 and 2000 frames,
   CFFM-B0 at a small size), each length in a fresh subprocess so the peaks are independent; frames are
   generated on the fly so the video itself is never held in memory.
4. ``argmax``: full-size labels from 1/4-resolution logits (124 classes), the plain path (``F.interpolate`` of all
   classes, then argmax) against :func:`vidseg.inference.fast_argmax.upsample_argmax`, interleaved in one run,
   labels checked identical: on SegFormer-B0's random-weight logits of a random frame and on synthetic "scene"
   logits where 8 of the 124 classes are present (a trained model's situation); one resize step (frame size)
   and the CFFM official two steps (size_divisor 32, then frame size). Also the machine's SGEMM GFLOP/s.

Usage::

    python benchmarks/infer_speed.py speed --models segformer_b0 cffm_b0 --frames 5
    python benchmarks/infer_speed.py ratio --frames 10
    python benchmarks/infer_speed.py memory --lengths 100 2000 --size 64x112
    python benchmarks/infer_speed.py argmax --frames 5
    python benchmarks/infer_speed.py all --json out.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial

import numpy as np
import torch

from vidseg.tables import parse_size


def random_frames(n: int, h: int, w: int, seed: int = 0) -> Iterator[np.ndarray]:
    """``n`` random uint8 frames, generated lazily."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    for i in range(n):
        yield np.roll(base, 3 * i, axis=1)


def time_stream(model: torch.nn.Module, frames: int, h: int, w: int, warmup: int = 1) -> float:
    """Seconds per frame of a streaming run (after ``warmup`` untimed frames)."""
    from vidseg.inference import VideoPredictor

    predictor = VideoPredictor(model)
    stream = predictor.stream()
    gen = random_frames(frames + warmup, h, w)
    for _ in range(warmup):
        stream.push(next(gen))
    start = time.perf_counter()
    for frame in gen:
        stream.push(frame)
    stream.finish()
    return (time.perf_counter() - start) / frames


def time_full_clips(model: torch.nn.Module, frames: int, h: int, w: int) -> float:
    """Seconds per target when every clip is recomputed from scratch (the official CFFM test loop)."""
    n = len(getattr(model, "support_offsets", ())) + 1
    x = torch.randn(1, n, 3, h, w)
    model.eval()
    with torch.inference_mode():
        model(x)
        start = time.perf_counter()
        for _ in range(frames):
            model(x)
    return (time.perf_counter() - start) / frames


def segmentation_models() -> list[str]:
    from vidseg.models.registry import MODELS

    return sorted(n for n, e in MODELS.items() if e.task != "backbone")


def bench_speed(models: list[str], frames: int, h: int, w: int) -> list[dict]:
    from vidseg.models import build

    rows = []
    for name in models:
        try:
            model = build(name).eval()
        except (ImportError, AttributeError, NotImplementedError) as exc:
            rows.append({"model": name, "error": f"not available: {exc}"})
            print(f"{name:28s} not available ({exc})", flush=True)
            continue
        sec = time_stream(model, frames, h, w)
        params = sum(p.numel() for p in model.parameters())
        rows.append({"model": name, "params": params, "sec_per_frame": round(sec, 4), "fps": round(1 / sec, 3)})
        print(f"{name:28s} {params / 1e6:8.2f}M  {sec:8.3f} s/frame  {1 / sec:7.3f} frames/s", flush=True)
        del model
    return rows


def bench_ratio(frames: int, h: int, w: int) -> dict:
    from vidseg.models import build

    seg = build("segformer_b0").eval()
    cffm = build("cffm_b0").eval()
    t_seg = time_stream(seg, frames, h, w)
    t_cffm = time_stream(cffm, frames, h, w)
    t_official = time_full_clips(cffm, max(frames // 2, 2), h, w)
    out = {"segformer_b0_sec": round(t_seg, 4), "cffm_b0_streaming_sec": round(t_cffm, 4),
           "cffm_b0_recompute_sec": round(t_official, 4), "ratio_streaming": round(t_cffm / t_seg, 3),
           "ratio_recompute": round(t_official / t_seg, 3)}
    print(json.dumps(out, indent=2), flush=True)
    return out


def memory_child(length: int, h: int, w: int, model_name: str) -> dict:
    """Run in a fresh process: peak RSS (MiB) of streaming ``length`` frames."""
    from vidseg.inference import VideoPredictor
    from vidseg.models import build

    model = build(model_name).eval()
    predictor = VideoPredictor(model)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = 0
    for _ in predictor.predict(random_frames(length, h, w)):
        n += 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"frames": n, "peak_rss_mib": round(peak, 1), "rss_before_mib": round(base, 1),
            "cache_peak_frames": predictor.last_stream.peak_cached}


def bench_memory(lengths: list[int], h: int, w: int, model_name: str) -> list[dict]:
    rows = []
    for n in lengths:
        cmd = [sys.executable, __file__, "_memory_child", "--length", str(n), "--size", f"{h}x{w}",
               "--memory-model", model_name]
        result = subprocess.run(cmd, capture_output=True, text=True, check=True)
        row = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{model_name} {h}x{w}: {n:6d} frames  peak RSS {row['peak_rss_mib']:8.1f} MiB  "
              f"(before the video {row['rss_before_mib']:.1f})  cache peak {row['cache_peak_frames']} frames", flush=True)
    if len(rows) >= 2:
        growth = rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"] - 1
        print(f"peak growth {lengths[0]} -> {lengths[-1]} frames: {100 * growth:+.1f}%")
    return rows


def sgemm_gflops(n: int = 1024, reps: int = 5) -> float:
    """Best-of-``reps`` GFLOP/s of an n x n float32 matmul (the machine's practical peak for dense work)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def scene_logits(k: int, h: int, w: int, present: int = 8, seed: int = 0) -> torch.Tensor:
    """[1, K, h, w] logits of a 'trained' look: ``present`` classes own Voronoi regions (winner ~8, the other
    present classes ~2), absent classes ~-4, plus unit noise."""
    gen = torch.Generator().manual_seed(seed)
    classes = torch.randperm(k, generator=gen)[:present]
    centres = torch.rand(present, 2, generator=gen) * torch.tensor([h, w])
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    owner = ((yy[None] - centres[:, 0, None, None]) ** 2 + (xx[None] - centres[:, 1, None, None]) ** 2).argmin(0)
    logits = torch.full((1, k, h, w), -4.0) + torch.randn(1, k, h, w, generator=gen)
    for i, c in enumerate(classes.tolist()):
        logits[0, c] += torch.where(owner == i, 12.0, 6.0)
    return logits


def bench_argmax(reps: int, h: int, w: int) -> list[dict]:
    from vidseg.inference.fast_argmax import (
        SOFTMAX_MARGIN,
        candidate_classes,
        reference_argmax,
        upsample_argmax,
    )
    from vidseg.inference.tta import prepare_view
    from vidseg.models import build

    seg = build("segformer_b0").eval()
    with torch.inference_mode():
        random_model = seg.encode_frame(prepare_view(next(random_frames(1, h, w))))
    lh, lw = random_model.shape[-2:]
    inputs = {"segformer_b0 random weights": random_model, "scene (8 of 124 classes)": scene_logits(124, lh, lw)}
    # the predictor's labels: argmax of the logits at the frame size, of the probabilities after 2 steps
    chains = {"1 step": ([(h, w)], False), "2 steps (CFFM), softmax": ([(h, -(-w // 32) * 32), (h, w)], True)}
    rows = []
    for (what, logits), (chain, (sizes, soft)) in ((i, c) for i in inputs.items() for c in chains.items()):
        same = torch.equal(upsample_argmax(logits, sizes, softmax=soft), reference_argmax(logits, sizes, softmax=soft))
        plain, fast = [], []
        for _ in range(reps):  # interleaved, so load changes hit both alike
            plain.append(_timed(partial(reference_argmax, logits, sizes, softmax=soft)))
            fast.append(_timed(partial(upsample_argmax, logits, sizes, softmax=soft)))
        row = {"logits": what, "resize": chain,
               "candidates": int(candidate_classes(logits, sizes, SOFTMAX_MARGIN if soft else 0.0).numel()),
               "plain_sec": round(float(np.median(plain)), 4), "fast_sec": round(float(np.median(fast)), 4),
               "speedup": round(float(np.median(plain) / np.median(fast)), 2), "identical": same}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["speed", "ratio", "memory", "argmax", "all", "_memory_child"], help="measurement")
    parser.add_argument("--models", nargs="*", default=None, help="models for 'speed' (default: all registered)")
    parser.add_argument("--frames", type=int, default=3, help="timed frames per model")
    parser.add_argument("--size", default="480x853", help="HxW of the frames (memory: default 64x112)")
    parser.add_argument("--lengths", nargs="*", type=int, default=[100, 2000], help="video lengths for 'memory'")
    parser.add_argument("--memory-model", default="cffm_b0", help="model for 'memory'")
    parser.add_argument("--length", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = parse_size(args.size)
    if args.what == "_memory_child":
        print(json.dumps(memory_child(args.length, h, w, args.memory_model)))
        return 0
    results: dict = {"threads": torch.get_num_threads(), "size": [h, w]}
    if args.what in ("speed", "all"):
        results["speed"] = bench_speed(args.models or segmentation_models(), args.frames, h, w)
    if args.what in ("ratio", "all"):
        results["ratio"] = bench_ratio(args.frames, h, w)
    if args.what in ("memory", "all"):
        mh, mw = (64, 112) if args.size == "480x853" else (h, w)
        results["memory"] = bench_memory(args.lengths, mh, mw, args.memory_model)
    if args.what in ("argmax", "all"):
        results["sgemm_gflops"] = round(sgemm_gflops(), 1)
        print(f"SGEMM 1024^3: {results['sgemm_gflops']} GFLOP/s on {torch.get_num_threads()} threads", flush=True)
        results["argmax"] = bench_argmax(args.frames, h, w)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
