"""Cohort manifests: one CSV format for every cohort, and builders from common data-set layouts.

See :mod:`core.manifest.schema` for the format. Builders return ``(DataFrame, list[Problem])``.
"""

from core.manifest.schema import (
    COLUMNS,
    EXAM_VIEWS,
    LATERALITIES,
    SPLITS,
    VIEWS,
    ManifestError,
    Problem,
    check_exams,
    read_manifest,
    summarize_problems,
    validate_manifest,
    write_manifest,
)

__all__ = [
    "COLUMNS",
    "EXAM_VIEWS",
    "LATERALITIES",
    "SPLITS",
    "VIEWS",
    "ManifestError",
    "Problem",
    "check_exams",
    "read_manifest",
    "summarize_problems",
    "validate_manifest",
    "write_manifest",
]
