"""The decode process: decodes compressed pixel data for :mod:`core.imaging.sandbox`, one request at a time.

Run as a script (``python -P decode_child.py MEMORY_BYTES``); it imports nothing from ``core``, only numpy,
pydicom with its decoder plugins, and tifffile, so that it starts quickly and its memory baseline is small.
After its imports it limits the memory it may still allocate (``RLIMIT_DATA``: its size then plus
``MEMORY_BYTES``) and disables core dumps, then serves requests until its standard input closes.

Protocol (all integers big-endian ``uint32``): a request is ``len(header) header len(payload) payload``,
``header`` being JSON; the reply is ``len(header) header`` and, when ``header["ok"]``, the decoded array's
bytes (C order, ``header["dtype"]``, ``header["shape"]``). Nothing in a reply is unpickled by the parent.
Anything a decoder prints goes to the inherited standard error (the parent gives /dev/null), never into
the protocol stream. A decoder that aborts, panics or runs out of memory ends in an error reply or in this
process's death; the parent turns either into a ``MammogramError`` naming the file and starts a new process.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
import warnings

_U32 = struct.Struct(">I")
_MAX_HEADER = 1 << 16

# Decoder plugins (pydicom names) tried first, per transfer syntax; any other available plugin comes after.
# RLE: the Rust decoder is 3-4x faster than pydicom's own. JPEG 2000: OpenJPEG through pylibjpeg before gdcm.
PREFERRED = {
    "1.2.840.10008.1.2.5": ("pylibjpeg", "pydicom"),
    "1.2.840.10008.1.2.4.50": ("pillow", "pylibjpeg", "gdcm"),
    "1.2.840.10008.1.2.4.51": ("pylibjpeg", "pillow", "gdcm"),
    "1.2.840.10008.1.2.4.80": ("pyjpegls", "gdcm"),
    "1.2.840.10008.1.2.4.81": ("pyjpegls", "gdcm"),
    "1.2.840.10008.1.2.4.90": ("pylibjpeg", "pillow", "gdcm"),
    "1.2.840.10008.1.2.4.91": ("pylibjpeg", "pillow", "gdcm"),
}


def _vm_data_bytes() -> int:
    """This process's data size (bytes) from /proc, or 0 where there is no /proc (then no data limit)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _limit_resources(extra_bytes: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    baseline = _vm_data_bytes()
    if extra_bytes > 0 and baseline > 0 and hasattr(resource, "RLIMIT_DATA"):
        limit = baseline + extra_bytes
        try:
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        except (ValueError, OSError):  # a hard limit already lower: keep it
            pass


def _read_exact(fd: int, n: int) -> bytearray | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if k == 0:
            return None
        got += k
    return buf


def _write_all(fd: int, data) -> None:
    view = memoryview(data).cast("B")
    while len(view):
        k = os.write(fd, view)
        view = view[k:]


def _reply(fd: int, header: dict, payload=None) -> None:
    raw = json.dumps(header).encode()
    _write_all(fd, _U32.pack(len(raw)) + raw)
    if payload is not None:
        _write_all(fd, payload)


def _decode_dicom(req: dict, payload: bytearray):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.pixels import get_decoder

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = req["ts"]
    ds.Rows, ds.Columns = int(req["rows"]), int(req["cols"])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = str(req["photometric"])
    ds.BitsAllocated = int(req["bits_allocated"])
    ds.BitsStored = int(req["bits_stored"])
    ds.HighBit = int(req["high_bit"])
    ds.PixelRepresentation = int(req["pixel_representation"])
    ds.NumberOfFrames = 1
    ds.PixelData = bytes(payload)
    ds["PixelData"].VR = "OB"
    available = list(get_decoder(req["ts"]).available_plugins)
    order = [p for p in req.get("plugins") or PREFERRED.get(req["ts"], ()) if p in available]
    if not req.get("plugins"):  # an explicit list (tests) is tried alone; else every plugin, preferred first
        order += [p for p in available if p not in order]
    if not order:
        raise RuntimeError(f"no decoder plugin available for {req['ts']}")
    errors = []
    for plugin in order:
        try:
            ds.pixel_array_options(decoding_plugin=plugin)
            return ds.pixel_array
        except Exception as exc:  # try the next plugin, as pydicom itself does
            errors.append(f"{plugin}: {' '.join(str(exc).split())[:300]}")
    raise RuntimeError("; ".join(errors))


def _decode_tiff(req: dict, payload: bytearray):
    import io

    import tifffile

    with tifffile.TiffFile(io.BytesIO(bytes(payload))) as tif:
        return tif.pages[0].asarray()


def _serve(fd_in: int, fd_out: int) -> None:
    import numpy as np

    while True:
        head = _read_exact(fd_in, 4)
        if head is None:
            return
        size = _U32.unpack(head)[0]
        if size > _MAX_HEADER:
            return
        raw = _read_exact(fd_in, size)
        plen = _read_exact(fd_in, 4)
        if raw is None or plen is None:
            return
        payload = _read_exact(fd_in, _U32.unpack(plen)[0])
        if payload is None:
            return
        req = json.loads(raw)
        started = time.perf_counter()
        try:
            arr = _decode_tiff(req, payload) if req.get("kind") == "tiff" else _decode_dicom(req, payload)
            arr = np.ascontiguousarray(arr)
            del payload
        except (KeyboardInterrupt, SystemExit):
            raise
        except MemoryError:
            _reply(fd_out, {"ok": False, "kind": "memory", "error": "out of memory"})
            continue
        except BaseException as exc:  # noqa: BLE001 - a Rust panic (PanicException) is a BaseException
            kind = "panic" if type(exc).__name__ == "PanicException" else "error"
            text = " ".join(str(exc).split())[:800]
            _reply(fd_out, {"ok": False, "kind": kind, "error": f"{type(exc).__name__}: {text}"})
            continue
        _reply(
            fd_out,
            {
                "ok": True,
                "dtype": arr.dtype.str,
                "shape": list(arr.shape),
                "seconds": time.perf_counter() - started,
            },
            arr.reshape(-1).view(np.uint8),
        )
        del arr


def main() -> None:
    extra = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    fd_out = os.dup(1)  # the protocol stream; fd 1 then points at stderr so that no print can corrupt it
    os.dup2(2, 1)
    warnings.simplefilter("ignore")
    import numpy  # noqa: F401  (imported before the limit, so that it counts in the baseline)
    import pydicom  # noqa: F401
    from pydicom.pixels import get_decoder

    for ts in PREFERRED:
        get_decoder(ts).available_plugins  # noqa: B018  (loads the plugins before the limit)
    _limit_resources(extra)
    _reply(fd_out, {"ready": True, "pid": os.getpid()})
    _serve(0, fd_out)


if __name__ == "__main__":
    main()
