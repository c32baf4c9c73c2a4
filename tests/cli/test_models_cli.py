"""``vidseg models``: table and JSON list with meta-device parameter counts."""

from __future__ import annotations

import json

from vidseg.cli.main import main


def test_models_json_video_task(capsys, tmp_path):
    out_file = tmp_path / "models.json"
    assert main(["models", "--json", "--task", "video-semantic", "--out", str(out_file)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == json.loads(out_file.read_text())
    by_name = {r["name"]: r for r in rows}
    assert all(set(r) == {"name", "params", "task", "paper", "test"} for r in rows)
    # official test settings (VSS-CFFM vspw_repeat2.py; TCB test_clip2.py + run_temporal_ocr.sh)
    assert by_name["cffm_b0"]["test"]["img_scale"] == [853, 480] and by_name["cffm_b0"]["test"]["size_divisor"] == 32
    mem = by_name["tcb_ocr_mem_r101"]["test"]
    assert (mem["mode"], mem["normalization"], mem["short_video"]) == ("offline", "torchvision", "wrap")
    assert mem["model_kwargs"] == {"memory": "official"} and mem["img_scale"] is None
    assert by_name["tcb_ppm_r101"]["params"] == 70_544_568
    assert by_name["tcb_ocr_r101"]["params"] == 58_096_568
    assert by_name["tcb_ocr_mem_r101"]["task"] == "video-semantic"
    assert {f"stsc_upernet_swin_{s}" for s in "tsbl"} <= set(by_name)


def test_models_table_backbones(capsys):
    assert main(["models", "--task", "backbone", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "resnet101_deepstem_os8" in text and "42,623,936" in text
