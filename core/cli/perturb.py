"""``mammo-robust perturb FILE --lowpass R --out OUT``: write one perturbed mammogram as DICOM or PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.info import add_spacing_arguments

DICOM_SUFFIXES = (".dcm", ".dicom")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "perturb",
        help="apply one of the study's perturbations to a mammogram and save it (DICOM or 16-bit PNG)",
        description="Apply a low-pass or high-pass filter (radius in cycles/mm on the breast), additive "
        "Gaussian noise (std in model units, 0..4095 scale) or patch shuffling to one mammogram and write "
        "the result. OUT ending in .dcm: a 12-bit DICOM keeping rows, columns, spacing, laterality and view, "
        "with new UIDs and a DerivationDescription; .png: a 16-bit PNG of model units. Values are rounded "
        "and clipped to 0..4095 on writing.",
    )
    p.add_argument("file", help="image file (DICOM, PNG, TIFF or JPEG)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--lowpass", type=float, metavar="R", help="keep frequencies |f| <= R cycles/mm")
    which.add_argument("--highpass", type=float, metavar="R", help="remove frequencies |f| <= R cycles/mm")
    which.add_argument("--noise", type=float, metavar="STD", help="add Gaussian noise, std in model units")
    which.add_argument("--shuffle", type=int, metavar="GRID", help="shuffle GRID x GRID square patches")
    p.add_argument(
        "--kind", choices=("ideal", "gaussian"), default=None, help="filter shape (default: ideal)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for --noise and --shuffle (default 0)")
    p.add_argument(
        "--offset",
        type=float,
        default=0.0,
        help="model units added before writing (e.g. 2048 keeps a zero-mean high-pass image off the clip)",
    )
    add_spacing_arguments(p)
    p.add_argument("--out", required=True, help="output file, .dcm or .png")
    p.set_defaults(func=run)


def _choice(args: argparse.Namespace) -> tuple[str, float, str]:
    """(registry name, parameter, description) from the mutually exclusive options."""
    if args.lowpass is not None:
        return "lowpass", args.lowpass, f"radius {args.lowpass:g} cycles/mm"
    if args.highpass is not None:
        return "highpass", args.highpass, f"radius {args.highpass:g} cycles/mm"
    if args.noise is not None:
        return "noise", args.noise, f"std {args.noise:g} (0..4095 scale), seed {args.seed}"
    return "shuffle", float(args.shuffle), f"{args.shuffle} x {args.shuffle} patches, seed {args.seed}"


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from core.imaging import MammogramError, load_mammogram, save_dicom, save_png
    from core.perturb import PERTURBATIONS, PreparedImage

    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in DICOM_SUFFIXES + (".png",):
        raise MammogramError(f"{out}: the output must end in .dcm or .png")
    if not out.parent.is_dir():
        raise MammogramError(f"{out}: the folder {out.parent} does not exist")
    name, parameter, what = _choice(args)
    if args.kind is not None and not PERTURBATIONS[name].spectral:
        raise MammogramError(f"{args.file}: --kind applies to --lowpass and --highpass only")
    if not np.isfinite(args.offset):
        raise MammogramError(f"{args.file}: --offset must be a finite number")
    kind = args.kind or "ideal"

    mammogram = load_mammogram(
        args.file, spacing_mm=args.spacing, correct_magnification=args.correct_magnification
    )
    image = PreparedImage(mammogram.pixels, mammogram.spacing_mm)
    pixels = image.apply(name, parameter, kind=kind, seed=args.seed)
    if PERTURBATIONS[name].spectral:
        what += f" ({kind})"
    if args.offset:
        pixels = pixels + np.float32(args.offset)
        what += f", offset {args.offset:+g}"
    dy, dx = mammogram.spacing_mm
    derivation = (
        f"mammo-robust perturb: {name} {what}; spacing {dy:.6g} x {dx:.6g} mm ({mammogram.spacing_source})"
    )
    clipped = int(np.count_nonzero((pixels < 0) | (pixels > 4095)))
    if suffix == ".png":
        save_png(pixels, out)
    else:
        save_dicom(
            pixels, out, template=mammogram, derivation=derivation, series_description=f"{name} {what}"
        )
    rows, cols = pixels.shape
    print(f"wrote {out} ({rows} x {cols}, {name} {what})")
    if clipped:
        share = 100.0 * clipped / pixels.size
        hint = " (a high-pass image is zero-mean: try --offset 2048)" if name == "highpass" else ""
        print(
            f"warning: {clipped} pixels ({share:.2f}%) were clipped to 0..4095 on writing{hint}",
            file=sys.stderr,
        )
    return 0
