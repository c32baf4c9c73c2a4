"""Clip-PanoFCN training-step speed on CPU: seconds per step (forward, targets + losses, backward, SGD step).

Random frames, labels with two stuff regions and one thing, ``--batch`` clips of ``--clip`` frames at ``--crop``;
one untimed warm-up step, then ``--steps`` timed steps. The share of each step spent building the targets and
losses is reported too. Variants: ``r50`` (the recipe's network) and ``tiny`` (ResNet (1,1,1,1) width 16, 64-wide
heads, the integration test's). Measured with 1 thread and with all threads.

Usage::

    python benchmarks/panofcn_train_speed.py --crop 64 --batch 2 --steps 5
    python benchmarks/panofcn_train_speed.py --variant r50 --crop 608 --batch 1 --steps 2
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vidseg.categories import thing_ids, vipseg_categories
from vidseg.models.panoptic.clip_panofcn import build_clip_panofcn, build_tiny_clip_panofcn


def _labels(batch: int, clip: int, size: int) -> torch.Tensor:
    stuff = [c.id for c in vipseg_categories() if not c.isthing]
    lab = torch.full((batch, clip, size, size), (stuff[0] + 1) * 1000, dtype=torch.long)
    lab[..., size // 2:, :] = (stuff[1] + 1) * 1000
    q = size // 4
    lab[..., q:2 * q, q:3 * q] = (thing_ids()[0] + 1) * 1000 + 1
    return lab


def measure(variant: str, crop: int, batch: int, clip: int, steps: int, threads: int) -> dict:
    """Seconds per training step and the share spent in targets + losses."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_tiny_clip_panofcn() if variant == "tiny" else build_clip_panofcn()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    frames = torch.randn(batch, clip, 3, crop, crop) * 50
    labels = _labels(batch, clip, crop)
    total = loss_time = 0.0
    for i in range(steps + 1):
        t0 = time.perf_counter()
        out = model(frames)
        t1 = time.perf_counter()
        terms = model.losses(out, labels)
        t2 = time.perf_counter()
        opt.zero_grad()
        sum(terms.values()).backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), 35.0)
        opt.step()
        if i > 0:
            total += time.perf_counter() - t0
            loss_time += t2 - t1
    return {"variant": variant, "crop": crop, "batch": batch, "clip": clip, "threads": threads,
            "s_per_step": total / steps, "loss_share": loss_time / total}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", choices=("tiny", "r50"), default="tiny")
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--clip", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    all_threads = torch.get_num_threads()
    rows = [measure(args.variant, args.crop, args.batch, args.clip, args.steps, n)
            for n in sorted({1, all_threads})]
    for r in rows:
        print(f"{r['variant']} crop {r['crop']} batch {r['batch']}x{r['clip']} threads {r['threads']}: "
              f"{r['s_per_step']:.3f} s/step (targets+losses {100 * r['loss_share']:.0f}%)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
