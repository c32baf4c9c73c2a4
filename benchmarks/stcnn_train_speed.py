"""STCNN training-side speed on this machine: lucid-dream pairs/s and online fine-tuning seconds per iteration.

    .venv/bin/python benchmarks/stcnn_train_speed.py [--size 480x854] [--pairs 20] [--steps 2] [--threads 2]
        [--tiny] [--json out.json]

* background: Telea inpainting of a synthetic DAVIS frame's objects (once per video);
* pairs/s: :class:`vidseg.data.lucid_dream.LucidDreamer` samples (image + mask) after the background;
* fine-tune s/it: one online step (forward + BCE on the fused output + backward + SGD on the spatial branch,
  temporal branch frozen) of the full STCNN (ResNet-101 x 2, delta 4) at ``--size``, batch 1, fp32, random
  weights (speed does not depend on them); ``--tiny`` uses the small CPU test variant instead.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _frame(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    from vidseg.data.davis import scan_davis
    from vidseg.data.synth import generate

    root = Path(tempfile.mkdtemp()) / "davis"
    generate("davis", root, videos=1, frames=2, size=size, seed=0, val_fraction=0.0, progress=False)
    video = scan_davis(root, 2017, None)[0][0]
    return video.load_sample(0)


def dream_speed(size: tuple[int, int], pairs: int) -> dict[str, float]:
    from vidseg.data.lucid_dream import LucidDreamer, inpaint_background

    image, mask = _frame(size)
    t0 = time.perf_counter()
    background = inpaint_background(image, mask)
    t_bg = time.perf_counter() - t0
    dreamer = LucidDreamer(image, mask, background=background)
    t0 = time.perf_counter()
    dreamer.samples(pairs, seed=0)
    return {"background_s": t_bg, "pairs_per_s": pairs / (time.perf_counter() - t0),
            "object_fraction": float((mask != 0).mean())}


def finetune_speed(size: tuple[int, int], steps: int, tiny: bool) -> float:
    from vidseg.engine.stcnn_stages import OnlineStage, StcnnStepHook, run_step
    from vidseg.models.vos.stcnn import build_stcnn

    torch.manual_seed(0)
    kwargs = {"layers": (1, 1, 1, 1), "width": 8, "fpn_dim": 16, "ppm_dim": 16} if tiny else {}
    stage = OnlineStage(model=build_stcnn(frame_nums=4, **kwargs))
    hook = StcnnStepHook("online", lr=1e-4, weight_decay=5e-4)
    opts = hook.build_optimizers(stage)
    frames = (torch.rand(1, 1, 3, *size) * 255).expand(1, 5, 3, *size).contiguous()
    labels = torch.full((1, 5, *size), 255, dtype=torch.long)
    labels[:, -1] = (torch.rand(*size) > 0.8).long()
    stage.train()
    run_step(stage, opts, hook, frames, labels, 0, steps + 1)  # warm-up
    t0 = time.perf_counter()
    for i in range(steps):
        run_step(stage, opts, hook, frames, labels, i + 1, steps + 1)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="480x854", help="frame size HxW")
    p.add_argument("--pairs", type=int, default=20, help="dream pairs to time")
    p.add_argument("--steps", type=int, default=2, help="timed fine-tuning steps (0 = skip)")
    p.add_argument("--tiny", action="store_true", help="time the tiny CPU variant instead of the full STCNN")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.lower().split("x"))
    result: dict[str, object] = {"size": f"{h}x{w}", "threads": torch.get_num_threads(),
                                 **dream_speed((h, w), args.pairs)}
    print(f"lucid dream at {h}x{w}: background (Telea) {result['background_s']:.3f} s, "
          f"{result['pairs_per_s']:.2f} pairs/s")
    if args.steps > 0:
        result["finetune_s_per_it"] = finetune_speed((h, w), args.steps, args.tiny)
        result["model"] = "tiny" if args.tiny else "stcnn_r101"
        print(f"online fine-tuning ({result['model']}, batch 1, fp32): {result['finetune_s_per_it']:.2f} s/it")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
