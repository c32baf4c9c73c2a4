"""Clip-PanoFCN speed on CPU: frames/s at 720x1280, the share of time in DCNv2, the tracking cost per clip.

Measurements (random weights with the official initialisation, random frames; one untimed warm-up clip):

* ``network``: wall and process-CPU seconds per frame of the network forward on clips of ``--clip`` frames, with the time spent in the
  backbone (ResNet + FPN) and in the position head's modulated deformable convolutions (forward hooks);
* ``inference``: seconds per clip of the clip-level post-processing (``clip_inference``: candidates, fusion,
  masks, merge) on the same outputs;
* ``tracking``: milliseconds per ``EmbeddingTracker.update`` with ``--tracks`` instances per clip spread over 5
  categories against a memory that already holds as many tracks per category.

Each figure is measured with 1 thread and with all threads (``torch.get_num_threads()`` at start).

* ``--memory 100,2000``: peak resident memory (``ru_maxrss``) of a streaming run of ``clip_panofcn_tiny`` over
  videos of those lengths at ``--memory-size``, each in a fresh subprocess, frames generated on the fly.

Usage::

    python benchmarks/panofcn_speed.py --size 720x1280 --clips 1 --clip 3
    python benchmarks/panofcn_speed.py --size 360x640 --clips 2 --json out.json
    python benchmarks/panofcn_speed.py --memory 100,2000 --memory-size 32x48 --threads none
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from vidseg.models.ops.dcn import ModulatedDeformConv
from vidseg.models.panoptic.clip_panofcn import build_clip_panofcn
from vidseg.models.panoptic.inference import clip_inference, vipseg_settings
from vidseg.models.panoptic.tracking import EmbeddingTracker


class _Timer:
    """Accumulates wall and process CPU time spent inside the modules it is attached to (forward hooks)."""

    def __init__(self, modules: list[torch.nn.Module]) -> None:
        self.wall = self.cpu = 0.0
        self._start: dict[int, tuple[float, float]] = {}
        for m in modules:
            m.register_forward_pre_hook(self._pre)
            m.register_forward_hook(self._post)

    def _pre(self, module, args) -> None:
        self._start[id(module)] = (time.perf_counter(), time.process_time())

    def _post(self, module, args, out) -> None:
        wall, cpu = self._start.pop(id(module))
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu


def bench_network(h: int, w: int, clips: int, clip_len: int) -> dict:
    """Wall and process-CPU seconds of the forward and the clip post-processing (CPU time is the honest figure
    on a shared machine: wall time there includes waiting for the cores)."""
    torch.manual_seed(0)
    model = build_clip_panofcn().eval()
    dcn = _Timer([m for m in model.modules() if isinstance(m, ModulatedDeformConv)])
    backbone = _Timer([model.backbone])
    frames = torch.randn(1, clip_len, 3, h, w) * 50
    settings = vipseg_settings()
    wall = {"net": 0.0, "post": 0.0}
    cpu = {"net": 0.0, "post": 0.0}
    with torch.no_grad():
        clip_inference(model, model(frames[:, :1]), settings)  # warm-up on one frame
        dcn.wall = dcn.cpu = backbone.wall = backbone.cpu = 0.0
        for _ in range(clips):
            t0, c0 = time.perf_counter(), time.process_time()
            out = model(frames)
            t1, c1 = time.perf_counter(), time.process_time()
            clip_inference(model, out, settings)
            wall["net"] += t1 - t0
            cpu["net"] += c1 - c0
            wall["post"] += time.perf_counter() - t1
            cpu["post"] += time.process_time() - c1
    n = clips * clip_len
    return {"network_wall_s_per_frame": wall["net"] / n, "network_cpu_s_per_frame": cpu["net"] / n,
            "frames_per_s_wall": n / (wall["net"] + wall["post"]),
            "frames_per_s_cpu": n / (cpu["net"] + cpu["post"]),
            "postprocess_cpu_s_per_clip": cpu["post"] / clips,
            "dcn_share_of_network_cpu": dcn.cpu / cpu["net"], "dcn_share_of_network_wall": dcn.wall / wall["net"],
            "backbone_share_of_network_cpu": backbone.cpu / cpu["net"],
            "load_average_1min": os.getloadavg()[0]}


def bench_tracking(tracks: int, repeats: int = 20) -> dict:
    gen = torch.Generator().manual_seed(0)

    def embeddings() -> dict[int, list[torch.Tensor]]:
        return {cat: list(F.normalize(torch.randn(tracks // 5, 64, generator=gen), dim=1)) for cat in range(5)}

    tracker = EmbeddingTracker()
    tracker.update(embeddings())
    start = time.process_time()
    for _ in range(repeats):
        tracker.update(embeddings())
        for cat in tracker.memory:  # keep the memory size constant
            del tracker.memory[cat][tracks // 5:]
    return {"tracking_cpu_ms_per_clip": 1000 * (time.process_time() - start) / repeats, "instances_per_clip": tracks}


def stream_peak_memory(length: int, h: int, w: int) -> dict:
    """Run the streaming predictor over ``length`` random frames; peak RSS (MiB) and tracker size."""
    import numpy as np

    from vidseg.inference.panoptic import PanopticVideoPredictor
    from vidseg.models.panoptic.clip_panofcn import build_tiny_clip_panofcn

    torch.set_num_threads(1)  # on a shared machine idle threads spin; the figure of interest is memory
    torch.manual_seed(0)
    model = build_tiny_clip_panofcn()
    with torch.no_grad():  # random weights that let things survive the thresholds, so the tracker works
        model.position_head.out_inst.bias.fill_(0.0)
        model.kernel_head.out_conv.weight.mul_(5)
        model.thing_generator.embed_extractor.weight.mul_(30)
    predictor = PanopticVideoPredictor(model, settings=vipseg_settings(stuff_area_limit=64))
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (h, w + length, 3), dtype=np.uint8)
    frames = (np.ascontiguousarray(base[:, i: i + w]) for i in range(length))
    start = time.process_time()
    count = sum(1 for _ in predictor.predict(frames))
    return {"frames": count, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "tracks_in_memory": predictor.tracker.num_tracks(), "cpu_s": time.process_time() - start}


def bench_memory(lengths: list[int], size: str) -> dict:
    out = {}
    for length in lengths:
        code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
                f"import panofcn_speed as b; print(json.dumps(b.stream_peak_memory({length}, "
                f"{size.split('x')[0]}, {size.split('x')[1]})))")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out[str(length)] = json.loads(res.stdout.strip().splitlines()[-1])
        print(json.dumps({f"memory_{length}": out[str(length)]}), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="720x1280", help="HxW of the frames")
    parser.add_argument("--clips", type=int, default=1, help="timed clips per thread setting")
    parser.add_argument("--clip", type=int, default=3, help="frames per clip")
    parser.add_argument("--tracks", type=int, default=50, help="thing instances per clip for the tracking figure")
    parser.add_argument("--threads", default="1,all", help="comma list of thread counts ('all' = default)")
    parser.add_argument("--memory", default="", help="comma list of video lengths for the memory check")
    parser.add_argument("--memory-size", default="32x48", help="HxW of the memory check's frames")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    all_threads = torch.get_num_threads()
    results = {"size": [h, w], "clip": args.clip, "clips": args.clips}
    for spec in [t for t in args.threads.split(",") if t != "none"]:
        threads = all_threads if spec == "all" else int(spec)
        torch.set_num_threads(threads)
        res = bench_network(h, w, args.clips, args.clip)
        res.update(bench_tracking(args.tracks))
        results[f"threads_{threads}"] = res
        print(json.dumps({f"threads_{threads}": res}, indent=1), flush=True)
    if args.memory:
        results["memory"] = bench_memory([int(v) for v in args.memory.split(",")], args.memory_size)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
