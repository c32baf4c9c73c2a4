"""Generic weight loading: local PyTorch files, safetensors files and local Hugging Face folders.

Nothing here can run code from a file: PyTorch files are read with ``torch.load(weights_only=True)`` and
safetensors files with the safetensors library. Official checkpoints in foreign key layouts are handled by
*converters*: plain functions ``state_dict -> state_dict`` passed to :func:`load_weights` (see
``vidseg.models.convert_tcb`` and the SegFormer/CFFM converters).

Example::

    from vidseg.models import build
    from vidseg.models.checkpoint import load_weights
    from vidseg.models.convert_tcb import convert_tcb_checkpoint

    model = build("tcb_ocr_r101")
    report = load_weights(model, "model_epoch_120.pth", converter=convert_tcb_checkpoint)
    print(report.missing, report.unexpected)
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidseg.errors import DataError
from vidseg.fileio import atomic_path, write_bytes_atomic

StateDict = dict[str, torch.Tensor]
Converter = Callable[[StateDict], StateDict]

# keys under which training frameworks nest the weights inside a checkpoint dictionary
_NESTED_KEYS = ("state_dict", "model", "model_state", "model_state_dict", "module", "net")
_HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass
class LoadReport:
    """What :func:`load_weights` did.

    Attributes:
        missing: model keys that the checkpoint did not provide (they keep their current values).
        unexpected: checkpoint keys that the model does not have (ignored).
        loaded: number of tensors copied into the model.
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    loaded: int = 0

    def summary(self) -> str:
        """One line: loaded count and the missing/unexpected key names (first few)."""

        def names(keys: list[str]) -> str:
            shown = ", ".join(keys[:8])
            return f"{len(keys)} ({shown}{', ...' if len(keys) > 8 else ''})" if keys else "0"

        return f"loaded {self.loaded} tensors; missing {names(self.missing)}; unexpected {names(self.unexpected)}"


def _unwrap(obj: object, path: str | os.PathLike) -> StateDict:
    """Find the tensor dictionary inside a loaded checkpoint object (mmcv ``state_dict``, ``model``, ...)."""
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        for key in _NESTED_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                return _unwrap(obj[key], path)
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise DataError(path, "no tensor state dict found in the checkpoint "
                          f"(top-level keys: {list(obj)[:6] if isinstance(obj, Mapping) else type(obj).__name__})")


def _read_torch(path: Path) -> StateDict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, forbidden globals under weights_only
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(path, f"cannot read as a PyTorch weights file (weights_only=True): {first}") from exc
    return _unwrap(obj, path)


def _read_safetensors(path: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(path, f"cannot read as a safetensors file: {exc}") from exc


def _read_hf_folder(path: Path) -> StateDict:
    shards = sorted(path.glob("model-*-of-*.safetensors")) or sorted(path.glob("pytorch_model-*-of-*.bin"))
    files = [path / name for name in _HF_WEIGHT_FILES if (path / name).is_file()][:1] or shards
    if not files:
        raise DataError(path, "folder has no model.safetensors, pytorch_model.bin or sharded weights")
    state: StateDict = {}
    for f in files:
        state.update(read_state_dict(f))
    return state


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """Read the tensors of a local checkpoint.

    Args:
        path: a ``.pt``/``.pth``/``.bin``/``.ckpt`` PyTorch file (read with ``weights_only=True``; a nested
            ``state_dict``/``model`` entry is unwrapped), a ``.safetensors`` file, or a local Hugging Face
            model folder (``model.safetensors``, ``pytorch_model.bin`` or their shards).

    Returns:
        name -> tensor, on CPU, keys as stored (no prefix stripping).

    Raises:
        DataError: the path does not exist or cannot be read as weights.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(p, "weights file or folder does not exist")
    if p.is_dir():
        return _read_hf_folder(p)
    if p.suffix == ".safetensors":
        return _read_safetensors(p)
    return _read_torch(p)


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str = "module.") -> StateDict:
    """Remove ``prefix`` from every key that starts with it (DataParallel/DDP checkpoints)."""
    n = len(prefix)
    return {(k[n:] if k.startswith(prefix) else k): v for k, v in state.items()}


def _check_shapes(model_state: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor],
                  path: str | os.PathLike) -> None:
    bad = [f"{k} {tuple(v.shape)} vs model {tuple(model_state[k].shape)}"
           for k, v in state.items() if k in model_state and v.shape != model_state[k].shape]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise DataError(path, f"shape mismatch for {len(bad)} tensors: {'; '.join(bad[:3])}{more}")


def load_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str | os.PathLike = "<state>",
                    ignore_unexpected: Iterable[str] = ()) -> LoadReport:
    """Copy ``state`` into ``model`` non-strictly, reporting missing/unexpected keys by name.

    Args:
        model: the module to fill.
        state: name -> tensor in the model's key layout.
        source: name used in error messages (the file).
        ignore_unexpected: key prefixes that are known to be unused and not reported (e.g. ``"fc."``).

    Returns:
        the :class:`LoadReport`.

    Raises:
        DataError: a tensor's shape differs from the model's (never silently skipped).
    """
    model_state = model.state_dict()
    _check_shapes(model_state, state, source)
    prefixes = tuple(ignore_unexpected)
    kept = {k: v for k, v in state.items() if not (prefixes and k.startswith(prefixes))}
    result = model.load_state_dict(kept, strict=False)
    loaded = sum(1 for k in kept if k in model_state)
    # BN step counters are absent from checkpoints saved before PyTorch 0.4.1; they only matter with
    # momentum=None, so they are not reported as missing.
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    return LoadReport(missing=missing, unexpected=list(result.unexpected_keys), loaded=loaded)


def load_weights(model: nn.Module, path: str | os.PathLike, converter: Converter | None = None, *,
                 strict: bool = False, ignore_unexpected: Iterable[str] = ()) -> LoadReport:
    """Load a local checkpoint into ``model``.

    The file is read with :func:`read_state_dict`, a ``module.`` prefix is stripped, then ``converter`` (if
    given) maps the official key layout to the model's.

    Args:
        model: the module to fill.
        path: file or local Hugging Face folder.
        converter: ``state_dict -> state_dict`` renaming/reshaping function for an official layout.
        strict: raise if any key is missing or unexpected.
        ignore_unexpected: key prefixes dropped silently (after conversion).

    Returns:
        a :class:`LoadReport` naming the missing and unexpected keys.

    Raises:
        DataError: unreadable file, shape mismatch, or (``strict``) missing/unexpected keys.
    """
    state = strip_prefix(read_state_dict(path))
    if converter is not None:
        state = converter(state)
    report = load_state_dict(model, state, source=path, ignore_unexpected=ignore_unexpected)
    if strict and (report.missing or report.unexpected):
        raise DataError(path, f"keys do not match the model: {report.summary()}")
    return report


def torch_bytes(obj: Any) -> bytes:
    """``torch.save`` output of ``obj`` as bytes.

    Saving to memory fixes the archive's inner folder name (``archive/``; saving to a path stores the temporary
    file's random name), so identical runs give byte-identical files, and the disk write is one plain write whose
    out-of-space error is an ``OSError`` rather than a torch ``RuntimeError``.
    """
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_torch_atomic(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save(obj)`` to ``path`` atomically and reproducibly (:func:`torch_bytes`)."""
    write_bytes_atomic(path, torch_bytes(obj))


def save_weights(model_or_state: nn.Module | Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Save weights atomically: ``.safetensors`` via safetensors, anything else via ``torch.save``."""
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else dict(model_or_state)
    state = {k: v.detach().cpu().clone().contiguous() for k, v in state.items()}  # no shared storage
    with atomic_path(path) as tmp:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import save_file

            save_file(state, str(tmp))
        else:
            tmp.write_bytes(torch_bytes(state))
