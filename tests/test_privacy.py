"""Identifiers stay out: no header value on stderr or in logs, pseudonyms keyed by a per-installation salt."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from core.imaging import load_mammogram, save_png
from core.privacy import SALT_FILE, file_pseudonym, installation_salt, pseudonym, study_key
from tests.test_dicom import make_dataset, ramp, write

REPO = Path(__file__).resolve().parent.parent
NAME_MARKER = "ZZPRIVATE^MARKER"
UID_MARKER = "1.2.840.99999.7.MARKER.x"  # letters: an invalid UI value, which pydicom warns about, quoting it


def _marked_dicom(tmp_path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # writing it warns too; only reading is under test
        ds = make_dataset(ramp(), PatientName=NAME_MARKER, PatientID="PID-MARKER-42")
        ds.StudyInstanceUID = UID_MARKER
        ds.SpecificCharacterSet = "ISO_IR 999"  # unknown: pydicom warns while decoding text values
        return write(ds, tmp_path / "marked.dcm")


def _leaks(text: str) -> list[str]:
    return [m for m in (NAME_MARKER, "ZZPRIVATE", UID_MARKER, "MARKER.x", "PID-MARKER") if m in text]


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_reading_a_dicom_prints_and_logs_no_header_value(tmp_path, capfd):
    path = _marked_dicom(tmp_path)
    pydicom_logger, handler = logging.getLogger("pydicom"), _Capture()
    pydicom_logger.addHandler(handler)
    old_level = pydicom_logger.level
    pydicom_logger.setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # every warning raised is recorded, whatever the filters say
            mammogram = load_mammogram(path)
            _ = repr(mammogram.metadata)
    finally:
        pydicom_logger.removeHandler(handler)
        pydicom_logger.setLevel(old_level)
    out, err = capfd.readouterr()
    assert not _leaks(out + err)
    assert not _leaks(" ".join(str(w.message) for w in caught))
    assert not _leaks(" ".join(handler.messages))
    assert not _leaks(repr(mammogram.metadata)) and "study_key" in mammogram.metadata


def test_the_command_line_prints_no_header_value(tmp_path):
    path = _marked_dicom(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MAMMO_ROBUST_DATA": str(tmp_path / "data")}
    for argv in (["info", str(path)], ["info", str(path), "--json"]):
        proc = subprocess.run(
            [sys.executable, "-m", "core.cli", *argv], capture_output=True, text=True, env=env, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        assert not _leaks(proc.stdout + proc.stderr)


def test_the_salt_is_random_per_installation_private_and_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMMO_ROBUST_DATA", str(tmp_path / "a"))
    salt = installation_salt()
    path = tmp_path / "a" / SALT_FILE
    assert len(salt) == 32 and path.read_bytes() == salt
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = pseudonym("PATIENT-1", prefix="P-")
    assert pseudonym("PATIENT-1", prefix="P-") == first and first.startswith("P-") and len(first) == 14
    key = study_key("1.2.3.4")
    public = hashlib.sha256(b"mammo-robust study key v1" + b"1.2.3.4").hexdigest()[:16]
    assert len(key) == 16 and key != public  # no longer the public default salt
    monkeypatch.setenv("MAMMO_ROBUST_DATA", str(tmp_path / "b"))
    assert installation_salt() != salt
    assert pseudonym("PATIENT-1", prefix="P-") != first and study_key("1.2.3.4") != key
    monkeypatch.setenv("MAMMO_ROBUST_DATA", str(tmp_path / "a"))
    assert pseudonym("PATIENT-1", prefix="P-") == first  # kept in the data folder


def test_dicom_folder_manifest_ids_use_the_installation_salt(tmp_path, monkeypatch):
    from core.manifest import manifest_from_dicom_folder

    src = tmp_path / "DOE_JANE_scans"
    src.mkdir()
    write(make_dataset(ramp(), ImageLaterality="L", ViewPosition="CC"), src / "DOE_JANE_LCC.dcm")
    monkeypatch.setenv("MAMMO_ROBUST_DATA", str(tmp_path / "a"))
    first, _ = manifest_from_dicom_folder(src)
    monkeypatch.setenv("MAMMO_ROBUST_DATA", str(tmp_path / "b"))
    second, _ = manifest_from_dicom_folder(src)
    ids = " ".join(first[["image_id", "exam_id", "patient_id"]].astype(str).to_numpy().ravel())
    assert "DOE" not in ids and "JANE" not in ids
    assert first.image_id.tolist() != second.image_id.tolist()  # keyed by each installation's salt


def test_predict_writes_pseudonymous_image_ids_for_files(tmp_path, monkeypatch):
    from core.cli import main

    monkeypatch.setenv("MAMMO_ROBUST_DATA", str(tmp_path / "data"))
    rng = np.random.default_rng(0)
    files = []
    for name in ("SMITH_JOHN_R_CC.png", "SMITH_JOHN_L_CC.png"):
        pixels = rng.uniform(0, 4095, (96, 64)).astype(np.float32)
        files.append(str(save_png(pixels, tmp_path / name)))
    out = tmp_path / "scores.csv"
    fast = ["--weights", "demo-fast"]
    assert main(["predict", "gmic", *files, "--spacing", "0.5", "0.5", *fast, "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert table["image_id"].tolist() == [file_pseudonym(f) for f in files]
    assert "SMITH" not in out.read_text()
    assert (
        main(
            ["predict", "gmic", files[0], "--spacing", "0.5", "0.5", *fast, "--file-names", "--out", str(out)]
        )
        == 0
    )
    assert pd.read_csv(out)["image_id"].tolist() == [files[0]]
