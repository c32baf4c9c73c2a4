"""Network forward speed of SegFormer-B0 and CFFM-B0 (issue 13): vidseg fast path vs reference vs transformers.

Times the network only (frame -> 1/4-resolution logits; no upsample/argmax, which is
``inference.fast_argmax``'s job), one frame per call, the variants interleaved round by round in one process
so that load changes on a shared machine hit all of them alike. Reports the median wall time and the median
process CPU time per frame, the load average before and after, and the largest logit difference of every
variant from the reference forward, absolute and relative to the largest reference logit (random weights with
non-trivial BatchNorm statistics).

Variants:
* ``segformer_b0 reference``: ``vidseg.models.fastpath.reference_path()`` (the forward training uses).
* ``segformer_b0 fast``: eval + ``torch.inference_mode()``: the models' fast paths.
* ``segformer_b0 fast, plain ops``: the same inside ``vidseg.models.fastpath.plain_ops()`` (no oneDNN fused
  GEMM + bias/residual/GELU kernels), to see what the fused kernels give.
* ``segformer_b0 fast+compile`` (``--compile``): ``prepare_for_inference(compile=True)`` (inductor); the
  first call's compile time is printed separately.
* ``transformers``: ``SegformerForSemanticSegmentation`` built from a ``SegformerConfig`` with the same
  weights (keys renamed, same LayerNorm eps), to its 1/4 logits.
* ``cffm_b0 stream reference|fast``: one streaming step: ``encode_frame`` of the new frame, then
  ``decode_clip_lowres`` of [t-9, t-6, t-3, t] from cached features.

``--src DIR`` imports vidseg from another checkout's ``src`` (e.g. a ``git worktree`` of an older commit, to
time the code before a change; that tree has no fast path, so only the reference variants run).

    .venv/bin/python benchmarks/model_profile.py --threads 1 --size 480x864 --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", default="480x864", help="HxW of the network input (480x853 after the "
                        "official keep-ratio resize and size_divisor 32 is 480x864)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="add the torch.compile variant")
    parser.add_argument("--no-transformers", action="store_true")
    parser.add_argument("--no-cffm", action="store_true")
    parser.add_argument("--default-malloc", action="store_true", help="keep glibc's default malloc settings "
                        "(else vidseg.inference.runtime.keep_freed_memory, as the vidseg CLI does)")
    parser.add_argument("--src", default=None, help="import vidseg from this src folder instead")
    parser.add_argument("--others", default="", help="comma-separated registered names to time as whole "
                        "networks (frame -> logits): plain eval vs prepare_for_inference(fuse_bn) vs "
                        "fuse_bn + channels_last (instead of the SegFormer/CFFM variants)")
    return parser.parse_args(argv)


def _randomise_bn(model, seed: int = 0) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=g) * 0.5 + 1)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.5)


def transformers_peer(model):
    """``SegformerForSemanticSegmentation`` with ``model``'s (a vidseg SegFormer-B0) weights and LayerNorm eps."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    from vidseg.models.backbones.mit import set_official_eps

    config = SegformerConfig(num_labels=model.num_classes, decoder_hidden_size=model.decode_head.embed_dim)
    peer = SegformerForSemanticSegmentation(config).eval()
    renames = {"decode_head.linear_fuse.conv.": "decode_head.linear_fuse.",
               "decode_head.linear_fuse.bn.": "decode_head.batch_norm.",
               "decode_head.linear_pred.": "decode_head.classifier.", "backbone.": "segformer."}
    renames.update({f"decode_head.linear_c{i + 1}.": f"decode_head.linear_projections.{i}." for i in range(4)})
    state = {}
    for key, value in model.state_dict().items():
        for old, new in renames.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        state[key] = value
    peer.load_state_dict(state, strict=True)
    set_official_eps(peer.segformer.stages)
    return peer


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


class CffmStream:
    """One streaming step of CFFM per call: encode the next frame, decode [t-9, t-6, t-3, t] from the cache."""

    def __init__(self, model, frames) -> None:
        self.model, self.frames, self.cache, self.t = model, frames, [], 0

    def step(self):
        image = self.frames[self.t % len(self.frames)][None]
        feats = self.model.encode_frame(image)
        self.cache = [*self.cache[-9:], feats]
        self.t += 1
        if len(self.cache) < 10:
            clip = [feats]
        else:
            clip = [self.model.support_features(self.cache[i]) for i in (0, 3, 6)] + [feats]
        return self.model.decode_clip_lowres(clip, tuple(image.shape[-2:]))


def _reference_path():
    """vidseg's ``reference_path`` context, or a null context for a checkout without fast paths."""
    try:
        from vidseg.models.fastpath import reference_path
    except ImportError:  # an older checkout: everything is the reference
        return contextlib.nullcontext, False
    return reference_path, True


def _plain_ops():
    """vidseg's ``plain_ops`` context (fast paths without oneDNN's fused kernels), or None before it existed."""
    try:
        from vidseg.models.fastpath import plain_ops
    except ImportError:
        return None
    return plain_ops


def _within(context, fn):
    def run():
        with context():
            return fn()
    return run


def build_variants(args: argparse.Namespace, image) -> tuple[dict[str, Callable], list[str]]:
    """name -> a zero-argument call giving 1/4 logits; and notes (compile time) to print."""
    import torch

    from vidseg.models import build

    reference_path, has_fast = _reference_path()
    plain_ops = _plain_ops()

    def reference(fn):
        return _within(reference_path, fn)

    seg = build("segformer_b0").eval()
    _randomise_bn(seg)
    variants: dict[str, Callable] = {"segformer_b0 reference": reference(lambda: seg.encode_frame(image))}
    notes = []
    if has_fast:
        variants["segformer_b0 fast"] = lambda: seg.encode_frame(image)
    if plain_ops is not None:
        variants["segformer_b0 fast, plain ops"] = _within(plain_ops, lambda: seg.encode_frame(image))
    if args.compile and has_fast:
        from vidseg.inference.runtime import prepare_for_inference

        compiled = prepare_for_inference(seg, compile=True)
        with torch.inference_mode():
            wall, cpu = _time(lambda: compiled.encode_frame(image))
        notes.append(f"compile (first call of segformer_b0 fast+compile): {wall:.1f} s wall, {cpu:.1f} s CPU")
        variants["segformer_b0 fast+compile"] = lambda: compiled.encode_frame(image)
    if not args.no_transformers:
        peer = transformers_peer(seg)
        variants["transformers SegformerForSemanticSegmentation"] = lambda: peer(image).logits
    if not args.no_cffm:
        cffm = build("cffm_b0").eval()
        _randomise_bn(cffm, seed=1)
        frames = torch.randn(4, *image.shape[1:])
        ref_stream, fast_stream, plain_stream = (CffmStream(cffm, frames) for _ in range(3))
        with torch.inference_mode():
            for _ in range(10):  # fill the caches: every later step decodes a full clip
                reference(ref_stream.step)()
                fast_stream.step()
                plain_stream.step()
        variants["cffm_b0 stream reference"] = reference(ref_stream.step)
        if has_fast:
            variants["cffm_b0 stream fast"] = fast_stream.step
        if plain_ops is not None:
            variants["cffm_b0 stream fast, plain ops"] = _within(plain_ops, plain_stream.step)
    return variants, notes


def build_other_variants(names: list[str], image) -> dict[str, Callable]:
    """Whole-network variants of other families: ``<name> plain|fuse_bn|fuse_bn+channels_last``."""
    import torch

    from vidseg.inference.runtime import prepare_for_inference
    from vidseg.models import build

    variants: dict[str, Callable] = {}
    clip = image[:, None]
    cl_clip = image.contiguous(memory_format=torch.channels_last)[:, None]
    for name in names:
        model = build(name).eval()
        _randomise_bn(model)
        fused = prepare_for_inference(model, fuse_bn=True)
        fused_cl = prepare_for_inference(model, fuse_bn=True, channels_last=True)
        variants[f"{name} plain"] = lambda m=model: m(clip)
        variants[f"{name} fuse_bn"] = lambda m=fused: m(clip)
        variants[f"{name} fuse_bn+channels_last"] = lambda m=fused_cl: m(cl_clip)
    return variants


def report(variants: dict, times: dict, outputs: dict) -> None:
    """Print the table: median wall and CPU time, speed-up over the reference (CPU time), max |diff|."""
    ref_of = {"segformer_b0": "segformer_b0 reference", "transformers": "segformer_b0 reference",
              "cffm_b0": "cffm_b0 stream reference"}
    ref_of.update({name.split(" ")[0]: name for name in variants if name.endswith(" plain")})
    print(f"{'variant':48s} {'wall s/frame':>12s} {'CPU s/frame':>12s} {'x ref (CPU)':>11s} {'max |diff|':>10s} {'/ max|ref|':>10s}")
    for name in variants:
        ref = ref_of[name.split(" ")[0]]
        wall = statistics.median(t[0] for t in times[name])
        cpu = statistics.median(t[1] for t in times[name])
        ref_cpu = statistics.median(t[1] for t in times[ref])
        diff = (outputs[name].float() - outputs[ref].float()).abs().max().item()
        scale = outputs[ref].float().abs().max().item()
        print(f"{name:48s} {wall:12.3f} {cpu:12.3f} {ref_cpu / cpu:11.2f} {diff:10.2e} {diff / scale:10.2e}")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.src:
        sys.path.insert(0, os.path.abspath(args.src))
    import torch

    if not args.default_malloc and not args.src:
        from vidseg.inference.runtime import keep_freed_memory

        keep_freed_memory()
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.lower().split("x"))
    torch.manual_seed(0)
    image = torch.randn(1, 3, h, w)
    load0 = os.getloadavg()
    if args.others:
        variants, notes = build_other_variants(args.others.split(","), image), []
    else:
        variants, notes = build_variants(args, image)
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
    with torch.inference_mode():
        outputs = {name: fn() for name, fn in variants.items()}  # warm-up, and the outputs to compare
        for _ in range(args.rounds):
            for name, fn in variants.items():
                times[name].append(_time(fn))
    load1 = os.getloadavg()
    import vidseg

    print(f"vidseg from {os.path.dirname(vidseg.__file__)}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), input {h}x{w}, {args.rounds} rounds interleaved; "
          f"load average before {load0[0]:.2f} / after {load1[0]:.2f} (1 min)")
    report(variants, times, outputs)
    for note in notes:
        print(note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
