"""RLE Lossless (core.imaging.rle_codec): decoded in-process to pydicom's values with clear errors, and
encoded to the bytes of pydicom's gdcm plugin."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from core.imaging import MammogramError, load_mammogram, sandbox
from core.imaging.rle_codec import decode_rle, encode_rle
from tests import hostile


def _rle_dataset(arr: np.ndarray, bits_stored: int) -> Dataset:
    """An RLE dataset of ``arr`` whose BitsStored may be below the bits the values use (garbage high bits)."""
    bits = arr.dtype.itemsize * 8
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = int(arr.dtype.kind == "i")
    ds.PixelData = arr.tobytes()
    ds.compress(RLELossless, arr, encoding_plugin="pydicom")
    ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    return ds


@pytest.mark.parametrize(
    ("dtype", "bits_stored"),
    [(np.uint16, 16), (np.uint16, 12), (np.uint16, 10), (np.int16, 16), (np.int16, 12), (np.int16, 1),
     (np.uint8, 8), (np.uint8, 5), (np.int8, 6)],
)  # fmt: skip
def test_values_equal_pydicoms_own_decoder(dtype, bits_stored):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(bits_stored)
    arr = rng.integers(info.min, info.max, size=(37, 53), endpoint=True).astype(dtype)
    arr[5:20, 3:40] = arr[5, 3]  # replicate runs beside the literal ones
    ds = _rle_dataset(arr, bits_stored)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.pixel_array_options(decoding_plugin="pydicom")  # pure Python: an independent reference
    expected = ds.pixel_array
    got = decode_rle(frame, 37, 53, ds.BitsAllocated, bits_stored, dtype(0).dtype.kind == "i", "x.dcm")
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_rle_files_load_without_a_decode_process(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("RLE went to the decode process")

    monkeypatch.setattr(sandbox, "decode", refuse)
    image = hostile.pattern(256, 192)
    np.testing.assert_array_equal(load_mammogram(hostile.encode("rle", image)).pixels, image)


def _corrupt(data: bytes, edit) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    ds.PixelData = encapsulate([bytes(edit(frame))])
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _truncate_last_segment(frame: bytearray) -> bytearray:
    return frame[: len(frame) - (len(frame) - 68) // 3]


def _shorten_all(frame: bytearray) -> bytearray:
    """Replicate packets of one byte where runs were: segments decode short of the image."""
    second = int.from_bytes(frame[8:12], "little")
    return frame[:64] + bytes([0x00, 0x07]) * ((second - 64) // 2) + frame[second:]


@pytest.mark.parametrize("edit", [_truncate_last_segment, _shorten_all])
def test_corrupt_segments_give_a_clear_error_and_the_process_goes_on(edit):
    good = hostile.encode("rle", hostile.pattern(128, 96))
    with pytest.raises(MammogramError, match=r"bad\.dcm: .*RLE"):
        load_mammogram(_corrupt(good, edit), name="bad.dcm")
    np.testing.assert_array_equal(load_mammogram(good).pixels, hostile.pattern(128, 96))


@pytest.mark.parametrize(("shape", "bits_stored"), [((128, 96), 12), ((61, 37), 12), ((64, 64), 16)])
def test_encoder_gives_the_bytes_of_pydicoms_gdcm_plugin(shape, bits_stored):
    image = hostile.pattern(*shape)
    if bits_stored == 16:
        image = image * 16 + 15  # values over 12 bits
    image[: shape[0] // 3] = 0  # background: long replicate runs
    frame = encode_rle(image, bits_stored)
    ds = _rle_dataset(np.zeros(shape, np.uint16), 16)  # a dataset to re-encode with the plugin
    ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    ds.compress(RLELossless, image, encoding_plugin="gdcm")
    assert frame == next(generate_frames(ds.PixelData, number_of_frames=1))
    np.testing.assert_array_equal(decode_rle(frame, *shape, 16, bits_stored, False, "x"), image)


def test_a_synthetic_view_is_written_as_through_pydicom(tmp_path, monkeypatch):
    from core.phantom import dicom as phantom_dicom

    image = hostile.pattern(200, 120)
    image[:, 90:] = 0
    view = dict(spacing_mm=0.1, laterality="L", view="CC", exam_id="E1", patient_id="P1", image_id="I1",
                instance_number=1, cohort_key="test")  # fmt: skip
    phantom_dicom.write_view(tmp_path / "direct.dcm", image, **view)
    monkeypatch.setattr(phantom_dicom, "encode_rle", lambda *a: (_ for _ in ()).throw(RuntimeError("no")))
    phantom_dicom.write_view(tmp_path / "plugin.dcm", image, **view)  # the fallback: Dataset.compress
    assert (tmp_path / "direct.dcm").read_bytes() == (tmp_path / "plugin.dcm").read_bytes()
    np.testing.assert_array_equal(load_mammogram(tmp_path / "direct.dcm").pixels, image)
