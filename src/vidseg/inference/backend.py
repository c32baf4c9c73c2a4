"""Inference backends: what runs a semantic model's per-frame encoder and clip decoder.

:class:`vidseg.inference.VideoPredictor` calls its backend where it would call the model (``encode_frame``,
``decode_clip``, ``decode_clip_lowres``, ``support_features``), so test-time resizing, clip rules, the feature
cache, TTA, ensembling, the fused upsample + argmax and the writers stay one code path for every backend:

* ``"torch"`` (:class:`TorchBackend`): the PyTorch model itself.
* ``"onnxruntime"`` (:class:`vidseg.inference.backend_onnx.OnnxBackend`): the model exported to ONNX (on the
  fly, once per model input size, into a cache folder) and run by onnxruntime with the same thread count as
  torch; or a file written by ``vidseg export`` (``onnx=FILE``: an image model's graph or a video model's
  ``--step`` graph).

``make_backend(model, "onnxruntime", size=(H, W))`` builds one for a loaded model (the benchmarks use it too).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

import torch

from vidseg.errors import ConfigError
from vidseg.inference.backend_onnx import OnnxBackend

BACKENDS = ("torch", "onnxruntime")


class Backend(Protocol):
    """The part of :class:`vidseg.models.base.VideoSegmenter` the streaming predictor calls per frame.

    Attributes:
        name: ``"torch"`` or ``"onnxruntime"``.
        num_classes: classes of the model's logits.
    """

    name: str
    num_classes: int

    def encode_frame(self, image: torch.Tensor) -> Any:
        """Per-frame features of image [1, 3, H, W] (an opaque object the backend's decoder reads)."""

    def decode_clip(self, features: Sequence[Any], image_size: tuple[int, int]) -> torch.Tensor:
        """Target (last) logits [1, K, H, W] at ``image_size``."""

    def decode_clip_lowres(self, features: Sequence[Any], image_size: tuple[int, int]) -> torch.Tensor:
        """Target logits before the final bilinear resize [1, K, h, w]."""

    def support_features(self, features: Any) -> Any:
        """What a decoded target keeps as a support."""


class TorchBackend:
    """The PyTorch model itself (the reference path)."""

    name = "torch"

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.num_classes = int(model.num_classes)

    def encode_frame(self, image: torch.Tensor) -> Any:
        return self.model.encode_frame(image)

    def decode_clip(self, features: Sequence[Any], image_size: tuple[int, int]) -> torch.Tensor:
        return self.model.decode_clip(features, image_size)

    def decode_clip_lowres(self, features: Sequence[Any], image_size: tuple[int, int]) -> torch.Tensor:
        return self.model.decode_clip_lowres(features, image_size)

    def support_features(self, features: Any) -> Any:
        return self.model.support_features(features)


def make_backend(model: torch.nn.Module, name: str = "torch", size: tuple[int, int] | None = None, *,
                 onnx: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                 threads: int | None = None, model_name: str | None = None) -> Backend:
    """A backend for a loaded semantic model (eval mode).

    Args:
        model: the model (a :class:`vidseg.models.base.VideoSegmenter`).
        name: ``"torch"`` or ``"onnxruntime"``.
        size: onnxruntime: (H, W) of the model input to export for now (other sizes are exported when they
            first occur); None exports lazily.
        onnx: onnxruntime: a file written by ``vidseg export`` to run instead of exporting (an image model's
            ``image -> logits`` graph or a video model's ``--step`` graph; see
            :mod:`vidseg.inference.backend_onnx`).
        cache_dir: onnxruntime: where exported graphs are kept (default
            :func:`vidseg.inference.backend_onnx.default_cache_dir`).
        threads: onnxruntime intra-op threads; None: ``torch.get_num_threads()`` (the torch setting).
        model_name: the registered name, for messages.

    Raises:
        ConfigError: unknown backend, onnxruntime missing, or a model the ONNX graphs cannot express.
    """
    if name not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "torch":
        if onnx is not None:
            raise ConfigError("--onnx needs --backend onnxruntime")
        return TorchBackend(model)
    backend = OnnxBackend(model, onnx=onnx, cache_dir=cache_dir, threads=threads, model_name=model_name)
    if size is not None:
        backend.prepare(tuple(size))
    return backend
