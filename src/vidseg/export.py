"""ONNX export of image models and of the per-frame *step* of video models (CFFM, TCB).

* ``export_onnx(model, path)``: an image model (``support_offsets == ()``) as ``image [1, 3, H, W] ->
  logits [1, K, H, W]``.
* ``export_onnx(model, path, step=True)``: one streaming step of a video model. Inputs: the new frame
  ``image`` and the cached features of the support frames (``support{i}_{j}``: support i = 0..S-1 in clip
  order, leaf j of its features); outputs: the target ``logits`` and the new frame's own features
  (``feature_{j}``) to cache for later steps. Feature leaves that ``decode_clip`` never reads from a support
  (CFFM's 1/4 map) are neither inputs nor outputs. The caller keeps the ring buffer, exactly as
  :class:`vidseg.inference.VideoPredictor` does, so the backbone runs once per frame.

The graph is traced at a fixed image size (``image_size``). Export uses the TorchScript-based exporter
(the torch.export-based one needs the ``onnxscript`` package). :func:`check_onnx` runs the file with
onnxruntime and returns the largest absolute difference from PyTorch.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from vidseg.errors import ConfigError
from vidseg.fileio import atomic_path


@dataclass
class StepSpec:
    """How the step's flat inputs / outputs map to the model's feature structure.

    Attributes:
        spec: pytree spec of one frame's features.
        used: per leaf, whether ``decode_clip`` reads it from a support frame.
        num_supports: support frames per clip.
        leaf_shapes: shape of every leaf (batch 1) at the export size.
    """

    spec: Any
    used: list[bool]
    num_supports: int
    leaf_shapes: list[tuple[int, ...]]

    @property
    def used_leaves(self) -> list[int]:
        return [j for j, u in enumerate(self.used) if u]


class ImageGraph(nn.Module):
    """``image -> logits`` of a single-frame model."""

    def __init__(self, model: nn.Module, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        self.image_size = tuple(image_size)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.decode_clip([self.model.encode_frame(image)], self.image_size)


class StepGraph(nn.Module):
    """``(image, support leaves...) -> (logits, own support leaves...)`` of a video model."""

    def __init__(self, model: nn.Module, image_size: tuple[int, int], step: StepSpec) -> None:
        super().__init__()
        self.model = model
        self.image_size = tuple(image_size)
        self.step = step

    def forward(self, image: torch.Tensor, *supports: torch.Tensor) -> tuple[torch.Tensor, ...]:
        own = self.model.encode_frame(image)
        used = self.step.used_leaves
        feats = []
        for i in range(self.step.num_supports):
            leaves: list[Any] = [None] * len(self.step.used)
            for k, j in enumerate(used):
                leaves[j] = supports[i * len(used) + k]
            feats.append(pytree.tree_unflatten(leaves, self.step.spec))
        logits = self.model.decode_clip([*feats, own], self.image_size)
        own_leaves = pytree.tree_flatten(own)[0]
        return (logits, *(own_leaves[j] for j in used))


def _check_exportable(model: nn.Module, step: bool) -> int:
    offsets = tuple(model.support_offsets)
    if not step and offsets:
        raise ConfigError(f"{type(model).__name__} is a video model (support offsets {offsets}); export its "
                          "per-frame step with step=True (--step)")
    if step and not offsets:
        raise ConfigError(f"{type(model).__name__} is an image model: export it without step")
    if model.stateful:
        raise ConfigError("models with a test-time memory (tcb_ocr_mem_*) keep state across frames that the "
                          "step graph does not carry; export tcb_ocr_r101 instead")
    return len(offsets)


@torch.no_grad()
def _sample_features(model: nn.Module, image: torch.Tensor) -> Any:
    return model.encode_frame(image)


def step_spec(model: nn.Module, image_size: tuple[int, int], num_supports: int) -> StepSpec:
    """Find the feature structure and which leaves a support contributes (by autograd on a sample clip)."""
    image = torch.randn(1, 3, *image_size)
    feats = _sample_features(model, image)
    leaves, spec = pytree.tree_flatten(feats)
    inputs = [[leaf.detach().clone().requires_grad_(True) for leaf in leaves] for _ in range(num_supports)]
    supports = [pytree.tree_unflatten(x, spec) for x in inputs]
    with torch.enable_grad():
        logits = model.decode_clip([*supports, feats], image_size)
        grads = torch.autograd.grad(logits.sum(), [x for group in inputs for x in group], allow_unused=True)
    used = [any(grads[i * len(leaves) + j] is not None for i in range(num_supports)) for j in range(len(leaves))]
    return StepSpec(spec, used, num_supports, [tuple(leaf.shape) for leaf in leaves])


def export_onnx(model: nn.Module, path: str | os.PathLike, *, step: bool = False,
                image_size: tuple[int, int] = (480, 853), opset: int = 17) -> StepSpec | None:
    """Export ``model`` (eval mode) to ONNX at a fixed image size, atomically.

    Args:
        model: a :class:`vidseg.models.base.VideoSegmenter`.
        path: output ``.onnx`` file.
        step: export the per-frame step of a video model (see module docstring).
        image_size: (H, W) of the traced graph.
        opset: ONNX opset.

    Returns:
        the :class:`StepSpec` of a step export (input / output layout), else None.
    """
    model.eval()
    num_supports = _check_exportable(model, step)
    image = torch.randn(1, 3, *image_size)
    spec = None
    if step:
        spec = step_spec(model, image_size, num_supports)
        graph: nn.Module = StepGraph(model, image_size, spec)
        leaves = pytree.tree_flatten(_sample_features(model, image))[0]
        supports = [leaves[j].clone() for _ in range(num_supports) for j in spec.used_leaves]
        args = (image, *supports)
        input_names = ["image", *(f"support{i}_{j}" for i in range(num_supports) for j in spec.used_leaves)]
        output_names = ["logits", *(f"feature_{j}" for j in spec.used_leaves)]
    else:
        graph = ImageGraph(model, image_size)
        args = (image,)
        input_names, output_names = ["image"], ["logits"]
    write_onnx(graph, args, path, input_names, output_names, opset=opset)
    return spec


def write_onnx(graph: nn.Module, args: tuple, path: str | os.PathLike, input_names: list[str],
               output_names: list[str], *, opset: int = 17) -> None:
    """Trace ``graph(*args)`` (eval mode) into the ONNX file ``path``, atomically (TorchScript exporter, constant
    folding, the exporter's warnings silenced); used by :func:`export_onnx` and the onnxruntime backend."""
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph.eval(), args, str(tmp), dynamo=False, input_names=input_names,
                          output_names=output_names, opset_version=opset, do_constant_folding=True)


def run_onnx(path: str | os.PathLike, inputs: dict[str, torch.Tensor]) -> list:
    """Run an exported file with onnxruntime (CPU); returns the outputs as numpy arrays."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - installed with the onnx extra
        raise ConfigError("running ONNX files needs onnxruntime: pip install 'vidseg[onnx]'") from None
    session = ort.InferenceSession(str(Path(path)), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    feed = {k: v.detach().cpu().numpy() for k, v in inputs.items() if k in names}
    return session.run(None, feed)


@torch.no_grad()
def check_onnx(model: nn.Module, path: str | os.PathLike, *, step: bool = False,
               image_size: tuple[int, int] = (480, 853), seed: int = 0,
               frames: Sequence[torch.Tensor] | None = None) -> float:
    """Max abs difference of logits (and step features) between PyTorch and onnxruntime on random frames.

    For a step, S + 1 random frames are encoded with PyTorch; the supports' features go into the ONNX step
    with the last frame as the target, and the outputs are compared with ``decode_clip`` / ``encode_frame``.
    """
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    n = len(model.support_offsets) + 1 if step else 1
    if frames is None:
        frames = [torch.randn(1, 3, *image_size, generator=gen) for _ in range(n)]
    if not step:
        ref = model.decode_clip([model.encode_frame(frames[-1])], image_size)
        got = run_onnx(path, {"image": frames[-1]})[0]
        return float((ref - torch.from_numpy(got)).abs().max())
    spec = step_spec(model, image_size, n - 1)
    feats = [model.encode_frame(f) for f in frames]
    ref = model.decode_clip(feats, image_size)
    inputs = {"image": frames[-1]}
    for i in range(n - 1):
        leaves = pytree.tree_flatten(feats[i])[0]
        inputs.update({f"support{i}_{j}": leaves[j] for j in spec.used_leaves})
    outputs = run_onnx(path, inputs)
    diff = float((ref - torch.from_numpy(outputs[0])).abs().max())
    own = pytree.tree_flatten(feats[-1])[0]
    for k, j in enumerate(spec.used_leaves):
        diff = max(diff, float((own[j] - torch.from_numpy(outputs[1 + k])).abs().max()))
    return diff
