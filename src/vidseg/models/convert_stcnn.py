"""Converters from the official STCNN checkpoints (longyin880815/STCNN, spec §5) to vidseg's layouts.

vidseg's STCNN modules keep the official module names, so most conversions are renames of prefixes only:

=====================================  ==========================================  =========================
official file                          converter                                   vidseg model
=====================================  ==========================================  =========================
``STCNN_frame_4_epoch-9.pth`` (1431)   :func:`convert_stcnn_checkpoint`            ``build_stcnn()``
``NetG_epoch-90.pth`` (656 keys)       :func:`convert_netg`                        ``build_frame_pred_net()``
``NetD_epoch-90.pth`` (566 keys)       :func:`convert_netd`                        ``Inception3`` (``inception_v3``)
``1Seg_Branch_epoch-11999.pth``        :func:`convert_seg_branch`                  ``build_seg_branch()``
torchvision ``resnet101`` ImageNet     :func:`torchvision_resnet_to_encoder`       either STCNN encoder
torchvision ``inception_v3_google``    :func:`convert_inception_imagenet`          ``Inception3``
=====================================  ==========================================  =========================

Files saved by PyTorch 0.4.0 have no ``num_batches_tracked`` buffers; both kinds load (the loader does not
report those counters as missing). A ``module.`` prefix (DataParallel) is removed.

Moving weights between stages (what the official ``initialize_model`` does by key filtering) is explicit here
and reports what could not move:

* :func:`generator_to_joint_pred`: a generator (official NetG or vidseg ``FramePredNet``) -> the joint model's
  temporal branch. The released generator has a ReLU after each decoder BN, the joint decoder has none, so
  the decoder's ``nn.Sequential`` indices shift (``de_layer1.3`` -> ``de_layer1.2``, ``de_layer2.3`` ->
  ``de_layer2.2``, ``de_layer3.3`` -> ``de_layer3.2``, ``de_layer3.4`` -> ``de_layer3.3``). The official
  key filter would leave 4 tensors unfilled and fail on ``de_layer3.3.weight`` (two shapes); this converter
  moves every tensor to its module and reports the shifted keys, because the ReLU-free network computes
  something else with them.
* :func:`seg_branch_to_joint`: the pretrained spatial branch -> the joint model; ``decoder.fpn_out.*`` has no
  place (the joint decoder's ``joint_fpn_out`` reads more channels) and is reported as dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from vidseg.models.checkpoint import strip_prefix

StateDict = dict[str, torch.Tensor]

_ENCODER_PREFIXES = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")
_PRED_DECODER_PREFIXES = ("convC_1.", "convC_2.", "convC_3.", "de_layer1.", "de_layer2.", "de_layer3.")
# Sequential index shift from the ReLU decoder (released generator) to the ReLU-free one (joint model)
_RELU_SHIFT = {"de_layer1.3.": "de_layer1.2.", "de_layer2.3.": "de_layer2.2.", "de_layer3.3.": "de_layer3.2.",
               "de_layer3.4.": "de_layer3.3."}


@dataclass
class ConversionReport:
    """What a stage-to-stage conversion did.

    Attributes:
        renamed: source key -> target key for tensors whose module index changed (e.g. the ReLU shift).
        dropped: source keys with no place in the target model.
        notes: one-line remarks (e.g. that a function changed).
    """

    renamed: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: counts and the first keys of each kind."""
        parts = [f"{len(self.renamed)} renamed", f"{len(self.dropped)} dropped"]
        if self.dropped:
            parts.append("dropped: " + ", ".join(self.dropped[:4]) + (", ..." if len(self.dropped) > 4 else ""))
        return "; ".join(parts + self.notes)


def _with_prefix(state: Mapping[str, torch.Tensor], prefixes: tuple[str, ...], new: str) -> StateDict:
    return {new + k: v for k, v in state.items() if k.startswith(prefixes)}


def convert_stcnn_checkpoint(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Official joint model (``STCNN`` state dict) -> ``build_stcnn()`` keys: the same names (``module.`` removed)."""
    return strip_prefix(state, "module.")


def convert_netd(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Official discriminator (torchvision ``Inception3``) -> ``Inception3``: the same names."""
    return strip_prefix(state, "module.")


def convert_inception_imagenet(state: Mapping[str, torch.Tensor]) -> StateDict:
    """torchvision ImageNet Inception-v3 -> the discriminator's init: ``fc.*`` and ``AuxLogits.*`` dropped (official)."""
    state = strip_prefix(state, "module.")
    return {k: v for k, v in state.items() if not k.startswith(("fc.", "AuxLogits."))}


def convert_seg_branch(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Official ``SegBranch`` (``encoder.*``, ``decoder.*``) -> ``build_seg_branch()``: the same names."""
    return strip_prefix(state, "module.")


def convert_netg(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Official generator ``FramePredNet`` (flat keys) -> vidseg ``FramePredNet`` (``encoder.*``, ``decoder.*``).

    Keys that are neither encoder nor decoder keys are kept unchanged, so a strict load names them.
    """
    state = strip_prefix(state, "module.")
    if any(k.startswith(("encoder.", "decoder.")) for k in state):
        return dict(state)  # already vidseg's layout
    out = _with_prefix(state, _ENCODER_PREFIXES, "encoder.")
    out.update(_with_prefix(state, _PRED_DECODER_PREFIXES, "decoder."))
    out.update({k: v for k, v in state.items() if not k.startswith(_ENCODER_PREFIXES + _PRED_DECODER_PREFIXES)})
    return out


def generator_has_relu(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether a generator state (flat official or vidseg keys) has the ReLU decoder layout."""
    return any(k.endswith("de_layer3.4.weight") for k in state)


def generator_to_joint_pred(state: Mapping[str, torch.Tensor]) -> tuple[StateDict, ConversionReport]:
    """A generator's weights -> the joint model's ``pred_encoder.*`` / ``pred_decoder.*`` (module docstring).

    Args:
        state: official NetG or vidseg ``FramePredNet`` state dict, either decoder variant.

    Returns:
        ``(partial STCNN state, report)``; load it with ``load_state_dict`` (non-strict: the spatial branch
        is not in it).
    """
    state = convert_netg(state)
    relu = generator_has_relu(state)
    report = ConversionReport()
    out: StateDict = {}
    for key, value in state.items():
        if key.startswith("encoder."):
            out["pred_encoder." + key[len("encoder."):]] = value
        elif key.startswith("decoder."):
            name = key[len("decoder."):]
            for old, new in _RELU_SHIFT.items() if relu else ():
                if name.startswith(old):
                    report.renamed[key] = "pred_decoder." + new + name[len(old):]
                    name = new + name[len(old):]
                    break
            out["pred_decoder." + name] = value
        else:
            report.dropped.append(key)
    if relu:
        report.notes.append("generator trained with decoder ReLUs loaded into the ReLU-free joint decoder "
                            "(its outputs change)")
    return out, report


def seg_branch_to_joint(state: Mapping[str, torch.Tensor]) -> tuple[StateDict, ConversionReport]:
    """Pretrained spatial branch (``encoder.*``, ``decoder.*``) -> the joint model's ``seg_encoder.*`` / ``seg_decoder.*``.

    ``decoder.fpn_out.*`` is dropped (reported); the joint model's ``joint_fpn_out`` keeps its initialisation,
    as in the official ``initialize_model``.
    """
    state = strip_prefix(state, "module.")
    report = ConversionReport()
    out: StateDict = {}
    for key, value in state.items():
        if key.startswith("encoder."):
            out["seg_encoder." + key[len("encoder."):]] = value
        elif key.startswith("decoder.") and not key.startswith("decoder.fpn_out."):
            out["seg_decoder." + key[len("decoder."):]] = value
        else:
            report.dropped.append(key)
    return out, report


def torchvision_resnet_to_encoder(state: Mapping[str, torch.Tensor], *, frame_nums: int | None = None) -> StateDict:
    """torchvision ImageNet ResNet -> an STCNN encoder (the official init of both branches).

    Args:
        state: torchvision ``resnet101`` state dict (``fc.*`` is dropped).
        frame_nums: for the temporal encoder, delta: ``conv1.weight`` is repeated delta times along its input
            channels (not divided by delta, as the official code); None for the spatial encoder.

    Returns:
        encoder state (``conv1.*``, ``bn1.*``, ``layer{1-4}.*``). The weights were trained with the stride on
        the 3x3 conv; the official code loads them into its stride-on-1x1 blocks anyway (spec §5.4).
    """
    out = {k: v for k, v in strip_prefix(state, "module.").items() if k.startswith(_ENCODER_PREFIXES)}
    if frame_nums is not None:
        out["conv1.weight"] = torch.cat([out["conv1.weight"]] * frame_nums, dim=1)
    return out

