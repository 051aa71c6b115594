"""The cohort of a run: its manifest as a DataFrame, for the worker and for the pages that show a run's
images (no worker machinery imported)."""

from __future__ import annotations

from typing import Any

from core.errors import RunError
from core.runs.config import RunConfig


def resolve_manifest(config: RunConfig) -> Any:
    """The manifest DataFrame of a run (a built-in cohort name is generated on first use), restricted to the
    run's split.

    Raises
    ------
    RunError
        If the split holds no image (a manifest that cannot be read raises its ``ManifestError``).
    """
    from core.manifest import read_manifest
    from core.phantom.cohort import PRESETS, ensure_cohort

    path = ensure_cohort(config.manifest) if config.manifest in PRESETS else config.manifest
    df = read_manifest(path)
    if config.split is not None:
        df = df[df["split"] == config.split]
        if df.empty:
            raise RunError(f"{path}: no image in split {config.split!r}")
    return df
