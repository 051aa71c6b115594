"""DICOM loading: real files written with pydicom (and gdcm for JPEG lossless), every rule of issue 2."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    MPEG2MPML,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from core.imaging import Mammogram, MammogramError, load_mammogram
from tests.hostile import gdcm_jpeg_lossless

MG_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
IDENTIFIERS = {
    "PatientName": "DOE^JANE",
    "PatientID": "PID-314159",
    "PatientBirthDate": "19610203",
    "AccessionNumber": "ACC-27182",
    "InstitutionName": "Saint Example Hospital",
    "ReferringPhysicianName": "WHO^DOCTOR",
}


def ramp(rows: int = 64, cols: int = 48, bits: int = 12, seed: int = 0) -> np.ndarray:
    """Random stored values covering 0..2**bits - 1 (both ends present)."""
    arr = np.random.default_rng(seed).integers(0, 2**bits, size=(rows, cols), dtype=np.int64)
    arr.flat[0], arr.flat[-1] = 0, 2**bits - 1
    return arr.astype(np.uint16 if bits > 8 else np.uint8)


def make_dataset(arr: np.ndarray | None = None, *, bits_stored: int = 12, **tags) -> Dataset:
    """A single-frame MG dataset holding ``arr`` uncompressed, with patient identifiers filled in."""
    arr = ramp(bits=bits_stored) if arr is None else arr
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MG_PRESENTATION
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = MG_PRESENTATION
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.3.4.5.6.7.8.9"
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "MG"
    ds.Manufacturer = "ACME Imaging"
    ds.PresentationIntentType = "FOR PRESENTATION"
    for key, value in IDENTIFIERS.items():
        setattr(ds, key, value)
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 8 if arr.dtype.itemsize == 1 else 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = arr.tobytes()
    for key, value in tags.items():
        setattr(ds, key, value)
    return ds


def write(ds: Dataset, path, compress: str | None = None):
    """Save ``ds`` (optionally compressed with pydicom's encoders, or gdcm for JPEG lossless) to ``path``."""
    if compress is None:
        ds.save_as(path, enforce_file_format=True)
    elif compress == JPEGLosslessSV1:
        pytest.importorskip("gdcm")
        path.write_bytes(gdcm_jpeg_lossless(ds))
    else:
        ds.compress(compress)
        ds.save_as(path, enforce_file_format=True)
    return path


def test_plain_12_bit_values_spacing_and_deidentified_metadata(tmp_path):
    arr = ramp()
    path = write(
        make_dataset(arr, ImagerPixelSpacing=[0.085, 0.085], ImageLaterality="L", ViewPosition="MLO"),
        tmp_path / "a.dcm",
    )
    m = load_mammogram(path)
    assert isinstance(m, Mammogram)
    assert m.pixels.dtype == np.float32 and m.pixels.shape == arr.shape
    np.testing.assert_array_equal(m.pixels, arr.astype(np.float32))  # 12-bit data kept as is
    assert m.spacing_mm == (0.085, 0.085) and m.spacing_source == "ImagerPixelSpacing (0018,1164)"
    assert not m.spacing_assumed
    assert (m.laterality, m.view) == ("L", "MLO")
    assert m.source_name == "a.dcm"
    assert m.metadata["Manufacturer"] == "ACME Imaging"
    assert m.metadata["BitsStored"] == "12" and m.metadata["for_processing"] == "no"
    text = repr(m.metadata)
    for value in [*IDENTIFIERS.values(), "1.2.3.4.5.6.7.8.9"]:
        assert value not in text
    assert len(m.metadata["study_key"]) == 16


@pytest.mark.parametrize(
    "tags, caller, expected, source",
    [
        (
            {
                "ImagerPixelSpacing": [0.1, 0.1],
                "PixelSpacing": [0.2, 0.2],
                "NominalScannedPixelSpacing": [0.3, 0.3],
            },
            (0.5, 0.5),
            (0.1, 0.1),
            "ImagerPixelSpacing (0018,1164)",
        ),
        (
            {"PixelSpacing": [0.2, 0.2], "NominalScannedPixelSpacing": [0.3, 0.3]},
            None,
            (0.2, 0.2),
            "PixelSpacing",
        ),
        ({"NominalScannedPixelSpacing": [0.3, 0.3]}, (0.5, 0.5), (0.3, 0.3), "NominalScannedPixelSpacing"),
        ({}, (0.05, 0.07), (0.05, 0.07), "caller"),
        ({}, None, (0.1, 0.1), "assumed default 0.1 mm"),
        ({"PixelSpacing": [0.0, 0.1]}, None, (0.1, 0.1), "assumed default"),  # invalid tag is skipped
    ],
)
def test_spacing_precedence(tmp_path, tags, caller, expected, source):
    path = write(make_dataset(**tags), tmp_path / "s.dcm")
    m = load_mammogram(path, spacing_mm=caller)
    assert m.spacing_mm == pytest.approx(expected)
    assert m.spacing_source.startswith(source)
    assert m.spacing_assumed == ("assumed" in source)


def test_anisotropic_spacing_keeps_row_col_order(tmp_path):
    path = write(make_dataset(PixelSpacing=[0.05, 0.1]), tmp_path / "aniso.dcm")
    m = load_mammogram(path)
    assert m.spacing_mm == (0.05, 0.1)
    assert m.size_mm == pytest.approx((64 * 0.05, 48 * 0.1))


def test_magnification_correction_is_optional_and_only_for_imager_spacing(tmp_path):
    tags = {"ImagerPixelSpacing": [0.1, 0.1], "EstimatedRadiographicMagnificationFactor": 1.25}
    path = write(make_dataset(**tags), tmp_path / "mag.dcm")
    assert load_mammogram(path).spacing_mm == (0.1, 0.1)
    corrected = load_mammogram(path, correct_magnification=True)
    assert corrected.spacing_mm == pytest.approx((0.08, 0.08))
    assert "EstimatedRadiographicMagnificationFactor 1.25" in corrected.spacing_source
    detector = write(
        make_dataset(PixelSpacing=[0.1, 0.1], EstimatedRadiographicMagnificationFactor=1.25),
        tmp_path / "p.dcm",
    )
    assert load_mammogram(detector, correct_magnification=True).spacing_mm == (0.1, 0.1)


@pytest.mark.parametrize("bits", [8, 10, 12, 14, 16])
def test_bits_stored_rule(tmp_path, bits):
    arr = ramp(bits=bits)
    m = load_mammogram(write(make_dataset(arr, bits_stored=bits), tmp_path / "b.dcm"))
    expected = arr.astype(np.float64) * 4095 / (2**bits - 1)
    np.testing.assert_allclose(m.pixels, expected, rtol=1e-6, atol=1e-3)
    assert m.pixels.min() == 0 and m.pixels.max() == 4095


def test_bits_stored_masks_bits_above_high_bit(tmp_path):
    arr = ramp()
    ds = make_dataset(arr)
    ds.PixelData = (arr | 0xF000).astype(np.uint16).tobytes()  # garbage in the unused high bits
    np.testing.assert_array_equal(load_mammogram(write(ds, tmp_path / "hb.dcm")).pixels, arr)


def test_rescale_slope_intercept_widens_the_scale(tmp_path):
    arr = ramp()
    m = load_mammogram(write(make_dataset(arr, RescaleSlope="2", RescaleIntercept="100"), tmp_path / "r.dcm"))
    rescaled = arr.astype(np.float64) * 2 + 100  # max 8290 > 4095: 14 bits hold it
    np.testing.assert_allclose(m.pixels, rescaled * 4095 / (2**14 - 1), rtol=1e-6)
    assert "widened to 14 bits" in m.metadata["value_rule"]


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
@pytest.mark.parametrize(
    "slope, intercept, problem",
    [("1", "-5000", "negative"), ("NaN", "0", "finite"), ("1", "inf", "finite"), ("0", "0", "is 0")],
)
def test_bad_rescale_refused(tmp_path, slope, intercept, problem):
    ds = make_dataset()
    ds.add_new(0x00281053, "DS", slope)  # raw strings: pydicom would refuse NaN as a DS number
    ds.add_new(0x00281052, "DS", intercept)
    path = tmp_path / "bad_rescale.dcm"
    with pydicom.config.disable_value_validation():
        write(ds, path)
    with pytest.raises(MammogramError, match=problem) as info:
        load_mammogram(path)
    assert "bad_rescale.dcm" in str(info.value)


def test_monochrome1_inverted_with_window(tmp_path):
    arr = ramp(bits=16)
    ds = make_dataset(
        arr,
        bits_stored=16,
        PhotometricInterpretation="MONOCHROME1",
        WindowCenter="16383",
        WindowWidth="32768",
    )
    m = load_mammogram(write(ds, tmp_path / "m1.dcm"))
    np.testing.assert_allclose(m.pixels, 4095 - arr.astype(np.float64) * 4095 / 65535, atol=1e-3)
    centre, width = m.window
    assert centre == pytest.approx(4095 - 16383 * 4095 / 65535)
    assert width == pytest.approx(32768 * 4095 / 65535)
    assert "MONOCHROME1 inverted" in m.metadata["value_rule"]


def test_window_maps_to_model_units_and_takes_the_first_of_several(tmp_path):
    ds = make_dataset(
        ramp(bits=16), bits_stored=16, WindowCenter=["32768", "20000"], WindowWidth=["65535", "1000"]
    )
    m = load_mammogram(write(ds, tmp_path / "w.dcm"))
    assert m.window == pytest.approx((32768 * 4095 / 65535, 4095.0))
    assert load_mammogram(write(make_dataset(), tmp_path / "nw.dcm")).window is None


def test_for_processing_is_accepted_and_flagged(tmp_path):
    m = load_mammogram(write(make_dataset(PresentationIntentType="FOR PROCESSING"), tmp_path / "fp.dcm"))
    assert m.metadata["for_processing"] == "yes"
    assert m.metadata["PresentationIntentType"] == "FOR PROCESSING"
    assert "FOR PROCESSING" in m.metadata["notes"]


def _view_item(code: str, meaning: str) -> Sequence:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "SRT", meaning
    return Sequence([item])


@pytest.mark.parametrize(
    "tags, laterality, view",
    [
        ({"ImageLaterality": "R", "Laterality": "L", "ViewPosition": "CC"}, "R", "CC"),
        ({"Laterality": "L", "ViewCodeSequence": _view_item("R-10226", "medio-lateral oblique")}, "L", "MLO"),
        ({"ImageLaterality": "R", "ViewCodeSequence": _view_item("999", "cranio-caudal")}, "R", "CC"),
        ({"ImageLaterality": "B"}, None, None),
        ({}, None, None),
    ],
)
def test_laterality_and_view(tmp_path, tags, laterality, view):
    m = load_mammogram(write(make_dataset(**tags), tmp_path / "lv.dcm"))
    assert (m.laterality, m.view) == (laterality, view)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless, JPEGLosslessSV1])
def test_compressed_transfer_syntaxes_decode_losslessly(tmp_path, syntax):
    arr = ramp(96, 64, seed=3)
    path = write(make_dataset(arr, ImagerPixelSpacing=[0.07, 0.07]), tmp_path / "c.dcm", compress=syntax)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
    m = load_mammogram(path)
    np.testing.assert_array_equal(m.pixels, arr.astype(np.float32))
    assert syntax.name in m.metadata["transfer_syntax"]


def test_missing_decoder_names_the_package(tmp_path, monkeypatch):
    from pydicom.pixels import get_decoder

    path = write(make_dataset(ramp(96, 64)), tmp_path / "ls.dcm", compress=JPEGLSLossless)
    monkeypatch.setattr(get_decoder(JPEGLSLossless), "_available", {})  # as if pyjpegls/gdcm were absent
    with pytest.raises(MammogramError, match="install pyjpegls"):
        load_mammogram(path)


def test_unsupported_compression_refused(tmp_path):
    ds = make_dataset()
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00\x00\x01\xb3" + bytes(64)])
    ds["PixelData"].VR = "OB"
    path = tmp_path / "video.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(MammogramError, match="MPEG2.*cannot decode"):
        load_mammogram(path)


def test_unknown_transfer_syntax_refused(tmp_path):
    ds = make_dataset()
    path = write(ds, tmp_path / "unknown.dcm")
    data = path.read_bytes().replace(str(ExplicitVRLittleEndian).encode(), b"1.2.840.10008.1.2.9")
    with pytest.raises(MammogramError, match="transfer syntax"):
        load_mammogram(data, name="unknown.dcm")


def test_multi_frame_tomosynthesis_refused(tmp_path):
    frames = np.stack([ramp(seed=i) for i in range(3)])
    ds = make_dataset(frames[0], NumberOfFrames=3)
    ds.PixelData = frames.tobytes()
    with pytest.raises(MammogramError, match="multi-frame.*3 frames"):
        load_mammogram(write(ds, tmp_path / "dbt.dcm"))


def test_no_pixel_data_refused(tmp_path):
    ds = make_dataset()
    del ds.PixelData
    with pytest.raises(MammogramError, match="no pixel data") as info:
        load_mammogram(write(ds, tmp_path / "nopix.dcm"))
    assert "nopix.dcm" in str(info.value)


@pytest.mark.parametrize("syntax", [None, JPEG2000Lossless])
@pytest.mark.parametrize("keep", [0.4, 0.97, 0.999])
def test_truncated_dicom_refused(tmp_path, syntax, keep):
    path = write(make_dataset(ramp(128, 96)), tmp_path / "full.dcm", compress=syntax)
    data = path.read_bytes()
    with pytest.raises(MammogramError, match="cut.dcm: .*truncated"):
        load_mammogram(data[: int(len(data) * keep)], name="cut.dcm")


def test_colour_dicom_refused(tmp_path):
    ds = make_dataset(np.zeros((16, 16), np.uint8), bits_stored=8)
    ds.PixelData = np.zeros((16, 16, 3), np.uint8).tobytes()
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    with pytest.raises(MammogramError, match="colour"):
        load_mammogram(write(ds, tmp_path / "rgb.dcm"))


def test_huge_header_refused_before_allocating(tmp_path):
    ds = make_dataset()
    ds.Rows = ds.Columns = 60000  # 3.6 gigapixels declared, 6 kB of data present
    path = write(ds, tmp_path / "huge.dcm")
    tracemalloc.start()
    try:
        with pytest.raises(MammogramError, match="60000 x 60000") as info:
            load_mammogram(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "refused before decoding" in str(info.value)
    assert peak < 20_000_000


def test_bare_dataset_without_preamble_loads(tmp_path):
    ds = make_dataset(ImagerPixelSpacing=[0.1, 0.1])
    del ds.file_meta
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, implicit_vr=True, little_endian=True)  # no preamble, no file meta
    data = buffer.getvalue()
    assert data[128:132] != b"DICM"
    m = load_mammogram(data)
    assert m.pixels.shape == (64, 48) and m.source_name == "<bytes>"


def test_preamble_that_looks_like_tiff_still_reads_as_dicom(tmp_path):
    arr = ramp()
    ds = make_dataset(arr)
    ds.preamble = b"II*\x00" + bytes(124)  # dual-personality DICOM/TIFF files put a TIFF header here
    path = tmp_path / "dual.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert path.read_bytes()[:4] == b"II*\x00"
    m = load_mammogram(path)
    assert m.metadata["format"] == "DICOM"
    np.testing.assert_array_equal(m.pixels, arr)


def test_12_bit_jpeg_extended_names_a_decoder_or_loads():
    from pydicom.data import get_testdata_file

    path = get_testdata_file("JPGExtended.dcm")  # 12-bit JPEG Extended, shipped with pydicom
    if path is None:
        pytest.skip("pydicom's test file JPGExtended.dcm is not installed")
    try:
        m = load_mammogram(path)
    except MammogramError as exc:  # Pillow and python-gdcm decode 8-bit JPEG only
        assert "12-bit JPEG Extended" in str(exc) and "pylibjpeg-libjpeg" in str(exc)
    else:  # a 12-bit JPEG decoder (pylibjpeg-libjpeg) is installed
        assert m.pixels.shape == (1024, 256) and m.metadata["source_bits"] == "12"


def test_one_pixel_dicom_refused(tmp_path):
    with pytest.raises(MammogramError, match="1 x 1 pixels"):
        load_mammogram(write(make_dataset(np.array([[7]], np.uint16)), tmp_path / "dot.dcm"))
