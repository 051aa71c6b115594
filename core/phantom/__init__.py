"""The built-in synthetic screening cohort (four-view exams as DICOM files, with ground truth).

Public entry points: :func:`ensure_cohort` (cached, generated on first use) and :func:`generate_cohort`.
See ``docs/cohort.md`` for what the phantom models and how it compares with real mammograms.
"""

from core.phantom.cohort import (
    FINDINGS_COLUMNS,
    GENERATOR_VERSION,
    PRESETS,
    CohortPreset,
    ExamSpec,
    PhantomError,
    cohort_dir,
    cohort_ready,
    ensure_cohort,
    generate_cohort,
    render_view,
    sample_exams,
)

__all__ = [
    "FINDINGS_COLUMNS",
    "GENERATOR_VERSION",
    "PRESETS",
    "CohortPreset",
    "ExamSpec",
    "PhantomError",
    "cohort_dir",
    "cohort_ready",
    "ensure_cohort",
    "generate_cohort",
    "render_view",
    "sample_exams",
]
