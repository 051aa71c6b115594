"""``mammo-robust manifest KIND SRC --out manifest.csv``: build (or check) a cohort manifest."""

from __future__ import annotations

import sys

KINDS = ("dicom-folder", "nyu-pickle", "cbis-ddsm", "vindr", "rsna", "check")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "manifest",
        help="build a cohort manifest CSV from a DICOM folder, an NYU exam list, CBIS-DDSM, VinDr or RSNA",
        description="Build the one-row-per-image manifest the app and `mammo-robust run` read, from: "
        "a folder of DICOM files (headers only; pseudonymous ids), an NYU exam-list pickle (plain containers "
        "only), CBIS-DDSM case-description CSVs (a file or a folder of them), VinDr-Mammo "
        "breast-level_annotations.csv or RSNA 2022 train.csv. `check` validates an existing manifest. "
        "Problems are printed as a summary; "
        "the rows without problems are written.",
    )
    p.add_argument("kind", choices=KINDS, help="source format")
    p.add_argument("src", help="source folder or file")
    p.add_argument("--out", help="manifest CSV to write (required except for `check`)")
    p.add_argument("--images", help="folder the source's image paths are relative to (default: next to SRC)")
    p.add_argument(
        "--spacing", nargs=2, type=float, metavar=("ROW_MM", "COL_MM"), help="pixel spacing (nyu-pickle)"
    )
    p.add_argument("--suffix", help="image file suffix (nyu-pickle .png, vindr .dicom, rsna .dcm)")
    p.add_argument("--split", default="test", help="split for sources without one (default: test)")
    p.add_argument(
        "--salt",
        default=None,
        help="site secret for the pseudonymous ids (dicom-folder; default: this installation's random salt)",
    )
    p.add_argument("--all-problems", action="store_true", help="list every problem, not the first 10")
    p.set_defaults(func=run)


def run(args) -> int:
    from core import manifest as m

    if args.kind == "check":
        df = m.read_manifest(args.src)
        problems = df.attrs["problems"]
    else:
        if not args.out:
            print("mammo-robust manifest: error: --out is required", file=sys.stderr)
            return 2
        extra = {"suffix": args.suffix} if args.suffix else {}
        if args.kind == "dicom-folder":
            df, problems = m.manifest_from_dicom_folder(args.src, salt=args.salt, split=args.split)
        elif args.kind == "nyu-pickle":
            spacing = tuple(args.spacing) if args.spacing else None
            df, problems = m.manifest_from_nyu_pickle(
                args.src, args.images, spacing_mm=spacing, split=args.split, **extra
            )
        elif args.kind == "cbis-ddsm":
            df, problems = m.manifest_from_cbis_ddsm(args.src, args.images)
        elif args.kind == "vindr":
            df, problems = m.manifest_from_vindr(args.src, args.images, **extra)
        else:
            df, problems = m.manifest_from_rsna(args.src, args.images, split=args.split, **extra)
        if df.empty:
            print(m.summarize_problems(problems, source=args.src), file=sys.stderr)
            print("mammo-robust manifest: error: no usable image rows; nothing written", file=sys.stderr)
            return 2
        out = m.write_manifest(df, args.out)
        print(f"wrote {out}")
    n_exams = df["exam_id"].nunique()
    print(f"{len(df)} images, {n_exams} exams, splits: {df['split'].value_counts().to_dict()}")
    known = df["label_malignant"].notna()
    n_malignant = int(df.loc[known, "label_malignant"].sum())
    print(f"images of malignant breasts: {n_malignant} of {int(known.sum())} labelled")
    max_lines = len(problems) if args.all_problems else 10
    print(m.summarize_problems(problems, max_lines=max_lines, source=args.src))
    return 0
