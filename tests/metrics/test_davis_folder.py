"""DAVIS folder scoring, CSV files, the CLI, 2016 mode and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vidseg.categories import davis_palette
from vidseg.cli.main import main
from vidseg.errors import DataError
from vidseg.metrics.davis_folder import evaluate_davis_folder

from .brute_force_vspw_davis import bf_fmeasure, bf_jaccard, bf_statistics


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr.astype(np.uint8), "P")
    img.putpalette(davis_palette().ravel().tolist())
    img.save(path)


def make_davis(tmp_path, seed=0, h=14, w=18):
    rng = np.random.default_rng(seed)
    root, res = tmp_path / "DAVIS", tmp_path / "res"
    seqs = {"alpha": (5, 2), "beta": (4, 1), "gamma": (6, 3)}
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(seqs) + "\n")
    data = {}
    for s, (t, n) in seqs.items():
        frames = []
        for k in range(t):
            g = rng.integers(0, n + 1, (h, w)).astype(np.uint8)
            g[0, :n] = np.arange(1, n + 1)
            g[rng.random((h, w)) < 0.05] = 255
            r = np.where(rng.random((h, w)) < 0.3, rng.integers(0, n + 1, (h, w)), np.where(g == 255, 0, g))
            _png(root / "Annotations" / "480p" / s / f"{k:05d}.png", g)
            _png(res / s / f"{k:05d}.png", r)
            frames.append((g, r.astype(np.uint8)))
        data[s] = frames
    return root, res, data


def _reference(data, r_pix):
    per = {}
    for s, frames in data.items():
        n = int(np.max(np.where(frames[0][0] == 255, 0, frames[0][0])))
        for o in range(1, n + 1):
            js, fs = [], []
            for g, r in frames[1:-1]:
                gm = g == o  # 255 -> background in semi-supervised
                js.append(bf_jaccard(gm, r == o))
                fs.append(bf_fmeasure(gm, r == o, None, r_pix))
            per[f"{s}_{o}"] = (bf_statistics(js), bf_statistics(fs))
    jm = np.mean([v[0][0] for v in per.values()])
    fm = np.mean([v[1][0] for v in per.values()])
    return per, jm, fm


def test_folder_cli_csv_match_reference(tmp_path):
    root, res, data = make_davis(tmp_path)
    out = tmp_path / "r.json"
    assert main(["eval", "davis", "--davis", str(root), "--results", str(res), "--json", str(out), "--no-progress",
                 "--csv-dir", str(res)]) == 0
    got = json.loads(out.read_text())
    per, jm, fm = _reference(data, 1)  # ceil(0.008 * hypot(14, 18)) = 1
    assert got["J-Mean"] == pytest.approx(jm, abs=1e-12) and got["F-Mean"] == pytest.approx(fm, abs=1e-12)
    assert got["J&F-Mean"] == pytest.approx((jm + fm) / 2, abs=1e-12)
    assert got["num_objects"] == 6 and list(got["per_object"]) == list(per)
    for k, (jst, fst) in per.items():
        assert got["per_object"][k]["J-Decay"] == pytest.approx(jst[2], abs=1e-12)
        assert got["per_object"][k]["F-Recall"] == pytest.approx(fst[1], abs=1e-12)
    glob = (res / "global_results-val.csv").read_text().splitlines()
    assert glob[0] == "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay"
    assert glob[1].split(",")[1] == f"{jm:.3f}"
    rows = (res / "per-sequence_results-val.csv").read_text().splitlines()
    assert rows[1].startswith("alpha_1,") and len(rows) == 7


@pytest.mark.slow
def test_workers_and_unsupervised(tmp_path):
    root, res, _ = make_davis(tmp_path)
    a = evaluate_davis_folder(root, res, workers=1, progress=False)
    b = evaluate_davis_folder(root, res, workers=2, progress=False)
    assert json.dumps(a) == json.dumps(b)


def test_unsupervised_folder_and_2016(tmp_path):
    root, res, data = make_davis(tmp_path)
    (root / "Annotations").rename(root / "Annotations_unsupervised")
    u = evaluate_davis_folder(root, res, task="unsupervised", csv_dir=None, progress=False)
    assert u["num_objects"] == 6 and 0 <= u["J-Mean"] <= 1
    (root / "Annotations_unsupervised").rename(root / "Annotations")
    (root / "ImageSets" / "2016").mkdir()
    (root / "ImageSets" / "2016" / "val.txt").write_text("alpha\n")
    r16 = evaluate_davis_folder(root, res, year="2016", progress=False)
    js = [bf_jaccard((g != 0) & (g != 255), r > 0) for g, r in data["alpha"][1:-1]]
    assert r16["num_objects"] == 1 and r16["J-Mean"] == pytest.approx(np.mean(js), abs=1e-12)


def test_bad_results(tmp_path, capsys):
    root, res, _ = make_davis(tmp_path)
    (res / "gamma" / "00002.png").unlink()
    (res / "gamma" / "00000.png").unlink()  # first frame is not needed in semi-supervised
    with pytest.raises(DataError, match=r"1 result frames missing: gamma/00002.png"):
        evaluate_davis_folder(root, res, progress=False)
    assert main(["eval", "davis", "--davis", str(root), "--results", str(res), "--no-progress"]) == 2
    assert "result frames missing" in capsys.readouterr().err
    _png(res / "gamma" / "00002.png", np.full((14, 18), 9))
    with pytest.raises(DataError, match="object id 9"):
        evaluate_davis_folder(root, res, progress=False)
    Image.fromarray(np.zeros((14, 18, 3), np.uint8)).save(res / "gamma" / "00002.png")
    with pytest.raises(DataError, match="mode is RGB"):
        evaluate_davis_folder(root, res, progress=False)
    _png(res / "gamma" / "00002.png", np.zeros((10, 18)))
    with pytest.raises(DataError, match="differs from ground truth"):
        evaluate_davis_folder(root, res, progress=False)
    _png(res / "gamma" / "00002.png", np.zeros((14, 18)))
    _png(res / "zeta" / "00000.png", np.zeros((14, 18)))
    with pytest.raises(DataError, match="not in the evaluated set"):
        evaluate_davis_folder(root, res, protocol="strict", progress=False)
