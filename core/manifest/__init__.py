"""Cohort manifests: one CSV format for every cohort, and builders from common data-set layouts.

See :mod:`core.manifest.schema` for the format. Builders return ``(DataFrame, list[Problem])``.
"""

from core.manifest.builders import (
    harmonize_breast_labels,
    load_plain_pickle,
    manifest_from_cbis_ddsm,
    manifest_from_dicom_folder,
    manifest_from_nyu_pickle,
    manifest_from_rsna,
    manifest_from_vindr,
    pseudonym,
    vindr_labels,
)
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
    "harmonize_breast_labels",
    "load_plain_pickle",
    "manifest_from_cbis_ddsm",
    "manifest_from_dicom_folder",
    "manifest_from_nyu_pickle",
    "manifest_from_rsna",
    "manifest_from_vindr",
    "pseudonym",
    "vindr_labels",
    "read_manifest",
    "summarize_problems",
    "validate_manifest",
    "write_manifest",
]
