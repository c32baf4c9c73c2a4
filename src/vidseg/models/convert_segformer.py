"""Converters between official SegFormer / MiT / CFFM checkpoint layouts and ours (pure ``state_dict`` functions).

Layouts read (``specs/models.md`` sections 2.4, 3.2, 3.3):

* **NVlabs** MiT (``mix_transformer.py``; also inside CFFM/MRCFA): ``patch_embed{i}.proj|norm``,
  ``block{i}.{j}.norm1|norm2``, ``block{i}.{j}.attn.q|kv|proj|sr|norm``, ``block{i}.{j}.mlp.fc1|dwconv.dwconv|fc2``,
  ``norm{i}``; ImageNet files add ``head.*`` (dropped). Full segmentors (NVlabs SegFormer, CFFM mmcv
  checkpoints ``{'meta', 'state_dict', ...}``) prefix ``backbone.`` and carry ``decode_head.*``, whose names our
  heads share, so they pass through unchanged.
* **mmseg >= 0.20** ``mit.py``: ``layers.{i-1}.0.projection|norm``, ``layers.{i-1}.1.{j}.attn.attn.in_proj_*``
  (q and kv concatenated), ``attn.attn.out_proj``, ``ffn.layers.0|1|4`` (1x1-conv weights), ``layers.{i-1}.2``.
  Note: mmseg uses LayerNorm eps 1e-6 everywhere; our model keeps the official eps, so mmseg weights give
  outputs within ~1e-5 of mmseg's own, not bit-equal.
* **Hugging Face** ``SegformerModel`` (transformers 4 names ``segformer.encoder.*``, ``decode_head.linear_c.{i}``,
  ``decode_head.batch_norm``, ``decode_head.classifier``) and transformers 5 names (``segformer.stages.*``).

Ours: the MiT keys are transformers 5's stage names (``stages.{i}.patch_embeddings.proj``,
``stages.{i}.blocks.{j}.attention.q_proj|k_proj|v_proj|o_proj``, ...); a SegFormer/CFFM model prefixes them
with ``backbone.`` and keeps the official ``decode_head.*`` names.

Entry points: :func:`convert_segformer_checkpoint` (SegFormer/CFFM models) and :func:`convert_mit_checkpoint`
(bare MiT backbones) detect the layout; use them as ``load_weights(model, path, converter=...)``.
:func:`segformer_to_official` / :func:`mit_to_official` / :func:`official_mit_to_mmseg` write the other way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from vidseg.errors import ConfigError

StateDict = dict[str, torch.Tensor]

# NVlabs sub-key (inside block{i}.{j}.) -> ours (inside stages.{i-1}.blocks.{j}.)
_BLOCK_NVLABS_TO_OURS = {
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.q": "attention.q_proj",
    "attn.proj": "attention.o_proj",
    "attn.sr": "attention.sequence_reduction.sequence_reduction",
    "attn.norm": "attention.sequence_reduction.layer_norm",
    "mlp.fc1": "mlp.fc1",
    "mlp.dwconv.dwconv": "mlp.dwconv.dwconv",
    "mlp.fc2": "mlp.fc2",
}
_BLOCK_OURS_TO_NVLABS = {v: k for k, v in _BLOCK_NVLABS_TO_OURS.items()}

_RE_PATCH = re.compile(r"^patch_embed(\d)\.(proj|norm)\.(\w+)$")
_RE_BLOCK = re.compile(r"^block(\d)\.(\d+)\.(.+)\.(\w+)$")
_RE_NORM = re.compile(r"^norm(\d)\.(\w+)$")
_RE_OURS_PATCH = re.compile(r"^stages\.(\d)\.patch_embeddings\.(proj|layer_norm)\.(\w+)$")
_RE_OURS_BLOCK = re.compile(r"^stages\.(\d)\.blocks\.(\d+)\.(.+)\.(\w+)$")
_RE_OURS_NORM = re.compile(r"^stages\.(\d)\.layer_norm\.(\w+)$")


def _nvlabs_block_key(stage: int, j: int, sub: str, leaf: str, value: torch.Tensor, out: StateDict) -> bool:
    base = f"stages.{stage - 1}.blocks.{j}."
    if sub == "attn.kv":  # one [2C, C] matrix -> key (first C rows) and value (last C rows)
        k, v = value.chunk(2, dim=0)
        out[f"{base}attention.k_proj.{leaf}"] = k.clone()
        out[f"{base}attention.v_proj.{leaf}"] = v.clone()
        return True
    if sub in _BLOCK_NVLABS_TO_OURS:
        out[f"{base}{_BLOCK_NVLABS_TO_OURS[sub]}.{leaf}"] = value
        return True
    return False


def _nvlabs_mit_key(key: str, value: torch.Tensor, out: StateDict) -> bool:
    """Convert one NVlabs MiT key into ``out``; False if the key is not a MiT key."""
    if m := _RE_PATCH.match(key):
        part = "proj" if m[2] == "proj" else "layer_norm"
        out[f"stages.{int(m[1]) - 1}.patch_embeddings.{part}.{m[3]}"] = value
        return True
    if m := _RE_BLOCK.match(key):
        return _nvlabs_block_key(int(m[1]), int(m[2]), m[3], m[4], value, out)
    if m := _RE_NORM.match(key):
        out[f"stages.{int(m[1]) - 1}.layer_norm.{m[2]}"] = value
        return True
    return False


def official_mit_to_ours(state: Mapping[str, torch.Tensor]) -> StateDict:
    """NVlabs MiT keys (no prefix) -> our MiT keys. ``head.*`` (ImageNet classifier) is dropped.

    Raises:
        ConfigError: a key is neither a MiT key nor ``head.*`` (named in the message).
    """
    out: StateDict = {}
    unknown = [k for k, v in state.items() if not k.startswith("head.") and not _nvlabs_mit_key(k, v, out)]
    if unknown:
        raise ConfigError(f"not NVlabs MiT keys: {unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    return out


def _ours_block_key(stage: int, j: int, sub: str, leaf: str, value: torch.Tensor, state: Mapping,
                    out: StateDict) -> None:
    base = f"block{stage + 1}.{j}."
    if sub == "attention.k_proj":
        v = state[f"stages.{stage}.blocks.{j}.attention.v_proj.{leaf}"]
        out[f"{base}attn.kv.{leaf}"] = torch.cat([value, v], dim=0)
    elif sub == "attention.v_proj":
        return
    elif sub in _BLOCK_OURS_TO_NVLABS:
        out[f"{base}{_BLOCK_OURS_TO_NVLABS[sub]}.{leaf}"] = value
    else:
        raise ConfigError(f"unknown MiT key stages.{stage}.blocks.{j}.{sub}.{leaf}")


def ours_mit_to_official(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Our MiT keys -> NVlabs MiT keys (inverse of :func:`official_mit_to_ours`)."""
    out: StateDict = {}
    for key, value in state.items():
        if m := _RE_OURS_PATCH.match(key):
            out[f"patch_embed{int(m[1]) + 1}.{'proj' if m[2] == 'proj' else 'norm'}.{m[3]}"] = value
        elif m := _RE_OURS_BLOCK.match(key):
            _ours_block_key(int(m[1]), int(m[2]), m[3], m[4], value, state, out)
        elif m := _RE_OURS_NORM.match(key):
            out[f"norm{int(m[1]) + 1}.{m[2]}"] = value
        else:
            raise ConfigError(f"not one of our MiT keys: {key}")
    return out


# ----------------------------------------------------------------------------------------------- mmseg MiT

_RE_MM_PATCH = re.compile(r"^layers\.(\d)\.0\.(projection|norm)\.(\w+)$")
_RE_MM_BLOCK = re.compile(r"^layers\.(\d)\.1\.(\d+)\.(.+)\.(\w+)$")
_RE_MM_NORM = re.compile(r"^layers\.(\d)\.2\.(\w+)$")
_MM_BLOCK_TO_NVLABS = {"norm1": "norm1", "norm2": "norm2", "attn.attn.out_proj": "attn.proj",
                       "attn.sr": "attn.sr", "attn.norm": "attn.norm", "ffn.layers.0": "mlp.fc1",
                       "ffn.layers.1": "mlp.dwconv.dwconv", "ffn.layers.4": "mlp.fc2"}
_NVLABS_BLOCK_TO_MM = {v: k for k, v in _MM_BLOCK_TO_NVLABS.items()}


def _mm_block(stage: int, j: int, sub: str, leaf: str, value: torch.Tensor, out: StateDict) -> None:
    base = f"block{stage + 1}.{j}."
    if sub == "attn.attn" and leaf in ("in_proj_weight", "in_proj_bias"):
        q, kv = value.split([value.shape[0] // 3, 2 * value.shape[0] // 3], dim=0)
        kind = "weight" if leaf.endswith("weight") else "bias"
        out[f"{base}attn.q.{kind}"] = q.clone()
        out[f"{base}attn.kv.{kind}"] = kv.clone()
        return
    if sub not in _MM_BLOCK_TO_NVLABS:
        raise ConfigError(f"unknown mmseg MiT key layers.{stage}.1.{j}.{sub}.{leaf}")
    if sub in ("ffn.layers.0", "ffn.layers.4") and leaf == "weight":
        value = value.reshape(value.shape[0], value.shape[1])  # 1x1 conv -> Linear
    out[f"{base}{_MM_BLOCK_TO_NVLABS[sub]}.{leaf}"] = value


def mmseg_mit_to_official(state: Mapping[str, torch.Tensor]) -> StateDict:
    """mmseg ``mit.py`` keys (no prefix) -> NVlabs MiT keys."""
    out: StateDict = {}
    for key, value in state.items():
        if m := _RE_MM_PATCH.match(key):
            out[f"patch_embed{int(m[1]) + 1}.{'proj' if m[2] == 'projection' else 'norm'}.{m[3]}"] = value
        elif m := _RE_MM_BLOCK.match(key):
            _mm_block(int(m[1]), int(m[2]), m[3], m[4], value, out)
        elif m := _RE_MM_NORM.match(key):
            out[f"norm{int(m[1]) + 1}.{m[2]}"] = value
        elif not key.startswith("head."):
            raise ConfigError(f"not an mmseg MiT key: {key}")
    return out


def official_mit_to_mmseg(state: Mapping[str, torch.Tensor]) -> StateDict:
    """NVlabs MiT keys -> mmseg ``mit.py`` keys (what mmseg's ``mit2mmseg.py`` produces)."""
    out: StateDict = {}
    for key, value in state.items():
        if m := _RE_PATCH.match(key):
            out[f"layers.{int(m[1]) - 1}.0.{'projection' if m[2] == 'proj' else 'norm'}.{m[3]}"] = value
        elif m := _RE_NORM.match(key):
            out[f"layers.{int(m[1]) - 1}.2.{m[2]}"] = value
        elif m := _RE_BLOCK.match(key):
            stage, j, sub, leaf = int(m[1]) - 1, int(m[2]), m[3], m[4]
            base = f"layers.{stage}.1.{j}."
            if sub == "attn.q":
                kv = state[f"block{stage + 1}.{j}.attn.kv.{leaf}"]
                out[f"{base}attn.attn.in_proj_{leaf}"] = torch.cat([value, kv], dim=0)
            elif sub != "attn.kv":
                if sub in ("mlp.fc1", "mlp.fc2") and leaf == "weight":
                    value = value.reshape(*value.shape, 1, 1)
                out[f"{base}{_NVLABS_BLOCK_TO_MM[sub]}.{leaf}"] = value
    return out


# ---------------------------------------------------------------------------------------- Hugging Face

_HF4_RENAMES = [
    (re.compile(r"^encoder\.patch_embeddings\.(\d)\.proj\."), r"patch_embed{}.proj."),
    (re.compile(r"^encoder\.patch_embeddings\.(\d)\.layer_norm\."), r"patch_embed{}.norm."),
    (re.compile(r"^encoder\.layer_norm\.(\d)\."), r"norm{}."),
]
_HF4_BLOCK = re.compile(r"^encoder\.block\.(\d)\.(\d+)\.(.+)$")
_HF4_BLOCK_SUBS = [("layer_norm_1.", "norm1."), ("layer_norm_2.", "norm2."),
                   ("attention.self.query.", "attn.q."), ("attention.self.sr.", "attn.sr."),
                   ("attention.self.layer_norm.", "attn.norm."), ("attention.output.dense.", "attn.proj."),
                   ("mlp.dense1.", "mlp.fc1."), ("mlp.dense2.", "mlp.fc2."), ("mlp.dwconv.dwconv.", "mlp.dwconv.dwconv.")]


def _hf4_block(stage: int, j: int, rest: str, value: torch.Tensor, state: Mapping, out: StateDict) -> None:
    base = f"block{stage + 1}.{j}."
    if rest.startswith("attention.self.key."):
        leaf = rest.rsplit(".", 1)[1]
        v = state[f"encoder.block.{stage}.{j}.attention.self.value.{leaf}"]
        out[f"{base}attn.kv.{leaf}"] = torch.cat([value, v], dim=0)
        return
    if rest.startswith("attention.self.value."):
        return
    for old, new in _HF4_BLOCK_SUBS:
        if rest.startswith(old):
            out[base + new + rest[len(old):]] = value
            return
    raise ConfigError(f"unknown Hugging Face Segformer key encoder.block.{stage}.{j}.{rest}")


def hf4_encoder_to_official(state: Mapping[str, torch.Tensor]) -> StateDict:
    """transformers-4 ``SegformerModel`` encoder keys (``encoder.*``, prefix removed) -> NVlabs MiT keys."""
    out: StateDict = {}
    for key, value in state.items():
        if m := _HF4_BLOCK.match(key):
            _hf4_block(int(m[1]), int(m[2]), m[3], value, state, out)
            continue
        for pattern, template in _HF4_RENAMES:
            if m := pattern.match(key):
                out[template.format(int(m[1]) + 1) + key[m.end():]] = value
                break
        else:
            raise ConfigError(f"unknown Hugging Face Segformer encoder key {key}")
    return out


def _hf_decode_head(state: Mapping[str, torch.Tensor]) -> StateDict:
    out: StateDict = {}
    for key, value in state.items():
        if m := re.match(r"^linear_c\.(\d)\.proj\.(\w+)$", key):
            out[f"decode_head.linear_c{int(m[1]) + 1}.proj.{m[2]}"] = value
        elif key.startswith("linear_fuse."):
            out["decode_head.linear_fuse.conv." + key[len("linear_fuse."):]] = value
        elif key.startswith("batch_norm."):
            out["decode_head.linear_fuse.bn." + key[len("batch_norm."):]] = value
        elif key.startswith("classifier."):
            out["decode_head.linear_pred." + key[len("classifier."):]] = value
        else:
            raise ConfigError(f"unknown Hugging Face Segformer decode_head key {key}")
    return out


def _split(state: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    n = len(prefix)
    return {k[n:]: v for k, v in state.items() if k.startswith(prefix)}


# ------------------------------------------------------------------------------------------ entry points

def detect_layout(state: Mapping[str, torch.Tensor]) -> str:
    """``"ours"``, ``"nvlabs"`` (raw MiT), ``"nvlabs_full"`` (backbone./decode_head.), ``"mmseg"``,
    ``"mmseg_full"``, ``"hf4"`` or ``"hf5"``; raises :class:`ConfigError` if none fits."""
    keys = list(state)

    def has(pattern: str) -> bool:
        return any(re.match(pattern, k) for k in keys)

    checks = [("ours", r"^(backbone\.)?stages\.\d\.patch_embeddings\."), ("nvlabs", r"^patch_embed\d\."),
              ("nvlabs_full", r"^backbone\.patch_embed\d\."), ("mmseg", r"^layers\.\d\.0\.projection\."),
              ("mmseg_full", r"^backbone\.layers\.\d\.0\.projection\."),
              ("hf4", r"^(segformer\.)?encoder\.patch_embeddings\."),
              ("hf5", r"^segformer\.stages\.\d\.patch_embeddings\.")]
    for name, pattern in checks:
        if has(pattern):
            return name
    raise ConfigError(f"unrecognised SegFormer/MiT checkpoint layout (first keys: {keys[:4]})")


def _backbone_to_official(state: Mapping[str, torch.Tensor], layout: str) -> tuple[StateDict, StateDict]:
    """(NVlabs MiT keys, decode_head.* keys in our layout) of a checkpoint in ``layout``."""
    if layout == "nvlabs":
        return {k: v for k, v in state.items() if not k.startswith("head.")}, {}
    if layout == "nvlabs_full":
        return _split(state, "backbone."), {"decode_head." + k: v for k, v in _split(state, "decode_head.").items()}
    if layout == "mmseg":
        return mmseg_mit_to_official(state), {}
    if layout == "mmseg_full":
        head = {"decode_head." + k: v for k, v in _split(state, "decode_head.").items()}
        return mmseg_mit_to_official(_split(state, "backbone.")), head
    if layout == "hf4":
        inner = _split(state, "segformer.") or dict(state)
        return hf4_encoder_to_official(inner), _hf_decode_head(_split(state, "decode_head."))
    raise ConfigError(f"cannot convert layout {layout!r}")


def convert_segformer_checkpoint(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Any supported SegFormer/MiT/CFFM checkpoint -> keys of our ``SegFormer``/``CFFM`` models.

    A backbone-only file (ImageNet MiT) gives only ``backbone.*`` keys (for initialising a segmentor); the
    ``decode_head.*`` keys of full checkpoints keep their names (``conv_seg`` included; models built with
    ``with_conv_seg=False`` report it as unexpected, which is harmless: the official forward never uses it).

    Args:
        state: name -> tensor, ``module.`` prefix already stripped.

    Returns:
        name -> tensor in our layout.
    """
    layout = detect_layout(state)
    if layout == "ours":
        return dict(state)
    if layout == "hf5":
        out = {"backbone." + k: v for k, v in _split(state, "segformer.").items()}
        return out | _hf_decode_head(_split(state, "decode_head."))
    mit, head = _backbone_to_official(state, layout)
    return {"backbone." + k: v for k, v in official_mit_to_ours(mit).items()} | head


def convert_mit_checkpoint(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Any supported checkpoint -> keys of a bare :class:`~vidseg.models.backbones.mit.MiT` (``stages.*``);
    decode-head keys are dropped."""
    converted = convert_segformer_checkpoint(state)
    if any(k.startswith("backbone.") for k in converted):
        return _split(converted, "backbone.")
    return {k: v for k, v in converted.items() if k.startswith("stages.")}


def mit_to_official(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Our MiT state dict -> NVlabs MiT keys."""
    return ours_mit_to_official(state)


def segformer_to_official(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Our SegFormer/CFFM state dict -> the official NVlabs/CFFM segmentor layout (``backbone.patch_embed1...``,
    ``decode_head.*`` unchanged); the inverse of :func:`convert_segformer_checkpoint` on ``nvlabs_full``."""
    mit = {"backbone." + k: v for k, v in ours_mit_to_official(_split(state, "backbone.")).items()}
    return mit | {k: v for k, v in state.items() if not k.startswith("backbone.")}
