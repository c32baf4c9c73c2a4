"""``vidseg eval vipseg``: VPQ^k and STQ of an official VIPSeg submission folder, in one pass."""

from __future__ import annotations

import argparse
import math

from vidseg.cli.argtypes import add_quiet, positive_int

HELP = "VIPSeg video panoptic metrics: VPQ^k (k=1,2,4,6,8 by default), VPQ_final, STQ/AQ/SQ."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt-json", required=True, help="GT JSON: panoptic_gt_VIPSeg.json as the official converter writes it (or a split's "
                             "panoptic_gt_VIPSeg_<split>.json)")
    parser.add_argument("--gt-dir", required=True, help="GT RGB-id PNG folder, e.g. VIPSeg_720P/panomasksRGB")
    parser.add_argument("--pred", required=True, help="submission folder holding pred.json and pan_pred/<video>/")
    parser.add_argument("--k", default="1,2,4,6,8",
                        help="comma-separated VPQ window lengths; VPQ_final is their mean (papers differ: "
                             "some use 1,2,4,6)")
    parser.add_argument("--protocol", choices=("official", "strict"), default="official",
                        help="official: numbers of the official scripts; strict: pair frames by name, GT areas "
                             "from PNGs, no STQ crowd quirk, reject questionable input")
    parser.add_argument("--short-videos", choices=("skip", "whole"), default="skip",
                        help="videos shorter than k: skip (official) or score them as one window (DEVA variant)")
    parser.add_argument("--workers", type=positive_int, default=1, help="worker processes (results do not depend on it)")
    parser.add_argument("--json", metavar="FILE", help="write all results (fractions in [0, 1]) to this JSON file")
    parser.add_argument("--per-category", action="store_true", help="also print the per-category VPQ tables")
    add_quiet(parser)


def _parse_ks(text: str) -> tuple[int, ...]:
    from vidseg.errors import ConfigError

    try:
        ks = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--k must be comma-separated integers, got {text!r}") from None
    if not ks or min(ks) < 1 or len(set(ks)) != len(ks):
        raise ConfigError(f"--k must list distinct integers >= 1, got {text!r}")
    return ks


def _pct(v: float) -> float | str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else 100.0 * v


def format_results(res: dict, per_category: bool = False) -> str:
    """Readable tables (percentages) of the dict returned by ``evaluate_vipseg_folder``."""
    from vidseg.tables import format_table

    rows = [[f"VPQ^{k}", _pct(v["all"]), _pct(v["thing"]), _pct(v["stuff"])] for k, v in res["VPQ"].items()]
    fin = res["VPQ_final"]
    rows.append(["VPQ_final", _pct(fin["all"]), _pct(fin["thing"]), _pct(fin["stuff"])])
    parts = [format_table(rows, ["metric", "all (%)", "thing (%)", "stuff (%)"]),
             format_table([[_pct(res["STQ"]), _pct(res["AQ"]), _pct(res["SQ"])]], ["STQ (%)", "AQ (%)", "SQ = IoU (%)"])]
    if per_category:
        for k, cat_rows in res["per_category"].items():
            table = [[r["id"], r["name"], _pct(r["pq"]), _pct(r["sq"]), _pct(r["rq"]), round(r["iou"], 1),
                      r["tp"], r["fp"], r["fn"]] for r in cat_rows]
            parts.append(f"k={k}\n" + format_table(table, ["IDX", "name", "PQ", "SQ", "RQ", "IoU", "TP", "FP", "FN"]))
    return "\n\n".join(parts)


def run(args: argparse.Namespace) -> int:
    from vidseg.metrics.vipseg_eval import evaluate_vipseg_folder
    from vidseg.tables import jsonable, write_json

    res = evaluate_vipseg_folder(args.gt_json, args.gt_dir, args.pred, ks=_parse_ks(args.k),
                                 protocol=args.protocol, workers=args.workers, short_videos=args.short_videos,
                                 progress=not args.quiet)
    print(f"VIPSeg ({res['videos']} videos, {res['frames']} frames, protocol {res['protocol']})")
    print(format_results(res, args.per_category))
    if args.json:
        write_json(args.json, jsonable(res))
    return 0
