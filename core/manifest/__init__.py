"""Cohort manifests: one CSV format for every cohort, and builders from common data-set layouts.

See :mod:`core.manifest.schema` for the format. Builders, one module per source layout
(``dicom_folder``, ``nyu_pickle``, ``cbis_ddsm``, ``vindr``, ``rsna``; shared parts in ``builders``), return
``(DataFrame, list[Problem])``.
"""

from core.manifest.builders import harmonize_breast_labels
from core.manifest.cbis_ddsm import manifest_from_cbis_ddsm
from core.manifest.dicom_folder import manifest_from_dicom_folder
from core.manifest.nyu_pickle import load_plain_pickle, manifest_from_nyu_pickle
from core.manifest.rsna import manifest_from_rsna
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
from core.manifest.vindr import manifest_from_vindr, vindr_labels
from core.privacy import pseudonym

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
