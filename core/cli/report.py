"""``mammo-robust report SCORES [SCORES ...] --out DIR``: AUC tables, Table 1 and figures from a scores
table, or a comparison of several tables with paired DeLong tests on their shared cases."""

from __future__ import annotations

import argparse

from core.errors import ExplorerError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="AUCs with bootstrap intervals, Table 1 and figures from scores tables (CSV or Parquet); "
        "several tables (or --compare): one figure and paired tests",
        description="One table: image- and breast-level AUCs with 95%% bootstrap intervals, curves of AUC "
        "against each perturbation's parameter, the study's Table 1 (table1.csv, table1.tex) and figures. "
        "Several tables, or --compare: all on one figure, with DeLong's paired test of each series against "
        "a reference series per condition, on the cases both scored (compare_tests.csv).",
    )
    p.add_argument("scores", nargs="+", help="scores tables, .csv or .parquet (core.metrics.SCORE_COLUMNS)")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--target", choices=("malignant", "benign"), default="malignant")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (0: no intervals)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.add_argument("--labels", help="comma-separated names of the tables (default: their file names)")
    p.add_argument(
        "--compare",
        action="store_true",
        help="compare the series (weights) of one table with each other (implied by several tables)",
    )
    p.add_argument(
        "--reference",
        help="reference series of the paired tests: 'MODEL:WEIGHTS' or 'LABEL:MODEL:WEIGHTS' "
        "(default: the first)",
    )
    p.add_argument("--level", choices=("breast", "image"), default="breast", help="level of the comparison")
    p.add_argument(
        "--group",
        choices=("family", "weights"),
        default=None,
        help="curves per weights family (seeds, readers pooled) or per weights; default family for one "
        "table, weights for a comparison",
    )
    p.add_argument(
        "--input-spacing-mm",
        type=float,
        help="pixel spacing of the models' input (mm), for the Nyquist line of the filter panels, when the "
        "weights labels do not name weights here ('demo', 'demo-fast' are read from the demo weights)",
    )
    p.add_argument(
        "--image-pixels",
        type=float,
        help="mean pixel count of the cohort's images, to give matched baselines their noise std",
    )
    p.add_argument(
        "--table1",
        action="append",
        default=[],
        metavar="COLUMN=VALUE",
        help="parameter of a Table 1 column instead of the study's, e.g. 'low-pass=1' (repeatable)",
    )
    p.set_defaults(func=run)


def _context(frame, args, label: str):
    """The report's ScoreContext: weights resolved here, overridden by the options."""
    from core.metrics.context import ModelInput, ScoreContext
    from core.models.resolution import input_spacing

    inputs = {}
    for model, weights in frame[["model", "weights"]].drop_duplicates().itertuples(index=False):
        if args.input_spacing_mm and model in ("gmic", "dmv"):
            inputs[(model, weights)] = ModelInput(
                args.input_spacing_mm, f"--input-spacing-mm {args.input_spacing_mm:g}"
            )
        else:
            inputs[(model, weights)] = ModelInput(*input_spacing(model, weights))
    src = "--image-pixels" if args.image_pixels else ""
    return ScoreContext(
        label=label, model_inputs=inputs, image_pixels=args.image_pixels, image_pixels_source=src
    )


def _table1_parameters(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise ExplorerError(f"--table1 {item!r}: expected COLUMN=NUMBER, e.g. low-pass=1") from None
    return out


def _labels(args) -> list[str]:
    from pathlib import Path

    if args.labels:
        labels = [s.strip() for s in args.labels.split(",")]
        if len(labels) != len(args.scores):
            raise ExplorerError(f"--labels: {len(labels)} names for {len(args.scores)} tables")
    else:
        labels = [Path(s).stem if len(args.scores) == 1 else str(Path(s).name) for s in args.scores]
    if len(set(labels)) != len(labels):
        labels = [f"{i + 1}:{lab}" for i, lab in enumerate(labels)]
    return labels


def _reference(text: str | None, labels: list[str]) -> tuple[str, str, str] | None:
    if not text:
        return None
    parts = text.split(":")
    if len(parts) == 2:
        return (labels[0], parts[0], parts[1])
    if len(parts) == 3:
        return (parts[0], parts[1], parts[2])
    raise ExplorerError(f"--reference {text!r}: expected MODEL:WEIGHTS or LABEL:MODEL:WEIGHTS")


def run(args: argparse.Namespace) -> int:
    from core.metrics import read_scores
    from core.metrics.report import write_comparison, write_report

    labels = _labels(args)
    tables = {
        lab: read_scores(path, target=args.target) for lab, path in zip(labels, args.scores, strict=True)
    }
    if len(tables) == 1 and not args.labels:
        from core.runs import describe_scores

        (only,) = tables
        tables = {describe_scores(tables[only], args.scores[0]): tables[only]}
        labels = list(tables)
    contexts = {lab: _context(df, args, lab) for lab, df in tables.items()}
    if len(tables) == 1:
        ((label, frame),) = tables.items()
        rep = write_report(
            frame,
            args.out,
            target=args.target,
            n_resamples=args.resamples,
            seed=args.seed,
            figures=not args.no_figures,
            context=contexts[label],
            group=args.group or "family",
            table1_parameters=_table1_parameters(args.table1),
        )
        _print(rep, args)
    if len(tables) > 1 or args.compare:
        comp = write_comparison(
            tables if len(tables) > 1 else {"": next(iter(tables.values()))},
            args.out,
            reference=_reference(args.reference, labels if len(tables) > 1 else [""]),
            level=args.level,
            group=args.group or "weights",
            target=args.target,
            n_resamples=args.resamples,
            seed=args.seed,
            contexts=contexts if len(tables) > 1 else {"": next(iter(contexts.values()))},
            figures=not args.no_figures,
        )
        _print(comp, args)
        tests = comp.comparison.tests
        print(f"{len(tests)} paired tests against {comp.comparison.reference or '(none)'}")
    return 0


def _print(rep, args) -> None:
    for path in rep.files:
        print(path)
    for warning in rep.warnings:
        print(f"warning: {warning}")
    if not args.no_figures:
        print(f"PNG figures rendered with: {rep.png_renderer or 'matplotlib'}")
    print(f"{len(rep.auc)} AUC rows in {rep.seconds:.1f} s")
