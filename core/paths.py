"""Where the project keeps generated data, and where the real sample images are read from.

Environment variables (all optional):

``MAMMO_ROBUST_DATA``
    Folder for generated data: synthetic cohorts, run stores, exports. Default: ``~/.cache/mammo-robust``.
``MAMMO_NYU_SAMPLES``
    Folder holding the eight real NYU sample mammograms. Default: ``../shared/data/nyu-samples`` next to the
    repository checkout.
``MAMMO_PERCEPTION_SCORES``
    The published perception-comparison scores CSV.
    Default: ``../shared/data/perception-comparison/scores.csv``.

Also read elsewhere: ``MAMMO_ALLOWED_ROOTS`` (folders the app may read, :mod:`core.access`),
``MAMMO_DECODE_PROCESSES`` and ``MAMMO_DECODE_TIMEOUT_S`` (decode processes, :mod:`core.imaging.sandbox`).
The data folder also holds the installation's pseudonym salt (:mod:`core.privacy`).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"


def data_dir() -> Path:
    """Folder for generated data (created if missing)."""
    path = Path(os.environ.get("MAMMO_ROBUST_DATA", Path.home() / ".cache" / "mammo-robust")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def nyu_samples_dir() -> Path:
    """Folder of the real NYU sample images (may not exist)."""
    default = REPO_ROOT.parent / "shared" / "data" / "nyu-samples"
    return Path(os.environ.get("MAMMO_NYU_SAMPLES", default)).expanduser()


def perception_scores_csv() -> Path:
    """The published perception-comparison scores (may not exist)."""
    default = REPO_ROOT.parent / "shared" / "data" / "perception-comparison" / "scores.csv"
    return Path(os.environ.get("MAMMO_PERCEPTION_SCORES", default)).expanduser()
