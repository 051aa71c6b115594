"""Shared fixtures. Tests of the real NYU samples skip with a reason when the folder is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("OMP_NUM_THREADS", "2")

# In CI (CI=true) property tests draw the same examples every run, so a red CI is reproducible;
# locally they explore new examples each run.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def nyu_samples() -> Path:
    from core.paths import nyu_samples_dir

    folder = nyu_samples_dir()
    if not (folder / "dmv_1_R_CC.png").is_file():
        pytest.skip(f"real NYU samples not found in {folder} (set MAMMO_NYU_SAMPLES to their folder)")
    return folder


@pytest.fixture()
def data_dir(tmp_path, monkeypatch) -> Path:
    """A private MAMMO_ROBUST_DATA folder for the test."""
    folder = tmp_path / "data"
    monkeypatch.setenv("MAMMO_ROBUST_DATA", str(folder))
    return folder
