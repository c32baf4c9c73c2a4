"""Bad inputs and faults (issue 11): one table of case -> expected message fragment, run in-process.

Each case builds its command line from tiny synthetic data made once for the module (``vidseg synth`` library
calls, 32x48 frames), runs ``vidseg.cli.main.main`` and checks: non-zero exit, no traceback, and the message
fragment on stderr (parser errors exit through ``SystemExit(2)``). Cases that need a fault injected (disk full,
a closed stdout) or a sequence of runs are separate tests below the table.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from vidseg.cli.main import main
from vidseg.data.synth import generate
from vidseg.fileio import write_mask_png
from vidseg.inference.segment import video_name
from vidseg.metrics.vipseg_eval import write_vipseg_folders

SIZE = (32, 48)
FAST = ["--img-scale", "none", "--size-divisor", "1", "--quiet"]  # segment frames as they are


@pytest.fixture(scope="module")
def d(tmp_path_factory) -> SimpleNamespace:
    """Tiny datasets and weights shared by every case (made once)."""
    from vidseg.models import build
    from vidseg.models.checkpoint import save_weights

    root = tmp_path_factory.mktemp("bad")
    vspw = generate("vspw", root / "vspw", videos=2, frames=3, size=SIZE, progress=False).root
    vipseg = generate("vipseg", root / "vipseg", videos=2, frames=3, size=SIZE, progress=False).root
    torch.manual_seed(0)
    seg_w = root / "segformer_b0.safetensors"
    save_weights(build("segformer_b0"), seg_w)
    cffm_w = root / "cffm_b0.safetensors"
    save_weights(build("cffm_b0"), cffm_w)
    video = vspw / "data" / "1000_synth_0000" / "origin"
    a_file = root / "a_file.txt"
    a_file.write_text("not a folder\n")
    a_dir = root / "a_dir"
    a_dir.mkdir()
    pred = root / "vspw_pred"  # a perfect VSPW prediction: the GT masks as class ids
    for mask in sorted(vspw.glob("data/1001_synth_0001/mask/*.png")):  # the val video
        labels = np.asarray(Image.open(mask)).astype(np.int64) - 1  # raw VSPW k+1 is class k
        write_mask_png(pred / mask.parts[-3] / mask.name, np.clip(labels, 0, 123).astype(np.uint8))
    ids = np.zeros((8, 8), np.int64)
    ids[:4], ids[4:, :4] = 5, 7
    vip = write_vipseg_folders(root / "vip_eval", {"v1": [ids, ids]}, {"v1": [ids, ids]}, {5: 3, 7: 60}, {5: 3, 7: 60})
    vip720 = root / "vip720"  # VIPSeg raw -> 720P layout (the split JSONs `eval vipseg` reads)
    assert main(["convert", "vipseg-720p", "--src", str(vipseg), "--out", str(vip720), "--height", "32",
                 "--quiet"]) == 0
    return SimpleNamespace(root=root, vspw=vspw, vipseg=vipseg, seg_w=seg_w, cffm_w=cffm_w, video=video,
                           a_file=a_file, a_dir=a_dir, pred=pred, vip=vip, vip720=vip720,
                           corrupt_mp4=_corrupt_mp4(root))


def _decodes_with_damage(path: Path) -> bool:
    """Plain PyAV (no vidseg) decodes every frame without raising, but FFmpeg logs or flags damage."""
    import av

    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(True) as logs, av.open(str(path)) as container:
            flags = [frame.is_corrupt for frame in container.decode(video=0)]
    except av.error.FFmpegError:
        return False
    finally:
        av.logging.set_level(None)
    return len(flags) == 20 and (any(flags) or any(level <= av.logging.ERROR for level, _, _ in logs))


def _corrupt_mp4(root: Path) -> Path:
    """An mp4 with bytes flipped mid-file that decodes 'fine' into concealed garbage (the silent case)."""
    from vidseg.viz.video import Mp4Writer

    good, bad = root / "good.mp4", root / "corrupt.mp4"
    with Mp4Writer(good, fps=10) as writer:
        for i in range(20):
            img = np.zeros((64, 96, 3), np.uint8)
            img[:] = (i * 10) % 255
            img[10:30, (i * 3) % 60:(i * 3) % 60 + 20] = 255
            writer.write(img)
    data = good.read_bytes()
    for frac in np.linspace(0.25, 0.75, 21):
        damaged = bytearray(data)
        k = int(len(data) * frac)
        damaged[k] ^= 0xFF
        damaged[k + 7] ^= 0x0F
        bad.write_bytes(bytes(damaged))
        if _decodes_with_damage(bad):
            return bad
    pytest.skip("no silently damaged mp4 could be made with this FFmpeg build")


def run_cli(argv: list, capsys) -> tuple[int, str, str]:
    """``vidseg <argv>`` in-process: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def fresh(d: SimpleNamespace, name: str) -> Path:
    """A new empty folder for one case."""
    path = d.root / "cases" / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _segment(d, *extra):
    return ["segment", d.video, "--model", "segformer_b0", *FAST, *extra]


def _vspw_copy(d, name: str, change) -> list:
    """``eval vspw`` on a copy of the tiny VSPW root and prediction changed by ``change(root, pred)``."""
    case = fresh(d, name)
    root, pred = case / "root", case / "pred"
    shutil.copytree(d.vspw, root)
    shutil.copytree(d.pred, pred)
    extra = change(root, pred) or []
    return ["eval", "vspw", "--root", root, "--pred", pred, "--no-progress", *extra]


def _vip_copy(d, name: str, change_gt=None, change_pred=None, *extra) -> list:
    """``eval vipseg`` on a copy of the tiny VIPSeg GT and submission with their JSON changed."""
    case = fresh(d, name)
    shutil.copytree(d.vip["gt_dir"], case / "gt")
    shutil.copytree(d.vip["submit_dir"], case / "submit")
    gt = json.loads(Path(d.vip["gt_json"]).read_text())
    pred = json.loads((case / "submit" / "pred.json").read_text())
    if change_gt:
        change_gt(gt)
    if change_pred:
        change_pred(pred)
    (case / "gt.json").write_text(json.dumps(gt))
    (case / "submit" / "pred.json").write_text(json.dumps(pred))
    return ["eval", "vipseg", "--gt-json", case / "gt.json", "--gt-dir", case / "gt", "--pred", case / "submit",
            "--no-progress", *extra]


def _first_segment(data: dict) -> dict:
    return data["annotations"][0]["annotations"][0]["segments_info"][0]


def _write_lines(path: Path, text: str, bom: bool = False) -> None:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())


def _set_pixel(path: Path, value: int) -> None:
    arr = np.asarray(Image.open(path)).copy()
    arr[0, 0] = value
    Image.fromarray(arr).save(path)


def _resize_frame(root: Path, pred: Path) -> None:
    for path in (root / "data" / "1001_synth_0001" / "mask" / "00000002.png",
                 pred / "1001_synth_0001" / "00000002.png"):
        Image.open(path).resize((24, 16), Image.NEAREST).save(path)


def _copy_root(d, name: str, src: Path, change) -> list:
    """``info --check`` on a copy of a dataset root changed by ``change(root)``."""
    root = fresh(d, name) / src.name
    shutil.copytree(src, root)
    change(root)
    return ["info", root, "--check", "--quiet"]


def _as_jpeg(path: Path) -> None:
    Image.open(path).convert("L").save(path, format="JPEG", quality=100)


def _drop_split_segment(root: Path) -> None:
    split = sorted(root.glob("panoptic_gt_VIPSeg_*.json"))[0]
    data = json.loads(split.read_text())
    frame = next(a for v in data["annotations"] for a in v["annotations"] if a["segments_info"])
    frame["segments_info"].pop()
    split.write_text(json.dumps(data))


def _drop(keys):
    def change(data):
        for key in keys:
            data["videos"][0].pop(key, None) if key == "video_id" else data["videos"][0]["images"][0].pop(key)
    return change


TRAIN_CFG = Path(__file__).parents[1] / "configs" / "segformer_b0_vspw.yaml"


# case id -> (argv builder, expected fragment of the one-line error)
CASES = {
    # numbers checked by the parser, naming the option (cli/argtypes)
    "convert height 0": (lambda d: ["convert", "vspw-480p", "--src", d.vspw, "--out", d.root / "c0",
                                    "--height", "0"], "argument --height: must be an integer >= 1, got '0'"),
    "convert height -5": (lambda d: ["convert", "vspw-480p", "--src", d.vspw, "--out", d.root / "c0",
                                     "--height", "-5"], "argument --height: must be an integer >= 1"),
    "segment num-classes 0": (lambda d: _segment(d, "--out", d.root / "s0", "--num-classes", "0"),
                              "argument --num-classes: must be an integer >= 1"),
    "synth val-fraction 2": (lambda d: ["synth", "vspw", "--out", d.root / "x", "--val-fraction", "2"],
                             "argument --val-fraction: must be a number >= 0 and <= 1"),
    "eval workers 0": (lambda d: ["eval", "vspw", "--root", d.vspw, "--pred", d.a_dir, "--workers", "0"],
                       "argument --workers"),
    # models and weights
    "segment a backbone": (lambda d: ["segment", d.video, "--model", "mit_b0", "--out", d.root / "s1", *FAST],
                           "'mit_b0' is a backbone"),
    "segment another model's weights": (
        lambda d: _segment(d, "--out", d.root / "s2", "--weights", d.cffm_w),
        "weights do not match model segformer_b0"),
    # output paths
    "segment --json is a folder": (lambda d: _segment(d, "--weights", d.seg_w, "--out", fresh(d, "s3"),
                                                      "--json", d.a_dir), "is a folder; expected a file path"),
    "segment --out inside a file": (lambda d: _segment(d, "--weights", d.seg_w, "--out", d.a_file),
                                    "a_file.txt/1000_synth_0000: Not a directory"),
    "eval --json is a folder": (lambda d: ["eval", "vspw", "--root", d.vspw, "--pred", d.pred, "--no-progress",
                                           "--json", d.a_dir], "is a folder; expected a file path"),
    # VSPW evaluation: split files, missing frames, GT values, sizes
    "vspw video twice in val.txt": (
        lambda d: _vspw_copy(d, "twice", lambda r, p: _write_lines(r / "val.txt", "1001_synth_0001\n1001_synth_0001\n")),
        "video 1001_synth_0001 is listed twice (lines 1 and 2)"),
    "vspw empty split": (lambda d: _vspw_copy(d, "empty", lambda r, p: _write_lines(r / "val.txt", "\n")),
                         "lists no videos"),
    "vspw missing split file": (lambda d: [*_vspw_copy(d, "nosplit", lambda r, p: None), "--split", "valid"],
                                "valid.txt: split file not found"),
    "vspw tc across a missing frame": (
        lambda d: _vspw_copy(d, "gap", lambda r, p: (
            (r / "data" / "1001_synth_0001" / "origin" / "00000002.jpg").unlink() or ["--metrics", "tc"])),
        "frame 00000002.jpg is missing but its mask exists"),
    "vspw strict GT value 200 names the mask": (
        lambda d: _vspw_copy(d, "gt200", lambda r, p: _set_pixel(
            r / "data" / "1001_synth_0001" / "mask" / "00000001.png", 200) or ["--protocol", "strict"]),
        "1001_synth_0001/mask/00000001.png: ground truth value 200"),
    "vspw frame size change names the file": (
        lambda d: _vspw_copy(d, "resize", _resize_frame),
        "1001_synth_0001/mask/00000002.png: frame size (24, 16) differs"),
    # VIPSeg evaluation: JSON contents
    "vipseg non-integer category_id": (
        lambda d: _vip_copy(d, "cat157", None, lambda p: _first_segment(p).update(category_id=15.7)),
        "category_id must be an integer, got 15.7"),
    "vipseg non-integer segment id": (
        lambda d: _vip_copy(d, "id5x", None, lambda p: _first_segment(p).update(id="5")),
        "id must be an integer, got '5'"),
    "vipseg unknown category": (
        lambda d: _vip_copy(d, "cat999", None, lambda p: _first_segment(p).update(category_id=999)),
        "999"),
    "vipseg video twice in pred.json": (
        lambda d: _vip_copy(d, "twice", None, lambda p: p["annotations"].append(p["annotations"][0])),
        "pred.json: video v1 is listed twice"),
    "vipseg GT without video_id": (lambda d: _vip_copy(d, "novid", _drop(["video_id"])),
                                   "'videos' entry 0 has no video_id"),
    "vipseg GT without file_name": (lambda d: _vip_copy(d, "nofile", _drop(["file_name"])),
                                    "video v1: an 'images' entry has no file_name"),
    "vipseg GT segment missing from the JSON": (
        lambda d: _vip_copy(d, "gtseg", lambda g: g["annotations"][0]["annotations"][0]["segments_info"].pop()),
        "GT JSON, video v1: tube IoU > 1 for GT segment 7 in frames 1..2"),
    # info --check: every file a command reads
    "info --check corrupt mp4": (lambda d: ["info", d.corrupt_mp4, "--check", "--quiet"], "corrupt video data"),
    "segment corrupt mp4": (lambda d: ["segment", d.corrupt_mp4, "--model", "segformer_b0", "--weights", d.seg_w,
                                       "--out", fresh(d, "corrupt"), *FAST], "corrupt video data"),
    "info --check VSPW without val.txt": (
        lambda d: _copy_root(d, "noval", d.vspw, lambda r: (r / "val.txt").unlink()),
        "val.txt: split file not found"),
    "info --check JPEG data in a .png mask": (
        lambda d: _copy_root(d, "jpegmask", d.vspw, lambda r: _as_jpeg(
            r / "data" / "1000_synth_0000" / "mask" / "00000002.png")),
        "00000002.png: holds JPEG data, not PNG"),
    "info --check VIPSeg split JSON missing a segment": (
        lambda d: _copy_root(d, "splitjson", d.vip720, _drop_split_segment),
        "segments differ from panoptic_gt_VIPSeg.json"),
    # training configuration
    "train data.batch_size=0": (lambda d: ["train", TRAIN_CFG, "--set", "data.batch_size=0"],
                                "data.batch_size: must be >= 1, got 0"),
    "train device=cuda without CUDA": (
        lambda d: ["train", TRAIN_CFG, "--set", "smoke=true", "--set", "device=cuda", "--out", fresh(d, "cuda")]
        if not torch.cuda.is_available() else pytest.skip("CUDA present"), "CUDA is not available"),
    "train --out is a file": (lambda d: ["train", TRAIN_CFG, "--set", "smoke=true", "--out", d.a_file],
                              "a_file.txt"),
    # conversion outputs
    "convert --out is a file": (lambda d: ["convert", "vspw-480p", "--src", d.vspw, "--out", d.a_file, "--quiet"],
                                "is a file; expected an output folder"),
    "convert into an unrelated folder": (
        lambda d: ["convert", "vspw-480p", "--src", d.vspw, "--out", d.root, "--quiet"],
        "is not empty and not an earlier run of this conversion"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_error(case, d, capsys):
    build_argv, fragment = CASES[case]
    code, out, err = run_cli(build_argv(d), capsys)
    assert code != 0, out + err
    assert "Traceback" not in err, err
    assert fragment in out + err, out + err  # errors on stderr; `info --check` lists problems on stdout (exit 1)
    if code == 2:
        assert len([line for line in err.splitlines() if "error:" in line]) == 1, err


def test_case_count():
    """The count of table cases recorded in docs/errors.md."""
    text = (Path(__file__).parents[1] / "docs" / "errors.md").read_text()
    assert f"{len(CASES)} cases" in text


# ------------------------------------------------------------------------------------------ faults and sequences
def test_disk_full_names_the_file_and_leaves_nothing(d, capsys, monkeypatch):
    out = fresh(d, "enospc")
    real = Path.write_bytes

    def full(self, data):
        if self.name.startswith(".") and ".tmp" in self.name:
            real(self, data[: len(data) // 2])  # half written, then the device is full
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    code, _, err = run_cli(_segment(d, "--weights", d.seg_w, "--out", out), capsys)
    assert code == 2 and "Traceback" not in err
    assert "no space left on device while writing" in err and str(out) in err
    assert [p for p in out.rglob("*") if p.is_file() and p.suffix == ".png"] == []
    assert [p for p in out.rglob("*") if ".tmp" in p.name] == []


def test_checkpoint_disk_full(tmp_path, monkeypatch):
    from vidseg.errors import DiskFullError
    from vidseg.models.checkpoint import save_torch_atomic

    real = Path.write_bytes

    def full(self, data):
        real(self, data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(DiskFullError, match="no space left on device while writing .*last.pt"):
        save_torch_atomic(tmp_path / "last.pt", {"x": torch.ones(3)})
    assert list(tmp_path.iterdir()) == []


def test_closed_stdout_still_writes_json(d, capsys, monkeypatch):
    import sys

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    out = fresh(d, "pipe")
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    code = main([str(a) for a in _segment(d, "--weights", d.seg_w, "--out", out, "--json", out / "run.json")])
    assert code == 0
    assert json.loads((out / "run.json").read_text())["frames"] == 3


def test_outputs_honour_the_umask(d, capsys):
    out = fresh(d, "umask")
    old = os.umask(0o022)
    try:
        assert run_cli(_segment(d, "--weights", d.seg_w, "--out", out, "--json", out / "r.json"), capsys)[0] == 0
    finally:
        os.umask(old)
    pngs = list((out / video_name(d.video)).glob("*.png"))
    assert pngs and all(p.stat().st_mode & 0o777 == 0o644 for p in [*pngs, out / "r.json"])


def test_segment_refuses_a_folder_made_differently(d, capsys):
    out = fresh(d, "resume")
    base = _segment(d, "--weights", d.seg_w, "--out", out)
    assert run_cli(base, capsys)[0] == 0
    code, out_text, _ = run_cli(base, capsys)  # the same run resumes
    assert code == 0 and "3" in out_text
    code, _, err = run_cli([*base, "--tta"], capsys)  # other options
    assert code == 2 and "was written by a different run" in err and "--overwrite" in err and "tta" in err
    torch.manual_seed(5)
    from vidseg.models import build
    from vidseg.models.checkpoint import save_weights

    other = d.root / "other_segformer.safetensors"
    save_weights(build("segformer_b0"), other)
    code, _, err = run_cli(_segment(d, "--weights", other, "--out", out), capsys)  # other weights
    assert code == 2 and "weights" in err and "sha256" in err
    mask = out / video_name(d.video) / "00000001.png"
    before = mask.read_bytes()
    assert run_cli(_segment(d, "--weights", other, "--out", out, "--overwrite"), capsys)[0] == 0
    assert mask.read_bytes() != before  # really re-made with the other weights


def test_partial_weights_flag_loads_what_matches(d, capsys):
    out = fresh(d, "partial")
    with pytest.warns(UserWarning, match="partial weights for segformer_b0"):
        code, _, err = run_cli(_segment(d, "--out", out, "--weights", d.cffm_w, "--partial-weights"), capsys)
    assert code == 0, err


def test_identical_checkpoints_are_byte_identical(tmp_path):
    from vidseg.models.checkpoint import save_torch_atomic

    state = {"w": torch.arange(6.0).reshape(2, 3), "it": 3}
    save_torch_atomic(tmp_path / "a.pt", state)
    save_torch_atomic(tmp_path / "b.pt", state)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.load(tmp_path / "a.pt", weights_only=True)["it"] == 3


def test_stale_temporaries_are_removed(tmp_path):
    from vidseg.fileio import remove_stale_temporaries

    old = tmp_path / ".last.abc123.tmp.pt"
    new = tmp_path / ".last.def456.tmp.pt"
    keep = tmp_path / "last.pt"
    for p in (old, new, keep):
        p.write_bytes(b"x")
    os.utime(old, (1, 1))
    assert remove_stale_temporaries(tmp_path) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([new.name, keep.name])


def test_split_file_bom_is_stripped(d, capsys):
    argv = _vspw_copy(d, "bom", lambda r, p: _write_lines(r / "val.txt", "1001_synth_0001\n", bom=True))
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "mIoU       100.00" in out


def test_tcb_memory_default_is_the_official_rule():
    """An official tcb_ocr_mem checkpoint runs as released (FIFO memory) unless the EMA variant is named."""
    from vidseg.models import build, official_settings

    assert build("tcb_ocr_mem_r101", num_classes=3, depth=50).memory == "official"
    ema = build("tcb_ocr_mem_ema_r101", num_classes=3, depth=50)
    assert ema.memory == "ema" and ema.use_memory
    assert official_settings("tcb_ocr_mem_ema_r101").model_kwargs == {}  # segment keeps the named rule
