"""Converters from the official Clip-PanoFCN / PanopticFCN checkpoints (detectron2 layout) to vidseg.

* Clip-PanoFCN (``output/model_final.pth`` of VIPSeg-Dataset, ``{'model': state_dict}``, 346 tensors): our
  :class:`~vidseg.models.panoptic.clip_panofcn.ClipPanoFCN` uses the detectron2 key names unchanged, so the
  conversion is the identity on those keys. Keys of parts the released config does not build
  (``clip_fuse_head.*``) and detectron2 bookkeeping are dropped; a state dict without the Clip-PanoFCN backbone
  and position-head keys is refused.
* PanopticFCN image checkpoints (``panoptic_fcn_star_r50_3x.pth``, ``panoptic_fcn_r50_3x.pth``; the official
  Clip-PanoFCN training starts from the Star one): the shared parts (backbone, FPN, SemanticFPN, position and
  kernel heads) load; tensors whose name or shape the video model does not have are skipped and reported, as
  detectron2's checkpointer does. With the Star checkpoint that is the COCO class outputs (``out_inst`` 80,
  ``out_sem`` 54), the deformable 256-d feature encoder and the 256-d ``embed_extractor`` s.

Checkpoints are read by :func:`vidseg.models.checkpoint.read_state_dict` (``weights_only=True``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from vidseg.errors import DataError
from vidseg.models.checkpoint import strip_prefix

StateDict = dict[str, torch.Tensor]
_REQUIRED = ("backbone.bottom_up.stem.conv1.weight",
             "position_head.position_head.position_head_head_1.dcnv2.weight")
_MODEL_PREFIXES = ("backbone.", "semantic_fpn.", "position_head.", "kernel_head.", "feature_encoder.",
                   "thing_generator.", "stuff_generator.")


def _check_layout(state: Mapping[str, torch.Tensor], what: str) -> None:
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        shown = ", ".join(list(state)[:3])
        raise DataError("<checkpoint>", f"not a {what} checkpoint: no key {missing[0]} (first keys: {shown})")


def convert_clip_panofcn_checkpoint(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Official Clip-PanoFCN state dict (detectron2 keys) -> vidseg ``ClipPanoFCN`` keys (identity, filtered).

    Raises:
        DataError: the state dict lacks the Clip-PanoFCN backbone / position-head keys.
    """
    state = strip_prefix(state, "module.")
    _check_layout(state, "Clip-PanoFCN / PanopticFCN")
    return {k: v for k, v in state.items() if k.startswith(_MODEL_PREFIXES)}


def split_image_checkpoint(state: Mapping[str, torch.Tensor],
                           model_state: Mapping[str, torch.Tensor]) -> tuple[StateDict, list[str]]:
    """Shared parts of a PanopticFCN image checkpoint for a Clip-PanoFCN model.

    Args:
        state: the image checkpoint's state dict (detectron2 keys).
        model_state: the target model's ``state_dict()`` (names and shapes).

    Returns:
        (tensors to load, sorted names of the skipped checkpoint keys: absent from the model or of another shape).
    """
    state = convert_clip_panofcn_checkpoint(state)
    keep, skipped = {}, []
    for key, value in state.items():
        if key in model_state and tuple(model_state[key].shape) == tuple(value.shape):
            keep[key] = value
        else:
            skipped.append(key)
    return keep, sorted(skipped)


def image_checkpoint_converter(model: torch.nn.Module,
                               skipped: list[str] | None = None) -> Callable[[Mapping[str, torch.Tensor]], StateDict]:
    """A ``load_weights`` converter for PanopticFCN image checkpoints into ``model``.

    Args:
        model: the Clip-PanoFCN to fill.
        skipped: if given, the skipped checkpoint keys are appended to it (for reporting).
    """
    model_state = model.state_dict()

    def convert(state: Mapping[str, torch.Tensor]) -> StateDict:
        keep, dropped = split_image_checkpoint(state, model_state)
        if skipped is not None:
            skipped.extend(dropped)
        return keep

    return convert
