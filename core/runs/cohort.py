"""The cohort of a run: its manifest as a DataFrame, for the worker and for the pages that show a run's
images (no worker machinery imported)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.errors import RunError
from core.runs.config import RunConfig


def resolve_manifest(config: RunConfig, *, roots: Iterable[str | Path] | None = None) -> Any:
    """The manifest DataFrame of a run (a built-in cohort name is generated on first use), restricted to the
    run's split.

    Parameters
    ----------
    roots : iterable of path, optional
        Allowed folders (:func:`core.access.allowed_roots`; what a run started from the app records): the
        manifest file must lie inside them and rows that lead outside are dropped. None (the library and
        command line): no restriction.

    Raises
    ------
    RunError
        If the split holds no image (a manifest that cannot be read raises its ``ManifestError``, one
        outside ``roots`` an ``AccessError``).
    """
    from core.manifest import read_manifest
    from core.phantom.cohort import PRESETS, ensure_cohort

    if config.manifest in PRESETS:
        path = ensure_cohort(config.manifest)
    else:
        path = config.manifest
        if roots is not None:
            from core.access import check_allowed

            check_allowed(path, roots)
    df = read_manifest(path, roots=list(roots) if roots is not None else None)
    if config.split is not None:
        df = df[df["split"] == config.split]
        if df.empty:
            raise RunError(f"{path}: no image in split {config.split!r}")
    return df


def findings_path(config: RunConfig) -> Path | None:
    """The ``findings.csv`` beside a run's manifest (synthetic cohorts have one, ``docs/cohort.md``), or
    None when there is none; a built-in cohort is never generated just to look."""
    from core.phantom.cohort import PRESETS, cohort_dir

    folder = cohort_dir(config.manifest) if config.manifest in PRESETS else Path(config.manifest).parent
    path = folder / "findings.csv"
    return path if path.is_file() else None
