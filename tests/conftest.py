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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one torch thread avoids OpenMP spin-waits on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    """Where browser tests leave their screenshots: MAMMO_TEST_ARTIFACTS, else a temporary folder."""
    folder = Path(os.environ.get("MAMMO_TEST_ARTIFACTS", tmp_path_factory.mktemp("tmp") / "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """The tiny cohort's manifest in a private data folder, generated once per module (training tests)."""
    import torch

    from core.phantom import ensure_cohort

    folder = tmp_path_factory.mktemp("data")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MAMMO_ROBUST_DATA", str(folder))
        yield ensure_cohort("tiny")
    torch.set_num_threads(threads)  # training sets one thread
