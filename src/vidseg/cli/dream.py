"""``vidseg dream FRAME MASK --out DIR``: lucid-dream image/mask pairs of one annotated frame + a contact sheet."""

from __future__ import annotations

import argparse

from vidseg.cli.argtypes import nonnegative_int, positive_int

HELP = ("Lucid dreaming (STCNN online stage): synthesise image/mask pairs from one frame and its object mask, "
        "write them and a contact sheet.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("frame", help="the annotated frame (JPEG/PNG)")
    parser.add_argument("mask", help="its object mask: DAVIS indexed PNG (ids) or a binary greyscale PNG")
    parser.add_argument("--out", required=True, help="folder for NNN.jpg / NNN.png pairs and sheet.png")
    parser.add_argument("--pairs", type=positive_int, default=100, help="number of pairs (official: 100)")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed; the same seed gives the same pairs")
    parser.add_argument("--sheet-pairs", type=nonnegative_int, default=11, help="pairs shown on the contact sheet")
    parser.add_argument("--columns", type=positive_int, default=4, help="tiles per row of the contact sheet")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from vidseg.data.davis import write_davis_mask
    from vidseg.data.lucid_dream import LucidDreamer, dream_contact_sheet
    from vidseg.data.stcnn_data import read_mask
    from vidseg.errors import DataError
    from vidseg.fileio import read_image

    image = read_image(args.frame, "RGB")
    try:
        with Image.open(args.mask) as img:
            indexed = img.mode == "P"
    except OSError as exc:
        raise DataError(args.mask, f"unreadable mask ({exc.strerror or type(exc).__name__})") from None
    ids = read_image(args.mask) if indexed else read_mask(Path(args.mask))
    if args.pairs < 1:
        raise DataError(args.out, "--pairs must be at least 1")
    dreamer = LucidDreamer(image, np.asarray(ids, dtype=np.uint8), name=args.mask)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shown = []
    for i in range(args.pairs):
        img, mask = dreamer.sample(args.seed, i)
        Image.fromarray(img).save(out / f"{i:03d}.jpg", quality=95)
        write_davis_mask(out / f"{i:03d}.png", mask)
        if i < args.sheet_pairs:
            shown.append((img, mask))
    Image.fromarray(dream_contact_sheet(image, dreamer.mask, shown, columns=args.columns)).save(out / "sheet.png")
    print(f"wrote {args.pairs} pairs and the contact sheet to {out}")
    return 0
