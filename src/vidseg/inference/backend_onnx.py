"""The onnxruntime backend: a semantic model's encoder and clip decoder as ONNX graphs run by onnxruntime.

Two graphs per model input size, exported on the fly from the loaded weights (fixed sizes: ONNX graphs are
traced at one size, so each distinct input size gets its own files, kept in a cache folder keyed by the
weights, the model code, the size and the torch version):

* ``encode``: ``image [1, 3, H, W] -> leaf_0, leaf_1, ...`` (the flattened ``model.encode_frame`` output);
* ``decode-s<S>``: ``target leaves + the S supports' used leaves -> logits [1, K, h, w]``, the logits of
  ``model.decode_clip_lowres`` (before the final resize), one graph per clip length S that occurs (CFFM's
  first frames decode with fewer supports). Which support leaves are inputs is
  :func:`vidseg.export.step_spec`'s answer (CFFM: only the 1/8 map), as in ``vidseg export --step``.

The predictor keeps the feature cache as with torch, so every frame is encoded once whatever the clip rule
(TCB's future supports, resumed runs that skip targets), and the low-resolution logits go through the same
torch upsample + argmax as the torch backend. An image model's graph written by ``vidseg export`` (``image ->
logits``) can be run instead (``onnx=FILE``): then ``encode_frame`` only holds the image and the decoder runs
the whole graph.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils import _pytree as pytree

import vidseg.models as vidseg_models
from vidseg.errors import ConfigError, DataError
from vidseg.export import write_onnx
from vidseg.models.heads.common import resize

GRAPH_VERSION = "1"  # part of the cache key: bump when the graphs below change
OPSET = 17


def default_cache_dir() -> Path:
    """``$VIDSEG_ONNX_CACHE``, else ``$XDG_CACHE_HOME/vidseg/onnx`` (``~/.cache/vidseg/onnx``)."""
    if os.environ.get("VIDSEG_ONNX_CACHE"):
        return Path(os.environ["VIDSEG_ONNX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vidseg" / "onnx"


def weights_fingerprint(model: nn.Module) -> str:
    """SHA-256 (16 hex digits) of the model class and every parameter and buffer (names, shapes, values)."""
    digest = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for key, value in model.state_dict().items():
        array = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}:{array.dtype}:{tuple(array.shape)}".encode())
        digest.update(array.view(torch.uint8).numpy().tobytes() if array.numel() else b"")
    return digest.hexdigest()[:16]


def models_code_fingerprint() -> str:
    """SHA-256 (16 hex digits) of every source file of :mod:`vidseg.models`: what the traced graphs depend on
    besides the weights (a changed forward must never reuse a cached graph)."""
    digest = hashlib.sha256()
    root = Path(vidseg_models.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class EncodeGraph(nn.Module):
    """``image -> flattened encode_frame leaves``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(pytree.tree_flatten(self.model.encode_frame(image))[0])


class DecodeGraph(nn.Module):
    """``(target leaves..., support used leaves...) -> decode_clip_lowres`` logits for S supports."""

    def __init__(self, model: nn.Module, image_size: tuple[int, int], spec: Any, used: Sequence[int],
                 num_leaves: int, num_supports: int) -> None:
        super().__init__()
        self.model = model
        self.image_size = tuple(image_size)
        self.spec, self.used, self.num_leaves, self.num_supports = spec, list(used), num_leaves, num_supports

    def forward(self, *flat: torch.Tensor) -> torch.Tensor:
        target = pytree.tree_unflatten(list(flat[:self.num_leaves]), self.spec)
        supports = []
        for i in range(self.num_supports):
            leaves: list[Any] = [None] * self.num_leaves
            for k, j in enumerate(self.used):
                leaves[j] = flat[self.num_leaves + i * len(self.used) + k]
            supports.append(pytree.tree_unflatten(leaves, self.spec))
        return self.model.decode_clip_lowres([*supports, target], self.image_size)


class _Deferred:
    """Features of a whole-graph backend: the model input, run when the frame is decoded."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image


def _export(graph: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str]) -> None:
    with torch.no_grad():
        write_onnx(graph, args, path, inputs, outputs, opset=OPSET)


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
        raise DataError(path, f"onnxruntime cannot load this ONNX file ({str(exc).splitlines()[0][:200]})") from None


class OnnxBackend:
    """Run a semantic model through onnxruntime (see the module docstring).

    Args:
        model: the loaded model (eval mode, on the CPU).
        onnx: an image model's ``image -> logits`` graph (``vidseg export``) to run instead of exporting.
        cache_dir: where exported graphs are kept (default :func:`default_cache_dir`).
        threads: intra-op threads; None: ``torch.get_num_threads()``.
        model_name: the registered name (for messages and file names).

    Raises:
        ConfigError: onnxruntime is not installed; the model keeps state across frames (TCB's memory) or is
            not on the CPU; ``onnx`` is given for a video model.
    """

    name = "onnxruntime"

    def __init__(self, model: nn.Module, *, onnx: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, threads: int | None = None,
                 model_name: str | None = None) -> None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise ConfigError("--backend onnxruntime needs onnxruntime: pip install 'vidseg[onnx]'") from None
        self.label = model_name or type(model).__name__
        if bool(model.stateful):
            raise ConfigError(f"{self.label} keeps a memory across frames that the ONNX graphs do not carry; it "
                              "runs on torch only (--backend torch)")
        if any(p.device.type != "cpu" for p in model.parameters()):
            raise ConfigError("--backend onnxruntime runs on the CPU here; use --device cpu")
        if onnx is not None and tuple(model.support_offsets):
            raise ConfigError(f"--onnx takes an image model's graph; {self.label} is a video model, whose "
                              "encoder and clip decoder are exported on the fly (leave out --onnx)")
        self.model = model.eval()
        self.num_classes = int(model.num_classes)
        self.onnx = Path(onnx) if onnx is not None else None
        if self.onnx is not None and not self.onnx.is_file():
            raise DataError(self.onnx, "ONNX file not found")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.threads = int(threads) if threads is not None else torch.get_num_threads()
        self._sessions: dict[tuple, Any] = {}
        self._fingerprint: str | None = None
        self._layout: tuple[Any, list[int], int] | None = None
        self.exported: list[Path] = []  # graphs this backend wrote (not found in the cache)

    # -- graphs ---------------------------------------------------------------------------------------------

    def _layout_at(self, size: tuple[int, int]) -> tuple[Any, list[int], int]:
        """(pytree spec, support leaves the decoder reads, number of leaves) of the features (found once, at
        the first size: the structure does not depend on it)."""
        if self._layout is None:
            with torch.no_grad():
                leaves, spec = pytree.tree_flatten(self.model.encode_frame(torch.randn(1, 3, *size)))
                num_supports = max(len(self.model.support_offsets), len(self.model.offline_support_offsets))
                used = [j for j in range(len(leaves)) if num_supports and self._reads(leaves, spec, j, size)]
            self._layout = (spec, used, len(leaves))
        return self._layout

    def _reads(self, leaves: list[torch.Tensor], spec: Any, j: int, size: tuple[int, int]) -> bool:
        """Whether the decoder reads leaf ``j`` of a support frame: its logits change when that leaf does, or
        it fails without it (found by perturbation, not autograd: models may hold inference-mode caches)."""
        supports = len(self.model.support_offsets) or len(self.model.offline_support_offsets)
        target = pytree.tree_unflatten(leaves, spec)

        def logits(value: torch.Tensor | None) -> torch.Tensor:
            support = pytree.tree_unflatten([value if k == j else leaf for k, leaf in enumerate(leaves)], spec)
            return self.model.decode_clip_lowres([support] * supports + [target], size)

        try:
            base = logits(None)
        except Exception:  # noqa: BLE001 - any failure without the leaf means the decoder needs it
            return True
        return not torch.equal(base, logits(torch.randn_like(leaves[j]) * 3))

    def _path(self, kind: str, size: tuple[int, int]) -> Path:
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self.model)
            self._fingerprint += models_code_fingerprint()
        key = f"{self._fingerprint}-{torch.__version__}-{OPSET}-{GRAPH_VERSION}"
        tag = hashlib.sha256(key.encode()).hexdigest()[:12]
        safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in self.label)
        return self.cache_dir / f"{safe}-{tag}-{size[0]}x{size[1]}-{kind}.onnx"

    def _graph(self, kind: str, size: tuple[int, int], num_supports: int = 0) -> Any:
        """The session of graph ``kind`` (``encode`` / ``decode``) at ``size``, exported first if not cached."""
        name = kind if kind == "encode" else f"decode-s{num_supports}"
        if (name, size) in self._sessions:
            return self._sessions[(name, size)]
        path = self._path(name, size)
        if not path.is_file():
            try:
                with torch.inference_mode(False):  # tracing needs ordinary tensors
                    self._write_graph(kind, size, num_supports, path)
            except (RuntimeError, TypeError, ValueError) as exc:  # the exporter's errors derive from these
                reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
                raise ConfigError(f"{self.label} cannot be exported to ONNX at {size[0]}x{size[1]} ({reason}); "
                                  "use --backend torch") from None
            self.exported.append(path)
        session = _session(path, self.threads)
        self._sessions[(name, size)] = session
        return session

    def _write_graph(self, kind: str, size: tuple[int, int], num_supports: int, path: Path) -> None:
        image = torch.zeros(1, 3, *size)
        with torch.no_grad():
            leaves = pytree.tree_flatten(self.model.encode_frame(image))[0]
        if kind == "encode":
            _export(EncodeGraph(self.model), (image,), path, ["image"], [f"leaf_{j}" for j in range(len(leaves))])
            return
        spec, used, num_leaves = self._layout_at(size)
        args = (*leaves, *(leaves[j].clone() for _ in range(num_supports) for j in used))  # distinct inputs
        names = [f"target_{j}" for j in range(num_leaves)]
        names += [f"support{i}_{j}" for i in range(num_supports) for j in used]
        _export(DecodeGraph(self.model, size, spec, used, num_leaves, num_supports), args, path, names, ["logits"])

    def prepare(self, size: tuple[int, int], clip_lengths: Sequence[int] = ()) -> None:
        """Export (or find in the cache) and load the graphs for model input ``size`` = (H, W) now.

        ``clip_lengths``: the clip lengths to prepare decoders for (default: the model's full clip).
        """
        size = (int(size[0]), int(size[1]))
        if self.onnx is not None:
            self._whole_session(size)
            return
        self._graph("encode", size)
        for n in clip_lengths or (len(self.model.support_offsets) + 1,):
            self._graph("decode", size, n - 1)

    def _whole_session(self, size: tuple[int, int]) -> Any:
        """The given ``image -> logits`` file, checked against the model input size and class count."""
        if ("whole", size) in self._sessions:
            return self._sessions[("whole", size)]
        session = _session(self.onnx, self.threads)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if [i.name for i in inputs] != ["image"]:
            raise DataError(self.onnx, f"takes inputs {[i.name for i in inputs]}; expected an image model's graph "
                                       "('image' -> 'logits', vidseg export without --step)")
        want = [1, 3, size[0], size[1]]
        if list(inputs[0].shape) != want:
            raise DataError(self.onnx, f"graph input is {'x'.join(map(str, inputs[0].shape))} but the model input "
                                       f"here is {'x'.join(map(str, want))} (export at --size {size[0]}x{size[1]} "
                                       "or leave out --onnx to export on the fly)")
        classes = outputs[0].shape[1] if len(outputs[0].shape) == 4 else None
        if classes != self.num_classes:
            raise DataError(self.onnx, f"graph returns {classes} classes but {self.label} has {self.num_classes}: "
                                       "an ONNX file of another model")
        self._sessions[("whole", size)] = session
        return session

    # -- the predictor's calls ------------------------------------------------------------------------------

    def encode_frame(self, image: torch.Tensor) -> Any:
        """Leaves (numpy) of the frame's features, or the frame itself for a whole-graph file."""
        x = image.detach().cpu().float().contiguous().numpy()
        size = (int(x.shape[2]), int(x.shape[3]))
        if self.onnx is not None:
            return _Deferred(x)
        return self._graph("encode", size).run(None, {"image": x})

    def decode_clip_lowres(self, features: Sequence[Any], image_size: tuple[int, int]) -> torch.Tensor:
        """Target logits [1, K, h, w] (h, w: the model's low resolution; the file's output size for ``onnx``)."""
        target = features[-1]
        if isinstance(target, _Deferred):
            size = (int(target.image.shape[2]), int(target.image.shape[3]))
            return torch.from_numpy(self._whole_session(size).run(None, {"image": target.image})[0])
        size = tuple(int(s) for s in image_size)
        _, used, num_leaves = self._layout_at(size)
        feed = {f"target_{j}": target[j] for j in range(num_leaves)}
        for i, support in enumerate(features[:-1]):
            feed.update({f"support{i}_{j}": support[j] for j in used})
        session = self._graph("decode", size, len(features) - 1)
        names = [i.name for i in session.get_inputs()]  # the exporter drops inputs a graph never reads
        return torch.from_numpy(session.run(None, {k: feed[k] for k in names})[0])

    def decode_clip(self, features: Sequence[Any], image_size: tuple[int, int]) -> torch.Tensor:
        """Target logits [1, K, H, W] at ``image_size`` (the low-resolution logits resized as the model does)."""
        return resize(self.decode_clip_lowres(features, image_size), image_size)

    def support_features(self, features: Any) -> Any:
        """Only the leaves a support contributes (the others are dropped, like the model's own trimming)."""
        if isinstance(features, _Deferred) or self._layout is None:
            return features
        used = set(self._layout[1])
        return [leaf if j in used else None for j, leaf in enumerate(features)]
