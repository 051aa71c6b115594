"""``mammo-robust info FILE``: a header summary of one mammogram, without patient identifiers."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="summarise a mammogram file (shape, spacing and its source, laterality, view, bits, ...)",
        description="Read a DICOM, PNG, TIFF or JPEG mammogram and print its geometry, how its values map to "
        "model units (0..4095) and its de-identified header facts. Patient identifiers are never printed.",
    )
    p.add_argument("file", help="image file (DICOM, PNG, TIFF or JPEG)")
    add_spacing_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def add_spacing_arguments(p: argparse.ArgumentParser) -> None:
    """``--spacing ROW_MM COL_MM`` and ``--correct-magnification``, shared with ``perturb``."""
    p.add_argument(
        "--spacing",
        nargs=2,
        type=float,
        metavar=("ROW_MM", "COL_MM"),
        help="pixel spacing in mm, used when the file records none (DICOM spacing tags take precedence)",
    )
    p.add_argument(
        "--correct-magnification",
        action="store_true",
        help="divide a DICOM ImagerPixelSpacing by EstimatedRadiographicMagnificationFactor",
    )


def summary(mammogram) -> dict[str, str]:
    """Ordered, printable facts about a loaded :class:`~core.imaging.Mammogram`."""
    meta = mammogram.metadata
    rows, cols = mammogram.pixels.shape
    dy, dx = mammogram.spacing_mm
    pixels = mammogram.pixels
    out = {
        "file": mammogram.source_name,
        "format": meta.get("format", "-"),
        "shape": f"{rows} x {cols} pixels (rows x cols)",
        "spacing": f"{dy:.6g} x {dx:.6g} mm (row x col)" + (" ASSUMED" if mammogram.spacing_assumed else ""),
        "spacing source": mammogram.spacing_source,
        "size": f"{rows * dy:.1f} x {cols * dx:.1f} mm",
        "laterality": _with_source(mammogram.laterality, meta.get("laterality_source")),
        "view": _with_source(mammogram.view, meta.get("view_source")),
        "bits stored": meta.get("BitsStored", meta.get("source_bits", "-")),
        "photometric": meta.get("PhotometricInterpretation", "-"),
        "presentation intent": meta.get("PresentationIntentType", "-"),
        "transfer syntax": meta.get("transfer_syntax", "-"),
        "stored range": f"{meta.get('stored_min', '?')}..{meta.get('stored_max', '?')}",
        "value rule": meta.get("value_rule", "-"),
        "model range": f"{pixels.min():.1f}..{pixels.max():.1f} (mean {pixels.mean(dtype='float64'):.1f})",
        "window": "-"
        if mammogram.window is None
        else "centre {:.1f}, width {:.1f} (model units)".format(*mammogram.window),
        "manufacturer": " ".join(
            v for v in (meta.get("Manufacturer"), meta.get("ManufacturerModelName")) if v
        )
        or "-",
    }
    if meta.get("for_processing") == "yes":
        out["presentation intent"] += " (raw detector data)"
    if meta.get("notes"):
        out["notes"] = meta["notes"]
    return out


def _with_source(value: str | None, source: str | None) -> str:
    if value is None:
        return "unknown"
    return f"{value} (from {source})" if source else value


def run(args: argparse.Namespace) -> int:
    from core.imaging import load_mammogram

    mammogram = load_mammogram(
        args.file, spacing_mm=args.spacing, correct_magnification=args.correct_magnification
    )
    facts = summary(mammogram)
    if args.json:
        print(json.dumps(facts, indent=2))
    else:
        width = max(len(k) for k in facts)
        for key, value in facts.items():
            print(f"{key + ':':<{width + 1}} {value}")
    return 0
