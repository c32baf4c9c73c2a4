"""Training speed of CFFM-B0 on this machine: clips/s at 480x480 (4 frames per clip), fp32 vs bf16 autocast,
channels-last or not. One optimisation step = forward + CFFM loss + backward + AdamW step.

    .venv/bin/python benchmarks/train_speed.py --batch 1 --steps 3 --size 480 [--threads 2]

Prints a table and, with --json, writes the figures. Weights are random (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def measure(precision: str, channels_last: bool, size: int, batch: int, steps: int, warmup: int) -> float:
    from vidseg.models.registry import build

    torch.manual_seed(0)
    model = build("cffm_b0", num_classes=124)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=6e-5)
    frames = torch.randn(batch, 4, 3, size, size)
    labels = torch.randint(0, 124, (batch, 4, size, size))
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = sum(model.losses(model(frames), labels).values())
        loss.float().backward()
        opt.step()

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=480, help="square crop size")
    p.add_argument("--batch", type=int, default=1, help="clips per step")
    p.add_argument("--steps", type=int, default=3, help="timed steps per setting")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per setting")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for precision in ("fp32", "bf16"):
        for cl in (False, True):
            cps = measure(precision, cl, args.size, args.batch, args.steps, args.warmup)
            rows.append({"precision": precision, "channels_last": cl, "clips_per_s": cps})
            print(f"{precision:5s} channels_last={cl!s:5s} {cps:.3f} clips/s ({args.size}x{args.size}, "
                  f"batch {args.batch}, {torch.get_num_threads()} threads)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": args.size, "batch": args.batch, "threads": torch.get_num_threads(), "rows": rows}, f,
                      indent=2)


if __name__ == "__main__":
    main()
