"""``mammo-robust distributions SOURCE --out DIR``: the score distributions of positive and other cases
under each condition of a run (or a scores table), to see why an AUC moved or inverted."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "distributions",
        help="score distributions of malignant and other breasts per condition of a run (CSV and a figure)",
        description="For a finished run (its id) or a scores table (.csv/.parquet): per condition, the "
        "count, median, quartiles and mean of the positive cases' scores and of the others', their median "
        "shift against the unperturbed condition, and the AUC with its 95%% bootstrap interval "
        "(distributions_<level>.csv); every case's score, change and rank (cases_<level>.csv); and a "
        "figure with one panel per condition (distributions_<level>.png). Breast level (the mean of a "
        "breast's views, as the run's breast AUC) by default. With a synthetic cohort's findings.csv (found "
        "beside a run's manifest, or --findings) the cases are also split by the kinds of finding they hold.",
    )
    p.add_argument("source", help="a run id (mammo-robust run --list) or a scores table (.csv/.parquet)")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--level", choices=("breast", "image"), default="breast")
    p.add_argument("--target", choices=("malignant", "benign"), default="malignant")
    p.add_argument(
        "--condition",
        action="append",
        default=[],
        metavar="NAME[:SEVERITY]",
        help="keep this perturbation (e.g. noise, matched-shuffle, lowpass:2); repeatable; the unperturbed "
        "condition is always kept; default: every condition",
    )
    p.add_argument("--findings", help="a findings.csv that splits the cases by finding kind")
    p.add_argument("--no-findings", action="store_true", help="do not split the cases by finding kind")
    p.add_argument("--scale", choices=("auto", "linear", "logit"), default="auto", help="score axis")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (0: no intervals)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.set_defaults(func=run)


def _load(source: str, findings: str | None, no_findings: bool):
    """(scores, findings table or None, a label) of a run id or a scores file."""
    import pandas as pd

    from core.metrics import read_scores, validate_scores

    path = Path(source)
    found = None
    if path.suffix.lower() in (".csv", ".parquet", ".pq") or path.is_file():
        scores, label = read_scores(path), path.name
    else:
        from core.runs import RunStore
        from core.runs.cohort import findings_path

        store = RunStore.open(source)
        config = store.config()
        scores = validate_scores(store.scores(), source=f"run {source}")
        label = f"run {source}" + (f" ({config.name})" if config.name else "")
        found = findings_path(config)
    if findings:
        found = Path(findings)
    if no_findings or found is None:
        return scores, None, label
    try:
        table = pd.read_csv(found, dtype={"exam_id": str, "laterality": str})
    except (OSError, ValueError) as exc:
        from core.errors import MetricsError

        raise MetricsError(f"{found}: cannot read the findings table ({exc})") from exc
    return scores, table, label


def run(args: argparse.Namespace) -> int:
    from core.metrics.distribution_report import write_distributions
    from core.metrics.distributions import OTHER, breast_findings

    scores, findings, label = _load(args.source, args.findings, args.no_findings)
    table, files = write_distributions(
        scores,
        args.out,
        level=args.level,
        target=args.target,
        subgroups=breast_findings(findings) if findings is not None else None,
        conditions=args.condition,
        n_resamples=args.resamples,
        seed=args.seed,
        scale=args.scale,
        label=label,
    )
    for f in files:
        print(f)
    for _, grp in table.groupby(
        ["model", "weights", "perturbation", "severity", "parameter", "seed"], sort=False
    ):
        pos, neg = grp[grp["group"] == args.target], grp[grp["group"] == OTHER]
        if pos.empty or neg.empty:
            continue
        p, n = pos.iloc[0], neg.iloc[0]
        print(
            f"{p.perturbation} s{p.severity} ({p.parameter:g}): AUC {p.auc_vs_other:.3f}; median "
            f"{args.target} {p['median']:.3g} ({p.median_shift:+.3g}), "
            f"{OTHER} {n['median']:.3g} ({n.median_shift:+.3g})"
        )
    return 0
