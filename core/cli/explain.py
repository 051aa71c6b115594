"""``mammo-robust explain IMAGE --model gmic --lowpass R --out DIR``: the model's eye for one image.

Writes ``DIR/explain.json`` (GMIC's benign and malignant probabilities, and its K regions as boxes in the
image's own pixels, for the original and the perturbed image; layout in :mod:`core.eye.report`) and PNG
pictures of the saliency maps over the image. The image is read and preprocessed exactly as ``mammo-robust
predict gmic`` does, so the original's probabilities are those of that command.
"""

from __future__ import annotations

import argparse
import sys

from core.cli.perturb import _choice


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "explain",
        help="GMIC's probabilities, saliency maps and regions for an image and a perturbed version",
        description="Run GMIC on one image and on a perturbed version of it and write DIR/explain.json "
        "(benign and malignant probabilities; the K regions GMIC picked as upper-left row, col and size in "
        "the image's own pixels) with PNG pictures of the saliency maps over the image. Without a "
        "perturbation option the study's low-pass at R = 2 cycles/mm is used. Demo weights are trained on "
        "synthetic data only.",
    )
    p.add_argument("image", help="image file (DICOM, PNG, TIFF or JPEG)")
    p.add_argument("--model", default="gmic", help="the model: gmic (DMV has no saliency maps here)")
    p.add_argument(
        "--weights",
        default="demo",
        help="'demo' (default; 0.1 mm), 'demo-fast' (0.3 mm), an official .p file or a checkpoint",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--lowpass", type=float, metavar="R", help="keep frequencies |f| <= R cycles/mm")
    which.add_argument("--highpass", type=float, metavar="R", help="remove frequencies |f| <= R cycles/mm")
    which.add_argument("--noise", type=float, metavar="STD", help="add Gaussian noise, std in model units")
    which.add_argument("--shuffle", type=int, metavar="N", help="shuffle N x N square patches")
    p.add_argument("--kind", choices=("ideal", "gaussian"), default="ideal", help="filter shape (ideal)")
    p.add_argument("--seed", type=int, default=0, help="seed for --noise and --shuffle (default 0)")
    p.add_argument("--view", help="view of a file without DICOM tags, e.g. L-CC")
    p.add_argument("--spacing", nargs=2, type=float, metavar=("ROW_MM", "COL_MM"), help="pixel spacing in mm")
    p.add_argument(
        "--curve",
        action="store_true",
        help="also score the image at the registry's low-pass radii (and high-pass radii with --highpass), "
        "written as 'curve'",
    )
    p.add_argument("--png-size", type=int, default=1024, help="longer side of the pictures (default 1024)")
    p.add_argument(
        "--file-names",
        action="store_true",
        help="name the image by its file name in explain.json (default: a pseudonymous id img-...)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p.set_defaults(func=run)


def _perturbation(args: argparse.Namespace) -> dict:
    from core.perturb import PERTURBATIONS

    if all(getattr(args, k) is None for k in ("lowpass", "highpass", "noise", "shuffle")):
        args.lowpass = 2.0
    name, parameter, _ = _choice(args)
    entry = PERTURBATIONS[name]
    out = {"name": name, "parameter": parameter, "unit": entry.unit}
    if entry.spectral:
        out["kind"] = args.kind
    else:
        out["seed"] = args.seed
    return out


def run(args: argparse.Namespace) -> int:
    from core.cli.predict import _with_view
    from core.eye import curve_radii, look, model_input, resolution_note, score_curve
    from core.eye.report import write_explain
    from core.imaging import load_mammogram
    from core.models import ModelError, create_model
    from core.perturb import PreparedImage
    from core.privacy import file_pseudonym

    if str(args.model).lower() != "gmic":
        raise ModelError(f"explain: --model {args.model!r} is not supported; only gmic has saliency maps")
    if not 64 <= args.png_size <= 4096:
        raise ModelError(f"explain: --png-size must be 64..4096, got {args.png_size}")
    pert = _perturbation(args)
    model = create_model("gmic", weights=args.weights)
    mammogram = _with_view(load_mammogram(args.image, spacing_mm=args.spacing), args.view)
    image = PreparedImage(mammogram.pixels, mammogram.spacing_mm)
    pixels = image.apply(pert["name"], pert["parameter"], kind=args.kind, seed=args.seed)
    original, perturbed = look(model, mammogram, pixels)
    seen = model_input(model, mammogram.spacing_mm)
    note = resolution_note(pert["name"], pert["parameter"], seen)
    curve = None
    if args.curve:
        own = [pert["parameter"]] if pert["name"] == "lowpass" else []
        radii = curve_radii("lowpass", own)
        curve = score_curve(model, mammogram, image, mode="lowpass", radii=radii, kind=args.kind)
        if pert["name"] == "highpass":
            radii = curve_radii("highpass", [pert["parameter"]])
            curve += score_curve(model, mammogram, image, mode="highpass", radii=radii, kind=args.kind)
    path = write_explain(
        args.out, mammogram, pixels, original, perturbed, max_side=args.png_size,
        image_id=args.image if args.file_names else file_pseudonym(args.image),
        model_spec=model.spec, model_input=seen, perturbation=pert, note=note, curve=curve,
    )  # fmt: skip
    print(
        f"original: benign {original.benign:.4f}, malignant {original.malignant:.4f}; perturbed "
        f"({pert['name']} {pert['parameter']:g}): benign {perturbed.benign:.4f}, malignant "
        f"{perturbed.malignant:.4f}"
    )
    print(seen.describe())
    if note:
        print(f"note: {note}")
    print(f"wrote {path} and pictures to {path.parent}", file=sys.stderr)
    return 0
