"""``mammo-robust report SCORES --out DIR``: AUC tables, Table 1 and figures from a scores table."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="AUCs with bootstrap intervals, Table 1 and figures from a scores table (CSV or Parquet)",
        description="Compute image- and breast-level AUCs with 95%% bootstrap intervals, AUC-versus-severity "
        "curves, the study's Table 1 and figures from a long scores table.",
    )
    p.add_argument(
        "scores", help="scores table, .csv or .parquet, with the columns of core.metrics.SCORE_COLUMNS"
    )
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--target", choices=("malignant", "benign"), default="malignant")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (0: no intervals)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.metrics import write_report

    rep = write_report(
        args.scores,
        args.out,
        target=args.target,
        n_resamples=args.resamples,
        seed=args.seed,
        figures=not args.no_figures,
    )
    for path in rep.files:
        print(path)
    if not args.no_figures:
        print(f"PNG figures rendered with: {rep.png_renderer or 'none (install matplotlib or kaleido)'}")
    print(f"{len(rep.auc)} AUC rows in {rep.seconds:.1f} s")
    return 0
