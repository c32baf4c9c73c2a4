"""vidseg's C kernels (vidseg.models.ops.cpu_kernels) against the PyTorch ops they replace (issue 13).

  kernels   attention, LayerNorm and the fused Mix-FFN at the shapes of the MiT-B0 encoder on a 480x864 input
            (plus attention with head width 64, MiT-B1..B5), and CFFM-B0's windowed attention module at 480x853,
            each kernel and its PyTorch counterpart interleaved in one process on the same inputs; prints
            medians and the ratio.
  encoder   a MiT encoder with the kernels on and off (``VIDSEG_C_KERNELS``), alternating forward by forward.

Random inputs and weights; run on a quiet machine and compare ratios, not absolute times.

    python benchmarks/cpu_kernels_speed.py kernels --threads 1
    python benchmarks/cpu_kernels_speed.py encoder --variant b0 --threads 1 --rounds 14
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from vidseg.inference.runtime import keep_freed_memory
from vidseg.models.backbones.mit import MiT
from vidseg.models.ops import cpu_kernels

# (name, heads, queries, keys, head width): MiT-B0 stages 1-4 at 480x864, then MiT-B2's stage 1
ATTENTION_SHAPES = [("stage 1", 1, 25920, 405, 32), ("stage 2", 2, 6480, 405, 32), ("stage 3", 5, 1620, 405, 32),
                    ("stage 4", 8, 405, 405, 32), ("stage 1, width 64", 1, 25920, 405, 64)]
# (name, height, width, channels): MiT-B0 stages at 480x864 (hidden = 4x channels)
MAP_SHAPES = [("stage 1", 120, 216, 32), ("stage 2", 60, 108, 64), ("stage 3", 30, 54, 160), ("stage 4", 15, 27, 256)]


def interleaved(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each callable, called in turn ``rounds`` times after one warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(rounds + 1):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if i:
                times[name].append(time.perf_counter() - start)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def _print(kind: str, name: str, medians: dict[str, float]) -> dict:
    (ours, ours_s), (theirs, theirs_s) = medians.items()
    print(f"{kind:10s} {name:20s} {ours} {1e3 * ours_s:8.2f} ms   {theirs} {1e3 * theirs_s:8.2f} ms   "
          f"x{theirs_s / ours_s:5.2f}", flush=True)
    return {"kind": kind, "shape": name, "kernel_ms": 1e3 * ours_s, "pytorch_ms": 1e3 * theirs_s,
            "speedup": theirs_s / ours_s}


def bench_kernels(rounds: int) -> list[dict]:
    """Each kernel against its PyTorch ops on the encoder's shapes."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for name, heads, n, m, d in ATTENTION_SHAPES:
        q = torch.randn(1, n, 3 * heads * d, generator=g)[..., : heads * d].view(1, n, heads, d).transpose(1, 2)
        k, v = torch.randn(1, heads, m, d, generator=g), torch.randn(1, heads, m, d, generator=g)
        rows.append(_print("attention", name, interleaved({
            "kernel": lambda q=q, k=k, v=v, d=d: cpu_kernels.attention_tokens(q, k, v, d ** -0.5),
            "sdpa": lambda q=q, k=k, v=v, d=d: F.scaled_dot_product_attention(q, k, v, scale=d ** -0.5)}, rounds)))
    for name, h, w, c in MAP_SHAPES:
        x, norm = torch.randn(1, h * w, c, generator=g), torch.nn.LayerNorm(c, eps=1e-6)
        rows.append(_print("layernorm", name, interleaved({
            "kernel": lambda x=x, norm=norm: cpu_kernels.layer_norm(x, norm),
            "torch": lambda x=x, norm=norm: F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps)},
            rounds)))
    for name, h, w, c in MAP_SHAPES:
        rows.append(_print("mix-ffn", name, interleaved(_mix_ffn_runs(h, w, c, g), rounds)))
    rows.append(_print("cffm attn", "144 windows", interleaved(_cffm_attention_runs(), rounds)))
    return rows


def _cffm_attention_runs() -> dict[str, Callable[[], object]]:
    """CFFM-B0's attention module at 480x853 (1/8 map padded to 63x112: 9 x 16 windows of 49 queries, 289 keys)
    with the windowed kernel and with its gathered-keys path (index_select + F.scaled_dot_product_attention)."""
    from vidseg.models.video import cffm_attention

    torch.manual_seed(0)
    attn = cffm_attention.CFFMAttention().eval()
    n_h, n_w = 9, 16
    inputs = (torch.randn(1, 7 * n_h, 7 * n_w, 256), torch.randn(1, n_h, n_w, 256),
              [torch.randn(1, s * n_h, s * n_w, 256) for s in attn.clip_strides])
    kernel = cffm_attention.window_attention

    def run(use_kernel: bool) -> Callable[[], object]:
        def call() -> object:
            cffm_attention.window_attention = kernel if use_kernel else (lambda *args: None)
            try:
                return attn(*inputs)
            finally:
                cffm_attention.window_attention = kernel
        return call

    return {"kernel": run(True), "gather+sdpa": run(False)}


def _mix_ffn_runs(h: int, w: int, c: int, g: torch.Generator) -> dict[str, Callable[[], object]]:
    """The fused kernel (forced past its hidden-width limit, to show why the limit is there) against the MiT
    fast path's oneDNN ops (fc1, depthwise conv with the GELU fused, fc2 with the residual fused)."""
    from vidseg.models.backbones import mit
    from vidseg.models.fastpath import conv2d_gelu, linear_add, map_to_tokens, tokens_to_map

    hidden = 4 * c
    fc1, fc2 = torch.nn.Linear(c, hidden), torch.nn.Linear(hidden, c)
    conv = torch.nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
    x, residual = torch.randn(1, h * w, c, generator=g), torch.randn(1, h * w, c, generator=g)
    limit = cpu_kernels.MIX_FFN_MAX_HIDDEN

    def fused() -> object:
        cpu_kernels.MIX_FFN_MAX_HIDDEN = max(limit, hidden)
        try:
            return cpu_kernels.mix_ffn(x, residual, h, w, fc1, conv, fc2)
        finally:
            cpu_kernels.MIX_FFN_MAX_HIDDEN = limit

    def ops() -> object:
        act = conv2d_gelu(tokens_to_map(linear_add(x, fc1.weight, fc1.bias), h, w), conv,
                          mit._weight_channels_last(conv))
        return linear_add(map_to_tokens(act), fc2.weight, fc2.bias, residual)

    return {"kernel": fused, "oneDNN": ops}


def bench_encoder(variant: str, rounds: int, size: tuple[int, int]) -> dict:
    """A MiT encoder with the C kernels on and off, alternating forward by forward."""
    torch.manual_seed(0)
    model = MiT(variant=variant).eval()
    image = torch.randn(1, 3, *size)

    def forward(on: bool) -> Callable[[], object]:
        def run() -> object:
            os.environ["VIDSEG_C_KERNELS"] = "1" if on else "0"
            return model(image)
        return run

    medians = interleaved({"kernels on": forward(True), "kernels off": forward(False)}, rounds)
    os.environ.pop("VIDSEG_C_KERNELS", None)
    return _print("encoder", f"MiT-{variant.upper()} {size[0]}x{size[1]}", medians)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["kernels", "encoder"], help="measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds (default 10)")
    parser.add_argument("--variant", default="b0", help="MiT variant for 'encoder' (default b0)")
    parser.add_argument("--size", default="480x864", help="HxW of the encoder's input (default 480x864)")
    args = parser.parse_args(argv)
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    with torch.inference_mode():
        if cpu_kernels._library() is None:
            print("the C kernels are not available here (no AVX-512 or no C compiler): nothing to compare")
            return 1
        print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average "
              f"{os.getloadavg()[0]:.1f}; medians of {args.rounds} interleaved rounds", flush=True)
        if args.what == "kernels":
            bench_kernels(args.rounds)
        else:
            h, w = (int(v) for v in args.size.lower().split("x"))
            bench_encoder(args.variant, args.rounds, (h, w))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
