"""``mammo-robust info`` and ``mammo-robust perturb`` on real files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pydicom
import pytest

from core.cli import main
from core.imaging import load_mammogram, save_png
from core.perturb import gaussian_noise, lowpass, patch_shuffle
from tests.test_dicom import IDENTIFIERS, make_dataset, write


def smooth_image(rows: int = 96, cols: int = 80) -> np.ndarray:
    """A bright blob with fine texture: something the filters visibly change."""
    y, x = np.mgrid[:rows, :cols]
    blob = 3000 * np.exp(-(((y - rows / 2) / 30) ** 2 + ((x - cols / 3) / 25) ** 2))
    texture = 300 * (np.sin(x * 2.5) * np.cos(y * 2.1) + 1)
    return np.clip(blob + texture, 0, 4095).astype(np.uint16)


@pytest.fixture()
def source_dcm(tmp_path):
    ds = make_dataset(
        smooth_image(),
        ImagerPixelSpacing=[0.07, 0.05],
        ImageLaterality="R",
        ViewPosition="CC",
        PresentationIntentType="FOR PROCESSING",
    )
    return write(ds, tmp_path / "source.dcm")


def test_info_prints_header_summary_without_identifiers(source_dcm, capsys):
    assert main(["info", str(source_dcm)]) == 0
    out = capsys.readouterr().out
    for expected in [
        "96 x 80 pixels",
        "0.07 x 0.05 mm",
        "ImagerPixelSpacing (0018,1164)",
        "R (from ImageLaterality",
        "CC (from ViewPosition",
        "bits stored:         12",
        "MONOCHROME2",
        "FOR PROCESSING (raw detector data)",
        "Explicit VR Little Endian",
        "stored range:",
    ]:
        assert expected in out, expected
    for value in [*IDENTIFIERS.values(), "1.2.3.4.5.6.7.8.9"]:
        assert value not in out


def test_info_json_and_spacing_for_png(tmp_path, capsys):
    path = save_png(smooth_image().astype(np.float32), tmp_path / "p.png")
    assert main(["info", str(path), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["spacing"].endswith("ASSUMED") and facts["format"] == "PNG"
    assert main(["info", str(path), "--spacing", "0.05", "0.06", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["spacing source"] == "caller" and facts["spacing"].startswith("0.05 x 0.06 mm")


def test_info_bad_file_exits_2_with_message(tmp_path, capsys):
    bad = tmp_path / "junk.dcm"
    bad.write_bytes(b"not an image at all" * 20)
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "junk.dcm" in err and "not a recognised image" in err and "Traceback" not in err


def test_perturb_lowpass_to_dicom_keeps_geometry(source_dcm, tmp_path, capsys):
    out = tmp_path / "lp.dcm"
    assert main(["perturb", str(source_dcm), "--lowpass", "2.0", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    src, ds = pydicom.dcmread(source_dcm), pydicom.dcmread(out)
    assert (ds.Rows, ds.Columns) == (src.Rows, src.Columns)
    assert [float(v) for v in ds.ImagerPixelSpacing] == [0.07, 0.05]
    assert (ds.ImageLaterality, ds.ViewPosition) == ("R", "CC")
    assert ds.SOPInstanceUID != src.SOPInstanceUID and ds.SeriesInstanceUID != src.SeriesInstanceUID
    assert "lowpass radius 2 cycles/mm (ideal)" in ds.DerivationDescription
    assert "PatientName" not in ds or str(ds.PatientName) == ""
    source = load_mammogram(source_dcm)
    expected = np.clip(np.rint(lowpass(source.pixels, (0.07, 0.05), 2.0)), 0, 4095)
    np.testing.assert_array_equal(load_mammogram(out).pixels, expected)
    assert not np.array_equal(expected, source.pixels)


def test_perturb_noise_png_is_seeded(source_dcm, tmp_path):
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    for path, seed in ((a, "3"), (b, "3"), (c, "4")):
        assert main(["perturb", str(source_dcm), "--noise", "400", "--seed", seed, "--out", str(path)]) == 0
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    source = load_mammogram(source_dcm)
    expected = np.clip(np.rint(gaussian_noise(source.pixels, 400.0, seed=3)), 0, 4095)
    np.testing.assert_array_equal(load_mammogram(a).pixels, expected)


def test_perturb_shuffle_and_gaussian_highpass_with_offset(source_dcm, tmp_path, capsys):
    source = load_mammogram(source_dcm)
    out = tmp_path / "s.png"
    assert main(["perturb", str(source_dcm), "--shuffle", "4", "--seed", "1", "--out", str(out)]) == 0
    np.testing.assert_array_equal(
        load_mammogram(out).pixels, np.rint(patch_shuffle(source.pixels, 4, seed=1))
    )
    hp = tmp_path / "hp.dcm"
    argv = ["perturb", str(source_dcm), "--highpass", "1", "--kind", "gaussian", "--out", str(hp)]
    assert main(argv) == 0
    assert "clipped" in capsys.readouterr().err  # zero-mean output loses its negative half
    assert main([*argv, "--offset", "2048"]) == 0
    assert "clipped" not in capsys.readouterr().err
    ds = pydicom.dcmread(hp)
    assert "(gaussian), offset +2048" in ds.DerivationDescription
    assert abs(float(load_mammogram(hp).pixels.mean()) - 2048) < 5


@pytest.mark.parametrize(
    "extra, problem",
    [
        (["--noise", "100", "--kind", "gaussian", "--out", "{tmp}/x.png"], "--kind applies"),
        (["--lowpass", "2", "--out", "{tmp}/x.jpg"], "must end in .dcm or .png"),
        (["--lowpass", "2", "--out", "{tmp}/missing/x.png"], "does not exist"),
        (["--lowpass", "-1", "--out", "{tmp}/x.png"], "radius"),
    ],
)
def test_perturb_bad_arguments_exit_2(source_dcm, tmp_path, capsys, extra, problem):
    argv = ["perturb", str(source_dcm), *[a.format(tmp=tmp_path) for a in extra]]
    assert main(argv) == 2
    assert problem in capsys.readouterr().err


def test_perturb_needs_exactly_one_perturbation(source_dcm, tmp_path):
    with pytest.raises(SystemExit):
        main(["perturb", str(source_dcm), "--out", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit):
        main(["perturb", str(source_dcm), "--lowpass", "2", "--noise", "5", "--out", str(tmp_path / "x.png")])


def test_console_script_runs(source_dcm):
    result = subprocess.run(
        [sys.executable, "-m", "core", "info", str(source_dcm)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "96 x 80 pixels" in result.stdout and "DOE" not in result.stdout


def test_perturb_real_nyu_image_to_dicom(nyu_samples, tmp_path, capsys):
    source = nyu_samples / "gmic_0_R-CC.png"
    out = tmp_path / "gmic_lp.dcm"
    assert (
        main(["perturb", str(source), "--lowpass", "2", "--spacing", "0.07", "0.07", "--out", str(out)]) == 0
    )
    capsys.readouterr()
    ds = pydicom.dcmread(out)
    assert (ds.Rows, ds.Columns) == (2144, 801)
    assert [float(v) for v in ds.ImagerPixelSpacing] == [0.07, 0.07]
    assert (ds.ImageLaterality, ds.ViewPosition) == ("R", "CC")
    back = load_mammogram(out)
    original = load_mammogram(source, spacing_mm=(0.07, 0.07))
    expected = np.clip(np.rint(lowpass(original.pixels, (0.07, 0.07), 2.0)), 0, 4095)
    np.testing.assert_array_equal(back.pixels, expected)
    assert main(["info", str(source)]) == 0
    out_text = capsys.readouterr().out
    assert "2144 x 801 pixels" in out_text and "ASSUMED" in out_text and "R (from file name)" in out_text
