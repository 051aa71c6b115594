"""Messages that help: planar colour TIFF, corrupted headers, malformed modality LUTs, unsafe weights."""

from __future__ import annotations

import io
import os
import pickle
import struct

import numpy as np
import pytest
import tifffile
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from core.imaging import MammogramError, load_mammogram
from tests.hostile import dataset, pattern, to_bytes


def test_planar_colour_tiff_is_named_as_such():
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((3, 20, 30), np.uint8), photometric="rgb", planarconfig="separate")
    with pytest.raises(MammogramError) as info:
        load_mammogram(buffer.getvalue(), name="planar.tif")
    text = str(info.value)
    assert text.startswith("planar.tif: TIFF with 3 samples per pixel stored as separate planes")
    assert "PlanarConfiguration 2" in text and "single-channel greyscale" in text
    assert "3 x 20 pixels" not in text  # not mistaken for a 3-row image


def _with_rows_length(length: int, extra: bytes) -> bytes:
    data = to_bytes(dataset(pattern(64, 64)))
    i = data.find(b"\x28\x00\x10\x00US")
    return data[: i + 6] + struct.pack("<H", length) + data[i + 8 : i + 10] + extra + data[i + 10 :]


@pytest.mark.parametrize(("length", "extra"), [(3, b"\x00"), (4, b"\x00\x00")])
def test_a_corrupted_header_element_gets_a_plain_message(length, extra):
    with pytest.raises(MammogramError, match=r"^rows\.dcm: the DICOM header is corrupt \("):
        load_mammogram(_with_rows_length(length, extra), name="rows.dcm")


def _lut_item(descriptor, data) -> Dataset:
    item = Dataset()
    item.add_new(0x00283002, "US", descriptor)  # LUTDescriptor
    if data is not None:
        item.add_new(0x00283006, "OW", np.asarray(data, np.uint16).tobytes())  # LUTData
    item.ModalityLUTType = "US"
    return item


@pytest.mark.parametrize(
    ("descriptor", "data", "problem"),
    [
        ([4096, 0, 12], list(range(10)), "LUTDescriptor declares 4096 entries, LUTData holds 10"),
        ([4096, 0, 12], None, "needs a 3-value LUTDescriptor and LUTData"),
        ([16, 0, 40], list(range(16)), "40 bits per entry"),
    ],
)
def test_a_malformed_modality_lut_gets_a_plain_message(descriptor, data, problem):
    ds = dataset(pattern(64, 64))
    ds.ModalityLUTSequence = Sequence([_lut_item(descriptor, data)])
    with pytest.raises(MammogramError) as info:
        load_mammogram(to_bytes(ds), name="lut.dcm")
    assert str(info.value).startswith("lut.dcm: the Modality LUT (0028,3000) is malformed")
    assert problem in str(info.value)


def test_a_valid_modality_lut_still_applies():
    ds = dataset(pattern(64, 64))
    ds.ModalityLUTSequence = Sequence([_lut_item([4096, 0, 12], [4095 - v for v in range(4096)])])
    m = load_mammogram(to_bytes(ds), name="lut.dcm")
    np.testing.assert_array_equal(m.pixels, 4095 - pattern(64, 64).astype(np.float32))


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("true",))


@pytest.mark.parametrize("kind", ["pickle-2", "pickle-4", "torch-zip"])
def test_unsafe_weights_refusal_never_suggests_turning_protection_off(tmp_path, kind):
    import torch

    from core.models import ModelError
    from core.models.weights import read_weights_file

    path = tmp_path / "weights.p"
    if kind == "torch-zip":
        torch.save({"model": _RunsCode()}, path)
    else:
        path.write_bytes(pickle.dumps({"model": _RunsCode()}, protocol=int(kind[-1])))
    with pytest.raises(ModelError) as info:
        read_weights_file(path)
    text = str(info.value)
    assert "weights_only" not in text and "False" not in text and "Re-running" not in text
    if kind != "pickle-4":  # protocol 4 fails earlier, on an opcode tensor-only loading does not read
        assert "asks to run code when it is loaded (posix.system)" in text and "it was not loaded" in text
