"""``vidseg eval davis``: J / F / J&F (and best-effort T) of a DAVIS results folder."""

from __future__ import annotations

import argparse

from vidseg.cli.argtypes import add_quiet, positive_int

HELP = "Score DAVIS results (<results>/<sequence>/<frame>.png, indexed object ids) as davis2017-evaluation."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--davis", required=True, help="DAVIS root with Annotations/480p and ImageSets/")
    parser.add_argument("--results", required=True, help="results folder <sequence>/<frame>.png")
    parser.add_argument("--task", default="semi-supervised", choices=["semi-supervised", "unsupervised"],
                        help="semi-supervised (first/last frame excluded) or unsupervised (Hungarian matching)")
    parser.add_argument("--year", default="2017", choices=["2017", "2016"],
                        help="2017: multi-object; 2016: objects merged into one foreground mask")
    parser.add_argument("--set", default="val", help="image set ImageSets/<year>/<set>.txt")
    parser.add_argument("--resolution", default="480p", help="annotation resolution folder")
    parser.add_argument("--protocol", default="official", choices=["official", "strict"],
                        help="official: davis2017-evaluation numbers (quirks kept); strict: correct decay bins, "
                             "per-object rows in GT order, extra result folders rejected")
    parser.add_argument("--workers", type=positive_int, default=1, help="worker processes (results do not depend on it)")
    parser.add_argument("--json", metavar="FILE", help="write the results (fractions) to this JSON file")
    parser.add_argument("--csv-dir", metavar="DIR",
                        help="also write global_results-<set>.csv and per-sequence_results-<set>.csv (the official "
                             "script's files) into DIR; none are written otherwise. Giving the results folder puts "
                             "them where the official script looks, and it then prints these numbers as "
                             "'precomputed results' instead of computing its own")
    parser.add_argument("--no-csv", action="store_true", help=argparse.SUPPRESS)  # the default now; kept as alias
    parser.add_argument("--with-t", action="store_true",
                        help="also compute temporal stability T over the eval_t sequences (best effort, slow)")
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from vidseg.metrics.davis_folder import GLOBAL_COLUMNS, evaluate_davis_folder
    from vidseg.tables import format_table, jsonable, write_json

    csv_dir = None if args.no_csv else args.csv_dir
    res = evaluate_davis_folder(args.davis, args.results, task=args.task, year=args.year, subset=args.set,
                                protocol=args.protocol, resolution=args.resolution, workers=args.workers,
                                with_t=args.with_t, csv_dir=csv_dir, progress=not args.quiet)
    cols = list(GLOBAL_COLUMNS) + (["T"] if "T" in res else [])
    print(f"DAVIS {args.year} {args.set} ({args.task}): {res['num_objects']} objects, protocol {res['protocol']}")
    print(format_table([[100.0 * res[c] for c in cols]], [f"{c} (%)" for c in cols]))
    if args.json:
        write_json(args.json, jsonable(res))
    return 0
