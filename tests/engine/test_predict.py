"""``vidseg predict`` (issue 12): official layouts accepted by ``vidseg eval``, the exact VIPSeg submission format,
frame-balanced ranks, 2 gloo processes byte-identical to one, resume after a kill, provenance and bad input."""

from __future__ import annotations

import itertools
import json
import os
import socket
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidseg.cli.main import main
from vidseg.data.synth import generate
from vidseg.data.tools.convert import convert_vipseg_720p
from vidseg.engine.predict import PredictRequest, run_predict
from vidseg.errors import ConfigError, DataError
from vidseg.inference import predict as predict_mod
from vidseg.inference.predict import balance, list_videos, merge_outputs
from vidseg.inference.predict_report import per_video_scores
from vidseg.metrics.vspw import evaluate_vspw_folder
from vidseg.models import official_settings

SIZE = (48, 64)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread (as each forked rank uses): fast on a shared machine, and the same floating-point sums."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("predict_data")
    for kind in ("vspw", "vipseg", "davis"):
        generate(kind, root / kind, videos=3, frames=4, size=SIZE, seed=1, val_fraction=0.67, progress=False)
    convert_vipseg_720p(root / "vipseg", root / "vipseg720", height=SIZE[0], progress=False)
    return root


def _request(data: Path, benchmark: str, out: Path, **kw) -> PredictRequest:
    model = {"vspw": "segformer_b0", "vipseg": "clip_panofcn_tiny", "davis": "stcnn_small"}[benchmark]
    root = data / ("vipseg720" if benchmark == "vipseg" else benchmark)
    settings = replace(official_settings(model), img_scale=None) if benchmark == "vspw" else None
    return PredictRequest(benchmark, root, "val", model, None, out, settings=settings, progress=False, **kw)


def _files(folder: Path) -> dict[str, bytes]:
    """Every output file but the timing summary, by relative path (hidden state included)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "predict_summary.json"}


# --- balancing -------------------------------------------------------------------------------------------

def test_balance_longest_first_onto_least_loaded_rank():
    assert balance([10, 1, 1, 8], 2) == [[0], [1, 2, 3]]
    assert balance([3, 3, 3], 1) == [[0, 1, 2]]
    assert balance([5], 3) == [[0], [], []]


@pytest.mark.parametrize("seed", range(5))
def test_balance_covers_every_video_once_and_is_within_four_thirds_of_optimal(seed):
    counts = list(np.random.default_rng(seed).integers(1, 60, size=7))
    shares = balance(counts, 3)
    assert sorted(i for s in shares for i in s) == list(range(7))
    assert all(s == sorted(s) for s in shares)
    best = min(max(sum(c for c, r in zip(counts, assign, strict=True) if r == k) for k in range(3))
               for assign in itertools.product(range(3), repeat=7))  # brute force over all assignments
    worst = max(sum(counts[i] for i in s) for s in shares)
    assert worst <= best * 4 / 3 + 1e-9  # Graham's bound for longest-processing-time-first
    assert balance(counts, 3) == shares


# --- layouts accepted by vidseg eval ---------------------------------------------------------------------

def test_vspw_layout_scored_by_vidseg_eval(data, tmp_path):
    out = tmp_path / "vspw"
    res = run_predict(_request(data, "vspw", out, evaluate=True))
    videos = (data / "vspw" / "val.txt").read_text().split()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(videos)
    for v in videos:
        stems = sorted(p.stem for p in (data / "vspw" / "data" / v / "origin").glob("*.jpg"))
        assert sorted(p.stem for p in (out / v).glob("*.png")) == stems
        with Image.open(out / v / f"{stems[0]}.png") as img:
            assert img.mode == "P" and img.size == (SIZE[1], SIZE[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the hidden state files are no "extra predictions"
        assert main(["eval", "vspw", "--root", str(data / "vspw"), "--pred", str(out), "--json",
                     str(tmp_path / "eval.json"), "--quiet", "--protocol", "strict"]) == 0
    again = json.loads((tmp_path / "eval.json").read_text())
    written = json.loads((out / "metrics.json").read_text())
    assert written["mIoU"] == pytest.approx(again["mIoU"]) == pytest.approx(res["metrics"]["mIoU"])
    html = (out / "report.html").read_text()
    assert "Worst videos" in html and html.count("<img") == 2
    # the worst-videos table (score_video per video) against the folder evaluator run on one-video splits
    name, rows = per_video_scores("vspw", data / "vspw", out, written, list_videos("vspw", data / "vspw"))
    assert name == "mIoU" and [s for _, s in rows] == sorted(s for _, s in rows)
    for video, score in rows:
        (data / "vspw" / f"only_{video}.txt").write_text(video + "\n")
        with pytest.warns(UserWarning, match="without ground truth"):  # the other video's folder
            alone = evaluate_vspw_folder(data / "vspw", out, split=f"only_{video}", progress=False)
        assert score == pytest.approx(alone["mIoU"])


def _rgb_ids(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "RGB"
        rgb = np.asarray(img).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def test_vipseg_is_the_official_submission_format(data, tmp_path):
    out = tmp_path / "vip"
    run_predict(_request(data, "vipseg", out, evaluate=True))
    gt = json.loads((data / "vipseg720" / "panoptic_gt_VIPSeg_val.json").read_text())
    pred = json.loads((out / "pred.json").read_text())
    assert list(pred) == ["annotations"]
    assert [v["video_id"] for v in pred["annotations"]] == sorted(str(v["video_id"]) for v in gt["videos"])
    gt_names = {str(v["video_id"]): [im["file_name"] for im in v["images"]] for v in gt["videos"]}
    for video in pred["annotations"]:
        assert set(video) == {"video_id", "annotations"}
        names = [f["file_name"] for f in video["annotations"]]
        assert names == gt_names[video["video_id"]]
        assert sorted(os.listdir(out / "pan_pred" / video["video_id"])) == sorted(names)
        for frame in video["annotations"]:
            assert set(frame) == {"image_id", "file_name", "segments_info"}
            assert frame["file_name"] == f"{frame['image_id']}.png"
            ids = _rgb_ids(out / "pan_pred" / video["video_id"] / frame["file_name"])
            uniq, counts = np.unique(ids, return_counts=True)
            segs = {s["id"]: s for s in frame["segments_info"]}
            assert set(segs) == {int(i) for i in uniq if i != 0}
            for i, n in zip(uniq, counts, strict=True):
                if i == 0:
                    continue
                s = segs[int(i)]
                assert set(s) == {"id", "category_id", "iscrowd", "area"}
                assert (s["area"], s["iscrowd"], s["category_id"]) == (int(n), 0, int(i) // 1000 - 1)
                assert 0 <= s["category_id"] < 124
    assert main(["eval", "vipseg", "--gt-json", str(data / "vipseg720" / "panoptic_gt_VIPSeg_val.json"),
                 "--gt-dir", str(data / "vipseg720" / "panomasksRGB"), "--pred", str(out), "--quiet", "--protocol", "strict"]) == 0
    assert "STQ" in json.loads((out / "metrics.json").read_text())
    assert (out / "report.html").read_text().count("<img") == 2


def test_davis_results_folder_scored_by_vidseg_eval(data, tmp_path):
    out = tmp_path / "davis"
    assert main(["predict", "davis", "--root", str(data / "davis"), "--model", "stcnn_small", "--out", str(out),
                 "--eval", "--quiet", "--json", str(tmp_path / "run.json")]) == 0  # the command itself
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["ranks"][0]["frames"] == 8 and "J&F-Mean" in run["metrics"]
    assert (out / "report.html").read_text().count("<img") == 2
    for seq in (data / "davis" / "ImageSets" / "2017" / "val.txt").read_text().split():
        gt = sorted(p.name for p in (data / "davis" / "Annotations" / "480p" / seq).glob("*.png"))
        assert sorted(p.name for p in (out / seq).glob("*.png")) == gt
        with Image.open(out / seq / gt[1]) as img:
            assert img.mode == "P"
    assert main(["eval", "davis", "--davis", str(data / "davis"), "--results", str(out), "--quiet", "--protocol", "strict"]) == 0
    assert "J&F-Mean" in json.loads((out / "metrics.json").read_text())


# --- two processes == one process --------------------------------------------------------------------------

def _forked_rank(rank: int, data: str, out: str, port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    run_predict(_request(Path(data), "vipseg", Path(out), evaluate=True))


def test_two_gloo_processes_write_the_same_bytes_as_one(data, tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_forked_rank, args=(str(data), str(tmp_path / "two"), port), nprocs=2, start_method="fork")
    run_predict(_request(data, "vipseg", tmp_path / "one", evaluate=True))
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(one) == sorted(two) and any(k.startswith("pan_pred/") for k in one)
    assert [k for k in one if one[k] != two[k]] == []
    ranks = json.loads((tmp_path / "two" / "predict_summary.json").read_text())["ranks"]
    assert [r["videos"] for r in ranks] == [1, 1]


# --- resume, provenance, bad input -------------------------------------------------------------------------

def test_killed_run_resumes_with_unfinished_videos(data, tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    run_predict(_request(data, "davis", ref))
    out = tmp_path / "out"
    real = predict_mod.segment_object_video
    calls = []

    def dies_on_second_video(predictor, frames, first_mask, staging, **kw):
        calls.append(frames.name)
        if len(calls) == 2:
            staging.mkdir(parents=True)
            (staging / "00000.png").write_bytes(b"half")  # a frame written before the kill
            raise KeyboardInterrupt
        return real(predictor, frames, first_mask, staging, **kw)

    monkeypatch.setattr(predict_mod, "segment_object_video", dies_on_second_video)
    with pytest.raises(KeyboardInterrupt):
        run_predict(_request(data, "davis", out))
    first, second = calls
    assert (out / f".vidseg-done-{first}.json").is_file() and (out / first).is_dir()
    assert not (out / second).exists() and not (out / f".vidseg-done-{second}.json").exists()
    with pytest.raises(DataError, match="not completed"):
        merge_outputs("davis", list_videos("davis", data / "davis"), out)
    calls.clear()
    monkeypatch.setattr(predict_mod, "segment_object_video",
                        lambda *a, **kw: (calls.append(a[1].name), real(*a, **kw))[1])
    res = run_predict(_request(data, "davis", out))
    assert res["resumed_videos"] == 1 and res["ranks"][0]["written"] == 4 and calls == [second]
    assert _files(out) == _files(ref)


def test_folder_of_another_run_is_refused(data, tmp_path):
    out = tmp_path / "vspw"
    req = _request(data, "vspw", out)
    run_predict(req)
    with pytest.raises(DataError, match="different run.*--overwrite"):
        run_predict(replace(req, settings=replace(req.settings, size_divisor=1)))
    res = run_predict(req)  # the same run resumes: nothing is predicted again
    assert res["ranks"][0]["written"] == 0 and res["resumed_videos"] == 2


def test_split_listing_a_missing_video_is_one_error_and_writes_nothing(data, tmp_path):
    import shutil

    root = tmp_path / "vspw"
    shutil.copytree(data / "vspw", root)
    (root / "val.txt").write_text((root / "val.txt").read_text() + "9999_gone\n")
    out = tmp_path / "out"
    with pytest.raises(DataError) as err:
        run_predict(replace(_request(data, "vspw", out), root=root))
    assert "9999_gone" in str(err.value) and "val.txt" in str(err.value) and "\n" not in str(err.value)
    assert not out.exists()
    assert main(["predict", "vspw", "--root", str(root), "--model", "segformer_b0", "--out", str(out),
                 "--quiet"]) == 2


def test_model_of_another_task_is_refused(data, tmp_path):
    with pytest.raises(ConfigError, match="davis needs a model of task 'object'"):
        run_predict(replace(_request(data, "vspw", tmp_path / "o"), benchmark="davis"))


@pytest.mark.slow
def test_torchrun_python_m_vidseg_predict_equals_one_process(data, tmp_path):
    """The real launcher: ``torchrun --nproc_per_node 2 -m vidseg predict`` (gloo) against the CLI on one process."""
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["predict", "vipseg", "--root", str(data / "vipseg720"), "--model", "clip_panofcn_tiny", "--eval", "--quiet"]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "vidseg", *args, "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    one, two_files = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(one) == sorted(two_files) and [k for k in one if one[k] != two_files[k]] == []
