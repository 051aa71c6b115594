"""``mammo-robust predict {gmic,dmv}``: scores of a model for image files or a cohort manifest, as CSV."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="benign/malignant probabilities of GMIC (per image) or DMV (per breast) as CSV",
        description="Run GMIC or DMV with the NYU preprocessing on image files or on a cohort manifest and "
        "write the probabilities as CSV (GMIC: one row per image; DMV: one row per exam, columns "
        "left_benign, right_benign, left_malignant, right_malignant). Demo weights are trained on synthetic "
        "data only.",
    )
    # One positional list (argparse cannot interleave a second, optional positional with options).
    p.add_argument(
        "arch_and_files",
        nargs="+",
        metavar="{gmic,dmv} [FILE ...]",
        help="the model, then image files before any option (DMV: four files, L-CC R-CC L-MLO R-MLO)",
    )
    p.add_argument(
        "--weights",
        action="append",
        help="'demo' (default; 0.1 mm), 'demo-fast' (0.3 mm), an official .p file or a project checkpoint; "
        "repeat for a GMIC ensemble",
    )
    p.add_argument("--manifest", help="cohort manifest CSV instead of files")
    p.add_argument("--split", help="only rows of this manifest split (train, val, test)")
    p.add_argument("--view", help="view of a single file without DICOM tags, e.g. L-CC")
    p.add_argument("--spacing", nargs=2, type=float, metavar=("ROW_MM", "COL_MM"), help="pixel spacing in mm")
    p.add_argument("--samples", type=int, default=10, help="DMV augmented windows per view (default 10)")
    p.add_argument("--seed", type=int, default=0, help="DMV augmentation seed")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--out", help="CSV file to write (default: standard output)")
    p.add_argument(
        "--exact", action="store_true",
        help="the exact inference path (contiguous float32, what the official code computes) instead of the "
        "fast default (channels_last, inference_mode; within 1e-5)",
    )  # fmt: skip
    p.add_argument(
        "--file-names",
        action="store_true",
        help="use the file names as image_id (they may carry patient names; default: pseudonymous ids "
        "img-..., one per file, rows in the order of the files)",
    )
    p.set_defaults(func=run)


def _with_view(m, view: str | None):
    from dataclasses import replace

    from core.models import ModelError

    if view is None:
        return m
    parts = view.upper().split("-")
    if len(parts) != 2 or parts[0] not in ("L", "R") or parts[1] not in ("CC", "MLO"):
        raise ModelError(f"--view must look like L-CC, R-MLO; got {view!r}")
    return replace(m, laterality=parts[0], view=parts[1])


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from core.imaging import load_mammogram
    from core.models import ModelError, create_model
    from core.models.forward import DMV_LABELS
    from core.models.predict import predict_dmv, predict_gmic

    args.arch, args.files = args.arch_and_files[0].lower(), args.arch_and_files[1:]
    if args.arch not in ("gmic", "dmv"):
        raise ModelError(f"unknown model {args.arch!r}; choose gmic or dmv")
    weights = args.weights or ["demo"]
    if args.arch == "dmv" and len(weights) != 1:
        raise ModelError("DMV takes one --weights (no ensemble)")
    models = [create_model(args.arch, weights=w, fast=not args.exact) for w in weights]
    if bool(args.manifest) == bool(args.files):
        raise ModelError("give either image files or --manifest")
    spacing = tuple(args.spacing) if args.spacing else None

    if args.manifest:
        from core.manifest import read_manifest

        df = read_manifest(args.manifest)
        if args.split:
            df = df[df["split"] == args.split]
            if df.empty:
                raise ModelError(f"{args.manifest}: no rows in split {args.split!r}")
        rows = df.to_dict("records")

        def load(row):
            sp = (row["spacing_row_mm"], row["spacing_col_mm"])
            sp = None if any(pd.isna(v) for v in sp) else tuple(float(v) for v in sp)
            m = load_mammogram(row["path"], spacing_mm=sp or spacing)
            return _with_view(m, f"{row['laterality']}-{row['view']}")

    else:
        from core.privacy import file_pseudonym

        rows = [{"image_id": f if args.file_names else file_pseudonym(f), "path": f} for f in args.files]

        def load(row):
            return _with_view(load_mammogram(row["path"], spacing_mm=spacing), args.view)

    if args.arch == "gmic":
        images = [load(r) for r in rows]
        probs = predict_gmic(models if len(models) > 1 else models[0], images, batch_size=args.batch_size)
        out = pd.DataFrame({"image_id": [r["image_id"] for r in rows]})
        for key in ("exam_id", "laterality", "view", "label_benign", "label_malignant"):
            if rows and key in rows[0]:
                out[key] = [r[key] for r in rows]
        out["benign_pred"], out["malignant_pred"] = probs[:, 0], probs[:, 1]
    else:
        views = ("L-CC", "R-CC", "L-MLO", "R-MLO")
        if args.files:
            if len(rows) != 4:
                raise ModelError("DMV needs four files in the order L-CC R-CC L-MLO R-MLO")
            exams = {"exam": {v: _with_view(load(r), v) for v, r in zip(views, rows, strict=True)}}
        else:
            exams = {}
            for r in rows:
                exams.setdefault(r["exam_id"], {})[f"{r['laterality']}-{r['view']}"] = r
            exams = {e: {v: load(r) for v, r in ex.items()} for e, ex in exams.items()}
        probs = predict_dmv(models[0], list(exams.values()), samples=args.samples, seed=args.seed)
        out = pd.DataFrame(probs, columns=list(DMV_LABELS))
        out.insert(0, "exam_id", list(exams))
    if args.manifest:
        for line in _auc_lines(args.arch, pd.DataFrame(rows), out):
            print(line, file=sys.stderr)
    text = out.to_csv(index=False, float_format="%.6f")
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
        print(f"wrote {len(out)} rows to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _auc_lines(arch: str, rows, out) -> list[str]:
    """With a labelled manifest, the malignant AUC of the predictions with a 95 % bootstrap interval: per
    image (GMIC) and per breast (GMIC: the mean of the breast's images; DMV: its breast outputs). Nothing when
    the rows carry no malignancy labels or one class is missing."""
    import pandas as pd

    from core.errors import MetricsError
    from core.metrics import bootstrap_auc

    if "label_malignant" not in rows or rows["label_malignant"].isna().any() or "exam_id" not in rows:
        return []
    truth = rows.groupby(["exam_id", "laterality"])["label_malignant"].max()
    if arch == "gmic":
        units = {"image": (out["malignant_pred"], rows["label_malignant"])}
        breast = out.groupby(["exam_id", "laterality"])["malignant_pred"].mean()
    else:
        per_side = out.set_index("exam_id")[["left_malignant", "right_malignant"]]
        per_side.columns = ["L", "R"]
        breast = per_side.stack()
        units = {}
    breast = breast[breast.index.isin(truth.index)]
    units["breast"] = (breast, truth.loc[breast.index])
    lines = []
    for level, (scores, labels) in units.items():
        try:
            est = bootstrap_auc(pd.to_numeric(scores).to_numpy(), labels.astype(int).to_numpy())
        except MetricsError:
            continue
        lines.append(
            f"malignant AUC per {level}: {est.auc:.4f} [{est.ci_low:.3f}, {est.ci_high:.3f}] "
            f"({est.n_pos} malignant, {est.n_neg} other; 95 % bootstrap interval)"
        )
    return lines
