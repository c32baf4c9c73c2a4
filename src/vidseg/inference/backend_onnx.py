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
torch upsample + argmax as the torch backend.

A file written by ``vidseg export`` can be run instead (``onnx=FILE``), checked first against the model and
the input size (input names and shapes, supports, class count; one-line :class:`DataError` naming the file):

* an image model's graph (``image -> logits``): ``encode_frame`` only holds the image and the decoder runs the
  whole graph;
* a video model's step (``vidseg export --step``: ``image`` + the S supports' cached leaves -> ``logits`` +
  the frame's own leaves): ``encode_frame`` holds the image, and decoding a target whose clip has S supports
  runs the step, which also returns the leaves the frame contributes as a later support (kept in the cache
  instead of the image). What a fixed step cannot serve runs on the on-the-fly graphs above, exported from the
  loaded weights as without ``onnx``: clips with another number of supports (CFFM's first three frames decode
  alone: ``encode`` + ``decode-s0``), and the features of a frame needed as a support before it is decoded as a
  target (TCB's offline future supports, clamped supports of frame 0, resumed runs' skipped targets: the
  ``encode`` graph, so such a frame's encoder runs twice; online CFFM / TCB never do this after frame 0).
"""

from __future__ import annotations

import hashlib
import os
import re
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


class _Frame:
    """Features of a frame when a given file runs: the model input (until the frame was decoded as a target) and
    the leaves it contributes as a support (numpy, by leaf index; filled by the step file or the encode graph)."""

    def __init__(self, image: np.ndarray | None, leaves: dict[int, np.ndarray] | None = None) -> None:
        self.image = image
        self.leaves = leaves if leaves is not None else {}

    def trimmed(self) -> _Frame:
        """Without the image once the support leaves are known."""
        return _Frame(None, self.leaves) if self.leaves else self


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


STEP_INPUT = re.compile(r"support(\d+)_(\d+)")  # export.export_onnx(step=True): support i, feature leaf j


def _dims(shape: Sequence[Any]) -> str:
    return "x".join(map(str, shape))


def check_given_graph(path: Path, session: Any, *, size: tuple[int, int], num_classes: int, label: str,
                      num_supports: int, leaf_shapes: Sequence[tuple[int, ...]] = ()) -> list[int]:
    """Check a ``vidseg export`` file against the model and the model input ``size``; one-line errors.

    Args:
        path: the file (for messages).
        session: its onnxruntime session.
        size: (H, W) of the model input here.
        num_classes: the model's class count.
        label: the model's name (for messages).
        num_supports: 0 for an image model (``image -> logits``), else the supports of the model's step
            (``len(model.support_offsets)``, as ``vidseg export --step`` traces it).
        leaf_shapes: a step's feature leaf shapes (batch 1) at ``size``, from the model.

    Returns:
        the feature leaves the step reads from each support and returns for the target ([] for an image graph).

    Raises:
        DataError: another kind of graph, input size, number of supports, leaf shapes, outputs or class count.
    """
    inputs = {i.name: list(i.shape) for i in session.get_inputs()}
    names = list(inputs)
    wrong_kind = (names[:1] != ["image"] or len(names) < 2) if num_supports else names != ["image"]
    if wrong_kind:
        kind = ("the per-frame step of a video model ('image' + the supports' features -> 'logits' + features, "
                "vidseg export --step)" if num_supports else
                "an image model's graph ('image' -> 'logits', vidseg export without --step)")
        raise DataError(path, f"takes inputs {names}; {label} needs {kind}")
    want = [1, 3, size[0], size[1]]
    if inputs["image"] != want:
        raise DataError(path, f"graph input is {_dims(inputs['image'])} but the model input here is {_dims(want)} "
                              f"(export at --size {size[0]}x{size[1]} or leave out --onnx to export on the fly)")
    used = _check_step_inputs(path, inputs, size, label, num_supports, leaf_shapes) if num_supports else []
    outputs = session.get_outputs()
    expected = ["logits", *(f"feature_{j}" for j in used)]
    if [o.name for o in outputs] != expected:
        raise DataError(path, f"returns outputs {[o.name for o in outputs]}; expected {expected}")
    classes = outputs[0].shape[1] if len(outputs[0].shape) == 4 else None
    if classes != num_classes:
        raise DataError(path, f"graph returns {classes} classes but {label} has {num_classes}: an ONNX file of "
                              "another model")
    return used


def _check_step_inputs(path: Path, inputs: dict[str, list], size: tuple[int, int], label: str, num_supports: int,
                       leaf_shapes: Sequence[tuple[int, ...]]) -> list[int]:
    """The support inputs ``support<i>_<j>`` of a step file: i = 0..S-1, the same leaves j for each, the model's
    leaf shapes. Returns the leaves j."""
    matches = [STEP_INPUT.fullmatch(name) for name in list(inputs)[1:]]
    if not all(matches):
        raise DataError(path, f"takes inputs {list(inputs)}; expected 'image' and 'support<i>_<j>' (vidseg export "
                              "--step)")
    pairs = {(int(m[1]), int(m[2])) for m in matches if m}
    supports, used = sorted({i for i, _ in pairs}), sorted({j for _, j in pairs})
    if supports != list(range(num_supports)) or pairs != {(i, j) for i in supports for j in used}:
        raise DataError(path, f"is a step with {len(supports)} supports (leaves {used}) but {label} decodes a "
                              f"target with {num_supports} supports: a step file of another model")
    for i, j in sorted(pairs):
        want = list(leaf_shapes[j]) if j < len(leaf_shapes) else None
        if inputs[f"support{i}_{j}"] != want:
            raise DataError(path, f"input support{i}_{j} is {_dims(inputs[f'support{i}_{j}'])} but {label}'s feature "
                                  f"leaf {j} at {size[0]}x{size[1]} is {_dims(want or ['missing'])}: a step file of "
                                  "another model")
    return used


class OnnxBackend:
    """Run a semantic model through onnxruntime (see the module docstring).

    Args:
        model: the loaded model (eval mode, on the CPU).
        onnx: a file written by ``vidseg export`` to run instead of exporting: an image model's ``image ->
            logits`` graph, or a video model's per-frame step (``--step``; see the module docstring).
        cache_dir: where exported graphs are kept (default :func:`default_cache_dir`).
        threads: intra-op threads; None: ``torch.get_num_threads()``.
        model_name: the registered name (for messages and file names).

    Raises:
        ConfigError: onnxruntime is not installed; the model keeps state across frames (TCB's memory) or is
            not on the CPU.
        DataError: ``onnx`` does not exist (a file that does not fit the model is refused when it is loaded).
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
            leaves, spec = self._sample_leaves(size, torch.randn)
            with torch.no_grad():
                num_supports = max(len(self.model.support_offsets), len(self.model.offline_support_offsets))
                used = [j for j in range(len(leaves)) if num_supports and self._reads(leaves, spec, j, size)]
            self._layout = (spec, used, len(leaves))
        return self._layout

    def _sample_leaves(self, size: tuple[int, int], make: Any = torch.zeros) -> tuple[list[torch.Tensor], Any]:
        """(leaves, pytree spec) of the model's features of a ``make(1, 3, H, W)`` image."""
        with torch.no_grad():
            return pytree.tree_flatten(self.model.encode_frame(make(1, 3, *size)))

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
        leaves = self._sample_leaves(size)[0]
        if kind == "encode":
            _export(EncodeGraph(self.model), (torch.zeros(1, 3, *size),), path, ["image"],
                    [f"leaf_{j}" for j in range(len(leaves))])
            return
        spec, used, num_leaves = self._layout_at(size)
        args = (*leaves, *(leaves[j].clone() for _ in range(num_supports) for j in used))  # distinct inputs
        names = [f"target_{j}" for j in range(num_leaves)]
        names += [f"support{i}_{j}" for i in range(num_supports) for j in used]
        _export(DecodeGraph(self.model, size, spec, used, num_leaves, num_supports), args, path, names, ["logits"])

    def prepare(self, size: tuple[int, int], clip_lengths: Sequence[int] = ()) -> None:
        """Export (or find in the cache) and load the graphs for model input ``size`` = (H, W) now.

        ``clip_lengths``: the clip lengths to prepare decoders for (default: the model's full clip; with
        ``onnx``, the given file serves the full clip and only the other lengths are prepared).
        """
        size = (int(size[0]), int(size[1]))
        full = len(self.model.support_offsets) + 1
        if self.onnx is not None:
            self._given_graph(size)
            clip_lengths = [n for n in clip_lengths if n != full]
            if not clip_lengths:
                return
        self._graph("encode", size)
        for n in clip_lengths or (full,):
            self._graph("decode", size, n - 1)

    def _given_graph(self, size: tuple[int, int]) -> tuple[Any, list[int]]:
        """(session, support leaves) of the given file, checked against the model input size and the model
        (:func:`check_given_graph`)."""
        if ("given", size) not in self._sessions:
            session = _session(self.onnx, self.threads)
            num_supports = len(self.model.support_offsets)
            shapes = [tuple(leaf.shape) for leaf in self._sample_leaves(size)[0]] if num_supports else []
            used = check_given_graph(self.onnx, session, size=size, num_classes=self.num_classes, label=self.label,
                                     num_supports=num_supports, leaf_shapes=shapes)
            self._sessions[("given", size)] = (session, used)
        return self._sessions[("given", size)]

    # -- the predictor's calls ------------------------------------------------------------------------------

    def encode_frame(self, image: torch.Tensor) -> Any:
        """Leaves (numpy) of the frame's features, or the frame itself when a given file runs."""
        x = image.detach().cpu().float().contiguous().numpy()
        if self.onnx is not None:
            return _Frame(x)
        return self._graph("encode", (int(x.shape[2]), int(x.shape[3]))).run(None, {"image": x})

    def decode_clip_lowres(self, features: Sequence[Any], image_size: tuple[int, int]) -> torch.Tensor:
        """Target logits [1, K, h, w] (h, w: the model's low resolution; the file's output size for ``onnx``)."""
        size = (int(image_size[0]), int(image_size[1]))
        if isinstance(features[-1], _Frame):
            return self._decode_given(features, size)
        return self._decode(size, features[-1], features[:-1])

    def _decode(self, size: tuple[int, int], target: Sequence[np.ndarray], supports: Sequence[Any]) -> torch.Tensor:
        """The ``decode-s<S>`` graph on the target's leaves and the supports' used leaves (indexable by leaf)."""
        _, used, num_leaves = self._layout_at(size)
        feed = {f"target_{j}": target[j] for j in range(num_leaves)}
        for i, support in enumerate(supports):
            feed.update({f"support{i}_{j}": support[j] for j in used})
        session = self._graph("decode", size, len(supports))
        names = [i.name for i in session.get_inputs()]  # the exporter drops inputs a graph never reads
        return torch.from_numpy(session.run(None, {k: feed[k] for k in names})[0])

    def _decode_given(self, features: Sequence[_Frame], size: tuple[int, int]) -> torch.Tensor:
        """The given file on a clip: the whole image graph, the step (which also fills the target's support
        leaves), or, for a clip with another number of supports than the step's, the on-the-fly graphs."""
        session, used = self._given_graph(size)
        target, supports = features[-1], features[:-1]
        if not used:
            return torch.from_numpy(session.run(None, {"image": target.image})[0])
        if len(supports) != len(self.model.support_offsets):
            return self._decode_short(target, supports, size, used)
        feed = {"image": target.image}
        for i, support in enumerate(supports):
            leaves = self._frame_leaves(support, size, used)
            feed.update({f"support{i}_{j}": leaves[j] for j in used})
        logits, *own = session.run(None, feed)
        target.leaves.update(zip(used, own, strict=True))
        return torch.from_numpy(logits)

    def _decode_short(self, target: _Frame, supports: Sequence[_Frame], size: tuple[int, int],
                      used: list[int]) -> torch.Tensor:
        """A clip the step file cannot take (CFFM's first frames): the ``encode`` and ``decode-s<S>`` graphs."""
        leaves = self._graph("encode", size).run(None, {"image": target.image})
        target.leaves.update({j: leaves[j] for j in used})
        if supports and not set(self._layout_at(size)[1]) <= set(used):
            raise DataError(self.onnx, f"returns feature leaves {used} but {self.label}'s decoder reads leaves "
                                       f"{self._layout_at(size)[1]} of a support: a step file of another model")
        return self._decode(size, leaves, [self._frame_leaves(s, size, used) for s in supports])

    def _frame_leaves(self, frame: _Frame, size: tuple[int, int], used: list[int]) -> dict[int, np.ndarray]:
        """A support's leaves; one not decoded as a target yet (a future support, a skipped target) gets them
        from the ``encode`` graph."""
        if any(j not in frame.leaves for j in used):
            leaves = self._graph("encode", size).run(None, {"image": frame.image})
            frame.leaves.update({j: leaves[j] for j in used})
        return frame.leaves

    def decode_clip(self, features: Sequence[Any], image_size: tuple[int, int]) -> torch.Tensor:
        """Target logits [1, K, H, W] at ``image_size`` (the low-resolution logits resized as the model does)."""
        return resize(self.decode_clip_lowres(features, image_size), image_size)

    def support_features(self, features: Any) -> Any:
        """Only the leaves a support contributes (the others are dropped, like the model's own trimming)."""
        if isinstance(features, _Frame):
            return features.trimmed()
        if self._layout is None:
            return features
        used = set(self._layout[1])
        return [leaf if j in used else None for j, leaf in enumerate(features)]
