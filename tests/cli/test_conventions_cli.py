"""Issue 14: label conventions and flag vocabulary of ``vidseg eval`` (VSPW offsets, GT format, help texts)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidseg.cli.main import build_parser
from vidseg.metrics.vspw import evaluate_vspw_folder


def _vspw_root(tmp_path: Path, videos=("v1", "v2"), frames=3) -> Path:
    """A tiny VSPW root: raw masks with classes 1..124, some 0 (others) and 255 (void)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "vspw"
    for v in videos:
        for d in ("mask", "origin"):
            (root / "data" / v / d).mkdir(parents=True)
        for i in range(frames):
            m = rng.integers(1, 125, (16, 24)).astype(np.uint8)
            m[:2] = 0
            m[-1] = 255
            Image.fromarray(m).save(root / "data" / v / "mask" / f"{i:05d}.png")
            Image.fromarray(rng.integers(0, 255, (16, 24, 3), dtype=np.uint8)).save(
                root / "data" / v / "origin" / f"{i:05d}.jpg")
    (root / "val.txt").write_text("\n".join(videos) + "\n")
    return root


def _predictions(root: Path, out: Path, fn) -> Path:
    for mask in sorted((root / "data").glob("*/mask/*.png")):
        dst = out / mask.parent.parent.name / mask.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(fn(np.asarray(Image.open(mask))).astype(np.uint8)).save(dst)
    return out


def test_copied_gt_warns_and_pred_offset_scores_it_perfectly(tmp_path):
    root = _vspw_root(tmp_path)
    copy = _predictions(root, tmp_path / "copy", lambda m: np.where(m == 255, 0, m))  # raw values, void -> 0
    from vidseg.errors import DataError

    with pytest.raises(DataError, match="--pred-offset 1"):  # raw value 124 is no 0-based class id
        evaluate_vspw_folder(root, copy, metrics="miou", progress=False)
    assert evaluate_vspw_folder(root, copy, metrics="miou", progress=False, pred_offset=1)["mIoU"] == 1.0
    copy = _predictions(root, tmp_path / "copy123", lambda m: np.where(m == 255, 0, np.minimum(m, 123)))
    with pytest.warns(UserWarning, match="--pred-offset 1"):
        res = evaluate_vspw_folder(root, copy, metrics="miou", progress=False)
    assert res["mIoU"] < 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = evaluate_vspw_folder(root, copy, metrics="miou", progress=False, pred_offset=1)
    assert 0.9 < res["mIoU"] < 1.0  # class 124 is predicted as 123 in this copy
    # the CLI prints the warning on one line naming the flag, and the table header says percent
    proc = subprocess.run([sys.executable, "-m", "vidseg.cli.main", "eval", "vspw", "--root", str(root), "--pred",
                           str(copy), "--metrics", "miou", "--quiet"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out, err = proc.stdout, proc.stderr
    lines = [line for line in err.splitlines() if "warning" in line]
    assert len(lines) == 1 and "--pred-offset 1" in lines[0] and "0-based" in lines[0]
    assert "(%)" in out


def test_correct_zero_based_predictions_do_not_warn(tmp_path):
    root = _vspw_root(tmp_path)
    good = _predictions(root, tmp_path / "good", lambda m: np.where((m == 0) | (m == 255), 0, m.astype(int) - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = evaluate_vspw_folder(root, good, metrics="miou", progress=False)
    assert res["mIoU"] == pytest.approx(1.0)


def test_gt_format_shifted(tmp_path):
    root = _vspw_root(tmp_path)
    good = _predictions(root, tmp_path / "good", lambda m: np.where((m == 0) | (m == 255), 0, m.astype(int) - 1))
    shifted = tmp_path / "shifted"  # the same root with masks already shifted
    for mask in sorted((root / "data").glob("*/mask/*.png")):
        rel = mask.relative_to(root)
        (shifted / rel).parent.mkdir(parents=True, exist_ok=True)
        m = np.asarray(Image.open(mask)).astype(int)
        Image.fromarray(np.where((m == 0) | (m == 255), 255, m - 1).astype(np.uint8)).save(shifted / rel)
    (shifted / "val.txt").write_text((root / "val.txt").read_text())
    with pytest.warns(UserWarning, match="--gt-format shifted"):  # the evident mismatch is named
        wrong = evaluate_vspw_folder(shifted, good, metrics="miou", progress=False)
    assert wrong["mIoU"] < 0.05
    right = evaluate_vspw_folder(shifted, good, metrics="miou", progress=False, gt_format="shifted")
    assert right["mIoU"] == pytest.approx(1.0)


def test_pred_offset_refuses_others_on_labelled_pixels(tmp_path):
    from vidseg.errors import DataError

    root = _vspw_root(tmp_path, videos=("v1",), frames=1)
    bad = _predictions(root, tmp_path / "bad", lambda m: np.zeros_like(m))
    with pytest.raises(DataError, match="'others'"):
        evaluate_vspw_folder(root, bad, metrics="miou", progress=False, pred_offset=1)


def _subparser(parser, *names):
    for name in names:
        parser = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)).choices[name]
    return parser


def test_help_shows_each_default_once_and_never_none():
    parser = build_parser()
    for path in [("eval", "vspw"), ("eval", "davis"), ("eval", "vipseg"), ("segment",), ("demo",), ("info",),
                 ("export",), ("models",)]:
        text = _subparser(parser, *path).format_help()
        assert "(default: None)" not in text, path
        assert "(default: False)" not in text, path
        for block in text.split("\n  -")[1:]:
            assert block.count("default") <= 1 or "default:" not in block, (path, block)


def test_quiet_everywhere_and_no_progress_hidden_alias():
    parser = build_parser()
    for path in [("eval", "vspw"), ("eval", "davis"), ("eval", "vipseg")]:
        sub = _subparser(parser, *path)
        assert "--quiet" in sub.format_help() and "--no-progress" not in sub.format_help()
    args = parser.parse_args(["eval", "vspw", "--root", "r", "--pred", "p", "--no-progress"])
    assert args.quiet
    assert "--pred-offset" in _subparser(parser, "eval", "vspw").format_help()
    assert "0-based" in _subparser(parser, "eval", "vspw").format_help()


def test_davis_csvs_only_on_request(tmp_path):
    from tests.metrics.test_davis_folder import make_davis

    from vidseg.cli.main import main

    root, res, _ = make_davis(tmp_path)
    assert main(["eval", "davis", "--davis", str(root), "--results", str(res), "--quiet"]) == 0
    assert not list(res.glob("*.csv"))  # the official script would print these as "precomputed results"
    csv = tmp_path / "csv"
    assert main(["eval", "davis", "--davis", str(root), "--results", str(res), "--quiet", "--csv-dir", str(csv)]) == 0
    assert (csv / "global_results-val.csv").is_file() and not list(res.glob("*.csv"))


def test_vipseg_gt_json_help_names_the_converter_output():
    text = _subparser(build_parser(), "eval", "vipseg").format_help().replace("\n", " ")
    assert "panoptic_gt_VIPSeg.json" in text.replace(" ", "").replace("panoptic_gt_VIPSeg.jsonas", "panoptic_gt_VIPSeg.json ")


def test_info_reports_each_photo_size_hxw(tmp_path, capsys):
    from vidseg.cli.main import main

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (h, w) in enumerate([(30, 40), (30, 40), (50, 20)]):
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(folder / f"{i}.jpg")
    assert main(["info", str(folder), "--quiet"]) == 0
    assert "30x40 (2), 50x20 (1)" in capsys.readouterr().out
    assert main(["info", str(folder), "--quiet", "--check"]) == 1
    assert "frame size 50x20 differs from the first frame's 30x40 (HxW)" in capsys.readouterr().out


def test_models_json_file_and_img_scale_hxw(tmp_path, capsys):
    import json

    from vidseg.cli.main import main
    from vidseg.inference.tta import variant_size

    out = tmp_path / "models.json"
    assert main(["models", "--task", "backbone", "--json", str(out), "--quiet"]) == 0
    assert "name" in capsys.readouterr().out  # the table is still printed
    assert {"mit_b0", "swin_t"} <= {r["name"] for r in json.loads(out.read_text())}
    assert main(["models", "--task", "backbone", "--json"]) == 0  # bare --json prints JSON
    assert json.loads(capsys.readouterr().out)[0]["name"]
    # --img-scale is a keep-ratio bound: HxW and WxH give the same model input (official CFFM 853x480)
    for size in [(480, 854), (854, 480), (300, 200)]:
        assert variant_size(size, 1.0, (480, 853), 32) == variant_size(size, 1.0, (853, 480), 32)
    assert "HxW" in _subparser(build_parser(), "segment").format_help()


def test_export_says_what_the_graph_takes_and_returns(tmp_path):
    from vidseg.cli.export import describe_graph
    from vidseg.export import StepSpec

    spec = StepSpec(spec=None, used=[True, False, True], num_supports=3,
                    leaf_shapes=[(1, 8, 4, 4), (1, 2), (1, 16, 2, 2)])
    text = " ".join(v for _, v in describe_graph(spec, (64, 96), 124))
    assert "[1, 3, 64, 96]" in text and "[1, 124, 64, 96]" in text
    assert "each of the 3 support frames" in text and "2 feature tensors" in text and "1x8x4x4, 1x16x2x2" in text
    proc = subprocess.run([sys.executable, "-m", "vidseg.cli.main", "export", "--model", "segformer_b0", "--out",
                           str(tmp_path / "m.onnx"), "--size", "64x64", "--no-check"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "export segformer_b0: tracing the model at 64x64 (HxW)" in proc.stderr
    assert "takes" in proc.stdout and "returns" in proc.stdout
