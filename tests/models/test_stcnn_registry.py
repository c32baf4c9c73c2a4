"""STCNN in the registry: build, official checkpoints through load_model, the predictor, bad weights."""

from __future__ import annotations

import pytest
import torch

from vidseg.errors import DataError
from vidseg.inference.vos import StcnnVosPredictor
from vidseg.models import build, get_entry, load_model, make_predictor
from vidseg.models.vos.stcnn import STCNN


def test_entries():
    for name in ("stcnn_r101", "stcnn_small"):
        entry = get_entry(name)
        assert entry.family == "stcnn" and entry.listed_task == "video-object"
    small = build("stcnn_small")
    assert isinstance(small, STCNN) and small.frame_nums == 4 and small.test_rule == "previous_frames"
    assert sum(p.numel() for p in small.parameters()) == 4_279_896
    assert isinstance(make_predictor("stcnn_small", small, threshold=0.5), StcnnVosPredictor)


def test_load_official_torch04_checkpoint_and_refuse_other_weights(tmp_path):
    torch.manual_seed(0)
    source = build("stcnn_small", frame_nums=3)
    official = {"module." + k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(official, tmp_path / "STCNN_frame_3_epoch-9.pth")
    model = load_model("stcnn_small", tmp_path / "STCNN_frame_3_epoch-9.pth", strict=True, frame_nums=3)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in source.state_dict().items()
               if not k.endswith("num_batches_tracked"))
    with pytest.raises(DataError, match=r"STCNN_frame_3_epoch-9.pth: shape mismatch .*pred_encoder.conv1.weight"):
        load_model("stcnn_small", tmp_path / "STCNN_frame_3_epoch-9.pth")  # delta 4 model, delta 3 weights
    torch.save(build("segformer_b0", num_classes=2, embed_dim=32).state_dict(), tmp_path / "segformer.pth")
    with pytest.raises(DataError, match=r"segformer.pth: .*(unfilled|do not match)"):
        load_model("stcnn_small", tmp_path / "segformer.pth")
