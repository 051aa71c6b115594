"""Metrics of robustness runs: AUC with bootstrap intervals, DeLong's paired test, ROC curves, image- and
breast-level aggregation, AUC versus severity, and the study's Table 1.

Start from a scores table (:data:`SCORE_COLUMNS`; see :func:`read_scores`), then :func:`auc_table`,
:func:`auc_vs_parameter` (curves in each perturbation's units), :func:`table1_cells` /
:func:`table1_layout` / :func:`table1_latex` (the study's Table 1), :func:`compare_runs` (several runs,
paired DeLong tests on shared cases), :func:`roc_points`, :func:`score_changes`, or everything at once with
:func:`write_report` / :func:`write_comparison` (``mammo-robust report``). ``docs/results.md`` describes
the conventions.
"""

from core.errors import MetricsError
from core.metrics.auc import (
    DEFAULT_RESAMPLES,
    AucEstimate,
    DelongResult,
    auc,
    bootstrap_auc,
    bootstrap_aucs,
    bootstrap_aucs_from_counts,
    bootstrap_aucs_from_draws,
    delong_covariance,
    delong_test,
    delong_variance,
    paired_bootstrap_aucs,
    resample_counts,
    resample_indices,
    roc_curve,
    structural_components,
)
from core.metrics.compare import Comparison, compare_runs, paired_tests
from core.metrics.context import ModelInput, ScoreContext, matched_std
from core.metrics.curves import CURVE_COLUMNS, auc_vs_parameter
from core.metrics.report import Report, write_comparison, write_report
from core.metrics.scores import (
    CONDITION_COLUMNS,
    MATCHED_PREFIX,
    SCORE_COLUMNS,
    UNPERTURBED,
    breast_level,
    conditions,
    image_level,
    level_table,
    matched_name,
    read_scores,
    read_scores_bytes,
    validate_scores,
    weights_family,
)
from core.metrics.study_table import table1_cells
from core.metrics.table1_format import table1_latex, table1_layout
from core.metrics.tables import AUC_COLUMNS, auc_table, auc_vs_severity, roc_points, score_changes, table1

__all__ = [
    "AUC_COLUMNS",
    "CURVE_COLUMNS",
    "Comparison",
    "ModelInput",
    "ScoreContext",
    "auc_vs_parameter",
    "compare_runs",
    "matched_std",
    "paired_tests",
    "read_scores_bytes",
    "table1_cells",
    "table1_latex",
    "table1_layout",
    "write_comparison",
    "CONDITION_COLUMNS",
    "DEFAULT_RESAMPLES",
    "MATCHED_PREFIX",
    "SCORE_COLUMNS",
    "UNPERTURBED",
    "AucEstimate",
    "DelongResult",
    "MetricsError",
    "Report",
    "auc",
    "auc_table",
    "auc_vs_severity",
    "bootstrap_auc",
    "bootstrap_aucs",
    "bootstrap_aucs_from_counts",
    "bootstrap_aucs_from_draws",
    "breast_level",
    "conditions",
    "delong_covariance",
    "delong_test",
    "delong_variance",
    "image_level",
    "level_table",
    "matched_name",
    "paired_bootstrap_aucs",
    "read_scores",
    "resample_counts",
    "resample_indices",
    "roc_curve",
    "roc_points",
    "score_changes",
    "structural_components",
    "table1",
    "validate_scores",
    "weights_family",
    "write_report",
]
