"""DAVIS semi-/unsupervised protocols: the stateful evaluator, per-sequence scoring, CSV files and folder scoring.

Per-frame J and F come from :mod:`vidseg.metrics.davis_fast`; label PNGs are decoded straight into the numpy
array (:func:`_read_index_png`); folder plumbing (splits, jobs, missing/extra checks) from
:mod:`vidseg.metrics.folder`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidseg.categories import davis_db_info
from vidseg.errors import ConfigError, DataError
from vidseg.fileio import write_text_atomic
from vidseg.metrics.davis import BOUND_TH, db_statistics
from vidseg.metrics.davis_fast import frame_scores
from vidseg.metrics.davis_t import sequence_t
from vidseg.metrics.evaluator import Evaluator, check_protocol
from vidseg.metrics.folder import raise_missing, read_label_png, report_extra, run_jobs

MAX_PROPOSALS = 20
GLOBAL_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


# ------------------------------------------------------------------------------------ evaluator


class DAVISEvaluator(Evaluator):
    """J/F per object and frame, statistics, global results, for semi-supervised or unsupervised.

    ``process(sequence, gt_frames, res_frames)`` takes one whole sequence: GT label maps (DAVIS indexed
    PNG values: 0 background, 1..N objects, 255 void) and result label maps (object / proposal ids).

    Args:
        task: ``semi-supervised`` (first and last frame excluded, objects = max id of the first GT
            frame, GT 255 -> background, no void) or ``unsupervised`` (all frames, void used, up to
            20 proposals matched to objects by the Hungarian algorithm on -mean (J+F)/2).
        protocol: ``official`` or ``strict`` (decay bins without the uint8 wrap; unsupervised per-object
            rows in GT order instead of the official proposal order).
        bound_th: F tolerance.
        binary: DAVIS-2016 style: all GT objects merged into one, any result value > 0 is foreground.
    """

    def __init__(self, task: str = "semi-supervised", protocol: str = "official", bound_th: float = BOUND_TH,
                 binary: bool = False) -> None:
        if task not in ("semi-supervised", "unsupervised"):
            raise ConfigError(f"unknown DAVIS task {task!r}; choose semi-supervised or unsupervised")
        self.task = task
        self.protocol = check_protocol(protocol)
        self.bound_th = bound_th
        self.binary = binary
        self.reset()

    def reset(self) -> None:
        self.objects: dict[str, dict[str, np.ndarray]] = {}  # "<seq>_<k>" -> {"J": [T'], "F": [T']}

    def process(self, sequence: str, gt_frames: list[np.ndarray], res_frames: list[np.ndarray | None],  # type: ignore[override]
                names: list[str] | None = None) -> None:
        """Score one sequence. ``res_frames[0]``/``[-1]`` may be None in semi-supervised (not read)."""
        j, f = score_sequence(gt_frames, res_frames, self.task, self.protocol, self.bound_th, self.binary,
                              names or [sequence] * len(gt_frames))
        for k in range(j.shape[0]):
            key = f"{sequence}_{k + 1}"
            if key in self.objects:
                raise DataError(sequence, "sequence processed twice")
            self.objects[key] = {"J": j[k], "F": f[k]}

    def per_object(self) -> dict[str, dict[str, float]]:
        """{"<seq>_<k>": {J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay}}."""
        out = {}
        for key, v in self.objects.items():
            jm, jr, jd = db_statistics(v["J"], self.protocol)
            fm, fr, fd = db_statistics(v["F"], self.protocol)
            out[key] = {"J-Mean": jm, "J-Recall": jr, "J-Decay": jd, "F-Mean": fm, "F-Recall": fr, "F-Decay": fd}
        return out

    def evaluate(self) -> dict[str, Any]:
        """Global results: mean over objects of each statistic, J&F-Mean = (J-Mean + F-Mean) / 2."""
        per = self.per_object()
        if not per:
            return dict.fromkeys(GLOBAL_COLUMNS, float("nan")) | {"num_objects": 0}
        cols = {c: float(np.mean([p[c] for p in per.values()])) for c in GLOBAL_COLUMNS[1:]}
        return {"J&F-Mean": (cols["J-Mean"] + cols["F-Mean"]) / 2.0, **cols, "num_objects": len(per)}

    def state_dict(self) -> dict[str, Any]:
        return {"objects": {k: dict(v) for k, v in self.objects.items()}}

    def merge(self, other_state: dict[str, Any]) -> None:
        for key, v in other_state["objects"].items():
            if key in self.objects:
                raise DataError(key, "object present in two merged evaluator states")
            self.objects[key] = v


def _prepare_gt(gt: np.ndarray, n_gt: int, task: str, binary: bool) -> tuple[np.ndarray, np.ndarray | None]:
    void = gt == 255 if task == "unsupervised" else None
    if binary:
        return ((gt != 0) & (gt != 255)).view(np.uint8), void
    if gt.dtype == np.uint8 and gt.ndim == 2 and gt.size and n_gt < 255:
        import cv2

        # one pass: values > n_gt (ids absent from the first frame, and void 255) become background
        return cv2.threshold(gt, n_gt, 0, cv2.THRESH_TOZERO_INV)[1], void
    g = gt.astype(np.uint8) if gt.dtype != np.uint8 and gt.max() <= 255 else gt.copy()
    g[(g > n_gt) | (g == 255)] = 0  # ids absent from the first frame and void are background
    return g, void


def _prepare_res(res: np.ndarray, name: str, gt_shape: tuple, binary: bool) -> np.ndarray:
    if res.ndim != 2:
        raise DataError(name, f"result must be an indexed (single-channel) PNG, got shape {res.shape}")
    if res.shape != gt_shape:
        raise DataError(name, f"result size {res.shape[::-1]} differs from ground truth {gt_shape[::-1]} (W, H)")
    if binary:
        return (res > 0).view(np.uint8)
    if res.dtype != np.uint8 and res.size and res.min() >= 0 and res.max() <= 255:
        return res.astype(np.uint8)
    return res


def score_sequence(gt_frames: list[np.ndarray], res_frames: list[np.ndarray | None], task: str,
                   protocol: str = "official", bound_th: float = BOUND_TH, binary: bool = False,
                   names: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-object, per-frame J and F of one sequence: arrays [n_objects, n_evaluated_frames]."""
    if len(gt_frames) != len(res_frames):
        raise DataError(names[0] if names else "results", f"{len(gt_frames)} GT frames but {len(res_frames)} results")
    names = names or [f"frame {i}" for i in range(len(gt_frames))]
    first = gt_frames[0]
    n_gt = 1 if binary else int(np.max(np.where(first == 255, 0, first)))
    idx = range(1, len(gt_frames) - 1) if task == "semi-supervised" else range(len(gt_frames))
    if task == "semi-supervised":
        return _score_semi(gt_frames, res_frames, list(idx), n_gt, bound_th, binary, names)
    return _score_unsup(gt_frames, res_frames, list(idx), n_gt, protocol, bound_th, binary, names)


def _score_semi(gt_frames, res_frames, idx, n_gt, bound_th, binary, names):
    j = np.zeros((n_gt, len(idx)))
    f = np.zeros((n_gt, len(idx)))
    for col, t in enumerate(idx):
        g, _ = _prepare_gt(gt_frames[t], n_gt, "semi-supervised", binary)
        r = _prepare_res(res_frames[t], names[t], g.shape, binary)
        hi = int(r.max()) if r.size else 0
        if hi > n_gt:
            raise DataError(names[t], f"result holds object id {hi} but the first GT frame has {n_gt} objects")
        j[:, col], f[:, col] = frame_scores(g, r, n_gt, n_gt, pairs="diagonal", bound_th=bound_th)
    return j, f


def _score_unsup(gt_frames, res_frames, idx, n_gt, protocol, bound_th, binary, names):
    from scipy.optimize import linear_sum_assignment

    res = [_prepare_res(res_frames[t], names[t], gt_frames[t].shape, binary) for t in idx]
    n_res = max([int(r.max()) for r in res if r.size] + [0])
    if n_res > MAX_PROPOSALS:
        bad = next(names[t] for t, r in zip(idx, res, strict=True) if r.size and r.max() > MAX_PROPOSALS)
        raise DataError(bad, f"result holds proposal id {n_res}; at most {MAX_PROPOSALS} proposals are allowed")
    n_rows = max(n_res, n_gt)  # fewer proposals than objects: zero-padded, as the official code
    j = np.zeros((n_rows, n_gt, len(idx)))
    f = np.zeros((n_rows, n_gt, len(idx)))
    for col, (t, r) in enumerate(zip(idx, res, strict=True)):
        g, void = _prepare_gt(gt_frames[t], n_gt, "unsupervised", binary)
        j[:, :, col], f[:, :, col] = frame_scores(g, r, n_gt, n_rows, void=void, pairs="all", bound_th=bound_th)
    all_metrics = (np.mean(j, axis=2) + np.mean(f, axis=2)) / 2 if len(idx) else np.zeros((n_rows, n_gt))
    row, col = linear_sum_assignment(-all_metrics)
    if protocol == "strict":  # report object k in row k (official: rows in proposal order)
        order = np.argsort(col)
        row, col = row[order], col[order]
    return j[row, col, :], f[row, col, :]


# ------------------------------------------------------------------------------------ CSV


def format_global_csv(results: dict[str, float]) -> str:
    """``global_results-<set>.csv``: the 7 columns with 3 decimals, as pandas ``to_csv`` writes them."""
    return ",".join(GLOBAL_COLUMNS) + "\n" + ",".join(_fmt(results[c]) for c in GLOBAL_COLUMNS) + "\n"


def format_per_sequence_csv(per_object: dict[str, dict[str, float]]) -> str:
    """``per-sequence_results-<set>.csv``: Sequence, J-Mean, F-Mean with rows ``<seq>_<objid>``."""
    lines = ["Sequence,J-Mean,F-Mean"]
    lines += [f"{k},{_fmt(v['J-Mean'])},{_fmt(v['F-Mean'])}" for k, v in per_object.items()]
    return "\n".join(lines) + "\n"


def _fmt(x: float) -> str:
    return "" if np.isnan(x) else f"{x:.3f}"  # pandas writes NaN as an empty field


# ------------------------------------------------------------------------------------ folders


def _read_index_png(path) -> np.ndarray:
    """[H, W] values of an indexed / grey label PNG (``read_label_png`` semantics and errors).

    8-bit ``P`` and ``L`` images are decoded straight into a numpy array: Pillow's ``np.asarray``
    copies the decoded image once more through ``tobytes``, which costs about as much as the decoding.
    The PNG decoder fills the image memory it finds already set, so it is given one that maps the
    array (``Image.frombuffer``); if it did not use it, or anything else is unusual (other modes,
    errors), the file is read again by ``read_label_png``.
    """
    try:
        arr = _decode_into_array(path)
    except Exception:  # the plain reader reads the file again and raises the proper DataError
        arr = None
    return read_label_png(path) if arr is None else arr


def _decode_into_array(path) -> np.ndarray | None:
    from PIL import Image

    with Image.open(path) as img:
        mode, size = img.mode, img.size
        if img.format != "PNG" or mode not in ("L", "P"):
            return None
        arr = np.empty((size[1], size[0]), np.uint8)
        target = Image.frombuffer(mode, size, arr, "raw", mode, 0, 1).im  # shares arr's memory
        img.im = target
        img.load()
        ok = img.im is target and img.mode == mode and img.size == size
    return arr if ok else None


def davis_sequences(davis_root, year: str, subset: str) -> list[str]:
    """Sequence names of ``<root>/ImageSets/<year>/<set>.txt``."""
    from pathlib import Path

    path = Path(davis_root) / "ImageSets" / str(year) / f"{subset}.txt"
    if not path.is_file():
        raise DataError(path, "DAVIS image-set file not found")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def _davis_job(job: dict[str, Any]) -> dict[str, Any]:
    from pathlib import Path

    gt_dir, res_dir = Path(job["gt_dir"]), Path(job["res_dir"])
    stems = job["stems"]
    skip = {0, len(stems) - 1} if job["task"] == "semi-supervised" else set()
    gts = [_read_index_png(gt_dir / f"{s}.png") for s in stems]
    res = [None if i in skip else _read_index_png(res_dir / f"{s}.png") for i, s in enumerate(stems)]
    ev = DAVISEvaluator(job["task"], job["protocol"], binary=job["binary"])
    ev.process(job["sequence"], gts, res, names=[str(res_dir / f"{s}.png") for s in stems])
    out: dict[str, Any] = {"state": ev.state_dict()}
    if job["with_t"]:
        out["T"] = sequence_t([r for r in res if r is not None], binary=True)
    return out


def _check_results(gt_root, res_root, sequences: list[str], task: str, protocol: str) -> dict[str, list[str]]:
    from pathlib import Path

    stems_of: dict[str, list[str]] = {}
    missing: list[str] = []
    for seq in sequences:
        gdir = Path(gt_root) / seq
        stems = sorted(p.stem for p in gdir.glob("*.png"))
        if not stems:
            raise DataError(gdir, "no ground-truth annotations (*.png) for this sequence")
        stems_of[seq] = stems
        need = stems[1:-1] if task == "semi-supervised" else stems
        have = {p.stem for p in (Path(res_root) / seq).glob("*.png")}
        missing += [f"{seq}/{s}.png" for s in need if s not in have]
    raise_missing(missing, res_root, "result frames")
    seqset = set(sequences)
    extra = sorted(p.name for p in Path(res_root).iterdir() if p.is_dir() and p.name not in seqset)
    report_extra(extra, res_root, protocol, "result folders not in the evaluated set")
    return stems_of


def evaluate_davis_folder(davis_root, results, *, task: str = "semi-supervised", year: str = "2017",
                          subset: str = "val", protocol: str = "official", resolution: str = "480p",
                          workers: int = 1, with_t: bool = False, csv_dir=None,
                          progress: bool = True) -> dict[str, Any]:
    """Score a DAVIS results folder (``<results>/<seq>/<frame>.png``) as davis2017-evaluation does.

    Args:
        davis_root: DAVIS root with ``Annotations[_unsupervised]/<resolution>`` and ``ImageSets``.
        results: results folder.
        task: ``semi-supervised`` or ``unsupervised``.
        year: ``2017`` (multi-object) or ``2016`` (objects merged into one, result value > 0 = object).
        subset: image set (``val``, ``train``, ``test-dev``).
        protocol: ``official`` or ``strict``.
        resolution: annotation folder (``480p``).
        workers: processes (results do not depend on it).
        with_t: also compute the best-effort temporal stability T over the ``eval_t`` sequences.
        csv_dir: where to write ``global_results-<set>.csv`` and ``per-sequence_results-<set>.csv``
            (None: do not write). Unlike the official script, existing CSVs are always recomputed.
        progress: tqdm bar.

    Returns:
        Global results (J&F-Mean, J-Mean, ...; T if asked), ``per_object`` and counts.
    """
    from pathlib import Path

    check_protocol(protocol)
    sub = "Annotations_unsupervised" if task == "unsupervised" else "Annotations"
    gt_root = Path(davis_root) / sub / resolution
    if not gt_root.is_dir():
        raise DataError(gt_root, "DAVIS annotation folder not found")
    if not Path(results).is_dir():
        raise DataError(results, "results folder not found")
    sequences = davis_sequences(davis_root, year, subset)
    stems_of = _check_results(gt_root, results, sequences, task, protocol)
    t_seqs = set(eval_t_sequences()) if with_t else set()
    jobs = [{"gt_dir": str(gt_root / s), "res_dir": str(Path(results) / s), "stems": stems_of[s], "sequence": s,
             "task": task, "protocol": protocol, "binary": str(year) == "2016", "with_t": s in t_seqs}
            for s in sequences]
    ev = DAVISEvaluator(task, protocol, binary=str(year) == "2016")
    t_values: dict[str, float] = {}
    for job, res in zip(jobs, run_jobs(_davis_job, jobs, workers, progress, desc="DAVIS sequences"), strict=True):
        ev.merge(res["state"])
        if "T" in res:
            t_values[job["sequence"]] = res["T"]
    out = ev.evaluate()
    per = ev.per_object()
    if with_t:
        vals = np.array(list(t_values.values()), np.float64)
        out["T"] = float(np.nanmean(vals)) if len(vals) and not np.isnan(vals).all() else float("nan")
        out["T_sequences"] = t_values
    if csv_dir is not None:
        write_text_atomic(Path(csv_dir) / f"global_results-{subset}.csv", format_global_csv(out))
        write_text_atomic(Path(csv_dir) / f"per-sequence_results-{subset}.csv", format_per_sequence_csv(per))
    out["per_object"] = per
    out["protocol"], out["task"] = protocol, task
    return out


def eval_t_sequences() -> list[str]:
    """Names of the sequences marked ``eval_t`` in the DAVIS metadata (the T benchmark subset)."""
    return [s["name"] for s in davis_db_info()["sequences"] if s.get("eval_t")]
