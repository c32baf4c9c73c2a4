"""The registry is the one place that knows a model: entries resolve, rules exist, load_model loads strictly."""

from __future__ import annotations

import pytest
import torch

from vidseg.data.sampling import CFFMSampler, OffsetSampler, TCBSampler
from vidseg.errors import ConfigError, DataError
from vidseg.inference.rules import RULES, rule_for_model
from vidseg.models import MODELS, build, get_entry, load_model, make_predictor
from vidseg.models.base import Backbone, VideoSegmenter
from vidseg.models.checkpoint import save_weights
from vidseg.models.registry import TASKS, resolve


def test_every_entry_resolves_and_states_known_values():
    for name, entry in MODELS.items():
        assert callable(resolve(entry.builder)), name
        assert entry.task in TASKS, name
        if entry.converter is not None:
            assert callable(resolve(entry.converter)), name
        assert callable(resolve(entry.predictor)), name
        if entry.predictor.endswith(":VideoPredictor") and entry.task != "backbone":
            assert entry.test_rule in RULES, name
        if entry.task == "backbone":
            assert entry.classes_kwarg is None, name


def test_build_states_the_protocol_and_the_rule():
    cffm = build("cffm_b0", num_classes=3)
    assert isinstance(cffm, VideoSegmenter) and cffm.test_rule == "cffm"
    assert isinstance(rule_for_model(cffm), CFFMSampler)
    seg = build("segformer_b0", num_classes=3)
    assert seg.test_rule == "offsets" and not seg.stateful and seg.offline_support_offsets == ()
    assert isinstance(rule_for_model(seg, "offline"), OffsetSampler)
    assert isinstance(seg.backbone, Backbone) and seg.backbone.out_strides == (4, 8, 16, 32)
    tcb = build("tcb_ocr_mem_r101", num_classes=3, depth=50)
    assert tcb.stateful and isinstance(rule_for_model(tcb, "offline"), TCBSampler)
    assert get_entry("tcb_ppm_r101").listed_task == "video-semantic"
    with pytest.raises(ConfigError, match="did you mean"):
        get_entry("segformer_b9x")


def test_load_model_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    model = build("segformer_b0", num_classes=3, embed_dim=32)
    path = tmp_path / "w.safetensors"
    save_weights(model, path)
    loaded = load_model("segformer_b0", path, num_classes=3, embed_dim=32)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values(),
                                                    strict=True))
    state = dict(model.state_dict())
    state["extra.weight"] = torch.zeros(1)
    save_weights(state, tmp_path / "extra.safetensors")
    with pytest.warns(UserWarning, match="partial weights"):  # extra keys only when asked (--partial-weights)
        load_model("segformer_b0", tmp_path / "extra.safetensors", num_classes=3, embed_dim=32, strict=False)
    with pytest.raises(DataError, match="do not match model segformer_b0.*extra.weight"):  # strict by default
        load_model("segformer_b0", tmp_path / "extra.safetensors", num_classes=3, embed_dim=32)
    del state["extra.weight"], state["decode_head.linear_pred.weight"]
    save_weights(state, tmp_path / "missing.safetensors")
    with pytest.raises(DataError, match="missing 1 .decode_head.linear_pred.weight"):
        load_model("segformer_b0", tmp_path / "missing.safetensors", num_classes=3, embed_dim=32)


def test_make_predictor_uses_the_entry():
    model = build("segformer_b0", num_classes=3, embed_dim=32)
    predictor = make_predictor("segformer_b0", model, mode="online")
    assert type(predictor).__name__ == "VideoPredictor" and predictor.cache_capacity == 1
