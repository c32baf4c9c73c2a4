"""``vidseg export`` traces the model at its official test input size and says how to prepare inputs."""

from __future__ import annotations

import pytest

import vidseg.export
import vidseg.models
from vidseg.cli.main import main


@pytest.mark.parametrize("name,size", [("cffm_b0", (480, 864)),  # 853x480 into (853, 480), up to /32
                                       ("segformer_b0", (512, 928)),  # 909x512 (2048, 512), up to /32
                                       ("tcb_ocr_mem_r101", (480, 853))])  # frames as they are
def test_export_default_size_is_the_official_input(monkeypatch, tmp_path, capsys, name, size):
    seen = {}

    def load_model(model, weights=None, *, num_classes=124, strict=True, **kw):
        seen["load"] = kw
        return vidseg.models.build("segformer_b0", num_classes=2, embed_dim=8)  # never traced here

    def export_onnx(model, path, *, step=False, image_size=None, opset=17):
        seen["size"] = image_size

    monkeypatch.setattr(vidseg.models, "load_model", load_model)
    monkeypatch.setattr(vidseg.export, "export_onnx", export_onnx)
    assert main(["export", "--model", name, "--out", str(tmp_path / "m.onnx"), "--no-check"]) == 0
    assert seen["size"] == size
    out = capsys.readouterr().out
    assert "input preprocessing" in out and ("torchvision" in out) == name.startswith("tcb")
    assert seen["load"] == vidseg.models.official_settings(name).model_kwargs
    assert main(["export", "--model", name, "--out", str(tmp_path / "m.onnx"), "--no-check",
                 "--img-scale", "none", "--size-divisor", "1"]) == 0
    assert seen["size"] == (480, 853)
