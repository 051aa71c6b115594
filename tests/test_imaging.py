"""core.imaging: the model-units rule, PNG/TIFF/JPEG loading, the Mammogram record, writers, real images."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pydicom
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from core.errors import ExplorerError
from core.imaging import (
    DEFAULT_SPACING_MM,
    Mammogram,
    MammogramError,
    load_mammogram,
    save_dicom,
    save_png,
    to_model_units,
)


def png_bytes(arr: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG")
    return buffer.getvalue()


def image(rows: int = 40, cols: int = 32, top: int = 4095, dtype=np.uint16, seed: int = 0) -> np.ndarray:
    arr = np.random.default_rng(seed).integers(0, top + 1, size=(rows, cols)).astype(dtype)
    arr.flat[0], arr.flat[-1] = 0, top
    return arr


# --- the rule ---------------------------------------------------------------------------------------------


def test_rule_endpoints_and_identity():
    assert to_model_units(np.array([0, 4095]), 12).tolist() == [0.0, 4095.0]
    assert to_model_units(np.array([0, 65535]), 16).tolist() == [0.0, 4095.0]
    assert to_model_units(np.array([0, 255]), 8).tolist() == [0.0, 4095.0]
    assert to_model_units(np.array([16]), 16)[0] == pytest.approx(16 * 4095 / 65535)
    assert to_model_units(np.array([1.0]), 8)[0] == pytest.approx(4095 / 255)
    assert to_model_units(np.array([5000, -3]), 12).tolist() == [4095.0, 0.0]  # clipped
    assert to_model_units(np.zeros((3, 2), np.uint16), 12).dtype == np.float32


def test_rule_recovers_12_bit_values_stored_on_16_bits():
    v12 = np.arange(4096)
    v16 = np.round(v12 * 65535 / 4095).astype(np.uint16)  # how the NYU DMV PNGs were made
    np.testing.assert_allclose(to_model_units(v16, 16), v12, atol=0.032)


@pytest.mark.parametrize("bits", [0, 17, 12.0, True])
def test_rule_rejects_bad_bit_depth(bits):
    with pytest.raises(MammogramError):
        to_model_units(np.zeros(3), bits)


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(1, 16), data=st.data())
def test_rule_is_monotone_and_in_range(bits, data):
    values = np.array(
        data.draw(st.lists(st.integers(0, 2**bits - 1), min_size=2, max_size=30)), dtype=np.int64
    )
    out = to_model_units(values, bits)
    order = np.argsort(values, kind="stable")
    assert np.all(np.diff(out[order]) >= 0)
    assert out.min() >= 0 and out.max() <= 4095


# --- PNG / TIFF / JPEG --------------------------------------------------------------------------------------


def test_png_12_bit_kept_as_is(tmp_path):
    arr = image()
    path = tmp_path / "x.png"
    path.write_bytes(png_bytes(arr))
    m = load_mammogram(path)
    np.testing.assert_array_equal(m.pixels, arr.astype(np.float32))
    assert m.spacing_mm == (DEFAULT_SPACING_MM, DEFAULT_SPACING_MM) and m.spacing_assumed
    assert "assumed" in m.spacing_source and m.metadata["source_bits"] == "12"
    assert m.laterality is None and m.view is None and m.window is None


def test_png_full_range_16_bit_rescaled():
    arr = image(top=65535)
    m = load_mammogram(png_bytes(arr))
    np.testing.assert_allclose(m.pixels, arr.astype(np.float64) * 4095 / 65535, rtol=1e-6)
    assert m.metadata["source_bits"] == "16" and m.source_name == "<bytes>"


def test_png_8_bit_mapped_by_the_same_rule():
    arr = image(top=255, dtype=np.uint8)
    m = load_mammogram(png_bytes(arr), name="eight.png", spacing_mm=0.07)
    np.testing.assert_allclose(m.pixels, arr.astype(np.float64) * 4095 / 255, rtol=1e-6)
    assert m.spacing_mm == (0.07, 0.07) and m.spacing_source == "caller" and not m.spacing_assumed
    assert m.source_name == "eight.png"


@pytest.mark.parametrize("arr", [image(), image(top=65535), image(top=255, dtype=np.uint8)])
def test_tiff_follows_the_same_rule_as_png(arr):
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, arr, compression="zlib")
    from_tiff = load_mammogram(buffer.getvalue(), spacing_mm=(0.05, 0.1))
    from_png = load_mammogram(png_bytes(arr))
    np.testing.assert_array_equal(from_tiff.pixels, from_png.pixels)
    assert from_tiff.metadata["format"] == "TIFF" and from_tiff.spacing_mm == (0.05, 0.1)


def test_jpeg_8_bit_loads():
    arr = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="JPEG", quality=95)
    m = load_mammogram(buffer.getvalue())
    assert m.metadata["format"] == "JPEG" and m.pixels.shape == (48, 64)
    np.testing.assert_allclose(m.pixels, arr.astype(np.float64) * 4095 / 255, atol=4095 / 255 * 4)


def test_laterality_and_view_from_the_file_name(tmp_path):
    data = png_bytes(image())
    for name, expected in [
        ("dmv_1_R_CC.png", ("R", "CC")),
        ("gmic_0_L-MLO.png", ("L", "MLO")),
        ("scan7.png", (None, None)),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        m = load_mammogram(path)
        assert (m.laterality, m.view) == expected
    assert load_mammogram(data).laterality is None


def test_format_comes_from_the_content_not_the_extension(tmp_path):
    arr = image()
    path = tmp_path / "looks_like.dcm"
    path.write_bytes(png_bytes(arr))
    m = load_mammogram(path)
    assert m.metadata["format"] == "PNG"
    np.testing.assert_array_equal(m.pixels, arr)


def test_grey_rgb_png_accepted_colour_refused():
    grey = image(top=255, dtype=np.uint8)
    m = load_mammogram(png_bytes(np.stack([grey] * 3, axis=-1)))
    np.testing.assert_allclose(m.pixels, grey.astype(np.float64) * 4095 / 255, rtol=1e-6)
    colour = np.stack([grey, grey, 255 - grey], axis=-1)
    with pytest.raises(MammogramError, match="colour"):
        load_mammogram(png_bytes(colour), name="rgb.png")


def test_transparent_png_refused():
    grey = image(top=255, dtype=np.uint8)
    alpha = np.full_like(grey, 255)
    alpha[0, 0] = 0
    with pytest.raises(MammogramError, match="transparency"):
        load_mammogram(png_bytes(np.stack([grey, alpha], axis=-1)))


def _png_with_header(width: int, height: int, depth: int = 16, colour: int = 0) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_huge_png_header_refused_before_decoding():
    with pytest.raises(MammogramError, match="60000 x 60000.*refused before decoding"):
        load_mammogram(_png_with_header(60000, 60000), name="huge.png")


def _tiff_with_header(width: int, height: int) -> bytes:
    """A little-endian TIFF whose tags declare width x height 16-bit pixels, followed by 16 bytes of data."""
    entries = [  # tag, type (3 SHORT, 4 LONG), value
        (256, 4, width),
        (257, 4, height),
        (258, 3, 16),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 8 + 2 + 12 * 9 + 4),
        (277, 3, 1),
        (278, 4, height),
        (279, 4, width * height * 2),
    ]
    ifd = struct.pack("<H", len(entries))
    ifd += b"".join(struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in entries)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + bytes(16)


def test_huge_tiff_refused_before_decoding():
    with pytest.raises(MammogramError, match="30000 x 25000"):
        load_mammogram(_tiff_with_header(25000, 30000), name="huge.tif")
    truncated = _tiff_with_header(64, 64)
    with pytest.raises(MammogramError, match="could not decode the TIFF"):
        load_mammogram(truncated, name="short.tif")


@pytest.mark.parametrize(
    "data, problem",
    [
        (b"", "empty"),
        (np.random.default_rng(1).bytes(4096), "not a recognised image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 10, "truncated or corrupt PNG"),
        (png_bytes(image())[:300], "could not decode"),
        (png_bytes(np.array([[7]], np.uint16)), "1 x 1 pixels"),
        (png_bytes(np.zeros((4, 400), np.uint8)), "4 x 400 pixels"),
        (png_bytes(np.ones((20, 20), bool)), "1-bit PNG"),
        (_png_with_header(32, 32, depth=16, colour=2), "16-bit colour"),
    ],
)
def test_bad_raster_inputs_raise_mammogram_error(data, problem):
    with pytest.raises(MammogramError, match=problem) as info:
        load_mammogram(data, name="bad.png")
    assert str(info.value).startswith("bad.png: ")
    assert isinstance(info.value, ExplorerError) and isinstance(info.value, ValueError)


def test_bad_paths_and_sources(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    cases = [
        (tmp_path / "missing.dcm", "no such file"),
        (tmp_path, "folder"),
        (tmp_path / "empty.png", "empty"),
        (str(tmp_path / "missing.png"), "no such file"),
        (42, "expected a file path or bytes"),
    ]
    for source, problem in cases:
        with pytest.raises(MammogramError, match=problem):
            load_mammogram(source)


def test_tiff_edge_cases():
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.stack([image(), image(seed=1)]))  # two pages
    with pytest.raises(MammogramError, match="2 pages"):
        load_mammogram(buffer.getvalue())
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.full((20, 20), 0.5, np.float32) * 9000)
    with pytest.raises(MammogramError, match="floating-point"):
        load_mammogram(buffer.getvalue())
    buffer = io.BytesIO()
    floats = np.linspace(0, 4095, 400, dtype=np.float32).reshape(20, 20)
    tifffile.imwrite(buffer, floats)
    np.testing.assert_array_equal(load_mammogram(buffer.getvalue()).pixels, floats)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.full((20, 20), -4, np.int16))
    with pytest.raises(MammogramError, match="negative"):
        load_mammogram(buffer.getvalue())
    buffer = io.BytesIO()
    twelve = image()
    tifffile.imwrite(buffer, twelve, photometric="miniswhite")
    inverted = load_mammogram(buffer.getvalue())
    np.testing.assert_array_equal(inverted.pixels, 4095 - twelve.astype(np.float32))
    assert "MINISWHITE inverted" in inverted.metadata["value_rule"]
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((20, 20, 3), np.uint8), photometric="rgb")
    with pytest.raises(MammogramError, match="3 samples per pixel"):
        load_mammogram(buffer.getvalue())


@pytest.mark.parametrize("spacing", [0, -0.1, (0.1,), (0.1, 0.1, 0.1), "abc", (float("nan"), 0.1), 50])
def test_bad_caller_spacing(spacing):
    with pytest.raises(MammogramError, match="spacing"):
        load_mammogram(png_bytes(image()), spacing_mm=spacing)


# --- the record ---------------------------------------------------------------------------------------------


def test_mammogram_record_coerces_and_validates():
    m = Mammogram(np.arange(20, dtype=np.uint16).reshape(4, 5), spacing_mm=[0.05, 0.1])
    assert m.pixels.dtype == np.float32 and m.spacing_mm == (0.05, 0.1) and m.shape == (4, 5)
    assert m.spacing_source == "caller" and not m.spacing_assumed
    plain = Mammogram(np.zeros((3, 3)))
    assert plain.spacing_assumed and plain.spacing_mm == (DEFAULT_SPACING_MM, DEFAULT_SPACING_MM)
    tagged = Mammogram(np.zeros((3, 3)), (0.07, 0.07), "PixelSpacing (0028,0030)")
    assert tagged.spacing_source == "PixelSpacing (0028,0030)" and tagged.size_mm == pytest.approx(
        (0.21, 0.21)
    )
    for bad in [
        dict(pixels=np.zeros(5)),
        dict(pixels=np.zeros((0, 3))),
        dict(pixels=np.zeros((3, 3)), spacing_mm=(0, 1)),
        dict(pixels=np.zeros((3, 3)), laterality="left"),
        dict(pixels=np.array([["a"]])),
    ]:
        with pytest.raises(MammogramError):
            Mammogram(**bad)


# --- writers ------------------------------------------------------------------------------------------------


def test_png_writer_round_trip_and_clipping(tmp_path):
    pixels = np.linspace(-100, 5000, 40 * 32, dtype=np.float32).reshape(40, 32)
    path = save_png(pixels, tmp_path / "out.png")
    with Image.open(path) as written:
        assert written.mode.startswith("I") and written.size == (32, 40)
    back = load_mammogram(path)
    np.testing.assert_array_equal(back.pixels, np.clip(np.rint(pixels), 0, 4095))
    with pytest.raises(MammogramError, match="NaN"):
        save_png(np.full((10, 10), np.nan, np.float32), tmp_path / "nan.png")
    with pytest.raises(MammogramError, match="cannot write"):
        save_png(pixels, tmp_path / "no" / "such" / "dir.png")


def test_dicom_writer_keeps_geometry_drops_identifiers(tmp_path):
    from tests.test_dicom import IDENTIFIERS, make_dataset, ramp, write

    tags = dict(
        PixelSpacing=[0.06, 0.09],
        ImageLaterality="L",
        ViewPosition="MLO",
        WindowCenter="2000",
        WindowWidth="3000",
        PatientOrientation=["A", "FR"],
    )
    source_path = write(make_dataset(ramp(64, 48), **tags), tmp_path / "src.dcm")
    source = load_mammogram(source_path)
    perturbed = source.pixels * 0.5 + 1.25
    out = save_dicom(
        perturbed, tmp_path / "derived.dcm", template=source, derivation="lowpass radius 2 cycles/mm"
    )
    ds = pydicom.dcmread(out)
    original = pydicom.dcmread(source_path)
    assert (ds.Rows, ds.Columns) == (64, 48)
    assert [float(v) for v in ds.PixelSpacing] == [0.06, 0.09]
    assert (ds.ImageLaterality, ds.ViewPosition) == ("L", "MLO")
    assert list(ds.PatientOrientation) == ["A", "FR"]
    assert ds.DerivationDescription == "lowpass radius 2 cycles/mm" and "DERIVED" in ds.ImageType
    for uid in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
        assert ds[uid].value != original[uid].value
    text = str(ds) + out.read_bytes().decode("latin-1")
    for value in [*IDENTIFIERS.values(), original.StudyInstanceUID]:
        assert value not in text
    back = load_mammogram(out)
    assert back.spacing_mm == (0.06, 0.09) and back.spacing_source.startswith("PixelSpacing")
    assert (back.laterality, back.view) == ("L", "MLO")
    assert back.window == pytest.approx(source.window, abs=1e-3)
    np.testing.assert_array_equal(back.pixels, np.clip(np.rint(perturbed), 0, 4095))
    again = save_dicom(perturbed, tmp_path / "again.dcm", template=source)
    assert pydicom.dcmread(again).StudyInstanceUID == ds.StudyInstanceUID  # same source study, same study
    assert pydicom.dcmread(again).SeriesInstanceUID != ds.SeriesInstanceUID


def test_dicom_writer_does_not_launder_an_assumed_spacing(tmp_path):
    assumed = load_mammogram(png_bytes(image()), name="plain.png")
    out = save_dicom(assumed, tmp_path / "a.dcm")
    ds = pydicom.dcmread(out)
    assert "ImagerPixelSpacing" not in ds and "PixelSpacing" not in ds
    assert "assumed" in ds.ImageComments
    assert load_mammogram(out).spacing_assumed
    given_spacing = save_dicom(assumed.pixels, tmp_path / "b.dcm", spacing_mm=(0.07, 0.07))
    back = load_mammogram(given_spacing)
    assert back.spacing_mm == (0.07, 0.07) and not back.spacing_assumed


def test_dicom_writer_rejects_mismatched_template_and_nan(tmp_path):
    template = Mammogram(np.zeros((10, 10), np.float32))
    with pytest.raises(MammogramError, match="differs"):
        save_dicom(np.zeros((12, 10)), tmp_path / "x.dcm", template=template)
    with pytest.raises(MammogramError, match="NaN"):
        save_dicom(np.full((10, 10), np.inf), tmp_path / "y.dcm")


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_writers_round_trip_integer_model_units(seed):
    import tempfile
    from pathlib import Path

    arr = image(24, 17, seed=seed).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        for writer, name in ((save_png, "r.png"), (save_dicom, "r.dcm")):
            path = writer(arr, Path(folder) / name)
            np.testing.assert_array_equal(load_mammogram(path).pixels, arr)


# --- the real NYU images ------------------------------------------------------------------------------------

NYU = {
    "dmv_1_L_CC.png": ((3328, 2560), "L", "CC", 16),
    "dmv_1_R_CC.png": ((3328, 2560), "R", "CC", 16),
    "dmv_2_L_CC.png": ((3328, 2560), "L", "CC", 16),
    "dmv_2_R_CC.png": ((3328, 2560), "R", "CC", 16),
    "gmic_0_L-CC.png": ((2023, 801), "L", "CC", 12),
    "gmic_0_R-CC.png": ((2144, 801), "R", "CC", 12),
    "gmic_0_L-MLO.png": ((2730, 981), "L", "MLO", 12),
    "gmic_0_R-MLO.png": ((2650, 1006), "R", "MLO", 12),
}


@pytest.mark.parametrize("name", sorted(NYU))
def test_real_nyu_samples(nyu_samples, name):
    shape, laterality, view, bits = NYU[name]
    m = load_mammogram(nyu_samples / name)
    assert m.pixels.shape == shape and m.pixels.dtype == np.float32
    assert m.pixels.min() == 0.0 and m.pixels.max() == 4095.0
    assert m.spacing_assumed and m.spacing_mm == (0.1, 0.1)
    assert (m.laterality, m.view) == (laterality, view)
    assert m.metadata["source_bits"] == str(bits)
    if bits == 16:  # 12-bit data stored on 16 bits: the rule lands within 0.032 of integers
        sample = m.pixels[::7, ::7]
        assert np.abs(sample - np.rint(sample)).max() < 0.032
    else:
        from PIL import Image as PILImage

        with PILImage.open(nyu_samples / name) as raw:
            np.testing.assert_array_equal(m.pixels, np.asarray(raw).astype(np.float32))
