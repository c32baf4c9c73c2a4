"""Training-step speed of CFFM-B0 and SegFormer-B0 on this machine, and whether the faster settings keep the losses.

One optimisation step = forward + the model's losses + backward + AdamW step, on 4-frame clips (CFFM reads the
three supports; SegFormer the last frame) of random frames and labels, ``--batch`` clips (default 1), square
crops. Variants, each a copy of the same initial weights trained on the same clips:

* ``fp32``: the default (the recipes' ``precision: fp32``, ``channels_last: false``);
* ``channels_last``: weights and inputs in channels-last memory format (the trainer's ``channels_last: true``);
* ``bf16``: ``torch.autocast("cpu", bfloat16)`` around forward + losses (the trainer's ``precision: bf16``);
* ``compile``: ``torch.compile`` (inductor) of the model's forward, fp32.

The variants are interleaved step by step in one process (load changes hit all alike); the table gives the median
wall and CPU (``time.process_time``) seconds of the timed steps, clips/s, and the largest relative difference of
each variant's losses from ``fp32``'s over all steps. Dropout and stochastic depth are switched off so that the
variants compute the same function (speed does not depend on them); the compile time (first step) is reported
separately.

    .venv/bin/python benchmarks/train_speed.py --size 480 --steps 2 --warmup 1 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

VARIANTS = ("fp32", "channels_last", "bf16", "compile")


def _deterministic(model: nn.Module) -> nn.Module:
    """Dropout off (stochastic depth is off from the builder), so every variant computes the same function."""
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.p = 0.0
    return model


def make_step(model: nn.Module, variant: str, frames: torch.Tensor, labels: torch.Tensor) -> Callable[[], float]:
    """A closure running one optimisation step of ``model`` under ``variant``; returns the loss."""
    if variant == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        b, t, c, h, w = frames.shape
        frames = frames.view(b * t, c, h, w).contiguous(memory_format=torch.channels_last).view(b, t, c, h, w)
    forward = torch.compile(model) if variant == "compile" else model
    opt = torch.optim.AdamW(model.parameters(), lr=6e-5, weight_decay=0.01)
    model.train()

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16"):
            terms = model.losses(forward(frames), labels)
        loss = sum(t.float() for t in terms.values())
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def measure(name: str, variants: list[str], size: int, steps: int, warmup: int, batch: int = 1) -> list[dict]:
    from vidseg.models.registry import build

    torch.manual_seed(0)
    base = _deterministic(build(name, num_classes=124, drop_path_rate=0.0))
    gen = torch.Generator().manual_seed(1)
    frames = torch.randn(batch, 4, 3, size, size, generator=gen)
    labels = torch.randint(0, 124, (batch, 4, size, size), generator=gen)
    runs = {v: make_step(copy.deepcopy(base), v, frames, labels) for v in variants}
    wall = {v: [] for v in variants}
    cpu = {v: [] for v in variants}
    losses = {v: [] for v in variants}
    first = {}
    for i in range(warmup + steps):
        for v, step in runs.items():  # interleaved: the same moment of load for every variant
            t0, c0 = time.perf_counter(), time.process_time()
            losses[v].append(step())
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if i == 0:
                first[v] = dt
            if i >= warmup:
                wall[v].append(dt)
                cpu[v].append(dc)
    rows = []
    for v in variants:
        ref = losses["fp32"] if "fp32" in losses else losses[v]
        rel = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses[v], ref, strict=True))
        med = statistics.median(wall[v])
        rows.append({"model": name, "variant": v, "wall_s": round(med, 3), "cpu_s": round(statistics.median(cpu[v]), 3),
                     "clips_per_s": round(batch / med, 4), "first_step_s": round(first[v], 1),
                     "loss_max_rel_diff": float(f"{rel:.2e}"), "losses": [round(x, 6) for x in losses[v]]})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=["cffm_b0", "segformer_b0"], help="registered models")
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS, help="settings to compare")
    p.add_argument("--size", type=int, default=480, help="square crop size")
    p.add_argument("--batch", type=int, default=1, help="clips per step")
    p.add_argument("--steps", type=int, default=2, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per variant (the first compiles)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    print(f"{torch.get_num_threads()} threads, {args.size}x{args.size}, 4-frame clips, batch {args.batch}; "
          f"load average {load0[0]:.1f}", flush=True)
    print(f"{'model':14s} {'variant':14s} {'s/step':>7s} {'CPU s':>7s} {'clips/s':>8s} {'first':>6s} "
          f"{'loss rel. diff':>15s}", flush=True)
    rows = []
    for name in args.models:
        for row in measure(name, args.variants, args.size, args.steps, args.warmup, args.batch):
            rows.append(row)
            print(f"{row['model']:14s} {row['variant']:14s} {row['wall_s']:7.2f} {row['cpu_s']:7.2f} "
                  f"{row['clips_per_s']:8.3f} {row['first_step_s']:6.1f} {row['loss_max_rel_diff']:15.2e}", flush=True)
    load1 = os.getloadavg()
    print(f"load average at the end {load1[0]:.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": args.size, "threads": torch.get_num_threads(), "load": [load0[0], load1[0]],
                       "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
